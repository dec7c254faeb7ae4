"""The ``serve`` and ``mcp`` subcommands (click only; the server stack loads on use)."""

from __future__ import annotations

from pathlib import Path

import click

from trawl.cli import device_option, device_settings
from trawl.errors import MissingDependencyError
from trawl.wire import MAX_BODY_BYTES


def _require_stack() -> None:
    try:
        import fastapi  # noqa: F401
        import mcp  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "fastapi", "serve",
                                     purpose="`trawl serve`") from exc


@click.command(name="serve")
@click.argument("index", required=False)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; anything but loopback needs TRAWL_API_KEY.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port (0 picks a free one; the address is printed and recorded).")
@click.option("--pipeline", "-p", default=None, help="Pipeline for a new index.")
@click.option("--watch", "watch", multiple=True, type=click.Path(path_type=Path),
              help="Keep this folder indexed as files change (repeatable).")
@click.option("--allow-path", "allow_path", multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Let clients index files under this folder (POST /index, `trawl index` "
                   "while served; --watch folders count too). Repeatable; none: off.")
@click.option("--allow-host", "allow_host", multiple=True, metavar="NAME[:PORT]",
              help="Accept this Host name besides the server's own (127.0.0.1, localhost, "
                   "[::1] on loopback): a proxy's or the machine's LAN name. Repeatable.")
@click.option("--allow-origin", "allow_origin", multiple=True, metavar="ORIGIN",
              help="Accept requests from web pages of this origin (scheme://host[:port]); "
                   "pages of other sites are refused. Repeatable.")
@click.option("--request-timeout", default=30.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop a search, context or batch (HTTP or MCP) that runs longer and "
                   "answer 504.")
@click.option("--max-body", default=MAX_BODY_BYTES / 2**20, show_default=True,
              type=click.FloatRange(min=0.001), metavar="MIB",
              help="Largest request body, in MiB; a larger one is answered 413 (JSON) "
                   "without being read. Clients split large adds at half the default.")
@click.option("--no-mcp", is_flag=True, help="Do not mount the MCP endpoint at /mcp.")
@click.option("--mcp-write", is_flag=True,
              help="Offer the MCP tools `store` and `forget` (agents write to the index); "
                   "off: MCP is read-only.")
@click.option("--batch/--no-batch", default=False, show_default=True,
              help="Encode concurrent searches' queries in one batch (experimental: it did "
                   "not pay on a 2-core machine).")
@click.option("--log-level", default="warning", show_default=True,
              type=click.Choice(["critical", "error", "warning", "info", "debug"]))
@device_option
def serve_command(index: str | None, host: str, port: int, pipeline: str | None,
                  watch: tuple[Path, ...], allow_path: tuple[Path, ...],
                  allow_host: tuple[str, ...], allow_origin: tuple[str, ...],
                  request_timeout: float, max_body: float, no_mcp: bool, mcp_write: bool,
                  batch: bool | None, log_level: str, device: str | None) -> None:
    """Serve an index over HTTP and MCP, so every client can use it at once."""
    import os

    from .security import HostPolicy, check_exposure

    check_exposure(host, os.environ.get("TRAWL_API_KEY") or None)  # before any heavy import
    HostPolicy(allow_host, allow_origin)  # a malformed entry fails before the index opens
    _require_stack()
    from .runner import serve

    serve(index, host=host, port=port, pipeline=pipeline, watch=list(watch),
          mcp=not no_mcp, batch=batch, log_level=log_level, allow_paths=list(allow_path),
          allow_hosts=list(allow_host), allow_origins=list(allow_origin),
          request_timeout=request_timeout, mcp_write=mcp_write,
          max_body_bytes=int(max_body * 2**20), component_settings=device_settings(device))


@click.command(name="mcp")
@click.argument("index", required=False)
@click.option("--pipeline", "-p", default=None,
              help="Pipeline for a new index (without it, the index must exist).")
@click.option("--mcp-write", is_flag=True,
              help="Offer the tools `store` and `forget` too; off: read-only.")
@click.option("--request-timeout", default=30.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Stop a search or context call that runs longer.")
@device_option
def mcp_command(index: str | None, pipeline: str | None, mcp_write: bool,
                request_timeout: float, device: str | None) -> None:
    """Speak MCP over stdin/stdout (for agents that spawn their tools). Attaches to a
    running `trawl serve` of the same index, or opens the index itself."""
    _require_stack()
    from .runner import run_mcp_stdio

    run_mcp_stdio(index, pipeline=pipeline, write=mcp_write, request_timeout=request_timeout,
                  component_settings=device_settings(device))
