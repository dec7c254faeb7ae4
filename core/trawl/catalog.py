"""What a front end needs to describe indexes without reaching into their internals.

``IndexInfo`` is an open index's shape (retrievers, fusion, reranker), so a client can
offer only the controls that apply. ``list_indexes`` reads the index folders under
``$TRAWL_HOME/indexes`` without opening (or locking) them: an index picker must work while
another process holds one of them.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import FusionConfig, TrawlSettings
from .storage import folder_sizes

PIPELINE_FILE = "pipeline.json"
MANIFEST_FILE = "manifest.sqlite"


@dataclass(frozen=True)
class RetrieverInfo:
    """One retriever: its name, its index plugin and its encoder (``None``: lexical)."""

    name: str
    index: str
    encoder: str | None = None


@dataclass(frozen=True)
class IndexInfo:
    """An open index's pipeline as a client sees it (``Trawl.info()``)."""

    path: str | None
    pipeline: str
    retrievers: tuple[RetrieverInfo, ...]
    fusion: FusionConfig
    reranker: str | None = None
    reranker_enabled: bool = False
    documents: int = 0

    @property
    def retriever_names(self) -> list[str]:
        return [r.name for r in self.retrievers]

    @property
    def has_encoder(self) -> bool:
        return any(r.encoder for r in self.retrievers)


@dataclass(frozen=True)
class IndexSummary:
    """One row of an index listing; ``error`` says why a folder could not be read."""

    name: str
    path: Path
    pipeline: str = ""
    documents: int | None = None
    size_bytes: int = 0  # allocated (st_blocks), as ``stats()["disk_bytes"]`` and ``du``
    updated: float | None = None
    error: str | None = None
    retrievers: list[str] = field(default_factory=list)


def _manifest_counts(path: Path) -> tuple[int | None, float | None]:
    """(committed documents, newest update time) read through a read-only connection."""
    if not path.exists():
        return 0, None
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2)
    try:
        row = conn.execute("SELECT COUNT(*), MAX(updated) FROM docs "
                           "WHERE state='committed'").fetchone()
    finally:
        conn.close()
    return int(row[0]), (float(row[1]) if row[1] is not None else None)


def summarize_index(path: Path, name: str | None = None) -> IndexSummary:
    """Read one index folder's pipeline and counts; never raises (the row carries an error)."""
    label = name or path.name
    try:
        saved: Any = json.loads((path / PIPELINE_FILE).read_text(encoding="utf-8"))
        pipeline = saved.get("pipeline", {}) if isinstance(saved, dict) else {}
        retrievers = [str(r.get("name", "?")) for r in pipeline.get("retrievers", [])
                      if isinstance(r, dict)]
        documents, updated = _manifest_counts(path / MANIFEST_FILE)
        if updated is None:
            updated = (path / PIPELINE_FILE).stat().st_mtime
        return IndexSummary(label, path, str(pipeline.get("name", "")), documents,
                            folder_sizes(path)[0], updated, retrievers=retrievers)
    except (OSError, ValueError, AttributeError, sqlite3.Error) as exc:
        return IndexSummary(label, path, error=f"{type(exc).__name__}: {exc}")


def list_indexes(settings: TrawlSettings | None = None) -> list[IndexSummary]:
    """Every index folder under ``$TRAWL_HOME/indexes`` (folders with a ``pipeline.json``)."""
    root = (settings or TrawlSettings()).home / "indexes"
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and (folder / PIPELINE_FILE).exists():
            out.append(summarize_index(folder))
    return out
