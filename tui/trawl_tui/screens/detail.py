"""The detail screen: one chunk in full, its source and metadata, and its neighbours."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.worker import get_current_worker

from trawl.models import Chunk, Hit

from ..present import chunk_text, hit_from_chunk, metadata_table, neighbours_text
from ..safe import one_line
from ..widgets.footer import TrawlFooter

if TYPE_CHECKING:
    from ..app import TrawlApp


class DetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "app.pop_screen", "Back", id="close-detail"),
        Binding("o", "open_path", "Open in editor", id="open-path"),
        Binding("y,c", "copy", "Copy…", id="copy-detail"),
        Binding("left,[", "neighbour(-1)", "Prev chunk", id="prev-chunk"),
        Binding("right,]", "neighbour(1)", "Next chunk", id="next-chunk"),
    ]
    BINDING_GROUP_TITLE = "Detail"

    def __init__(self, hit: Hit, query: str) -> None:
        super().__init__(id="detail")
        self.hit = hit
        self.query_text = query
        self.neighbours: tuple[Chunk | None, Chunk | None] = (None, None)

    @property
    def tapp(self) -> TrawlApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-meta")
            yield Static(id="detail-text")
            yield Static(id="detail-neighbours")
        yield TrawlFooter()

    def on_mount(self) -> None:
        self.render_hit()

    def render_hit(self) -> None:
        hit = self.hit
        self.sub_title = one_line(hit.title or hit.doc_id)
        self.query_one("#detail-meta", Static).update(metadata_table(hit))
        self.query_one("#detail-text", Static).update(chunk_text(hit, self.query_text))
        self.query_one("#detail-neighbours", Static).update(Text("neighbours: loading…",
                                                                 style="dim"))
        self.query_one("#detail-body", VerticalScroll).scroll_home(animate=False)
        self._load_neighbours(hit)

    @work(thread=True, exclusive=True, group="neighbours", exit_on_error=False)
    def _load_neighbours(self, hit: Hit) -> None:
        worker = get_current_worker()
        trawl = self.tapp.trawl
        if trawl is None:
            return
        try:
            before, after = trawl.neighbours(hit.chunk_id, hit.doc_id)
            error: BaseException | None = None
        except Exception as exc:
            before, after, error = [], [], exc
        if not worker.is_cancelled:
            self.app.call_from_thread(self._show_neighbours, hit.chunk_id, before, after, error)

    def _show_neighbours(self, chunk_id: str, before: list[Chunk], after: list[Chunk],
                         error: BaseException | None) -> None:
        if chunk_id != self.hit.chunk_id:
            return
        widget = self.query_one("#detail-neighbours", Static)
        if error is not None:
            self.tapp.show_error(error, context="neighbouring chunks")
            widget.update(Text("neighbours: unavailable", style="dim"))
            return
        self.neighbours = (before[-1] if before else None, after[0] if after else None)
        width = (self.size.width - 8) if self.size.width else 100
        out = Text("← → or [ ] walk to the neighbouring chunks\n", style="dim")
        out.append_text(neighbours_text(before, after, self.query_text, width))
        widget.update(out)

    def action_neighbour(self, step: int) -> None:
        chunk = self.neighbours[0] if step < 0 else self.neighbours[1]
        if chunk is None:
            self.app.bell()
            return
        self.hit = hit_from_chunk(chunk)
        self.neighbours = (None, None)
        self.render_hit()

    def action_copy(self) -> None:
        self.tapp.copy_menu(self.hit)

    def action_open_path(self) -> None:
        self.tapp.open_hit(self.hit)
