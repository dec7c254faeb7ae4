"""Make untrusted text safe to show: no terminal control sequences, no Rich markup.

Document text, titles, file paths, plugin names and plugin error messages all come from
outside trawl. Printed raw, an ``ESC [ 2 J`` clears the user's screen, an OSC 8 sequence
plants a link, a ``\\x9b`` (C1 CSI) does the same on 8-bit terminals, bidi overrides
reorder what the user reads, and ``[/cyan]`` in a title crashes Rich's markup parser.
Every front end (CLI, TUI) passes such text through :func:`safe_text` (for plain output
and ``rich.text.Text``) or :func:`escape_markup` (for strings that Rich or Textual will
parse as markup).

Controls are replaced by a visible escape (``\\x1b``, ``\\u202e``) rather than dropped, so
the user can see that something odd was there. Hand-written because it is a single
character map; Rich's own ``strip_control_codes`` removes only a few C0 codes and keeps ESC.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls and DEL, C1 controls, lone surrogates (they break encoding to the terminal),
# and the bidi embedding/override/isolate marks used for "Trojan Source" spoofing.
_OTHER_UNSAFE = "\x7f-\x9f\ud800-\udfff\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE_LINE = re.compile(f"[\x00-\x1f{_OTHER_UNSAFE}]")
_UNSAFE_BLOCK = re.compile(f"[\x00-\x08\x0b-\x1f{_OTHER_UNSAFE}]")  # keeps \t and \n
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _visible(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: object, *, multiline: bool = False) -> str:
    """``str(value)`` with every control character shown as a visible escape.

    One-line fields (titles, names, paths) escape tabs and newlines too; with
    ``multiline=True`` (document text, multi-line reports) tabs and newlines are kept.
    """
    text = value if isinstance(value, str) else str(value)
    pattern = _UNSAFE_BLOCK if multiline else _UNSAFE_LINE
    return pattern.sub(_visible, text)


def escape_markup(value: object, *, multiline: bool = False) -> str:
    """:func:`safe_text`, then escaped for Rich/Textual markup (``[`` cannot open a tag)."""
    from rich.markup import escape

    return escape(safe_text(value, multiline=multiline))


_JSON_UNSAFE = re.compile(f"[{_OTHER_UNSAFE}]")


def safe_json(obj: Any, *, indent: int | None = 2) -> str:
    """JSON for a terminal: non-ASCII text stays readable, but C1 controls, lone surrogates
    and bidi marks are written as ``\\uXXXX`` escapes (JSON already escapes C0). Lossless:
    ``json.loads`` gives back the original strings."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
