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
from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread
from starlette.requests import Request

from trawl import TrawlError

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
