"""Kill ingestion mid-way (SIGKILL: no cleanup runs), reopen, and check every index agrees
with the manifest; then finish the run and check every file is indexed exactly once."""

from __future__ import annotations

import os
import random
import signal
import textwrap
import time
from pathlib import Path

import pytest

from tests.plugins.ingest_support import REPO, host, make_corpus, pipeline, python_child
from trawl import Trawl
from trawl.ingest import index_paths

N_FILES = 300

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from tests.plugins.ingest_support import host, pipeline
    from trawl import Trawl
    from trawl.ingest import index_paths

    h = host()
    t = Trawl.open({index!r}, pipeline=pipeline(h), host=h, show_progress=False)
    real = t._add_batch

    def announcing(*args, **kwargs):
        real(*args, **kwargs)
        print("batch", flush=True)

    t._add_batch = announcing
    index_paths(t, [{corpus!r}], batch_size=8, show_progress=False)
    print("done", flush=True)
""")


def _kill_after(index: Path, corpus: Path, batches: int, jitter_s: float) -> int:
    """Run ingestion in a child; SIGKILL it ``jitter_s`` after its ``batches``-th batch."""
    code = CHILD.format(repo=str(REPO), index=str(index), corpus=str(corpus))
    seen = 0
    with python_child(code, env={**os.environ}) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("batch"):
                seen += 1
                if seen >= batches:
                    time.sleep(jitter_s)
                    proc.send_signal(signal.SIGKILL)
                    break
            elif line.startswith("done"):
                break
        proc.wait(timeout=60)
    if seen < batches:
        err = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"child finished/died after {seen} batches (rc={proc.returncode}): {err}")
    return proc.returncode


def _assert_consistent(t: Trawl) -> set[str]:
    assert t.manifest.pending() == []
    committed = t.manifest.doc_ids()
    for name, r in t.pipeline.retrievers.items():
        assert r.index.doc_ids() == committed, f"index {name!r} disagrees with the manifest"
    return committed


@pytest.mark.slow
def test_sigkill_mid_ingest_then_repair_and_resume(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    files = make_corpus(corpus, N_FILES)
    expected = {f"corpus/{p.relative_to(corpus).as_posix()}" for p in files}
    index = tmp_path / "index"
    rng = random.Random(7)
    counts = []
    for batches in (3, 14):  # two kills at different depths; the second resumes the first
        rc = _kill_after(index, corpus, batches, jitter_s=rng.uniform(0.0, 0.02))
        assert rc == -signal.SIGKILL
        h = host()
        with Trawl.open(index, host=h, show_progress=False) as t:  # runs repair()
            committed = _assert_consistent(t)
            assert committed <= expected
            counts.append(len(committed))
    assert 0 < counts[0] <= counts[1] < N_FILES

    h = host()
    with Trawl.open(index, host=h, show_progress=False) as t:
        assert set(t.pipeline.retrievers) >= {"words", "grams"}
        report = index_paths(t, [corpus], show_progress=False)
        assert report.added + report.unchanged == N_FILES and not report.skipped
        assert report.updated == 0
        assert _assert_consistent(t) == expected
        for name, r in t.pipeline.retrievers.items():
            assert r.index.count() == N_FILES, f"{name}: duplicate or missing chunks"
        for i in (0, 1, 150, N_FILES - 1):
            hits = t.search(f"marker{i}", top_k=5, retrievers=["words"])
            # hashed buckets may collide: the note is among the best few, and only once
            assert [h.doc_id for h in hits[:3]].count(f"corpus/sub{i % 5}/note-{i:04d}.md") == 1
            assert len({h.chunk_id for h in hits}) == len(hits)
        again = index_paths(t, [corpus], show_progress=False)
        assert (again.added, again.updated, again.unchanged) == (0, 0, N_FILES)


def test_pipeline_for_the_crash_test_builds() -> None:
    h = host()
    with Trawl.memory(pipeline(h), host=h) as t:
        assert {"words", "grams"} <= set(t.pipeline.retrievers)
