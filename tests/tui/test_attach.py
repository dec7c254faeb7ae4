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
