"""ASGI middleware in front of every route (HTTP API and MCP alike): the Host/Origin check
against DNS rebinding, an optional bearer key, and the request body limit. Plain ASGI
rather than framework hooks, so the MCP route is covered exactly like the JSON routes."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from trawl.errors import ConfigError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
log = logging.getLogger("trawl.serve")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` keeps the server reachable from this machine only."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, api_key: str | None) -> None:
    """Loopback by default: any other address needs a key, or the server does not start."""
    if not is_loopback(host) and not api_key:
        raise ConfigError(f"refusing to serve on {host} without TRAWL_API_KEY: set it (clients "
                          "send it as a bearer token) or bind to 127.0.0.1")


def error_body(kind: str, message: str, field: str | None = None) -> bytes:
    """The JSON of every error answer (``trawl.wire.ErrorResponse``)."""
    return json.dumps({"error": {"type": kind, "message": message, "field": field}}).encode()


async def send_error(send: Send, status: int, kind: str, message: str,
                     field: str | None = None,
                     headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = error_body(kind, message, field)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


class BearerAuth:
    """Requires ``Authorization: Bearer <key>`` on every HTTP request (constant-time check)."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = token.strip()
                break
        if not hmac.compare_digest(given, self.key):
            await send_error(send, 401, "auth",
                             "missing or wrong API key: send 'Authorization: Bearer <key>' "
                             "with the server's TRAWL_API_KEY", "authorization",
                             headers=[(b"www-authenticate", b"Bearer")])
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Answers 413 (JSON naming the limit) for bodies over ``max_bytes``, whether the
    client declares the size (Content-Length) or streams it (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _message(self) -> str:
        return f"request body is larger than the limit of {self.max_bytes:,} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit():
                    await send_error(send, 400, "validation", "Content-Length is not a number",
                                     "content-length")
                    return
                if int(value) > self.max_bytes:
                    await send_error(send, 413, "too_large", self._message(), "body")
                    return
        state: dict[str, Any] = {"received": 0, "over": False, "started": False}

        async def limited_receive() -> Message:
            if state["over"]:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["over"] = True  # the app sees a disconnect and stops reading
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if state["over"]:
                return  # our 413 replaces whatever the app answers to the disconnect
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["over"]:
                raise
        if state["over"] and not state["started"]:
            await send_error(send, 413, "too_large", self._message(), "body")


# a DNS name or IPv4 address (letters, digits, dots, hyphens, underscores), or [IPv6]
_HOST_NAME = re.compile(r"[a-z0-9_.-]+|\[[0-9a-f:.%a-z]+\]")


def split_host(value: str, default_port: int | None) -> tuple[str, int | None] | None:
    """``host[:port]`` (``[v6]:port`` too) as a lower-case name and a port; None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        name, port_text = f"[{name}]", rest[1:]
    else:
        name, _, port_text = value.partition(":")
    if not _HOST_NAME.fullmatch(name):
        return None
    if not port_text:
        return name, default_port
    if not port_text.isdigit() or len(port_text) > 5 or int(port_text) > 65535:
        return None
    return name, int(port_text)


class HostPolicy:
    """Which ``Host`` and ``Origin`` values a server accepts (one policy for every route).

    DNS rebinding lets any web page the user visits reach a loopback server under the
    attacker's own host name; only these two headers tell that apart from a real client.
    Allowed hosts, each at the port the request arrived on: the local address it arrived
    at (and, on loopback, ``127.0.0.1``, ``localhost`` and ``[::1]``; elsewhere the
    machine's own name), plus each ``allow_hosts`` entry (``NAME`` at any port, or
    ``NAME:PORT``; ``*`` switches the check off, for a proxy that checks). An ``Origin``
    passes when its host is allowed (http or https) or it is one of ``allow_origins``
    (``scheme://host[:port]``, or ``*``). A request without ``Origin`` does not come from
    a cross-site page, so only its Host is checked.
    """

    def __init__(self, allow_hosts: Iterable[str] = (),
                 allow_origins: Iterable[str] = ()) -> None:
        self.any_host = False
        self.extra_names: set[str] = set()
        self.extra_pairs: set[tuple[str, int | None]] = set()
        for entry in allow_hosts:
            if entry.strip() == "*":
                self.any_host = True
                continue
            parsed = split_host(entry, None)
            if parsed is None:
                raise ConfigError(f"--allow-host {entry!r}: not a host name or NAME:PORT")
            if parsed[1] is None:
                self.extra_names.add(parsed[0])
            else:
                self.extra_pairs.add(parsed)
        self.any_origin = False
        self.origins: set[str] = set()
        for entry in allow_origins:
            if entry.strip() == "*":
                self.any_origin = True
                continue
            normal = normalise_origin(entry)
            if normal is None:
                raise ConfigError(f"--allow-origin {entry!r}: not an origin like "
                                  "https://app.example or http://localhost:3000")
            self.origins.add(normal)
        self._own: dict[tuple[str, int], frozenset[str]] = {}

    def own_names(self, local: tuple[str, int]) -> frozenset[str]:
        """The names this server answers to on a connection to ``local`` (address, port)."""
        names = self._own.get(local)
        if names is None:
            address = local[0].lower()
            found = {f"[{address}]" if ":" in address else address}
            if is_loopback(address):
                found |= {"127.0.0.1", "localhost", "[::1]"}
            else:  # the machine's own name is no attacker's to point elsewhere
                found.add(socket.gethostname().lower())
            names = self._own[local] = frozenset(found)
        return names

    def host_allowed(self, name: str, port: int | None, local: tuple[str, int] | None) -> bool:
        if self.any_host or name in self.extra_names or (name, port) in self.extra_pairs:
            return True
        return local is not None and port == local[1] and name in self.own_names(local)

    def origin_allowed(self, origin: str, local: tuple[str, int] | None) -> bool:
        if self.any_origin:
            return True
        normal = normalise_origin(origin)
        if normal is None:
            return False  # "null" (sandboxed frames, files) and garbage
        if normal in self.origins:
            return True
        scheme, _, rest = normal.partition("://")
        parsed = split_host(rest, 443 if scheme == "https" else 80)
        return parsed is not None and self.host_allowed(*parsed, local)

    def refusal(self, scope: Scope) -> tuple[int, str, str, str] | None:
        """(status, kind, message, header) when ``scope``'s headers are refused, else None."""
        host = origin = None
        hosts = origins = 0
        for name, value in scope["headers"]:
            if name == b"host":
                host, hosts = value.decode("latin-1"), hosts + 1
            elif name == b"origin":
                origin, origins = value.decode("latin-1"), origins + 1
        # two of either: a proxy in front may have checked the other one (RFC 9110: 400)
        if hosts > 1:
            return (400, "host", "more than one Host header; send exactly one", "host")
        if origins > 1:
            return (403, "origin", "more than one Origin header; a browser sends one",
                    "origin")
        server = scope.get("server")
        local = (str(server[0]), int(server[1])) if server and server[1] is not None else None
        default_port = 443 if scope.get("scheme") in ("https", "wss") else 80
        parsed = split_host(host, default_port) if host is not None else None
        if not self.any_host and (parsed is None or not self.host_allowed(*parsed, local)):
            shown = "missing" if host is None else repr(host)
            return (421, "host", f"Host header {shown} is not a name of this server (a web "
                    "page under another name may be reaching it through DNS rebinding); "
                    "start the server with --allow-host NAME to accept that name", "host")
        if origin is not None and not self.origin_allowed(origin, local):
            return (403, "origin", f"Origin header {origin!r} is a web page this server does "
                    "not trust; start the server with --allow-origin ORIGIN to accept it",
                    "origin")
        return None


class HostOriginGuard:
    """Applies a ``HostPolicy`` to every HTTP request and websocket: 421 for a Host, 403
    for an Origin, as JSON naming the header."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope["trawl.started"] = time.perf_counter()  # latency_ms counts from here
            refused = self.policy.refusal(scope)
            if refused is not None:
                status, kind, message, header = refused
                log.warning("refused %s %s: %s", scope.get("method", "WS"),
                            scope.get("path"), message)
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                else:
                    await send_error(send, status, kind, message, header)
                return
        await self.app(scope, receive, send)


def normalise_origin(value: str) -> str | None:
    """``scheme://host[:port]`` in lower case without a default port, or None."""
    try:
        parts = urlsplit(value.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or (
            parts.path not in ("", "/") or parts.query or parts.fragment or parts.username):
        return None
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    default = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{name}" + (f":{port}" if port not in (None, default) else "")


class PathRoots:
    """The folders a server may read for its clients (``--allow-path``, ``--watch``),
    resolved once; a path is inside when its real path (every link followed) is."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        self.roots: tuple[str, ...] = tuple(dict.fromkeys(os.path.realpath(r) for r in roots))

    def __bool__(self) -> bool:
        return bool(self.roots)

    def contains(self, path: str | os.PathLike[str]) -> bool:
        real = os.path.realpath(path)
        return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in self.roots)

    def describe(self) -> str:
        return ", ".join(self.roots)
