"""``index_paths``: files and folders → documents → ``Trawl.add``, incrementally.

Incremental in two layers:

1. Per file, the manifest's ``meta`` table keeps ``ingest:file:<path>`` = size, mtime,
   sha256 and the ids and document hashes the file produced. A file whose size and
   mtime are unchanged, and whose documents the manifest still holds with those hashes,
   is not even read. A file that was only touched (same sha256) is not parsed again.
2. Everything else goes to ``Trawl.add``, which skips documents whose content hash is
   unchanged and replaces changed ones in every index.

The file records are written only after ``Trawl.add`` committed all of a file's
documents; after a crash they may be missing or stale, and a stale record never
matches the manifest, so the next run simply reads the file again (``Trawl.open``
already rolled back the unfinished batch).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field, field_validator

from ..errors import InputError, MissingDependencyError, UnreadableFileError
from ..models import Document, text_hash
from .readers import ReaderSet, SkipFile, source_file
from .walk import (
    FileEntry,
    SkipEntry,
    Walker,
    WalkOptions,
    compile_globs,
    display_path,
    fs_candidates,
)

if TYPE_CHECKING:
    from ..api import Trawl
    from ..plugins import PluginHost

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
_READ_BLOCK = 4 * 1024 * 1024
META_PREFIX = "ingest:file:"
_GROUP_DOCS = 512          # documents handed to one Trawl.add call
_GROUP_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class IngestStatus:
    """Where a run of ``index_paths`` stands (``on_status``): documents written or found
    unchanged so far, files handled of those scanned, and the bytes measure of the bar."""

    documents: int
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int


class SkippedFile(BaseModel):
    """A file (or ``file:line`` of a JSONL file) that was not ingested, and why."""

    path: str
    reason: str

    @field_validator("path", "reason")
    @classmethod
    def _printable(cls, value: str) -> str:
        return display_path(value)  # undecodable file names as \xNN, never a surrogate


class IngestReport(BaseModel):
    """What ``index_paths`` did; ``trawl index --json`` prints it."""

    scanned: int = Field(0, description="files looked at (after ignore rules and globs)")
    ignored: int = Field(0, description="files left out by .gitignore/.trawlignore, globs "
                                        "or because they are hidden")
    added: int = Field(0, description="new documents")
    updated: int = Field(0, description="documents whose content changed, re-indexed")
    unchanged: int = Field(0, description="documents skipped because nothing changed")
    pruned: int = Field(0, description="documents removed because their file (or record) "
                                       "is gone (--prune)")
    chunks: int = Field(0, description="chunks written to every index")
    skipped: list[SkippedFile] = Field(default_factory=list,
                                       description="files or records not ingested, with why")
    failed: list[SkippedFile] = Field(
        default_factory=list, description="documents that were read but refused by the "
        "document contract or an index; everything else was stored")
    seconds: float = Field(0.0, description="wall-clock time of the whole run")
    docs_per_s: float = Field(0.0, description="(added + updated + unchanged) / seconds")
    cancelled: bool = Field(False, description="stopped by ``cancel`` after a committed "
                                               "batch; the rest was not read (no prune)")

    def summary(self, *, max_skipped: int = 20) -> str:
        """A few human-readable lines for the terminal."""
        lines = [
            f"{self.scanned} files scanned ({self.ignored} ignored): {self.added} added, "
            f"{self.updated} updated, {self.unchanged} unchanged, {self.pruned} pruned; "
            f"{self.chunks} chunks in {self.seconds:.2f}s ({self.docs_per_s:.1f} docs/s)"]
        for label, items in (("skipped", self.skipped), ("failed (not stored)", self.failed)):
            if not items:
                continue
            lines.append(f"{len(items)} {label}:")
            lines += [f"  {s.path}: {s.reason}" for s in items[:max_skipped]]
            if len(items) > max_skipped:
                lines.append(f"  ... and {len(items) - max_skipped} more (--json lists all)")
        return "\n".join(lines)


def document_hash(doc: Document) -> str:
    """The hash ``Trawl.add`` stores in the manifest for a document (same formula).

    Used only to decide whether a file may be skipped without reading it; if the
    formula ever drifts the records simply never match and files are read again.
    """
    return text_hash(doc.text + "\x00" + repr(sorted(doc.metadata.items())))


@dataclass
class _FileWork:
    entry: FileEntry
    digest: str
    hashes: dict[str, str]
    remaining: int
    version: str = ""
    failed: bool = False


@dataclass
class _Run:
    trawl: Trawl
    batch_size: int
    report: IngestReport
    bar: _Bar | None
    known: dict[str, str]                      # committed doc id -> hash, at start
    produced: dict[str, set[str]] = field(default_factory=dict)   # path -> ids this run
    id_owner: dict[str, str] = field(default_factory=dict)        # doc id -> path
    docs: list[Document] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)
    owners: list[_FileWork] = field(default_factory=list)
    pending_bytes: int = 0
    on_progress: Callable[[int, int], None] | None = None
    total_bytes: int = 0
    done_bytes: float = 0.0
    on_status: Callable[[IngestStatus], None] | None = None
    cancel: threading.Event | None = None
    files_total: int = 0
    files_done: int = 0
    documents: int = 0
    cancelled: bool = False

    # -- per file ----------------------------------------------------------------------
    def record_is_current(self, rec: Any, version: str) -> bool:
        if not isinstance(rec, dict) or rec.get("v") != version:
            return False
        ids = rec.get("ids")
        if not isinstance(ids, dict) or not ids:
            return False
        return all(self.known.get(i) == h for i, h in ids.items())

    def unchanged_file(self, entry: FileEntry, rec: dict[str, Any]) -> None:
        ids = set(rec["ids"])
        path = entry.display
        self.produced[path] = ids
        for i in ids:
            self.id_owner.setdefault(i, path)
        self.report.unchanged += len(ids)
        self.advance(entry.size, len(ids))

    def queue(self, entry: FileEntry, digest: str, docs: list[Document],
              weights: list[int], version: str) -> None:
        path = entry.display
        keep_docs, keep_weights = [], []
        for doc, w in zip(docs, weights, strict=True):
            owner = self.id_owner.get(doc.id)
            if owner is not None and owner != path:
                self.skip(f"{path}" + (f":{doc.metadata['line']}" if "line" in doc.metadata
                                       else ""),
                          f"document id {doc.id!r} is already used by {owner} "
                          "(two roots with the same folder name, or a repeated JSONL id)")
                self.advance(w, 0)
                continue
            self.id_owner[doc.id] = path
            keep_docs.append(doc)
            keep_weights.append(w)
        self.produced.setdefault(path, set()).update(d.id for d in keep_docs)
        if not keep_docs:
            return
        work = _FileWork(entry=entry, digest=digest,
                         hashes={d.id: document_hash(d) for d in keep_docs},
                         remaining=len(keep_docs), version=version)
        for doc, w in zip(keep_docs, keep_weights, strict=True):
            self.docs.append(doc)
            self.weights.append(w)
            self.owners.append(work)
            self.pending_bytes += len(doc.text)
            if len(self.docs) >= max(_GROUP_DOCS, self.batch_size) or (
                    self.pending_bytes >= _GROUP_BYTES):
                self.flush()

    def flush(self) -> None:
        if not self.docs or self.cancelled:
            return
        docs, weights, owners = self.docs, self.weights, self.owners
        self.docs, self.weights, self.owners, self.pending_bytes = [], [], [], 0
        total_w = sum(weights)
        avg_w = total_w / len(docs)
        done = {"docs": 0, "bytes": 0.0}

        def on_batch(res: Any) -> None:
            n = res.added + res.updated
            delta = n - done["docs"]
            if delta > 0:
                step = min(delta * avg_w, total_w - done["bytes"])
                done["docs"], done["bytes"] = n, done["bytes"] + step
                self.advance(step, delta)

        result = self.trawl.add(docs, batch_size=self.batch_size, show_progress=False,
                                on_batch=on_batch, on_error="skip", cancel=self.cancel)
        r = self.report
        failed_ids = {f.id for f in result.failed}
        by_id = {d.id: d for d in docs}
        for f in result.failed:
            doc = by_id.get(f.id)
            where = f.id if doc is None else str(doc.metadata.get("path") or f.id) + (
                f":{doc.metadata['line']}" if "line" in doc.metadata else "")
            r.failed.append(SkippedFile(path=where, reason=f.reason))
        r.added += result.added
        r.updated += result.updated
        r.unchanged += result.unchanged
        r.chunks += result.chunks
        if result.cancelled:
            # which files landed whole is not worth working out: no file record is written,
            # so the next run reads these files again and finds the committed documents
            # unchanged by their hashes
            self.cancelled = True
            return
        self.advance(total_w - done["bytes"], result.unchanged)
        finished: list[_FileWork] = []
        for doc, work in zip(docs, owners, strict=True):
            work.remaining -= 1
            if doc.id in failed_ids:
                work.failed = True  # no file record: the file is read again next run
            if work.remaining == 0 and not work.failed:
                finished.append(work)
        for work in finished:
            self.known.update(work.hashes)
            e = work.entry
            self.trawl.manifest.set_meta(META_PREFIX + e.display, {
                "v": work.version, "size": e.size, "mtime_ns": e.mtime_ns,
                "sha256": work.digest, "ids": work.hashes})

    # -- reporting ---------------------------------------------------------------------
    def skip(self, path: str, reason: str) -> None:
        self.report.skipped.append(SkippedFile(path=path, reason=reason))

    def advance(self, nbytes: float, ndocs: int) -> None:
        if self.bar is not None:
            self.bar.advance(nbytes, ndocs)
        self.done_bytes += nbytes
        self.documents += ndocs
        if self.on_progress is not None:
            self.on_progress(min(self.total_bytes, round(self.done_bytes)), self.total_bytes)
        self.status()

    def file_done(self) -> None:
        self.files_done += 1
        self.status()

    def status(self) -> None:
        if self.on_status is not None:
            self.on_status(IngestStatus(
                documents=self.documents, files_done=min(self.files_done, self.files_total),
                files_total=self.files_total,
                bytes_done=min(self.total_bytes, round(self.done_bytes)),
                bytes_total=self.total_bytes))

    def stop_requested(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            self.cancelled = True
        return self.cancelled


class _Bar:
    """One rich bar for the whole run (``Trawl.add``'s own bar is switched off)."""

    def __init__(self, total_bytes: int, files: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.docs = 0
        self.start = time.perf_counter()
        self.progress = Progress(
            TextColumn(f"indexing {files} files"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[docs]} docs · {task.fields[rate]}"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task("indexing", total=max(1, total_bytes), docs=0,
                                           rate="– docs/s")
        self.progress.start()

    def advance(self, nbytes: float, ndocs: int) -> None:
        self.docs += ndocs
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.progress.update(self.task, advance=nbytes, docs=self.docs,
                             rate=f"{self.docs / elapsed:.1f} docs/s")

    def close(self) -> None:
        self.progress.stop()


def _as_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
              ) -> list[str | os.PathLike[str]]:
    if isinstance(paths, str | os.PathLike):
        return [paths]
    return list(paths)


def _read_bytes(entry: FileEntry, max_bytes: int) -> bytes:
    # read in bounded blocks: ``fh.read(n)`` allocates n bytes up front, so a huge
    # ``max_bytes`` (a client's POST /index option) was a MemoryError/OverflowError
    blocks: list[bytes] = []
    left = max_bytes + 1
    with open(entry.path, "rb") as fh:
        while left > 0:
            block = fh.read(min(left, _READ_BLOCK))
            if not block:
                break
            blocks.append(block)
            left -= len(block)
    data = b"".join(blocks)
    if len(data) > max_bytes:
        raise SkipFile(f"file too large: over {max_bytes:,} bytes (it grew while indexing?)")
    return data


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, FileNotFoundError):
        return "file vanished while indexing"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    return f"cannot read: {exc.strerror or exc}"


def scan(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
         include: Sequence[str] = (), exclude: Sequence[str] = (),
         follow_symlinks: bool = False, max_bytes: int = DEFAULT_MAX_BYTES,
         include_hidden: bool = False, use_ignore_files: bool = True,
         skip_dirs: Sequence[str] = (), confine_to: Sequence[str | os.PathLike[str]] = ()
         ) -> tuple[list[FileEntry], list[SkipEntry], int]:
    """Files to ingest, walk-time skips and the number of ignored files. With
    ``confine_to``, nothing whose real path lies outside those folders is taken."""
    walker = Walker(WalkOptions(
        include=compile_globs(include), exclude=compile_globs(exclude),
        follow_symlinks=follow_symlinks, max_bytes=max_bytes, include_hidden=include_hidden,
        use_ignore_files=use_ignore_files, skip_dirs=tuple(skip_dirs),
        confine_to=tuple(os.path.realpath(r) for r in confine_to)))
    entries: list[FileEntry] = []
    skips: list[SkipEntry] = []
    for item in walker.walk(_as_paths(paths)):
        (entries if isinstance(item, FileEntry) else skips).append(item)  # type: ignore[arg-type]
    return entries, skips, walker.ignored


def load_documents(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
                   encodings: Sequence[str] = (), host: PluginHost | None = None,
                   readers: dict[str, dict[str, Any]] | None = None, **scan_options: Any
                   ) -> Iterator[Document | SkippedFile]:
    """Documents (and skips) from files and folders, without a ``Trawl``: for custom loops.

    Files are read by the readers registered with ``host`` (default: the process-wide
    host); ``readers`` gives reader options by reader name (``{"notebook": {"outputs":
    True}}``).
    """
    from ..plugins import default_host

    max_bytes = int(scan_options.get("max_bytes", DEFAULT_MAX_BYTES))
    reader_set = ReaderSet((host or default_host()).registry, readers)
    entries, skips, _ = scan(paths, **scan_options)
    for s in skips:
        yield SkippedFile(path=s.path, reason=s.reason)
    for entry in entries:
        try:
            result = reader_set.read(source_file(entry, _read_bytes(entry, max_bytes),
                                                 encodings))
        except (UnreadableFileError, MissingDependencyError) as exc:
            yield SkippedFile(path=entry.display, reason=_skip_reason(exc))
            continue
        except OSError as exc:
            yield SkippedFile(path=entry.display, reason=_os_reason(exc))
            continue
        for where, why in result.problems:
            yield SkippedFile(path=where, reason=why)
        yield from result.documents


def _skip_reason(exc: UnreadableFileError | MissingDependencyError) -> str:
    return exc.reason if isinstance(exc, UnreadableFileError) else str(exc)


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def index_paths(trawl: Trawl,
                paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *,
                include: Sequence[str] = (), exclude: Sequence[str] = (),
                prune: bool = False, follow_symlinks: bool = False,
                max_bytes: int = DEFAULT_MAX_BYTES, batch_size: int = 64,
                show_progress: bool = True, encodings: Sequence[str] = (),
                include_hidden: bool = False, use_ignore_files: bool = True,
                on_progress: Callable[[int, int], None] | None = None,
                on_status: Callable[[IngestStatus], None] | None = None,
                cancel: threading.Event | None = None,
                readers: dict[str, dict[str, Any]] | None = None,
                confine_to: Sequence[str | os.PathLike[str]] = ()) -> IngestReport:
    """Index files and folders into ``trawl``; returns what happened.

    ``include``/``exclude`` are gitignore-style globs relative to each root folder
    (``*.md``, ``docs/**``, ``drafts/``). ``prune`` deletes documents whose file is gone
    (or whose record left a JSONL file that was read this run). ``encodings`` are tried,
    in order, for files that are not valid UTF-8. Bad files never raise: they land in
    ``report.skipped`` with a reason, and whatever was indexed before stays indexed.
    Document ids are ``<root folder name>/<path below it>``, so an edited file is an
    update, not a new document; JSONL records keep their own ``id``/``_id``.
    ``on_progress(done, total)`` reports bytes of the scanned files handled so far (the
    measure the terminal bar uses); it is called after each file or committed batch and
    last with ``done == total``. ``on_status(IngestStatus)`` reports documents and files
    as well, at the same moments. ``cancel`` (a ``threading.Event`` set from another
    thread) stops the run after the batch being written: committed documents stay, nothing
    half-written remains (``Trawl.add`` commits whole batches; a file whose documents were
    cut off has no file record, so the next run reads it again), ``prune`` is not done,
    and ``report.cancelled`` is true. Files are read by the readers registered with
    ``trawl``'s plugin host (``trawl plugins`` lists them); ``readers`` gives reader
    options by reader name (``{"notebook": {"outputs": True}}``).
    ``confine_to``: folders outside which nothing is read, links included (what a server
    sets to the folders its operator allowed).
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    if max_bytes < 1:
        raise InputError(f"max_bytes must be >= 1, got {max_bytes}")
    t0 = time.perf_counter()
    roots = _as_paths(paths)
    skip_dirs = (os.path.realpath(trawl.path),) if trawl.path is not None else ()
    entries, skips, ignored = scan(
        roots, include=include, exclude=exclude, follow_symlinks=follow_symlinks,
        max_bytes=max_bytes, include_hidden=include_hidden,
        use_ignore_files=use_ignore_files, skip_dirs=skip_dirs, confine_to=confine_to)
    report = IngestReport(scanned=len(entries) + len(skips), ignored=ignored)
    report.skipped.extend(SkippedFile(path=s.path, reason=s.reason) for s in skips)
    bar = _Bar(sum(e.size for e in entries), len(entries)) if (
        show_progress and entries) else None
    total_bytes = sum(e.size for e in entries)
    run = _Run(trawl=trawl, batch_size=batch_size, report=report, bar=bar,
               known=trawl.manifest.hashes(), on_progress=on_progress,
               total_bytes=total_bytes, on_status=on_status, cancel=cancel,
               files_total=len(entries))
    if on_progress is not None:
        on_progress(0, total_bytes)
    run.status()
    manifest = trawl.manifest
    reader_set = ReaderSet(trawl.host.registry, readers)
    try:
        for entry in entries:
            if run.stop_requested():
                break
            run.file_done()  # counted as it is taken up: its documents may wait for a batch
            key = META_PREFIX + entry.display
            rec = manifest.get_meta(key)
            version = reader_set.version(entry.path.name)
            current = run.record_is_current(rec, version)
            if current and rec["size"] == entry.size and rec["mtime_ns"] == entry.mtime_ns:
                run.unchanged_file(entry, rec)
                continue
            try:
                data = _read_bytes(entry, max_bytes)
            except SkipFile as exc:
                run.skip(entry.display, exc.reason)
                run.advance(entry.size, 0)
                continue
            except OSError as exc:
                run.skip(entry.display, _os_reason(exc))
                run.advance(entry.size, 0)
                continue
            digest = hashlib.sha256(data).hexdigest()
            if current and rec.get("sha256") == digest:
                # touched, not changed: remember the new mtime, keep the indexed documents
                manifest.set_meta(key, {**rec, "size": entry.size, "mtime_ns": entry.mtime_ns})
                run.unchanged_file(entry, rec)
                continue
            try:
                result = reader_set.read(source_file(entry, data, encodings))
            except (UnreadableFileError, MissingDependencyError) as exc:
                run.skip(entry.display, _skip_reason(exc))
                run.advance(entry.size, 0)
                continue
            for where, why in result.problems:
                run.skip(where, why)
            if result.documents:
                scale = entry.size / max(1, sum(result.weights))
                run.queue(entry, digest, result.documents,
                          [max(1, int(w * scale)) for w in result.weights], version)
            else:
                run.advance(entry.size, 0)
        if not run.stop_requested():
            run.flush()
        if run.cancelled:
            report.cancelled = True
        else:
            if on_progress is not None:
                on_progress(total_bytes, total_bytes)
            run.status()
            if prune:
                report.pruned = _prune(trawl, roots, run.produced)
    finally:
        if bar is not None:
            bar.close()
    report.seconds = round(time.perf_counter() - t0, 3)
    done = report.added + report.updated + report.unchanged
    report.docs_per_s = round(done / report.seconds, 1) if report.seconds > 0 else 0.0
    return report


def _prune(trawl: Trawl, roots: Sequence[str | os.PathLike[str]],
           produced: dict[str, set[str]]) -> int:
    """Delete documents under ``roots`` whose file is gone or no longer yields them."""
    folders: list[str] = []
    files: set[str] = set()
    for r in roots:
        p = os.path.abspath(os.fspath(r))
        if os.path.isdir(p):
            folders.append(display_path(p))
        else:
            files.add(display_path(p))
            if not os.path.lexists(p):  # a folder that is gone: all that was under it
                folders.append(display_path(p))
    doomed: list[str] = []
    gone_files: list[str] = []
    for source, ids in trawl.manifest.by_source().items():
        if not source:
            continue
        if source not in files and not any(_within(source, f) for f in folders):
            continue
        if not any(os.path.exists(p) for p in fs_candidates(source)):
            doomed.extend(ids)
            gone_files.append(source)
        elif source in produced:
            doomed.extend(i for i in ids if i not in produced[source])
    if doomed:
        trawl.delete(sorted(set(doomed)))
    for source in gone_files:
        trawl.manifest.set_meta(META_PREFIX + source, None)
    return len(set(doomed))
