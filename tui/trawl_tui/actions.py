"""Opening a hit's file and copying a hit: plain functions (no textual), tested directly.

``open_plan`` picks the program the way terminal tools do: ``$VISUAL``, then ``$EDITOR``
(both at the chunk's line, with the app suspended), then ``$PAGER``, then the system
opener (``xdg-open``/``open``) as the last resort.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from trawl.errors import InputError
from trawl.models import Hit

from .highlight import citation

COPY_KINDS = ("path", "text", "citation", "json")


@dataclass(frozen=True)
class OpenPlan:
    argv: list[str]
    label: str
    suspend: bool  # a terminal program: hand it the terminal
    path: str
    line: int

    def describe(self) -> str:
        return f"{self.path}:{self.line} with {self.label}"


def chunk_line(path: Path, hit: Hit) -> int:
    """The 1-based line where the chunk starts. A JSONL or BEIR record says its own line
    (``line`` in its metadata: its offsets count in the record's text, not the file's);
    any other file is read to turn the chunk's character offset into a line."""
    record_line = hit.metadata.get("line")
    if isinstance(record_line, int) and not isinstance(record_line, bool) and record_line > 0:
        return record_line
    start = hit.metadata.get("chunk_start")
    if not isinstance(start, int) or start <= 0:
        return 1
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return 1
    if start > len(text):
        return 1
    return text.count("\n", 0, start) + 1


def _editor_argv(command: str, path: str, line: int) -> list[str]:
    argv = shlex.split(command)
    program = Path(argv[0]).name if argv else ""
    if program in ("code", "codium", "code-insiders"):
        return [*argv, "--goto", f"{path}:{line}"]
    if program in ("subl", "zed", "hx", "helix"):
        return [*argv, f"{path}:{line}"]
    return [*argv, f"+{line}", path]  # vi, vim, nvim, nano, emacs, micro, kak, joe, ...


def open_plan(hit: Hit, env: dict[str, str] | None = None) -> OpenPlan:
    """What ``o`` runs for this hit; ``InputError`` when it has no local file."""
    env = dict(os.environ) if env is None else env
    source = hit.source
    if not source:
        raise InputError(f"hit {hit.chunk_id!r} has no source path")
    path = Path(source.removeprefix("file://")).expanduser()
    if "://" in source and not source.startswith("file://"):
        raise InputError(f"{source} is not a local file")
    if not path.is_file():
        raise InputError(f"{path} does not exist (moved or deleted since it was indexed?)")
    line = chunk_line(path, hit)
    for var in ("VISUAL", "EDITOR"):
        command = env.get(var, "").strip()
        if command:
            return OpenPlan(_editor_argv(command, str(path), line), f"${var}", True,
                            str(path), line)
    pager = env.get("PAGER", "").strip() or (shutil.which("less") or "")
    if pager:
        argv = shlex.split(pager)
        if Path(argv[0]).name == "less":
            argv.append(f"+{line}g")
        return OpenPlan([*argv, str(path)], "$PAGER" if env.get("PAGER") else "less", True,
                        str(path), line)
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    if shutil.which(opener) is None:
        raise InputError("no $VISUAL, $EDITOR or $PAGER set and no system opener "
                         f"({opener}) found")
    return OpenPlan([opener, str(path)], opener, False, str(path), line)


def run_plan(plan: OpenPlan) -> int:
    """Run it; a terminal program waits, the system opener is started and left alone."""
    if plan.suspend:
        return subprocess.run(plan.argv, check=False).returncode
    subprocess.Popen(plan.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
    return 0


def copy_payload(hit: Hit, kind: str) -> str:
    """What the copy menu puts on the clipboard."""
    if kind == "path":
        return hit.source or hit.doc_id
    if kind == "text":
        return hit.text
    if kind == "citation":
        return citation(hit)
    if kind == "json":
        return json.dumps(hit.model_dump(), ensure_ascii=False, indent=1, default=str)
    raise InputError(f"unknown copy kind {kind!r}; expected one of {COPY_KINDS}")


def _clipboard_tools() -> list[list[str]]:
    tools: list[list[str]] = []
    if sys.platform == "darwin":
        tools.append(["pbcopy"])
    if os.environ.get("WAYLAND_DISPLAY"):
        tools.append(["wl-copy"])
    if os.environ.get("DISPLAY"):
        tools += [["xclip", "-selection", "clipboard"], ["xsel", "--clipboard", "--input"]]
    return tools


def copy_with_tool(text: str) -> str | None:
    """Copy through a system clipboard program; ``None`` when none is available (then the
    app falls back to OSC 52, which works over ssh and in most terminals)."""
    for argv in _clipboard_tools():
        if shutil.which(argv[0]) is None:
            continue
        try:
            done = subprocess.run(argv, input=text.encode("utf-8", "replace"), check=False,
                                  timeout=3, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if done.returncode == 0:
            return argv[0]
    return None
