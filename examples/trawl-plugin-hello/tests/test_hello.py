"""The plugin's own tests: trawl's conformance kits plus behaviour specific to it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from trawl_plugin_hello.ini import IniReader
from trawl_plugin_hello.phrase_boost import PhraseBoostReranker
from trawl_plugin_hello.tfidf import TfidfIndex

import trawl
from trawl import Chunk, ComponentContext, Hit, IndexQuery, Trawl
from trawl.testing import IndexContract, ReaderContract, RerankerContract


class TestTfidfIndex(IndexContract):
    @pytest.fixture
    def make_index(self, tmp_path: Path) -> Callable[..., TfidfIndex]:
        def make(dim: int = 8, metric: str = "cosine", storage: bool = True) -> TfidfIndex:
            ctx = ComponentContext(name="tfidf", dim=dim, metric=metric,  # type: ignore[arg-type]
                                   storage_dir=tmp_path / "tfidf" if storage else None)
            return TfidfIndex(TfidfIndex.Config(), ctx)

        return make


class TestPhraseBoost(RerankerContract):
    @pytest.fixture
    def reranker(self) -> PhraseBoostReranker:
        return PhraseBoostReranker(PhraseBoostReranker.Config(),
                                   ComponentContext(name="phrase-boost"))


class TestIniReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> IniReader:
        return IniReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("setup.cfg", b"[metadata]\nname = hello\n\n[options]\nzip_safe = false\n")]

    @pytest.fixture
    def bad_files(self) -> list[tuple[str, bytes]]:
        return [("broken.ini", b"key without a section\n"), ("latin.ini", b"[a]\nb = \xe9\n")]


def test_ini_sections_become_chunks() -> None:
    from trawl.chunking import chunk_document
    from trawl.components import word_spans

    src = trawl.SourceFile(path="/x/app.ini", data=b"[db]\nhost = a\n[cache]\nsize = 2\n",
                           doc_id="x/app.ini")
    (doc,) = IniReader().read(src).documents
    chunks = chunk_document(doc, word_spans, 100, 0)
    assert [(c.metadata["section"], c.text) for c in chunks] == [
        ("db", "[db]\nhost = a\n\n"), ("cache", "[cache]\nsize = 2")]


def _hit(i: int, text: str) -> Hit:
    return Hit(doc_id=f"d{i}", chunk_id=f"d{i}#0", score=1.0 / (i + 1), rank=i + 1, text=text)


def test_phrase_boost_moves_exact_phrases_up() -> None:
    rr = PhraseBoostReranker(PhraseBoostReranker.Config(), ComponentContext(name="pb"))
    hits = [_hit(0, "rank and fusion appear apart"), _hit(1, "nothing here"),
            _hit(2, "Reciprocal Rank-Fusion, merged lists")]
    out = rr.rerank('"rank fusion"', hits)
    assert [h.doc_id for h in out] == ["d2", "d0", "d1"]
    assert out[0].scores_by_source["pb"].rank == 1
    # without quotes the whole query counts double, word pairs once
    out = rr.rerank("reciprocal rank fusion", hits, top_k=2)
    assert [h.doc_id for h in out] == ["d2", "d0"]


def test_tfidf_prefers_rare_terms() -> None:
    index = TfidfIndex(TfidfIndex.Config(), ComponentContext(name="t"))
    index.upsert([Chunk(id=f"c{i}#0", doc_id=f"c{i}", text=t) for i, t in enumerate(
        ["the cat sat", "the dog sat", "the quokka smiled"])])
    hits = index.search(IndexQuery(text="the quokka"), 3)
    assert hits[0].doc_id == "c2" and len(hits) == 3
    assert index.search(IndexQuery(text="zebra"), 3) == []


def test_config_is_validated_with_the_plugin_named() -> None:
    host = trawl.PluginHost(entry_points=False,
                            plugins=[("hello", __import__("trawl_plugin_hello"))])
    with pytest.raises(trawl.ConfigError, match=r"phrase-boost.*boost"):
        host.registry.validate_config("reranker", "phrase-boost", {"boost": -1})
    with pytest.raises(trawl.ConfigError, match=r"stemmer.*Extra inputs"):
        host.registry.validate_config("index", "tfidf", {"stemmer": "porter"})


def test_a_pipeline_of_plugin_components(tmp_path: Path) -> None:
    host = trawl.PluginHost(entry_points=False,
                            plugins=[("hello", __import__("trawl_plugin_hello"))])
    pipeline = Path(__file__).resolve().parents[1] / "pipeline.toml"
    with Trawl.open(tmp_path / "idx", pipeline=str(pipeline), host=host,
                    show_progress=False) as t:
        t.add([{"id": "a", "text": "Rank fusion merges lists."},
               {"id": "b", "text": "Fusion of rank lists, rank by rank."},
               {"id": "c", "text": "Unrelated text about tides."}])
        hits = t.search('"rank fusion"', top_k=2)
        assert [h.doc_id for h in hits] == ["a", "b"]
        assert "phrase-boost" in hits[0].scores_by_source
    with Trawl.open(tmp_path / "idx", host=host, show_progress=False) as t:  # persisted
        assert t.search("tides", top_k=1)[0].doc_id == "c"
