"""``TrawlApp``: the Textual app behind ``trawl tui``, a thin client of ``trawl.Trawl``.

Build it without the CLI with ``make_app(trawl_or_path, ...)`` (tests and benchmarks do);
``run(index, pipeline)`` is what ``trawl tui [INDEX]`` calls.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.worker import get_current_worker

from trawl.api import Trawl
from trawl.errors import TrawlError
from trawl.models import Hit
from trawl.plugins import PluginHost, default_host

from .commands import TrawlCommands
from .highlight import citation
from .ingest import IngestSummary, ingest_folder
from .messages import IngestFinished, IngestProgress, SearchRequest
from .screens import (
    DetailScreen,
    HelpScreen,
    HistoryScreen,
    IndexScreen,
    MainScreen,
    PathPrompt,
    PipelineScreen,
    PluginsScreen,
)
from .session import FUSION_METHODS, SearchOptions, Session, default_session_path
from .widgets import SearchInput

KEYMAP_ENV = "TRAWL_TUI_KEYMAP"
PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress messages a second from ingestion


def parse_keymap(spec: str) -> dict[str, str]:
    """``"help=f12,pipeline=ctrl+k"`` → ``{"help": "f12", "pipeline": "ctrl+k"}``."""
    out: dict[str, str] = {}
    for item in spec.replace(";", ",").split(","):
        if "=" in item:
            key, _, value = item.partition("=")
            if key.strip() and value.strip():
                out[key.strip()] = value.strip()
    return out


class TrawlApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "trawl"
    COMMANDS = App.COMMANDS | {TrawlCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", id="help"),
        Binding("f2", "pipeline", "Pipeline", id="pipeline"),
        Binding("f3", "index_screen", "Index", id="index-screen"),
        Binding("f4", "plugins_screen", "Plugins", id="plugins-screen"),
        Binding("f5", "history", "History", id="history"),
        Binding("ctrl+s", "save_session", "Save session", show=False, id="save-session"),
        Binding("ctrl+o", "load_session", "Load session", show=False, id="load-session"),
        Binding("ctrl+q", "quit", "Quit", id="quit"),
    ]
    BINDING_GROUP_TITLE = "App"

    def __init__(self, trawl: Trawl | None = None, *, index_path: str | None = None,
                 pipeline: str | None = None, session: Session | None = None,
                 debounce: float = 0.06, mask_latency: bool = False, cursor_blink: bool = True,
                 keymap: Mapping[str, str] | None = None, owns_trawl: bool = False,
                 host: PluginHost | None = None) -> None:
        super().__init__()
        self.trawl = trawl
        self.index_path = index_path
        self.pipeline_spec = pipeline
        self.session = session or Session()
        self.debounce = debounce
        self.mask_latency = mask_latency
        self.cursor_blink = cursor_blink
        self.keymap = dict(keymap or {})
        self.owns_trawl = owns_trawl
        self._host = host
        self.search_lock = threading.Lock()
        self.opening_label = ""
        self.ingest_state: tuple[int, int | None, str] | None = None
        self.last_paint: tuple[SearchRequest, float] | None = None
        self.on_paint: Callable[[SearchRequest, float], None] | None = None
        self.errors_shown: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------
    def get_default_screen(self) -> MainScreen:
        return MainScreen()

    def on_mount(self) -> None:
        if self.keymap:
            self.set_keymap(self.keymap)
        if self.trawl is None and self.index_path is not None:
            self.opening_label = f"opening {self.index_path}…"
            self._open_index(self.index_path, self.pipeline_spec)

    def _index_ready(self) -> None:
        """Called by the main screen once mounted, and again when an index finishes opening."""
        if self.trawl is not None:
            self.sub_title = str(self.trawl.path) if self.trawl.path else "in-memory index"
            self.session.index = str(self.trawl.path) if self.trawl.path else None
            unknown = [r for r in self.session.options.retrievers if r not in
                       self.trawl.pipeline.retrievers]
            if unknown:
                self.notify(f"Session names retrievers this index lacks: {unknown}",
                            severity="warning")
        self.main.refresh_status()
        if self.trawl is not None and self.main.query_one(SearchInput).value:
            self.main.search_now(force=True)

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _open_index(self, path: str, pipeline: str | None) -> None:
        try:
            trawl = Trawl.open(path, pipeline=pipeline, show_progress=False)
        except Exception as exc:
            self.call_from_thread(self._open_failed, exc)
            return
        self.call_from_thread(self._opened, trawl)

    def _opened(self, trawl: Trawl) -> None:
        self.trawl = trawl
        self.owns_trawl = True
        self.opening_label = ""
        self._index_ready()

    def _open_failed(self, exc: BaseException) -> None:
        self.opening_label = "no index (open failed)"
        self.show_error(exc, "cannot open index")
        self.main.refresh_status()

    def close_index(self) -> None:
        if self.trawl is not None and self.owns_trawl:
            with self.search_lock:
                self.trawl.close()
            self.trawl = None

    @property
    def main(self) -> MainScreen:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("main screen not mounted")

    # -- helpers used by screens ---------------------------------------------------------
    def show_error(self, error: BaseException, context: str = "") -> None:
        """Every failure ends here: a notification, never a crash."""
        if isinstance(error, TrawlError):
            title = error.title
            text = str(error)
        else:
            title = context or "error"
            text = f"{type(error).__name__}: {error}"
        if context and isinstance(error, TrawlError):
            title = f"{context}: {title}"
        self.errors_shown.append(text)
        self.notify(text, title=title, severity="error", timeout=10, markup=False)

    def plugin_host(self) -> PluginHost:
        if self.trawl is not None:
            return self.trawl.host
        return self._host or default_host()

    def retriever_names(self) -> list[str]:
        return list(self.trawl.pipeline.retrievers) if self.trawl is not None else []

    def has_reranker(self) -> bool:
        return self.trawl is not None and self.trawl.pipeline.reranker is not None

    def reranker_default(self) -> bool:
        if self.trawl is None:
            return False
        cfg = self.trawl.pipeline.config.reranker
        return bool(self.trawl.pipeline.reranker is not None and cfg is not None and cfg.enabled)

    def record_paint(self, request: SearchRequest) -> None:
        now = time.perf_counter()
        self.last_paint = (request, now)
        if self.on_paint is not None:
            self.on_paint(request, now)

    def open_detail(self, hit: Hit, query: str) -> None:
        self.push_screen(DetailScreen(hit, query))

    def copy_citation(self, hit: Hit) -> None:
        text = citation(hit)
        self.copy_to_clipboard(text)
        self.notify(text, title="Citation copied", markup=False)

    # -- pipeline choice -----------------------------------------------------------------
    def set_options(self, options: SearchOptions) -> None:
        """Remember the choice for the session and re-run the current query with it."""
        self.session.options = options
        self.main.refresh_status()
        self.main.search_now()

    def set_retrievers(self, retrievers: tuple[str, ...]) -> None:
        self.set_options(self.session.options.with_(retrievers=tuple(retrievers)))

    def set_fusion(self, method: str) -> None:
        self.set_options(self.session.options.with_(fusion=method))

    def set_rerank(self, value: bool | None) -> None:
        if value and not self.has_reranker():
            self.notify("This pipeline has no reranker", severity="warning")
            return
        self.set_options(self.session.options.with_(rerank=value))

    def set_top_k(self, top_k: int) -> None:
        self.set_options(self.session.options.with_(top_k=top_k))

    def cycle_mode(self) -> None:
        """All retrievers → each alone → all again (hybrid → bm25 → dense → hybrid)."""
        names = self.retriever_names()
        if not names:
            return
        modes: list[tuple[str, ...]] = [()] + [(n,) for n in names] if len(names) > 1 else [()]
        current = self.session.options.retrievers
        position = modes.index(current) if current in modes else -1
        self.set_retrievers(modes[(position + 1) % len(modes)])

    def cycle_fusion(self) -> None:
        current = self.session.options.fusion
        self.set_fusion(FUSION_METHODS[(FUSION_METHODS.index(current) + 1) % len(FUSION_METHODS)])

    def toggle_rerank(self) -> None:
        if not self.has_reranker():
            self.notify("This pipeline has no reranker", severity="warning")
            return
        current = self.session.options.rerank
        effective = self.reranker_default() if current is None else current
        self.set_rerank(not effective)

    # -- actions -------------------------------------------------------------------------
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        from .screens.detail import DetailScreen as _D
        from .screens.index import IndexScreen as _I

        groups = [(cls.BINDING_GROUP_TITLE or cls.__name__, list(cls.BINDINGS))
                  for cls in (TrawlApp, MainScreen, SearchInput, _D, _I, PipelineScreen)]
        self.push_screen(HelpScreen(groups, self.keymap))  # type: ignore[arg-type]

    def action_pipeline(self) -> None:
        if self.trawl is None:
            self.notify("No index open", severity="warning")
            return
        if isinstance(self.screen, PipelineScreen):
            return

        def done(options: SearchOptions | None) -> None:
            if options is not None:
                self.set_options(options)

        self.push_screen(PipelineScreen(self.session.options, self.retriever_names(),
                                        has_reranker=self.has_reranker(),
                                        reranker_default=self.reranker_default()), done)

    def action_index_screen(self) -> None:
        if self.trawl is None:
            self.notify("No index open", severity="warning")
            return
        if not isinstance(self.screen, IndexScreen):
            self.push_screen(IndexScreen())

    def action_plugins_screen(self) -> None:
        if not isinstance(self.screen, PluginsScreen):
            self.push_screen(PluginsScreen())

    def action_history(self) -> None:
        def done(query: str | None) -> None:
            if query is not None:
                self._back_to_main()
                self.main.set_query(query)

        self.push_screen(HistoryScreen(self.session.history.entries), done)

    def _back_to_main(self) -> None:
        while not isinstance(self.screen, MainScreen) and len(self.screen_stack) > 1:
            self.pop_screen()

    def action_save_session(self) -> None:
        def done(path: str | None) -> None:
            if path is None:
                return
            try:
                saved = self.session.save(path)
            except Exception as exc:
                self.show_error(exc, "save session")
                return
            self.notify(str(saved), title="Session saved", markup=False)

        self.push_screen(PathPrompt("Save session", str(default_session_path())), done)

    def action_load_session(self) -> None:
        def done(path: str | None) -> None:
            if path is not None:
                self.load_session(path)

        self.push_screen(PathPrompt("Load session", str(default_session_path())), done)

    def load_session(self, path: str | Path) -> None:
        try:
            loaded = Session.load(path)
        except Exception as exc:
            self.show_error(exc, "load session")
            return
        self.session.history.entries[:] = loaded.history.entries
        self.session.history.reset_cursor()
        self.notify(f"{len(loaded.history.entries)} queries", title="Session loaded")
        self.set_options(loaded.options)
        if loaded.history.entries:
            self.main.set_query(loaded.history.entries[-1])

    # -- ingestion -----------------------------------------------------------------------
    def start_ingest(self, folder: str) -> None:
        if self.trawl is None:
            self.notify("No index open", severity="warning")
            return
        if any(w.group == "ingest" and w.is_running for w in self.workers):
            self.notify("An ingestion is already running", severity="warning")
            return
        self.ingest_state = (0, None, "starting")
        self._ingest(folder)

    @work(thread=True, exclusive=True, group="ingest", exit_on_error=False)
    def _ingest(self, folder: str) -> None:
        worker = get_current_worker()
        trawl = self.trawl
        assert trawl is not None
        last = 0.0

        def progress(done: int, total: int | None, label: str) -> None:
            nonlocal last
            now = time.monotonic()
            final = total is not None and done >= total
            if final or now - last >= PROGRESS_INTERVAL_S:
                last = now
                if not worker.is_cancelled:
                    self.post_message(IngestProgress(done, total, label))

        try:
            summary: IngestSummary | None = ingest_folder(trawl, folder, progress)
            error: BaseException | None = None
        except Exception as exc:
            summary, error = None, exc
        self.post_message(IngestFinished(folder, summary, error))

    def on_ingest_progress(self, message: IngestProgress) -> None:
        self.ingest_state = (message.done, message.total, message.label)
        for screen in self.screen_stack:
            if isinstance(screen, IndexScreen):
                screen.ingest_progress(message)
        pct = f"{message.done}/{message.total}" if message.total else f"{message.done}"
        self._set_activity(f"indexing {pct}")

    def on_ingest_finished(self, message: IngestFinished) -> None:
        self.ingest_state = None
        self._set_activity("")
        if message.error is not None:
            self.show_error(message.error, f"add folder {message.folder}")
        elif message.summary is not None:
            self.notify(message.summary.describe(), title=f"Indexed {message.folder}",
                        markup=False)
        for screen in self.screen_stack:
            if isinstance(screen, IndexScreen):
                screen.ingest_finished(message)
        if message.error is None:
            self.main.search_now(force=True)  # the index changed: refresh the results

    def _set_activity(self, text: str) -> None:
        from .widgets import StatusBar

        status = self.main.query_one(StatusBar)
        status.activity = text
        status.refresh_text()


def _env_keymap() -> dict[str, str]:
    return parse_keymap(os.environ.get(KEYMAP_ENV, ""))


def make_app(trawl_or_path: Trawl | str | Path | None = None, *, pipeline: str | None = None,
             session: Session | str | Path | None = None, debounce: float = 0.06,
             mask_latency: bool = False, cursor_blink: bool = True,
             keymap: Mapping[str, str] | None = None) -> TrawlApp:
    """Build the app on an open ``Trawl`` (caller keeps ownership) or on an index path/name
    (opened in a worker when the app starts, closed by ``run``)."""
    if session is not None and not isinstance(session, Session):
        session = Session.load(session)
    keys = {**_env_keymap(), **dict(keymap or {})}
    common: dict[str, Any] = {"session": session, "debounce": debounce,
                              "mask_latency": mask_latency, "cursor_blink": cursor_blink,
                              "keymap": keys}
    if isinstance(trawl_or_path, Trawl):
        return TrawlApp(trawl_or_path, **common)
    from trawl.config import TrawlSettings

    target = str(trawl_or_path) if trawl_or_path is not None else TrawlSettings().default_index
    return TrawlApp(None, index_path=target, pipeline=pipeline, owns_trawl=True, **common)


def run(index: str | None = None, pipeline: str | None = None, *,
        session: str | None = None) -> int:
    """Entry point of ``trawl tui [INDEX]``; returns a process exit code."""
    try:
        app = make_app(index, pipeline=pipeline, session=session)
    except TrawlError as exc:
        import sys

        print(f"trawl tui: {exc}", file=sys.stderr)
        return 2
    try:
        app.run()
    finally:
        app.close_index()
    return 0
