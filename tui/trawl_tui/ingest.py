""""Add folder" for the index screen, behind one function the UI calls from a thread worker.

``ingest_folder`` uses ``trawl.ingest.index_paths`` (readers for text/Markdown/HTML/PDF/
JSONL, ignore files, incremental updates: the same document ids ``trawl index`` gives)
when it is importable, and otherwise reads ``.txt``/``.md`` files itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trawl.api import Trawl
from trawl.errors import InputError
from trawl.models import Document
from trawl.protocol import IndexClient

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst")


@dataclass(frozen=True)
class IngestCount:
    """Where an ingestion stands, in documents (what the user counts) and files; ``fraction``
    (of the bytes, or of the documents when they are known up front) drives the bar."""

    label: str
    documents: int = 0
    files_done: int = 0
    files_total: int = 0
    fraction: float | None = None
    final: bool = False


# on_progress(count); called from the worker thread
ProgressFn = Callable[[IngestCount], None]


@dataclass
class IngestSummary:
    files: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    seconds: float = 0.0
    via: str = "builtin"
    skipped: list[str] = field(default_factory=list)
    cancelled: bool = False

    def describe(self) -> str:
        text = (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.chunks} chunks in {self.seconds:.1f}s")
        if self.cancelled:
            text = "cancelled after " + text
        if self.skipped:
            text += f"; {len(self.skipped)} skipped"
        return text


def _find_index_paths() -> Callable[..., Any] | None:
    try:
        from trawl.ingest import index_paths
    except ImportError:
        return None
    return index_paths


def _iter_text_files(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in TEXT_SUFFIXES:
            yield path


def _title(path: Path, text: str) -> str:
    for line in text.splitlines()[:20]:
        stripped = line.strip()
        if stripped.startswith("#"):
            return stripped.lstrip("#").strip()
    return path.stem.replace("_", " ").replace("-", " ")


def _summary(result: Any, start: float, via: str) -> IngestSummary:
    """An ``IngestReport`` (local or from a server) as the counts the UI shows."""
    summary = IngestSummary(via=via)
    for name in ("added", "updated", "unchanged", "chunks"):
        value = getattr(result, name, None)
        if isinstance(value, int):
            setattr(summary, name, value)
    summary.files = int(getattr(result, "scanned", 0) or 0)
    summary.cancelled = bool(getattr(result, "cancelled", False))
    skipped = getattr(result, "skipped", None) or []
    summary.skipped = [f"{getattr(s, 'path', s)}: {getattr(s, 'reason', '')}" for s in skipped]
    summary.seconds = time.perf_counter() - start
    return summary


def _ingest_with_library(index_paths: Callable[..., Any], trawl: Trawl, root: Path,
                         report: ProgressFn, start: float,
                         cancel: threading.Event | None, batch_size: int) -> IngestSummary:
    """``trawl.ingest.index_paths``: its ``on_status`` counts documents and files."""
    report(IngestCount("scanning"))

    def on_status(status: Any) -> None:
        fraction = status.bytes_done / status.bytes_total if status.bytes_total else None
        report(IngestCount("indexing", status.documents, status.files_done,
                           status.files_total, fraction))

    result = index_paths(trawl, [root], show_progress=False, on_status=on_status,
                         cancel=cancel, batch_size=batch_size)
    summary = _summary(result, start, "trawl.ingest")
    done = summary.added + summary.updated + summary.unchanged
    report(IngestCount("cancelled" if summary.cancelled else "done", done, summary.files,
                       summary.files, 1.0, final=True))
    return summary


def _ingest_on_server(client: Any, root: Path, report: ProgressFn,
                      start: float) -> IngestSummary:
    """A served index: the server reads the folder (same machine), one request."""
    index_paths = getattr(client, "index_paths", None)
    if index_paths is None:
        raise InputError(f"{type(client).__name__} cannot index folders")
    report(IngestCount("indexing on the server"))
    summary = _summary(index_paths([str(root)]), start, "trawl serve")
    done = summary.added + summary.updated + summary.unchanged
    report(IngestCount("done", done, summary.files, summary.files, 1.0, final=True))
    return summary


def read_text_folder(folder: Path) -> list[Document]:
    """Fallback loader: one Document per text file, id = resolved path."""
    docs = []
    for path in _iter_text_files(folder):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc}") from exc
        if not text.strip():
            continue
        resolved = path.resolve()
        docs.append(Document(id=str(resolved), text=text,
                             metadata={"path": str(resolved), "title": _title(path, text)}))
    return docs


def ingest_folder(trawl: IndexClient, folder: str | Path,
                  on_progress: ProgressFn | None = None, *, batch_size: int = 32,
                  use_library: bool = True,
                  cancel: threading.Event | None = None) -> IngestSummary:
    """Index every supported file under ``folder``; reports progress, returns counts.
    ``cancel`` stops a local ingestion after the batch being written (committed documents
    stay); a served index's ingestion runs on the server and is not cancelled."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"not a folder: {root}")
    report = on_progress or (lambda count: None)
    start = time.perf_counter()
    if not isinstance(trawl, Trawl):
        return _ingest_on_server(trawl, root.resolve(), report, start)
    index_paths = _find_index_paths() if use_library else None
    if index_paths is not None:
        return _ingest_with_library(index_paths, trawl, root, report, start, cancel,
                                    batch_size)

    report(IngestCount("reading files"))
    docs = read_text_folder(root)
    total = len(docs)
    report(IngestCount("indexing", 0, total, total, 0.0))

    def on_progress_docs(done: int, of: int) -> None:
        report(IngestCount("indexing", done, total, total, done / of if of else None))

    result = trawl.add(docs, batch_size=batch_size, show_progress=False,
                       on_progress=on_progress_docs, cancel=cancel)
    done = result.added + result.updated + result.unchanged
    report(IngestCount("cancelled" if result.cancelled else "done", done, total, total, 1.0,
                       final=True))
    return IngestSummary(files=total, added=result.added, updated=result.updated,
                         unchanged=result.unchanged, chunks=result.chunks,
                         seconds=time.perf_counter() - start, cancelled=result.cancelled)
