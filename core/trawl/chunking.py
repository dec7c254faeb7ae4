"""Token-aware chunking: chunks fit the encoder's window and end on natural boundaries.

Long inputs are split, never silently truncated (LongEmbed; Length-Induced Embedding
Collapse). Boundaries are preferred in this order: paragraph, sentence (or line), word,
token.

Invariants (tested): chunk ``k`` is ``doc.text[start:end]``; the first chunk starts at 0,
the last ends at ``len(text)``, and each chunk starts at or before the previous one's end,
so the chunks cover every character of the text, including characters the tokenizer
drops (control characters, unknown symbols). Each chunk holds at most ``max_tokens``
tokens of the tokenizer that measured it.
"""

from __future__ import annotations

import re
import warnings
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

from .models import Chunk, Document

SpanFn = Callable[[str], list[tuple[int, int]]]

# Gap strengths between two consecutive tokens: higher is a better place to cut.
_NONE, _WORD, _SENTENCE, _PARAGRAPH = 0, 1, 2, 3
_PARA_GAP = re.compile(r"\n[^\S\n]*\n")
_SENT_END = frozenset(".!?。！？…;:")
_CJK_SENT_END = frozenset("。！？")

#: Metadata key a reader may set: character offset where each page starts (PDF). Chunks
#: get ``page_start``/``page_end`` (1-based) instead of the list itself.
PAGE_OFFSETS = "page_offsets"


_WORDISH = re.compile(r"\w")
_FALLBACK_TOKEN = re.compile(r"\w+|[^\w\s]")
_WINDOW = 1024  # characters re-tokenized at a time when a tokenizer truncates


def _clean(spans: list[tuple[int, int]], length: int, shift: int = 0) -> list[tuple[int, int]]:
    """Drop padding/special spans ((0, 0), empty, out of order) and shift into place."""
    out: list[tuple[int, int]] = []
    last = -1
    for s, e in spans:
        if e <= s or s < last or e > length:
            continue
        out.append((s + shift, e + shift))
        last = s
    return out


def all_token_spans(text: str, spans: SpanFn) -> list[tuple[int, int]]:
    """Every token of ``text``, even when ``spans`` truncates (a tokenizer with
    ``truncation`` switched on stops at its max length).

    A truncating tokenizer is detected by words left after its last token; the rest of
    the text is then tokenized window by window, so counts stay the tokenizer's own and
    nothing is silently dropped.
    """
    tokens = _clean(spans(text), len(text))
    covered = tokens[-1][1] if tokens else 0
    if not _WORDISH.search(text, covered) or not tokens:
        return tokens if tokens or not _WORDISH.search(text) else [
            m.span() for m in _FALLBACK_TOKEN.finditer(text)]
    warnings.warn("the tokenizer stopped before the end of the text (truncation on?); "
                  "chunking re-tokenizes the rest in windows. Encoders should return every "
                  "token from token_spans.", RuntimeWarning, stacklevel=3)

    def restart(toks: list[tuple[int, int]]) -> int:
        # back up to the start of the last whole word: it may have been cut
        k = len(toks) - 1
        while k > 0 and toks[k - 1][1] >= toks[k][0]:
            k -= 1
        return k

    k = restart(tokens)
    pos = tokens[k][0]
    out = tokens[:k]
    while pos < len(text):
        end = min(len(text), pos + _WINDOW)
        piece = _clean(spans(text[pos:end]), end - pos, pos)
        if not piece:
            out += [(pos + m.start(), pos + m.end())
                    for m in _FALLBACK_TOKEN.finditer(text[pos:])]
            break
        if end >= len(text) and not _WORDISH.search(text, piece[-1][1]):
            out += piece
            break
        k = restart(piece)
        if k == 0:  # one giant word: take what we got and move on
            out += piece
            pos = piece[-1][1]
        else:
            out += piece[:k]
            pos = piece[k][0]
    return out


def _gap_strength(text: str, prev_end: int, next_start: int) -> int:
    gap = text[prev_end:next_start]
    if not gap:
        # CJK text has no spaces: a full stop is still a sentence end.
        return _SENTENCE if prev_end and text[prev_end - 1] in _CJK_SENT_END else _NONE
    if gap.isspace() or not gap.strip():
        if _PARA_GAP.search(gap):
            return _PARAGRAPH
        if "\n" in gap or (prev_end and text[prev_end - 1] in _SENT_END):
            return _SENTENCE
        return _WORD
    # The tokenizer dropped something (control chars, odd symbols): a word break at most.
    return _WORD if any(c.isspace() for c in gap) else _NONE


def _chunk_metadata(meta: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    offsets = meta.get(PAGE_OFFSETS)
    if not offsets:
        return dict(meta)
    out = {k: v for k, v in meta.items() if k != PAGE_OFFSETS}
    try:
        pages = [int(o) for o in offsets]
    except (TypeError, ValueError):
        return out
    out["page_start"] = max(1, bisect_right(pages, start))
    out["page_end"] = max(out["page_start"], bisect_right(pages, max(start, end - 1)))
    return out


def chunk_document(doc: Document, spans: SpanFn, max_tokens: int, overlap: int = 32) -> list[Chunk]:
    """Split a document into chunks of at most ``max_tokens`` tokens by the encoder's tokenizer.

    A chunk ends at the last paragraph break in the second half of its window, else the
    last sentence end or line break, else the last word break, else at the window edge.
    When the cut is not at a sentence or paragraph boundary the next chunk starts
    ``overlap`` tokens earlier, so a sentence cut in two is seen whole by one of the
    chunks' neighbours. Offsets are character offsets into ``doc.text``.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    text = doc.text
    tokens = all_token_spans(text, spans)
    n = len(tokens)
    if n <= max_tokens:
        whole = Chunk.whole(doc)
        if PAGE_OFFSETS in doc.metadata:
            whole = whole.model_copy(update={
                "metadata": _chunk_metadata(doc.metadata, 0, len(text))})
        return [whole]
    overlap = max(0, min(overlap, max_tokens // 2))
    # strength[k]: how good a cut is just before token k (1 <= k < n)
    strength = [_NONE] * n
    for k in range(1, n):
        strength[k] = _gap_strength(text, tokens[k - 1][1], tokens[k][0])
    title = doc.metadata.get("title")
    chunks: list[Chunk] = []
    i = 0
    start_char = 0
    while True:
        j = min(i + max_tokens, n)
        if j >= n:
            cut, natural = n, True
        else:
            cut, best = j, _NONE
            floor = i + max(1, max_tokens // 2)
            for k in range(j, floor - 1, -1):
                s = strength[k]
                if s > best:
                    cut, best = k, s
                    if s == _PARAGRAPH:
                        break
            natural = best >= _SENTENCE
        end_char = tokens[cut][0] if cut < n else len(text)
        meta = _chunk_metadata(doc.metadata, start_char, end_char)
        if title:
            meta["title"] = title
        index = len(chunks)
        chunks.append(Chunk(id=f"{doc.id}#{index}", doc_id=doc.id,
                            text=text[start_char:end_char], index=index, start=start_char,
                            end=end_char, metadata=meta))
        if cut >= n:
            break
        i = cut if natural or not overlap else max(cut - overlap, i + 1)
        start_char = tokens[i][0]
    return chunks
