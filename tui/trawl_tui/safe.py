"""Untrusted text (document content, titles, paths, plugin names and errors) made safe to show.

Indexed files can hold anything: terminal escape sequences (ESC/OSC/CSI), other control
characters, bidi overrides and isolates (U+202A-202E, U+2066-2069: they reorder what the
reader sees and make a row narrower than its cell count), lone surrogates, and text that
looks like Textual or Rich markup (``[bold red]FAKE[/]``, ``[link=...]``). The TUI escapes
exactly as the CLI does (``trawl.display.safe_text``: ``\\x1b``, ``\\u202e``), before any
layout, so widths are measured on the escaped text. ``markup`` additionally escapes markup
for the few widgets that parse it; everything else builds ``Content``/``Text`` from plain
strings, which no widget parses as markup.
"""

from __future__ import annotations

from textual.markup import escape

from trawl.display import safe_text


def clean(text: object) -> str:
    """``text`` with every control and bidi character as a visible escape; tabs and newlines
    kept (multi-line text: chunk bodies, error messages)."""
    return safe_text(text, multiline=True)


def one_line(text: object) -> str:
    """``clean`` on a single line: runs of whitespace (newlines, tabs) become one space."""
    return " ".join(clean(text).split())


def field(text: object) -> str:
    """A name, path or id, escaped exactly as the CLI prints it (``\\n`` shown, not folded)."""
    return safe_text(text)


def markup(text: object) -> str:
    """For widgets that parse markup: control characters escaped, ``[`` escaped."""
    return escape(clean(text))


def clean_input(text: str) -> str:
    """What may go into an input field: tabs and line breaks (a multi-line paste) as spaces,
    other control and bidi characters dropped (they are never part of a query or a filter,
    and an input would draw them raw)."""
    if safe_text(text) == text:  # the usual case: one call, no copy
        return text
    text = " ".join(text.splitlines()).replace("\t", " ")
    return "".join(ch for ch in text if safe_text(ch) == ch)
