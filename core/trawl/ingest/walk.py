"""Find the files to ingest under the given paths.

Rules, in order, for every entry under a root directory:

- ``.git`` and the index folder itself are never entered; hidden names (``.x``) are
  skipped unless ``include_hidden``.
- ``.gitignore`` and ``.trawlignore`` files apply to their folder and below, with git's
  semantics (later and deeper patterns win, ``!`` re-includes), via ``pathspec``.
- ``exclude`` globs (gitignore syntax, relative to the root) drop files and whole folders;
  when ``include`` globs are given a file must match one of them.
- Symlinks: a link whose target lies inside the root is followed; one that points out
  of the root is skipped with a reason unless ``follow_symlinks``. Links are visited
  after the real tree, so a link to a file or folder already scanned is reported as a
  duplicate instead of indexing the same content twice, and a link back to an
  ancestor folder is a loop, skipped with a reason.
- ``confine_to`` (resolved folders): nothing whose real path lies outside them is read,
  whatever the links say; such a path or link is skipped with a reason naming it. A
  server indexing paths for clients sets it to the folders its operator named.
- Non-regular files (fifo, socket, device), empty files and files over ``max_bytes``
  are skipped with a reason; nothing here opens a file.
"""

from __future__ import annotations

import os
import re
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError, MissingDependencyError

IGNORE_FILES = (".gitignore", ".trawlignore")


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as valid Unicode text, for ids, metadata, manifests and messages.

    On POSIX a file name is bytes; Python hands undecodable bytes over as lone surrogates
    (``surrogateescape``), which no UTF-8 store accepts. Those bytes become ``\\xNN``
    escapes (``caf\\xe9.txt``); valid names are returned unchanged. ``fs_candidates``
    turns the text back into the real name.
    """
    text = os.fspath(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


def fs_candidates(display: str) -> list[str]:
    """Real paths a ``display_path`` text may stand for: itself, and with ``\\xNN``
    escapes turned back into bytes (when it has any)."""
    out = [display]
    if "\\x" in display:
        raw = _ESCAPED_BYTE.sub(lambda m: bytes([int(m[1], 16)]), display.encode("utf-8"))
        out.append(os.fsdecode(raw))
    return out


@dataclass(frozen=True)
class FileEntry:
    """A file to ingest. ``path`` is absolute but not resolved (links keep their name)."""

    path: Path
    root: Path
    rel: str
    size: int
    mtime_ns: int
    real: str  # resolved path, for duplicate detection

    @property
    def doc_key(self) -> str:
        """Stable document id: the root folder's name plus the path below it."""
        return display_path(f"{self.root.name}/{self.rel}" if self.root.name else self.rel)

    @property
    def display(self) -> str:
        """The path as valid Unicode text (see ``display_path``)."""
        return display_path(self.path)


@dataclass(frozen=True)
class SkipEntry:
    path: str
    reason: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", display_path(self.path))
        object.__setattr__(self, "reason", display_path(self.reason))


def _pathspec() -> Any:
    try:
        import pathspec
    except ImportError as exc:  # pragma: no cover - pathspec is in the ingest extra
        raise MissingDependencyError("pathspec", "ingest",
                                     purpose="include/exclude globs and .gitignore") from exc
    return pathspec


def check_glob(pattern: str) -> None:
    """Reject a glob that can never mean what was meant: empty, or a ``[`` that is never
    closed (git's wildmatch then matches nothing; pathspec silently reads it literally)."""
    if not pattern.strip():
        raise InputError("empty glob pattern")
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] in "!^":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1  # a leading ']' is a member of the class
            while j < len(pattern) and pattern[j] != "]":
                j += 2 if pattern[j] == "\\" else 1
            if j >= len(pattern):
                raise InputError(f"glob {pattern!r}: '[' at position {i} is never closed "
                                 "(write \\[ for a literal bracket)")
            i = j
        i += 1


def compile_globs(patterns: Sequence[str]) -> Any:
    """gitignore-syntax globs (``*.md``, ``docs/**``, ``build/``) as one matcher, or None."""
    patterns = [p for p in patterns if p and p.strip()]
    for pattern in patterns:
        check_glob(pattern)
    if not patterns:
        return None
    return _pathspec().GitIgnoreSpec.from_lines(patterns)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


class _Ignores:
    """The ``.gitignore``-style files active for one folder (outermost first)."""

    def __init__(self, specs: tuple[tuple[str, Any], ...] = ()) -> None:
        self.specs = specs

    def child(self, folder: Path, rel_folder: str) -> _Ignores:
        found = []
        for name in IGNORE_FILES:
            f = folder / name
            try:
                if f.is_file():
                    lines = f.read_text(encoding="utf-8", errors="replace").splitlines()
                    found.append(lines)
            except OSError:
                continue
        if not found:
            return self
        spec = _pathspec().GitIgnoreSpec.from_lines([ln for lines in found for ln in lines])
        prefix = f"{rel_folder}/" if rel_folder else ""
        return _Ignores((*self.specs, (prefix, spec)))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        for prefix, spec in reversed(self.specs):  # deepest file decides first
            if not rel.startswith(prefix):
                continue
            sub = rel[len(prefix):] + ("/" if is_dir else "")
            result = spec.check_file(sub)
            if result.include is not None:
                return bool(result.include)
        return False


@dataclass
class WalkOptions:
    include: Any = None  # compiled globs
    exclude: Any = None
    follow_symlinks: bool = False
    max_bytes: int = 32 * 1024 * 1024
    include_hidden: bool = False
    use_ignore_files: bool = True
    skip_dirs: tuple[str, ...] = ()  # resolved folders never entered (the index itself)
    confine_to: tuple[str, ...] = ()  # resolved folders nothing may be read outside of


def _outside(real: str, roots: tuple[str, ...]) -> bool:
    return bool(roots) and not any(_within(real, r) for r in roots)


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a fifo"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


class Walker:
    """Yields ``FileEntry`` and ``SkipEntry`` items; counts files dropped by ignore rules."""

    def __init__(self, options: WalkOptions) -> None:
        self.opt = options
        self.ignored = 0
        self._seen_files: dict[str, str] = {}   # real path -> first path it was seen as
        self._seen_dirs: dict[str, str] = {}

    # -- entry points --------------------------------------------------------------------
    def walk(self, paths: Sequence[str | os.PathLike[str]]) -> Iterator[FileEntry | SkipEntry]:
        for raw in paths:
            p = Path(os.path.abspath(os.fspath(raw)))
            if not os.path.lexists(p):
                yield SkipEntry(str(p), "no such file or directory")
                continue
            if _outside(os.path.realpath(p), self.opt.confine_to):
                yield SkipEntry(str(p), f"{os.path.realpath(p)} is outside the allowed folders")
            elif p.is_dir():
                yield from self._walk_root(p)
            elif p.is_symlink() and not p.exists():
                yield SkipEntry(str(p), f"broken symlink (target {os.readlink(p)!r} is missing)")
            else:
                # a file named on the command line is taken as given, links included
                yield from self._file(p, p.parent, p.name, os.path.realpath(p))

    # -- internals -----------------------------------------------------------------------
    def _file(self, path: Path, root: Path, rel: str, real: str) -> Iterator[FileEntry | SkipEntry]:
        try:
            st = os.stat(path)
        except PermissionError:
            yield SkipEntry(str(path), "permission denied (cannot stat)")
            return
        except OSError as exc:
            yield SkipEntry(str(path), f"cannot stat: {exc.strerror or exc}")
            return
        if not stat.S_ISREG(st.st_mode):
            yield SkipEntry(str(path), f"{_kind(st.st_mode)}, not a regular file")
            return
        if real in self._seen_files:
            yield SkipEntry(str(path), f"same file as {self._seen_files[real]} (already scanned)")
            return
        self._seen_files[real] = str(path)
        if st.st_size == 0:
            yield SkipEntry(str(path), "empty file")
            return
        if st.st_size > self.opt.max_bytes:
            yield SkipEntry(str(path), f"file too large: {st.st_size:,} bytes > limit "
                                       f"{self.opt.max_bytes:,} (raise max_bytes / --max-bytes)")
            return
        yield FileEntry(path=path, root=root, rel=rel, size=st.st_size, mtime_ns=st.st_mtime_ns,
                        real=real)

    def _walk_root(self, root: Path) -> Iterator[FileEntry | SkipEntry]:
        root_real = os.path.realpath(root)
        if any(_within(root_real, d) for d in self.opt.skip_dirs):
            yield SkipEntry(str(root), "this folder is (inside) the index itself")
            return
        self._seen_dirs.setdefault(root_real, str(root))
        # (folder, rel, ignores, ancestors' real paths); symlinks wait in `deferred`
        queue: deque[tuple[Path, str, _Ignores, tuple[str, ...]]] = deque(
            [(root, "", _Ignores(), (root_real,))])
        deferred: deque[tuple[Path, str, _Ignores, tuple[str, ...]]] = deque()
        while queue or deferred:
            if queue:
                folder, rel_folder, ignores, chain = queue.popleft()
                yield from self._scan_folder(root, root_real, folder, rel_folder, ignores, chain,
                                             queue, deferred)
            else:
                link, rel, ignores, chain = deferred.popleft()
                yield from self._symlink(root, root_real, link, rel, ignores, chain, queue)

    def _scan_folder(self, root: Path, root_real: str, folder: Path, rel_folder: str,
                     ignores: _Ignores, chain: tuple[str, ...], queue: deque[Any],
                     deferred: deque[Any]) -> Iterator[FileEntry | SkipEntry]:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except PermissionError:
            yield SkipEntry(str(folder), "permission denied (cannot list folder)")
            return
        except OSError as exc:
            yield SkipEntry(str(folder), f"cannot list folder: {exc.strerror or exc}")
            return
        if self.opt.use_ignore_files:
            ignores = ignores.child(folder, rel_folder)
        for entry in entries:
            rel = f"{rel_folder}/{entry.name}" if rel_folder else entry.name
            try:
                is_link = entry.is_symlink()
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError as exc:
                yield SkipEntry(entry.path, f"cannot stat: {exc.strerror or exc}")
                continue
            if not self._wanted(entry.name, rel, is_dir or (is_link and os.path.isdir(entry.path)),
                                ignores):
                continue
            if is_link:
                deferred.append((Path(entry.path), rel, ignores, chain))
            elif is_dir:
                real = os.path.realpath(entry.path)
                if any(_within(real, d) for d in self.opt.skip_dirs):
                    continue
                self._seen_dirs.setdefault(real, entry.path)
                queue.append((Path(entry.path), rel, ignores, (*chain, real)))
            else:
                if self.opt.include is not None and not self.opt.include.match_file(rel):
                    self.ignored += 1
                    continue
                yield from self._file(Path(entry.path), root, rel, os.path.realpath(entry.path))

    def _wanted(self, name: str, rel: str, is_dir: bool, ignores: _Ignores) -> bool:
        if is_dir and name == ".git":
            return False
        if name.startswith(".") and not self.opt.include_hidden:
            if not is_dir:
                self.ignored += 1
            return False
        if self.opt.exclude is not None and self.opt.exclude.match_file(
                rel + ("/" if is_dir else "")):
            if not is_dir:
                self.ignored += 1
            return False
        if ignores.ignored(rel, is_dir):
            if not is_dir:
                self.ignored += 1
            return False
        return True

    def _symlink(self, root: Path, root_real: str, link: Path, rel: str, ignores: _Ignores,
                 chain: tuple[str, ...], queue: deque[Any]) -> Iterator[FileEntry | SkipEntry]:
        try:
            target = os.readlink(link)
        except OSError as exc:
            yield SkipEntry(str(link), f"unreadable symlink: {exc.strerror or exc}")
            return
        real = os.path.realpath(link)
        if not os.path.exists(real):
            # realpath() of a loop a -> b -> a gives a path that does not exist either
            try:
                os.stat(link)
            except OSError as exc:
                if exc.errno == 40:  # ELOOP
                    yield SkipEntry(str(link), f"symlink loop ({target!r})")
                    return
            yield SkipEntry(str(link), f"broken symlink (target {target!r} is missing)")
            return
        if not self.opt.follow_symlinks and not _within(real, root_real):
            yield SkipEntry(str(link), f"symlink to {real} points outside {root} "
                                       "(pass follow_symlinks=True / --follow-symlinks)")
            return
        if _outside(real, self.opt.confine_to):
            yield SkipEntry(str(link), f"symlink to {real} points outside the allowed folders")
            return
        if os.path.isdir(real):
            if _within(chain[-1], real):
                yield SkipEntry(str(link), f"symlink loop: points back to its ancestor {real}")
                return
            if any(_within(real, d) for d in self.opt.skip_dirs):
                return
            if real in self._seen_dirs:
                yield SkipEntry(str(link), f"same folder as {self._seen_dirs[real]} "
                                           "(already scanned)")
                return
            self._seen_dirs[real] = str(link)
            queue.append((link, rel, ignores, (*chain, real)))
            return
        if self.opt.include is not None and not self.opt.include.match_file(rel):
            self.ignored += 1
            return
        yield from self._file(link, root, rel, real)
