"""The JSON bodies a served index speaks, as pydantic models shared by server and client.

``trawl serve`` (plugin ``trawl_serve``) declares its routes with these models, so its
OpenAPI schema is generated from them, and ``trawl.client.RemoteTrawl`` parses answers
with them: one schema, built from core's own ``Hit``, ``Document``, ``FusionConfig`` and
``PipelineConfig``, never a second copy. Limits live here too, so both sides agree.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .config import FusionConfig
from .context import Citation
from .documents import DocumentInfo
from .ingest.readers import check_encodings
from .models import Chunk, Document, Hit

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_TOP_K = 1000
MAX_QUERY_CHARS = 10_000
MAX_CONTEXT_TOKENS = 100_000
MAX_BATCH_QUERIES = 256
MAX_PAGE = 1000


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchRequest(_Request):
    """``POST /search``; ``retrievers``/``fusion``/``rerank`` override the pipeline per call."""

    query: str = Field(max_length=MAX_QUERY_CHARS, description="what to search for")
    top_k: int = Field(10, ge=1, le=MAX_TOP_K, description="how many hits to return")
    filters: dict[str, Any] | None = Field(
        None, description='filter grammar, e.g. {"field": "year", "op": ">=", "value": 2020}')
    retrievers: list[str] | None = Field(None, description="use only these retrievers")
    fusion: FusionConfig | Literal["rrf", "weighted", "dbsf"] | None = Field(
        None, description="fusion method (or full fusion config) for this call")
    rerank: bool | None = Field(None, description="switch the pipeline's reranker on or off")


class ContextRequest(SearchRequest):
    """``POST /context``: numbered, cited passages within a token budget."""

    top_k: int = Field(8, ge=1, le=MAX_TOP_K, description="passages to consider")
    max_tokens: int = Field(1500, ge=1, le=MAX_CONTEXT_TOKENS,
                            description="token budget of the returned text")
    per_doc_limit: int | None = Field(None, ge=1, description="most hits taken from one document")


class Timings(BaseModel):
    """The server's own timings of one search (``SearchTrace``)."""

    encode_ms: float = 0.0
    retrieve_ms: float = 0.0
    rerank_ms: float = 0.0


class SearchResponse(BaseModel):
    hits: list[Hit]
    latency_ms: float = Field(description="time the server spent searching")
    timings: Timings = Field(default_factory=Timings)


class ContextResponse(BaseModel):
    text: str = Field(description="prompt-ready passages, each headed [n] title — source")
    hits: list[Hit] = Field(description="the hits whose text is included, best first")
    tokens: int
    citations: list[Citation] = Field(default_factory=list,
                                      description="one per cited document: number, source, spans")
    latency_ms: float


class AddRequest(_Request):
    """``POST /documents``: add or update; unchanged documents (same content) are skipped."""

    documents: list[Document] = Field(description="documents: {id?, text, metadata?}")
    batch_size: int = Field(64, ge=1, le=10_000)


class FailedDocumentInfo(BaseModel):
    """A document the server did not store, and why (``trawl.AddResult.failed``)."""

    id: str
    reason: str


class AddResponse(BaseModel):
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    committed_ids: list[str] = Field(
        default_factory=list, description="ids stored by this call, generated ones included")
    failed: list[FailedDocumentInfo] = Field(
        default_factory=list, description="documents not stored (the others were)")


class DeleteRequest(_Request):
    """``DELETE /documents``: remove documents (all their chunks) from every index."""

    ids: list[str] = Field(description="document ids to remove")


class DeleteResponse(BaseModel):
    removed_chunks: int


class SearchBatchRequest(_Request):
    """``POST /search/batch``: many queries, encoded in one batch, the same options."""

    queries: list[str] = Field(min_length=1, max_length=MAX_BATCH_QUERIES,
                               description="the queries (each at most the query length cap)")
    top_k: int = Field(10, ge=1, le=MAX_TOP_K)
    filters: dict[str, Any] | None = None
    retrievers: list[str] | None = None
    fusion: FusionConfig | Literal["rrf", "weighted", "dbsf"] | None = None
    rerank: bool | None = None

    @field_validator("queries")
    @classmethod
    def _query_lengths(cls, value: list[str]) -> list[str]:
        for i, q in enumerate(value):
            if len(q) > MAX_QUERY_CHARS:
                raise ValueError(f"queries[{i}] is longer than {MAX_QUERY_CHARS} characters")
        return value


class SearchBatchResponse(BaseModel):
    results: list[list[Hit]] = Field(description="one hit list per query, in order")
    latency_ms: float


class GetRequest(_Request):
    """``POST /documents/get``: stored documents by id (text rebuilt from the chunks)."""

    ids: list[str] = Field(max_length=10_000)


class GetResponse(BaseModel):
    documents: list[Document]


class DocumentsPage(BaseModel):
    """``GET /documents?after=&limit=``: one page of stored documents, in id order."""

    documents: list[DocumentInfo]
    next: str | None = Field(None, description="pass as ?after= for the next page")


class MetadataRequest(_Request):
    """``POST /documents/metadata``: merge into a document's metadata (None removes a key)."""

    id: str
    metadata: dict[str, Any]


class ChunksRequest(_Request):
    """``POST /chunks``: stored chunks by id."""

    ids: list[str] = Field(max_length=10_000)


class ChunksResponse(BaseModel):
    chunks: list[Chunk | None] = Field(description="in the order asked; null where unknown")


class NeighboursRequest(_Request):
    """``POST /chunks/neighbours``: the chunks around one chunk of a document."""

    chunk_id: str
    doc_id: str
    window: int = Field(1, ge=0, le=100)


class NeighboursResponse(BaseModel):
    before: list[Chunk]
    after: list[Chunk]


class IndexPathsRequest(_Request):
    """``POST /index``: the server runs ``trawl index`` on files of its own machine
    (only a server bound to loopback accepts it: the client is on the same machine)."""

    paths: list[str] = Field(min_length=1, description="absolute file or folder paths")
    include: list[str] = Field(default_factory=list, description="globs to include")
    exclude: list[str] = Field(default_factory=list, description="globs to skip")
    prune: bool = Field(False, description="remove documents whose files are gone")
    follow_symlinks: bool = False
    max_bytes: int | None = Field(None, ge=1)
    encodings: list[str] = Field(default_factory=list,
                                 description="Python text codecs tried for non-UTF-8 files")
    include_hidden: bool = False
    use_ignore_files: bool = True

    @field_validator("encodings")
    @classmethod
    def _known_encodings(cls, value: list[str]) -> list[str]:
        check_encodings(value)
        return value


class ErrorDetail(BaseModel):
    type: str = Field(description="TrawlError class name, 'validation', 'auth', 'internal'")
    message: str
    field: str | None = Field(None, description="the request field at fault, dotted")
    ids: list[str] | None = Field(None, description="unknown document ids (UnknownDocumentError)")


class ErrorResponse(BaseModel):
    """Every error answer: 4xx for the caller's mistakes, 5xx for the server's."""

    error: ErrorDetail
