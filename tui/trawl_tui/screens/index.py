"""Index screen: stats (documents, chunks per index, disk size, encoders) and "add folder"."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Header, Input, Label, ProgressBar, Static
from textual.worker import get_current_worker

from ..ingest import IngestCount
from ..messages import IngestFinished, StatsLoaded
from ..present import human_bytes
from ..safe import one_line
from ..widgets.footer import TrawlFooter
from ..widgets.safe_input import SafeInput

if TYPE_CHECKING:
    from ..app import TrawlApp


def stats_table(stats: dict[str, Any]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("index", Text(one_line(stats.get("path", "-"))))
    table.add_row("pipeline", Text(one_line(stats.get("pipeline", "-"))))
    table.add_row("documents", str(stats.get("documents", 0)))
    for name, count in sorted(dict(stats.get("chunks", {})).items()):
        table.add_row(Text(f"chunks · {one_line(name)}"), str(count))
    table.add_row("encoders", Text(one_line(", ".join(stats.get("encoders", [])))
                                   or "none (lexical only)"))
    table.add_row("disk", human_bytes(int(stats.get("disk_bytes", 0))))
    return table


class IndexScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back", id="close-index"),
        Binding("f5", "reload_stats", "Reload stats", id="reload-stats"),
        Binding("f8", "cancel_ingest", "Cancel ingest", id="cancel-ingest", priority=True),
    ]
    BINDING_GROUP_TITLE = "Index"
    AUTO_FOCUS = "#index-folder"

    def __init__(self) -> None:
        super().__init__(id="index")

    @property
    def tapp(self) -> TrawlApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="index-body"):
            yield Static(Text("loading stats…", style="dim"), id="index-stats")
            yield Label("Add a folder (.txt/.md files, or every format trawl.ingest reads):",
                        id="index-add-label")
            with Horizontal(id="index-add-row"):
                yield SafeInput(placeholder="/path/to/folder", id="index-folder")
                yield Button("Add folder", variant="primary", id="index-add")
            with Horizontal(id="index-progress-row"):
                yield ProgressBar(id="index-progress", show_eta=False)
                yield Button("Cancel (F8)", variant="error", id="index-cancel")
            yield Label("", id="index-progress-label")
        yield TrawlFooter()

    def on_mount(self) -> None:
        self.sub_title = "index"
        self.query_one("#index-progress-row").display = False  # shown while ingesting
        self.action_reload_stats()
        if self.tapp.ingest_state is not None:
            self.tapp._show_ingest_progress()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_ingest":  # in the footer only while there is one to cancel
            return self.tapp.ingest_running()
        return True

    def action_cancel_ingest(self) -> None:
        self.tapp.cancel_ingest()

    @on(Button.Pressed, "#index-cancel")
    def _cancel_pressed(self) -> None:
        self.tapp.cancel_ingest()

    def action_reload_stats(self) -> None:
        self._load_stats()

    @work(thread=True, exclusive=True, group="stats", exit_on_error=False)
    def _load_stats(self) -> None:
        worker = get_current_worker()
        trawl = self.tapp.trawl
        if trawl is None:
            return
        try:
            stats = trawl.stats()
        except Exception as exc:
            self.app.call_from_thread(self.tapp.show_error, exc, "index stats")
            return
        if not worker.is_cancelled:
            self.post_message(StatsLoaded(stats))

    def on_stats_loaded(self, message: StatsLoaded) -> None:
        self.query_one("#index-stats", Static).update(stats_table(message.stats))

    @on(Button.Pressed, "#index-add")
    @on(Input.Submitted, "#index-folder")
    def _add_folder(self) -> None:
        folder = self.query_one("#index-folder", Input).value.strip()
        if not folder:
            self.notify("Type a folder path first", severity="warning")
            return
        self.tapp.start_ingest(folder)

    def show_progress(self, count: IngestCount, text: str) -> None:
        """``text`` carries documents, files, rate, elapsed time and ETA (every second)."""
        row = self.query_one("#index-progress-row")
        cancel = self.query_one("#index-cancel", Button)
        if not row.display or cancel.display == count.final:
            row.display = True
            cancel.display = not count.final
            self.refresh_bindings()
        bar = self.query_one(ProgressBar)
        if count.fraction is None:
            bar.update(total=None)
        else:
            bar.update(total=1000, progress=round(1000 * count.fraction))
        self.query_one("#index-progress-label", Label).update(Text(text))

    def ingest_finished(self, message: IngestFinished) -> None:
        self.query_one("#index-cancel", Button).display = False
        self.refresh_bindings()
        label = self.query_one("#index-progress-label", Label)
        if message.summary is not None:
            label.update(Text(f"done: {one_line(message.summary.describe())}"))
        else:
            label.update("failed")
        self.action_reload_stats()
