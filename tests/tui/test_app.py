"""Drive the TUI with Pilot against a small real index (hashing hybrid pipeline)."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import tui_hashing
from conftest import LEX, corpus_documents
from textual import events
from textual.widgets import Input, SelectionList
from tui_helpers import settle, type_query, wait_for

import trawl
from trawl.errors import PluginLoadError
from trawl_tui.app import TrawlApp, make_app
from trawl_tui.messages import SearchDone, SearchRequest
from trawl_tui.screens import (
    DetailScreen,
    HelpScreen,
    IndexScreen,
    OpenFailedScreen,
    PipelineScreen,
    PluginsScreen,
)
from trawl_tui.session import SearchOptions, Session
from trawl_tui.widgets import ResultsList, SearchInput, StatusBar

SIZE = (110, 36)


def _app(t: trawl.Trawl, **kwargs: object) -> TrawlApp:
    kwargs.setdefault("debounce", 0)
    return make_app(t, cursor_blink=False, **kwargs)  # type: ignore[arg-type]


def _results(app: TrawlApp) -> ResultsList:
    return app.main.query_one(ResultsList)


def _shown_text(app: TrawlApp) -> str:
    results = _results(app)
    return "\n".join(str(results.get_option_at_index(i).prompt)
                     for i in range(results.option_count))


async def test_typing_a_query_shows_hits_with_per_source_scores(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "volcano magma")
        hits = _results(app).hits
        assert hits[0].doc_id == "volcano"
        assert set(hits[0].scores_by_source) == {LEX, "grams"}
        text = _shown_text(app)
        assert "Volcanoes" in text and "docs/volcano.md" in text
        assert "bm25 #1" in text and "grams #1" in text
        status = app.main.query_one(StatusBar)
        assert status.hits_label == "10 hits"
        assert status.latency_label.endswith(")") and " ms " in status.latency_label
        # the query terms are highlighted in the snippet
        prompt = _results(app).get_option_at_index(0).prompt
        styled = {prompt.plain[s.start:s.end] for s in prompt.spans if "reverse" in str(s.style)}
        assert {"volcano", "magma"} <= {w.lower() for w in styled}
        # clearing the input clears the results
        app.main.query_one(SearchInput).value = ""
        await settle(pilot)
        assert _results(app).option_count == 0


async def test_debounced_typing_paints_only_the_final_query(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl, debounce=1.0)
    painted: list[str] = []
    app.on_paint = lambda request, _t: painted.append(request.query)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot, rounds=1)
        for ch in "comets":  # as a terminal driver delivers a fast burst of keys
            app.post_message(events.Key(ch, ch))
        await pilot.pause(1.3)
        await settle(pilot)
        # the keys land before the first Input.Changed is handled: the leading edge
        # searches "comets" at once, the trailing edge finds that search already issued
        assert painted == ["comets"]
        assert app.main._seq == 1
        assert _results(app).hits[0].doc_id == "comets"


async def test_stale_results_are_never_painted(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "bread")
        main = app.main
        good = list(_results(app).hits)
        # an answer to an older request arrives late: it must be ignored
        old = SearchRequest(seq=main._seq - 1, query="bread", options=SearchOptions())
        stale_hits = mem_trawl.search("glaciers", top_k=3)
        main.post_message(SearchDone(old, stale_hits, mem_trawl.last_trace, 1.0))
        # and an answer for a query that is no longer in the input, too
        other = SearchRequest(seq=main._seq, query="glaciers", options=SearchOptions())
        main.post_message(SearchDone(other, stale_hits, mem_trawl.last_trace, 1.0))
        await settle(pilot)
        assert [h.chunk_id for h in _results(app).hits] == [h.chunk_id for h in good]
        # many fast keystrokes: whatever finishes, the final paint answers the final input
        await pilot.press(*" sourdough starter yeast".replace(" ", "_"))
        await settle(pilot)
        assert main.painted is not None
        assert main.painted.query == main.query_one(SearchInput).value


async def test_pipeline_switch_changes_results_and_is_remembered(
        mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "moon tides")
        assert set(_results(app).hits[0].scores_by_source) == {LEX, "grams"}
        # the switcher: untick bm25, set top_k 3, apply
        await pilot.press("f2")
        await settle(pilot)
        assert isinstance(app.screen, PipelineScreen)
        app.screen.query_one(SelectionList).deselect(LEX)
        app.screen.query_one("#pipeline-topk", Input).value = "3"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert not isinstance(app.screen, PipelineScreen)
        assert app.session.options.retrievers == ("grams",)
        assert app.session.options.top_k == 3
        hits = _results(app).hits
        assert len(hits) == 3
        assert all(set(h.scores_by_source) == {"grams"} for h in hits)
        assert "grams · rerank overlap (pipeline) · top 3" in \
            app.main.query_one(StatusBar).options_label
        # the choice survives new queries
        app.main.query_one(SearchInput).value = ""
        await type_query(pilot, "comets")
        assert len(_results(app).hits) == 3
        # mode cycling: grams → all → bm25 → grams
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert app.session.options.retrievers == ()
        await pilot.press("ctrl+t")
        await settle(pilot)
        assert app.session.options.retrievers == (LEX,)
        assert all(set(h.scores_by_source) == {LEX} for h in _results(app).hits)
        await pilot.press("ctrl+t", "ctrl+t")
        await settle(pilot)
        assert app.session.options.retrievers == ()
        # fusion cycles the pipeline's own (rrf) → weighted; scores change with the method
        assert "rrf · pipeline" in app.main.query_one(StatusBar).options_label
        rrf_scores = [h.score for h in _results(app).hits]
        await pilot.press("ctrl+f")
        await settle(pilot)
        assert app.session.options.fusion == "weighted"
        assert "weighted · override" in app.main.query_one(StatusBar).options_label
        assert [h.score for h in _results(app).hits] != rrf_scores
        # reranker (configured but disabled by default) on: its score appears
        await pilot.press("ctrl+e")
        await settle(pilot)
        assert app.session.options.rerank is True
        assert all("overlap" in h.scores_by_source for h in _results(app).hits)


async def test_command_palette_switches_retrievers(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "sun")
        await pilot.press("f10")
        await settle(pilot)
        await pilot.press(*f"only {LEX}")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot)
        assert app.session.options.retrievers == (LEX,)
        assert all(set(h.scores_by_source) == {LEX} for h in _results(app).hits)


async def test_detail_shows_chunk_neighbours_and_copies_citation(
        mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "spring neap")
        assert _results(app).hits[0].chunk_id == "tides#1"
        await pilot.press("enter")  # records the query, opens the highlighted hit
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        assert screen.hit.chunk_id == "tides#1"
        assert screen.neighbours[0] is not None and screen.neighbours[0].id == "tides#0"
        assert screen.neighbours[1] is not None and screen.neighbours[1].id == "tides#2"
        await pilot.press("c")  # the copy menu
        await settle(pilot)
        await pilot.press("c")  # citation
        await settle(pilot)
        assert app.clipboard.startswith("Tides — docs/tides.md (chars ")
        assert app.clipboard.endswith("[tides#1]")
        await pilot.press("right")
        await settle(pilot)
        assert screen.hit.chunk_id == "tides#2"
        assert screen.neighbours[1] is not None and screen.neighbours[1].id == "tides#3"
        await pilot.press("escape")
        await settle(pilot)
        assert app.screen is app.main
        assert app.session.history.entries == ["spring neap"]


async def test_history_on_ctrl_r_keeps_the_draft_and_persists(
        mem_trawl: trawl.Trawl, tmp_path: Path) -> None:
    app = _app(mem_trawl)
    saved = tmp_path / "session.json"
    async with app.run_test(size=SIZE) as pilot:
        field = app.main.query_one(SearchInput)
        for q in ("moon", "honey bees", "chess"):
            field.value = ""
            field.focus()
            await type_query(pilot, q)
            await pilot.press("enter")  # records it and opens the hit
            await settle(pilot)
            await pilot.press("escape")
            await settle(pilot)
        field.value = ""
        await type_query(pilot, "unsent dra")
        # arrows move through hits, never replace the query
        await pilot.press("up", "down")
        assert field.value == "unsent dra"
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press("escape")  # nothing chosen: the draft is untouched
        await settle(pilot)
        assert field.value == "unsent dra"
        await pilot.press("ctrl+r")
        await settle(pilot)
        await pilot.press(*"mo")  # typing filters the history
        await settle(pilot)
        assert app.screen.shown == ["moon"]  # type: ignore[attr-defined]
        await pilot.press("enter")
        await settle(pilot)
        assert field.value == "moon"
        assert _results(app).hits[0].doc_id == "tides"  # recall re-runs the search
        assert "unsent dra" in app.session.history.entries  # the draft was kept
        app.set_top_k(5)
        await pilot.press("ctrl+s")
        await settle(pilot)
        app.screen.query_one("#prompt-path", Input).value = str(saved)
        await pilot.press("enter")
        await settle(pilot)
    data = json.loads(saved.read_text())
    assert data["history"][:3] == ["moon", "honey bees", "chess"]
    assert data["options"]["top_k"] == 5

    reopened = make_app(mem_trawl, session=saved, debounce=0, cursor_blink=False)
    async with reopened.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert reopened.session.options.top_k == 5
        await pilot.press("ctrl+r", "enter")  # the newest query
        await settle(pilot)
        assert len(_results(reopened).hits) == 5


async def test_history_persists_per_index_across_runs(disk_trawl: trawl.Trawl,
                                                      tmp_path: Path) -> None:
    disk_trawl.add(corpus_documents(), show_progress=False)
    home = tmp_path / "home"
    for run in range(2):
        app = _app(disk_trawl, history_home=home)
        async with app.run_test(size=SIZE) as pilot:
            if run == 0:
                await type_query(pilot, "volcano")
                await pilot.press("enter")
                await settle(pilot)
            else:
                await settle(pilot)
                assert app.session.history.entries == ["volcano"]
    files = list((home / "tui" / "history").glob("*.json"))
    assert len(files) == 1 and files[0].stat().st_mode & 0o077 == 0
    off = _app(disk_trawl, history_home=home, history=False)
    async with off.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert off.session.history.entries == []


async def test_add_folder_from_index_screen_updates_counts(disk_trawl: trawl.Trawl,
                                                            corpus_dir: Path) -> None:
    app = _app(disk_trawl)
    progress: list[tuple[int, int | None]] = []
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "glaciers")
        assert _results(app).hits == []
        await pilot.press("f3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, IndexScreen)
        assert re.search(r"documents\s+0 *\n", _static_text(screen, "#index-stats"))
        original = screen.show_progress
        screen.show_progress = lambda count, text: (  # type: ignore[method-assign]
            progress.append((count.documents, count.files_total)), original(count, text))
        screen.query_one("#index-folder", Input).value = str(corpus_dir)
        await pilot.click("#index-add")
        await settle(pilot, rounds=5)
        stats = _static_text(screen, "#index-stats")
        assert re.search(r"documents\s+8 *\n", stats)  # 8 .md files; hidden folder and .png skipped
        assert disk_trawl.info().documents == 8
        assert progress and progress[-1] == (8, 9)  # documents (not bytes); 9 files (a .png)
        assert "8 added" in str(screen.query_one("#index-progress-label").render())
        await pilot.press("escape")
        await settle(pilot)
        # the open query re-ran against the grown index
        assert _results(app).hits[0].doc_id.endswith("glaciers.md")
        # a second run changes nothing
        app.start_ingest(str(corpus_dir))
        await settle(pilot, rounds=5)
        assert disk_trawl.info().documents == 8


def _static_text(screen: object, selector: str) -> str:
    from rich.console import Console

    widget = screen.query_one(selector)  # type: ignore[attr-defined]
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(widget.content)
    return console.export_text()


async def test_failing_search_shows_error_notification(disk_trawl: trawl.Trawl,
                                                       corpus_dir: Path) -> None:
    disk_trawl.add(corpus_documents(), show_progress=False)
    app = _app(disk_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "bees")
        assert _results(app).hits[0].doc_id == "bees"
        assert disk_trawl.path is not None
        shutil.rmtree(disk_trawl.path)  # the index folder is deleted underneath the app
        await pilot.press("space", "d")
        await settle(pilot)
        assert app.is_running
        assert any("is missing" in e for e in app.errors_shown)
        notes = list(app._notifications)
        assert notes and notes[-1].severity == "error"
        assert notes[-1].title == "search failed: index corrupt"
        # the old results stay; the status says the search failed
        assert _results(app).hits[0].doc_id == "bees"
        assert app.main.query_one(StatusBar).hits_label == "error"


async def test_session_naming_unknown_retriever_warns_then_errors(
        mem_trawl: trawl.Trawl, tmp_path: Path) -> None:
    session = Session(options=SearchOptions(retrievers=("dense",)))
    app = make_app(mem_trawl, session=session, debounce=0, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "rust")
        assert app.is_running
        assert any("unknown retriever" in e for e in app.errors_shown)
        app.set_retrievers(())
        await settle(pilot)
        assert _results(app).hits[0].doc_id == "rust"


async def test_plugins_screen_lists_components_and_load_errors(
        mem_trawl: trawl.Trawl) -> None:
    mem_trawl.host.load_errors.append(PluginLoadError(
        distribution="trawl-broken", entry_point="broken",
        cause=ImportError("No module named 'nonexistent_backend'")))
    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await settle(pilot)
        assert isinstance(app.screen, PluginsScreen)
        text = _static_text(app.screen, "#plugins-table")
        assert "tui-test-hashing" in text and "encoder:hash-words" in text
        assert "broken" in text and "nonexistent_backend" in text
        assert "trawl.builtin (core)" in text


async def test_help_screen_and_remapped_keys(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl, keymap={"pipeline": "f9"})
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        text = _static_text(app.screen, "#help-keys")
        for binding_id in ("pipeline", "cycle-mode", "copy-hit", "hit-next", "history",
                           "next-chunk", "focus-filter", "toggle-group"):
            assert binding_id in text
        assert "f9" in text
        await pilot.press("escape")
        await pilot.press("f9")
        await settle(pilot)
        assert isinstance(app.screen, PipelineScreen)
        await pilot.press("escape")
        await settle(pilot)
        await type_query(pilot, "sun?")  # "?" is just a character in the search box
        assert app.main.query_one(SearchInput).value == "sun?"


async def test_opening_by_path_in_a_worker(tmp_path: Path, host: trawl.PluginHost,
                                           monkeypatch: object) -> None:
    folder = tmp_path / "by-path"
    with trawl.Trawl.open(folder, pipeline=tui_hashing.hybrid_pipeline(), host=host,
                          show_progress=False) as t:
        t.add(corpus_documents(), show_progress=False)
    # entry-point plugins do not know the test encoders: opening fails, shown as an error
    app = make_app(str(folder), debounce=0, cursor_blink=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.trawl is None and app.is_running
        assert app.errors_shown and "hash-words" in app.errors_shown[-1]
        # not a dead end: pick, retry or quit; quitting exits non-zero
        assert isinstance(app.screen, OpenFailedScreen)
        await pilot.press("r")  # retry fails the same way and asks again
        await settle(pilot)
        ok = await wait_for(pilot, lambda: isinstance(app.screen, OpenFailedScreen))
        assert ok, (app.errors_shown, [w for w in app.workers], app.screen_stack)
        await pilot.press("q")
        await settle(pilot)
    assert app.return_code == 1


async def test_ranks_exactly_like_trawl_search(host: trawl.PluginHost) -> None:
    """A fresh session uses the pipeline's own fusion (weighted here) and reranker."""
    pipeline = {**tui_hashing.hybrid_pipeline(lexical=LEX),
                "fusion": {"method": "weighted"}}
    with trawl.Trawl.memory(pipeline, host=host) as t:
        t.add(corpus_documents(), show_progress=False)
        app = _app(t)
        async with app.run_test(size=SIZE) as pilot:
            for query in ("sun moon tides", "bread yeast", "sea"):
                app.main.query_one(SearchInput).value = ""
                await type_query(pilot, query)
                expected = t.search(query, 10)
                shown = _results(app).hits
                assert [(h.chunk_id, h.score) for h in shown] == \
                    [(h.chunk_id, h.score) for h in expected]
            assert "weighted · pipeline" in app.main.query_one(StatusBar).options_label


async def test_the_open_index_is_frozen_out_of_gc_scans_while_the_app_runs(
        mem_trawl: trawl.Trawl) -> None:
    import gc

    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "volcano")
        assert gc.get_freeze_count() > 0  # full collections skip the index's objects
        assert _results(app).hits[0].doc_id == "volcano"
    assert gc.get_freeze_count() == 0  # and nothing stays frozen after the app
