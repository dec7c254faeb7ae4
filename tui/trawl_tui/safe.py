"""Untrusted text (document content, titles, paths, plugin names and errors) made safe to show.

Indexed files can hold anything: terminal escape sequences (ESC/OSC/CSI), other control
characters, lone surrogates, and text that looks like Textual or Rich markup
(``[bold red]FAKE[/]``, ``[link=...]``). ``clean`` removes what would drive the terminal;
``markup`` additionally escapes markup for the few widgets that parse it (``Label``,
``Static`` given a ``str``). Everything else in the TUI builds ``Content``/``Text`` from plain
strings, which no widget parses as markup.
"""

from __future__ import annotations

import re

from textual.markup import escape

# C0 controls except tab and newline, DEL, C1 controls (0x80-0x9f include CSI and OSC
# introducers), and lone surrogates (not encodable as UTF-8: they would crash the writer)
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def clean(text: object) -> str:
    """``text`` with control characters replaced by a visible ``�`` (so a spoof shows)."""
    return _UNSAFE.sub("\ufffd", str(text))


def one_line(text: object) -> str:
    """``clean`` on a single line: newlines and tabs become spaces."""
    return " ".join(clean(text).split())


def markup(text: object) -> str:
    """For widgets that parse markup: control characters removed, ``[`` escaped."""
    return escape(clean(text))
