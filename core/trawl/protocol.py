"""``IndexClient``: the one surface shared by an in-process ``Trawl`` and a served index.

Front ends (the CLI, the TUI, LLM applications) program against this Protocol, so they
do not care whether the index lives in their process (``Trawl``) or in a ``trawl serve``
process they attached to (``trawl.client.RemoteTrawl``, from ``trawl.connect(url)`` or
from ``Trawl.open`` when the folder is served). Anything both sides offer is written
down here once, so the two cannot drift apart; ``tests/serve`` checks both against it.

What a front end can rely on:

- ``config``: the index's ``PipelineConfig`` (retriever names, fusion, reranker), e.g. to
  offer "search with bm25 only" or a rerank toggle;
- ``search``/``asearch`` → ``list[Hit]`` with ``scores_by_source``; keyword options
  ``retrievers``, ``fusion`` (a ``FusionConfig``), ``rerank`` and ``trace`` (a
  ``SearchTrace`` that receives this call's timings: a remote call fills ``encode_ms``,
  ``retrieve_ms`` and ``rerank_ms`` from the server's own timings);
- ``context``/``acontext`` → ``Context`` (prompt text with numbered citations);
- ``add(documents)`` → ``AddResult`` (documents as ``Document``, plain ``str`` or dicts,
  unchanged ones skipped), ``delete(ids)`` → chunks removed; both durable once they return;
- ``search_batch(queries)`` → one hit list per query (queries encoded in one batch);
- ``get(ids)`` → stored ``Document``s (``UnknownDocumentError`` lists unknown ids),
  ``documents()`` → an iterator of ``DocumentInfo`` (id, metadata, chunks, source) in id
  order, ``update_metadata(id, patch)`` → the updated ``Document`` (``None`` removes a key);
- async twins: ``aadd``, ``adelete``, ``asearch_batch``, ``aget``, ``aupdate_metadata``;
- ``info()`` → ``IndexInfo`` (retrievers, fusion, reranker and whether it is on, document
  count), ``chunks(ids)``, ``neighbours(chunk_id, doc_id, window=)`` (the chunks around a
  hit, for previews), ``metadata_fields()`` (field names with example values, for a filter
  bar): what a terminal UI needs besides search;
- ``stats()`` → dict (documents, chunks per retriever, disk bytes, pipeline);
- ``close()`` and use as a context manager.

Errors are ``trawl.TrawlError`` subclasses on both sides; a served index that cannot be
reached raises ``trawl.errors.ServerUnavailableError``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .api import AddResult
    from .catalog import IndexInfo
    from .config import FusionConfig, PipelineConfig
    from .context import Context
    from .documents import DocumentInfo
    from .models import Chunk, Document, Hit
    from .pipeline import SearchTrace


@runtime_checkable
class IndexClient(Protocol):
    """What ``Trawl`` and ``RemoteTrawl`` both offer (see the module docstring)."""

    @property
    def config(self) -> PipelineConfig: ...

    def search(self, query: str, top_k: int = 10, filters: Any = None, *,
               retrievers: Sequence[str] | None = None, fusion: FusionConfig | None = None,
               rerank: bool | None = None, trace: SearchTrace | None = None) -> list[Hit]: ...

    async def asearch(self, query: str, top_k: int = 10, filters: Any = None, *,
                      retrievers: Sequence[str] | None = None,
                      fusion: FusionConfig | None = None, rerank: bool | None = None,
                      trace: SearchTrace | None = None) -> list[Hit]: ...

    def context(self, query: str, *, max_tokens: int = 1500, top_k: int = 8,
                filters: Any = None, **kwargs: Any) -> Context: ...

    async def acontext(self, query: str, *, max_tokens: int = 1500, top_k: int = 8,
                       filters: Any = None, **kwargs: Any) -> Context: ...

    def add(self, documents: Iterable[Document | str | dict[str, Any]], *,
            batch_size: int = 64) -> AddResult: ...

    def delete(self, doc_ids: Sequence[str] | str) -> int: ...

    def search_batch(self, queries: Sequence[str], top_k: int = 10, filters: Any = None, *,
                     retrievers: Sequence[str] | None = None,
                     fusion: FusionConfig | None = None,
                     rerank: bool | None = None) -> list[list[Hit]]: ...

    async def asearch_batch(self, queries: Sequence[str], top_k: int = 10,
                            filters: Any = None, *, retrievers: Sequence[str] | None = None,
                            fusion: FusionConfig | None = None,
                            rerank: bool | None = None) -> list[list[Hit]]: ...

    def get(self, ids: Sequence[str] | str) -> list[Document]: ...

    async def aget(self, ids: Sequence[str] | str) -> list[Document]: ...

    def documents(self, *, page_size: int = 256,
                  after: str | None = None) -> Iterator[DocumentInfo]: ...

    def update_metadata(self, doc_id: str, metadata: Mapping[str, Any]) -> Document: ...

    async def aupdate_metadata(self, doc_id: str,
                               metadata: Mapping[str, Any]) -> Document: ...

    async def aadd(self, documents: Iterable[Document | str | dict[str, Any]], *,
                   batch_size: int = 64) -> AddResult: ...

    async def adelete(self, doc_ids: Sequence[str] | str) -> int: ...

    def info(self) -> IndexInfo: ...

    def chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]: ...

    def neighbours(self, chunk_id: str, doc_id: str, *,
                   window: int = 1) -> tuple[list[Chunk], list[Chunk]]: ...

    def metadata_fields(self, sample: int = 200) -> dict[str, list[str]]: ...

    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...

    def __enter__(self) -> IndexClient: ...

    def __exit__(self, *exc: object) -> None: ...
