"""Writers don't starve (issue 22): a large document is encoded and written a slice of
``WRITE_SLICE_CHUNKS`` chunks at a time, the write lock released between slices, so a small
add during its ingest finishes in seconds and searches keep answering. Until it is
committed, no search returns it; a crash part-way leaves nothing of it."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import trawl
from tests.conftest import REPO, HashingPlugin
from trawl import Trawl
from trawl.api import WRITE_SLICE_CHUNKS

PIPELINE = {"name": "slices",
            "retrievers": [{"name": "bm25", "index": "bm25"},
                           {"name": "dense", "index": "exact", "encoder": "hashing"}],
            "chunking": {"max_tokens": 64, "overlap": 0}}


def _host() -> trawl.PluginHost:
    return trawl.PluginHost(plugins=[("hashing-test", HashingPlugin)])


def _big_text(words: int) -> str:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(5000)]
    return " ".join(rng.choice(vocab) for _ in range(words)) + " needle"


def test_small_add_and_searches_during_a_large_ingest() -> None:
    t = Trawl.memory(PIPELINE, host=_host())
    t.add([{"id": "old", "text": "needle in the old haystack"}])
    big = _big_text(600_000)  # ~3.5 MB, ~9,400 chunks
    done: dict[str, float] = {}

    def ingest() -> None:
        t.add([{"id": "big", "text": big}])
        done["big"] = time.perf_counter()

    worker = threading.Thread(target=ingest)
    worker.start()
    deadline = time.monotonic() + 120
    while not t._partial and time.monotonic() < deadline:  # slices are being written
        time.sleep(0.01)
    assert "big" in t._partial, "the large document is written slice by slice"
    started = time.perf_counter()
    t.add([{"id": "small", "text": "a small needle note"}])
    small_took = time.perf_counter() - started
    searches: list[float] = []
    while "big" not in done and len(searches) < 20:
        t0 = time.perf_counter()
        hits = t.search("needle", top_k=5)
        searches.append(time.perf_counter() - t0)
        assert "big" not in {h.doc_id for h in hits} or "big" in done  # never half of it
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    worker.join(300)
    assert small_took <= 2.0, f"a small add during the large ingest took {small_took:.2f}s"
    assert done["big"] > started + small_took, "the small add did not wait for the large one"
    assert searches and max(searches) <= 2.0, searches
    assert {"big", "small", "old"} <= {h.doc_id for h in t.search("needle", top_k=10)}
    chunks = t.stats()["chunks"]["dense"]
    assert chunks > 10 * WRITE_SLICE_CHUNKS
    assert t.get(["big"])[0].text == big


CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    import trawl
    from tests.conftest import HashingPlugin
    from tests.core.test_write_slices import PIPELINE, _big_text
    t = trawl.Trawl.open({folder!r}, pipeline=PIPELINE, attach=False, show_progress=False,
                         host=trawl.PluginHost(plugins=[("h", HashingPlugin)]))
    write = t.pipeline.write
    def counted(*args, **kwargs):
        write(*args, **kwargs)
        print("slice", flush=True)
    t.pipeline.write = counted
    t.add([{{"id": "big", "text": _big_text(200_000)}}])
    print("finished", flush=True)
""")


def test_a_crash_part_way_leaves_nothing_of_the_document(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    with Trawl.open(folder, pipeline=PIPELINE, host=_host(), attach=False) as t:
        t.add([{"id": "kept", "text": "needle kept here"}])
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(repo=str(REPO),
                                                                 folder=str(folder))],
                             stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert child.stdout is not None
    lines: list[str] = []
    for line in child.stdout:
        lines.append(line.strip())
        if lines.count("slice") == 3:
            child.send_signal(signal.SIGKILL)
            break
    child.wait(60)
    assert "finished" not in lines and lines.count("slice") == 3
    with Trawl.open(folder, host=_host(), attach=False) as t:
        assert [d.id for d in t.documents()] == ["kept"]
        assert t.stats()["chunks"] == {"bm25": 1, "dense": 1}
        found: list[Any] = t.search("needle w1 w2", top_k=10)
        assert {h.doc_id for h in found} == {"kept"}


def test_long_texts_are_tokenized_in_segments_with_the_same_spans() -> None:
    """A native tokenizer holds the GIL for a whole call; chunking a large document hands
    it at most ``SEGMENT_CHARS`` at a time, cut at whitespace, and gets the same spans."""
    from trawl.chunking import SEGMENT_CHARS, segmented
    from trawl.components import word_spans

    text = _big_text(60_000)
    assert len(text) > 5 * SEGMENT_CHARS
    calls: list[int] = []

    def spans(piece: str) -> list[tuple[int, int]]:
        calls.append(len(piece))
        return word_spans(piece)

    assert segmented(spans)(text) == word_spans(text)
    assert len(calls) > 5 and max(calls) <= SEGMENT_CHARS


def test_a_sliced_batch_is_one_durable_write_per_index(tmp_path: Path) -> None:
    """Indexes see one ``write_batch`` block per sliced batch: bm25 writes one delta file
    for it (not one fsynced file per slice), and the reopened index answers the same."""
    folder = tmp_path / "idx"
    text = _big_text(64 * (3 * WRITE_SLICE_CHUNKS) // 2)
    with Trawl.open(folder, pipeline=PIPELINE, host=_host(), attach=False) as t:
        t.add([{"id": "big", "text": text}])
        chunks = t.stats()["chunks"]["bm25"]
        assert chunks > WRITE_SLICE_CHUNKS  # it was written in slices
        deltas = sorted(p.name for p in (folder / "bm25").iterdir()
                        if p.name.startswith("delta-"))
        assert len(deltas) == 1, deltas
        before = [h.model_dump() for h in t.search("needle w1 w2 w3", top_k=20,
                                                   retrievers=["bm25"])]
    with Trawl.open(folder, host=_host(), attach=False) as t:
        assert t.stats()["chunks"]["bm25"] == chunks
        assert [h.model_dump() for h in t.search("needle w1 w2 w3", top_k=20,
                                                 retrievers=["bm25"])] == before


def test_cancel_between_slices_rolls_the_document_back() -> None:
    t = Trawl.memory(PIPELINE, host=_host())
    t.add([{"id": "kept", "text": "needle kept here"}])
    cancel = threading.Event()
    write = t.pipeline.write
    slices = []

    def counted(*args: Any, **kwargs: Any) -> None:
        write(*args, **kwargs)
        slices.append(1)
        cancel.set()  # a client went away after the first slice

    t.pipeline.write = counted  # type: ignore[method-assign]
    result = t.add([{"id": "big", "text": _big_text(60_000)}], cancel=cancel)
    assert result.cancelled and result.committed_ids == [] and not result.failed
    assert len(slices) == 1
    assert [d.id for d in t.documents()] == ["kept"]
    assert t.stats()["chunks"] == {"bm25": 1, "dense": 1}


def test_exact_writes_its_file_once_per_sliced_batch(tmp_path: Path,
                                                     monkeypatch: Any) -> None:
    import trawl.exact_store as exact_store

    writes: list[str] = []
    real = exact_store.atomic_write_bytes

    def counted(path: Path, data: bytes) -> None:  # the manifest, switched once per save
        writes.append(path.name)
        real(path, data)

    monkeypatch.setattr(exact_store, "atomic_write_bytes", counted)
    folder = tmp_path / "idx"
    with Trawl.open(folder, pipeline=PIPELINE, host=_host(), attach=False) as t:
        t.add([{"id": "big", "text": _big_text(64 * 4 * WRITE_SLICE_CHUNKS)}])
        chunks = t.stats()["chunks"]["dense"]
        assert chunks > 3 * WRITE_SLICE_CHUNKS
        assert writes.count("exact.json") == 1
    with Trawl.open(folder, host=_host(), attach=False) as t:
        assert t.stats()["chunks"]["dense"] == chunks
