"""``trawl tui``: registered through the ``register_commands`` hook, as any plugin's command is.

Core's CLI imports nothing from this package; the entry point ``tui = "trawl_tui.plugin"`` in
the ``trawl`` group adds the command. This module imports neither textual nor the app: a
plugin module is loaded for every ``trawl`` command, the TUI only when ``trawl tui`` runs.
"""

from __future__ import annotations

import sys

import click

import trawl


@trawl.hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="tui")
    @click.argument("index", required=False)
    @click.option("--pipeline", "-p", default=None, help="Pipeline for a new index.")
    @click.option("--session", default=None, help="Session JSON to reopen.")
    @click.option("--no-history", is_flag=True,
                  help="Do not read or write the per-index query history.")
    def tui(index: str | None, pipeline: str | None, session: str | None,
            no_history: bool) -> None:
        """Open the terminal UI on an index (without INDEX: pick one from a list)."""
        try:
            from .app import run
        except ImportError as exc:
            raise trawl.MissingDependencyError("textual", "tui",
                                               purpose="the terminal UI") from exc
        code = run(index, pipeline, session=session, history=not no_history)
        if code:
            sys.exit(code)
