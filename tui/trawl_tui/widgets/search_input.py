"""The query input: search-as-you-type, with shell-like history on up/down."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Input

from ..session import History


class SearchInput(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "history_prev", "Older query", show=False, id="history-prev"),
        Binding("down", "history_next", "Newer query", show=False, id="history-next"),
    ]
    BINDING_GROUP_TITLE = "Query"

    def __init__(self, history: History, *, placeholder: str = "", id: str | None = None,
                 cursor_blink: bool = True) -> None:
        super().__init__(placeholder=placeholder, id=id, select_on_focus=False)
        self.history = history
        self.cursor_blink = cursor_blink

    def _recall(self, value: str | None) -> None:
        if value is None:
            self.app.bell()
            return
        self.value = value
        self.cursor_position = len(value)

    def action_history_prev(self) -> None:
        self._recall(self.history.previous())

    def action_history_next(self) -> None:
        self._recall(self.history.next())
