"""SIGKILL while a BM25 snapshot (version 3: mapped .npy postings + chunk table) is written.

Each trial's child opens the same folder, commits a batch of upserts and a delete (each
durable when it returns), then folds everything into a new snapshot. The parent kills it
as the k-th snapshot file is being written (k random: the vocabulary, any of the chunk
table's files, the postings or the manifest), after a random short delay. The folder must
then reopen to exactly the committed state (the same hits, scores and ranks as an
in-memory index given the same operations), or raise a typed error — never lose a
committed write silently.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.ingest_support import REPO
from trawl.components import ComponentContext, IndexQuery
from trawl.errors import TrawlError
from trawl.models import Chunk

TRIALS = int(os.environ.get("TRAWL_CRASH_TRIALS", "20"))
BATCH = 1500
QUERIES = ["alpha", "beta w7", "gamma delta", "word12 alpha", "ünï"]

CHILD = textwrap.dedent("""
    import sys
    from contextlib import contextmanager
    sys.path.insert(0, {repo!r})
    import trawl.chunktable, trawl.storage, trawl_bm25.store
    from tests.reliability.test_crash_snapshot import batch, make

    real = trawl.storage.atomic_writer
    announce = False

    @contextmanager
    def announcing(path):
        with real(path) as fh:
            if announce:
                print("file " + path.name, flush=True)
            yield fh

    trawl.storage.atomic_writer = announcing
    trawl.chunktable.atomic_writer = announcing
    trawl_bm25.store.atomic_writer = announcing
    index = make({folder!r})
    index.upsert(batch({trial}))
    index.delete(["doc{trial}-3", "doc{deleted}-5"])
    print("committed", flush=True)
    announce = True
    index.flush()
    print("done", flush=True)
""")


def batch(trial: int) -> list[Chunk]:
    """The chunks trial ``trial`` adds (unicode, metadata, texts long enough to span many
    of the table's 4 KiB blocks)."""
    return [Chunk(id=f"t{trial}-{i}", doc_id=f"doc{trial}-{i // 4}",
                  text=f"alpha beta w{i % 50} word{i % 13} " * (1 + i % 5) + "ünï gamma" * (i % 2),
                  index=i % 4, start=i, end=i + 9,
                  metadata={"trial": trial, "i": i, "title": f"Titel {i} ü"})
            for i in range(BATCH)]


def make(folder: str | Path | None) -> Any:
    from trawl_bm25.index import BM25Config, BM25Index

    # no compaction but the explicit flush: the snapshot is the only write in flight
    config = BM25Config(compact_min_chunks=10**9, max_delta_files=10**6)
    return BM25Index(config, ComponentContext(
        name="bm25", storage_dir=Path(folder) if folder is not None else None))


def _hits(index: Any) -> list[list[tuple[str, float, int]]]:
    return [[(h.chunk_id, h.score, h.rank) for h in index.search(IndexQuery(text=t), 30)]
            for t in QUERIES]


@pytest.mark.slow
def test_sigkill_during_a_snapshot_write_keeps_the_committed_state(tmp_path: Path) -> None:
    folder = tmp_path / "bm25"
    rng = random.Random(20261208)
    reference = make(None)  # the committed operations, replayed in memory
    killed = 0
    stages: list[int] = []
    for trial in range(max(TRIALS, 2)):
        deleted = rng.randrange(trial + 1)
        kill_at = rng.randint(1, 28)  # vocabulary, 20 table files, 6 .npy, manifest
        code = CHILD.format(repo=str(REPO), folder=str(folder), trial=trial, deleted=deleted)
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        committed = finished = False
        files = 0
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                if line.startswith("committed"):
                    committed = True
                elif line.startswith("file "):
                    files += 1
                    if files >= kill_at:
                        if rng.random() < 0.5:
                            time.sleep(rng.uniform(0, 0.03))
                        proc.send_signal(signal.SIGKILL)
                        break
                elif line.startswith("done"):
                    finished = True
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if not (committed and (finished or proc.returncode == -signal.SIGKILL)):
            err = proc.stderr.read() if proc.stderr else ""
            pytest.fail(f"trial {trial}: child failed (rc={proc.returncode}): {err[-2000:]}")
        killed += not finished
        stages.append(files if not finished else 0)
        reference.upsert(batch(trial))
        reference.delete([f"doc{trial}-3", f"doc{deleted}-5"])
        try:
            reopened = make(folder)
        except TrawlError as exc:  # allowed: a typed error, never a silent loss
            pytest.fail(f"trial {trial}: the committed state did not reopen: {exc}")
        assert reopened.count() == reference.count(), f"trial {trial}"
        assert reopened.doc_ids() == reference.doc_ids(), f"trial {trial}"
        assert _hits(reopened) == _hits(reference), f"trial {trial}: hits differ"
        ids = [f"t{trial}-{i}" for i in range(0, BATCH, 97)]
        assert reopened.get_chunks(ids) == reference.get_chunks(ids)
    print(f"snapshot crash trials: {killed} killed, at files {stages} (0: finished)")
    assert killed >= 1
    final = make(folder)
    final.flush()
    assert _hits(make(folder)) == _hits(reference)
    assert not any(p.name.endswith(".tmp") for p in folder.iterdir())
