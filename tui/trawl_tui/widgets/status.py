"""One-line status: where the index is, pipeline, hits, filter (applied or pending), activity,
latency and the pipeline choice, all drawn from one ``QueryState``."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from trawl.pipeline import SearchTrace

from ..safe import one_line
from ..session import QueryState


class StatusBar(Static):
    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text-muted; padding: 0 1; }
    """

    def __init__(self, *, mask_latency: bool = False, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.mask_latency = mask_latency
        self.index_label = "no index"
        self.options_label = ""
        self.hits_label = ""
        self.latency_label = ""
        self.activity = ""
        self.state = QueryState()

    def set_latency(self, elapsed_ms: float, trace: SearchTrace, *,
                    has_encoder: bool = True) -> None:
        """Total time with its split; no encoder time on lexical-only pipelines."""
        if self.mask_latency:
            self.latency_label = "‒ ms"
        else:
            parts = [f"enc {trace.encode_ms:.1f}"] if has_encoder else []
            parts.append(f"ret {trace.retrieve_ms:.1f}")
            if trace.rerank_ms:
                parts.append(f"rr {trace.rerank_ms:.1f}")
            self.latency_label = f"{elapsed_ms:.1f} ms ({' · '.join(parts)})"
        self.refresh_text()

    @property
    def filter_label(self) -> str:
        return self.state.filter_label()[0]

    def refresh_text(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        state = self.state
        if state.target.startswith("remote"):
            if state.server_lost:
                text.append(f"{one_line(state.target)} LOST, reconnecting", style="bold red")
            else:
                text.append(one_line(state.target), style="bold magenta")
            text.append(" · ", style="dim")
        text.append(self.index_label, style="bold")
        filter_text, kind = state.filter_label()
        filter_style = {"pending": "bold black on yellow", "applied": "bold green"}.get(kind, "")
        # most important first: a narrow terminal cuts the end of the line
        for part, style in ((self.hits_label, "bold"), (one_line(filter_text), filter_style),
                            (self.activity, "yellow"), (self.latency_label, "cyan"),
                            (self.options_label, "")):
            if part:
                text.append(" │ ", style="dim")
                text.append(part, style=style)
        self.update(text)
