"""The frameworks' own suites against trawl's adapters: ``langchain-tests``'
``RetrieversIntegrationTests`` for ``TrawlRetriever``, and the ``similarity_top_k``
convention of LlamaIndex retrievers."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tests.plugins.ingest_support import REPO
from trawl import Trawl
from trawl.errors import InputError
from trawl.ingest import index_paths

pytest.importorskip("langchain_core")
standard = pytest.importorskip("langchain_tests.integration_tests")

from trawl.integrations.langchain import TrawlRetriever  # noqa: E402


@functools.cache
def corpus() -> Trawl:
    """The example corpus in an in-memory BM25 index, built once for the module."""
    t = Trawl.memory("bm25")
    index_paths(t, [REPO / "examples" / "corpus"], show_progress=False)
    return t


class TestTrawlRetrieverStandard(standard.RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[TrawlRetriever]:
        return TrawlRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"trawl": corpus()}

    @property
    def retriever_query_example(self) -> str:
        return "how does reciprocal rank fusion combine rankings"


def test_k_top_k_and_per_call_options() -> None:
    t = corpus()
    assert TrawlRetriever(trawl=t, top_k=2).k == 2
    r = TrawlRetriever(trawl=t, k=5)
    assert r.top_k == 5
    assert len(r.invoke("stemming", top_k=2)) == 2
    only = r.invoke("frequent words", filters={"title": "Stop words"})
    assert {d.metadata["title"] for d in only} == {"Stop words"}
    with pytest.raises(InputError, match="unknown TrawlRetriever option"):
        r.invoke("x", kk=3)
    with pytest.raises(InputError, match="k must be"):
        r.invoke("x", k=0)
    with pytest.raises(InputError, match="not both"):
        r.invoke("x", k=1, top_k=2)


def test_llama_index_similarity_top_k() -> None:
    pytest.importorskip("llama_index.core")
    from trawl.integrations.llama_index import TrawlLlamaIndexRetriever

    t = corpus()
    for kwargs, n in (({"similarity_top_k": 3}, 3), ({"top_k": 2}, 2), ({}, 4)):
        r = TrawlLlamaIndexRetriever(t, **kwargs)
        assert r.similarity_top_k == r.top_k == n
        assert len(r.retrieve("reciprocal rank fusion")) == n
    with pytest.raises(InputError, match="not both"):
        TrawlLlamaIndexRetriever(t, similarity_top_k=1, top_k=2)
    with pytest.raises(InputError, match="similarity_top_k must be"):
        TrawlLlamaIndexRetriever(t, similarity_top_k=0)
