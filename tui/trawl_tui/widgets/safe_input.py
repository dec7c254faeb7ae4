"""An ``Input`` that never holds what it cannot draw safely."""

from __future__ import annotations

from textual import events
from textual.widgets import Input

from ..safe import clean_input


class SafeInput(Input):
    """Control and bidi characters never enter the value (an input draws its value raw),
    and a multi-line paste keeps every line, joined by spaces (Textual keeps only the
    first)."""

    def on_mount(self) -> None:
        # the app's choice (off in snapshots: a blinking cursor makes frames differ)
        self.cursor_blink = bool(getattr(self.app, "cursor_blink", self.cursor_blink))

    def validate_value(self, value: str) -> str:
        return clean_input(value)

    def replace(self, text: str, start: int, end: int) -> None:
        super().replace(clean_input(text), start, end)

    def _on_paste(self, event: events.Paste) -> None:
        if event.text:
            text = clean_input(event.text)
            selection = self.selection
            if selection.is_empty:
                self.insert_text_at_cursor(text)
            else:
                self.replace(text, *selection)
        event.stop()
        event.prevent_default()  # not Input's own handler too
