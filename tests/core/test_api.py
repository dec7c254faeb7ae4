from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import trawl
from tests.conftest import HASHING_PIPELINE
from trawl import Document, Trawl
from trawl.errors import ConfigError, IndexLockedError, InputError

DOCS = [
    Document(id="cats", text="Cats are small carnivorous mammals that purr.",
             metadata={"lang": "en", "year": 2020, "title": "Cats", "path": "a/cats.md"}),
    Document(id="dogs", text="Dogs are loyal companions and bark at strangers.",
             metadata={"lang": "en", "year": 2022, "title": "Dogs", "path": "a/dogs.md"}),
    Document(id="katzen", text="Katzen sind kleine Raubtiere und schnurren.",
             metadata={"lang": "de", "year": 2021, "title": "Katzen", "path": "b/katzen.md"}),
]


def _open(path: Path, host: trawl.PluginHost) -> Trawl:
    return Trawl.open(path, pipeline=HASHING_PIPELINE, host=host, show_progress=False)


def test_add_search_filter_delete(host: trawl.PluginHost, tmp_path: Path) -> None:
    with _open(tmp_path / "i", host) as t:
        result = t.add(DOCS)
        assert (result.added, result.unchanged, result.chunks) == (3, 0, 3)
        hits = t.search("cats purr", top_k=2)
        assert hits[0].doc_id == "cats" and hits[0].rank == 1
        assert hits[0].scores_by_source["dense"].rank == 1
        assert hits[0].metadata["title"] == "Cats"
        assert [h.doc_id for h in t.search("mammals", 5, {"lang": "de"})] == ["katzen"]
        assert t.delete(["cats"]) == 1
        assert all(h.doc_id != "cats" for h in t.search("cats purr", 5))
        assert t.stats()["documents"] == 2


def test_incremental_add_skips_unchanged_and_updates_changed(host: trawl.PluginHost,
                                                             tmp_path: Path) -> None:
    with _open(tmp_path / "i", host) as t:
        t.add(DOCS)
        again = t.add(DOCS)
        assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
        changed = Document(id="dogs", text="Dogs howl at the moon.", metadata=DOCS[1].metadata)
        r = t.add([changed])
        assert (r.added, r.updated) == (0, 1)
        assert t.search("howl moon", 1)[0].doc_id == "dogs"
        assert t.pipeline.retrievers["dense"].index.count() == 3


def test_reopen_keeps_documents_and_pipeline(host: trawl.PluginHost, tmp_path: Path) -> None:
    with _open(tmp_path / "i", host) as t:
        t.add(DOCS)
    with Trawl.open(tmp_path / "i", host=host, show_progress=False) as t:
        assert t.pipeline.config.name == "hashing"
        assert t.search("loyal companions", 1)[0].doc_id == "dogs"
    other = {"name": "x", "retrievers": [{"name": "other", "index": "exact",
                                          "encoder": "hashing"}]}
    with pytest.raises(ConfigError, match="built with pipeline 'hashing'"):
        Trawl.open(tmp_path / "i", pipeline=other, host=host)


def test_second_process_gets_a_clear_lock_error(host: trawl.PluginHost, tmp_path: Path) -> None:
    import subprocess
    import sys

    with _open(tmp_path / "i", host):
        code = ("import trawl, sys\n"
                "try:\n    trawl.Trawl.open(sys.argv[1])\n"
                "except trawl.IndexLockedError as e:\n    print('LOCKED', e)\n")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "i")],
                             capture_output=True, text=True, check=True)
        assert "LOCKED" in out.stdout and str(tmp_path / "i") in out.stdout
    assert IndexLockedError


def test_repair_rolls_back_an_unfinished_batch(host: trawl.PluginHost, tmp_path: Path) -> None:
    with _open(tmp_path / "i", host) as t:
        t.add(DOCS[:2])
        # simulate a crash after the index write but before the manifest commit
        extra = Document(id="ghost", text="a half written document")
        chunks = t.chunk(extra)
        t.manifest.mark([("ghost", "h", None, [c.id for c in chunks])], "pending")
        r = t.pipeline.retrievers["dense"]
        r.write(chunks, r.encode_chunks(chunks))
    with _open(tmp_path / "i", host) as t:
        assert t.manifest.doc_ids() == {"cats", "dogs"}
        assert t.pipeline.retrievers["dense"].index.doc_ids() == {"cats", "dogs"}
        assert t.manifest.pending() == []


def test_bad_queries(host: trawl.PluginHost) -> None:
    t = Trawl.memory(HASHING_PIPELINE, host=host)
    t.add(DOCS)
    assert t.search("   ") == []
    with pytest.raises(InputError):
        t.search("cats", top_k=0)
    with pytest.raises(InputError):
        t.search(123)  # type: ignore[arg-type]
    assert t.search("x" * 100_000, 1)  # huge query is clipped, not an error
    assert t.search("🐈 猫 \x00\x07", 3) is not None


def test_context_respects_budget_and_cites(host: trawl.PluginHost) -> None:
    t = Trawl.memory(HASHING_PIPELINE, host=host)
    t.add(DOCS)
    ctx = t.context("cats", max_tokens=40, top_k=3)
    assert ctx.text.startswith("[1] Cats — a/cats.md")
    assert ctx.tokens <= 40 and ctx.hits[0].doc_id == "cats"
    assert t.pipeline.primary_encoder() is not None
    big = t.context("cats", max_tokens=10_000, top_k=3)
    assert len(big.hits) == 3 and "[3]" in big.text


def test_asearch(host: trawl.PluginHost) -> None:
    t = Trawl.memory(HASHING_PIPELINE, host=host)
    t.add(DOCS)
    hits = asyncio.run(t.asearch("dogs bark", 1))
    assert hits[0].doc_id == "dogs"


def test_concurrent_searches_while_ingesting_and_deleting(host: trawl.PluginHost,
                                                          tmp_path: Path) -> None:
    t = _open(tmp_path / "i", host)
    t.add([Document(id=f"base{i}", text=f"base document number {i} about topic {i % 7}")
           for i in range(50)])
    errors: list[BaseException] = []
    deleted: set[str] = set()
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                for h in t.search("document topic", 20):
                    assert h.doc_id not in deleted or not h.doc_id.startswith("base")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(8)]
    for th in threads:
        th.start()
    for i in range(20):
        t.add([Document(id=f"new{i}", text=f"new document {i} about topic {i}")])
        t.delete([f"base{i}"])
        deleted.add(f"base{i}")  # recorded only after delete() returned
    stop.set()
    for th in threads:
        th.join()
    t.close()
    assert not errors, errors[:1]


def test_per_call_trace_is_this_calls_timings(host: trawl.PluginHost) -> None:
    import threading

    t = trawl.Trawl.memory(HASHING_PIPELINE, host=host)
    t.add([{"id": str(i), "text": f"note {i} about pumps and valves"} for i in range(50)])
    traces: dict[int, trawl.SearchTrace] = {}

    def worker(n: int) -> None:
        tr = trawl.SearchTrace()
        t.search(f"pumps {n}", 5, trace=tr)
        traces[n] = tr

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(traces) == 8 and len({id(tr) for tr in traces.values()}) == 8
    for tr in traces.values():
        assert list(tr.per_source) == ["dense"] and tr.per_source["dense"] >= 5
        assert tr.total_ms > 0
    assert t.last_trace in traces.values()
