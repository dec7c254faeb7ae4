"""The results list: one option per hit (rank, score, per-source scores, title, snippet)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from textual import events
from textual.binding import Binding, BindingType
from textual.content import Content, Span
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from trawl.models import Hit

from ..highlight import HIGHLIGHT_STYLE, bar, match_spans, snippet_text
from ..safe import one_line


def _fmt(score: float) -> str:
    return f"{score:.4f}" if abs(score) < 10 else f"{score:.2f}"


def render_hit(hit: Hit, query: str, source_max: dict[str, float], snippet_width: int,
               rank_width: int = 3, chunks_in_doc: int = 0,
               source_rank_width: int = 0) -> Content:
    """Three lines: rank, score, title and path / per-source rank, bar and score / snippet.

    Rank columns are as wide as the largest rank shown, so #100 and beyond never run into
    the bars. Built as textual ``Content`` from plain (text, style) parts (never parsed as
    markup; control characters removed): this runs on every keystroke.
    """
    title = one_line(hit.title or hit.source or hit.doc_id)
    indent = " " * (rank_width + 2)
    parts: list[str | tuple[str, str]] = [
        (f"{hit.rank:>{rank_width}}  ", "bold"), (f"{_fmt(hit.score):>8}  ", "cyan"),
        (title, "bold")]
    if chunks_in_doc > 1:
        parts.append((f"  ({chunks_in_doc} chunks)", "yellow"))
    if hit.title and hit.source:
        parts.append((f"  {one_line(hit.source)}", "dim"))
    parts.append("\n")
    if hit.scores_by_source:
        parts.append(indent)
        src_width = max([source_rank_width,
                         *(len(str(s.rank)) for s in hit.scores_by_source.values())])
        for name, src in sorted(hit.scores_by_source.items()):
            top = source_max.get(name, 0.0)
            frac = src.score / top if top > 0 else 0.0
            parts += [(f"{one_line(name)} ", "dim"), (f"#{src.rank:<{src_width}} ", "magenta"),
                      (bar(frac, 5), "green"), (f" {_fmt(src.score)}   ", "dim")]
        parts.append("\n")
    head = Content.assemble(*parts, indent, strip_control_codes=False)
    text = snippet_text(one_line(hit.text), query, snippet_width)
    offset = len(head.plain)
    spans = [Span(offset + a, offset + b, HIGHLIGHT_STYLE) for a, b in match_spans(text, query)]
    return Content(head.plain + text, spans=[*head.spans, *spans])


class ResultsList(OptionList):
    """Hits of the last painted search; ``enter`` opens the detail screen, ``j``/``k`` move,
    ``g``/``G`` jump to the first/last hit, and other printable keys go back to the query (as
    in fzf)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j,ctrl+j,ctrl+n", "cursor_down", "Down", show=False, id="list-down"),
        Binding("k,ctrl+k,ctrl+p", "cursor_up", "Up", show=False, id="list-up"),
        Binding("g", "first", "First hit", show=False, id="list-first"),
        Binding("G", "last", "Last hit", show=False, id="list-last"),
    ]
    NAVIGATION_KEYS = frozenset({"j", "k", "g", "G"})
    DEFAULT_CSS = """
    ResultsList { height: 1fr; }
    ResultsList > .option-list--option { padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hits: list[Hit] = []
        self.query_text = ""
        self.chunk_counts: Mapping[str, int] = {}
        self._rendered_width = 0

    @property
    def snippet_width(self) -> int:
        """One line of snippet: the list's width less the indent, padding and scrollbar."""
        width = self.size.width
        return max(20, width - 11) if width else 100

    def show(self, hits: list[Hit], query: str,
             chunk_counts: Mapping[str, int] | None = None) -> None:
        self.hits = list(hits)
        self.query_text = query
        self.chunk_counts = dict(chunk_counts or {})
        self._render_options(keep_highlight=False)

    def _render_options(self, keep_highlight: bool) -> None:
        hits = self.hits
        source_max: dict[str, float] = {}
        for h in hits:
            for name, src in h.scores_by_source.items():
                source_max[name] = max(source_max.get(name, 0.0), src.score)
        width = self.snippet_width
        self._rendered_width = self.size.width
        rank_width = max([3, *(len(str(h.rank)) for h in hits)])
        # one column width for every row's per-source ranks, so the bars line up
        source_rank_width = max([2, *(len(str(s.rank)) for h in hits
                                      for s in h.scores_by_source.values())])
        previous = self.highlighted
        options = [Option(render_hit(h, self.query_text, source_max, width, rank_width,
                                     self.chunk_counts.get(h.doc_id, 0), source_rank_width),
                          id=h.chunk_id)
                   for h in hits]
        with self.app.batch_update():
            self.set_options(options)
            if options:
                keep = keep_highlight and previous is not None and previous < len(options)
                self.highlighted = previous if keep else 0

    def on_resize(self, event: events.Resize) -> None:
        # snippets are cut to the width: redraw them for the new one
        if self.hits and event.size.width != self._rendered_width:
            self._render_options(keep_highlight=True)

    def on_key(self, event: events.Key) -> None:
        if event.is_printable and event.character and \
                event.character not in self.NAVIGATION_KEYS:
            event.stop()
            event.prevent_default()
            self.screen.type_into_query(event.character)  # type: ignore[attr-defined]

    def action_first(self) -> None:
        if self.option_count:
            self.highlighted = 0

    def action_last(self) -> None:
        if self.option_count:
            self.highlighted = self.option_count - 1

    @property
    def current_hit(self) -> Hit | None:
        index = self.highlighted
        if index is None or not 0 <= index < len(self.hits):
            return None
        return self.hits[index]
