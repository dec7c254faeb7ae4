"""Issue 17: keyboard flow, filter bar, grouping, open/copy, applicable controls, escaping,
index picker. Pilot against small real indexes (BM25 plugin + hashing encoders)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import tui_hashing
from conftest import CORPUS, LEX, corpus_documents
from textual.widgets import Footer
from tui_helpers import settle, type_query, wait_for

import trawl
from trawl.storage import folder_sizes
from trawl_tui.app import TrawlApp, make_app, progress_text
from trawl_tui.ingest import IngestCount
from trawl_tui.present import readable_value
from trawl_tui.screens import ChoiceScreen, CopyMenu, IndexPicker
from trawl_tui.widgets import FilterBar, PreviewPane, ResultsList, SearchInput, StatusBar
from trawl_tui.widgets.filter_bar import FieldSuggester
from trawl_tui.widgets.results import render_hit

SIZE = (120, 36)


def _app(t: trawl.Trawl, **kwargs: object) -> TrawlApp:
    return make_app(t, debounce=0, cursor_blink=False, history=False,
                    **kwargs)  # type: ignore[arg-type]


def _results(app: TrawlApp) -> ResultsList:
    return app.main.query_one(ResultsList)


async def test_arrows_move_hits_from_the_query_and_letters_in_the_list_go_back(
        mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "sun")
        field = app.main.query_one(SearchInput)
        results = _results(app)
        assert results.highlighted == 0 and app.focused is field
        await pilot.press("down", "ctrl+n")
        assert results.highlighted == 2 and app.focused is field
        await pilot.press("up", "ctrl+p")
        assert results.highlighted == 0
        await pilot.press("pagedown")
        assert results.highlighted is not None and results.highlighted > 2
        assert field.value == "sun"  # arrows never touched the query
        # the preview follows the highlight
        preview = app.main.query_one(PreviewPane)
        assert preview.hit is not None and preview.hit.chunk_id == results.current_hit.chunk_id
        results.focus()
        await pilot.press("home", "j", "j", "k")
        assert results.highlighted == 1
        await pilot.press("s", "e", "t")  # letters typed in the list go to the query
        await settle(pilot)
        assert app.focused is field and field.value == "sunset"


async def test_filter_bar_uses_where_syntax_and_completes_fields(
        mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "sun")
        assert {h.doc_id for h in _results(app).hits} > {"tides"}
        bar = app.main.query_one(FilterBar)
        assert await wait_for(pilot, lambda: "title" in bar.field_suggester.fields)
        assert await bar.field_suggester.get_suggestion("ti") == "title"
        assert await bar.field_suggester.get_suggestion("lang=en ti") == "lang=en title"
        await pilot.press("ctrl+l")
        assert app.focused is bar
        await pilot.press(*"title=Tides", "enter")
        await settle(pilot)
        assert app.session.options.where == "title=Tides"
        assert {h.doc_id for h in _results(app).hits} == {"tides"}
        # a bad expression: an error, the bar marked, the last good filter kept
        await pilot.press("ctrl+l", "ctrl+u", *"year>=", "enter")
        await settle(pilot)
        assert bar.has_class("-invalid")
        assert any("year" in e for e in app.errors_shown)
        assert app.session.options.where == "title=Tides"


async def test_group_by_document_shows_best_chunk_and_count(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "tides moon sun")
        ungrouped = _results(app).hits
        assert len({h.doc_id for h in ungrouped}) < len(ungrouped)  # tides has 4 chunks
        await pilot.press("ctrl+g")
        await settle(pilot)
        grouped = _results(app).hits
        docs = [h.doc_id for h in grouped]
        assert len(docs) == len(set(docs)) and docs[0] == ungrouped[0].doc_id
        assert [h.rank for h in grouped] == list(range(1, len(grouped) + 1))
        assert _results(app).chunk_counts["tides"] >= 2
        prompt = str(_results(app).get_option_at_index(docs.index("tides")).prompt)
        assert "chunks)" in prompt
        assert "documents" in app.main.query_one(StatusBar).hits_label


@pytest.fixture
def file_trawl(host: trawl.PluginHost, corpus_dir: Path):  # type: ignore[no-untyped-def]
    docs = [trawl.Document(id=name.removesuffix(".md"), text=text,
                           metadata={"title": title, "path": str(corpus_dir / name)})
            for name, (title, text) in sorted(CORPUS.items())]
    with trawl.Trawl.memory(tui_hashing.hybrid_pipeline(lexical=LEX), host=host) as t:
        t.add(docs, show_progress=False)
        yield t


async def test_open_runs_editor_at_the_chunk_line(file_trawl: trawl.Trawl, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "args.json"
    editor = tmp_path / "editor.py"
    editor.write_text(f"import json, sys\nopen({str(record)!r}, 'w').write("
                      "json.dumps(sys.argv[1:]))\n")
    monkeypatch.setenv("VISUAL", f"{os.sys.executable} {editor}")  # type: ignore[attr-defined]
    app = _app(file_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "bay of fundy resonates")
        hit = _results(app).current_hit
        assert hit is not None and hit.doc_id == "tides" and hit.chunk_id != "tides#0"
        await pilot.press("ctrl+o")
        await settle(pilot)
        args = json.loads(record.read_text())
        text = Path(hit.source).read_text()
        line = text.count("\n", 0, hit.metadata["chunk_start"]) + 1
        assert line > 1 and args == [f"+{line}", hit.source]


async def test_copy_menu_copies_path_text_citation_json(file_trawl: trawl.Trawl,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(var, raising=False)  # no clipboard tool: OSC 52 through Textual
    app = _app(file_trawl)
    async with app.run_test(size=SIZE) as pilot:
        await type_query(pilot, "honey bees")
        hit = _results(app).current_hit
        assert hit is not None
        for key, expected in (("p", hit.source), ("t", hit.text)):
            await pilot.press("ctrl+y")
            await settle(pilot)
            assert isinstance(app.screen, CopyMenu)
            await pilot.press(key)
            await settle(pilot)
            assert app.clipboard == expected
        await pilot.press("ctrl+y", "j")
        await settle(pilot)
        assert json.loads(app.clipboard)["chunk_id"] == hit.chunk_id


async def test_only_applicable_controls(host: trawl.PluginHost) -> None:
    """A bm25-only pipeline: no rerank, mode or fusion keys, no encoder time."""
    with trawl.Trawl.memory({"name": "lex", "retrievers": [{"name": "bm25", "index": "bm25"}]},
                            host=host) as t:
        t.add(corpus_documents(), show_progress=False)
        app = _app(t)
        async with app.run_test(size=(200, 40)) as pilot:
            await type_query(pilot, "bees")
            assert _results(app).hits[0].doc_id == "bees"
            main = app.main
            assert not main.check_action("toggle_rerank", ())
            assert not main.check_action("cycle_fusion", ())
            footer_keys = {b.binding.action for b in main.active_bindings.values()
                           if b.enabled and b.binding.show}
            assert "toggle_rerank" not in footer_keys and "cycle_mode" not in footer_keys
            assert main.query_one(Footer) is not None
            latency = main.query_one(StatusBar).latency_label
            assert "ret " in latency and "enc " not in latency
            assert "fusion" not in main.query_one(StatusBar).options_label


def test_rank_numbers_from_100_keep_their_columns() -> None:
    hit = trawl.Hit(doc_id="d", chunk_id="d#0", score=0.5, rank=123, text="some text",
                    metadata={"title": "T"},
                    scores_by_source={"bm25": trawl.SourceScore(score=1.0, rank=100),
                                      "dense": trawl.SourceScore(score=0.5, rank=7)})
    plain = render_hit(hit, "text", {"bm25": 1.0, "dense": 0.5}, 60, rank_width=3).plain
    first, second, _ = plain.split("\n")
    assert first.startswith("123  ")
    assert "#100 █" in second and "#7   █" in second


async def test_untrusted_text_is_shown_not_interpreted(host: trawl.PluginHost) -> None:
    evil_title = "[bold red]FAKE[/] [link=http://x]y[/link] \x1b]52;c;QUFB\x07\x1b[2J"
    doc = trawl.Document(id="evil", text="evil \x1b[31mred\x1b[0m text [/cyan] x",
                         metadata={"title": evil_title, "path": "a/[red]b.md"})
    with trawl.Trawl.memory({"name": "lex", "retrievers": [{"name": "bm25", "index": "bm25"}]},
                            host=host) as t:
        t.add([doc], show_progress=False)
        app = _app(t)
        async with app.run_test(size=SIZE) as pilot:
            await type_query(pilot, "evil")
            prompt = _results(app).get_option_at_index(0).prompt
            shown = str(prompt)
            assert "[bold red]FAKE[/]" in shown and "[/cyan]" in shown
            assert "\x1b" not in shown and "\x07" not in shown
            await pilot.press("enter")  # the detail screen renders the same text safely
            await settle(pilot)
            assert app.is_running and not app.errors_shown
            app.show_error(trawl.InputError("bad [/red] \x1b[2J name"))
            assert "\x1b" not in app.errors_shown[-1]


async def test_picker_skipped_for_one_index_filters_and_asks_did_you_mean(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAWL_HOME", str(tmp_path / "home"))
    with trawl.Trawl.open("default", pipeline="bm25", show_progress=False) as t:
        t.add(corpus_documents(), show_progress=False)
    # exactly one index: no picker, it opens
    app = make_app(None, debounce=0, cursor_blink=False, history=False)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(pilot, lambda: app.trawl is not None)
        assert not any(isinstance(s, IndexPicker) for s in app.screen_stack)
        await type_query(pilot, "volcano")
        assert _results(app).hits[0].doc_id.endswith("volcano")
    app.close_index()
    with trawl.Trawl.open("notes", pipeline="bm25", show_progress=False) as t:
        t.add(corpus_documents()[:2], show_progress=False)
    app = make_app(None, debounce=0, cursor_blink=False, history=False)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(pilot, lambda: isinstance(app.screen, IndexPicker)
                              and bool(app.screen.indexes))
        picker = app.screen
        assert [s.name for s in picker.indexes] == ["default", "notes"]  # type: ignore[attr-defined]
        # allocated bytes, as the index screen's "disk" (F3) shows
        assert picker.indexes[0].size_bytes == folder_sizes(picker.indexes[0].path)[0]  # type: ignore[attr-defined]
        await pilot.press(*"not")  # typing filters
        await settle(pilot)
        assert [s.name for s in picker.indexes] == ["notes"]  # type: ignore[attr-defined]
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: app.trawl is not None)
        assert app.info is not None and app.info.documents == 2
    app.close_index()
    # a typo: "did you mean", with the existing index focused; creating is never the default
    app = make_app("defualt", debounce=0, cursor_blink=False, history=False)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        dialog = app.screen
        assert "Did you mean 'default'?" in str(dialog.query_one("#choice-question").render())
        assert app.focused is not None and app.focused.name == "open:default"
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: app.trawl is not None)
        assert app.info is not None and app.info.documents == 8
    app.close_index()
    app = make_app("nosuchindex", debounce=0, cursor_blink=False, history=False)
    async with app.run_test(size=SIZE) as pilot:
        assert await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        assert app.focused is not None and app.focused.name == "pick"
        await pilot.press("enter")
        assert await wait_for(pilot, lambda: isinstance(app.screen, IndexPicker))
    assert not (tmp_path / "home" / "indexes" / "nosuchindex").exists()
    assert not (tmp_path / "home" / "indexes" / "defualt").exists()


def test_readable_metadata_and_progress_text() -> None:
    assert readable_value("size", 12_345) == "12.1 KiB"
    assert readable_value("content_hash", "a" * 64) == "a" * 12 + "…"
    # shown in UTC: the form a date filter compares with (mtime>=2023-11-14)
    assert readable_value("mtime", 1_700_000_000.0) == "2023-11-14 22:13 UTC"
    assert readable_value("year", 2020) == "2020"
    text = progress_text(IngestCount("indexing", 50, 40, 160, 0.25), 10.0)
    assert text == "indexing 50 docs · 40/160 files read · 5.0 docs/s · 0:10 elapsed · ETA 0:30"
    assert progress_text(IngestCount("scanning"), 1.0) == "scanning 0 docs · 0:01 elapsed"


def test_history_file_is_private(tmp_path: Path) -> None:
    from trawl_tui.session import History, history_file, load_history, save_history

    path = history_file(tmp_path / "idx", tmp_path / "home")
    assert path is not None
    save_history(path, History(entries=["a", "b"]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_history(path).entries == ["a", "b"]
    path.write_text("{broken")
    assert load_history(path).entries == []  # a damaged history never stops the app


def test_field_suggester_values() -> None:
    import asyncio

    s = FieldSuggester()
    s.fields = {"lang": ["de", "en"], "year": ["2019", "2020"]}
    assert asyncio.run(s.get_suggestion("la")) == "lang"
    assert asyncio.run(s.get_suggestion("lang=e")) == "lang=en"
    assert asyncio.run(s.get_suggestion("year>=2020 lang=d")) == "year>=2020 lang=de"
    assert asyncio.run(s.get_suggestion("nope")) is None


async def test_resize_switches_layout_and_rewraps_snippets(mem_trawl: trawl.Trawl) -> None:
    app = _app(mem_trawl)
    async with app.run_test(size=(200, 50)) as pilot:
        await type_query(pilot, "tides")
        assert app.main.has_class("-wide")
        wide = str(_results(app).get_option_at_index(0).prompt).split("\n")[2]
        await pilot.resize_terminal(80, 24)
        await settle(pilot)
        assert not app.main.has_class("-wide")
        narrow = str(_results(app).get_option_at_index(0).prompt).split("\n")[2]
        assert len(narrow) < 80 and narrow != wide  # cut for the new width
