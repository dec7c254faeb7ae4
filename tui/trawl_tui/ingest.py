""""Add folder" for the index screen, behind one function the UI calls from a thread worker.

``ingest_folder`` uses ``trawl.ingest.index_paths`` (readers for text/Markdown/HTML/PDF/
JSONL, ignore files, incremental updates: the same document ids ``trawl index`` gives)
when it is importable, and otherwise reads ``.txt``/``.md`` files itself.
"""

from __future__ import annotations

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
# on_progress(done, total or None, label); called from the worker thread
ProgressFn = Callable[[int, "int | None", str], None]


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

    def describe(self) -> str:
        text = (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.chunks} chunks in {self.seconds:.1f}s")
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
    skipped = getattr(result, "skipped", None) or []
    summary.skipped = [f"{getattr(s, 'path', s)}: {getattr(s, 'reason', '')}" for s in skipped]
    summary.seconds = time.perf_counter() - start
    return summary


def _ingest_with_library(index_paths: Callable[..., Any], trawl: Trawl, root: Path,
                         report: ProgressFn, start: float) -> IngestSummary:
    """``trawl.ingest.index_paths`` with its ``on_progress(done, total)`` driving the bar."""
    report(0, None, "scanning")
    result = index_paths(trawl, [root], show_progress=False,
                         on_progress=lambda done, total: report(int(done), int(total),
                                                                "indexing"))
    summary = _summary(result, start, "trawl.ingest")
    done = summary.added + summary.updated + summary.unchanged
    report(done, done, "done")
    return summary


def _ingest_on_server(client: Any, root: Path, report: ProgressFn,
                      start: float) -> IngestSummary:
    """A served index: the server reads the folder (same machine), one request."""
    index_paths = getattr(client, "index_paths", None)
    if index_paths is None:
        raise InputError(f"{type(client).__name__} cannot index folders")
    report(0, None, "indexing on the server")
    summary = _summary(index_paths([str(root)]), start, "trawl serve")
    done = summary.added + summary.updated + summary.unchanged
    report(done, done, "done")
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
                  use_library: bool = True) -> IngestSummary:
    """Index every supported file under ``folder``; reports progress, returns counts."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(f"not a folder: {root}")
    report = on_progress or (lambda done, total, label: None)
    start = time.perf_counter()
    if not isinstance(trawl, Trawl):
        return _ingest_on_server(trawl, root.resolve(), report, start)
    index_paths = _find_index_paths() if use_library else None
    if index_paths is not None:
        return _ingest_with_library(index_paths, trawl, root, report, start)

    report(0, None, "reading files")
    docs = read_text_folder(root)
    total = len(docs)
    report(0, total, "indexing")

    # Trawl.add counts unchanged documents before the first batch, so this is "done so far"
    def on_batch(result: Any) -> None:
        report(min(total, result.added + result.updated + result.unchanged), total, "indexing")

    result = trawl.add(docs, batch_size=batch_size, show_progress=False, on_batch=on_batch)
    report(total, total, "done")
    return IngestSummary(files=total, added=result.added, updated=result.updated,
                         unchanged=result.unchanged, chunks=result.chunks,
                         seconds=time.perf_counter() - start)
