"""pydantic data models that flow through every pipeline: documents in, hits out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Metadata = dict[str, Any]
_Model = TypeVar("_Model", bound=BaseModel)
# pydantic keeps these in slots; setting them through the slot descriptors is the cheapest
# way to make an instance (model_construct runs Python per field and is slower than
# validating)
_SET_FIELDS_SET = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_SET_EXTRA = BaseModel.__dict__["__pydantic_extra__"].__set__
_SET_PRIVATE = BaseModel.__dict__["__pydantic_private__"].__set__
_new = object.__new__
_object_setattr = object.__setattr__


def _bare(cls: type[_Model], values: dict[str, Any], fields: Iterable[str]) -> _Model:
    obj = _new(cls)
    _object_setattr(obj, "__dict__", values)
    _SET_FIELDS_SET(obj, set(fields))
    _SET_EXTRA(obj, None)
    _SET_PRIVATE(obj, None)
    return obj


def trusted(cls: type[_Model], values: dict[str, Any]) -> _Model:
    """An instance of ``cls`` from ``values`` that trawl itself built with the right types,
    without validation: every field given, no extra ones. Validation belongs at the doors
    (user input, plugin output, files); a search builds ~100 hits per retriever and
    validating what was just made cost ~70 % of a BM25 query."""
    return _bare(cls, values, values)


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

    @classmethod
    def of(cls, score: float, rank: int) -> SourceScore:
        """Without validation, for a score and rank trawl computed (``float``/``int``)."""
        return _bare(SourceScore, {"score": score, "rank": rank}, _SOURCE_SCORE_FIELDS)


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

    @classmethod
    def of_chunk(cls, chunk: Chunk, score: float, rank: int, source: str) -> Hit:
        """The hit for a stored chunk (already validated), built without validation; the
        body of ``trawl.components.make_hit``, inlined because it runs ~100 times per
        retriever per query."""
        score = float(score)
        rank = int(rank)
        sources = {str(source): _bare(SourceScore, {"score": score, "rank": rank},
                                      _SOURCE_SCORE_FIELDS)}
        return _bare(Hit, {
            "doc_id": chunk.doc_id, "chunk_id": chunk.id, "score": score, "rank": rank,
            "text": chunk.text,
            "metadata": {**chunk.metadata, "chunk_index": chunk.index,
                         "chunk_start": chunk.start, "chunk_end": chunk.end},
            "scores_by_source": sources}, _HIT_FIELDS)

    def ranked(self, score: float, rank: int, scores_by_source: dict[str, SourceScore]) -> Hit:
        """This hit with a new score, rank and sources (``model_copy`` without its
        per-call overhead; the values are trawl's own, so nothing is re-validated)."""
        return _bare(Hit, {**self.__dict__, "score": score, "rank": rank,
                           "scores_by_source": scores_by_source}, _HIT_FIELDS)

    @property
    def source(self) -> str:
        """Where the chunk came from (path or url) when ingestion recorded it."""
        return str(self.metadata.get("path") or self.metadata.get("source") or "")


_SOURCE_SCORE_FIELDS = frozenset(SourceScore.model_fields)
_HIT_FIELDS = frozenset(Hit.model_fields)
