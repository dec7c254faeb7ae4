"""The query input: search-as-you-type; arrows and ctrl+n/ctrl+p move through the hits."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from ..session import History
from .safe_input import SafeInput


class SearchInput(SafeInput):
    """Focus stays here while the highlight moves (as in fzf: ctrl+j/ctrl+k, ctrl+n/ctrl+p,
    arrows); tab goes to the list; history is on ctrl+r, so an arrow key never replaces the
    query being typed."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("down,ctrl+n,ctrl+j", "move('cursor_down')", "Next hit", show=False,
                id="hit-next", priority=True),
        Binding("up,ctrl+p,ctrl+k", "move('cursor_up')", "Previous hit", show=False,
                id="hit-prev", priority=True),
        Binding("tab", "to_list", "To the list", show=False, id="query-to-list"),
        Binding("pagedown", "move('page_down')", "Page down", show=False, id="hit-page-down"),
        Binding("pageup", "move('page_up')", "Page up", show=False, id="hit-page-up"),
    ]
    BINDING_GROUP_TITLE = "Query"

    def __init__(self, history: History, *, placeholder: str = "", id: str | None = None,
                 cursor_blink: bool = True) -> None:
        super().__init__(placeholder=placeholder, id=id, select_on_focus=False)
        self.history = history
        self.cursor_blink = cursor_blink

    def action_move(self, action: str) -> None:
        self.screen.move_hit(action)  # type: ignore[attr-defined]

    def action_to_list(self) -> None:
        self.screen.focus_list()  # type: ignore[attr-defined]
