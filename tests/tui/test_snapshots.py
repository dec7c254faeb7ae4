"""SVG snapshots (pytest-textual-snapshot) at 80×24, 120×40 and 200×60.

Deterministic by construction: an in-memory index (no temp paths, 0 bytes on disk),
hashing encoders (stable scores), latency masked, cursor blink off.
Update with ``pytest tests/tui/test_snapshots.py --snapshot-update`` only for screens you
changed on purpose, after looking at the HTML diff report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tui_hashing
from conftest import corpus_documents
from textual.pilot import Pilot
from tui_helpers import IngestGate, settle, type_query, wait_for, write_files

import trawl
from trawl_tui.app import TrawlApp, make_app

SMALL, MEDIUM, LARGE = (80, 24), (120, 40), (200, 60)
SIZES = pytest.mark.parametrize("size", [SMALL, MEDIUM, LARGE], ids=["80x24", "120x40",
                                                                     "200x60"])


@pytest.fixture
def snap_app() -> Iterator[TrawlApp]:
    t = trawl.Trawl.memory(tui_hashing.hybrid_pipeline(), host=tui_hashing.host())
    t.add(corpus_documents(), show_progress=False)
    yield make_app(t, debounce=0, mask_latency=True, cursor_blink=False, history=False)
    t.close()


@pytest.fixture
def empty_app() -> Iterator[TrawlApp]:
    t = trawl.Trawl.memory(tui_hashing.hybrid_pipeline(), host=tui_hashing.host())
    yield make_app(t, debounce=0, mask_latency=True, cursor_blink=False, history=False)
    t.close()


@SIZES
def test_results_with_preview(snap_app: TrawlApp, snap_compare: object,
                              size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot) -> None:
        await type_query(pilot, "moon tides")

    assert snap_compare(snap_app, run_before=run_before, terminal_size=size)  # type: ignore[operator]


@SIZES
def test_pipeline_dialog(snap_app: TrawlApp, snap_compare: object,
                         size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot) -> None:
        await type_query(pilot, "sun")
        await pilot.press("f2")
        await settle(pilot)

    assert snap_compare(snap_app, run_before=run_before, terminal_size=size)  # type: ignore[operator]


def test_single_retriever_grouped(snap_app: TrawlApp, snap_compare: object) -> None:
    async def run_before(pilot: Pilot) -> None:
        await type_query(pilot, "sun")
        await pilot.press("ctrl+t", "ctrl+t", "ctrl+g")  # all → words → grams; by document
        await settle(pilot)

    assert snap_compare(snap_app, run_before=run_before, terminal_size=MEDIUM)  # type: ignore[operator]


def test_detail_with_neighbours(snap_app: TrawlApp, snap_compare: object) -> None:
    async def run_before(pilot: Pilot) -> None:
        await type_query(pilot, "spring neap")
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(snap_app, run_before=run_before, terminal_size=SMALL)  # type: ignore[operator]


def test_copy_menu(snap_app: TrawlApp, snap_compare: object) -> None:
    async def run_before(pilot: Pilot) -> None:
        await type_query(pilot, "bees")
        await pilot.press("ctrl+y")
        await settle(pilot)

    assert snap_compare(snap_app, run_before=run_before, terminal_size=SMALL)  # type: ignore[operator]


def test_index_screen(snap_app: TrawlApp, snap_compare: object) -> None:
    async def run_before(pilot: Pilot) -> None:
        await pilot.press("f3")
        await settle(pilot)

    assert snap_compare(snap_app, run_before=run_before, terminal_size=SMALL)  # type: ignore[operator]


@pytest.mark.parametrize("size", [SMALL, LARGE], ids=["80x24", "200x60"])
def test_empty_index(empty_app: TrawlApp, snap_compare: object, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot) -> None:
        await settle(pilot)

    assert snap_compare(empty_app, run_before=run_before, terminal_size=size)  # type: ignore[operator]


def test_no_hits(snap_app: TrawlApp, snap_compare: object) -> None:
    async def run_before(pilot: Pilot) -> None:
        await type_query(pilot, "sun")
        await pilot.press("ctrl+l", *"title=zz", "enter")  # a filter nothing matches
        await settle(pilot)

    assert snap_compare(snap_app, run_before=run_before, terminal_size=SMALL)  # type: ignore[operator]


def test_bad_filter_error(snap_app: TrawlApp, snap_compare: object) -> None:
    async def run_before(pilot: Pilot) -> None:
        await type_query(pilot, "sun")
        await pilot.press("ctrl+l")
        await pilot.press(*"year>=")
        await pilot.press("enter")
        await settle(pilot)

    assert snap_compare(snap_app, run_before=run_before, terminal_size=SMALL)  # type: ignore[operator]


def test_pending_filter(snap_app: TrawlApp, snap_compare: object) -> None:
    """Typed but not applied: the bar is marked and the status line says "pending"."""
    async def run_before(pilot: Pilot) -> None:
        await type_query(pilot, "sun")
        await pilot.press("ctrl+l", *"title=Comets")
        await settle(pilot)

    assert snap_compare(snap_app, run_before=run_before, terminal_size=SMALL)  # type: ignore[operator]


def test_applied_filter(snap_app: TrawlApp, snap_compare: object) -> None:
    async def run_before(pilot: Pilot) -> None:
        await type_query(pilot, "sun")
        await pilot.press("ctrl+l", *"title=Comets", "enter")
        await settle(pilot)

    assert snap_compare(snap_app, run_before=run_before, terminal_size=SMALL)  # type: ignore[operator]


def test_ingest_with_cancel(snap_app: TrawlApp, snap_compare: object, tmp_path: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingestion held after its first batch of 32, F8 pressed: "cancelling…"."""
    write_files(tmp_path / "notes", 40)
    gate = IngestGate(monkeypatch, hold_s=3)

    async def run_before(pilot: Pilot) -> None:
        await pilot.press("f3")
        await settle(pilot)
        snap_app.start_ingest(str(tmp_path / "notes"))
        assert await wait_for(pilot, gate.reached.is_set)
        await pilot.pause(0.3)
        await pilot.press("f8")
        await pilot.pause(0.3)

    try:
        assert snap_compare(snap_app, run_before=run_before, terminal_size=SMALL)  # type: ignore[operator]
    finally:
        gate.release()
