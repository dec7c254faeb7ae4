"""SIGKILL during the exact index's multi-file save (vectors .npy, chunk table, manifest).

A child process writes steps (each one write: an upsert of new rows and of rows that
replace the previous step's, or every third step a delete) to a real index folder and
reports each step once it returned; it is killed after a random number of steps plus a
random delay, so kills land inside saves. The folder must then open at the last reported
step or the one in flight (never a mix of two writes), with hits identical to an in-memory
index given the same steps, and take new writes. The chunk layout switches from one JSON
file to a chunk table at ``TABLE_ROWS`` rows (at step 4), so kills land in both kinds of
save, in the switch, and in saves that copy kept table rows and move replaced ones.
Set TRAWL_EXACT_CRASH_TRIALS for more trials.
"""

from __future__ import annotations

import os
import random
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.plugins.ingest_support import REPO, python_child
from trawl import ComponentContext
from trawl.builtin import ExactIndex
from trawl.components import IndexQuery
from trawl.filters import parse_filter
from trawl.models import Chunk

TRIALS = int(os.environ.get("TRAWL_EXACT_CRASH_TRIALS", "5"))
ROWS, DIM = 1000, 64  # a step's rows (a save takes ~0.1 s here: kills land inside it)
TABLE_ROWS = 2500  # trawl.exact_store.TABLE_MIN_ROWS in the child and the test

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {repo!r})
    from pathlib import Path
    import trawl.exact_store
    from tests.reliability.test_exact_crash import TABLE_ROWS, open_index, step

    trawl.exact_store.TABLE_MIN_ROWS = TABLE_ROWS
    index = open_index(Path({folder!r}))
    for k in range(1, 1000):
        step(index, k)
        print(f"step {{k}}", flush=True)
""")


def open_index(folder: Path | None) -> ExactIndex:
    return ExactIndex(ExactIndex.Config(), ComponentContext(
        name="exact", dim=DIM, metric="cosine", storage_dir=folder))


def step(index: ExactIndex, k: int) -> None:
    """Step ``k``, one write: every third step deletes some documents of step ``k - 2``
    (a compacting save); the others upsert ``ROWS`` rows, the first 100 replacing rows of
    step ``k - 1`` (same ids, new text, metadata and vector)."""
    if k % 3 == 0:
        index.delete([f"s{k - 2}-{j}" for j in range(0, ROWS, 7)])
        return
    rng = np.random.default_rng(k)
    doc = [f"s{k - 1}-{j}" if j < 100 and k > 1 else f"s{k}-{j}" for j in range(ROWS)]
    chunks = [Chunk(id=f"{d}#0", doc_id=d, text=f"step {k} row {j}",
                    metadata={"k": k, "even": j % 2 == 0}) for j, d in enumerate(doc)]
    index.upsert(chunks, rng.normal(size=(ROWS, DIM)).astype(np.float32))


def _answers(index: ExactIndex) -> list[Any]:
    rng = np.random.default_rng(99)
    out: list[Any] = [index.count(), sorted(index.doc_ids())]
    for _ in range(3):
        q = IndexQuery(text="", vector=rng.normal(size=DIM).astype(np.float32))
        for f in (None, {"field": "even", "op": "=", "value": True}):
            out.append([h.model_dump() for h in index.search(
                q, 10, None if f is None else parse_filter(f))])
    return out


def _kill_during_steps(folder: Path, steps: int, delay_s: float) -> int:
    """Run the child until it reported ``steps`` steps, wait ``delay_s``, SIGKILL it;
    returns the last step it reported before it died (it goes on during the wait)."""
    code = CHILD.format(repo=str(REPO), folder=str(folder))
    reported = 0
    with python_child(code) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            reported = int(line.split()[1])
            if reported >= steps:
                time.sleep(delay_s)
                proc.send_signal(signal.SIGKILL)
                break
        proc.wait(timeout=60)
        for line in proc.stdout:  # what it printed while we waited
            reported = int(line.split()[1])
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL, f"child died by itself: {err[-2000:]}"
    return reported


def test_sigkill_during_saves_leaves_the_last_write_or_the_one_in_flight(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trawl.exact_store

    monkeypatch.setattr(trawl.exact_store, "TABLE_MIN_ROWS", TABLE_ROWS)
    rng = random.Random(20261208)
    reference = open_index(None)
    done = 0
    states: dict[int, list[Any]] = {0: _answers(reference)}
    landed, inside = set(), 0
    for trial in range(TRIALS):
        folder = tmp_path / f"t{trial}"
        reported = _kill_during_steps(folder, rng.randint(1, 6), rng.uniform(0.0, 0.1))
        inside += len({p.name.split(".")[0] for p in folder.iterdir()}) > 3  # a save's leftovers
        while done < reported + 1:  # the states the folder may hold: reported, or one more
            done += 1
            step(reference, done)
            states[done] = _answers(reference)
        reopened = open_index(folder)
        got = _answers(reopened)
        held = [k for k in (reported, reported + 1) if states[k] == got]
        assert held, f"trial {trial}: the folder matches neither step {reported} nor the next"
        landed.add(held[0] - reported)
        # the next save works after the crash and removes what the killed save left
        step(reopened, 500)
        names = {p.name.split(".")[0] for p in folder.iterdir()}
        assert len(names) == 3, f"trial {trial}: files of several writes left: {sorted(names)}"
        assert _answers(open_index(folder)) == _answers(reopened)
    print(f"exact crash trials: {TRIALS}, {inside} killed inside a save; the folder held "
          f"the reported step (0) / the one in flight (1): {sorted(landed)}")
