"""The search screen: query, filter bar, results with a live preview, status line."""

from __future__ import annotations

import difflib
import time
from typing import TYPE_CHECKING, ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Header, Input, OptionList, Static
from textual.worker import get_current_worker

from trawl.errors import ServerUnavailableError
from trawl.filters import filter_fields
from trawl.models import Hit
from trawl.pipeline import SearchTrace

from ..messages import SearchDone, SearchFailed, SearchRequest
from ..safe import clean
from ..session import QueryState, count_label, parse_where_text
from ..widgets import FilterBar, PreviewPane, ResultsList, SearchInput, StatusBar
from ..widgets.footer import TrawlFooter

if TYPE_CHECKING:
    from ..app import TrawlApp

WIDE = 120  # columns from which the preview sits beside the list
GROUP_DEPTH = 5
PREVIEW_DELAY = 0.12  # seconds of quiet before the preview follows (a fast typist: ~0.1 s/key)
# grouping by document fetches top_k × GROUP_DEPTH chunks (at most 200)
HISTORY_PAUSE = 2.0  # a query left alone this long (or entered) goes into the history


def group_by_document(hits: list[Hit], top_k: int) -> tuple[list[Hit], dict[str, int]]:
    """One hit per document (its best chunk, renumbered) and each document's chunk count."""
    best: dict[str, Hit] = {}
    counts: dict[str, int] = {}
    for hit in hits:
        counts[hit.doc_id] = counts.get(hit.doc_id, 0) + 1
        best.setdefault(hit.doc_id, hit)
    grouped = [h.model_copy(update={"rank": i}) for i, h in
               enumerate(list(best.values())[:top_k], start=1)]
    return grouped, counts


class MainScreen(Screen[None]):
    # Footer order is importance order: at 80 columns the last ones are cut. F1, ctrl+q and
    # ctrl+r repeat the app's bindings so that they come first here.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "app.help", "Help", id="main-help"),
        Binding("ctrl+q", "app.quit", "Quit", id="main-quit", priority=True),
        Binding("ctrl+r", "app.history", "History", id="main-history", priority=True),
        Binding("ctrl+t", "cycle_mode", "Mode", tooltip="Cycle retrievers: all, then each alone",
                id="cycle-mode"),
        Binding("ctrl+f", "cycle_fusion", "Fusion", tooltip="Cycle fusion: pipeline's, then "
                "the others", id="cycle-fusion", priority=True),
        Binding("ctrl+e", "toggle_rerank", "Rerank", id="toggle-rerank", priority=True),
        Binding("ctrl+g", "toggle_group", "Group", tooltip="One row per document",
                id="toggle-group"),
        Binding("ctrl+o", "open_hit", "Open", tooltip="Open the file in $VISUAL/$EDITOR",
                id="open-hit", priority=True),
        Binding("ctrl+y", "copy_hit", "Copy", tooltip="Copy path, text, citation or JSON",
                id="copy-hit"),
        Binding("f2", "app.pipeline", "Pipeline", id="main-pipeline"),
        Binding("f3", "app.index_screen", "Index", id="main-index"),
        Binding("ctrl+l", "focus_filter", "Filter", tooltip="Edit the filter (--where syntax)",
                id="focus-filter", show=False),
        Binding("escape", "escape", "Back / clear / quit", show=False, id="back-to-search",
                tooltip="Filter: revert a pending edit; list: back to the query; query: "
                "clear it, or quit when empty"),
        Binding("shift+down,alt+down", "scroll_preview('scroll_down')", "Preview down",
                show=False, id="preview-down", priority=True),
        Binding("shift+up,alt+up", "scroll_preview('scroll_up')", "Preview up", show=False,
                id="preview-up", priority=True),
        Binding("shift+pagedown,alt+pagedown", "scroll_preview('scroll_page_down')",
                "Preview page down", show=False, id="preview-page-down", priority=True),
        Binding("shift+pageup,alt+pageup", "scroll_preview('scroll_page_up')",
                "Preview page up", show=False, id="preview-page-up", priority=True),
        Binding("ctrl+underscore,f7", "toggle_preview", "Preview", tooltip="Show or hide the "
                "preview (ctrl+/)", id="toggle-preview", priority=True, key_display="^/"),
        Binding("f8", "cancel_ingest", "Cancel ingest", id="main-cancel-ingest",
                priority=True),
        Binding("f5", "reconnect", "Open locally", tooltip="Server lost: open the index "
                "folder in this process instead", id="open-locally"),
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
        self.failed = False
        self._keys_state: object = None
        self._preview_timer: Timer | None = None
        self._history_timer: Timer | None = None
        self.preview_hidden = False

    @property
    def tapp(self) -> TrawlApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header()
        yield SearchInput(self.tapp.session.history, id="query",
                          placeholder="Search…  (↓↑ hits · enter open · ctrl+r history · F1 help)",
                          cursor_blink=self.tapp.cursor_blink)
        yield FilterBar(id="where")
        with Container(id="body"):
            yield ResultsList(id="results")
            yield Static(id="empty")
            yield PreviewPane(id="preview")
        yield StatusBar(id="status", mask_latency=self.tapp.mask_latency)
        yield TrawlFooter()

    def on_mount(self) -> None:
        self.query_one(SearchInput).focus()
        self.query_one(FilterBar).value = self.tapp.session.options.where
        self._layout(self.size.width)
        self.tapp._index_ready()

    def on_resize(self, event: events.Resize) -> None:
        self._layout(event.size.width)

    def _layout(self, width: int) -> None:
        self.set_class(width >= WIDE, "-wide")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the controls that apply: no rerank key without a reranker, no mode or
        fusion keys with a single retriever."""
        if action == "toggle_rerank":
            return self.tapp.has_reranker()
        if action in ("cycle_mode", "cycle_fusion"):
            return len(self.tapp.retriever_names()) > 1
        if action in ("open_hit", "copy_hit"):
            return True if self.query_one(ResultsList).current_hit is not None else None
        if action == "reconnect":
            return self.tapp.server_lost
        if action == "cancel_ingest":
            return self.tapp.ingest_running()
        return True

    # -- status --------------------------------------------------------------------------
    def state(self) -> QueryState:
        """The one source of truth the status bar draws (see ``QueryState``)."""
        return QueryState(text=self.query_one(SearchInput).value,
                          options=self.tapp.session.options,
                          draft_where=self.query_one(FilterBar).value,
                          target=self.tapp.target_label(), server_lost=self.tapp.server_lost)

    def refresh_status(self) -> None:
        status = self.query_one(StatusBar)
        state = self.state()
        status.state = state
        self.query_one(FilterBar).set_class(state.filter_pending, "-pending")
        info = self.tapp.info
        if info is None:
            status.index_label = self.tapp.opening_label or "no index"
            status.options_label = ""
        else:
            status.index_label = clean(info.pipeline)
            status.options_label = self.tapp.session.options.describe(
                info.retriever_names, info.fusion.method,
                info.reranker if self.tapp.has_reranker() else None)
        status.refresh_text()
        self._refresh_keys()
        self._show_empty_state()

    def _refresh_keys(self) -> None:
        """Re-evaluate which keys apply, only when that can have changed: rebuilding the
        footer on every keystroke costs more than the search itself."""
        key = (self.tapp.info, self.query_one(ResultsList).current_hit is not None)
        if key != self._keys_state:
            self._keys_state = key
            self.refresh_bindings()

    def _show_empty_state(self) -> None:
        """What to do when there is nothing to list."""
        results = self.query_one(ResultsList)
        empty = self.query_one("#empty", Static)
        query = self.query_one(SearchInput).value
        info = self.tapp.info
        message = ""
        if info is None:
            message = (self.tapp.opening_label or "no index open") + \
                "\n\nF6 pick an index · ctrl+q quit"
        elif not results.hits:
            if info.documents == 0:
                message = "index empty: F3 adds a folder"
            elif not query.strip():
                message = f"type to search {count_label(info.documents, 'document')}"
            elif self.failed:
                message = "search failed: see the notification; edit the query or filter"
            else:
                tips = []
                if self.tapp.session.options.where.strip():
                    tips.append("clear the filter (ctrl+l)")
                names = info.retriever_names
                dense = [r.name for r in info.retrievers if r.encoder]
                if len(names) > 1 and dense:
                    tips.append(f"ctrl+t {dense[0]}")
                message = "no hits" + (": try " + " or ".join(tips) if tips else "")
        empty.update(message)
        empty.display = bool(message)
        results.display = not message
        self.query_one(PreviewPane).display = not message and not self.preview_hidden

    @work(thread=True, exclusive=True, group="fields", exit_on_error=False)
    def load_fields(self) -> None:
        """The index's metadata fields, for the filter bar's completion."""
        trawl = self.tapp.trawl
        if trawl is None:
            return
        try:
            fields = trawl.metadata_fields()
        except Exception:
            return
        self.app.call_from_thread(self.query_one(FilterBar).set_fields, fields)

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
        if self._history_timer is None:  # one timer per pause, not one per keystroke
            self._history_timer = self.set_timer(HISTORY_PAUSE, self.remember_current)

    def remember_current(self) -> None:
        """A query that was run and left on screen is history, opened or not."""
        self._history_timer = None
        quiet = time.monotonic() - self._last_change
        if quiet < HISTORY_PAUSE:  # typed on since the timer was set: wait for the rest
            self._history_timer = self.set_timer(HISTORY_PAUSE - quiet, self.remember_current)
            return
        painted = self.painted
        if painted is None or painted.query != self.query_one(SearchInput).value:
            return
        entries = self.tapp.session.history.entries
        if entries and painted.query.startswith(entries[-1]) and painted.query != entries[-1]:
            entries.pop()  # a pause mid-word recorded the prefix: the query grew from it
        self.tapp.remember_query(painted.query)

    @on(Input.Changed, "#where")
    def _filter_edited(self, event: Input.Changed) -> None:
        self.refresh_status()  # pending or not: the bar and the status line say which

    @on(Input.Submitted, "#query")
    def _query_submitted(self, event: Input.Submitted) -> None:
        self.tapp.remember_query(event.value)
        self._open_current()

    @on(Input.Submitted, "#where")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.apply_filter(event.value)

    def apply_filter(self, text: str) -> bool:
        bar = self.query_one(FilterBar)
        try:
            parsed = parse_where_text(text)
        except Exception as exc:
            bar.add_class("-invalid")
            self.tapp.show_error(exc, "filter")
            return False
        bar.remove_class("-invalid")
        self.warn_unknown_fields(sorted(filter_fields(parsed)))
        self.tapp.set_options(self.tapp.session.options.with_(where=text.strip()))
        self.query_one(SearchInput).focus()
        return True

    def warn_unknown_fields(self, names: list[str]) -> None:
        """A field no sampled document has matches nothing: say so, with the near names."""
        bar = self.query_one(FilterBar)
        known = list(bar.field_suggester.fields)
        if not known:
            return  # fields not loaded (or a store without stored chunks): nothing to say
        for name in names:
            if bar.known_field(name):
                continue
            near = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(near)}?" if near else \
                f"fields: {', '.join(known[:8])}{'…' if len(known) > 8 else ''}"
            self.notify(f"No document has the field {name!r}, so it matches nothing; {hint}",
                        title="Unknown filter field", severity="warning", markup=False)

    def revert_filter(self) -> None:
        """Escape in the filter bar: back to the applied filter, nothing half-typed left."""
        bar = self.query_one(FilterBar)
        bar.value = self.tapp.session.options.where
        bar.cursor_position = len(bar.value)
        bar.remove_class("-invalid")
        self.query_one(SearchInput).focus()
        self.refresh_status()

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
        if self.tapp.trawl is None or self.tapp.server_lost:
            self._last_issued = None  # search again once the index is open (or back)
            return
        self._search(request)

    @work(thread=True, exclusive=True, group="search", exit_on_error=False)
    def _search(self, request: SearchRequest) -> None:
        worker = get_current_worker()
        trawl = self.tapp.trawl
        info = self.tapp.info
        if trawl is None:
            return
        options = request.options
        kwargs = options.search_kwargs(info.fusion if info is not None else None)
        if options.group_by_document:
            kwargs["top_k"] = min(max(options.top_k, options.top_k * GROUP_DEPTH), 200)
        trace = SearchTrace()  # this call's own timings, whatever other threads do
        with self.tapp.search_lock:  # one search at a time; close waits for it
            if worker.is_cancelled or self.tapp.trawl is not trawl:
                return
            start = time.perf_counter()
            try:
                hits = trawl.search(request.query, trace=trace, **kwargs)
            except Exception as exc:  # any failure becomes a notification
                if not worker.is_cancelled:
                    self.post_message(SearchFailed(request, exc))
                return
            elapsed = (time.perf_counter() - start) * 1000
        if not worker.is_cancelled:
            self.post_message(SearchDone(request, hits, trace, elapsed))

    def _is_current(self, request: SearchRequest) -> bool:
        return (request.seq == self._seq
                and request.query == self.query_one(SearchInput).value)

    def on_search_done(self, message: SearchDone) -> None:
        if not self._is_current(message.request):
            return  # an older answer; a newer search is on its way or already painted
        self.failed = False
        self._paint(message.request, message.hits, message.trace, message.elapsed_ms)

    def on_search_failed(self, message: SearchFailed) -> None:
        if not self._is_current(message.request):
            return
        self._last_issued = None  # retrying the same query is allowed
        if isinstance(message.error, ServerUnavailableError):
            self.tapp.lost_server(message.error)  # one message, then reconnecting
            return
        self.failed = True
        self.tapp.show_error(message.error, context="search failed")
        self.query_one(StatusBar).hits_label = "error"
        self.query_one(StatusBar).refresh_text()
        if not self.query_one(ResultsList).hits:
            self._show_empty_state()

    def _paint(self, request: SearchRequest, hits: list[Hit], trace: SearchTrace | None,
               elapsed_ms: float) -> None:
        results = self.query_one(ResultsList)
        counts: dict[str, int] = {}
        if request.options.group_by_document:
            hits, counts = group_by_document(hits, request.options.top_k)
        results.show(hits, request.query, counts)
        status = self.query_one(StatusBar)
        if request.query.strip():
            unit = "document" if request.options.group_by_document else "hit"
            status.hits_label = count_label(len(hits), unit)
            if trace is not None:
                info = self.tapp.info
                status.set_latency(elapsed_ms, trace,
                                   has_encoder=info is None or info.has_encoder)
        else:
            status.hits_label = ""
            status.latency_label = ""
        self.refresh_status()
        self._schedule_preview()
        self.painted = request
        # timestamp once the compositor has drawn the new results (benchmarks read it)
        self.call_after_refresh(self.tapp.record_paint, request)

    # -- moving through hits -------------------------------------------------------------
    @on(OptionList.OptionHighlighted, "#results")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._schedule_preview()
        self._refresh_keys()

    def _schedule_preview(self) -> None:
        """The preview follows the highlight once typing or scrolling pauses: rendering a
        whole chunk and fetching its neighbours on every keystroke would slow typing."""
        if self._preview_timer is not None:
            self._preview_timer.stop()
            self._preview_timer = None
        if self.tapp.debounce <= 0:  # no debouncing asked for (tests): follow at once
            self._update_preview()
            return
        self._preview_timer = self.set_timer(PREVIEW_DELAY, self._update_preview)

    def _update_preview(self) -> None:
        self._preview_timer = None
        results = self.query_one(ResultsList)
        self.query_one(PreviewPane).show(results.current_hit, results.query_text)

    def move_hit(self, action: str) -> None:
        """Move the highlight from wherever focus is (the query keeps focus)."""
        results = self.query_one(ResultsList)
        if results.option_count:
            getattr(results, f"action_{action}")()

    def type_into_query(self, text: str) -> None:
        """Letters typed in the list go to the query (fzf-style)."""
        field = self.query_one(SearchInput)
        field.focus()
        field.insert_text_at_cursor(text)

    # -- result actions ------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#results")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self._open_current()

    def _open_current(self) -> None:
        results = self.query_one(ResultsList)
        hit = results.current_hit
        if hit is not None:
            self.tapp.remember_query(results.query_text)
            self.tapp.open_detail(hit, results.query_text)

    def action_focus_search(self) -> None:
        self.query_one(SearchInput).focus()

    def focus_list(self) -> None:
        """Tab from the query: to the hits (to the filter when there are none)."""
        results = self.query_one(ResultsList)
        if results.option_count and results.display:
            results.focus()
        else:
            self.query_one(FilterBar).focus()

    def action_escape(self) -> None:
        """fzf's escape: the filter bar reverts a pending edit, the list goes back to the
        query, a query is cleared, and an empty query quits."""
        focused = self.focused
        if isinstance(focused, FilterBar):
            self.revert_filter()
        elif not isinstance(focused, SearchInput):
            self.query_one(SearchInput).focus()
        elif focused.value:
            focused.value = ""
        else:
            self.tapp.request_quit()

    def action_scroll_preview(self, how: str) -> None:
        preview = self.query_one(PreviewPane)
        if preview.display:
            getattr(preview, how)(animate=False)

    def action_toggle_preview(self) -> None:
        self.preview_hidden = not self.preview_hidden
        self._show_empty_state()
        if not self.preview_hidden:
            self._update_preview()

    def action_cancel_ingest(self) -> None:
        self.tapp.cancel_ingest()

    def action_reconnect(self) -> None:
        self.tapp.open_locally()

    def action_copy_hit(self) -> None:
        hit = self.query_one(ResultsList).current_hit
        if hit is None:
            self.notify("No hit selected", severity="warning")
            return
        self.tapp.copy_menu(hit)

    def action_open_hit(self) -> None:
        hit = self.query_one(ResultsList).current_hit
        if hit is None:
            self.notify("No hit selected", severity="warning")
            return
        self.tapp.open_hit(hit)

    def action_cycle_mode(self) -> None:
        self.tapp.cycle_mode()

    def action_cycle_fusion(self) -> None:
        self.tapp.cycle_fusion()

    def action_toggle_rerank(self) -> None:
        self.tapp.toggle_rerank()

    def action_toggle_group(self) -> None:
        options = self.tapp.session.options
        self.tapp.set_options(options.with_(group_by_document=not options.group_by_document))

    def action_focus_filter(self) -> None:
        self.query_one(FilterBar).focus()

    def set_query(self, query: str) -> None:
        field = self.query_one(SearchInput)
        field.value = query
        field.cursor_position = len(query)
        field.focus()
