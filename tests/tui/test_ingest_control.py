"""Ingestion you control: progress in documents, a cancel key that stops after the batch
being written, and a quit that asks (finish, or cancel and quit) and leaves nothing running."""

from __future__ import annotations

from pathlib import Path

import pytest
from tui_helpers import IngestGate, settle, wait_for, write_files

import trawl
from trawl_tui.app import make_app
from trawl_tui.screens import ChoiceScreen, IndexScreen
from trawl_tui.widgets import StatusBar

SIZE = (100, 30)


async def test_cancel_key_stops_after_the_batch_and_keeps_it(
        disk_trawl: trawl.Trawl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "notes"
    write_files(folder, 40)  # two batches of 32 and 8
    gate = IngestGate(monkeypatch)
    app = make_app(disk_trawl, debounce=0, cursor_blink=False, history=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        await settle(pilot)
        assert isinstance(app.screen, IndexScreen)
        await pilot.press(*str(folder), "enter")
        assert await wait_for(pilot, gate.reached.is_set)
        # (no ``settle`` while the gate holds: it waits for every worker)
        status = app.main.query_one(StatusBar)
        assert await wait_for(pilot, lambda: "32 docs" in status.activity)  # not bytes
        assert "/40 files" in status.activity
        await pilot.press("f8")
        await pilot.pause(0.1)
        assert app.ingest_cancel is not None and app.ingest_cancel.is_set()
        assert "cancelling after the current batch" in status.activity
        gate.release()
        assert await wait_for(pilot, lambda: not app.ingest_running())
        await settle(pilot)
        assert disk_trawl.info().documents == 32  # the committed batch stays
        notes = [str(n.message) for n in app._notifications]
        assert any(n.startswith("cancelled after 32 added") for n in notes)
        assert not any(n.startswith("indexing") for n in [status.activity])
        app.start_ingest(str(folder))  # again: the rest lands, nothing is doubled
        assert await wait_for(pilot, lambda: not app.ingest_running())
        await settle(pilot)
        assert disk_trawl.info().documents == 40


async def test_quit_during_ingest_asks_and_cancel_quits_after_the_batch(
        disk_trawl: trawl.Trawl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "notes"
    write_files(folder, 40)
    gate = IngestGate(monkeypatch)
    app = make_app(disk_trawl, debounce=0, cursor_blink=False, history=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.start_ingest(str(folder))
        assert await wait_for(pilot, gate.reached.is_set)
        await pilot.press("ctrl+q")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        assert isinstance(app.screen, ChoiceScreen) and app.screen.id == "quit-ingest"
        assert app.is_running  # it asked instead of leaving the worker behind
        await pilot.press("c")
        await pilot.pause(0.1)
        assert app.ingest_cancel is not None and app.ingest_cancel.is_set()
        assert app.is_running  # still on screen until the batch is written
        gate.release()
        assert await wait_for(pilot, lambda: not app.is_running)
    assert app.ingest_done is not None and app.ingest_done.is_set()  # the worker returned
    assert disk_trawl.info().documents == 32


async def test_quit_during_ingest_finish_waits_for_the_end(
        disk_trawl: trawl.Trawl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "notes"
    write_files(folder, 40)
    gate = IngestGate(monkeypatch)
    app = make_app(disk_trawl, debounce=0, cursor_blink=False, history=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.start_ingest(str(folder))
        assert await wait_for(pilot, gate.reached.is_set)
        await pilot.press("ctrl+c")
        assert await wait_for(pilot, lambda: isinstance(app.screen, ChoiceScreen))
        await pilot.press("f")
        await pilot.pause(0.1)
        assert app.is_running and app.ingest_cancel is not None
        assert not app.ingest_cancel.is_set()
        gate.release()
        assert await wait_for(pilot, lambda: not app.is_running)
    assert disk_trawl.info().documents == 40
