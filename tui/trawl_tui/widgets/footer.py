"""A footer that gives its room to the keys on narrow terminals (compact, no palette hint)."""

from __future__ import annotations

from textual import events
from textual.widgets import Footer

WIDE = 160  # below this the full-width keys no longer all fit


class TrawlFooter(Footer):
    def on_mount(self) -> None:
        self._fit(self.app.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(self.app.size.width)

    def _fit(self, width: int) -> None:
        self.compact = width < WIDE
        self.show_command_palette = width >= WIDE
