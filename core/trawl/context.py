"""Packing search hits into a prompt-ready context block within a token budget.

Hand-written because it is one of trawl's core ideas: what an LLM sees. The rules:

- Each document is cited once (``[n] title — source (chars a–b, c–d)``), its passages in
  document order under one header; chunks of a document that touch or overlap are merged
  into one passage (chunk ``k`` is ``doc.text[start:end]`` and consecutive chunks touch or
  overlap, so the merged text is exactly the document's text over the merged span).
- The budget holds exactly for the caller's tokenizer (``count_tokens``), whatever it does
  at boundaries: the final block is counted whole. While packing, its size is kept as a
  running sum of its parts' counts, so the work grows linearly with the hits (see
  ``_Packer``).
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
    tokens: int = 0  # count of the trimmed text, as the packer measures it

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
    number: int = 0  # its citation number while it has pieces
    header: int = 0  # tokens of its header line, as the packer measures them
    tokens: int = 0  # tokens of its whole block (header, passages, gaps)


def _piece(hit: Hit) -> _Piece:
    start, end = hit.metadata.get("chunk_start"), hit.metadata.get("chunk_end")
    if (isinstance(start, int) and isinstance(end, int) and not isinstance(start, bool)
            and end - start == len(hit.text)):
        return _Piece(hit.text, start, end, [hit])
    return _Piece(hit.text, None, None, [hit])


def _with(pieces: list[_Piece], new: _Piece,
          merged_tokens: Callable[[_Piece, str], int]) -> list[_Piece]:
    """``pieces`` plus ``new``, in document order, touching or overlapping ones merged;
    ``merged_tokens(first, extra)`` gives the count of a merged piece."""
    known = sorted([p for p in pieces if p.start is not None] +
                   ([new] if new.start is not None else []),
                   key=lambda p: (p.start, p.end))
    merged: list[_Piece] = []
    for p in known:
        last = merged[-1] if merged else None
        if last is not None and last.end is not None and p.start is not None \
                and p.end is not None and p.start <= last.end:
            if p.end <= last.end:  # inside what is there already
                merged[-1] = _Piece(last.text, last.start, last.end, last.hits + p.hits,
                                    last.tokens)
                continue
            extra = p.text[last.end - p.start:]
            merged[-1] = _Piece(last.text + extra, last.start, p.end, last.hits + p.hits,
                                merged_tokens(last, extra))
        else:
            merged.append(_Piece(p.text, p.start, p.end, list(p.hits), p.tokens))
    unknown = [p for p in pieces if p.start is None] + ([new] if new.start is None else [])
    return merged + unknown


def _header(doc: _Doc, number: int, spans: list[tuple[int, int] | None]) -> str:
    where = ", ".join(f"{s[0]}–{s[1]}" if s else "?" for s in spans)
    title = f"{doc.title} — " if doc.title else ""
    return f"[{number}] {title}{doc.source or doc.doc_id} (chars {where})"


def _render(docs: list[_Doc]) -> tuple[str, list[Citation]]:
    blocks: list[str] = []
    citations: list[Citation] = []
    for doc in docs:
        if not doc.pieces:
            continue
        number = len(citations) + 1
        parts = [p.trimmed() for p in doc.pieces]
        spans = [s for _, s in parts]
        blocks.append(_header(doc, number, spans) + "\n" + _GAP.join(text for text, _ in parts))
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


class _Packer:
    """Greedy packing with the block's size kept as a running sum of its parts' counts.

    Re-rendering and re-counting the whole block for every hit made packing quadratic
    (50,000 tokens over 500 SciFact hits: 120 s). Here each hit costs the count of its own
    passage and its document's header: the block's total is ``count("")`` plus, per
    document, its header, a newline, its passages and the gaps between them, plus the
    blank lines between documents, each measured as ``count(part) - count("")`` (so a
    tokenizer that adds special tokens to every call is not charged for them per part).
    A merged passage adds the count of its new tail, corrected by re-counting the word
    the join falls in. For tokenizers that split at whitespace first (WordPiece, words,
    characters) that sum is exact; for others it is close, and ``finish`` counts the
    final block exactly and, if the sum was short, backs out the last passages taken
    until the real count fits. So the budget holds exactly whatever the tokenizer.
    """

    def __init__(self, max_tokens: int, count_tokens: CountTokens) -> None:
        self.max_tokens = max_tokens
        self.count = count_tokens
        self.zero = count_tokens("")
        self.sep = self.measure("\n\n")
        self.gap = self.measure(_GAP)
        self.newline = self.measure("\n")
        self.docs: dict[str, _Doc] = {}
        self.packed = 0  # documents with at least one passage
        self.total = self.zero  # the block's count, as the running sum
        self.taken: list[tuple[str, list[_Piece]]] = []  # each accepted change, in order

    def measure(self, text: str) -> int:
        return self.count(text) - self.zero

    # -- estimates -------------------------------------------------------------------------
    def piece(self, hit: Hit) -> _Piece:
        piece = _piece(hit)
        piece.tokens = self.measure(piece.text.strip())
        return piece

    def merged_tokens(self, first: _Piece, extra: str) -> int:
        """Count of ``(first.text + extra).strip()`` from ``first.tokens`` and ``extra``."""
        body, tail = first.text.strip(), extra.rstrip()
        if not tail:
            return first.tokens
        if not body:
            return self.measure((first.text + extra).strip())
        trailing = first.text[len(first.text.rstrip()):]
        tail = trailing + tail
        if trailing or tail[0].isspace():
            return first.tokens + self.measure(tail)
        # the join falls inside a word: count that word whole instead of its two halves
        left = body[len(body) - len(_last_word(body)):]
        right = _first_word(tail)
        return (first.tokens + self.measure(tail) + self.measure(left + right)
                - self.measure(left) - self.measure(right))

    def header_tokens(self, doc: _Doc, number: int, pieces: list[_Piece]) -> int:
        return self.measure(_header(doc, number, [p.trimmed()[1] for p in pieces]))

    def doc_tokens(self, doc: _Doc, number: int, pieces: list[_Piece]) -> tuple[int, int]:
        """Tokens of ``doc``'s header and of its whole block with ``pieces``."""
        header = self.header_tokens(doc, number, pieces)
        return header, (header + self.newline + sum(p.tokens for p in pieces)
                        + (len(pieces) - 1) * self.gap)

    # -- packing ---------------------------------------------------------------------------
    def with_piece(self, pieces: list[_Piece], new: _Piece) -> list[_Piece]:
        return _with(pieces, new, self.merged_tokens)

    def try_take(self, doc: _Doc, pieces: list[_Piece]) -> bool:
        """Take ``pieces`` as ``doc``'s passages if the block then fits the budget."""
        later: list[_Doc] = []
        if doc.pieces:
            number = doc.number
            header, tokens = self.doc_tokens(doc, number, pieces)
            delta = tokens - doc.tokens
        else:
            # a document's number is its first hit's place among the packed documents:
            # it may land before documents packed already, which then move down one
            order = list(self.docs.values())
            at = list(self.docs).index(doc.doc_id)
            number = 1 + sum(1 for d in order[:at] if d.pieces)
            later = [d for d in order[at + 1:] if d.pieces]
            header, tokens = self.doc_tokens(doc, number, pieces)
            delta = tokens + (self.sep if self.packed else 0)
            moved = [self.header_tokens(d, d.number + 1, d.pieces) for d in later]
            delta += sum(m - d.header for m, d in zip(moved, later, strict=True))
        if self.total + delta > self.max_tokens:
            return False
        if not doc.pieces:
            self.packed += 1
            for d, m in zip(later, moved, strict=True):
                d.tokens += m - d.header
                d.number, d.header = d.number + 1, m
        doc.pieces, doc.number, doc.header, doc.tokens = pieces, number, header, tokens
        self.total += delta
        self.taken.append((doc.doc_id, pieces))
        return True

    def cut_best(self, doc: _Doc, piece: _Piece, hit: Hit) -> bool:
        """Nothing is packed yet: take as much of ``piece`` as fits, cut at a word boundary
        (binary search on exact counts of this one document's block)."""
        cuts = [i for i, ch in enumerate(piece.text) if ch.isspace() and i > 0]

        def part(cut: int) -> _Piece:
            p = _Piece(piece.text[:cut], piece.start,
                       None if piece.start is None else piece.start + cut, [hit])
            p.tokens = self.measure(p.text.strip())
            return p

        lo, hi, best = 0, len(cuts) - 1, -1
        while lo <= hi:
            mid = (lo + hi) // 2
            trial = _Doc(doc.doc_id, doc.title, doc.source, [part(cuts[mid])])
            if self.count(_render([trial])[0]) <= self.max_tokens:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        if best < 0:
            return False
        final = [part(cuts[best])]
        doc.pieces, doc.number, self.packed = final, 1, 1
        doc.header, doc.tokens = self.doc_tokens(doc, 1, final)
        self.total = self.zero + doc.tokens
        self.taken.append((doc.doc_id, final))
        return True

    def finish(self) -> Context:
        """The block, counted exactly; if the running sum was short (a tokenizer that
        merges across the joins), the longest prefix of the accepted changes that fits."""
        text, citations = _render(list(self.docs.values()))
        used = self.count(text)
        if used > self.max_tokens:
            lo, hi = 0, len(self.taken)  # prefix ``lo`` fits (0: the empty block)
            text, citations, used = "", [], self.zero
            while hi - lo > 1:
                mid = (lo + hi) // 2
                candidate, cites = _render(self._replayed(mid))
                n = self.count(candidate)
                if n <= self.max_tokens:
                    lo, text, citations, used = mid, candidate, cites, n
                else:
                    hi = mid
        if not citations:
            text, used = "", 0
        included = sorted((h for c in citations for h in c.hits), key=lambda h: h.rank)
        return Context(text=text, hits=included, tokens=used, citations=citations)

    def _replayed(self, steps: int) -> list[_Doc]:
        """The documents as they were after the first ``steps`` accepted changes."""
        state = {k: _Doc(d.doc_id, d.title, d.source) for k, d in self.docs.items()}
        for doc_id, pieces in self.taken[:steps]:
            state[doc_id].pieces = pieces
        return list(state.values())


def _last_word(text: str) -> str:
    for i in range(len(text) - 1, -1, -1):
        if text[i].isspace():
            return text[i + 1:]
    return text


def _first_word(text: str) -> str:
    for i, ch in enumerate(text):
        if ch.isspace():
            return text[:i]
    return text


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
    packer = _Packer(max_tokens, count_tokens)
    for hit in hits:
        doc = packer.docs.setdefault(hit.doc_id, _Doc(hit.doc_id, hit.title, hit.source))
        if per_doc_limit is not None and doc.taken >= per_doc_limit:
            continue
        piece = packer.piece(hit)
        if packer.try_take(doc, packer.with_piece(doc.pieces, piece)):
            doc.taken += 1
        elif not packer.packed and packer.cut_best(doc, piece, hit):
            doc.taken += 1  # nothing packed yet: part of the best passage
        # otherwise skip it; later, smaller passages may still fit
    return packer.finish()
