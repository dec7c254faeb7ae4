"""Ingestion: files and folders → documents → every index of a ``Trawl``.

``index_paths(trawl, paths)`` is what ``trawl index PATH...`` runs. Each file goes to
the reader registered for it (``register_readers``; core's are in ``formats.py``: plain
text, Markdown, HTML, PDF, JSONL, BEIR ``corpus.jsonl``, CSV, notebooks, EPUB, mail).
Bad files are skipped with a reason, never raised.
"""

from __future__ import annotations

from .readers import (
    READER_VERSION,
    ReaderSet,
    SkipFile,
    decode,
    html_to_text,
    markdown_title,
    read_with,
    source_type,
)
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
    "DEFAULT_MAX_BYTES", "READER_VERSION", "FileEntry", "IngestReport", "IngestStatus",
    "ReaderSet", "SkipFile", "SkippedFile", "decode", "document_hash", "html_to_text",
    "index_paths", "load_documents", "markdown_title", "read_with", "scan", "source_type",
]
