"""LangChain and LlamaIndex adapters (skipped when the framework is not installed)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

import trawl
from tests.plugins.ingest_support import REPO
from trawl import Trawl
from trawl.ingest import index_paths


@pytest.fixture(scope="module")
def t() -> Iterator[Trawl]:
    with Trawl.memory("bm25") as tr:
        index_paths(tr, [REPO / "examples" / "corpus"], show_progress=False)
        yield tr


def test_import_trawl_imports_no_framework() -> None:
    code = ("import sys, trawl, trawl.ingest; "
            "print([m for m in ('langchain_core', 'llama_index', 'pypdf', 'selectolax') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_langchain_retriever(t: Trawl) -> None:
    pytest.importorskip("langchain_core")
    from langchain_core.retrievers import BaseRetriever

    from trawl.integrations.langchain import TrawlRetriever

    retriever = TrawlRetriever(trawl=t, top_k=3)
    assert isinstance(retriever, BaseRetriever)
    docs = retriever.invoke("reciprocal rank fusion constant k")
    assert len(docs) == 3
    top = docs[0]
    assert top.metadata["doc_id"] == "corpus/reciprocal-rank-fusion.md"
    assert top.id == top.metadata["chunk_id"] and top.metadata["rank"] == 1
    assert "bm25" in top.metadata["scores_by_source"]
    assert top.page_content.startswith("# Reciprocal rank fusion")
    filtered = TrawlRetriever(trawl=t, top_k=5,
                              filters={"title": "Stop words"}).invoke("frequent words")
    assert [d.metadata["title"] for d in filtered] == ["Stop words"]


async def test_langchain_retriever_async(t: Trawl) -> None:
    pytest.importorskip("langchain_core")
    from trawl.integrations.langchain import TrawlRetriever

    docs = await TrawlRetriever(trawl=t, top_k=2).ainvoke("MaxSim late interaction ColBERT")
    assert docs[0].metadata["doc_id"] == "corpus/late-interaction-colbert.md"


def test_llama_index_retriever(t: Trawl) -> None:
    pytest.importorskip("llama_index.core")
    from llama_index.core.retrievers import BaseRetriever

    from trawl.integrations.llama_index import TrawlLlamaIndexRetriever

    retriever = TrawlLlamaIndexRetriever(t, top_k=3)
    assert isinstance(retriever, BaseRetriever)
    nodes = retriever.retrieve("reciprocal rank fusion constant k")
    assert len(nodes) == 3
    top = nodes[0]
    assert top.node.ref_doc_id == "corpus/reciprocal-rank-fusion.md"
    assert top.node.node_id == top.node.metadata["chunk_id"]
    assert top.score == pytest.approx(top.node.metadata["score"])
    assert top.node.start_char_idx == 0
    assert top.node.get_content().startswith("# Reciprocal rank fusion")


async def test_llama_index_retriever_async(t: Trawl) -> None:
    pytest.importorskip("llama_index.core")
    from trawl.integrations.llama_index import TrawlLlamaIndexRetriever

    nodes = await TrawlLlamaIndexRetriever(t, top_k=2).aretrieve("binary quantization Hamming")
    assert nodes[0].node.ref_doc_id == "corpus/vector-quantization.md"


def test_missing_framework_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_core", None)  # makes the import fail
    monkeypatch.setitem(sys.modules, "langchain_core.callbacks", None)
    monkeypatch.delitem(sys.modules, "trawl.integrations.langchain", raising=False)
    import importlib

    with pytest.raises(trawl.MissingDependencyError, match="langchain-core"):
        importlib.import_module("trawl.integrations.langchain")
