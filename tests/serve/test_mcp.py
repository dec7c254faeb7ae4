"""The MCP tools as an agent meets them, through the ``mcp`` SDK client against real
servers on 127.0.0.1 (uvicorn in a thread) and ``trawl mcp`` over stdio: read-only unless
``--mcp-write``, ``store``/``forget`` round trips with the checks of ``POST /documents``,
unknown arguments named, document text escaped as the CLI escapes it, results sized for
an LLM reader with the cut said out loud."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO
from tests.serve.support import app_in_thread, bm25_docs, trawl_cmd
from trawl import Trawl

pytest.importorskip("mcp")
from mcp import Client, StdioServerParameters

from trawl_serve.app import create_app


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trawl]:
    t = Trawl.open(tmp_path_factory.mktemp("mcp") / "idx", pipeline="bm25",
                   show_progress=False, attach=False)
    t.add(bm25_docs(5, word="common"))
    t.add([{"id": "evil\x1b[2J\x00", "text": "tokevil hidden \x1b]8;;http://x\x07 link "
                                              "\u202eesrever\u202c end", "title": "T\x1b[31m"},
           *[{"id": f"long{i}", "text": f"toklong {'padding words ' * 300}"} for i in range(8)]])
    yield t
    t.close()


def _run(target: Any, body: Any) -> Any:
    async def go() -> Any:
        async with Client(target) as c:
            return await body(c)
    return asyncio.run(go())


def test_read_only_by_default_and_results_are_safe_and_sized(index: Trawl) -> None:
    async def body(c: Any) -> None:
        assert {t.name for t in (await c.list_tools()).tools} == {"search", "context"}
        r = await c.call_tool("search", {"query": "tokevil"})
        text = r.content[0].text
        assert "\x1b" not in text and "\x00" not in text and "\u202e" not in text
        assert "\\x1b[2J" in text and "\\u202e" in text and "\\x07" in text
        r = await c.call_tool("context", {"query": "tokevil"})
        assert "\x1b" not in r.content[0].text and "\\u202e" in r.content[0].text
        # an LLM-sized answer: top_k capped, passages within max_chars, cuts announced
        r = await c.call_tool("search", {"query": "toklong", "top_k": 1000})
        assert r.is_error and "top_k" in r.content[0].text
        r = await c.call_tool("search", {"query": "toklong padding", "top_k": 8,
                                         "max_chars": 5000})
        text = r.content[0].text
        assert not r.is_error and len(text) < 5000 + 8 * 200
        assert "passage cut" in text and "more passage(s) not shown" in text
        assert r.structured_content["truncated"] is True
        assert sum(len(h["text"]) for h in r.structured_content["hits"]) <= 5000
        r = await c.call_tool("search", {"query": "toklong padding"})  # defaults: 5, 8,000
        assert len(r.content[0].text) < 8000 + 5 * 200
        # an argument the tool does not take is named, not ignored
        r = await c.call_tool("search", {"query": "common", "top-k": 3, "colour": "red"})
        assert r.is_error and "colour" in r.content[0].text and "top-k" in r.content[0].text
        r = await c.call_tool("store", {"text": "x"})
        assert r.is_error  # not offered without --mcp-write

    with app_in_thread(create_app(index)) as url:
        _run(f"{url}/mcp", body)


async def _store_and_forget(c: Any) -> None:
    tools = {t.name: t for t in (await c.list_tools()).tools}
    assert set(tools) == {"search", "context", "store", "forget"}
    assert tools["forget"].annotations.destructive_hint is True
    r = await c.call_tool("store", {"text": "the quokka tokmemo smiles",
                                    "metadata": {"topic": "animals", "year": 2024}})
    assert not r.is_error, r.content[0].text
    doc_id = r.structured_content["id"]
    assert r.structured_content["status"] == "added" and doc_id
    r = await c.call_tool("search", {"query": "tokmemo", "filters": {"topic": "animals"}})
    assert r.structured_content["hits"][0]["doc_id"] == doc_id
    r = await c.call_tool("store", {"text": "the quokka tokmemo smiles",
                                    "metadata": {"topic": "animals", "year": 2024}})
    assert r.structured_content == {"id": doc_id, "status": "unchanged"}
    r = await c.call_tool("store", {"id": "named1", "text": "tokmemo two"})
    assert r.structured_content["id"] == "named1"
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(100):
        node["a"] = {}
        node = node["a"]
    r = await c.call_tool("store", {"text": "too deep", "metadata": deep})
    assert r.is_error and "metadata.a.a" in r.content[0].text
    r = await c.call_tool("store", {"text": "t", "tags": ["x"]})
    assert r.is_error and "tags" in r.content[0].text
    r = await c.call_tool("forget", {"ids": [doc_id, "named1"]})
    assert not r.is_error and r.structured_content["removed_chunks"] >= 2
    r = await c.call_tool("search", {"query": "tokmemo"})
    assert r.structured_content["hits"] == []
    r = await c.call_tool("forget", {"ids": ["never-stored"]})
    assert "nothing deleted" in r.content[0].text


def test_store_and_forget_with_mcp_write_over_http(index: Trawl) -> None:
    with app_in_thread(create_app(index, mcp_write=True)) as url:
        _run(f"{url}/mcp", _store_and_forget)


@pytest.mark.slow  # a subprocess; the same tools run over HTTP above on every run
def test_store_and_forget_with_mcp_write_over_stdio(tmp_path: Path) -> None:
    with Trawl.open(tmp_path / "idx", pipeline="bm25", show_progress=False,
                    attach=False) as t:
        t.add(bm25_docs(3))
    stdio = StdioServerParameters(command=trawl_cmd()[0], args=[
        *trawl_cmd()[1:], "mcp", str(tmp_path / "idx"), "--mcp-write"], cwd=str(REPO),
        env=dict(os.environ))
    _run(stdio, _store_and_forget)
    with Trawl.open(tmp_path / "idx", show_progress=False, attach=False) as t:
        assert t.stats()["documents"] == 3  # stored, then forgotten: as before
