"""Small durable stores used by the core: atomic file writes, the ingestion manifest and
the chunk ids each document was split into (the token store lives in ``tokens.py``).

SQLite (stdlib) gives transactions that survive a crash without any pickle: the manifest
and the token store are SQLite files; everything else is JSON or ``.npy``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from .errors import IndexCorruptError, IndexReadOnlyError

FORMAT_VERSION = 1
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) as a folder only its owner can read: indexes
    hold full document text. The mode is set explicitly, whatever the umask."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    for made in missing:
        _chmod(made, PRIVATE_DIR)
    return path


def _chmod(path: Path, mode: int) -> None:
    try:
        if (os.stat(path, follow_symlinks=False).st_mode & 0o7777) != mode:
            os.chmod(path, mode, follow_symlinks=False)
    except (OSError, NotImplementedError):  # read-only folders, files of other users
        pass


def secure_tree(root: Path) -> None:
    """Make every folder under ``root`` 0700 and every file 0600, whatever the umask.

    For index files written by libraries that take no mode (SQLite, Qdrant's engine):
    call it after they create files. Symlinks are left alone; files that cannot be
    changed (read-only mounts, other owners) are skipped.
    """
    if not root.exists():
        return
    _chmod(root, PRIVATE_DIR)
    for folder, dirs, files in os.walk(root):
        for d in dirs:
            p = Path(folder) / d
            if not p.is_symlink():
                _chmod(p, PRIVATE_DIR)
        for f in files:
            p = Path(folder) / f
            if not p.is_symlink():
                _chmod(p, PRIVATE_FILE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (then make it 0600), so a
    library that opens it later (SQLite copies the mode to its WAL) never widens it."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE)
    except OSError:
        return  # read-only: whatever opens it next reports the problem
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder, fsync, then rename: never a half file.

    The file is 0600 (``mkstemp``'s mode) and a new folder 0700."""
    with atomic_writer(path) as fh:
        fh.write(data)


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """``atomic_write_bytes`` for data written in pieces (a large snapshot need not be one
    bytes object in memory): the file appears, fsynced, only when the block ends cleanly."""
    if not path.parent.exists():
        private_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable: fsync the folder entry too (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, ensure_ascii=False, indent=1).encode("utf-8"))


def folder_sizes(folder: Path) -> tuple[int, int]:
    """``(allocated, apparent)`` bytes of the regular files under ``folder``.

    Allocated is ``st_blocks * 512`` (what ``du`` reports): sparse files such as Qdrant's
    preallocated segments count only what they really use. Hard links count once;
    symlinks are not followed.
    """
    allocated = apparent = 0
    seen: set[tuple[int, int]] = set()
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue  # removed while we walked
            if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            blocks = getattr(st, "st_blocks", None)  # absent on Windows
            allocated += st.st_size if blocks is None else blocks * 512
            apparent += st.st_size
    return allocated, apparent


def remove_created_folder(folder: Path) -> None:
    """Remove an index folder that the failing call itself created (nothing else is in it)."""
    shutil.rmtree(folder, ignore_errors=True)


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IndexCorruptError(f"{what} {path} is unreadable ({exc}); "
                                "restore it or delete the folder and re-index") from exc


def _connect(path: Path, what: str) -> sqlite3.Connection:
    if str(path) != ":memory:" and not path.exists():  # SQLite's in-memory name: no file
        private_file(path)
    try:
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"{what} {path} is not a valid database ({exc})") from exc


def _connect_read_only(path: Path, what: str) -> sqlite3.Connection:
    """Open a database that this process may not write (read-only file or folder).

    ``mode=ro`` still needs SQLite's ``-shm`` file; where that cannot be created (a
    read-only folder) the database is opened ``immutable``, which is only safe when no
    write-ahead log holds unmerged pages: then the index must be opened once writable.
    """
    uri = path.resolve().as_uri()
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, check_same_thread=False,
                               isolation_level=None, timeout=30)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        pass
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"{what} {path} is not a valid database ({exc})") from exc
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise IndexReadOnlyError(
            f"{what} {path} cannot be read here: its write-ahead log {wal.name} holds changes "
            "not yet merged and the folder is read-only; open the index once where it is "
            "writable (or copy it to a writable place)")
    try:
        conn = sqlite3.connect(f"{uri}?immutable=1", uri=True, check_same_thread=False,
                               isolation_level=None)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"{what} {path} cannot be opened read-only ({exc})") from exc


class Manifest:
    """What the trawl index holds: each document's content hash, chunks and state.

    ``state`` is ``pending`` while a document is being written to the indexes and
    ``committed`` once every configured index has it; on open, pending documents are
    rolled back so all indexes stay in step after a crash.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._lock = threading.RLock()
        if read_only:
            self._conn = _connect_read_only(path, "manifest")
            tables = {r[0] for r in self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"docs", "meta"} <= tables:
                raise IndexCorruptError(f"manifest {path} lacks its tables; restore it or "
                                        "delete the folder and re-index")
            return
        self._conn = _connect(path, "manifest")
        try:
            self._conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS docs (
                    doc_id TEXT PRIMARY KEY, hash TEXT NOT NULL, source TEXT,
                    chunk_ids TEXT NOT NULL, state TEXT NOT NULL, updated REAL NOT NULL);
                CREATE INDEX IF NOT EXISTS docs_source ON docs(source);
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                """
            )
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"manifest {path} is not a valid database ({exc})") from exc

    def get_meta(self, key: str) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               (key, json.dumps(value)))

    def hashes(self, doc_ids: Iterable[str] | None = None) -> dict[str, str]:
        """Committed documents' content hashes (only the given ids, when given)."""
        with self._lock:
            if doc_ids is None:
                return dict(self._conn.execute(
                    "SELECT doc_id, hash FROM docs WHERE state='committed'").fetchall())
            ids = list(doc_ids)
            out: dict[str, str] = {}
            for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                part = ids[start:start + 900]
                marks = ",".join("?" * len(part))
                out.update(self._conn.execute(
                    f"SELECT doc_id, hash FROM docs WHERE state='committed' AND doc_id IN ({marks})",
                    part).fetchall())
            return out

    def mark(self, entries: Sequence[tuple[str, str, str | None, list[str]]], state: str) -> None:
        """Record ``(doc_id, hash, source, chunk_ids)`` rows in one transaction."""
        import time

        now = time.time()
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany(
                "INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?, ?)",
                [(d, h, s, json.dumps(c), state, now) for d, h, s, c in entries],
            )
            self._conn.execute("COMMIT")

    def entries(self, doc_ids: Sequence[str]) -> list[tuple[str, str, str | None, list[str]]]:
        """Committed ``(doc_id, hash, source, chunk_ids)`` rows of these documents, the shape
        ``mark`` takes (so a failed update can put them back)."""
        out = []
        with self._lock:
            for start in range(0, len(doc_ids), 900):
                part = list(doc_ids[start:start + 900])
                marks = ",".join("?" * len(part))
                for doc_id, h, source, chunk_ids in self._conn.execute(
                        "SELECT doc_id, hash, source, chunk_ids FROM docs "
                        f"WHERE state='committed' AND doc_id IN ({marks})", part):
                    out.append((doc_id, h, source, list(json.loads(chunk_ids))))
        return out

    def remove(self, doc_ids: Sequence[str]) -> None:
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("DELETE FROM docs WHERE doc_id=?", [(d,) for d in doc_ids])
            self._conn.execute("COMMIT")

    def pending(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute(
                "SELECT doc_id FROM docs WHERE state!='committed'")]

    def doc_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute(
                "SELECT doc_id FROM docs WHERE state='committed'")}

    def by_source(self) -> dict[str, list[str]]:
        """Committed document ids grouped by their source (file path), for ``--prune``."""
        out: dict[str, list[str]] = {}
        with self._lock:
            for doc_id, source in self._conn.execute(
                    "SELECT doc_id, source FROM docs WHERE state='committed'"):
                out.setdefault(source or "", []).append(doc_id)
        return out

    def page(self, after: str | None, limit: int) -> list[tuple[str, str | None, list[str]]]:
        """Up to ``limit`` committed ``(doc_id, source, chunk_ids)`` rows in id order, the
        first with an id greater than ``after``: a cursor for iterating every document."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT doc_id, source, chunk_ids FROM docs WHERE state='committed' AND "
                "doc_id > ? ORDER BY doc_id LIMIT ?", (after or "", limit)).fetchall()
        return [(d, s, list(json.loads(c))) for d, s, c in rows]

    def first_chunk_ids(self, limit: int) -> list[str]:
        """The first chunk of up to ``limit`` recently updated documents (a metadata sample)."""
        with self._lock:
            rows = self._conn.execute("SELECT chunk_ids FROM docs WHERE state='committed' "
                                      "ORDER BY updated DESC LIMIT ?", (limit,)).fetchall()
        return [str(ids[0]) for ids in (json.loads(r[0]) for r in rows) if ids]

    def chunk_ids(self, doc_ids: Iterable[str]) -> dict[str, list[str]]:
        """Committed documents' chunk ids (only the given ids)."""
        ids = list(doc_ids)
        out: dict[str, list[str]] = {}
        with self._lock:
            for start in range(0, len(ids), 900):  # SQLite's bound-parameter limit
                part = ids[start:start + 900]
                marks = ",".join("?" * len(part))
                for doc_id, chunks in self._conn.execute(
                        f"SELECT doc_id, chunk_ids FROM docs WHERE state='committed' "
                        f"AND doc_id IN ({marks})", part):
                    out[doc_id] = json.loads(chunks)
        return out

    def count(self) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT COUNT(*) FROM docs WHERE state='committed'").fetchone()
        return int(row[0])

    def chunk_total(self) -> int | None:
        """Chunks of the committed documents, or ``None`` where this SQLite has no JSON
        functions (then nothing may rely on the number)."""
        with self._lock:
            try:
                row = self._conn.execute(
                    "SELECT COALESCE(SUM(json_array_length(chunk_ids)), 0) FROM docs "
                    "WHERE state='committed'").fetchone()
            except sqlite3.OperationalError:
                return None
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
