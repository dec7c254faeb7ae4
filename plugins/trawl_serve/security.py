"""ASGI middleware in front of every route (HTTP API and MCP alike): an optional bearer
key, and the request body limit. Plain ASGI rather than framework hooks, so the MCP
mount is covered exactly like the JSON routes."""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trawl.errors import ConfigError

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


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
                             "with the server's TRAWL_API_KEY",
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
