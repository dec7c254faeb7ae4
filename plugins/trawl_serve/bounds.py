"""What one request may cost: a deadline (``--request-timeout``), and no work left
running for a client that went away.

Core's reads and writes take a ``cancel`` event (``Trawl.search``/``context``/
``search_batch``/``add``, ``index_paths``) and stop at their next safe point once it is
set: between encoding, each retriever, fusion and reranking for a search, after the
batch being committed for a write. Each route runs its core call in a worker thread
while the event loop waits for the first of: the result, the client's disconnect, the
deadline; on the latter two it sets the event, so the thread stops soon after instead
of running on for nobody.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

import anyio.to_thread
from starlette.requests import Request

from trawl import TrawlError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

T = TypeVar("T")
DEFAULT_REQUEST_TIMEOUT_S = 30.0
STARTED_KEY = "trawl.started"  # ASGI scope key: perf_counter() when the request arrived


class DeadlineExceeded(TrawlError):
    title = "deadline exceeded"


class ClientGone(TrawlError):
    title = "client disconnected"


def elapsed_ms(request: Request) -> float:
    """Milliseconds since the request arrived (body reading and queueing included)."""
    started = request.scope.get(STARTED_KEY)
    return round((time.perf_counter() - started) * 1000, 3) if started is not None else 0.0


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body was already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def bounded(request: Request, work: Callable[[threading.Event], T], *,
                  timeout: float | None) -> T:
    """``work(cancel)`` in a worker thread, stopped (``cancel`` set) when the client
    disconnects (``ClientGone``) or ``timeout`` seconds pass (``DeadlineExceeded``)."""
    cancel = threading.Event()
    task = asyncio.ensure_future(anyio.to_thread.run_sync(work, cancel, abandon_on_cancel=True))
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({task, gone}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server is shutting down
        cancel.set()
        task.cancel()
        raise
    finally:
        gone.cancel()
    if task in done:
        return task.result()
    cancel.set()  # the thread stops at its next safe point; nobody waits for it
    task.cancel()
    if gone in done:
        raise ClientGone(f"{request.method} {request.url.path}: the client disconnected; "
                         "the work was stopped")
    raise DeadlineExceeded(f"{request.method} {request.url.path} ran past the server's "
                           f"request deadline of {timeout:g} s and was stopped "
                           "(trawl serve --request-timeout)")


# -- MCP over HTTP ---------------------------------------------------------------------
# The MCP SDK runs a tool call in its own tasks and does not cancel it when the HTTP
# client goes away. ``WatchDisconnect`` wraps the /mcp route: it reads the (bounded) body,
# hands it to the SDK, and meanwhile waits for the client's disconnect, which it signals
# through a context variable the SDK's tasks inherit; the tools race their work against it.
client_gone: ContextVar[asyncio.Event | None] = ContextVar("trawl_mcp_client_gone",
                                                           default=None)


class WatchDisconnect:
    """ASGI wrapper: sets ``client_gone`` for the request's tasks once the client leaves."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body: list[Message] = []
        while True:
            message = await receive()
            body.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        if body[-1]["type"] == "http.disconnect":
            return
        gone = asyncio.Event()

        async def replay() -> Message:
            if body:
                return body.pop(0)
            await gone.wait()
            return {"type": "http.disconnect"}

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.ensure_future(watch())
        token = client_gone.set(gone)
        try:
            await self.app(scope, replay, send)
        finally:
            client_gone.reset(token)
            watcher.cancel()


async def until_done_or_gone(call: Awaitable[T], timeout: float | None) -> T:
    """``call``, cancelled when the MCP client of this request disconnects (``ClientGone``)
    or after ``timeout`` seconds (``TimeoutError``); cancelling a ``Trawl.asearch`` or
    ``acontext`` stops its worker thread at the next stage."""
    gone = client_gone.get()
    task = asyncio.ensure_future(call)
    waiters: set[asyncio.Future[Any]] = {task}
    gone_wait = asyncio.ensure_future(gone.wait()) if gone is not None else None
    if gone_wait is not None:
        waiters.add(gone_wait)
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        if gone_wait is not None:
            gone_wait.cancel()
    if task in done:
        return task.result()
    task.cancel()
    if gone_wait is not None and gone_wait in done:
        raise ClientGone("the MCP client disconnected; the call was stopped")
    raise TimeoutError
