"""Concurrent searches batched into one ``search_batch`` give each caller exactly the hits
``Trawl.search`` gives, with its own timings; errors reach every caller of the batch."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

import trawl
from tests.conftest import HASHING_PIPELINE, HashingPlugin
from tests.serve.support import app_in_thread, bm25_docs
from trawl import FilterError, Trawl

pytest.importorskip("fastapi")
from trawl_serve.app import create_app
from trawl_serve.batching import SearchBatcher

PIPELINE = {"name": "hybrid-hashing",
            "retrievers": [{"name": "bm25", "index": "bm25"}, *HASHING_PIPELINE["retrievers"]]}


def _open(tmp_path: Path) -> Trawl:
    """bm25 (entry-point plugin) + the hashing encoder on ``exact``: a real hybrid."""
    t = Trawl.open(tmp_path / "idx", pipeline=PIPELINE, show_progress=False, attach=False,
                   host=trawl.PluginHost(plugins=[("hashing-test", HashingPlugin)]))
    t.add(bm25_docs(60, word="shared"))
    return t


def test_batched_answers_equal_single_searches(tmp_path: Path) -> None:
    t = _open(tmp_path)
    try:
        batcher = SearchBatcher(t, parallel=1)
        queries = [f"tokd{i} shared" for i in range(48)]
        expected = {q: [h.model_dump() for h in t.search(q, 5)] for q in queries}
        got: dict[str, list[dict[str, object]]] = {}
        traces: list[trawl.SearchTrace] = []
        start = threading.Barrier(16)

        def client(n: int) -> None:
            start.wait()
            for q in queries[n::16]:
                trace = trawl.SearchTrace()
                hits = batcher.search(q, 5, None, retrievers=None, fusion=None, rerank=None,
                                      trace=trace)
                got[q] = [h.model_dump() for h in hits]
                traces.append(trace)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert got == expected
        assert batcher.batches >= 1 and batcher.batched_queries >= 2
        assert all(tr.total_ms > 0 for tr in traces)

        errors: list[BaseException] = []

        def bad() -> None:
            try:
                batcher.search("x", 5, {"field": "a", "op": "~", "value": 1}, retrievers=None,
                               fusion=None, rerank=None, trace=trawl.SearchTrace())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=bad) for _ in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert len(errors) == 8 and all(isinstance(e, FilterError) for e in errors)
        assert not batcher._lanes  # every slot given back
    finally:
        t.close()


def test_server_batches_concurrent_http_searches(tmp_path: Path) -> None:
    t = _open(tmp_path)
    try:
        expected = {i: [h.doc_id for h in t.search(f"tokd{i} shared", 3)] for i in range(60)}
        with app_in_thread(create_app(t, mcp=False, batch=True)) as url:
            bad: list[str] = []

            def client(n: int) -> None:
                with trawl.connect(url) as c:
                    for i in range(n, 60, 8):
                        if [h.doc_id for h in c.search(f"tokd{i} shared", 3)] != expected[i]:
                            bad.append(f"tokd{i}")

            threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(60)
            assert not bad
            assert httpx.get(f"{url}/healthz").json()["batching"] is not None
    finally:
        t.close()
