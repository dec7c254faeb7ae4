"""One-line status: index, pipeline choice, hit count and the last search's latency."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from trawl.pipeline import SearchTrace


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

    def refresh_text(self) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(self.index_label, style="bold")
        # most important first: a narrow terminal cuts the end of the line
        for part, style in ((self.hits_label, "bold"), (self.activity, "yellow"),
                            (self.latency_label, "cyan"), (self.options_label, "")):
            if part:
                text.append(" │ ", style="dim")
                text.append(part, style=style)
        self.update(text)
