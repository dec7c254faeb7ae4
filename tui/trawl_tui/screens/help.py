"""Help: every key binding with its id (ids are what a keymap remaps)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from ..widgets.footer import TrawlFooter

INTRO = (
    "Type to search; results update as you type. Up/down, ctrl+n/ctrl+p and page keys move "
    "through the hits while you type; enter opens one. In the list j/k move and letters go "
    "back to the query. Ctrl+R: earlier queries. Ctrl+L: filter (year>=2020 lang=en). "
    "F10: command palette. Remap keys with TRAWL_TUI_KEYMAP='binding-id=key,other-id=key'."
)


def bindings_table(groups: list[tuple[str, list[Binding]]], keymap: Mapping[str, str]) -> Table:
    table = Table(expand=True, box=None, header_style="bold", pad_edge=False)
    table.add_column("key", style="cyan", no_wrap=True)
    table.add_column("action")
    table.add_column("id", style="dim", no_wrap=True)
    for title, bindings in groups:
        table.add_row(Text(title, style="bold underline"), "", "")
        for b in bindings:
            if not b.description and not b.id:
                continue
            key = keymap.get(b.id or "", b.key_display or b.key)
            table.add_row(key, b.tooltip or b.description, b.id or "")
    return table


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,question_mark,q", "app.pop_screen", "Close", id="close-help"),
    ]

    def __init__(self, groups: list[tuple[str, list[Binding]]],
                 keymap: Mapping[str, str]) -> None:
        super().__init__(id="help")
        self.groups = groups
        self.keymap = keymap

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="help-dialog") as box:
            box.border_title = "trawl · keys"
            yield Static(Text(INTRO), id="help-intro")
            yield Static(bindings_table(self.groups, self.keymap), id="help-keys")
        yield TrawlFooter()
