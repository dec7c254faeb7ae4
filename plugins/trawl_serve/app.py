"""The HTTP API of a served index: FastAPI routes over one ``Trawl``, MCP at ``/mcp``.

FastAPI because its routes are declared with pydantic models, so the request and answer
schemas are core's own (``trawl.wire``, ``Hit``, ``PipelineConfig``) and the OpenAPI
schema at ``/openapi.json`` (browsable at ``/docs``) comes for free; it runs on Starlette,
which the MCP SDK's streamable HTTP transport also uses, so both share one app and port.

Handlers are plain functions, which FastAPI runs in its worker threads: ``Trawl`` is
thread-safe (searches in parallel, writes exclusive), so the event loop never blocks on a
search or an ingest. Every error is JSON (``trawl.wire.ErrorResponse``), never a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from itertools import islice
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import TypeAdapter
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from trawl import (
    Cancelled,
    ConfigError,
    DimensionMismatchError,
    Document,
    FilterError,
    FilterTooLargeError,
    IndexLockedError,
    InputError,
    Trawl,
    TrawlError,
    UnknownComponentError,
    UnknownDocumentError,
    __version__,
)
from trawl.catalog import IndexInfo
from trawl.config import FusionConfig, PipelineConfig
from trawl.ingest import IngestReport, index_paths
from trawl.ingest.walk import check_glob
from trawl.pipeline import SearchTrace
from trawl.wire import (
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
    ErrorDetail,
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
    Timings,
)

from .batching import SearchBatcher
from .bounds import (
    DEFAULT_REQUEST_TIMEOUT_S,
    ClientGone,
    DeadlineExceeded,
    WatchDisconnect,
    bounded,
    elapsed_ms,
)
from .inputs import DocumentFieldError, check_document, check_documents, error_field
from .security import (
    BearerAuth,
    BodyLimit,
    HostOriginGuard,
    HostPolicy,
    PathRoots,
    error_body,
    is_loopback,
)
from .watch import FolderWatcher

log = logging.getLogger("trawl.serve")

_CLIENT_ERRORS: tuple[type[TrawlError], ...] = (
    InputError, FilterError, ConfigError, UnknownComponentError, DimensionMismatchError)
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 421, 422, 500,
                                                    504)}


def _json(body: str | bytes, status: int = 200) -> Response:
    return Response(content=body, status_code=status, media_type="application/json")


def _error(status: int, kind: str, message: str, field: str | None = None) -> Response:
    return _json(error_body(kind, message, field), status)


def _error_detail(status: int, detail: ErrorDetail) -> Response:
    """An error naming ids: ``json.dumps`` escapes what UTF-8 cannot carry (an id with a
    lone surrogate, refused for that very reason) where pydantic's encoder would fail."""
    return _json(json.dumps(ErrorResponse(error=detail).model_dump()), status)


def _fusion(trawl: Trawl, value: FusionConfig | str | None) -> FusionConfig | None:
    if value is None or isinstance(value, FusionConfig):
        return value
    return trawl.config.fusion.model_copy(update={"method": value})


def _search_kwargs(trawl: Trawl, req: SearchRequest, trace: SearchTrace) -> dict[str, Any]:
    return {"retrievers": req.retrievers, "fusion": _fusion(trawl, req.fusion),
            "rerank": req.rerank, "trace": trace}


def create_app(trawl: Trawl, *, api_key: str | None = None,
               watcher: FolderWatcher | None = None, mcp: bool = True,
               host: str = "127.0.0.1", on_ready: Callable[[], None] | None = None,
               max_body_bytes: int = MAX_BODY_BYTES, batch: bool | None = None,
               allow_hosts: Sequence[str] = (), allow_origins: Sequence[str] = (),
               allow_paths: Sequence[str | os.PathLike[str]] = (),
               request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT_S,
               mcp_write: bool = False) -> FastAPI:
    """The ASGI app serving ``trawl``; the caller keeps ownership of ``trawl``.

    ``batch``: share one ``search_batch`` among concurrent searches (``SearchBatcher``).
    Off by default: on this project's 2-core machine it did not pay (see
    docs/design/serving-clients.md); ``trawl serve --batch`` turns it on.
    ``allow_hosts``/``allow_origins``: names and web origins trusted besides the server's
    own (``HostOriginGuard``). ``allow_paths``: the folders ``POST /index`` may read
    (with ``--watch`` roots, which count too); none: ``/index`` is off.
    ``request_timeout``: seconds a search, context or batch may take before it is stopped
    and answered 504 (None: no deadline); every read and write also stops when its client
    disconnects. ``mcp_write``: offer the MCP tools ``store`` and ``forget`` too.
    """
    local_paths = is_loopback(host)
    host_policy = HostPolicy(allow_hosts, allow_origins)  # a bad entry fails here, at start
    path_roots = PathRoots([*allow_paths, *(watcher.roots if watcher is not None else ())])
    batcher = SearchBatcher(trawl) if batch else None
    run_search = batcher.search if batcher is not None else trawl.search
    mcp_server = None
    if mcp:
        from .mcp_tools import build_mcp

        mcp_server = build_mcp(trawl, write=mcp_write, request_timeout=request_timeout)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if watcher is not None:
            watcher.start()
        try:
            if mcp_server is not None:
                async with mcp_server.session_manager.run():
                    if on_ready is not None:
                        on_ready()
                    yield
            else:
                if on_ready is not None:
                    on_ready()
                yield
        finally:
            if watcher is not None:
                watcher.stop()

    app = FastAPI(title="trawl", version=__version__, lifespan=lifespan,
                  description="A trawl index served over HTTP; MCP (streamable HTTP) at /mcp.")

    # -- errors: always JSON, naming the field --------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        if first.get("type") == "json_invalid":
            field, message = "body", f"body is not valid JSON: {first.get('msg')}"
        else:
            field = ".".join(loc) or "body"
            message = f"{field}: {first.get('msg')}"
        return _error(422, "validation", message, field)

    @app.exception_handler(TrawlError)
    async def _trawl_error(request: Request, exc: TrawlError) -> Response:
        if isinstance(exc, UnknownDocumentError):
            return _error_detail(404, ErrorDetail(type="UnknownDocumentError", message=str(exc),
                                                  ids=exc.ids, field="ids"))
        if isinstance(exc, DocumentFieldError):
            return _error_detail(422, ErrorDetail(type="DocumentError", message=str(exc),
                                                  field=exc.field, ids=[exc.doc_id]))
        if isinstance(exc, FilterTooLargeError):  # well-formed, but over the documented cap
            return _error(422, type(exc).__name__, str(exc), error_field(exc))
        if isinstance(exc, _CLIENT_ERRORS):
            return _error(400, type(exc).__name__, str(exc), error_field(exc))
        if isinstance(exc, IndexLockedError):
            return _error(409, type(exc).__name__, str(exc))
        if isinstance(exc, DeadlineExceeded):
            log.warning("%s", exc)
            return _error(504, "timeout", str(exc))
        if isinstance(exc, ClientGone | Cancelled):
            return _error(499, "client_closed", str(exc))  # nobody is there to read it
        log.error("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
        return _error(500, type(exc).__name__, str(exc))

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI's only 400: its JSON parser gave up (a body
            # nested past the recursion limit); answered as any unparseable body is
            return _error(422, "validation", "body is not valid JSON: it could not be "
                                             "parsed (nested too deep?)", "body")
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http")
        message = f"{request.method} {request.url.path}: {exc.detail}"
        return _error(exc.status_code, kind, message)

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal", f"internal server error ({type(exc).__name__}); "
                                       "details are in the server log")

    # -- routes ---------------------------------------------------------------------------
    @app.get("/healthz", tags=["server"])
    def healthz() -> dict[str, Any]:
        """Liveness, the index folder, the server's pid and, with --watch, its state.
        ``ready`` is false while a watched folder is missing or the watcher failed (see
        ``watch.last_error``)."""
        return {"status": "ok", "index": str(trawl.path) if trawl.path else None,
                "ready": watcher.healthy if watcher is not None else True,
                "pid": os.getpid(), "version": __version__,
                "watch": watcher.status() if watcher is not None else None,
                "batching": None if batcher is None else {
                    "batches": batcher.batches, "queries": batcher.batched_queries}}

    @app.get("/pipeline", response_model=PipelineConfig, tags=["index"])
    def pipeline() -> Response:
        """The pipeline the index was built with (retrievers, fusion, reranker)."""
        return _json(trawl.config.model_dump_json())

    @app.get("/info", response_model=IndexInfo, tags=["index"])
    def info() -> Response:
        """The pipeline's shape for a client: retrievers, fusion, reranker, documents."""
        return _json(TypeAdapter(IndexInfo).dump_json(trawl.info()))

    @app.get("/metadata/fields", tags=["index"])
    def metadata_fields(sample: Annotated[int, Query(ge=1, le=10_000)] = 200
                        ) -> dict[str, list[str]]:
        """Metadata field names seen on a sample of documents, with example values."""
        return trawl.metadata_fields(sample)

    @app.post("/chunks", response_model=ChunksResponse, responses=_ERRORS, tags=["documents"])
    def chunks(req: ChunksRequest) -> Response:
        """Stored chunks by id (null where unknown)."""
        return _json(ChunksResponse(chunks=trawl.chunks(req.ids)).model_dump_json())

    @app.post("/chunks/neighbours", response_model=NeighboursResponse, responses=_ERRORS,
              tags=["documents"])
    def neighbours(req: NeighboursRequest) -> Response:
        """Up to ``window`` chunks before and after a chunk in its document."""
        before, after = trawl.neighbours(req.chunk_id, req.doc_id, window=req.window)
        return _json(NeighboursResponse(before=before, after=after).model_dump_json())

    @app.get("/stats", tags=["index"])
    def stats() -> dict[str, Any]:
        """Documents, chunks per retriever, disk size and pipeline name."""
        return trawl.stats()

    # Reads run under ``bounded``: a deadline, and stopped when the client goes away;
    # ``latency_ms`` is the wall time since the request arrived, taken just before the
    # answer is serialised (in the worker thread, off the event loop).
    @app.post("/search", response_model=SearchResponse, responses=_ERRORS, tags=["search"])
    async def search(req: SearchRequest, request: Request) -> Response:
        """Run the pipeline; hits carry each retriever's score and rank (scores_by_source)."""
        def work(cancel: threading.Event) -> str:
            trace = SearchTrace()
            hits = run_search(req.query, req.top_k, req.filters, cancel=cancel,
                              **_search_kwargs(trawl, req, trace))
            timings = Timings(encode_ms=trace.encode_ms, retrieve_ms=trace.retrieve_ms,
                              rerank_ms=trace.rerank_ms)
            return SearchResponse(hits=hits, latency_ms=elapsed_ms(request),
                                  timings=timings).model_dump_json()
        return _json(await bounded(request, work, timeout=request_timeout))

    @app.post("/context", response_model=ContextResponse, responses=_ERRORS, tags=["search"])
    async def context(req: ContextRequest, request: Request) -> Response:
        """Numbered, cited passages for a prompt, within max_tokens."""
        def work(cancel: threading.Event) -> str:
            ctx = trawl.context(req.query, max_tokens=req.max_tokens, top_k=req.top_k,
                                filters=req.filters, per_doc_limit=req.per_doc_limit,
                                cancel=cancel, **_search_kwargs(trawl, req, SearchTrace()))
            return ContextResponse(text=ctx.text, hits=ctx.hits, tokens=ctx.tokens,
                                   citations=ctx.citations,
                                   latency_ms=elapsed_ms(request)).model_dump_json()
        return _json(await bounded(request, work, timeout=request_timeout))

    @app.post("/search/batch", response_model=SearchBatchResponse, responses=_ERRORS,
              tags=["search"])
    async def search_batch(req: SearchBatchRequest, request: Request) -> Response:
        """Many queries at once: each encoder encodes them in one batch."""
        def work(cancel: threading.Event) -> str:
            results = trawl.search_batch(req.queries, req.top_k, req.filters,
                                         retrievers=req.retrievers,
                                         fusion=_fusion(trawl, req.fusion), rerank=req.rerank,
                                         cancel=cancel)
            return SearchBatchResponse(results=results,
                                       latency_ms=elapsed_ms(request)).model_dump_json()
        return _json(await bounded(request, work, timeout=request_timeout))

    @app.get("/documents", response_model=DocumentsPage, responses=_ERRORS, tags=["documents"])
    def list_documents(after: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 256) -> Response:
        """Stored documents (id, metadata, chunk count, source) in id order, a page at a time."""
        page = list(islice(trawl.documents(page_size=limit, after=after), limit))
        nxt = page[-1].id if len(page) == limit else None
        return _json(DocumentsPage(documents=page, next=nxt).model_dump_json())

    @app.post("/documents/get", response_model=GetResponse, responses=_ERRORS,
              tags=["documents"])
    def get_documents(req: GetRequest) -> Response:
        """Stored documents by id, text rebuilt exactly from the chunks."""
        return _json(GetResponse(documents=trawl.get(req.ids)).model_dump_json())

    @app.post("/documents/metadata", response_model=Document, responses=_ERRORS,
              tags=["documents"])
    def update_metadata(req: MetadataRequest) -> Response:
        """Merge into a document's metadata in every index, without re-encoding it."""
        check_document(Document(id=req.id, text="", metadata={
            k: v for k, v in req.metadata.items() if v is not None}))
        return _json(trawl.update_metadata(req.id, req.metadata).model_dump_json())

    @app.post("/documents", response_model=AddResponse, responses=_ERRORS, tags=["documents"])
    async def add_documents(req: AddRequest, request: Request) -> Response:
        """Add or update documents (unchanged ones are skipped); committed on return.
        A document that breaks the contract (NaN, lone surrogates, nesting) is a 422 naming
        it and its field, and nothing is stored; one that fails further in (a plugin) is
        listed in ``failed`` while the others are stored."""
        documents = check_documents(req.documents)

        def work(cancel: threading.Event) -> str:  # a client that leaves stops later batches
            result = trawl.add(documents, batch_size=req.batch_size, show_progress=False,
                               on_error="skip", cancel=cancel)
            return AddResponse(**result.to_json(),
                               committed_ids=result.committed_ids).model_dump_json()
        return _json(await bounded(request, work, timeout=None))

    @app.delete("/documents", response_model=DeleteResponse, responses=_ERRORS,
                tags=["documents"])
    def delete_documents(req: DeleteRequest) -> Response:
        """Remove documents; once this returns no search returns them."""
        return _json(DeleteResponse(removed_chunks=trawl.delete(req.ids)).model_dump_json())

    @app.post("/index", response_model=IngestReport, responses=_ERRORS, tags=["documents"])
    async def index_files(req: IndexPathsRequest, request: Request) -> Response:
        """Index files and folders of the server's machine, incrementally (`trawl index`).
        Only a server bound to loopback accepts it: its clients share its file system."""
        if not local_paths:
            return _error(403, "forbidden", "this server is not bound to loopback, so it does "
                                            "not index paths for clients; send documents to "
                                            "POST /documents instead")
        if not path_roots:
            return _error(403, "forbidden", "POST /index is off: this server reads no folder "
                                            "its operator did not name; start it with "
                                            "--allow-path DIR (or --watch DIR) to index "
                                            "files under DIR", "paths")
        for option in ("include", "exclude"):  # a bad glob names its option, not null
            for i, pattern in enumerate(getattr(req, option)):
                try:
                    check_glob(pattern)
                except InputError as exc:
                    return _error(422, "validation", f"{option}.{i}: {exc}", f"{option}.{i}")
        for i, path in enumerate(req.paths):
            if "\x00" in path:  # os.path would raise ValueError: was a 500
                return _error(422, "validation", f"paths.{i}: contains a NUL character",
                              f"paths.{i}")
            if not os.path.isabs(path):
                return _error(422, "validation", f"paths.{i}: {path!r} is not absolute",
                              f"paths.{i}")
            if not path_roots.contains(path):
                return _error(403, "forbidden", f"paths.{i}: {path!r} resolves to "
                                                f"{os.path.realpath(path)!r}, outside the "
                                                f"folders this server may read "
                                                f"({path_roots.describe()}); start it with "
                                                "--allow-path DIR to allow another",
                              f"paths.{i}")
        options = req.model_dump(exclude={"paths", "max_bytes"})
        if req.max_bytes is not None:
            options["max_bytes"] = req.max_bytes

        def work(cancel: threading.Event) -> str:
            return index_paths(trawl, req.paths, show_progress=False, cancel=cancel,
                               confine_to=path_roots.roots, **options).model_dump_json()
        return _json(await bounded(request, work, timeout=None))

    if mcp_server is not None:
        # the SDK's own route (its ASGI handler at /mcp), driven by the lifespan above
        # the SDK's own Host/Origin check is off: HostOriginGuard below applies one policy
        # to every route, /mcp included, with the operator's --allow-host/--allow-origin
        sub = mcp_server.streamable_http_app(
            streamable_http_path="/mcp", stateless_http=True, json_response=True, host=host,
            max_request_body_size=max_body_bytes,
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
        for route in sub.routes:  # a tool call stops when its HTTP client goes away
            route.app = WatchDisconnect(route.app)  # type: ignore[attr-defined]
        app.router.routes.extend(sub.routes)

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if api_key:
        app.add_middleware(BearerAuth, api_key=api_key)
    if host_policy.any_origin or host_policy.origins:
        # --allow-origin lets a web app's requests through the guard; without CORS answers
        # its browser would still refuse the JSON POST's preflight and hide every answer.
        # Outside BearerAuth: a preflight carries no key.
        app.add_middleware(
            CORSMiddleware, allow_origins=["*"] if host_policy.any_origin else sorted(
                host_policy.origins), allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["authorization", "content-type", "accept", "mcp-session-id",
                           "mcp-protocol-version", "last-event-id"],
            expose_headers=["mcp-session-id"])
    # outermost: a forged Host or foreign Origin is refused before anything else runs
    app.add_middleware(HostOriginGuard, policy=host_policy)
    return app
