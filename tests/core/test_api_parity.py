"""The API LLM apps need besides search: progress, get/documents, batches, async, metadata."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import trawl
from tests.conftest import HASHING_PIPELINE, HashingPlugin
from trawl import Chunk, Document, Index, Trawl
from trawl.errors import InputError, UnknownDocumentError
from trawl.testing import ExactIndex

DOCS = [
    Document(id=f"d{i}", text=f"document number {i} about topic {i % 3}",
             metadata={"lang": ["en", "de"][i % 2], "n": i})
    for i in range(10)
]


def test_add_reports_progress_done_total(host: trawl.PluginHost) -> None:
    t = Trawl.memory(HASHING_PIPELINE, host=host)
    t.add(DOCS[:4])
    calls: list[tuple[int, int]] = []
    t.add(DOCS, batch_size=3, on_progress=lambda done, total: calls.append((done, total)))
    # 4 unchanged count as done at once; 6 new ones in batches of 3
    assert calls == [(4, 10), (7, 10), (10, 10)]
    calls.clear()
    t.add(DOCS, on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(10, 10)]


def test_index_paths_reports_byte_progress(host: trawl.PluginHost, tmp_path: Path) -> None:
    from trawl.ingest import index_paths

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}.md").write_text(f"# File {i}\n\nsome words about file {i}\n" * (i + 1))
    total = sum(p.stat().st_size for p in folder.iterdir())
    calls: list[tuple[int, int]] = []
    with Trawl.open(tmp_path / "idx", pipeline=HASHING_PIPELINE, host=host,
                    show_progress=False) as t:
        index_paths(t, folder, show_progress=False,
                    on_progress=lambda d, n: calls.append((d, n)))
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert all(n == total for _, n in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


# -- get / documents / update_metadata ----------------------------------------------------
HYBRID = {"name": "hybrid-hashing", "chunking": {"max_tokens": 12, "overlap": 3},
          "retrievers": [{"name": "bm25", "index": "bm25"},
                         {"name": "dense", "index": "exact", "encoder": "hashing"}]}
LONG = [Document(id=f"long{i}", text=" ".join(f"word{i}x{j}." if j % 7 == 6 else
                                              f"word{i}x{j}" for j in range(60)),
                 metadata={"title": f"Long {i}", "lang": "en", "year": 2000 + i})
        for i in range(3)]


class PlainExact(ExactIndex):
    """An index without an in-place metadata update: Trawl must re-encode for it."""

    update_metadata = Index.update_metadata  # type: ignore[assignment]


class FailingMetadata(ExactIndex):
    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        raise RuntimeError("disk full")


class ExtraIndexes:
    @staticmethod
    @trawl.hookimpl
    def register_indexes(register: Any) -> None:
        register(PlainExact, name="plain-exact")
        register(FailingMetadata, name="failing-exact")


@pytest.fixture
def host() -> trawl.PluginHost:
    """The hashing encoder, the bm25 plugin and two test indexes; no entry points."""
    import trawl_bm25

    return trawl.PluginHost(entry_points=False, plugins=[
        ("hashing-test", HashingPlugin), ("bm25", trawl_bm25), ("extra", ExtraIndexes)])


def _count_calls(monkeypatch: pytest.MonkeyPatch, obj: Any, name: str) -> list[int]:
    calls: list[int] = []
    original = getattr(obj, name)

    def counted(texts: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(texts))
        return original(texts, *args, **kwargs)

    monkeypatch.setattr(obj, name, counted)
    return calls


def test_get_rebuilds_text_exactly_and_names_unknown_ids(host: trawl.PluginHost) -> None:
    t = Trawl.memory(HYBRID, host=host)
    t.add([*LONG, *DOCS])
    assert t.stats()["chunks"]["bm25"] > len(LONG) + len(DOCS)  # the long ones are chunked
    got = t.get(["long1", "d3", "long0"])
    assert [d.id for d in got] == ["long1", "d3", "long0"]
    assert got[0].text == LONG[1].text and got[2].text == LONG[0].text
    assert got[0].metadata == LONG[1].metadata and got[1].metadata == DOCS[3].metadata
    assert t.get("d2")[0].text == DOCS[2].text
    assert t.get([]) == []
    with pytest.raises(UnknownDocumentError, match=r"'nope'.*'gone'") as err:
        t.get(["d1", "nope", "gone"])
    assert err.value.ids == ["nope", "gone"] and isinstance(err.value, InputError)
    with pytest.raises(InputError, match="strings"):
        t.get([1])  # type: ignore[list-item]


def test_documents_lists_every_document_across_pages(host: trawl.PluginHost) -> None:
    t = Trawl.memory(HYBRID, host=host)
    t.add([*LONG, *DOCS])
    infos = list(t.documents(page_size=4))
    assert [i.id for i in infos] == sorted(d.id for d in [*LONG, *DOCS])
    by_id = {i.id: i for i in infos}
    assert by_id["long2"].chunks == len(t.chunk(LONG[2])) > 1
    assert by_id["d5"].chunks == 1 and by_id["d5"].metadata == DOCS[5].metadata
    assert by_id["long2"].metadata == LONG[2].metadata
    t.delete(["d5"])
    assert "d5" not in {i.id for i in t.documents()}
    with pytest.raises(InputError, match="page_size"):
        next(t.documents(page_size=0))


def test_update_metadata_reaches_every_index_without_encoding(
        host: trawl.PluginHost, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Trawl.open(tmp_path / "i", pipeline=HYBRID, host=host, show_progress=False) as t:
        t.add([*LONG, *DOCS])
        encoder = t.pipeline.primary_encoder()
        calls = _count_calls(monkeypatch, encoder, "encode_documents")
        doc = t.update_metadata("long1", {"lang": "xx", "year": None, "tier": 2})
        assert calls == []  # nothing re-encoded
        assert doc.metadata == {"title": "Long 1", "lang": "xx", "tier": 2}
        for name in ("bm25", "dense"):
            hits = t.search("word1x3 word1x40", 50, {"lang": "xx"}, retrievers=[name])
            assert hits and {h.doc_id for h in hits} == {"long1"}
            assert all(h.metadata["tier"] == 2 and "year" not in h.metadata for h in hits)
            assert not t.search("word1x3", 50, {"year": 2001}, retrievers=[name])
        assert t.get("long1")[0].text == LONG[1].text
    with Trawl.open(tmp_path / "i", host=host, show_progress=False) as t:  # durable
        assert t.get("long1")[0].metadata["lang"] == "xx"
        assert {h.doc_id for h in t.search("word1x3", 50, {"tier": 2})} == {"long1"}
        # the manifest hash changed: adding the original back restores it
        r = t.add([LONG[1]])
        assert (r.updated, r.unchanged) == (1, 0)
        assert t.get("long1")[0].metadata == LONG[1].metadata


def test_update_metadata_falls_back_to_encoding_for_other_indexes(
        host: trawl.PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline = {"name": "plain", "retrievers": [
        {"name": "dense", "index": "plain-exact", "encoder": "hashing"}]}
    t = Trawl.memory(pipeline, host=host)
    t.add(DOCS)
    calls = _count_calls(monkeypatch, t.pipeline.primary_encoder(), "encode_documents")
    t.update_metadata("d1", {"lang": "xx"})
    assert calls == [1]
    assert [h.doc_id for h in t.search("document", 10, {"lang": "xx"})] == ["d1"]


def test_update_metadata_failure_puts_the_other_indexes_back(host: trawl.PluginHost) -> None:
    pipeline = {"name": "two", "retrievers": [
        {"name": "good", "index": "exact", "encoder": "hashing"},
        {"name": "bad", "index": "failing-exact", "encoder": "hashing"}]}
    t = Trawl.memory(pipeline, host=host)
    t.add(DOCS)
    with pytest.raises(trawl.PluginRuntimeError, match=r"update_metadata.*disk full"):
        t.update_metadata("d1", {"lang": "xx"})
    assert not t.search("document", 10, {"lang": "xx"}, retrievers=["good"])
    assert t.get("d1")[0].metadata == DOCS[1].metadata
    assert t.add(DOCS).unchanged == len(DOCS)  # the manifest was not touched


def test_update_metadata_bad_input(host: trawl.PluginHost) -> None:
    t = Trawl.memory(HYBRID, host=host)
    t.add(DOCS)
    with pytest.raises(UnknownDocumentError, match="'nope'"):
        t.update_metadata("nope", {"a": 1})
    with pytest.raises(InputError, match="mapping"):
        t.update_metadata("d1", [("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(InputError, match="not JSON"):
        t.update_metadata("d1", {"a": object()})
    with pytest.raises(InputError, match="set by chunking"):
        t.update_metadata("d1", {"page_start": 3})
    assert t.get("d1")[0].metadata == DOCS[1].metadata


# -- search_batch and async ---------------------------------------------------------------
def test_search_batch_matches_search_and_encodes_once(
        host: trawl.PluginHost, monkeypatch: pytest.MonkeyPatch) -> None:
    t = Trawl.memory(HYBRID, host=host)
    t.add([*LONG, *DOCS])
    queries = ["document number 3", "word2x10", "   ", "topic 1 about", "word0x59."]
    want = [t.search(q, 4, {"lang": "en"}) for q in queries]
    calls = _count_calls(monkeypatch, t.pipeline.primary_encoder(), "encode_queries")
    got = t.search_batch(queries, 4, {"lang": "en"})
    assert calls == [4]  # one encoder call for the four non-blank queries
    assert got[2] == []
    assert [[(h.chunk_id, h.score) for h in hs] for hs in got] == [
        [(h.chunk_id, h.score) for h in hs] for hs in want]
    with pytest.raises(InputError, match="empty batch"):
        t.search_batch([])
    with pytest.raises(InputError, match="list of strings"):
        t.search_batch("one query")
    with pytest.raises(InputError, match=r"queries\[1\]"):
        t.search_batch(["ok", 3])  # type: ignore[list-item]


def test_async_variants(host: trawl.PluginHost) -> None:
    t = Trawl.memory(HYBRID, host=host)

    async def main() -> None:
        r = await t.aadd(DOCS)
        assert r.added == len(DOCS)
        batch = await t.asearch_batch(["document number 1", "topic 2"], 2)
        assert len(batch) == 2 and batch[0][0].doc_id == "d1"
        ctx = await t.acontext("document number 1", max_tokens=50)
        assert ctx.citations and ctx.tokens <= 50
        assert (await t.aupdate_metadata("d1", {"x": 1})).metadata["x"] == 1
        assert (await t.aget(["d1"]))[0].metadata["x"] == 1
        assert await t.adelete(["d1"]) >= 1
        with pytest.raises(UnknownDocumentError):
            await t.aget("d1")

    asyncio.run(main())


def test_a_filter_on_a_field_no_document_has_is_empty_on_every_retriever(
        host: trawl.PluginHost) -> None:
    t = Trawl.memory(HYBRID, host=host)
    t.add(DOCS)
    for retrievers in (["bm25"], ["dense"], None):
        assert t.search("document topic", 5, {"tenant": "acme"}, retrievers=retrievers) == []
        everything = t.search("document topic", 10, {"not": {"tenant": "acme"}},
                              retrievers=retrievers)
        assert len(everything) == len(t.search("document topic", 10, retrievers=retrievers))
