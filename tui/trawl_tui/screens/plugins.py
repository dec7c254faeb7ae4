"""Plugins screen: what ``trawl plugins`` shows, load errors included."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static

from ..safe import clean, one_line
from ..widgets.footer import TrawlFooter


def plugins_table(infos: list[Any]) -> Table:
    table = Table(expand=True, show_lines=False, header_style="bold")
    table.add_column("plugin")
    table.add_column("distribution")
    table.add_column("version")
    table.add_column("components", ratio=2)
    for info in infos:
        comps = one_line(", ".join(f"{c['kind']}:{c['name']}" for c in info.components) or "-")
        name = Text(one_line(info.name) + (" (core)" if info.builtin else ""))
        if info.error:
            name.stylize("bold red")
            comps_text = Text(f"{comps}\n") if info.components else Text()
            comps_text.append(clean(info.error), style="red")
        else:
            comps_text = Text(comps)
        table.add_row(name, Text(one_line(info.distribution)), Text(one_line(info.version)),
                      comps_text)
    return table


class PluginsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="close-plugins"),
    ]
    BINDING_GROUP_TITLE = "Plugins"

    def __init__(self) -> None:
        super().__init__(id="plugins")

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll():
            yield Static(id="plugins-table")
        yield TrawlFooter()

    def on_mount(self) -> None:
        self.sub_title = "plugins"
        host = self.app.plugin_host()  # type: ignore[attr-defined]
        try:
            infos = host.plugin_infos(include_core=True)
        except Exception as exc:
            self.app.show_error(exc, "plugins")  # type: ignore[attr-defined]
            return
        errors = sum(1 for i in infos if i.error)
        self.query_one("#plugins-table", Static).update(plugins_table(infos))
        if errors:
            self.notify(f"{errors} plugin(s) failed to load", severity="warning")
