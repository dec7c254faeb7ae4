"""Live preview of the highlighted hit: a one-line header, the full chunk, then metadata
and neighbours (the chunk first, so it is visible at 80×24; shift+↑↓ scroll, ctrl+/ hides)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.containers import VerticalScroll
from textual.widgets import Static
from textual.worker import get_current_worker

from trawl.models import Chunk, Hit

from ..present import chunk_text, hit_header, metadata_table, neighbours_text
from ..safe import clean


class PreviewPane(VerticalScroll, can_focus=False):
    """Follows the results list; neighbours load in a thread worker through ``Trawl``."""

    DEFAULT_CSS = """
    PreviewPane { padding: 0 1; border-left: vkey $panel; }
    PreviewPane > #preview-text { margin: 0 0 1 0; }
    PreviewPane > #preview-meta { margin-bottom: 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hit: Hit | None = None
        self.query_text = ""

    def compose(self):  # type: ignore[no-untyped-def]
        yield Static(id="preview-header")
        yield Static(id="preview-text")
        yield Static(id="preview-meta")
        yield Static(id="preview-neighbours")

    def show(self, hit: Hit | None, query: str) -> None:
        if hit is not None and self.hit is not None and hit.chunk_id == self.hit.chunk_id \
                and query == self.query_text:
            return
        self.hit, self.query_text = hit, query
        meta = self.query_one("#preview-meta", Static)
        text = self.query_one("#preview-text", Static)
        neighbours = self.query_one("#preview-neighbours", Static)
        header = self.query_one("#preview-header", Static)
        if hit is None:
            header.update("")
            meta.update("")
            text.update("")
            neighbours.update("")
            return
        header.update(hit_header(hit))
        meta.update(metadata_table(hit))
        text.update(chunk_text(hit, query))
        neighbours.update(Text("neighbours: loading…", style="dim"))
        self.scroll_home(animate=False)
        self._load_neighbours(hit, query)

    @work(thread=True, exclusive=True, group="preview", exit_on_error=False)
    def _load_neighbours(self, hit: Hit, query: str) -> None:
        worker = get_current_worker()
        trawl = getattr(self.app, "trawl", None)
        if trawl is None:
            return
        try:
            before, after = trawl.neighbours(hit.chunk_id, hit.doc_id)
            error: str | None = None
        except Exception as exc:
            before, after, error = [], [], f"neighbours unavailable: {clean(exc)}"
        if not worker.is_cancelled:
            self.app.call_from_thread(self._neighbours_loaded, hit.chunk_id, before, after,
                                      error)

    def _neighbours_loaded(self, chunk_id: str, before: list[Chunk], after: list[Chunk],
                           error: str | None) -> None:
        if self.hit is None or self.hit.chunk_id != chunk_id:
            return
        widget = self.query_one("#preview-neighbours", Static)
        if error is not None:
            widget.update(Text(error, style="dim"))
            return
        width = (self.size.width - 6) if self.size.width else 80
        widget.update(neighbours_text(before, after, self.query_text, width))
