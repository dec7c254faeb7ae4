"""Query-term highlighting and snippets (rich ``Text``; no textual import)."""

from __future__ import annotations

import re
from functools import lru_cache

from rich.text import Text

from trawl.models import Hit

_WORD = re.compile(r"\w+", re.UNICODE)
HIGHLIGHT_STYLE = "bold reverse"
# English function words are not highlighted: lit up on every line they hide the words
# that matched. Display only (what each retriever ignores is its own business).
FUNCTION_WORDS = frozenset("""
a about an and are as at be been but by can did do does for from had has have how i if in
into is it its me my no not of on or our so than that the their them then there these they
this those to was we were what when where which who why will with would you your
""".split())


def query_terms(query: str) -> list[str]:
    """Distinct lowercase word terms of a query, longest first (regex alternation order);
    function words are left out unless the query has nothing else."""
    terms = {t.lower() for t in _WORD.findall(query) if len(t) > 1 or t.isdigit()}
    content = {t for t in terms if t not in FUNCTION_WORDS}
    return sorted(content or terms, key=lambda t: (-len(t), t))


@lru_cache(maxsize=64)
def term_pattern(query: str) -> re.Pattern[str] | None:
    """Words that start with a query term (the last term is often half-typed)."""
    terms = query_terms(query)
    if not terms:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(t) for t in terms) + r")\w*", re.IGNORECASE)


def match_spans(text: str, query: str) -> list[tuple[int, int]]:
    """Character spans of the words in ``text`` that a query term starts."""
    pattern = term_pattern(query)
    return [] if pattern is None else [m.span() for m in pattern.finditer(text)]


def highlight(text: str, query: str, style: str = HIGHLIGHT_STYLE) -> Text:
    out = Text(text)
    for start, end in match_spans(text, query):
        out.stylize(style, start, end)
    return out


def snippet_text(text: str, query: str, width: int = 160) -> str:
    """A one-line window of ``text`` (whitespace collapsed) around the densest run of matches."""
    flat = " ".join(text.split())
    start = 0
    if len(flat) > width:
        spans = [s for s, _ in match_spans(flat, query)]
        if spans:
            # the window start that covers the most matches
            best, best_n = spans[0], 0
            for s in spans:
                n = sum(1 for x in spans if s <= x < s + width * 0.8)
                if n > best_n:
                    best, best_n = s, n
            start = max(0, best - width // 5)
            space = flat.rfind(" ", 0, start)
            start = space + 1 if space != -1 and start - space < 20 else start
    piece = flat[start:start + width]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + width < len(flat) else ""
    return prefix + piece + suffix


def snippet(text: str, query: str, width: int = 160) -> Text:
    """``snippet_text`` with the query terms highlighted (rich ``Text``)."""
    return highlight(snippet_text(text, query, width), query)


def citation(hit: Hit) -> str:
    """``Title — path (chars a–b) [chunk id]``: what the copy key puts on the clipboard."""
    where = hit.source or hit.doc_id
    start = hit.metadata.get("chunk_start")
    end = hit.metadata.get("chunk_end")
    span = f" (chars {start}–{end})" if start is not None and end is not None else ""
    title = f"{hit.title} — " if hit.title else ""
    return f"{title}{where}{span} [{hit.chunk_id}]"


BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, cells: int = 6) -> str:
    """A small horizontal bar (eighth blocks) for a value in [0, 1]."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * cells * 8)
    full, rest = divmod(eighths, 8)
    text = "█" * full + (BLOCKS[rest] if rest else "")
    return text.ljust(cells)
