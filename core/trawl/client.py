"""``RemoteTrawl``: a client of ``trawl serve`` with the methods of ``Trawl`` (sync and async).

It lives in core, not in the server plugin, because ``Trawl.open`` must be able to attach
to a served folder on any install: it needs only httpx (a small pure-Python dependency
that core declares) and core's own wire models (``trawl.wire``). Get one from
``trawl.connect(url)``, or from ``Trawl.open(folder)`` while a server owns that folder.

Errors come back as the same ``TrawlError`` subclasses an in-process ``Trawl`` raises
(``InputError``, ``FilterError``, ...); an unreachable server, or one that goes away
mid-call, is ``ServerUnavailableError``. Writes are durable once a call returns.
"""

from __future__ import annotations

import asyncio
import os
import socket
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from . import errors
from .api import AddResult, FailedDocument, OnError, _as_document
from .catalog import IndexInfo
from .config import FusionConfig, PipelineConfig
from .context import Context
from .documents import DocumentInfo
from .errors import AddError, InputError, ServerError, ServerUnavailableError, TrawlError
from .filters import parse_filter, to_json
from .ingest.runner import IngestReport
from .models import Chunk, Document, Hit
from .pipeline import SearchTrace
from .wire import (
    MAX_BODY_BYTES,
    MAX_PAGE,
    AddRequest,
    AddResponse,
    ChunksRequest,
    ChunksResponse,
    ContextRequest,
    ContextResponse,
    DeleteRequest,
    DeleteResponse,
    DocumentsPage,
    ErrorResponse,
    GetRequest,
    GetResponse,
    IndexPathsRequest,
    MetadataRequest,
    NeighboursRequest,
    NeighboursResponse,
    SearchBatchRequest,
    SearchBatchResponse,
    SearchRequest,
    SearchResponse,
)

M = TypeVar("M", bound=BaseModel)
# Errors whose constructor takes just the message travel back as themselves.
_PASSTHROUGH: dict[str, type[TrawlError]] = {
    cls.__name__: cls for cls in (
        errors.ConfigError, errors.FilterError, errors.InputError,
        errors.UnknownComponentError, errors.DimensionMismatchError,
        errors.IndexCorruptError, errors.IndexLockedError, errors.ModelSourceError)}
# Small request/answer exchanges: send each write at once instead of waiting for an ACK
# (Nagle), which otherwise can add milliseconds per call on loopback.
_NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
_ADD_BYTES = MAX_BODY_BYTES // 2  # room for JSON escaping when splitting large adds
_INDEX_INFO: TypeAdapter[IndexInfo] = TypeAdapter(IndexInfo)


def connect(url: str, *, api_key: str | None = None, timeout: float = 120.0) -> RemoteTrawl:
    """A client of the ``trawl serve`` at ``url``; checks it answers before returning.

    ``api_key`` defaults to ``$TRAWL_API_KEY`` (sent as a bearer token).
    """
    client = RemoteTrawl(url, api_key=api_key, timeout=timeout)
    try:
        client.health()
    except BaseException:
        client.close()
        raise
    return client


class RemoteTrawl:
    """A served index behind the ``trawl.IndexClient`` surface (search, context, add, ...).

    Thread-safe: one pooled httpx client serves every thread; async methods use one
    ``httpx.AsyncClient`` per event loop.
    """

    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 120.0,
                 index_path: Path | None = None) -> None:
        self.url = url.rstrip("/")
        self.path = index_path
        key = api_key if api_key is not None else os.environ.get("TRAWL_API_KEY")
        self._headers = {"authorization": f"Bearer {key}"} if key else {}
        self._timeout = httpx.Timeout(timeout, connect=5.0)
        self._http = httpx.Client(base_url=self.url, headers=self._headers,
                                  timeout=self._timeout,
                                  transport=httpx.HTTPTransport(socket_options=_NODELAY))
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary())
        self._config: PipelineConfig | None = None
        self.last_trace = SearchTrace()

    def __repr__(self) -> str:
        return f"RemoteTrawl({self.url!r})"

    # -- plumbing --------------------------------------------------------------------------
    def _aclient(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._async.get(loop)
        if client is None:
            client = httpx.AsyncClient(
                base_url=self.url, headers=self._headers, timeout=self._timeout,
                transport=httpx.AsyncHTTPTransport(socket_options=_NODELAY))
            self._async[loop] = client
        return client

    def _unavailable(self, method: str, route: str, exc: Exception) -> ServerUnavailableError:
        return ServerUnavailableError(
            f"trawl server at {self.url} did not answer {method} {route}: "
            f"{type(exc).__name__}: {exc or 'connection lost'}")

    def _decode(self, response: httpx.Response, method: str, route: str,
                model: type[M]) -> M:
        if response.status_code >= 400:
            raise self._error(response, method, route)
        try:
            return model.model_validate_json(response.content)
        except ValidationError as exc:
            raise ServerError(f"trawl server at {self.url} sent an unreadable answer to "
                              f"{method} {route}: {exc.errors()[0]['msg']}",
                              status=response.status_code, kind="protocol") from exc

    def _json_object(self, route: str, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise self._error(response, "GET", route)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ServerError(f"trawl server at {self.url} sent an unreadable answer to "
                              f"GET {route}", status=response.status_code, kind="protocol")
        return data

    def _get(self, route: str) -> httpx.Response:
        try:
            return self._http.get(route)
        except httpx.TransportError as exc:
            raise self._unavailable("GET", route, exc) from exc

    def _error(self, response: httpx.Response, method: str, route: str) -> TrawlError:
        try:
            detail = ErrorResponse.model_validate_json(response.content).error
        except ValidationError:
            return ServerError(f"trawl server at {self.url} answered {method} {route} with "
                               f"HTTP {response.status_code}", status=response.status_code)
        message = detail.message
        if detail.type == "UnknownDocumentError" and detail.ids is not None:
            return errors.UnknownDocumentError(detail.ids)
        if detail.type in ("validation", "too_large", "DocumentError"):
            return InputError(message)
        cls = _PASSTHROUGH.get(detail.type)
        if cls is not None:
            return cls(message)
        if response.status_code == 401:
            message += " (set TRAWL_API_KEY to the server's key)"
        return ServerError(f"trawl server at {self.url}: {message}",
                           status=response.status_code, kind=detail.type)

    def _call(self, method: str, route: str, model: type[M],
              body: BaseModel | None = None) -> M:
        content = body.model_dump_json(exclude_none=True) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            response = self._http.request(method, route, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise self._unavailable(method, route, exc) from exc
        return self._decode(response, method, route, model)

    async def _acall(self, method: str, route: str, model: type[M],
                     body: BaseModel | None = None) -> M:
        content = body.model_dump_json(exclude_none=True) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            response = await self._aclient().request(method, route, content=content,
                                                     headers=headers)
        except httpx.TransportError as exc:
            raise self._unavailable(method, route, exc) from exc
        return self._decode(response, method, route, model)

    # -- requests ----------------------------------------------------------------------------
    @staticmethod
    def _search_body(query: str, top_k: int, filters: Any, retrievers: Sequence[str] | None,
                     fusion: FusionConfig | str | None, rerank: bool | None,
                     **extra: Any) -> Any:
        if not isinstance(query, str):
            raise InputError(f"query must be a string, got {type(query).__name__}")
        if filters is not None:  # checked here, so a bad filter fails before any I/O
            filters = to_json(parse_filter(filters))
        data = {"query": query, "top_k": top_k, "filters": filters,
                "retrievers": list(retrievers) if retrievers is not None else None,
                "fusion": fusion, "rerank": rerank, **extra}
        model = ContextRequest if "max_tokens" in extra else SearchRequest
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise InputError(_validation_message(exc)) from exc

    @staticmethod
    def _validated(model: type[M], data: dict[str, Any]) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise InputError(_validation_message(exc)) from exc

    def _batch_body(self, queries: Sequence[str], top_k: int, filters: Any,
                    retrievers: Sequence[str] | None, fusion: FusionConfig | str | None,
                    rerank: bool | None) -> SearchBatchRequest:
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InputError(f"queries must be a list of strings, got {type(queries).__name__}")
        if filters is not None:
            filters = to_json(parse_filter(filters))
        return self._validated(SearchBatchRequest, {
            "queries": list(queries), "top_k": top_k, "filters": filters,
            "retrievers": list(retrievers) if retrievers is not None else None,
            "fusion": fusion, "rerank": rerank})

    def _context_body(self, query: str, max_tokens: int, top_k: int, filters: Any,
                      options: dict[str, Any]) -> Any:
        """``count_tokens`` cannot travel: the server counts with the pipeline's tokenizer."""
        body = self._search_body(query, top_k, filters, options.pop("retrievers", None),
                                 options.pop("fusion", None), options.pop("rerank", None),
                                 max_tokens=max_tokens,
                                 per_doc_limit=options.pop("per_doc_limit", None))
        _no_more(options)
        return body

    @staticmethod
    def _fill(trace: SearchTrace | None, answer: SearchResponse) -> SearchTrace:
        trace = trace if trace is not None else SearchTrace()
        trace.encode_ms = answer.timings.encode_ms
        trace.retrieve_ms = answer.timings.retrieve_ms
        trace.rerank_ms = answer.timings.rerank_ms
        return trace

    def _add_requests(self, documents: Iterable[Document | str | dict[str, Any]],
                      batch_size: int) -> list[AddRequest]:
        """Documents → requests under the server's body limit (one document may not fit)."""
        requests: list[AddRequest] = []
        group: list[Document] = []
        size = 0
        for item in documents:
            doc = _as_document(item)
            doc_size = len(doc.model_dump_json())
            if doc_size > _ADD_BYTES:
                raise InputError(f"document {doc.id!r} is {doc_size:,} bytes as JSON; a served "
                                 f"index takes at most {_ADD_BYTES:,} per document")
            if group and size + doc_size > _ADD_BYTES:
                requests.append(AddRequest(documents=group, batch_size=batch_size))
                group, size = [], 0
            group.append(doc)
            size += doc_size
        if group:
            requests.append(AddRequest(documents=group, batch_size=batch_size))
        return requests

    @staticmethod
    def _add_result(answers: Iterable[AddResponse], on_error: str) -> AddResult:
        """The answers summed, as ``Trawl.add`` reports: committed ids (generated ones
        included) and failed documents; ``on_error="raise"`` raises ``AddError`` for the
        failures after the good documents were stored, as ``Trawl.add`` does."""
        result = AddResult()
        for a in answers:
            result.added += a.added
            result.updated += a.updated
            result.unchanged += a.unchanged
            result.chunks += a.chunks
            result.committed_ids.extend(a.committed_ids)
            result.failed.extend(FailedDocument(f.id, f.reason) for f in a.failed)
        if result.failed and on_error == "raise":
            raise AddError(result)
        return result

    # -- the IndexClient surface -------------------------------------------------------------
    @property
    def config(self) -> PipelineConfig:
        """The served index's pipeline (fetched once)."""
        if self._config is None:
            self._config = self._call("GET", "/pipeline", PipelineConfig)
        return self._config

    def health(self) -> dict[str, Any]:
        """The server's ``/healthz`` answer (status, index folder, pid, watch state)."""
        return self._json_object("/healthz", self._get("/healthz"))

    def search(self, query: str, top_k: int = 10, filters: Any = None, *,
               retrievers: Sequence[str] | None = None, fusion: FusionConfig | None = None,
               rerank: bool | None = None, trace: SearchTrace | None = None) -> list[Hit]:
        """``Trawl.search`` on the server; ``trace`` receives the server's timings."""
        body = self._search_body(query, top_k, filters, retrievers, fusion, rerank)
        answer = self._call("POST", "/search", SearchResponse, body)
        self.last_trace = self._fill(trace, answer)
        return answer.hits

    async def asearch(self, query: str, top_k: int = 10, filters: Any = None, *,
                      retrievers: Sequence[str] | None = None,
                      fusion: FusionConfig | None = None, rerank: bool | None = None,
                      trace: SearchTrace | None = None) -> list[Hit]:
        body = self._search_body(query, top_k, filters, retrievers, fusion, rerank)
        answer = await self._acall("POST", "/search", SearchResponse, body)
        self.last_trace = self._fill(trace, answer)
        return answer.hits

    def context(self, query: str, *, max_tokens: int = 1500, top_k: int = 8,
                filters: Any = None, **kwargs: Any) -> Context:
        body = self._context_body(query, max_tokens, top_k, filters, kwargs)
        a = self._call("POST", "/context", ContextResponse, body)
        return Context(text=a.text, hits=a.hits, tokens=a.tokens, citations=a.citations)

    async def acontext(self, query: str, *, max_tokens: int = 1500, top_k: int = 8,
                       filters: Any = None, **kwargs: Any) -> Context:
        body = self._context_body(query, max_tokens, top_k, filters, kwargs)
        a = await self._acall("POST", "/context", ContextResponse, body)
        return Context(text=a.text, hits=a.hits, tokens=a.tokens, citations=a.citations)

    def add(self, documents: Iterable[Document | str | dict[str, Any]], *,
            batch_size: int = 64, show_progress: bool | None = None,
            on_progress: Callable[[int, int], None] | None = None,
            on_error: OnError = "raise") -> AddResult:
        """Add or update documents on the server, in requests under its body limit; each
        request is committed before the next is sent. ``on_progress(done, total)`` is
        called after each request (documents); ``show_progress`` is accepted for parity
        with ``Trawl.add`` and ignored (the server draws no bars). ``result.committed_ids``
        holds the stored ids, generated ones included; ``on_error`` as in ``Trawl.add``."""
        _check_on_error(on_error)
        requests = self._add_requests(documents, batch_size)
        total = sum(len(r.documents) for r in requests)
        answers: list[AddResponse] = []
        for r in requests:
            answers.append(self._call("POST", "/documents", AddResponse, r))
            if on_progress is not None:
                on_progress(sum(len(q.documents) for q in requests[:len(answers)]), total)
        return self._add_result(answers, on_error)

    async def aadd(self, documents: Iterable[Document | str | dict[str, Any]], *,
                   batch_size: int = 64, show_progress: bool | None = None,
                   on_progress: Callable[[int, int], None] | None = None,
                   on_error: OnError = "raise") -> AddResult:
        _check_on_error(on_error)
        requests = self._add_requests(documents, batch_size)
        total = sum(len(r.documents) for r in requests)
        answers: list[AddResponse] = []
        for r in requests:
            answers.append(await self._acall("POST", "/documents", AddResponse, r))
            if on_progress is not None:
                on_progress(sum(len(q.documents) for q in requests[:len(answers)]), total)
        return self._add_result(answers, on_error)

    def delete(self, doc_ids: Sequence[str] | str) -> int:
        ids = [doc_ids] if isinstance(doc_ids, str) else list(doc_ids)
        if not ids:
            return 0
        return self._call("DELETE", "/documents", DeleteResponse,
                          DeleteRequest(ids=ids)).removed_chunks

    async def adelete(self, doc_ids: Sequence[str] | str) -> int:
        ids = [doc_ids] if isinstance(doc_ids, str) else list(doc_ids)
        if not ids:
            return 0
        answer = await self._acall("DELETE", "/documents", DeleteResponse, DeleteRequest(ids=ids))
        return answer.removed_chunks

    def search_batch(self, queries: Sequence[str], top_k: int = 10, filters: Any = None, *,
                     retrievers: Sequence[str] | None = None,
                     fusion: FusionConfig | None = None,
                     rerank: bool | None = None) -> list[list[Hit]]:
        """``Trawl.search_batch`` on the server: one hit list per query, in order."""
        body = self._batch_body(queries, top_k, filters, retrievers, fusion, rerank)
        return self._call("POST", "/search/batch", SearchBatchResponse, body).results

    async def asearch_batch(self, queries: Sequence[str], top_k: int = 10,
                            filters: Any = None, *, retrievers: Sequence[str] | None = None,
                            fusion: FusionConfig | None = None,
                            rerank: bool | None = None) -> list[list[Hit]]:
        body = self._batch_body(queries, top_k, filters, retrievers, fusion, rerank)
        return (await self._acall("POST", "/search/batch", SearchBatchResponse, body)).results

    def get(self, ids: Sequence[str] | str) -> list[Document]:
        """Stored documents by id, in the order asked (``UnknownDocumentError`` lists
        unknown ids)."""
        wanted = [ids] if isinstance(ids, str) else list(ids)
        if not wanted:
            return []
        return self._call("POST", "/documents/get", GetResponse,
                          self._validated(GetRequest, {"ids": wanted})).documents

    async def aget(self, ids: Sequence[str] | str) -> list[Document]:
        wanted = [ids] if isinstance(ids, str) else list(ids)
        if not wanted:
            return []
        body = self._validated(GetRequest, {"ids": wanted})
        return (await self._acall("POST", "/documents/get", GetResponse, body)).documents

    def documents(self, *, page_size: int = 256,
                  after: str | None = None) -> Iterator[DocumentInfo]:
        """Every stored document (id, metadata, chunk count, source) in id order, fetched
        a page at a time."""
        if isinstance(page_size, bool) or not isinstance(page_size, int) or not (
                1 <= page_size <= MAX_PAGE):
            raise InputError(f"page_size must be an integer from 1 to {MAX_PAGE}, "
                             f"got {page_size!r}")
        cursor = after
        while True:
            params: dict[str, Any] = {"limit": page_size}
            if cursor is not None:
                params["after"] = cursor
            try:
                response = self._http.get("/documents", params=params)
            except httpx.TransportError as exc:
                raise self._unavailable("GET", "/documents", exc) from exc
            page = self._decode(response, "GET", "/documents", DocumentsPage)
            yield from page.documents
            if page.next is None:
                return
            cursor = page.next

    def update_metadata(self, doc_id: str, metadata: Mapping[str, Any]) -> Document:
        """Merge into a document's metadata on the server (``None`` removes a key)."""
        body = self._validated(MetadataRequest, {"id": doc_id, "metadata": metadata})
        return self._call("POST", "/documents/metadata", Document, body)

    async def aupdate_metadata(self, doc_id: str, metadata: Mapping[str, Any]) -> Document:
        body = self._validated(MetadataRequest, {"id": doc_id, "metadata": metadata})
        return await self._acall("POST", "/documents/metadata", Document, body)

    def info(self) -> IndexInfo:
        """The served pipeline's shape: retrievers, fusion, reranker, document count."""
        response = self._get("/info")
        if response.status_code >= 400:
            raise self._error(response, "GET", "/info")
        try:
            return _INDEX_INFO.validate_json(response.content)
        except ValidationError as exc:
            raise ServerError(f"trawl server at {self.url} sent an unreadable answer to GET "
                              "/info", status=response.status_code, kind="protocol") from exc

    def chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        """Stored chunks by id (``None`` where unknown)."""
        body = self._validated(ChunksRequest, {"ids": list(chunk_ids)})
        return self._call("POST", "/chunks", ChunksResponse, body).chunks

    def neighbours(self, chunk_id: str, doc_id: str, *,
                   window: int = 1) -> tuple[list[Chunk], list[Chunk]]:
        """Up to ``window`` chunks before and after ``chunk_id`` in its document."""
        body = self._validated(NeighboursRequest, {"chunk_id": chunk_id, "doc_id": doc_id,
                                                   "window": window})
        answer = self._call("POST", "/chunks/neighbours", NeighboursResponse, body)
        return answer.before, answer.after

    def metadata_fields(self, sample: int = 200) -> dict[str, list[str]]:
        """Metadata field names on a sample of documents, with a few example values."""
        try:
            response = self._http.get("/metadata/fields", params={"sample": sample})
        except httpx.TransportError as exc:
            raise self._unavailable("GET", "/metadata/fields", exc) from exc
        data = self._json_object("/metadata/fields", response)
        return {str(k): [str(x) for x in v] for k, v in data.items() if isinstance(v, list)}

    def stats(self) -> dict[str, Any]:
        return self._json_object("/stats", self._get("/stats"))

    def index_paths(self, paths: Sequence[str | os.PathLike[str]], **options: Any
                    ) -> IngestReport:
        """``trawl.ingest.index_paths`` run by the server on files of this machine (a
        loopback server only); options as there (``include``, ``exclude``, ``prune``,
        ...). Incremental like ``trawl index``: unchanged files are skipped."""
        options.pop("show_progress", None)
        try:
            body = IndexPathsRequest(paths=[os.path.abspath(p) for p in paths], **options)
        except ValidationError as exc:
            raise InputError(_validation_message(exc)) from exc
        return self._call("POST", "/index", IngestReport, body)

    async def astats(self) -> dict[str, Any]:
        try:
            response = await self._aclient().get("/stats")
        except httpx.TransportError as exc:
            raise self._unavailable("GET", "/stats", exc) from exc
        return self._json_object("/stats", response)

    def close(self) -> None:
        """Close the connection pool (the server and its index keep running)."""
        self._http.close()
        self._async.clear()

    async def aclose(self) -> None:
        client = self._async.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        self.close()

    def __enter__(self) -> RemoteTrawl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RemoteTrawl:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise InputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _no_more(kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise InputError(f"unknown option(s) for a served index: {', '.join(sorted(kwargs))}")


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "request"
    return f"{where}: {first['msg']}"


if TYPE_CHECKING:  # mypy checks that both sides keep to the shared surface
    from .api import Trawl
    from .protocol import IndexClient

    def _conforms(remote: RemoteTrawl, local: Trawl) -> tuple[IndexClient, IndexClient]:
        return remote, local
