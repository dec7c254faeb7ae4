"""Index picker: every index under ``$TRAWL_HOME/indexes``, or a new name to create."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label

from trawl.catalog import IndexSummary, list_indexes

from ..present import human_bytes, human_time
from ..safe import one_line
from ..widgets.footer import TrawlFooter


class IndexPicker(ModalScreen[str | None]):
    """Returns the chosen index name (or a typed name/path), ``None`` on cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="picker-cancel"),
        Binding("enter", "choose", "Open", id="picker-open"),
        Binding("ctrl+n", "new", "New / path", id="picker-new"),
    ]

    def __init__(self) -> None:
        super().__init__(id="picker")
        self.indexes: list[IndexSummary] = []

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="picker-dialog") as box:
            box.border_title = "Open an index"
            yield Label("loading…", id="picker-state")
            table: DataTable[Text] = DataTable(id="picker-table", cursor_type="row",
                                               zebra_stripes=True)
            yield table
            yield Label("Or type a name or folder (a new name asks before creating):")
            yield Input(placeholder="name or /path/to/index", id="picker-name")
        yield TrawlFooter()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for column in ("name", "pipeline", "documents", "size", "updated"):
            table.add_column(column, key=column)
        self._load()

    @work(thread=True, exclusive=True, group="picker", exit_on_error=False)
    def _load(self) -> None:
        try:
            found = list_indexes()
            error = ""
        except Exception as exc:
            found, error = [], f"cannot list indexes: {exc}"
        self.app.call_from_thread(self._loaded, found, error)

    def _loaded(self, found: list[IndexSummary], error: str) -> None:
        self.indexes = found
        table = self.query_one(DataTable)
        table.clear()
        for summary in found:
            if summary.error:
                row = [Text(one_line(summary.name)), Text("unreadable", style="red"),
                       Text(""), Text(""), Text(one_line(summary.error)[:40], style="red")]
            else:
                row = [Text(one_line(summary.name), style="bold"),
                       Text(one_line(summary.pipeline)),
                       Text(str(summary.documents if summary.documents is not None else "?"),
                            justify="right"),
                       Text(human_bytes(summary.size_bytes), justify="right"),
                       Text(human_time(summary.updated) if summary.updated else "-")]
            table.add_row(*row, key=str(summary.path))
        state = self.query_one("#picker-state", Label)
        if error:
            state.update(Text(one_line(error), style="red"))
        elif not found:
            state.update("No indexes yet: type a name below to create one, or run "
                         "`trawl index FOLDER`.")
            self.query_one(Input).focus()
        else:
            state.update(f"{len(found)} indexes (enter opens the highlighted one)")
            table.focus()

    def action_choose(self) -> None:
        name_input = self.query_one(Input)
        if name_input.has_focus and name_input.value.strip():
            self.dismiss(name_input.value.strip())
            return
        table = self.query_one(DataTable)
        if self.indexes and table.cursor_row is not None and \
                0 <= table.cursor_row < len(self.indexes):
            self.dismiss(str(self.indexes[table.cursor_row].path))

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_choose()

    @on(Input.Submitted, "#picker-name")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.dismiss(event.value.strip())

    def action_new(self) -> None:
        self.query_one(Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)
