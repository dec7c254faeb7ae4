"""Index picker: every index under ``$TRAWL_HOME/indexes``, filtered as you type, or a new
name to create (the app asks first, with "did you mean")."""

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
from ..widgets.safe_input import SafeInput


class IndexPicker(ModalScreen[str | None]):
    """Returns the chosen index name (or a typed name/path), ``None`` on cancel."""

    AUTO_FOCUS = "#picker-name"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="picker-cancel"),
        Binding("enter", "choose", "Open", id="picker-open", priority=True),
        Binding("down,ctrl+n,ctrl+j", "move(1)", "Down", show=False, id="picker-down",
                priority=True),
        Binding("up,ctrl+p,ctrl+k", "move(-1)", "Up", show=False, id="picker-up",
                priority=True),
        Binding("ctrl+o", "open_typed", "Open typed name", id="picker-typed", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__(id="picker")
        self.all_indexes: list[IndexSummary] = []
        self.indexes: list[IndexSummary] = []  # the rows shown (those the text matches)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="picker-dialog") as box:
            box.border_title = "Open an index"
            yield SafeInput(placeholder="type to filter, or a new name or /path",
                            id="picker-name")
            yield Label("loading…", id="picker-state")
            table: DataTable[Text] = DataTable(id="picker-table", cursor_type="row",
                                               zebra_stripes=True)
            yield table
        yield TrawlFooter()

    def on_mount(self) -> None:
        self.error = ""
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
        self.all_indexes = found
        self.error = error
        self._show_rows()

    @on(Input.Changed, "#picker-name")
    def _typed_changed(self, event: Input.Changed) -> None:
        self._show_rows()

    def _show_rows(self) -> None:
        """The indexes whose name (or path) holds every typed word, in order."""
        words = self.query_one("#picker-name", Input).value.lower().split()
        found = [s for s in self.all_indexes
                 if all(w in s.name.lower() or w in str(s.path).lower() for w in words)]
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
        typed = self.query_one("#picker-name", Input).value.strip()
        table.display = bool(found)
        if self.error:
            state.update(Text(one_line(self.error), style="red"))
        elif not self.all_indexes:
            state.update("No indexes yet. Type a name and press enter to create one\n"
                         "(or run `trawl index FOLDER` in a shell).")
        elif not found:
            state.update(Text(f"No index matches {one_line(typed)!r}: enter opens it as a "
                              "name or folder (asks before creating)."))
        else:
            state.update(f"{len(found)} of {len(self.all_indexes)} indexes · ↑↓ move · "
                         "enter opens · ctrl+o opens the typed name")

    def action_move(self, step: int) -> None:
        table = self.query_one(DataTable)
        if self.indexes:
            row = max(0, min(len(self.indexes) - 1, (table.cursor_row or 0) + step))
            table.move_cursor(row=row)

    def action_choose(self) -> None:
        """The highlighted match; with none, the typed text as a name or folder."""
        table = self.query_one(DataTable)
        if self.indexes and table.cursor_row is not None and \
                0 <= table.cursor_row < len(self.indexes):
            self.dismiss(str(self.indexes[table.cursor_row].path))
            return
        self.action_open_typed()

    def action_open_typed(self) -> None:
        typed = self.query_one("#picker-name", Input).value.strip()
        if typed:
            self.dismiss(typed)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_choose()

    def action_cancel(self) -> None:
        self.dismiss(None)
