"""``--watch``: keep folders in step with the index while the server runs.

watchfiles (Rust notify) reports changes; bursts are coalesced (a batch is handed over
once no new change arrived for ``step_ms``, at most ``debounce_ms`` after the first), and
each batch re-runs core's incremental ``index_paths`` with ``prune=True`` on the roots it
touched: unchanged files are skipped by size and mtime, changed ones re-indexed, deleted
ones pruned. Exactly what ``trawl index --prune`` does, so the two never disagree.

A watched folder that is removed is pruned (its documents go) and watched for: when it
is created again, it is rescanned and watched anew (the OS watch on the old folder died
with it). A watcher that fails is restarted after a pause; ``status()`` (``/healthz``)
and the log say what went wrong, and ``healthy`` is false while a root is missing or the
last sync or watch failed.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from watchfiles import Change, DefaultFilter, watch

from trawl import InputError, Trawl
from trawl.ingest import IngestReport, index_paths

log = logging.getLogger("trawl.serve.watch")


class FolderWatcher:
    """A background thread that mirrors ``roots`` into ``trawl``."""

    def __init__(self, trawl: Trawl, roots: list[Path], *, debounce_ms: int = 500,
                 step_ms: int = 60) -> None:
        self.trawl = trawl
        self.roots: list[Path] = []
        for root in roots:
            if not root.exists():
                raise InputError(f"--watch {root}: no such file or folder")
            self.roots.append(root.resolve())
        self.debounce_ms = debounce_ms
        self.step_ms = step_ms
        self._index_dir = os.path.realpath(trawl.path) if trawl.path is not None else None
        self._default_filter = DefaultFilter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trawl-watch", daemon=True)
        self.ready = threading.Event()
        self.syncs = 0
        self.last_report: IngestReport | None = None
        self.last_error: str | None = None
        self.last_sync_at: float | None = None
        self.missing: set[Path] = set()  # roots removed while watching, waited for
        self.restarts = 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def healthy(self) -> bool:
        """Every root watched, the watcher running, the last sync and watch fine."""
        return (self.ready.is_set() and self._thread.is_alive() and not self.missing
                and self.last_error is None)

    def status(self) -> dict[str, Any]:
        """For ``/healthz``: roots, whether the first sync is done, the last sync's counts,
        missing roots and the last error."""
        report = self.last_report
        return {
            "roots": [str(r) for r in self.roots], "ready": self.ready.is_set(),
            "healthy": self.healthy, "running": self._thread.is_alive(),
            "missing": sorted(str(r) for r in self.missing), "restarts": self.restarts,
            "syncs": self.syncs, "last_sync_at": self.last_sync_at,
            "last": report.model_dump(exclude={"skipped"}) if report is not None else None,
            "last_error": self.last_error,
        }

    # -- work ----------------------------------------------------------------------------
    def _wanted(self, change: Change, path: str) -> bool:
        if self._index_dir is not None and (
                path == self._index_dir or path.startswith(self._index_dir + os.sep)):
            return False  # our own writes must not trigger syncs
        return self._default_filter(change, path)

    def _roots_of(self, paths: set[str]) -> list[Path]:
        touched = []
        for root in self.roots:
            prefix = str(root)
            if any(p == prefix or p.startswith(prefix.rstrip(os.sep) + os.sep) for p in paths):
                touched.append(root)
        return touched or list(self.roots)

    def sync(self, roots: list[Path] | None = None) -> IngestReport:
        """Run incremental ingestion with pruning over ``roots`` (default: all)."""
        started = time.perf_counter()
        report = index_paths(self.trawl, [str(r) for r in (roots or self.roots)], prune=True,
                             show_progress=False)
        self.syncs += 1
        self.last_report = report
        self.last_sync_at = time.time()
        log.info("watch sync %.0f ms: +%d ~%d -%d", (time.perf_counter() - started) * 1000,
                 report.added, report.updated, report.pruned)
        return report

    def _safe_sync(self, roots: list[Path] | None = None) -> None:
        try:
            self.sync(roots)
            self.last_error = self._missing_message()
        except Exception as exc:  # a bad sync must not end watching
            self.last_error = f"sync failed: {type(exc).__name__}: {exc}"
            log.exception("watch sync failed")

    def _missing_message(self) -> str | None:
        if not self.missing:
            return None
        return (f"watched folder(s) {', '.join(sorted(map(str, self.missing)))} removed: "
                "their documents were pruned; waiting for them to come back")

    def _vanished(self, changes: set[tuple[Change, str]]) -> list[Path]:
        """Watched roots that are gone (deleted themselves, or no longer there)."""
        deleted = {p for c, p in changes if c == Change.deleted}
        return [r for r in self.roots if r not in self.missing and (
            str(r) in deleted or not r.exists())]

    def _returned(self) -> list[Path]:
        return [r for r in self.missing if r.exists()]

    def _watch_once(self) -> None:
        """One OS watch over the roots that exist now; returns when the set of roots
        changes (one vanished or came back) so the caller watches the new set."""
        for root in self._returned():
            log.warning("watched folder %s is back: rescanning it", root)
            self.missing.discard(root)
        live = [r for r in self.roots if r not in self.missing]
        if not live:  # nothing to watch: poll for a root to come back
            while not self._stop.wait(self.step_ms / 1000 * 4):
                if self._returned():
                    return
            return
        first = True
        for changes in watch(*live, watch_filter=self._wanted, debounce=self.debounce_ms,
                             step=self.step_ms, stop_event=self._stop,
                             yield_on_timeout=True, rust_timeout=200, raise_interrupt=False):
            if self._stop.is_set():
                return
            if first:
                # the OS watch is running now, so nothing written from here on is missed:
                # sync what changed before (everything, on start and after a restart)
                first = False
                self._safe_sync(live)
                self.ready.set()
            gone = self._vanished(changes)
            back = self._returned()
            if gone or back:  # watch the new set of roots (a returned one: at the top)
                self.missing.update(gone)
                for root in gone:
                    log.warning("watched folder %s was removed: pruning its documents and "
                                "waiting for it to come back", root)
                if gone:
                    self._safe_sync(gone)  # prunes them; a returned root is rescanned
                return  # by the next watch, which watches it again
            if changes:
                self._safe_sync(self._roots_of({p for _, p in changes}))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch_once()
            except Exception as exc:  # the OS watch failed: say so, pause, watch again
                self.last_error = f"watcher failed: {type(exc).__name__}: {exc}"
                log.exception("watcher failed; restarting it in 1 s")
                self._stop.wait(1.0)
            else:
                if self._stop.is_set():
                    break
            self.restarts += 1
        self.ready.set()
