"""Load plugins in a child process, so diagnostics survive any plugin.

A plugin runs arbitrary code when it is imported and in its hooks. In-process, trawl
catches every exception there (``SystemExit`` and ``KeyboardInterrupt`` included; the CLI's
host also turns ``os._exit`` into one), but a segfault, a signal or an endless loop cannot be
caught. ``trawl plugins`` and the
plugin-command list of ``trawl --help`` must work precisely when a plugin is that broken,
so they load plugins here, in a child process that reports each step before it runs it:

* the child dies: the plugin of the last reported step is named, with the exit status;
* a step takes longer than the timeout: the child is killed and that plugin is named;

then the child is started again without that plugin, until every plugin was probed. In the
common case (no broken plugin) this is one child process (~0.3 s on this project's 2-core
machine); the commands that need plugins anyway (index, search, ...) load them in-process
and never pay for it.

The child speaks JSON lines on a private copy of its stdout; the plugin's own prints go to
stderr, which is discarded.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import IO, Any

from .errors import TrawlError
from .plugins import PluginHost, PluginInfo, _env_list

DEFAULT_TIMEOUT_S = 10.0
STARTUP_S = 60.0


@dataclass
class PluginCommandInfo:
    name: str
    help: str
    plugin: str


@dataclass
class ProbeReport:
    """What loading every plugin in isolation found."""

    plugins: list[PluginInfo] = field(default_factory=list)
    commands: list[PluginCommandInfo] = field(default_factory=list)


def probe_timeout() -> float:
    """Seconds one plugin step may take (``TRAWL_PLUGIN_TIMEOUT``, default 10)."""
    try:
        return max(0.1, float(os.environ.get("TRAWL_PLUGIN_TIMEOUT", DEFAULT_TIMEOUT_S)))
    except ValueError:
        return DEFAULT_TIMEOUT_S


def _read_lines(stream: IO[bytes], out: queue.Queue[bytes | None]) -> None:
    for line in stream:
        out.put(line)
    out.put(None)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except (metadata.PackageNotFoundError, ValueError):
        return "unknown"


def probe_plugins(*, include_core: bool = False, timeout: float | None = None) -> ProbeReport:
    """Load every plugin in a child process and report plugins, errors and commands."""
    limit = probe_timeout() if timeout is None else timeout
    casualties: dict[str, PluginInfo] = {}
    max_rounds = len(metadata.entry_points(group="trawl")) + 2
    for _ in range(max_rounds):
        args = [sys.executable, "-m", "trawl.plugin_probe", *(["--all"] if include_core else []),
                "--skip", ",".join(casualties)]
        try:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL)
        except OSError as exc:
            raise TrawlError(f"cannot start the plugin probe ({sys.executable}): {exc}",
                             title="plugin probe failed") from exc
        assert proc.stdout is not None
        lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=_read_lines, args=(proc.stdout, lines), daemon=True).start()
        step: dict[str, str] | None = None
        started = False
        report: dict[str, Any] | None = None
        problem = ""
        try:
            while report is None:
                try:  # the child's own start-up (Python, trawl) is not a plugin's fault
                    line = lines.get(timeout=limit if started else max(limit, STARTUP_S))
                except queue.Empty:
                    proc.kill()
                    problem = f"did not finish {{step}} within {limit:g} s (killed)"
                    break
                if line is None:
                    status = proc.wait()
                    problem = f"ended the process with exit status {status} during {{step}}"
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                started = True
                if "loading" in msg:
                    step = msg["loading"]  # None once no plugin code runs any more
                elif "report" in msg:
                    report = msg["report"]
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            proc.stdout.close()
        if report is not None:
            plugins = [PluginInfo.from_json(p) for p in report["plugins"]]
            plugins += casualties.values()
            commands = [PluginCommandInfo(**c) for c in report["commands"]]
            return ProbeReport(plugins=sorted(plugins, key=lambda p: p.name), commands=commands)
        if step is None:
            raise TrawlError(f"the plugin probe ({' '.join(args)}) {problem.format(step='start-up')}"
                             " before loading any plugin", title="plugin probe failed")
        name, dist = step["plugin"], step["distribution"]
        error = (f"plugin {name!r} from distribution {dist!r} "
                 f"{problem.format(step=step['step'])}; it was probed in a separate process, "
                 "so it cannot stop trawl itself")
        casualties[name] = PluginInfo(name=name, distribution=dist, version=_version(dist),
                                      error=error)
    raise TrawlError("the plugin probe did not converge", title="plugin probe failed")


def _child(argv: list[str]) -> None:
    """The child side: load, report each step first, then print the full report."""
    include_core = "--all" in argv
    skip = set(argv[argv.index("--skip") + 1].split(",")) - {""} if "--skip" in argv else set()
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # a plugin that prints must not corrupt the protocol
    sys.stdout = sys.stderr

    def emit(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    def loading(plugin: str, distribution: str, step: str) -> None:
        emit({"loading": {"plugin": plugin, "distribution": distribution, "step": step}})

    host = PluginHost(disable=(_env_list("TRAWL_DISABLE_PLUGINS") or set()) | skip,
                      on_loading=loading)
    host.registry  # noqa: B018 - runs every register_* hook under `loading`
    commands = host.plugin_commands()
    emit({"loading": None})  # from here on only trawl's own code runs
    infos = host.plugin_infos(include_core=include_core)
    for info in infos:
        info.commands = sorted(cmd.name or "" for plugin, cmd in commands if plugin == info.name)
    emit({"report": {
        "plugins": [i.to_json() for i in infos],
        "commands": [{"name": cmd.name, "help": cmd.get_short_help_str(limit=80),
                      "plugin": plugin} for plugin, cmd in commands],
    }})
    proto.close()


if __name__ == "__main__":
    _child(sys.argv[1:])
