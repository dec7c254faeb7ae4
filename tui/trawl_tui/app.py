"""``TrawlApp``: the Textual app behind ``trawl tui``, a thin client of ``trawl.Trawl``.

Build it without the CLI with ``make_app(trawl_or_path, ...)`` (tests and benchmarks do);
``run(index, pipeline)`` is what ``trawl tui [INDEX]`` calls.
"""

from __future__ import annotations

import difflib
import gc
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
from trawl.catalog import IndexInfo, list_indexes
from trawl.errors import TrawlError
from trawl.models import Hit
from trawl.plugins import PluginHost, default_host
from trawl.protocol import IndexClient

from . import actions
from .commands import TrawlCommands
from .ingest import IngestCount, IngestSummary, ingest_folder
from .messages import IngestFinished, IngestProgress, SearchRequest
from .safe import clean
from .screens import (
    ChoiceScreen,
    CopyMenu,
    DetailScreen,
    HelpScreen,
    HistoryScreen,
    IndexPicker,
    IndexScreen,
    MainScreen,
    OpenFailedScreen,
    PathPrompt,
    PipelineScreen,
    PluginsScreen,
)
from .session import (
    FUSION_METHODS,
    HISTORY_ENV,
    SearchOptions,
    Session,
    default_session_path,
    history_file,
    load_history,
    save_history,
)
from .widgets import SearchInput

KEYMAP_ENV = "TRAWL_TUI_KEYMAP"
PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress messages a second from ingestion
RECONNECT_EVERY_S = 2.0  # how often a lost server is tried again


def parse_keymap(spec: str) -> dict[str, str]:
    """``"help=f12,pipeline=ctrl+k"`` → ``{"help": "f12", "pipeline": "ctrl+k"}``."""
    return keymap_entries(spec)[0]


def keymap_entries(spec: str) -> tuple[dict[str, str], list[str]]:
    """The ``id=keys`` entries of a keymap string, and the entries that are not one."""
    out: dict[str, str] = {}
    bad: list[str] = []
    for item in spec.replace(";", ",").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if sep and key.strip() and value.strip():
            out[key.strip()] = value.strip()
        else:
            bad.append(item.strip())
    return out, bad


class TrawlApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "trawl"
    COMMANDS = App.COMMANDS | {TrawlCommands}
    # ctrl+p moves up through the hits (as in fzf), so the palette has its own key
    COMMAND_PALETTE_BINDING = "f10"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit", "Quit", id="quit", priority=True),
        Binding("ctrl+c", "quit", "Quit", show=False, id="quit-ctrl-c", priority=True),
        Binding("f1", "help", "Help", id="help"),
        Binding("ctrl+r", "history", "History", id="history", priority=True),
        Binding("f2", "pipeline", "Pipeline", id="pipeline"),
        Binding("f3", "index_screen", "Index", id="index-screen"),
        Binding("f4", "plugins_screen", "Plugins", id="plugins-screen"),
        Binding("f6", "pick_index", "Indexes", show=False, id="pick-index"),
        Binding("ctrl+s", "save_session", "Save session", show=False, id="save-session"),
    ]
    BINDING_GROUP_TITLE = "App"

    def __init__(self, trawl: IndexClient | None = None, *, index_path: str | None = None,
                 pipeline: str | None = None, session: Session | None = None,
                 debounce: float = 0.06, mask_latency: bool = False, cursor_blink: bool = True,
                 keymap: Mapping[str, str] | None = None, owns_trawl: bool = False,
                 host: PluginHost | None = None, persist_history: bool = True,
                 pick: bool = False, history_home: Path | None = None,
                 keymap_problems: list[str] | None = None) -> None:
        super().__init__()
        self.keymap_problems = list(keymap_problems or [])
        self.server_lost = False
        self._reconnect_timer: Any = None
        self.ingest_cancel: threading.Event | None = None
        self.ingest_done: threading.Event | None = None  # set when the worker has returned
        self.ingest_note = ""
        self.quit_after_ingest = False
        self.info: IndexInfo | None = None
        self.pick = pick
        self.persist_history = persist_history and os.environ.get(HISTORY_ENV, "1") != "0"
        self.history_home = history_home
        self.history_path: Path | None = None
        self.open_failed = False
        self.ingest_started = 0.0
        self.trawl: IndexClient | None = trawl
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
        self.ingest_state: IngestCount | None = None
        self.last_paint: tuple[SearchRequest, float] | None = None
        self.on_paint: Callable[[SearchRequest, float], None] | None = None
        self.errors_shown: list[str] = []

    # -- lifecycle -----------------------------------------------------------------------
    def get_default_screen(self) -> MainScreen:
        return MainScreen()

    def on_mount(self) -> None:
        if self.keymap:
            self.set_keymap(self.keymap)
        self._check_keymap()
        if self.trawl is None and self.pick:
            self.pick_at_start()
        elif self.trawl is None and self.index_path is not None:
            self.open_index(self.index_path, self.pipeline_spec)

    def binding_ids(self) -> list[str]:
        """Every id a keymap can rebind (the app's, the screens' and the widgets')."""
        ids: list[str] = []
        for _, bindings in self.binding_groups():
            ids += [b.id for b in bindings if isinstance(b, Binding) and b.id]
        return sorted(set(ids))

    def _check_keymap(self) -> None:
        """A keymap entry that is not ``id=keys``, or names no binding, is said, not ignored."""
        problems = [f"{entry!r} is not ID=KEYS" for entry in self.keymap_problems]
        known = self.binding_ids()
        for name in self.keymap:
            if name not in known:
                near = difflib.get_close_matches(name, known, n=2, cutoff=0.6)
                problems.append(f"no key id {name!r}" + (
                    f" (did you mean {' or '.join(near)}?)" if near else ""))
        if problems:
            self.notify("; ".join(problems) + ". F1 lists the ids.",
                        title=f"{KEYMAP_ENV} ignored in part", severity="warning",
                        timeout=12, markup=False)

    def on_unmount(self) -> None:
        gc.unfreeze()  # an app run inside a longer process (tests, an embedding app)

    def _index_ready(self) -> None:
        """Called by the main screen once mounted, and again when an index finishes opening."""
        if self.trawl is not None:
            if self.info is None:
                self.info = self.trawl.info()
            self.sub_title = clean(self.info.path or "in-memory index")
            self.session.index = self.info.path
            self._load_history()
            unknown = [r for r in self.session.options.retrievers
                       if r not in self.info.retriever_names]
            if unknown:
                self.notify(f"Session names retrievers this index lacks: {clean(unknown)}",
                            severity="warning", markup=False)
            self.main.load_fields()
            # The open index's objects (chunks, vocabulary, ...) live until the next switch
            # (``_opened`` unfreezes them first): frozen, the cyclic collector stops walking
            # them, which otherwise paused a keystroke ~50 ms on a 10k-chunk index whenever
            # a full collection ran.
            gc.collect()
            gc.freeze()
        self.main.refresh_status()
        if self.trawl is not None and self.main.query_one(SearchInput).value:
            self.main.search_now(force=True)

    # -- opening -------------------------------------------------------------------------
    def open_index(self, target: str, pipeline: str | None, *, create: bool = False) -> None:
        """Open ``target`` (a name, folder or TOML file) in a worker. A name that is not an
        index yet asks first instead of creating it."""
        from trawl.config import TrawlSettings

        self.index_path, self.pipeline_spec = target, pipeline
        if not create and not target.endswith(".toml"):
            try:
                folder = TrawlSettings().index_path(target)
                exists = (folder / "pipeline.json").exists()
            except Exception as exc:  # a name that is not a valid path
                self._open_failed(exc)
                return
            if not exists:
                self._ask_missing(target, folder, pipeline)
                return
        self.opening_label = f"opening {clean(target)}…"
        if self.is_mounted(self.main):
            self.main.refresh_status()
        self._open_index(target, pipeline, create)

    def _ask_missing(self, target: str, folder: Path, pipeline: str | None) -> None:
        """A name that is no index: "did you mean" the near names (the first focused), else
        pick another (focused) or create it. Creating is never the default."""
        from trawl.config import TrawlSettings

        try:
            names = [s.name for s in list_indexes() if not s.error]
        except Exception:
            names = []
        near = difflib.get_close_matches(target, names, n=3, cutoff=0.6)
        choices = [(f"open:{name}", f"Open {clean(name)}", str(i + 1))
                   for i, name in enumerate(near)]
        choices += [("pick", "Pick another", "p"), ("create", f"Create {clean(target)}", "c")]
        question = f"No index {clean(target)!r} at {clean(folder)}."
        if near:
            question += f"\n\nDid you mean {' or '.join(repr(clean(n)) for n in near)}?"
        question += (f"\n\nCreate would make a new empty index (pipeline "
                     f"{clean(pipeline or TrawlSettings().default_pipeline)}).")

        def answer(choice: str | None) -> None:
            if choice == "create":
                self.open_index(target, pipeline, create=True)
            elif choice is not None and choice.startswith("open:"):
                self.open_index(choice.removeprefix("open:"), None)
            else:
                self.action_pick_index()

        self.push_screen(ChoiceScreen("No such index", question, choices), answer)

    def is_mounted(self, widget: Any) -> bool:
        return bool(getattr(widget, "is_mounted", False))

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _open_index(self, path: str, pipeline: str | None, create: bool = True) -> None:
        try:
            # a served index (``trawl serve`` holds its lock) comes back as a RemoteTrawl:
            # the TUI uses it like any other ``IndexClient``
            trawl = Trawl.open(path, pipeline=pipeline, show_progress=False, create=create)
            info = trawl.info()
        except Exception as exc:
            self.call_from_thread(self._open_failed, exc)
            return
        self.call_from_thread(self._opened, trawl, info)

    def _opened(self, trawl: IndexClient, info: IndexInfo) -> None:
        self.close_index()
        self.trawl, self.info = trawl, info
        self.owns_trawl = True
        self.open_failed = False
        self.opening_label = ""
        self._index_ready()

    # -- attach: where the index lives, a lost server -----------------------------------
    def target_label(self) -> str:
        """``remote http://…`` while attached to ``trawl serve``, else ``local``."""
        url = getattr(self.trawl, "url", None)
        if self.trawl is not None and not isinstance(self.trawl, Trawl) and url:
            return f"remote {url}"
        return "local" if self.trawl is not None else ""

    def lost_server(self, error: BaseException) -> None:
        """The first failure says so once; then the app retries by itself (no toast per
        keystroke) and offers F5 to open the folder in this process."""
        if self.server_lost:
            return
        self.server_lost = True
        self.notify(f"{clean(error)}\n\nReconnecting by itself every "
                    f"{RECONNECT_EVERY_S:.0f} s; F5 opens the index folder locally.",
                    title="Server lost", severity="error", timeout=15, markup=False)
        self._reconnect_timer = self.set_interval(RECONNECT_EVERY_S, self._try_reconnect)
        self.main.refresh_status()
        self.main.refresh_bindings()

    @work(thread=True, exclusive=True, group="reconnect", exit_on_error=False)
    def _try_reconnect(self) -> None:
        from trawl.client import RemoteTrawl
        from trawl.lockfile import live_server

        trawl = self.trawl
        if trawl is None or not self.server_lost:
            return
        try:
            trawl.health()  # type: ignore[union-attr]
            self.call_from_thread(self._reconnected, trawl)
            return
        except Exception:
            pass
        path = getattr(trawl, "path", None)
        server = live_server(Path(path)) if path is not None else None
        if server is not None and server.url and server.url != getattr(trawl, "url", None):
            client = RemoteTrawl(server.url, index_path=Path(path))  # type: ignore[arg-type]
            try:
                client.health()
            except Exception:
                client.close()
                return
            self.call_from_thread(self._reconnected, client)

    def _reconnected(self, client: IndexClient) -> None:
        if not self.server_lost:
            return
        if client is not self.trawl:
            old = self.trawl
            self.trawl = client
            if old is not None:
                old.close()
        self._stop_reconnecting()
        self.notify(f"Attached again to {self.target_label()}", title="Server back",
                    markup=False)
        self.main.refresh_status()
        self.main.refresh_bindings()
        self.main.search_now(force=True)

    def _stop_reconnecting(self) -> None:
        self.server_lost = False
        if self._reconnect_timer is not None:
            self._reconnect_timer.stop()
            self._reconnect_timer = None

    def open_locally(self) -> None:
        """F5 while the server is lost: open the folder in this process (its lock is stale
        now, so ``Trawl.open`` takes it over; a live server found meanwhile is attached)."""
        path = getattr(self.trawl, "path", None) or self.index_path
        if not self.server_lost or path is None:
            return
        self._stop_reconnecting()
        self.open_index(str(path), None, create=False)

    def _open_failed(self, exc: BaseException) -> None:
        """A failed open is never a dead end: pick another index, retry, or quit (exit 1)."""
        self.open_failed = True
        self.opening_label = "no index (open failed)"
        self.show_error(exc, "cannot open index")
        self.main.refresh_status()

        def choice(what: str | None) -> None:
            # after the dialog has gone: a fast second failure must not race its removal
            if what == "retry" and self.index_path is not None:
                self.call_after_refresh(self.open_index, self.index_path, self.pipeline_spec,
                                        create=True)
            elif what == "pick":
                self.call_after_refresh(self.action_pick_index)
            elif what == "quit":
                self.exit(return_code=1)

        self.push_screen(OpenFailedScreen(str(self.index_path or ""), exc), choice)

    def pick_at_start(self) -> None:
        """``trawl tui`` without a name: the only index opens at once; otherwise pick."""
        try:
            found = [s for s in list_indexes() if not s.error]
        except Exception:
            found = []
        if len(found) == 1:
            self.open_index(str(found[0].path), None)
        else:
            self.action_pick_index()

    def action_pick_index(self) -> None:
        def chosen(name: str | None) -> None:
            if name:
                self.open_index(name, None)
            elif self.trawl is None and not self.open_failed:
                self.main.refresh_status()

        self.push_screen(IndexPicker(), chosen)

    def close_index(self) -> None:
        self._stop_reconnecting()
        gc.unfreeze()  # the index's objects (frozen in ``_index_ready``) may become garbage
        self._save_history()
        if self.trawl is not None and self.owns_trawl:
            with self.search_lock:
                self.trawl.close()
        self.trawl = None
        self.info = None

    # -- history -------------------------------------------------------------------------
    def _load_history(self) -> None:
        path = None
        if self.persist_history and self.info is not None:
            path = history_file(self.info.path, self.history_home)
        if path is None or path == self.history_path:
            return
        self.history_path = path
        saved = load_history(path, self.session.history.limit)
        merged = [q for q in saved.entries if q not in self.session.history.entries]
        self.session.history.entries[:0] = merged

    def _save_history(self) -> None:
        if self.history_path is None:
            return
        try:
            save_history(self.history_path, self.session.history)
        except OSError as exc:
            self.history_path = None  # say it once, keep working
            self.show_error(exc, "saving query history")

    def remember_query(self, query: str) -> None:
        if query.strip():
            self.session.history.add(query)
            self._save_history()

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
            text = clean(error)
        else:
            title = context or "error"
            text = clean(f"{type(error).__name__}: {error}")
        if context and isinstance(error, TrawlError):
            title = f"{context}: {title}"
        title = clean(title)
        self.errors_shown.append(text)
        self.notify(text, title=title, severity="error", timeout=10, markup=False)

    def plugin_host(self) -> PluginHost:
        if isinstance(self.trawl, Trawl):
            return self.trawl.host
        return self._host or default_host()

    def retriever_names(self) -> list[str]:
        return self.info.retriever_names if self.info is not None else []

    def has_reranker(self) -> bool:
        return self.info is not None and self.info.reranker is not None

    def reranker_default(self) -> bool:
        return self.info is not None and self.info.reranker_enabled

    def record_paint(self, request: SearchRequest) -> None:
        now = time.perf_counter()
        self.last_paint = (request, now)
        if self.on_paint is not None:
            self.on_paint(request, now)

    def open_detail(self, hit: Hit, query: str) -> None:
        self.push_screen(DetailScreen(hit, query))

    def copy_menu(self, hit: Hit) -> None:
        def chosen(kind: str | None) -> None:
            if kind is not None:
                self.copy_text(actions.copy_payload(hit, kind), kind)

        self.push_screen(CopyMenu(hit), chosen)

    def copy_text(self, text: str, what: str) -> None:
        """System clipboard tool when there is one, else OSC 52 through the terminal."""
        via = actions.copy_with_tool(text)
        if via is None:
            # OSC 52 has no answer: the terminal may store it or silently drop it
            self.copy_to_clipboard(text)
            self.notify(f"{what} sent to the terminal's clipboard (OSC 52). Terminals that "
                        "do not allow OSC 52 drop it silently; a clipboard tool (wl-copy, "
                        "xclip, xsel, pbcopy) makes copying certain.", title="Copy sent",
                        severity="warning", markup=False)
            return
        self._clipboard = text
        self.notify(f"{what} copied via {via}", title="Copied", markup=False)

    def open_hit(self, hit: Hit) -> None:
        """$VISUAL/$EDITOR at the chunk's line (app suspended), else $PAGER, else the
        system opener."""
        try:
            plan = actions.open_plan(hit)
        except TrawlError as exc:
            self.show_error(exc, "open")
            return
        try:
            if plan.suspend:
                try:
                    with self.suspend():
                        code = actions.run_plan(plan)
                except Exception as exc:  # no terminal to hand over (headless, tests)
                    if type(exc).__name__ != "SuspendNotSupported":
                        raise
                    code = actions.run_plan(plan)
            else:
                code = actions.run_plan(plan)
        except OSError as exc:
            self.show_error(exc, f"open with {plan.label}")
            return
        if code:
            self.notify(f"{plan.label} exited with status {code}", severity="warning",
                        markup=False)
        else:
            self.notify(clean(plan.describe()), title="Opened", markup=False)

    # -- pipeline choice -----------------------------------------------------------------
    def set_options(self, options: SearchOptions) -> None:
        """Remember the choice for the session and re-run the current query with it."""
        self.session.options = options
        self.main.refresh_status()
        self.main.search_now()

    def set_retrievers(self, retrievers: tuple[str, ...]) -> None:
        self.set_options(self.session.options.with_(retrievers=tuple(retrievers)))

    def set_fusion(self, method: str | None) -> None:
        own = self.info.fusion.method if self.info is not None else None
        self.set_options(self.session.options.with_(fusion=None if method == own else method))

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
        """The pipeline's own fusion first, then each other method."""
        own = self.info.fusion.method if self.info is not None else "rrf"
        modes: list[str | None] = [None, *(m for m in FUSION_METHODS if m != own)]
        current = self.session.options.fusion
        position = modes.index(current) if current in modes else 0
        self.set_fusion(modes[(position + 1) % len(modes)])

    def toggle_rerank(self) -> None:
        if not self.has_reranker():
            self.notify("This pipeline has no reranker", severity="warning")
            return
        current = self.session.options.rerank
        effective = self.reranker_default() if current is None else current
        self.set_rerank(not effective)

    # -- actions -------------------------------------------------------------------------
    def binding_groups(self) -> list[tuple[str, list[BindingType]]]:
        from .screens.detail import DetailScreen as _D
        from .screens.index import IndexScreen as _I
        from .widgets import FilterBar, ResultsList

        return [(cls.BINDING_GROUP_TITLE or cls.__name__, list(cls.BINDINGS))
                for cls in (TrawlApp, MainScreen, SearchInput, ResultsList, FilterBar, _D, _I,
                            PipelineScreen)]

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(self.binding_groups(), self.keymap))  # type: ignore[arg-type]

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
                                        reranker_default=self.reranker_default(),
                                        pipeline_fusion=self.info.fusion.method
                                        if self.info is not None else "rrf"), done)

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
        if isinstance(self.screen, HistoryScreen):
            return

        def done(query: str | None) -> None:
            if query is not None:
                self._back_to_main()
                draft = self.main.query_one(SearchInput).value
                if draft.strip() and draft != query:
                    self.session.history.add(draft)  # the unsent query is never lost
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

    def action_load_session(self) -> None:  # palette only: ctrl+o opens the hit
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
    # -- quitting ----------------------------------------------------------------------------
    async def action_quit(self) -> None:
        self.request_quit()

    def request_quit(self) -> None:
        """Quit, unless an ingestion runs: then ask (finish first, or cancel after the
        current batch); either way the app stays on screen until the worker has ended, so
        nothing keeps running after the shell is back."""
        if not self.ingest_running():
            self.exit()
            return
        if any(isinstance(s, ChoiceScreen) and s.id == "quit-ingest" for s in self.screen_stack):
            return

        def answer(choice: str | None) -> None:
            if choice == "finish":
                self.quit_after_ingest = True
                self._set_activity_note("quitting when the ingestion finishes")
            elif choice == "cancel":
                self.quit_after_ingest = True
                self.cancel_ingest()

        self.push_screen(ChoiceScreen(
            "Quit during an ingestion",
            "An ingestion is running. Finish it and then quit, or cancel it (what is "
            "committed stays; it stops after the batch being written) and quit?",
            [("finish", "Finish, then quit", "f"), ("cancel", "Cancel and quit", "c"),
             ("stay", "Keep working", "escape")], id="quit-ingest"), answer)

    def ingest_running(self) -> bool:
        return any(w.group == "ingest" and w.is_running for w in self.workers)

    def cancel_ingest(self) -> None:
        """Stop the running ingestion after the batch being written."""
        if self.ingest_cancel is None or not self.ingest_running():
            self.notify("No ingestion is running", severity="warning")
            return
        if not isinstance(self.trawl, Trawl):
            self.notify("The server runs this ingestion; it cannot be cancelled from here",
                        severity="warning")
            return
        self.ingest_cancel.set()
        self._set_activity_note("cancelling after the current batch…")

    def _set_activity_note(self, note: str) -> None:
        self.ingest_note = note
        self._show_ingest_progress()

    def start_ingest(self, folder: str) -> None:
        if self.trawl is None:
            self.notify("No index open", severity="warning")
            return
        if self.ingest_running():
            self.notify("An ingestion is already running", severity="warning")
            return
        self.ingest_cancel = threading.Event()
        self.ingest_done = threading.Event()
        self.ingest_note = ""
        self.ingest_state = IngestCount("starting")
        self.ingest_started = time.monotonic()
        self.call_after_refresh(self.main.refresh_bindings)  # F8 cancel shows now
        # the rate, elapsed time and ETA move at least once a second, batches or not
        self._ingest_timer = self.set_interval(1.0, self._show_ingest_progress)
        self._ingest(folder)

    @work(thread=True, exclusive=True, group="ingest", exit_on_error=False)
    def _ingest(self, folder: str) -> None:
        worker = get_current_worker()
        trawl = self.trawl
        cancel, done = self.ingest_cancel, self.ingest_done
        assert trawl is not None and done is not None
        last = 0.0

        def progress(count: IngestCount) -> None:
            nonlocal last
            self.ingest_state = count  # the once-a-second redraw shows it if no message does
            now = time.monotonic()
            if count.final or now - last >= PROGRESS_INTERVAL_S:
                last = now
                if not worker.is_cancelled:
                    self.post_message(IngestProgress(count))

        try:
            summary: IngestSummary | None = ingest_folder(trawl, folder, progress,
                                                          cancel=cancel)
            error: BaseException | None = None
        except Exception as exc:
            summary, error = None, exc
        finally:
            done.set()
        self.post_message(IngestFinished(folder, summary, error))

    def on_ingest_progress(self, message: IngestProgress) -> None:
        if self.ingest_state is not None:  # not after the end (a late message)
            self._show_ingest_progress()

    def _show_ingest_progress(self) -> None:
        if self.ingest_state is None:
            return
        count = self.ingest_state
        # masked (snapshots): no clock, so no rate, elapsed time or ETA that vary by run
        elapsed = 0.0 if self.mask_latency else time.monotonic() - self.ingest_started
        text = progress_text(count, elapsed)
        if getattr(self, "ingest_note", ""):
            text = f"{self.ingest_note} · {text}"
        for screen in self.screen_stack:
            if isinstance(screen, IndexScreen):
                screen.show_progress(count, text)
        self._set_activity(text)

    def on_ingest_finished(self, message: IngestFinished) -> None:
        self.ingest_state = None
        self.ingest_note = ""
        timer = getattr(self, "_ingest_timer", None)
        if timer is not None:
            timer.stop()
        self._set_activity("")
        self.main.refresh_bindings()
        if self.quit_after_ingest:
            self.exit()
            return
        if message.error is not None:
            self.show_error(message.error, f"add folder {message.folder}")
        elif message.summary is not None and message.summary.cancelled:
            self.notify(message.summary.describe() + "; the rest was not read (add the "
                        "folder again to finish)", title=f"Cancelled {message.folder}",
                        severity="warning", markup=False)
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


def progress_text(count: IngestCount, elapsed: float) -> str:
    """``indexing 120 docs · 40/600 files · 35.2 docs/s · 0:03 elapsed · ETA 0:11``:
    documents counted as documents; the ETA follows the bytes read (files differ in size)."""
    docs = count.documents
    parts = [f"{count.label} {docs} {'doc' if docs == 1 else 'docs'}"]
    if count.files_total:
        parts.append(f"{count.files_done}/{count.files_total} files read")
    if elapsed > 0 and docs:
        parts.append(f"{docs / elapsed:.1f} docs/s")
    parts.append(f"{_clock(elapsed)} elapsed")
    fraction = count.fraction
    if fraction is not None and 0 < fraction < 1 and elapsed > 0:
        parts.append(f"ETA {_clock(elapsed * (1 - fraction) / fraction)}")
    return " · ".join(parts)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _env_keymap() -> tuple[dict[str, str], list[str]]:
    return keymap_entries(os.environ.get(KEYMAP_ENV, ""))


def make_app(trawl_or_path: Trawl | str | Path | None = None, *, pipeline: str | None = None,
             session: Session | str | Path | None = None, debounce: float = 0.06,
             mask_latency: bool = False, cursor_blink: bool = True,
             keymap: Mapping[str, str] | None = None, history: bool = True,
             history_home: Path | None = None) -> TrawlApp:
    """Build the app on an open ``Trawl`` (caller keeps ownership), on an index name, folder
    or TOML file (opened in a worker when the app starts, closed by ``run``), or, with
    ``None``, on the index picker."""
    if session is not None and not isinstance(session, Session):
        session = Session.load(session)
    env_keys, bad_entries = _env_keymap()
    keys = {**env_keys, **dict(keymap or {})}
    common: dict[str, Any] = {"session": session, "debounce": debounce,
                              "mask_latency": mask_latency, "cursor_blink": cursor_blink,
                              "keymap": keys, "persist_history": history,
                              "history_home": history_home, "keymap_problems": bad_entries}
    if isinstance(trawl_or_path, Trawl):
        return TrawlApp(trawl_or_path, **common)
    if trawl_or_path is None:
        return TrawlApp(None, pipeline=pipeline, owns_trawl=True, pick=True, **common)
    return TrawlApp(None, index_path=str(trawl_or_path), pipeline=pipeline, owns_trawl=True,
                    **common)


def run(index: str | None = None, pipeline: str | None = None, *,
        session: str | None = None, history: bool = True) -> int:
    """Entry point of ``trawl tui [INDEX]``; returns a process exit code (1 when the user
    quits after an index failed to open)."""
    import sys

    try:
        app = make_app(index, pipeline=pipeline, session=session, history=history)
    except TrawlError as exc:
        print(f"trawl tui: {clean(exc)}", file=sys.stderr)
        return 2
    try:
        app.run()
    finally:
        # nothing keeps running silently: an ingestion still going (the app died) stops
        # after its current batch, and the process waits for it before returning
        done = app.ingest_done
        if done is not None and not done.is_set():
            if app.ingest_cancel is not None:
                app.ingest_cancel.set()
            print("trawl tui: stopping the ingestion after its current batch…",
                  file=sys.stderr)
            done.wait()
        app.close_index()
    if app.return_code:
        return app.return_code
    return 1 if app.open_failed else 0
