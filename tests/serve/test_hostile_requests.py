"""A real ``trawl serve`` process fed what a hostile client sends byte for byte (raw
sockets, so the headers are exactly these): header floods, duplicate Host/Origin headers,
bodies its JSON parser gives up on, filter lists past the cap, absurd option values."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.support import bm25_docs, serving
from trawl import Trawl

pytest.importorskip("fastapi")
pytest.importorskip("mcp")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, Path]]:
    base = tmp_path_factory.mktemp("hostile")
    idx, allowed = base / "idx", base / "allowed"
    allowed.mkdir()
    (allowed / "note.txt").write_text("a note about tokhostile")
    with Trawl.open(idx, pipeline="bm25", show_progress=False, attach=False) as t:
        t.add(bm25_docs(5))
    with serving(idx, "--allow-path", str(allowed), "--max-body", "1") as server:
        yield server.url, server.pid, allowed


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))


def _exchange(url: str, head: str, body: bytes = b"") -> bytes:
    """Sends ``head`` (request line and headers, no blank line) and ``body``; the answer."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"{head}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                  .encode() + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def test_a_header_flood_is_cut_off_without_growing_the_server(
        served: tuple[str, int, Path]) -> None:
    url, pid, _ = served
    port = int(url.rsplit(":", 1)[1])
    before = _rss_kib(pid)
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
        try:  # 64 MB of headers unless the server stops reading
            for _ in range(1000):
                s.sendall(b"X-Pad: " + b"a" * 65_000 + b"\r\n")
        except OSError:
            pass  # the server closed the connection: what we want
        try:
            answer = s.recv(200)
        except OSError:
            pass
    # before: httptools buffered it all (+290 MB in 1.4 s) and never answered
    assert answer.startswith(b"HTTP/1.1 4") or answer == b"", answer
    assert _rss_kib(pid) - before < 32 * 1024
    assert httpx.get(f"{url}/healthz").status_code == 200


def test_two_host_or_origin_headers_are_refused(served: tuple[str, int, Path]) -> None:
    url, _, _ = served
    own = url.removeprefix("http://")
    body = b'{"query": "tokd1"}'
    json_type = "Content-Type: application/json"
    for head, status, field in [
        (f"Host: evil.example\r\nHost: {own}", 400, "host"),
        (f"Host: {own}\r\nHost: evil.example", 400, "host"),
        (f"Host: {own}\r\nOrigin: http://evil.example\r\nOrigin: http://{own}", 403, "origin"),
    ]:
        answer = _exchange(url, f"POST /search HTTP/1.1\r\n{head}\r\n{json_type}", body)
        assert answer.startswith(f"HTTP/1.1 {status}".encode()), (head, answer[:200])
        # h11 itself refuses two Hosts (a plain-text 400); the guard names the header
        assert field == "host" or f'"field": "{field}"'.encode() in answer
    answer = _exchange(url, f"POST /search HTTP/1.1\r\nHost: {own}\r\n"
                            f"Origin: http://{own}\r\n{json_type}", body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_bodies_past_the_parser_and_the_filter_cap_are_named_4xx(
        served: tuple[str, int, Path]) -> None:
    url, _, _ = served
    deep = b'{"query": "x", "filters": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    r = httpx.post(f"{url}/search", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body", r.text
    too_many = [f"d{i}" for i in range(100_001)]
    r = httpx.post(f"{url}/search", json={"query": "x", "filters": {"id": too_many}},
                   timeout=30)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "FilterTooLargeError" and err["field"] == "filters"
    assert "100000" in err["message"].replace(",", "")


def test_index_with_an_absurd_max_bytes_still_reads_the_file(
        served: tuple[str, int, Path]) -> None:
    url, _, allowed = served
    started = time.monotonic()
    r = httpx.post(f"{url}/index", json={"paths": [str(allowed)], "max_bytes": 10**30},
                   timeout=30)
    assert r.status_code == 200, r.text  # was a 500 (OverflowError; 10**12: MemoryError)
    assert r.json()["added"] + r.json()["unchanged"] == 1
    assert time.monotonic() - started < 10
    hits = httpx.post(f"{url}/search", json={"query": "tokhostile"}).json()["hits"]
    assert hits and hits[0]["text"] == "a note about tokhostile"


def test_max_body_sets_the_limit(served: tuple[str, int, Path]) -> None:
    url, _, _ = served  # started with --max-body 1 (MiB)
    ids = [f"{i:08d}" + "x" * 70 for i in range(10_000)]  # ~0.8 MiB of JSON
    r = httpx.post(f"{url}/documents/get", json={"ids": ids}, timeout=30)
    assert r.status_code != 413, r.text
    r = httpx.post(f"{url}/documents/get", json={"ids": ids + ids[:4000]}, timeout=30)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["field"] == "body" and "1,048,576" in r.json()["error"]["message"]


def test_index_options_that_broke_the_door_are_named_422(
        served: tuple[str, int, Path]) -> None:
    url, _, allowed = served
    for body, field in [({"paths": [f"{allowed}/\x00x"]}, "paths.0"),  # was a 500
                        ({"paths": [str(allowed)], "exclude": ["*.md", "["]}, "exclude.1"),
                        ({"paths": [str(allowed)], "include": [" "]}, "include.0")]:
        r = httpx.post(f"{url}/index", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["field"] == field, r.text
    r = httpx.post(f"{url}/search", json={"query": "x", "retrievers": ["nosuch"]})
    assert r.status_code == 400 and r.json()["error"]["field"] == "retrievers", r.text
