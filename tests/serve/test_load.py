"""A served index under load and under SIGKILL, through real server processes.

- 8 client threads search for a bounded time while another client adds and deletes:
  0 errors, and no search that started after a ``delete`` returned names that document.
- SIGKILL the server while clients are adding, restart it: every add that returned is
  there, and both indexes of the pipeline hold exactly the manifest's documents.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

import trawl
from tests.serve.support import TWO_BM25, ServerProcess, bm25_docs, serving
from trawl import Trawl
from trawl.errors import ServerUnavailableError

pytest.importorskip("fastapi")
LOAD_SECONDS = float(os.environ.get("TRAWL_SERVE_LOAD_SECONDS", "4"))


def test_eight_searchers_and_a_writer(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    with Trawl.open(idx, pipeline="bm25", show_progress=False, attach=False) as t:
        t.add(bm25_docs(200, word="needle"))
    with serving(idx) as server:
        deleted_at: dict[str, float] = {}
        errors: list[str] = []
        violations: list[str] = []
        searches = [0] * 8
        stop = threading.Event()

        def searcher(n: int) -> None:
            with trawl.connect(server.url) as c:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        hits = c.search("needle", top_k=1000)
                    except Exception as exc:  # counted, not raised: the test reports them
                        errors.append(f"searcher {n}: {type(exc).__name__}: {exc}")
                        continue
                    searches[n] += 1
                    for h in hits:
                        gone = deleted_at.get(h.doc_id)
                        if gone is not None and started > gone:
                            violations.append(f"{h.doc_id} seen {started - gone:.4f}s "
                                              "after its delete returned")

        def writer() -> None:
            rng = random.Random(7)
            with trawl.connect(server.url) as c:
                i = 0
                while not stop.is_set():
                    try:
                        batch = bm25_docs(5, prefix=f"w{i}x", word="needle")
                        c.add(batch)
                        victims = [d["id"] for d in batch if rng.random() < 0.8]
                        c.delete(victims)
                        now = time.monotonic()
                        for v in victims:
                            deleted_at[v] = now
                        if rng.random() < 0.3:  # delete some of the original documents too
                            old = f"d{rng.randrange(200)}"
                            c.delete([old])
                            deleted_at.setdefault(old, time.monotonic())
                    except Exception as exc:
                        errors.append(f"writer: {type(exc).__name__}: {exc}")
                    i += 1

        threads = [threading.Thread(target=searcher, args=(n,)) for n in range(8)]
        threads.append(threading.Thread(target=writer))
        for th in threads:
            th.start()
        time.sleep(LOAD_SECONDS)
        stop.set()
        for th in threads:
            th.join(30)
        print(f"{LOAD_SECONDS:g} s: {sum(searches)} searches by 8 clients, "
              f"{len(deleted_at)} deletes checked, {len(errors)} errors")
        assert not errors, errors[:5]
        assert not violations, violations[:5]
        assert all(n > 0 for n in searches), searches
        assert len(deleted_at) >= 5  # the writer made progress under the load


def test_sigkill_during_ingestion_then_restart_is_consistent(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    pipeline = tmp_path / "two.toml"
    pipeline.write_text(TWO_BM25)
    rng = random.Random(13)
    committed: set[str] = set()
    for trial in range(2):
        server = ServerProcess(idx, "--pipeline", str(pipeline))
        lost: list[str] = []

        def adder(name: str, url: str = server.url, trial: int = trial,
                  lost: list[str] = lost) -> None:
            with trawl.connect(url) as c:
                for b in range(1000):
                    docs = bm25_docs(20, prefix=f"t{trial}{name}b{b}x", word="kept")
                    try:
                        c.add(docs, batch_size=5)
                    except ServerUnavailableError:
                        lost.append(name)
                        return
                    committed.update(d["id"] for d in docs)  # returned: must survive

        threads = [threading.Thread(target=adder, args=(n,)) for n in ("p", "q")]
        for th in threads:
            th.start()
        time.sleep(0.5 + rng.random())
        server.kill()
        for th in threads:
            th.join(30)
        assert sorted(lost) == ["p", "q"]
    with Trawl.open(idx, attach=False) as t:  # restart: repair runs on open
        manifest = t.manifest.doc_ids()
        held = {name: r.doc_ids() for name, r in t.pipeline.retrievers.items()}
        assert committed and held["a"] == manifest and held["b"] == manifest
        assert committed <= manifest, sorted(committed - manifest)[:5]
        assert t.manifest.pending() == []
    with serving(idx) as server, trawl.connect(server.url) as c:
        some = sorted(committed)[:: max(1, len(committed) // 20)]
        for doc_id in some:
            assert c.search(f"tok{doc_id}")[0].doc_id == doc_id
