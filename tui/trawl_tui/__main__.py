"""``python -m trawl_tui [INDEX] [--pipeline P] [--session FILE] [--no-history]``."""

from __future__ import annotations

import argparse

from .app import run


def main() -> int:
    parser = argparse.ArgumentParser(prog="trawl-tui", description="trawl terminal UI")
    parser.add_argument("index", nargs="?", help="index folder, name, or TOML config")
    parser.add_argument("--pipeline", help="pipeline preset or file for a new index")
    parser.add_argument("--session", help="session JSON to reopen")
    parser.add_argument("--no-history", action="store_true",
                        help="do not read or write the per-index query history")
    args = parser.parse_args()
    return run(args.index, args.pipeline, session=args.session, history=not args.no_history)


if __name__ == "__main__":
    raise SystemExit(main())
