"""Packing search hits into a prompt-ready context block within a token budget.

Hand-written because it is one of trawl's core ideas: what an LLM sees. The rules:

- Each document is cited once (``[n] title — source (chars a–b, c–d)``), its passages in
  document order under one header; chunks of a document that touch or overlap are merged
  into one passage (chunk ``k`` is ``doc.text[start:end]`` and consecutive chunks touch or
  overlap, so the merged text is exactly the document's text over the merged span).
- The budget is measured on the whole rendered block with the caller's tokenizer
  (``count_tokens``), so it holds exactly, whatever the tokenizer does at boundaries.
- A passage that does not fit is skipped and packing goes on with later, smaller ones.
  Only the best passage is ever cut down (to a word boundary), and only when nothing is
  packed yet, so a tight budget still gives part of the best hit.
- The spans in a header are the characters actually included, after cutting and after
  trimming surrounding whitespace.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError
from .models import Hit

CountTokens = Callable[[str], int]
_GAP = "\n…\n"


@dataclass
class Citation:
    """One cited document: its number in the block, where it came from, and the
    character spans of its text that the block includes (``None``: offsets unknown)."""

    number: int
    doc_id: str
    title: str
    source: str
    spans: list[tuple[int, int] | None]
    hits: list[Hit] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "doc_id": self.doc_id, "title": self.title,
                "source": self.source, "spans": [list(s) if s else None for s in self.spans],
                "chunk_ids": [h.chunk_id for h in self.hits]}


@dataclass
class Context:
    """A prompt-ready context block with numbered citations, within a token budget.

    ``tokens`` is ``count_tokens(text)``: the budget's own measure of the whole block.
    ``hits`` are the hits whose text is (at least partly) included, best first.
    """

    text: str
    hits: list[Hit]
    tokens: int
    citations: list[Citation] = field(default_factory=list)

    def __str__(self) -> str:
        return self.text


@dataclass
class _Piece:
    """A stretch of one document: ``text`` is the document's text over ``[start, end)``
    when ``start`` is known; otherwise a passage whose offsets the index did not keep."""

    text: str
    start: int | None
    end: int | None
    hits: list[Hit]

    def trimmed(self) -> tuple[str, tuple[int, int] | None]:
        body = self.text.strip()
        if self.start is None or not body:
            return body, None
        lead = len(self.text) - len(self.text.lstrip())
        return body, (self.start + lead, self.start + lead + len(body))


@dataclass
class _Doc:
    doc_id: str
    title: str
    source: str
    pieces: list[_Piece] = field(default_factory=list)
    taken: int = 0


def _piece(hit: Hit) -> _Piece:
    start, end = hit.metadata.get("chunk_start"), hit.metadata.get("chunk_end")
    if (isinstance(start, int) and isinstance(end, int) and not isinstance(start, bool)
            and end - start == len(hit.text)):
        return _Piece(hit.text, start, end, [hit])
    return _Piece(hit.text, None, None, [hit])


def _with(pieces: list[_Piece], new: _Piece) -> list[_Piece]:
    """``pieces`` plus ``new``, in document order, touching or overlapping ones merged."""
    known = sorted([p for p in pieces if p.start is not None] +
                   ([new] if new.start is not None else []),
                   key=lambda p: (p.start, p.end))
    merged: list[_Piece] = []
    for p in known:
        last = merged[-1] if merged else None
        if last is not None and last.end is not None and p.start is not None \
                and p.end is not None and p.start <= last.end:
            extra = p.text[last.end - p.start:] if p.end > last.end else ""
            merged[-1] = _Piece(last.text + extra, last.start, max(last.end, p.end),
                                last.hits + p.hits)
        else:
            merged.append(_Piece(p.text, p.start, p.end, list(p.hits)))
    unknown = [p for p in pieces if p.start is None] + ([new] if new.start is None else [])
    return merged + unknown


def _render(docs: list[_Doc]) -> tuple[str, list[Citation]]:
    blocks: list[str] = []
    citations: list[Citation] = []
    for doc in docs:
        if not doc.pieces:
            continue
        number = len(citations) + 1
        parts = [p.trimmed() for p in doc.pieces]
        spans = [s for _, s in parts]
        where = ", ".join(f"{s[0]}–{s[1]}" if s else "?" for s in spans)
        title = f"{doc.title} — " if doc.title else ""
        header = f"[{number}] {title}{doc.source or doc.doc_id} (chars {where})"
        blocks.append(header + "\n" + _GAP.join(text for text, _ in parts))
        hits = sorted((h for p in doc.pieces for h in p.hits), key=lambda h: h.rank)
        citations.append(Citation(number, doc.doc_id, doc.title, doc.source, spans, hits))
    return "\n\n".join(blocks), citations


def checked_counter(count_tokens: Any) -> CountTokens:
    """``count_tokens`` wrapped so a tokenizer that raises or answers something other than
    a non-negative integer is an ``InputError`` naming it, not a wrong budget."""
    if not callable(count_tokens):
        raise InputError(f"count_tokens must be a callable str -> int, got "
                         f"{type(count_tokens).__name__}")
    name = getattr(count_tokens, "__qualname__", None) or type(count_tokens).__name__

    def count(text: str) -> int:
        try:
            n = count_tokens(text)
        except Exception as exc:
            raise InputError(f"count_tokens ({name}) raised {type(exc).__name__}: {exc}") \
                from exc
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise InputError(f"count_tokens ({name}) must return an int, got "
                             f"{type(n).__name__} ({n!r})")
        if n < 0:
            raise InputError(f"count_tokens ({name}) returned a negative count ({n})")
        return int(n)

    return count


def pack_context(hits: Sequence[Hit], max_tokens: int, count_tokens: CountTokens, *,
                 per_doc_limit: int | None = None) -> Context:
    """Pack ``hits`` (best first) into a cited block of at most ``max_tokens`` tokens as
    ``count_tokens`` counts them; ``per_doc_limit`` caps the hits taken from one document."""
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise InputError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    if per_doc_limit is not None and (isinstance(per_doc_limit, bool) or
                                      not isinstance(per_doc_limit, int) or per_doc_limit < 1):
        raise InputError(f"per_doc_limit must be an integer >= 1 or None, got "
                         f"{per_doc_limit!r}")
    docs: dict[str, _Doc] = {}
    text, citations, used = "", [], 0

    def attempt(doc: _Doc, pieces: list[_Piece]) -> bool:
        nonlocal text, citations, used
        before = doc.pieces
        doc.pieces = pieces
        candidate, cites = _render(list(docs.values()))
        n = count_tokens(candidate)
        if n <= max_tokens:
            text, citations, used = candidate, cites, n
            return True
        doc.pieces = before
        return False

    for hit in hits:
        doc = docs.setdefault(hit.doc_id, _Doc(hit.doc_id, hit.title, hit.source))
        if per_doc_limit is not None and doc.taken >= per_doc_limit:
            continue
        piece = _piece(hit)
        if attempt(doc, _with(doc.pieces, piece)):
            doc.taken += 1
            continue
        if citations:
            continue  # skip it; later, smaller passages may still fit
        # nothing packed yet: give part of the best passage, cut at a word boundary
        cuts = [i for i, ch in enumerate(piece.text) if ch.isspace() and i > 0]
        lo, hi, best = 0, len(cuts) - 1, -1
        while lo <= hi:
            mid = (lo + hi) // 2
            cut = cuts[mid]
            part = _Piece(piece.text[:cut], piece.start,
                          None if piece.start is None else piece.start + cut, [hit])
            if attempt(doc, [part]):
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        if best >= 0:
            doc.taken += 1
            cut = cuts[best]
            final = _Piece(piece.text[:cut], piece.start,
                           None if piece.start is None else piece.start + cut, [hit])
            doc.pieces = [final]
            text, citations = _render([d for d in docs.values() if d.pieces])
            used = count_tokens(text)
    included = sorted((h for c in citations for h in c.hits), key=lambda h: h.rank)
    return Context(text=text, hits=included, tokens=used, citations=citations)
