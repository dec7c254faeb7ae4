"""No raw control or bidi character ever reaches the screen, whatever the indexed text holds
(a property test over random strings), and every row keeps its width."""

from __future__ import annotations

import asyncio
import re

import tui_hashing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.cells import cell_len
from rich.console import Console
from tui_helpers import screen_text, type_query

import trawl
from trawl.models import Hit, SourceScore
from trawl_tui.app import make_app
from trawl_tui.present import chunk_text, hit_header, metadata_table
from trawl_tui.widgets.results import render_hit

# C0 (but newline), DEL, C1, lone surrogates, and the bidi marks, embeddings, overrides
# and isolates: what ``trawl search`` escapes
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f"
                 "\u202a-\u202e\u2066-\u2069]")
HOSTILE = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067",
                         "\u2068", "\u2069", "\u200e", "\u200f", "\u061c", "\x1b", "\x9b",
                         "\x07", "\x00", "\r", "\t", "\n", "\x7f", "[", "]", "/", " ", "é",
                         "中", "m"]),
        st.characters(codec="utf-8")),
    min_size=1, max_size=30)


def _rendered(renderable: object, width: int = 60) -> str:
    console = Console(width=width, file=None, record=True, force_terminal=True,
                      color_system="truecolor", legacy_windows=False)
    with console.capture():
        console.print(renderable)
    return console.export_text()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(title=HOSTILE, text=HOSTILE, source=HOSTILE, key=HOSTILE, value=HOSTILE,
       chunk=HOSTILE)
def test_every_hit_renderer_escapes(title: str, text: str, source: str, key: str,
                                    value: str, chunk: str) -> None:
    hit = Hit(doc_id=chunk, chunk_id=chunk, score=0.5, rank=1, text=text,
              metadata={"title": title, "path": source, key: value},
              scores_by_source={key: SourceScore(score=0.5, rank=1)})
    pieces = [render_hit(hit, "moon", {key: 1.0}, 40).plain, _rendered(hit_header(hit)),
              _rendered(metadata_table(hit)), _rendered(chunk_text(hit, "moon"))]
    for piece in pieces:
        assert not RAW.search(piece), (piece, RAW.findall(piece))


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(title=HOSTILE, text=HOSTILE, source=HOSTILE, value=HOSTILE)
def test_the_screen_never_shows_a_raw_control(title: str, text: str, source: str,
                                              value: str) -> None:
    doc = trawl.Document(id=f"doc{source}", text=f"moon {text} moon",
                         metadata={"title": title, "path": source, "note": value})
    with trawl.Trawl.memory(tui_hashing.hybrid_pipeline(), host=tui_hashing.host()) as t:
        t.add([doc], show_progress=False)
        app = make_app(t, debounce=0, cursor_blink=False, history=False, mask_latency=True)

        async def drive() -> str:
            async with app.run_test(size=(80, 24)) as pilot:
                await type_query(pilot, "moon")
                assert app.main.query_one("#results").hits  # type: ignore[attr-defined]
                return screen_text(app)

        shown = asyncio.run(drive())
    assert not RAW.search(shown), RAW.findall(shown)
    assert {cell_len(line) for line in shown.splitlines()} == {80}  # no row cut short
