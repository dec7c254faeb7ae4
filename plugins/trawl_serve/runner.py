"""Running a server: open the index as its one owner, bind, advertise, serve, clean up."""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trawl import ConfigError, IndexLockedError, Trawl, safe_text
from trawl.config import TrawlSettings
from trawl.lockfile import live_server
from trawl.wire import MAX_BODY_BYTES

from .security import check_exposure

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("trawl.serve")

# The request line and headers of one request may take this many bytes; more is a 400 and
# the connection closes. uvicorn's default parser (httptools) has no such limit: a client
# streaming headers grew the server by 290 MB in 1.4 s. h11 has one, so the server uses it.
MAX_HEADER_BYTES = 64 * 1024


def uvicorn_config(app: Any, log_level: str) -> uvicorn.Config:
    """The server's uvicorn settings: h11 with a header size cap (see MAX_HEADER_BYTES)."""
    import uvicorn

    return uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                          timeout_graceful_shutdown=5, http="h11",
                          h11_max_incomplete_event_size=MAX_HEADER_BYTES)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: the kernel picks a free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"--host {host}: cannot resolve or use this address: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def client_url(sock: socket.socket) -> str:
    """The URL a client on this machine uses to reach ``sock``."""
    host, port = sock.getsockname()[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def freeze_long_lived() -> None:
    """Move the objects alive now (the open index: chunks, vocabulary, ...) out of the
    cyclic collector's scans. A full collection otherwise walks all of them and pauses a
    request ~50 ms on a 10k-chunk index (measured: 4 of 300 SciFact hybrid searches).
    The process serves one index for its life, so nothing frozen is garbage later."""
    gc.collect()
    gc.freeze()


def open_owned(index: str | None, pipeline: str | None,
               component_settings: Mapping[str, Any] | None = None) -> Trawl:
    """Open the index as its owner; a folder another server already serves is an error
    that names that server."""
    try:
        return Trawl.open(index, pipeline=pipeline, show_progress=False, attach=False,
                          component_settings=component_settings)
    except IndexLockedError as exc:
        path = None if index and index.endswith(".toml") else TrawlSettings().index_path(index)
        server = live_server(path) if path is not None else None
        if server is not None:
            raise IndexLockedError(f"index {path} is already served at {server.url} by "
                                   f"process {server.pid}") from exc
        raise


class _Stopped(Exception):
    pass


def _stop(sig: int, frame: object) -> None:
    raise _Stopped(sig)


def serve(index: str | None, *, host: str = "127.0.0.1", port: int = 8765,
          pipeline: str | None = None, watch: list[Path] | None = None, mcp: bool = True,
          batch: bool | None = None, log_level: str = "warning",
          allow_paths: list[Path] | None = None, allow_hosts: list[str] | None = None,
          allow_origins: list[str] | None = None,
          request_timeout: float | None = 30.0, mcp_write: bool = False,
          max_body_bytes: int = MAX_BODY_BYTES,
          component_settings: Mapping[str, Any] | None = None) -> None:
    """``trawl serve``: blocks until SIGINT/SIGTERM, then withdraws and closes the index."""
    import uvicorn

    from .app import create_app
    from .watch import FolderWatcher

    api_key = os.environ.get("TRAWL_API_KEY") or None
    check_exposure(host, api_key)
    trawl = open_owned(index, pipeline, component_settings)
    freeze_long_lived()
    try:
        watcher = FolderWatcher(trawl, list(watch)) if watch else None
        sock = bind(host, port)
        url = client_url(sock)

        def ready() -> None:
            trawl.advertise(url, auth=api_key is not None)
            print(f"trawl serve: {url} index={safe_text(trawl.path)} pid={os.getpid()}"
                  + (f" mcp={url}/mcp" if mcp else ""), flush=True)

        app = create_app(trawl, api_key=api_key, watcher=watcher, mcp=mcp, host=host,
                         on_ready=ready, batch=batch, allow_paths=allow_paths or (),
                         allow_hosts=allow_hosts or (), allow_origins=allow_origins or (),
                         request_timeout=request_timeout, mcp_write=mcp_write,
                         max_body_bytes=max_body_bytes)
        config = uvicorn_config(app, log_level)
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal; our
        # handler turns that into a normal return, so the lock record is withdrawn below.
        previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            uvicorn.Server(config).run(sockets=[sock])
        except _Stopped:
            pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            sock.close()
    finally:
        try:
            trawl.advertise(None)
        finally:
            trawl.close()


def run_mcp_stdio(index: str | None, *, pipeline: str | None = None, write: bool = False,
                  request_timeout: float | None = 30.0,
                  component_settings: Mapping[str, Any] | None = None) -> None:
    """``trawl mcp``: MCP over stdin/stdout, attached to a running server if there is one."""
    import anyio

    from .mcp_tools import build_mcp

    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    # an agent naming a missing index gets an error, not a silently created empty one
    client = Trawl.open(index, pipeline=pipeline, show_progress=False,
                        create=pipeline is not None, component_settings=component_settings)
    freeze_long_lived()
    try:
        anyio.run(build_mcp(client, write=write,
                            request_timeout=request_timeout).run_stdio_async)
    finally:
        client.close()
