"""Pipeline switcher: retrievers subset, fusion method, reranker on/off, top_k."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Input,
    Label,
    RadioButton,
    RadioSet,
    SelectionList,
    Switch,
)

from ..session import FUSION_METHODS, SearchOptions
from ..widgets.footer import TrawlFooter


class PipelineScreen(ModalScreen[SearchOptions | None]):
    """Returns the new options on apply, ``None`` on cancel."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="pipeline-cancel"),
        Binding("ctrl+s", "apply", "Apply", id="pipeline-apply"),
    ]
    BINDING_GROUP_TITLE = "Pipeline"

    def __init__(self, options: SearchOptions, retrievers: list[str], *,
                 has_reranker: bool, reranker_default: bool,
                 pipeline_fusion: str = "rrf") -> None:
        super().__init__(id="pipeline")
        self.options = options
        self.retrievers = retrievers
        self.has_reranker = has_reranker
        self.reranker_default = reranker_default
        self.pipeline_fusion = pipeline_fusion

    def compose(self) -> ComposeResult:
        chosen = set(self.options.retrievers) or set(self.retrievers)
        with VerticalScroll(id="pipeline-dialog", classes="dialog") as box:
            box.border_title = "Pipeline"
            yield Label("Retrievers")
            yield SelectionList[str](*[(name, name, name in chosen) for name in self.retrievers],
                                     id="pipeline-retrievers")
            yield Label("Fusion (when two or more retrievers run)")
            with RadioSet(id="pipeline-fusion"):
                for method in FUSION_METHODS:
                    current = self.options.fusion or self.pipeline_fusion
                    label = f"{method} (pipeline)" if method == self.pipeline_fusion else method
                    yield RadioButton(label, value=method == current, id=f"fusion-{method}")
            with Horizontal(classes="row"):
                yield Label("Reranker ", classes="row-label")
                rerank = self.options.rerank
                yield Switch(value=self.reranker_default if rerank is None else rerank,
                             disabled=not self.has_reranker, id="pipeline-rerank")
                if not self.has_reranker:
                    yield Label(" (none configured)", classes="dim")
            with Horizontal(classes="row"):
                yield Label("top_k ", classes="row-label")
                yield Input(str(self.options.top_k), type="integer", id="pipeline-topk",
                            max_length=5)
            with Horizontal(classes="buttons"):
                yield Button("Apply", variant="primary", id="pipeline-apply-button")
                yield Button("Cancel", id="pipeline-cancel-button")
        yield TrawlFooter()

    def on_mount(self) -> None:
        self.query_one(SelectionList).focus()

    def _collect(self) -> SearchOptions | None:
        chosen = self.query_one(SelectionList).selected
        if not chosen:
            self.notify("Pick at least one retriever", severity="warning")
            return None
        raw = self.query_one("#pipeline-topk", Input).value.strip()
        try:
            top_k = int(raw)
        except ValueError:
            top_k = 0
        if not 1 <= top_k <= 1000:
            self.notify("top_k must be a number from 1 to 1000", severity="warning")
            return None
        pressed = self.query_one(RadioSet).pressed_button
        fusion = (str(pressed.id).removeprefix("fusion-") if pressed is not None
                  else self.options.fusion)
        if fusion == self.pipeline_fusion:
            fusion = None  # the pipeline's own: ranks like `trawl search`
        ordered = tuple(n for n in self.retrievers if n in chosen)
        retrievers = () if len(ordered) == len(self.retrievers) else ordered
        rerank: bool | None = self.options.rerank
        if self.has_reranker:
            value = self.query_one(Switch).value
            rerank = None if value == self.reranker_default and rerank is None else value
        return self.options.with_(retrievers=retrievers, fusion=fusion, top_k=top_k,
                                  rerank=rerank)

    def action_apply(self) -> None:
        options = self._collect()
        if options is not None:
            self.dismiss(options)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#pipeline-apply-button")
    def _apply_pressed(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#pipeline-cancel-button")
    def _cancel_pressed(self) -> None:
        self.action_cancel()

    @on(Input.Submitted, "#pipeline-topk")
    def _topk_submitted(self) -> None:
        self.action_apply()
