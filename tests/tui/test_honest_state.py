"""Issue 24: the screen never shows a state the app is not in; fzf/readline keys; a preview
that shows the chunk at 80×24; honest small print (counts, copy, history, paste)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual import events
from textual.widgets import Input
from tui_helpers import screen_text, settle, type_query, wait_for

import trawl
from trawl_tui import actions
from trawl_tui.app import TrawlApp, make_app
from trawl_tui.highlight import query_terms
from trawl_tui.screens import IndexScreen
from trawl_tui.session import count_label
from trawl_tui.widgets import FilterBar, PreviewPane, ResultsList, SearchInput, StatusBar

SMALL = (80, 24)


def _app(t: trawl.Trawl, **kwargs: object) -> TrawlApp:
    kwargs.setdefault("debounce", 0)
    kwargs.setdefault("history", False)
    return make_app(t, cursor_blink=False, **kwargs)  # type: ignore[arg-type]


def _hits(app: TrawlApp) -> list[str]:
    return [h.doc_id for h in app.main.query_one(ResultsList).hits]


def _status_line(app: TrawlApp) -> str:
    return screen_text(app).splitlines()[-2]


def _notes(app: TrawlApp) -> list[str]:
    return [str(n.message) for n in app._notifications]


# -- 1. one source of truth: pending vs applied filter -------------------------------------
async def test_pending_filter_is_shown_as_pending_and_escape_reverts_it(
        mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await type_query(pilot, "sun")
        unfiltered = _hits(app)
        assert len(set(unfiltered)) > 1
        await pilot.press("ctrl+l", *"title=Comets")
        await settle(pilot)
        bar = app.main.query_one(FilterBar)
        assert bar.has_class("-pending")
        assert "pending filter title=Comets" in _status_line(app)
        assert _hits(app) == unfiltered  # typed, not applied: the hits say so too
        await pilot.press("escape")  # reverts the pending edit
        await settle(pilot)
        assert bar.value == "" and not bar.has_class("-pending")
        assert app.focused is app.main.query_one(SearchInput)
        assert "filter" not in _status_line(app)
        assert _hits(app) == unfiltered
        await pilot.press("ctrl+l", *"title=Comets", "enter")
        await settle(pilot)
        assert set(_hits(app)) == {"comets"}
        assert not bar.has_class("-pending")
        assert "filter: title=Comets" in _status_line(app)
        assert app.main.state().options.where == "title=Comets"


async def test_enter_takes_the_completion_shown(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await type_query(pilot, "sun")
        filter_bar = app.main.query_one(FilterBar)
        assert await wait_for(pilot, lambda: "title" in filter_bar.field_suggester.fields)
        await pilot.press("ctrl+l", *"title=Vol")
        assert await wait_for(pilot, lambda: filter_bar._suggestion == "title=Volcanoes")
        await pilot.press("enter")
        await settle(pilot)
        assert app.session.options.where == "title=Volcanoes"
        assert set(_hits(app)) == {"volcano"}


async def test_unknown_field_warns_naming_the_near_ones(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await type_query(pilot, "sun")
        filter_bar = app.main.query_one(FilterBar)
        assert await wait_for(pilot, lambda: bool(filter_bar.field_suggester.fields))
        await pilot.press("ctrl+l", *"titel=x", "enter")
        await settle(pilot)
        warning = [n for n in _notes(app) if "titel" in n]
        assert warning and "did you mean title?" in warning[0]
        assert _hits(app) == []  # applied as asked, matching nothing, and said so


async def test_dates_filter_epoch_mtime(host: trawl.PluginHost, tmp_path: Path) -> None:
    import os

    import tui_hashing

    folder = tmp_path / "files"
    folder.mkdir()
    for name, stamp in (("old.md", 1_700_000_000), ("new.md", 1_800_000_000)):
        (folder / name).write_text(f"# {name}\n\ntide tables for sailors\n")
        os.utime(folder / name, (stamp, stamp))
    from trawl.ingest import index_paths

    with trawl.Trawl.open(tmp_path / "idx", pipeline=tui_hashing.hybrid_pipeline(
            "exact", lexical="bm25"), host=host, show_progress=False) as t:
        index_paths(t, folder, show_progress=False)
        app = _app(t)
        async with app.run_test(size=(120, 36)) as pilot:
            await type_query(pilot, "tide tables")
            assert len(set(_hits(app))) == 2
            app.main.apply_filter("mtime>=2026-01-01")  # 1.8e9 is 2027-01-15
            await settle(pilot)
            assert {h.rsplit("/", 1)[-1] for h in _hits(app)} == {"new.md"}
            assert not any("Unknown filter field" in n for n in _notes(app))


# -- 3. keys --------------------------------------------------------------------------------
async def test_fzf_keys_move_tab_to_list_escape_clears_then_quits(
        mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await type_query(pilot, "sun")
        results = app.main.query_one(ResultsList)
        assert results.highlighted == 0
        await pilot.press("ctrl+j", "ctrl+j", "ctrl+n")
        assert results.highlighted == 3
        await pilot.press("ctrl+k", "ctrl+p")
        assert results.highlighted == 1
        assert app.main.query_one(SearchInput).value == "sun"  # ctrl+k no longer kills
        await pilot.press("tab")
        assert app.focused is results
        await pilot.press("G")
        assert results.highlighted == results.option_count - 1
        await pilot.press("g", "j", "j", "k")
        assert results.highlighted == 1
        assert app.main.query_one(SearchInput).value == "sun"  # nothing typed into it
        await pilot.press("escape")  # list → query
        assert app.focused is app.main.query_one(SearchInput)
        await pilot.press("escape")  # clears a non-empty query
        await settle(pilot)
        assert app.main.query_one(SearchInput).value == ""
        assert app.is_running
        await pilot.press("escape")  # an empty query: quit
        await settle(pilot)
        assert not app.is_running


async def test_ctrl_c_quits(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+c")
        await settle(pilot)
        assert not app.is_running


async def test_preview_shows_the_chunk_at_80x24_scrolls_and_toggles(
        mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await type_query(pilot, "neap quarter moons")
        hit = app.main.query_one(ResultsList).current_hit
        assert hit is not None
        first_words = " ".join(hit.text.split()[:6])
        assert first_words in screen_text(app)  # the chunk itself, not only metadata
        preview = app.main.query_one(PreviewPane)
        assert preview.max_scroll_y > 0
        await pilot.press("shift+down", "shift+down")
        await settle(pilot)
        assert preview.scroll_y == 2
        await pilot.press("shift+up")
        await settle(pilot)
        assert preview.scroll_y == 1
        await pilot.press("ctrl+underscore")  # ctrl+/ in a terminal
        await settle(pilot)
        assert not preview.display and first_words not in screen_text(app)
        await pilot.press("f7")
        await settle(pilot)
        assert preview.display


async def test_bad_keymap_entries_warn(mem_trawl: trawl.Trawl,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAWL_TUI_KEYMAP", "pipline=f12,nonsense,help=f11")
    app = _app(mem_trawl)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        text = " ".join(_notes(app))
        assert "no key id 'pipline' (did you mean pipeline" in text
        assert "'nonsense' is not ID=KEYS" in text
        assert "'help'" not in text  # the good entry is taken silently
        assert app.keymap["help"] == "f11"


# -- 2. escaping: exactly the CLI's, for bidi and controls ----------------------------------
async def test_bidi_and_controls_are_escaped_like_the_cli(host: trawl.PluginHost) -> None:
    import tui_hashing

    from trawl.display import safe_text

    title = "invoice\u202etxt.exe\x1b[2J"
    doc = trawl.Document(id="evil\u2066id", text="payload \u202e reversed \x9b text moon",
                         metadata={"title": title, "path": "docs/evil\u202e.md"})
    with trawl.Trawl.memory(tui_hashing.hybrid_pipeline(), host=host) as t:
        t.add([doc], show_progress=False)
        app = _app(t)
        async with app.run_test(size=SMALL) as pilot:
            await type_query(pilot, "payload moon")
            shown = screen_text(app)
            assert safe_text(title) in shown  # the CLI's escape: invoice\u202etxt.exe\x1b[2J
            for raw in ("\u202e", "\u2066", "\x1b", "\x9b"):
                assert raw not in shown
            # rows stay whole: every line of the screen is exactly 80 cells
            from rich.cells import cell_len

            assert {cell_len(line) for line in shown.splitlines()} == {80}


# -- 8. smaller items ---------------------------------------------------------------------
async def test_multi_line_paste_keeps_every_line(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.main.query_one(SearchInput).post_message(events.Paste("spring\nneap\u202e tides"))
        await settle(pilot)
        assert app.main.query_one(SearchInput).value == "spring neap tides"


async def test_history_records_queries_run_and_left_on_screen(
        mem_trawl: trawl.Trawl, monkeypatch: pytest.MonkeyPatch) -> None:
    import trawl_tui.screens.main as main_module

    monkeypatch.setattr(main_module, "HISTORY_PAUSE", 0.2)
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await type_query(pilot, "glaciers")
        assert await wait_for(pilot, lambda: app.session.history.entries == ["glaciers"])
        app.main.query_one(SearchInput).value = "glaci"  # edited, then left alone
        assert await wait_for(pilot, lambda: app.session.history.entries == ["glaciers",
                                                                             "glaci"]), \
            app.session.history.entries


def test_counts_and_stopwords() -> None:
    assert count_label(1, "document") == "1 document"
    assert count_label(2, "hit") == "2 hits"
    assert query_terms("the tides of the moon") == ["tides", "moon"]
    assert query_terms("to be") == ["be", "to"]  # only function words: keep them


async def test_osc52_copy_does_not_claim_success(mem_trawl: trawl.Trawl,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(actions, "copy_with_tool", lambda text: None)
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await settle(pilot)
        app.copy_text("hello", "path")
        await settle(pilot)
        note = list(app._notifications)[-1]
        assert note is not None and note.severity == "warning"
        assert "OSC 52" in str(note.message) and "copied" not in str(note.message).lower()


async def test_f3_focuses_the_folder_input(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await pilot.press("f3")
        await settle(pilot)
        assert isinstance(app.screen, IndexScreen)
        assert app.focused is app.screen.query_one("#index-folder", Input)


async def test_grouped_single_document_says_document(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SMALL) as pilot:
        await type_query(pilot, "sun")
        app.main.apply_filter("title=Tides")
        await pilot.press("ctrl+g")
        await settle(pilot)
        assert app.main.query_one(StatusBar).hits_label == "1 document"
