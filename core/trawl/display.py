"""Make untrusted text safe to show: no terminal control sequences, no Rich markup.

Document text, titles, file paths, plugin names and plugin error messages all come from
outside trawl. Printed raw, an ``ESC [ 2 J`` clears the user's screen, an OSC 8 sequence
plants a link, a ``\\x9b`` (C1 CSI) does the same on 8-bit terminals, bidi overrides
reorder what the user reads, and ``[/cyan]`` in a title crashes Rich's markup parser.
Every front end (CLI, TUI) passes such text through :func:`safe_text` (for plain output,
``rich.text.Text`` and Textual's ``Content``) or :func:`escape_markup` (for strings that
Rich will parse as markup).

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


# Rich's markup grammar (rich.markup.RE_TAGS): a tag is ``[`` + [a-z#/@] + ... + ``]``,
# preceded by a run of backslashes: an odd run escapes the tag, each pair is one backslash.
# Outside tags Rich turns ``\[`` into ``[``.
_MARKUP_BRACKET = re.compile(r"(\\*)(\[[a-z#/@][^\[]*?\])|(\\*)\[|(\\+)$")


def _escape_bracket(match: re.Match[str]) -> str:
    if match.group(2) is not None:  # would parse as a tag: 2k+1 backslashes show k and a literal
        return "\\" * (2 * len(match.group(1)) + 1) + match.group(2)
    if match.group(4) is not None:  # trailing run: doubled so it cannot escape a closing tag
        return match.group(4) * 2
    return "\\" * (len(match.group(3)) + 1) + "["  # plain '[': Rich drops one backslash


def escape_markup(value: object, *, multiline: bool = False) -> str:
    """:func:`safe_text`, then escaped for Rich console markup, for embedding untrusted text
    in a markup string: ``f"[cyan]{escape_markup(title)}[/cyan]"`` shows the title exactly.

    ``rich.markup.escape`` is not enough: it leaves a backslash before a ``[`` that is not
    tag-like (Rich then hides that backslash) and an odd run of three or more trailing
    backslashes (which then escape the closing tag). Rich also replaces ``:emoji:`` codes in
    markup strings; pass ``emoji=False`` or, better, render untrusted text as
    ``rich.text.Text(safe_text(...))`` and never as markup (what the CLI does). Textual's
    markup treats backslashes differently: there, use ``Content(safe_text(...))``.
    """
    return _MARKUP_BRACKET.sub(_escape_bracket, safe_text(value, multiline=multiline))


_JSON_UNSAFE = re.compile(f"[{_OTHER_UNSAFE}]")


def safe_json(obj: Any, *, indent: int | None = 2) -> str:
    """JSON for a terminal: non-ASCII text stays readable, but C1 controls, lone surrogates
    and bidi marks are written as ``\\uXXXX`` escapes (JSON already escapes C0). Lossless:
    ``json.loads`` gives back the original strings."""
    text = json.dumps(obj, indent=indent, ensure_ascii=False, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
