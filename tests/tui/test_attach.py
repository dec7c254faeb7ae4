"""``trawl tui`` on an index that ``trawl serve`` holds: it attaches like any other client."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import corpus_documents
from tui_helpers import settle, type_query, wait_for

import trawl
from tests.serve.support import ServerProcess
from trawl.client import RemoteTrawl
from trawl_tui.app import make_app
from trawl_tui.widgets import PreviewPane, ResultsList, StatusBar


async def test_tui_attaches_to_a_served_index(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAWL_HOME", str(tmp_path / "home"))
    folder = tmp_path / "served"
    pipeline = {"name": "lex", "retrievers": [{"name": "bm25", "index": "bm25"}],
                "chunking": {"max_tokens": 32, "overlap": 0}}
    with trawl.Trawl.open(folder, pipeline=pipeline, show_progress=False) as t:
        t.add(corpus_documents(), show_progress=False)
        expected = [h.chunk_id for h in t.search("spring tides moon", 10)]
    server = ServerProcess(folder)
    try:
        app = make_app(str(folder), debounce=0, cursor_blink=False, history=False)
        async with app.run_test(size=(120, 36)) as pilot:
            assert await wait_for(pilot, lambda: app.trawl is not None, timeout=30)
            assert isinstance(app.trawl, RemoteTrawl)
            await type_query(pilot, "spring tides moon")
            hits = app.main.query_one(ResultsList).hits
            assert [h.chunk_id for h in hits] == expected  # same ranking through the server
            assert "bm25" in app.main.query_one(StatusBar).options_label
            preview = app.main.query_one(PreviewPane)
            assert await wait_for(pilot, lambda: "previous" in str(
                preview.query_one("#preview-neighbours").content))
            await pilot.press("f3")
            await settle(pilot)
            assert not app.errors_shown
        app.close_index()
    finally:
        assert server.stop() == 0


async def test_attached_status_lost_server_one_message_reconnect_and_open_locally(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tui_helpers import screen_text

    import trawl_tui.app as app_module
    from trawl_tui.screens.main import MainScreen

    monkeypatch.setenv("TRAWL_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(app_module, "RECONNECT_EVERY_S", 0.3)
    folder = tmp_path / "served"
    pipeline = {"name": "lex", "retrievers": [{"name": "bm25", "index": "bm25"}]}
    with trawl.Trawl.open(folder, pipeline=pipeline, show_progress=False) as t:
        t.add(corpus_documents(), show_progress=False)
    server = ServerProcess(folder)
    second: ServerProcess | None = None
    try:
        app = make_app(str(folder), debounce=0, cursor_blink=False, history=False)
        async with app.run_test(size=(80, 24)) as pilot:
            assert await wait_for(pilot, lambda: app.trawl is not None, timeout=30)
            await type_query(pilot, "tides")
            status = screen_text(app).splitlines()[-2]
            assert status.startswith(f" remote {server.url} · lex │")
            server.stop()
            await type_query(pilot, " moon")  # every keystroke fails against a dead server
            await type_query(pilot, " sun")
            lost = [n for n in app._notifications if n.title == "Server lost"]
            assert len(lost) == 1  # one message, not one per keystroke
            assert app.server_lost and "LOST, reconnecting" in screen_text(app)
            assert app.main.check_action("reconnect", ()) is True  # F5: open locally
            second = ServerProcess(folder)  # the server comes back (on another port)
            assert await wait_for(pilot, lambda: not app.server_lost, timeout=20)
            await settle(pilot)
            assert isinstance(app.trawl, RemoteTrawl) and app.trawl.url == second.url
            assert f"remote {second.url}" in screen_text(app)
            assert app.main.query_one(ResultsList).hits  # the query ran again by itself
            assert [n.title for n in app._notifications].count("Server lost") == 1
            second.stop()
            app.main.search_now(force=True)
            assert await wait_for(pilot, lambda: app.server_lost)
            await pilot.press("f5")  # open the folder in this process instead
            assert await wait_for(pilot, lambda: isinstance(app.trawl, trawl.Trawl), timeout=30)
            await settle(pilot)
            assert isinstance(app.screen, MainScreen) and not app.server_lost
            assert app.main.query_one(ResultsList).hits
            assert screen_text(app).splitlines()[-2].startswith(" lex │")
        app.close_index()
    finally:
        server.stop()
        if second is not None:
            second.stop()
