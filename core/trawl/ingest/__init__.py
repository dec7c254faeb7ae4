"""Ingestion: files and folders → documents → every index of a ``Trawl``.

``index_paths(trawl, paths)`` is what ``trawl index PATH...`` runs. Sources: plain
text, Markdown, HTML (selectolax), PDF (pypdf, page numbers on chunks), JSONL and BEIR
``corpus.jsonl``. Bad files are skipped with a reason, never raised.
"""

from __future__ import annotations

from .readers import READER_VERSION, SkipFile, decode, html_to_text, markdown_title, source_type
from .runner import (
    DEFAULT_MAX_BYTES,
    IngestReport,
    IngestStatus,
    SkippedFile,
    document_hash,
    index_paths,
    load_documents,
    scan,
)
from .walk import FileEntry

__all__ = [
    "DEFAULT_MAX_BYTES", "READER_VERSION", "FileEntry", "IngestReport", "IngestStatus", "SkipFile",
    "SkippedFile", "decode", "document_hash", "html_to_text", "index_paths",
    "load_documents", "markdown_title", "scan", "source_type",
]
