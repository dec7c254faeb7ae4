"""Documents as stored: rebuilt from their chunks, listed, their metadata changed in place.

trawl keeps no second copy of a document: the manifest holds each document's chunk ids
and the indexes hold the chunks. Chunk ``k`` is ``doc.text[start:end]`` and consecutive
chunks touch or overlap, so the text is rebuilt exactly from the chunks' spans. The
metadata is the one stored with the chunks (what filters see): a document's own
metadata, except that a PDF's ``page_offsets`` became each chunk's
``page_start``/``page_end``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .chunking import DERIVED_KEYS
from .errors import IndexCorruptError, InputError
from .models import Chunk

__all__ = ["DERIVED_KEYS", "DocumentInfo", "assemble_text", "check_metadata_patch",
           "document_metadata", "patched"]


@dataclass
class DocumentInfo:
    """One stored document, without its text: ``Trawl.documents()`` yields these."""

    id: str
    metadata: dict[str, Any]
    chunks: int
    source: str | None = None
    chunk_ids: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "metadata": self.metadata, "chunks": self.chunks,
                "source": self.source}


def assemble_text(doc_id: str, chunks: Sequence[Chunk]) -> str:
    """The document's text from its chunks (any order), using their character spans."""
    ordered = sorted(chunks, key=lambda c: (c.start, c.end))
    parts: list[str] = []
    end = 0
    for c in ordered:
        if c.end - c.start != len(c.text) or c.start > end:
            raise IndexCorruptError(
                f"document {doc_id!r}: chunk {c.id!r} (chars {c.start}–{c.end}) does not "
                f"continue the text before it (which ends at {end}); re-add the document")
        if c.end > end:
            parts.append(c.text[end - c.start:])
            end = c.end
    return "".join(parts)


def document_metadata(chunks: Sequence[Chunk]) -> dict[str, Any]:
    """The document-level metadata stored with its chunks (the first chunk's, less the
    keys chunking derives per chunk)."""
    if not chunks:
        return {}
    first = min(chunks, key=lambda c: c.index)
    return {k: v for k, v in first.metadata.items() if k not in DERIVED_KEYS}


def check_metadata_patch(doc_id: str, patch: Any) -> dict[str, Any]:
    """A metadata update must be a JSON object with string keys; derived keys are refused."""
    if not isinstance(patch, Mapping):
        raise InputError(f"update_metadata({doc_id!r}): metadata must be a mapping, got "
                         f"{type(patch).__name__}")
    out: dict[str, Any] = {}
    for key, value in patch.items():
        if not isinstance(key, str) or not key:
            raise InputError(f"update_metadata({doc_id!r}): metadata keys must be non-empty "
                             f"strings, got {key!r}")
        if key in DERIVED_KEYS:
            raise InputError(f"update_metadata({doc_id!r}): {key!r} is set by chunking and "
                             "cannot be updated")
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InputError(f"update_metadata({doc_id!r}): value of {key!r} is not JSON "
                             f"({exc})") from exc
        out[key] = value
    return out


def patched(metadata: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``metadata`` with ``patch`` applied: keys set, a ``None`` value removes the key."""
    out = dict(metadata)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out
