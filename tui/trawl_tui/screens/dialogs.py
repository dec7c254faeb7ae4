"""Modal dialogs: path prompt, history, yes/no, failed open, copy menu.

Every dialog scrolls when the terminal is small (``VerticalScroll`` with a max height) and
has its own footer listing its keys.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from trawl.errors import TrawlError
from trawl.models import Hit

from ..actions import COPY_KINDS, copy_payload
from ..safe import clean, one_line
from ..widgets.footer import TrawlFooter
from ..widgets.safe_input import SafeInput


class PathPrompt(ModalScreen[str | None]):
    AUTO_FOCUS = "#prompt-path"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="prompt-cancel"),
        Binding("enter", "noop", "Confirm", id="prompt-confirm"),
    ]

    def __init__(self, title: str, value: str) -> None:
        super().__init__()
        self.title_text = title
        self.value = value

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog") as box:
            box.border_title = self.title_text
            yield Label("File:")
            yield SafeInput(self.value, id="prompt-path")
        yield TrawlFooter()

    @on(Input.Submitted, "#prompt-path")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_noop(self) -> None:
        self.dismiss(self.query_one(Input).value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class HistoryScreen(ModalScreen[str | None]):
    """Earlier queries of this index, newest first, filtered as you type (every word must
    appear); escape leaves the query as it was."""

    AUTO_FOCUS = "#history-filter"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Keep current query", id="history-cancel"),
        Binding("enter", "choose", "Use query", id="history-choose", priority=True),
        Binding("down,ctrl+n,ctrl+j", "move(1)", "Down", show=False, id="history-down",
                priority=True),
        Binding("up,ctrl+p,ctrl+k", "move(-1)", "Up", show=False, id="history-up",
                priority=True),
    ]

    def __init__(self, entries: list[str]) -> None:
        super().__init__(id="history")
        self.entries = list(reversed(entries))
        self.shown = list(self.entries)

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog") as box:
            box.border_title = "Query history"
            if not self.entries:
                yield Label("No queries yet: a query left on screen or entered is recorded.")
            yield SafeInput(placeholder="type to filter", id="history-filter")
            yield OptionList(*[Option(Text(one_line(q))) for q in self.entries],
                             id="history-list")
        yield TrawlFooter()

    def on_mount(self) -> None:
        if self.shown:
            self.query_one(OptionList).highlighted = 0

    @on(Input.Changed, "#history-filter")
    def _filter(self, event: Input.Changed) -> None:
        words = event.value.lower().split()
        self.shown = [q for q in self.entries if all(w in q.lower() for w in words)]
        options = self.query_one(OptionList)
        options.set_options([Option(Text(one_line(q))) for q in self.shown])
        if self.shown:
            options.highlighted = 0

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            current = options.highlighted or 0
            options.highlighted = max(0, min(options.option_count - 1, current + step))

    @on(OptionList.OptionSelected, "#history-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.shown[event.option_index])

    def action_choose(self) -> None:
        index = self.query_one(OptionList).highlighted
        if index is not None and 0 <= index < len(self.shown):
            self.dismiss(self.shown[index])

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceScreen(ModalScreen[str | None]):
    """A question with a few answers, each a button with its own key; the first answer is
    focused (callers put the safe one first); escape answers ``None`` unless an answer
    claims the escape key."""

    def __init__(self, title: str, question: str, choices: list[tuple[str, str, str]], *,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.title_text, self.question, self.choices = title, question, choices

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog", id="choice-dialog") as box:
            box.border_title = self.title_text
            yield Static(Text(self.question), id="choice-question")
            with Horizontal(classes="buttons"):
                for i, (value, label, key) in enumerate(self.choices):
                    yield Button(f"{label} ({key})", id=f"choice-{i}",
                                 variant="primary" if i == 0 else "default",
                                 name=value)
        yield TrawlFooter()

    def on_mount(self) -> None:
        self.query_one("#choice-0", Button).focus()

    def on_key(self, event: events.Key) -> None:
        """Each answer's own key; escape cancels unless an answer claims it."""
        for value, _, key in self.choices:
            if event.key == key:
                event.stop()
                self.dismiss(value)
                return
        if event.key == "escape":
            event.stop()
            self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.name)

    def action_answer(self, value: str | None) -> None:
        self.dismiss(value)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm-yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm-no"),
    ]

    def __init__(self, question: str, *, yes: str = "Yes", no: str = "No") -> None:
        super().__init__(id="confirm")
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog") as box:
            box.border_title = "Confirm"
            yield Static(Text(self.question), id="confirm-question")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", variant="primary", id="confirm-yes-button")
                yield Button(f"{self.no} (n)", id="confirm-no-button")
        yield TrawlFooter()

    def on_mount(self) -> None:
        self.query_one("#confirm-yes-button", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm-yes-button")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class OpenFailedScreen(ModalScreen[str]):
    """``pick``, ``retry`` or ``quit`` (the app then exits with status 1)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "choose('pick')", "Pick index", id="failed-pick"),
        Binding("r", "choose('retry')", "Retry", id="failed-retry"),
        Binding("q,escape", "choose('quit')", "Quit", id="failed-quit"),
    ]

    def __init__(self, target: str, error: BaseException) -> None:
        super().__init__(id="open-failed")
        self.target = target
        self.error = error

    def compose(self) -> ComposeResult:
        title = self.error.title if isinstance(self.error, TrawlError) else \
            type(self.error).__name__
        with VerticalScroll(classes="dialog") as box:
            box.border_title = "Cannot open index"
            text = Text()
            text.append(f"{one_line(self.target) or 'index'}\n\n", style="bold")
            text.append(f"{clean(title)}: ", style="bold red")
            text.append(clean(self.error))
            yield Static(text, id="failed-message")
            with Horizontal(classes="buttons"):
                yield Button("Pick another (p)", variant="primary", id="failed-pick-button")
                yield Button("Retry (r)", id="failed-retry-button")
                yield Button("Quit (q)", id="failed-quit-button")
        yield TrawlFooter()

    def on_mount(self) -> None:
        self.query_one("#failed-pick-button", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(str(event.button.id).split("-")[1])

    def action_choose(self, what: str) -> None:
        self.dismiss(what)


class CopyMenu(ModalScreen[str | None]):
    """Copy the hit's path, text, citation or JSON."""

    AUTO_FOCUS = "#copy-list"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "copy('path')", "Path", id="copy-path"),
        Binding("t", "copy('text')", "Text", id="copy-text"),
        Binding("c", "copy('citation')", "Citation", id="copy-citation"),
        Binding("j", "copy('json')", "JSON", id="copy-json"),
        Binding("escape", "copy('')", "Cancel", id="copy-cancel"),
    ]

    def __init__(self, hit: Hit) -> None:
        super().__init__(id="copy")
        self.hit = hit

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog") as box:
            box.border_title = "Copy"
            options = []
            for kind in COPY_KINDS:
                preview = one_line(copy_payload(self.hit, kind))
                preview = preview[:40] + ("…" if len(preview) > 40 else "")
                line = Text()
                line.append(f"{kind[0]}  {kind:<9}", style="bold")
                line.append(preview, style="dim")
                options.append(Option(line, id=kind))
            yield OptionList(*options, id="copy-list")
        yield TrawlFooter()

    @on(OptionList.OptionSelected, "#copy-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_copy(self, kind: str) -> None:
        self.dismiss(kind or None)
