"""``trawl serve`` and ``trawl mcp``: one index, many clients.

The server owns the one ``Trawl`` of an index folder (the single writer) and serves it
over HTTP (FastAPI on uvicorn) and MCP (the official ``mcp`` SDK, streamable HTTP at
``/mcp``; ``trawl mcp`` speaks stdio). It records its address in the folder's lock file,
so ``trawl search``, ``trawl stats`` and ``Trawl.open`` elsewhere attach to it instead of
failing with ``IndexLockedError``. ``--watch PATH`` keeps folders in step (watchfiles).

This module imports only click and trawl: the ASGI stack loads when a command runs.
"""

from __future__ import annotations

from typing import Any

import trawl


@trawl.hookimpl
def register_commands(cli: Any) -> None:
    from .cli import mcp_command, serve_command

    cli.add_command(serve_command)
    cli.add_command(mcp_command)
