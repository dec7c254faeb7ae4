"""pydantic data models that flow through every pipeline: documents in, hits out."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Metadata = dict[str, Any]


def content_id(text: str, metadata: Metadata | None = None) -> str:
    """Stable id from text and metadata (sorted keys), so re-adding the same content is an upsert."""
    payload = json.dumps({"text": text, "metadata": metadata or {}}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:24]


def text_hash(text: str) -> str:
    """sha256 of a text; incremental ingestion compares these to skip unchanged documents."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class Document(BaseModel):
    """A source document. ``id`` is derived from content and metadata when not given."""

    model_config = ConfigDict(frozen=True)

    id: str = ""
    text: str
    metadata: Metadata = Field(default_factory=dict)

    @model_validator(mode="after")
    def _derive_id(self) -> Document:
        if not self.id:
            object.__setattr__(self, "id", content_id(self.text, self.metadata))
        return self

    @field_validator("text")
    @classmethod
    def _text_is_str(cls, value: str) -> str:
        if "\x00" in value:
            value = value.replace("\x00", " ")
        return value

    @property
    def title(self) -> str:
        return str(self.metadata.get("title") or "")

    def __repr__(self) -> str:
        preview = self.text[:40] + ("…" if len(self.text) > 40 else "")
        return f"Document(id={self.id!r}, text={preview!r}, metadata_keys={sorted(self.metadata)})"


class Chunk(BaseModel):
    """A piece of a document small enough for the encoder; the unit every index stores."""

    model_config = ConfigDict(frozen=True)

    id: str
    doc_id: str
    text: str
    index: int = 0
    start: int = 0
    end: int = 0
    metadata: Metadata = Field(default_factory=dict)

    @classmethod
    def whole(cls, doc: Document) -> Chunk:
        """The chunk that is the whole document (used when chunking is off)."""
        return cls(
            id=f"{doc.id}#0",
            doc_id=doc.id,
            text=doc.text,
            index=0,
            start=0,
            end=len(doc.text),
            metadata=doc.metadata,
        )


class Query(BaseModel):
    """A search request as the pipeline sees it."""

    text: str
    top_k: int = 10
    filters: dict[str, Any] | None = None


class SourceScore(BaseModel):
    """One retriever's or reranker's raw opinion of a hit."""

    model_config = ConfigDict(frozen=True)

    score: float
    rank: int


class Hit(BaseModel):
    """A search result. ``scores_by_source`` keeps each retriever's raw score and rank."""

    model_config = ConfigDict(frozen=True)

    doc_id: str
    chunk_id: str
    score: float
    rank: int = 0
    text: str = ""
    metadata: Metadata = Field(default_factory=dict)
    scores_by_source: dict[str, SourceScore] = Field(default_factory=dict)

    @property
    def title(self) -> str:
        return str(self.metadata.get("title") or "")

    @property
    def source(self) -> str:
        """Where the chunk came from (path or url) when ingestion recorded it."""
        return str(self.metadata.get("path") or self.metadata.get("source") or "")
