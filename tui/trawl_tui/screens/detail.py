"""The detail screen: one chunk in full, its source and metadata, and its neighbours."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static
from textual.worker import get_current_worker

from trawl.models import Chunk, Hit

from ..highlight import citation, highlight, snippet

if TYPE_CHECKING:
    from ..app import TrawlApp

HIDDEN_META = {"chunk_start", "chunk_end", "chunk_index"}


def neighbour_ids(chunk_id: str) -> tuple[str | None, str | None]:
    """``doc#3`` → (``doc#2``, ``doc#4``); ``None`` where there is none or the id has no number."""
    doc, sep, num = chunk_id.rpartition("#")
    if not sep or not num.isdigit():
        return None, None
    n = int(num)
    return (f"{doc}#{n - 1}" if n > 0 else None), f"{doc}#{n + 1}"


def fetch_chunks(trawl: Any, chunk_ids: list[str]) -> list[Chunk | None] | None:
    """Chunks by id from the first index that can fetch them; ``None`` if none can."""
    for retriever in trawl.pipeline.retrievers.values():
        try:
            return list(retriever.index.get_chunks(chunk_ids))
        except NotImplementedError:
            continue
    return None


def hit_from_chunk(chunk: Chunk) -> Hit:
    return Hit(doc_id=chunk.doc_id, chunk_id=chunk.id, score=0.0, rank=0, text=chunk.text,
               metadata={**chunk.metadata, "chunk_index": chunk.index,
                         "chunk_start": chunk.start, "chunk_end": chunk.end})


class DetailScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="close-detail"),
        Binding("c", "copy_citation", "Copy citation", id="copy-citation-detail"),
        Binding("o", "open_path", "Open file", id="open-path"),
        Binding("left,[", "neighbour(-1)", "Prev chunk", id="prev-chunk"),
        Binding("right,]", "neighbour(1)", "Next chunk", id="next-chunk"),
    ]
    BINDING_GROUP_TITLE = "Detail"

    def __init__(self, hit: Hit, query: str) -> None:
        super().__init__(id="detail")
        self.hit = hit
        self.query_text = query
        self.neighbours: tuple[Chunk | None, Chunk | None] = (None, None)
        self.neighbours_supported = True

    @property
    def tapp(self) -> TrawlApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail-body"):
            yield Static(id="detail-meta")
            yield Static(id="detail-text")
            yield Static(id="detail-neighbours")
        yield Footer()

    def on_mount(self) -> None:
        self.render_hit()

    def render_hit(self) -> None:
        hit = self.hit
        self.sub_title = hit.title or hit.doc_id
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("title", hit.title or "-")
        table.add_row("source", hit.source or "-")
        table.add_row("chunk", f"{hit.chunk_id}  (chars {hit.metadata.get('chunk_start')}–"
                               f"{hit.metadata.get('chunk_end')})")
        if hit.rank:
            table.add_row("rank / score", f"#{hit.rank}  {hit.score:.4f}")
        for name, src in sorted(hit.scores_by_source.items()):
            table.add_row(f"  {name}", f"#{src.rank}  {src.score:.4f}")
        for key, value in sorted(hit.metadata.items()):
            if key in HIDDEN_META or key in ("title", "path", "source"):
                continue
            table.add_row(key, Text(str(value)[:200]))
        self.query_one("#detail-meta", Static).update(table)
        self.query_one("#detail-text", Static).update(highlight(hit.text.rstrip(), self.query_text))
        self.query_one("#detail-neighbours", Static).update(Text("neighbours: loading…",
                                                                 style="dim"))
        self.query_one("#detail-body", VerticalScroll).scroll_home(animate=False)
        self._load_neighbours(hit.chunk_id)

    @work(thread=True, exclusive=True, group="neighbours", exit_on_error=False)
    def _load_neighbours(self, chunk_id: str) -> None:
        worker = get_current_worker()
        trawl = self.tapp.trawl
        before, after = neighbour_ids(chunk_id)
        ids = [i for i in (before, after) if i is not None]
        chunks: list[Chunk | None] | None = None
        error: BaseException | None = None
        if trawl is not None and ids:
            try:
                chunks = fetch_chunks(trawl, ids)
            except Exception as exc:
                error = exc
        if worker.is_cancelled:
            return
        self.app.call_from_thread(self._show_neighbours, chunk_id, before, chunks, error)

    def _show_neighbours(self, chunk_id: str, before: str | None,
                         chunks: list[Chunk | None] | None, error: BaseException | None) -> None:
        if chunk_id != self.hit.chunk_id:
            return
        widget = self.query_one("#detail-neighbours", Static)
        if error is not None:
            self.tapp.show_error(error, context="neighbouring chunks")
            widget.update(Text("neighbours: unavailable", style="dim"))
            return
        if chunks is None and before is None and "#" not in chunk_id:
            chunks = []
        if chunks is None:
            self.neighbours_supported = False
            widget.update(Text("neighbours: this index cannot fetch chunks by id", style="dim"))
            return
        if before is None and not chunks:
            widget.update(Text("neighbours: none (chunk id has no position)", style="dim"))
            return
        prev = chunks[0] if before is not None else None
        nxt = chunks[-1]
        self.neighbours = (prev, nxt)
        out = Text()
        for label, chunk, key in (("previous", prev, "←"), ("next", nxt, "→")):
            out.append(f"{key} {label}: ", style="bold")
            if chunk is None:
                out.append("none\n", style="dim")
            else:
                out.append(f"{chunk.id}\n", style="dim")
                out.append("   ")
                width = max(40, self.size.width - 8) if self.size.width else 200
                out.append_text(snippet(chunk.text, self.query_text, width))
                out.append("\n")
        widget.update(out)

    def action_neighbour(self, step: int) -> None:
        chunk = self.neighbours[0] if step < 0 else self.neighbours[1]
        if chunk is None:
            self.app.bell()
            return
        self.hit = hit_from_chunk(chunk)
        self.neighbours = (None, None)
        self.render_hit()

    def action_copy_citation(self) -> None:
        self.tapp.copy_citation(self.hit)

    def action_open_path(self) -> None:
        path = self.hit.source
        if not path:
            self.notify("This chunk has no source path", severity="warning")
            return
        url = path if "://" in path else f"file://{path}"
        try:
            self.app.open_url(url)
        except Exception as exc:
            self.tapp.show_error(exc, context="open file")
            return
        self.notify(citation(self.hit), title="Opening")
