"""The index folder's lock file: who owns the folder and, while it serves it, where.

The owner holds an exclusive ``flock`` on ``<index>/.lock`` for as long as it has the
folder open (the kernel drops it when the process dies, so a crashed owner never blocks
anyone). The file's text is one JSON object, ``{"pid": 123}`` or, while ``trawl serve``
runs, ``{"pid": 123, "url": "http://127.0.0.1:8765", "auth": false}``. A process that
cannot take the lock reads it to decide: a live server → attach to it as a client; a live
process that serves nothing → ``IndexLockedError`` naming the pid. Older lock files hold
a bare pid; they read as ``{"pid": N}``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_FILE = ".lock"


@dataclass(frozen=True)
class LockInfo:
    """What the lock file says about its owner."""

    pid: int
    url: str | None = None
    auth: bool = False

    def to_text(self) -> str:
        data: dict[str, object] = {"pid": self.pid}
        if self.url is not None:
            data.update(url=self.url, auth=self.auth)
        return json.dumps(data)

    @classmethod
    def parse(cls, text: str) -> LockInfo | None:
        """The record in ``text``, or ``None`` when it is empty or not a lock record."""
        text = text.strip()
        if not text:
            return None
        if text.isdigit():
            return cls(pid=int(text))
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("pid"), int):
            return None
        url = data.get("url")
        return cls(pid=data["pid"], url=url if isinstance(url, str) else None,
                   auth=bool(data.get("auth", False)))


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 checks without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it is just not ours
        return True
    return True


def read_lock(folder: Path, *, attempts: int = 5) -> LockInfo | None:
    """The owner record of ``folder``'s lock file, or ``None`` if there is none.

    The owner rewrites the file in place (truncate, then one small write), so a reader can
    catch it empty for an instant: retry a few times before calling it empty.
    """
    path = folder / LOCK_FILE
    for attempt in range(attempts):
        try:
            info = LockInfo.parse(path.read_text(encoding="utf-8"))
        except OSError:
            return None
        if info is not None:
            return info
        if attempt + 1 < attempts:
            time.sleep(0.02)
    return None


def live_server(folder: Path) -> LockInfo | None:
    """The record of a live process serving ``folder``, else ``None`` (stale or no server)."""
    info = read_lock(folder)
    if info is None or info.url is None or not pid_alive(info.pid):
        return None
    return info
