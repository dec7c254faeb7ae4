"""The search screen: query input, results list, status line."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, OptionList
from textual.worker import get_current_worker

from trawl.models import Hit
from trawl.pipeline import SearchTrace

from ..messages import SearchDone, SearchFailed, SearchRequest
from ..widgets import ResultsList, SearchInput, StatusBar

if TYPE_CHECKING:
    from ..app import TrawlApp


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+t", "cycle_mode", "Mode", tooltip="Cycle retrievers: all, then each alone",
                id="cycle-mode"),
        Binding("ctrl+f", "cycle_fusion", "Fusion", tooltip="Cycle fusion rrf/weighted/dbsf",
                id="cycle-fusion"),
        Binding("ctrl+r", "toggle_rerank", "Rerank", id="toggle-rerank"),
        Binding("ctrl+y", "copy_citation", "Copy cite", id="copy-citation"),
        Binding("ctrl+l", "focus_search", "Search", show=False, id="focus-search"),
        Binding("escape", "focus_search", "Search", show=False, id="back-to-search"),
        Binding("question_mark", "app.help", "Help", show=False, key_display="?",
                id="help-question"),
    ]
    BINDING_GROUP_TITLE = "Search"
    AUTO_FOCUS = "#query"

    def __init__(self) -> None:
        super().__init__(id="main")
        self._seq = 0
        self._timer: Timer | None = None
        self._last_change = 0.0
        self.painted: SearchRequest | None = None
        self._last_issued: tuple[str, object] | None = None

    @property
    def tapp(self) -> TrawlApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield SearchInput(self.tapp.session.history, id="query",
                          placeholder="Search… (enter: results · ↑↓ history · F1 help)",
                          cursor_blink=self.tapp.cursor_blink)
        yield ResultsList(id="results")
        yield StatusBar(id="status", mask_latency=self.tapp.mask_latency)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(SearchInput).focus()
        self.tapp._index_ready()

    # -- status --------------------------------------------------------------------------
    def refresh_status(self) -> None:
        status = self.query_one(StatusBar)
        trawl = self.tapp.trawl
        if trawl is None:
            status.index_label = self.tapp.opening_label or "no index"
            status.options_label = ""
        else:
            status.index_label = f"{trawl.pipeline.config.name}"
            status.options_label = self.tapp.session.options.describe(
                list(trawl.pipeline.retrievers))
        status.refresh_text()

    # -- searching -----------------------------------------------------------------------
    @on(Input.Changed, "#query")
    def _query_changed(self, event: Input.Changed) -> None:
        now = time.monotonic()
        debounce = self.tapp.debounce
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        # leading edge after a pause, trailing edge inside a burst of keystrokes
        if debounce <= 0 or now - self._last_change >= debounce:
            self.search_now()
        else:
            self._timer = self.set_timer(debounce, self.search_now)
        self._last_change = now

    @on(Input.Submitted, "#query")
    def _query_submitted(self, event: Input.Submitted) -> None:
        self.tapp.session.history.add(event.value)
        results = self.query_one(ResultsList)
        if results.option_count:
            results.focus()

    def search_now(self, force: bool = False) -> None:
        """Search for what the input holds now, with the session's options.

        A request identical to the last one issued (same text, same options) is skipped
        unless ``force`` (the index changed): the trailing edge of a debounced burst often
        finds the search already done by the leading edge.
        """
        self._timer = None
        query = self.query_one(SearchInput).value
        options = self.tapp.session.options
        if not force and self._last_issued == (query, options):
            return
        self._last_issued = (query, options)
        self._seq += 1
        request = SearchRequest(self._seq, query, options)
        if not query.strip():
            self.workers.cancel_group(self, "search")
            self._paint(request, [], None, 0.0)
            return
        if self.tapp.trawl is None:
            self._last_issued = None  # search again once the index is open
            return
        self._search(request)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _search(self, request: SearchRequest) -> None:
        worker = get_current_worker()
        trawl = self.tapp.trawl
        if trawl is None:
            return
        # One search at a time: a cancelled one still running finishes first, so
        # ``last_trace`` always belongs to the search that just returned.
        with self.tapp.search_lock:
            if worker.is_cancelled:
                return
            start = time.perf_counter()
            try:
                hits = trawl.search(request.query, **request.options.search_kwargs())
            except Exception as exc:  # any failure becomes a notification
                if not worker.is_cancelled:
                    self.post_message(SearchFailed(request, exc))
                return
            elapsed = (time.perf_counter() - start) * 1000
            trace = trawl.last_trace
        if not worker.is_cancelled:
            self.post_message(SearchDone(request, hits, trace, elapsed))

    def _is_current(self, request: SearchRequest) -> bool:
        return (request.seq == self._seq
                and request.query == self.query_one(SearchInput).value)

    def on_search_done(self, message: SearchDone) -> None:
        if not self._is_current(message.request):
            return  # an older answer; a newer search is on its way or already painted
        self._paint(message.request, message.hits, message.trace, message.elapsed_ms)

    def on_search_failed(self, message: SearchFailed) -> None:
        if not self._is_current(message.request):
            return
        self._last_issued = None  # retrying the same query is allowed
        self.tapp.show_error(message.error, context="search failed")
        self.query_one(StatusBar).hits_label = "error"
        self.query_one(StatusBar).refresh_text()

    def _paint(self, request: SearchRequest, hits: list[Hit], trace: SearchTrace | None,
               elapsed_ms: float) -> None:
        results = self.query_one(ResultsList)
        results.show(hits, request.query)
        status = self.query_one(StatusBar)
        if request.query.strip():
            status.hits_label = f"{len(hits)} hits"
            if trace is not None:
                status.set_latency(elapsed_ms, trace)
        else:
            status.hits_label = ""
            status.latency_label = ""
        self.refresh_status()
        self.painted = request
        # timestamp once the compositor has drawn the new results (benchmarks read it)
        self.call_after_refresh(self.tapp.record_paint, request)

    # -- result actions ------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#results")
    def _open_detail(self, event: OptionList.OptionSelected) -> None:
        hit = self.query_one(ResultsList).current_hit
        if hit is not None:
            self.tapp.session.history.add(self.query_one(ResultsList).query_text)
            self.tapp.open_detail(hit, self.query_one(ResultsList).query_text)

    def action_focus_search(self) -> None:
        self.query_one(SearchInput).focus()

    def action_copy_citation(self) -> None:
        hit = self.query_one(ResultsList).current_hit
        if hit is None:
            self.notify("No hit selected", severity="warning")
            return
        self.tapp.copy_citation(hit)

    def action_cycle_mode(self) -> None:
        self.tapp.cycle_mode()

    def action_cycle_fusion(self) -> None:
        self.tapp.cycle_fusion()

    def action_toggle_rerank(self) -> None:
        self.tapp.toggle_rerank()

    def set_query(self, query: str) -> None:
        field = self.query_one(SearchInput)
        field.value = query
        field.cursor_position = len(query)
        field.focus()
