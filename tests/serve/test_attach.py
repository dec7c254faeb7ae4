"""``trawl serve`` as a real process: the CLI, ``Trawl.open`` and MCP clients attach to it;
stale locks are taken over; a server that dies mid-call is a typed error that loses
nothing committed before."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

import trawl
from tests.conftest import REPO
from tests.serve.support import ServerProcess, bm25_docs, serving, trawl_cmd
from trawl import IndexLockedError, Trawl
from trawl.client import RemoteTrawl
from trawl.errors import ServerUnavailableError

pytest.importorskip("mcp")


def _make_index(folder: Path, n: int = 10) -> None:
    with Trawl.open(folder, pipeline="bm25", show_progress=False, attach=False) as t:
        t.add(bm25_docs(n, word="shared"))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(trawl_cmd(*args), cwd=REPO, capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_cli_and_api_attach_while_served(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    _make_index(idx)
    with serving(idx, "--allow-path", str(tmp_path)) as server:
        lock = json.loads((idx / ".lock").read_text())
        assert lock == {"pid": server.pid, "url": server.url, "auth": False}
        out = _cli("search", "tokd4", "-i", str(idx), "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["hits"][0]["doc_id"] == "d4"
        out = _cli("stats", "-i", str(idx), "--json")
        assert out.returncode == 0 and json.loads(out.stdout)["documents"] == 10
        t = Trawl.open(idx)
        assert isinstance(t, RemoteTrawl) and t.url == server.url
        with t:
            assert t.add([{"id": "late", "text": "toklate arrives"}]).added == 1
        out = _cli("search", "toklate", "-i", str(idx), "--json")
        assert json.loads(out.stdout)["hits"][0]["doc_id"] == "late"
        notes = tmp_path / "notes"
        notes.mkdir()
        (notes / "a.md").write_text("# A\n\nthe served wombat\n")
        out = _cli("index", str(notes), "-i", str(idx), "--json")  # indexed by the server
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["added"] == 1
        out = _cli("index", str(notes), "-i", str(idx), "--json")
        assert json.loads(out.stdout)["unchanged"] == 1  # incremental, as in-process
        with pytest.raises(IndexLockedError):
            Trawl.open(idx, attach=False)
        second = _cli("serve", str(idx), "--port", "0")
        assert second.returncode == 1
        assert f"already served at {server.url}" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    # stopped: the record is withdrawn and the folder opens in-process again
    assert "url" not in json.loads((idx / ".lock").read_text())
    with Trawl.open(idx) as t:
        assert isinstance(t, Trawl) and t.stats()["documents"] == 12
        assert t.search("wombat")[0].doc_id == "notes/a.md"


def test_stale_lock_is_taken_over(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    _make_index(idx)
    server = ServerProcess(idx)
    url = server.url
    server.kill()  # SIGKILL: the lock record still names the dead server
    assert json.loads((idx / ".lock").read_text())["url"] == url
    with Trawl.open(idx) as t:
        assert isinstance(t, Trawl) and t.search("tokd2")[0].doc_id == "d2"
    out = _cli("search", "tokd2", "-i", str(idx), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["hits"][0]["doc_id"] == "d2"


def test_non_loopback_needs_a_key() -> None:
    out = _cli("serve", "--host", "0.0.0.0", "--port", "0", env={"TRAWL_API_KEY": ""})
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "TRAWL_API_KEY" in lines[0]


def test_mcp_on_a_missing_index_is_an_error_not_a_new_index(tmp_path: Path) -> None:
    out = _cli("mcp", str(tmp_path / "missing"))
    assert out.returncode == 1 and "no trawl index" in out.stderr
    assert not (tmp_path / "missing").exists()


def test_lost_server_is_typed_and_loses_nothing_committed(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    _make_index(idx, 0)
    server = ServerProcess(idx)
    client = trawl.connect(server.url)
    try:
        client.add(bm25_docs(30, prefix="k"))
        server.kill()
        with pytest.raises(ServerUnavailableError, match=server.url):
            client.search("tokk1")
        with pytest.raises(ServerUnavailableError):
            client.add(bm25_docs(1, prefix="z"))
    finally:
        client.close()
    with Trawl.open(idx) as t:  # the stale lock is taken over
        assert t.stats()["documents"] == 30
        assert t.search("tokk29")[0].doc_id == "k29"


def test_mcp_over_http_and_stdio(tmp_path: Path) -> None:
    from mcp import Client, StdioServerParameters

    idx = tmp_path / "idx"
    _make_index(idx)

    async def exercise(target: object) -> None:
        async with Client(target) as c:  # type: ignore[arg-type]
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert set(tools) == {"search", "context"}
            assert "cite" in (tools["search"].description or "")
            assert tools["search"].output_schema is not None
            r = await c.call_tool("search", {"query": "tokd6 shared", "top_k": 3})
            assert not r.is_error
            assert r.content[0].text.startswith("[1] Doc d6")
            assert r.structured_content["hits"][0]["doc_id"] == "d6"
            r = await c.call_tool("context", {"query": "tokd6", "max_tokens": 30})
            assert not r.is_error and r.structured_content["hits"][0]["doc_id"] == "d6"
            r = await c.call_tool("search", {"query": "x", "filters": {
                "field": "a", "op": "~", "value": 1}})
            assert r.is_error and "invalid filter" in r.content[0].text

    stdio = StdioServerParameters(command=trawl_cmd()[0], args=[*trawl_cmd()[1:], "mcp",
                                                                 str(idx)],
                                  cwd=str(REPO), env=dict(os.environ))
    asyncio.run(exercise(stdio))  # stdio, owning the folder itself
    with serving(idx) as server:
        asyncio.run(exercise(f"{server.url}/mcp"))  # streamable HTTP
        asyncio.run(exercise(stdio))  # stdio, attached to the running server
