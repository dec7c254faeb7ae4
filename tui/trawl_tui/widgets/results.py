"""The results list: one option per hit (rank, score, per-source scores, title, snippet)."""

from __future__ import annotations

from textual.content import Content, Span
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from trawl.models import Hit

from ..highlight import HIGHLIGHT_STYLE, bar, match_spans, snippet_text


def _fmt(score: float) -> str:
    return f"{score:.4f}" if abs(score) < 10 else f"{score:.2f}"


def render_hit(hit: Hit, query: str, source_max: dict[str, float], snippet_width: int) -> Content:
    """Three lines: rank, score, title and path / per-source rank, bar and score / snippet.

    Built as textual ``Content`` from (text, style) parts: building rich ``Text`` and
    converting it costs several times more, and this runs on every keystroke.
    """
    title = hit.title or hit.source or hit.doc_id
    parts: list[str | tuple[str, str]] = [
        (f"{hit.rank:>3} ", "bold"), (f"{_fmt(hit.score):>8}  ", "cyan"), (title, "bold")]
    if hit.title and hit.source:
        parts.append((f"  {hit.source}", "dim"))
    parts.append("\n")
    if hit.scores_by_source:
        parts.append("     ")
        for name, src in sorted(hit.scores_by_source.items()):
            top = source_max.get(name, 0.0)
            frac = src.score / top if top > 0 else 0.0
            parts += [(f"{name} ", "dim"), (f"#{src.rank:<3}", "magenta"),
                      (bar(frac, 5), "green"), (f" {_fmt(src.score)}   ", "dim")]
        parts.append("\n")
    head = Content.assemble(*parts, "     ", strip_control_codes=False)
    text = snippet_text(hit.text, query, snippet_width)
    offset = len(head.plain)
    spans = [Span(offset + a, offset + b, HIGHLIGHT_STYLE) for a, b in match_spans(text, query)]
    return Content(head.plain + text, spans=[*head.spans, *spans])


class ResultsList(OptionList):
    """Hits of the last painted search; ``enter`` opens the detail screen."""

    DEFAULT_CSS = """
    ResultsList { height: 1fr; }
    ResultsList > .option-list--option { padding: 0 1; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.hits: list[Hit] = []
        self.query_text = ""

    @property
    def snippet_width(self) -> int:
        """One line of snippet: the list's width less the indent, padding and scrollbar."""
        width = self.size.width
        return max(30, width - 10) if width else 100

    def show(self, hits: list[Hit], query: str) -> None:
        self.hits = list(hits)
        self.query_text = query
        source_max: dict[str, float] = {}
        for h in hits:
            for name, src in h.scores_by_source.items():
                source_max[name] = max(source_max.get(name, 0.0), src.score)
        width = self.snippet_width
        options = [Option(render_hit(h, query, source_max, width), id=h.chunk_id) for h in hits]
        with self.app.batch_update():
            self.set_options(options)
            if options:
                self.highlighted = 0

    @property
    def current_hit(self) -> Hit | None:
        index = self.highlighted
        if index is None or not 0 <= index < len(self.hits):
            return None
        return self.hits[index]
