"""SVG snapshots of the main screens (pytest-textual-snapshot).

Deterministic by construction: an in-memory index (no temp paths, 0 bytes on disk),
hashing encoders (stable scores), latency masked, cursor blink off.
Update with ``pytest tests/tui/test_snapshots.py --snapshot-update`` after looking at
the HTML diff report.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import tui_hashing
from conftest import corpus_documents
from textual.pilot import Pilot
from tui_helpers import settle, type_query

import trawl
from trawl_tui.app import TrawlApp, make_app

SIZE = (100, 30)


@pytest.fixture
def snap_app() -> Iterator[TrawlApp]:
    t = trawl.Trawl.memory(tui_hashing.hybrid_pipeline(), host=tui_hashing.host())
    t.add(corpus_documents(), show_progress=False)
    yield make_app(t, debounce=0, mask_latency=True, cursor_blink=False)
    t.close()


class TestMainScreen:
    def test_results(self, snap_app: TrawlApp, snap_compare: object) -> None:
        async def run_before(pilot: Pilot) -> None:
            await type_query(pilot, "moon tides")

        assert snap_compare(snap_app, run_before=run_before, terminal_size=SIZE)  # type: ignore[operator]

    def test_single_retriever(self, snap_app: TrawlApp, snap_compare: object) -> None:
        async def run_before(pilot: Pilot) -> None:
            await type_query(pilot, "sun")
            await pilot.press("ctrl+t", "ctrl+t")  # all → words → grams
            await settle(pilot)

        assert snap_compare(snap_app, run_before=run_before, terminal_size=SIZE)  # type: ignore[operator]


class TestDetailScreen:
    def test_detail_with_neighbours(self, snap_app: TrawlApp, snap_compare: object) -> None:
        async def run_before(pilot: Pilot) -> None:
            await type_query(pilot, "spring neap")
            await pilot.press("enter", "enter")
            await settle(pilot)

        assert snap_compare(snap_app, run_before=run_before, terminal_size=SIZE)  # type: ignore[operator]


class TestIndexScreen:
    def test_stats(self, snap_app: TrawlApp, snap_compare: object) -> None:
        async def run_before(pilot: Pilot) -> None:
            await pilot.press("f3")
            await settle(pilot)

        assert snap_compare(snap_app, run_before=run_before, terminal_size=SIZE)  # type: ignore[operator]
