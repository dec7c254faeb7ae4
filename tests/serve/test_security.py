"""A served index beside a web browser, through a real ``trawl serve`` process on 127.0.0.1:
every route refuses a forged ``Host`` (DNS rebinding) and a foreign ``Origin``, and accepts
the server's own names and the operator's ``--allow-host``/``--allow-origin``; ``POST
/index`` reads only inside the ``--allow-path`` folders, links resolved first."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import trawl
from tests.serve.support import app_in_thread, bm25_docs, serving
from trawl import Trawl
from trawl.errors import ServerError

pytest.importorskip("fastapi")
pytest.importorskip("mcp")

# every route the app serves, with a body it accepts (or refuses for its own reasons)
BODIES: dict[str, dict[str, object]] = {
    "/search": {"query": "tokd1"}, "/context": {"query": "tokd1"},
    "/search/batch": {"queries": ["tokd1"]}, "/documents/get": {"ids": ["d1"]},
    "/documents/metadata": {"id": "d1", "metadata": {"k": 1}}, "/chunks": {"ids": ["x"]},
    "/chunks/neighbours": {"chunk_id": "x", "doc_id": "d1"}, "/index": {"paths": ["/"]},
    "/documents": {"documents": [{"id": "zz", "text": "zz"}]},
}
EXTRA_ROUTES = [("GET", "/docs"), ("GET", "/openapi.json"), ("POST", "/mcp"), ("GET", "/mcp"),
                ("GET", "/no/such/route")]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    base = tmp_path_factory.mktemp("sec")
    idx, allowed = base / "idx", base / "allowed"
    allowed.mkdir()
    with Trawl.open(idx, pipeline="bm25", show_progress=False, attach=False) as t:
        t.add(bm25_docs(5))
    with serving(idx, "--allow-path", str(allowed), "--allow-host", "proxy.internal",
                 "--allow-origin", "https://app.example") as server:
        yield server.url, base


def _routes(url: str) -> list[tuple[str, str]]:
    schema = httpx.get(f"{url}/openapi.json").json()
    routes = [(m.upper(), p) for p, ops in schema["paths"].items() for m in ops]
    assert len(routes) >= 15, routes
    return routes + EXTRA_ROUTES


_HTTP = httpx.Client(timeout=30)


def _send(url: str, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """The answer's status and headers, and its body unless it is an endless event stream
    (GET /mcp)."""
    body = BODIES.get(path, {"ids": ["zz"]} if method == "DELETE" else None)
    headers = {"accept": "application/json, text/event-stream", **headers}
    with _HTTP.stream(method, f"{url}{path}", json=body, headers=headers) as r:
        if "text/event-stream" not in r.headers.get("content-type", ""):
            r.read()
    return r


def _refused_header(r: httpx.Response) -> str | None:
    if r.status_code == 421:
        return "host"
    if r.status_code != 403 or "json" not in r.headers.get("content-type", ""):
        return None
    field = r.json()["error"]["field"]
    return field if field in ("host", "origin") else None


def test_forged_host_and_origin_refused_on_every_route(served: tuple[str, Path]) -> None:
    url, _ = served
    port = url.rsplit(":", 1)[1]
    for method, path in _routes(url):
        r = _send(url, method, path, {"host": f"evil.example:{port}"})
        assert r.status_code == 421, (method, path, r.status_code, r.text)
        err = r.json()["error"]
        assert err["field"] == "host" and "evil.example" in err["message"]
        assert "--allow-host" in err["message"]
        r = _send(url, method, path, {"origin": f"http://evil.example:{port}"})
        assert r.status_code == 403, (method, path, r.status_code)
        assert r.json()["error"]["field"] == "origin"
        # DNS rebinding sends both: refused on the Host already
        r = _send(url, method, path, {"host": f"evil.example:{port}",
                                      "origin": f"http://evil.example:{port}"})
        assert r.status_code == 421, (method, path)


def test_allowed_hosts_and_origins_pass(served: tuple[str, Path]) -> None:
    url, _ = served
    port = url.rsplit(":", 1)[1]
    for method, path in _routes(url):
        r = _send(url, method, path, {"host": f"localhost:{port}",
                                      "origin": f"http://localhost:{port}"})
        assert _refused_header(r) is None, (method, path, r.text)
    allowed = [{"host": f"127.0.0.1:{port}"}, {"host": f"LOCALHOST:{port}"},
               {"host": "proxy.internal"}, {"host": "proxy.internal:8443"},
               {"origin": "https://app.example"}, {"origin": f"http://127.0.0.1:{port}"},
               {"origin": "https://app.example:443"}]
    for headers in allowed:
        for method, path in [("POST", "/search"), ("POST", "/mcp")]:
            r = _send(url, method, path, headers)
            assert _refused_header(r) is None, (headers, method, path, r.text)
    refused = [({"host": "localhost:1"}, 421),  # our name, another port: another server
               ({"host": f"127.0.0.1.evil.example:{port}"}, 421),
               ({"host": f"[::1:{port}"}, 421),
               ({"origin": "null"}, 403),
               ({"origin": "http://app.example"}, 403),  # http, not the allowed https
               ({"origin": f"http://localhost:{port}.evil.example"}, 403)]
    for headers, status in refused:
        assert _send(url, "POST", "/search", headers).status_code == status, headers


def test_mcp_sdk_client_passes_the_checks(served: tuple[str, Path]) -> None:
    from mcp import Client

    url, _ = served

    async def call() -> str:
        async with Client(f"{url}/mcp") as c:
            r = await c.call_tool("search", {"query": "tokd2"})
            return str(r.structured_content["hits"][0]["doc_id"])

    assert asyncio.run(call()) == "d2"


def test_checks_hold_with_an_api_key_and_index_is_off_without_roots(tmp_path: Path) -> None:
    from trawl_serve.app import create_app

    (tmp_path / "n.txt").write_text("a numbat note")
    t = Trawl.open(tmp_path / "idx", pipeline="bm25", show_progress=False, attach=False)
    try:
        t.add(bm25_docs(2))
        with app_in_thread(create_app(t, api_key="k3y")) as url:
            port = url.rsplit(":", 1)[1]
            key = {"authorization": "Bearer k3y"}
            r = httpx.post(f"{url}/search", json={"query": "tokd1"},
                           headers={**key, "host": f"evil.example:{port}"})
            assert r.status_code == 421
            r = httpx.post(f"{url}/mcp", json={},
                           headers={**key, "origin": "https://evil.example"})
            assert r.status_code == 403
            with trawl.connect(url, api_key="k3y") as c:
                assert c.search("tokd1")[0].doc_id == "d1"
                with pytest.raises(ServerError, match="--allow-path") as info:
                    c.index_paths([tmp_path / "n.txt"])
                assert info.value.status == 403
                assert c.stats()["documents"] == 2
    finally:
        t.close()


def test_index_paths_stay_inside_the_allowed_folders(served: tuple[str, Path]) -> None:
    url, base = served
    allowed, outside = base / "allowed", base / "outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text("the platypus password")
    (allowed / "note.txt").write_text("a numbat note")
    (allowed / "link.txt").symlink_to(outside / "secret.txt")
    (allowed / "linked_dir").symlink_to(outside, target_is_directory=True)
    with trawl.connect(url) as c:
        for target in [outside / "secret.txt", outside, allowed / "link.txt",
                       allowed / "linked_dir", allowed / ".." / "outside",
                       Path("/etc/os-release")]:
            r = httpx.post(f"{url}/index", json={"paths": [str(target)]})
            assert r.status_code == 403, (target, r.text)
            err = r.json()["error"]
            assert err["field"] == "paths.0" and str(target) in err["message"]
        r = httpx.post(f"{url}/index", json={"paths": ["relative/dir"]})
        assert r.status_code == 422 and r.json()["error"]["field"] == "paths.0"
        # walking the allowed folder, even with follow_symlinks, never reads what links
        # point to outside it: each such link is skipped and named
        report = c.index_paths([allowed], follow_symlinks=True)
        assert report.added == 1
        skipped = {os.path.basename(s.path): s.reason for s in report.skipped}
        assert set(skipped) == {"link.txt", "linked_dir"}
        assert all("outside the allowed folders" in r for r in skipped.values())
        assert c.search("numbat")[0].doc_id == "allowed/note.txt"
        assert c.search("platypus password") == []


def _scope(host: str | None, origin: str | None = None,
           server: tuple[str, int] = ("127.0.0.1", 8765)) -> dict[str, object]:
    headers = [(b"host", host.encode())] if host is not None else []
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "http", "headers": headers, "server": server, "scheme": "http"}


def test_host_policy_names_per_address() -> None:
    import socket

    from trawl.errors import ConfigError
    from trawl_serve.security import HostPolicy

    policy = HostPolicy()
    assert policy.refusal(_scope("[::1]:8765", server=("::1", 8765))) is None
    assert policy.refusal(_scope("localhost:8765", server=("::1", 8765))) is None
    assert policy.refusal(_scope(None))[:2] == (421, "host")  # type: ignore[index]
    assert policy.refusal(_scope("localhost:8765:1"))[0] == 421  # type: ignore[index]
    lan = ("192.168.7.20", 8765)  # a --host 0.0.0.0 server reached over the LAN
    assert policy.refusal(_scope("192.168.7.20:8765", server=lan)) is None
    assert policy.refusal(_scope(f"{socket.gethostname()}:8765", server=lan)) is None
    assert policy.refusal(_scope("localhost:8765", server=lan))[0] == 421  # type: ignore[index]
    assert policy.refusal(_scope("printer.lan:8765", server=lan))[0] == 421  # type: ignore[index]
    assert HostPolicy(["*"]).refusal(_scope("anything.example")) is None
    assert HostPolicy(allow_origins=["*"]).refusal(
        _scope("127.0.0.1:8765", "https://evil.example")) is None
    for bad in (["bad host"], ["x:99999"]):
        with pytest.raises(ConfigError, match="--allow-host"):
            HostPolicy(bad)
    with pytest.raises(ConfigError, match="--allow-origin"):
        HostPolicy(allow_origins=["https://app.example/path"])


def test_host_policy_refuses_two_host_or_origin_headers() -> None:
    """Whichever of two headers a proxy in front checked, the other must not slip through
    (h11 already refuses two Hosts; the policy holds under any HTTP parser)."""
    from trawl_serve.security import HostPolicy

    policy = HostPolicy()
    server = ("127.0.0.1", 8000)
    own, evil = (b"host", b"127.0.0.1:8000"), (b"host", b"evil.example:8000")
    for headers in ([evil, own], [own, evil]):
        refused = policy.refusal({"headers": headers, "server": server, "scheme": "http"})
        assert refused is not None and refused[0] == 400 and refused[3] == "host"
    origins = [own, (b"origin", b"http://evil.example"), (b"origin", b"http://127.0.0.1:8000")]
    refused = policy.refusal({"headers": origins, "server": server, "scheme": "http"})
    assert refused is not None and refused[0] == 403 and refused[3] == "origin"
    assert policy.refusal({"headers": [own, origins[2]], "server": server,
                           "scheme": "http"}) is None


def test_an_allowed_origin_gets_cors_answers_a_browser_accepts(
        served: tuple[str, Path]) -> None:
    """Before: no CORS headers at all, so --allow-origin could not serve a browser app (its
    JSON POST's preflight was a 405 and answers were hidden from the page)."""
    url, _ = served  # started with --allow-origin https://app.example
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "content-type,authorization"}
    r = _HTTP.options(f"{url}/search", headers=preflight)
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in r.headers["access-control-allow-methods"]
    r = _HTTP.post(f"{url}/search", json={"query": "tokd1"},
                   headers={"origin": "https://app.example"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    r = _HTTP.options(f"{url}/search", headers={**preflight, "origin": "https://evil.example"})
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
