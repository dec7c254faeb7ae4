"""What one request may cost, on a real ``trawl serve`` process: a client that gives up
stops the work (the server's CPU falls idle within 1 s), a request past the deadline is
stopped and answered 504 as JSON, and ``latency_ms`` is the request's whole wall time."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.support import serving
from trawl import Trawl

pytest.importorskip("fastapi")
TICKS = os.sysconf("SC_CLK_TCK")
VOCAB = [f"w{i}" for i in range(2000)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def wait_idle(pid: int, within: float, window: float = 0.3) -> float:
    """Seconds until a ``window`` passes in which ``pid`` uses under 15% of a core."""
    start = time.monotonic()
    while time.monotonic() - start < within + 5:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < 0.15 * window:
            return time.monotonic() - start - window
    raise AssertionError(f"server {pid} still busy {within + 5:.0f} s later")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    rng = random.Random(3)
    idx = tmp_path_factory.mktemp("bounds") / "idx"
    with Trawl.open(idx, pipeline="bm25", show_progress=False, attach=False) as t:
        t.add([{"id": f"d{i}", "text": " ".join(rng.choices(VOCAB, k=60))}
               for i in range(3000)])
    with serving(idx, "--request-timeout", "2") as s:
        yield s.url, s.pid


def _heavy_batch() -> dict[str, object]:
    """256 queries of ~1,400 words, top 1000: tens of seconds of BM25 scoring here."""
    rng = random.Random(5)
    return {"queries": [" ".join(rng.choices(VOCAB, k=1400))[:10_000] for _ in range(256)],
            "top_k": 1000}


def test_client_abort_stops_the_work(server: tuple[str, int]) -> None:
    url, pid = server
    wait_idle(pid, 10)
    busy_before = cpu_seconds(pid)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/search/batch", json=_heavy_batch(), timeout=httpx.Timeout(
            0.8, connect=5))
    assert cpu_seconds(pid) - busy_before > 0.05  # it was working when the client left
    assert wait_idle(pid, 1.0) <= 1.0
    assert httpx.post(f"{url}/search", json={"query": "w1 w2"}).status_code == 200


def test_deadline_answers_504_and_stops(server: tuple[str, int]) -> None:
    url, pid = server
    wait_idle(pid, 10)
    started = time.monotonic()
    r = httpx.post(f"{url}/search/batch", json=_heavy_batch(), timeout=30)
    took = time.monotonic() - started
    assert r.status_code == 504, r.text
    err = r.json()["error"]
    assert err["type"] == "timeout" and "--request-timeout" in err["message"]
    assert 1.9 < took < 6
    assert wait_idle(pid, 1.0) <= 1.0


def test_latency_covers_the_whole_request(server: tuple[str, int]) -> None:
    url, _ = server
    query = " ".join(VOCAB[:300])
    started = time.perf_counter()
    r = httpx.post(f"{url}/context", json={"query": query, "top_k": 200,
                                           "max_tokens": 20_000})
    wall_ms = (time.perf_counter() - started) * 1000
    body = r.json()
    assert r.status_code == 200 and body["tokens"] > 0
    assert 0 < body["latency_ms"] <= wall_ms
    r = httpx.post(f"{url}/search", json={"query": query, "top_k": 1000})
    body = r.json()
    spent = sum(body["timings"].values())
    assert body["latency_ms"] >= spent


def test_core_reads_stop_when_cancel_is_set(tmp_path: Path) -> None:
    import asyncio
    import threading

    from trawl import Cancelled

    with Trawl.open(tmp_path / "idx", pipeline="bm25", show_progress=False,
                    attach=False) as t:
        t.add([{"id": "a", "text": "w1 w2"}, {"id": "b", "text": "w2 w3"}])
        stop = threading.Event()
        assert t.search("w2", cancel=stop)  # not set: an ordinary search
        stop.set()
        with pytest.raises(Cancelled):
            t.search("w2", cancel=stop)
        with pytest.raises(Cancelled):
            t.context("w2", cancel=stop)
        with pytest.raises(Cancelled):
            t.search_batch(["w1", "w3"], cancel=stop)

        async def cancelled_asearch() -> None:
            task = asyncio.ensure_future(t.asearch(" ".join(VOCAB[:1000]), top_k=5))
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancelled_asearch())


class _HeavySearch:
    """An index client whose ``asearch`` costs what a slow pipeline costs: core's own
    cancellable ``asearch_batch`` of 256 long queries (tens of seconds of BM25 here)."""

    def __init__(self, trawl: Trawl) -> None:
        self.trawl = trawl

    async def asearch(self, query: str, top_k: int, filters: object) -> list[object]:
        batch = _heavy_batch()["queries"]
        return (await self.trawl.asearch_batch(batch, 1000))[0]  # type: ignore[arg-type]


def test_mcp_client_abort_and_deadline_stop_the_tool(tmp_path: Path) -> None:
    from mcp.server.transport_security import TransportSecuritySettings

    from tests.serve.support import app_in_thread
    from trawl_serve.bounds import WatchDisconnect
    from trawl_serve.mcp_tools import build_mcp

    rng = random.Random(3)
    with Trawl.open(tmp_path / "idx", pipeline="bm25", show_progress=False,
                    attach=False) as t:
        t.add([{"id": f"d{i}", "text": " ".join(rng.choices(VOCAB, k=60))}
               for i in range(3000)])
        server = build_mcp(_HeavySearch(t), request_timeout=2)  # type: ignore[arg-type]
        app = server.streamable_http_app(
            streamable_http_path="/mcp", stateless_http=True, json_response=True,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        for route in app.routes:  # as create_app wraps its /mcp route
            route.app = WatchDisconnect(route.app)  # type: ignore[attr-defined]
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "search", "arguments": {"query": "w1"}}}
        headers = {"accept": "application/json, text/event-stream",
                   "mcp-protocol-version": "2025-06-18"}
        me = os.getpid()  # the server runs in this process's threads
        with app_in_thread(app) as url:
            wait_idle(me, 10)
            busy_before = cpu_seconds(me)
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{url}/mcp", json=call, headers=headers,
                           timeout=httpx.Timeout(1.0, connect=5))
            assert cpu_seconds(me) - busy_before > 0.05
            assert wait_idle(me, 1.0) <= 1.0
            # past the deadline: a tool error that says so, and the work stops
            r = httpx.post(f"{url}/mcp", json=call, headers=headers, timeout=30)
            result = r.json()["result"]
            assert result["isError"] and "deadline of 2 s" in result["content"][0]["text"]
            assert wait_idle(me, 1.0) <= 1.0
