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

import itertools
import re
import warnings
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import InputError
from .models import Chunk, Document

SpanFn = Callable[[str], list[tuple[int, int]]]

# Gap strengths between two consecutive tokens: higher is a better place to cut.
_NONE, _WORD, _SENTENCE, _PARAGRAPH = 0, 1, 2, 3
_PARA_GAP = re.compile(r"\n[^\S\n]*\n")

#: Metadata key a reader may set: character offset where each page starts (PDF). Chunks
#: get ``page_start``/``page_end`` (1-based) instead of the list itself.
PAGE_OFFSETS = "page_offsets"


_WORDISH = re.compile(r"\w")
_FALLBACK_TOKEN = re.compile(r"\w+|[^\w\s]")
_NEWLINE = re.compile(r"\n")
_SENT_PUNCT = re.compile(r"[.!?…;:](?=\s)")
_CJK_PUNCT = re.compile(r"[。！？]")
_WINDOW = 1024  # characters re-tokenized at a time when a tokenizer truncates

IntArray = npt.NDArray[np.int64]


def _clean(spans: Sequence[tuple[int, int]], length: int) -> tuple[IntArray, IntArray]:
    """Starts and ends of usable spans: padding/special ones ((0, 0), empty, out of range,
    out of order) dropped."""
    if len(spans) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    flat = np.fromiter(itertools.chain.from_iterable(spans), dtype=np.int64,
                       count=2 * len(spans))
    arr = flat.reshape(-1, 2)
    s, e = arr[:, 0], arr[:, 1]
    ok = (e > s) & (s >= 0) & (e <= length)
    if ok.all() and bool((s[1:] >= s[:-1]).all()):
        return s, e
    running = np.maximum.accumulate(np.where(ok, s, -1))
    previous = np.concatenate(([-1], running[:-1]))
    keep = ok & (s >= previous)
    return s[keep], e[keep]


def _restart(starts: IntArray, ends: IntArray) -> int:
    """Index of the first token of the last whole word (a cut may have split it)."""
    k = len(starts) - 1
    while k > 0 and ends[k - 1] >= starts[k]:
        k -= 1
    return k


def _token_arrays(text: str, spans: SpanFn, raw: Sequence[tuple[int, int]] | None = None
                  ) -> tuple[IntArray, IntArray]:
    starts, ends = _clean(spans(text) if raw is None else raw, len(text))
    covered = int(ends[-1]) if len(ends) else 0
    if not len(starts) or not _WORDISH.search(text, covered):
        if len(starts) or not _WORDISH.search(text):
            return starts, ends
        fb = [m.span() for m in _FALLBACK_TOKEN.finditer(text)]
        return _clean(fb, len(text))
    warnings.warn("the tokenizer stopped before the end of the text (truncation on?); "
                  "chunking re-tokenizes the rest in windows. Encoders should return every "
                  "token from token_spans.", RuntimeWarning, stacklevel=4)
    k = _restart(starts, ends)
    pos = int(starts[k])
    parts_s, parts_e = [starts[:k]], [ends[:k]]
    while pos < len(text):
        end = min(len(text), pos + _WINDOW)
        ps, pe = _clean(spans(text[pos:end]), end - pos)
        if not len(ps):
            fb = [m.span() for m in _FALLBACK_TOKEN.finditer(text, pos)]
            fs, fe = _clean(fb, len(text))
            parts_s.append(fs)
            parts_e.append(fe)
            break
        ps, pe = ps + pos, pe + pos
        if end >= len(text) and not _WORDISH.search(text, int(pe[-1])):
            parts_s.append(ps)
            parts_e.append(pe)
            break
        k = _restart(ps, pe)
        if k == 0:  # one giant word: take what we got and move on
            parts_s.append(ps)
            parts_e.append(pe)
            pos = int(pe[-1])
        else:
            parts_s.append(ps[:k])
            parts_e.append(pe[:k])
            pos = int(ps[k])
    return np.concatenate(parts_s), np.concatenate(parts_e)


def all_token_spans(text: str, spans: SpanFn) -> list[tuple[int, int]]:
    """Every token of ``text``, even when ``spans`` truncates (a tokenizer with
    ``truncation`` switched on stops at its max length).

    A truncating tokenizer is detected by words left after its last token; the rest of
    the text is then tokenized window by window, so counts stay the tokenizer's own and
    nothing is silently dropped.
    """
    starts, ends = _token_arrays(text, spans)
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


def _strengths(text: str, starts: IntArray, ends: IntArray) -> npt.NDArray[np.int8]:
    """``strength[k]``: how good a cut just before token ``k`` is (vectorised)."""
    n = len(starts)
    strength = np.zeros(n, dtype=np.int8)
    if n < 2:
        return strength
    strength[1:] = np.where(starts[1:] > ends[:-1], _WORD, _NONE)

    def mark(pattern: re.Pattern[str], level: int, gap_from_start: bool) -> None:
        found = [(m.start() if gap_from_start else m.end(), m.end())
                 for m in pattern.finditer(text)]
        if not found:
            return
        pos = np.asarray(found, dtype=np.int64)
        k = np.searchsorted(starts, pos[:, 1], side="left")
        valid = (k > 0) & (k < n)
        k, before = k[valid], pos[valid, 0]
        k = k[ends[k - 1] <= before]  # the previous token ends before the boundary
        strength[k] = np.maximum(strength[k], level)

    mark(_NEWLINE, _SENTENCE, True)
    mark(_SENT_PUNCT, _SENTENCE, False)
    mark(_CJK_PUNCT, _SENTENCE, False)
    mark(_PARA_GAP, _PARAGRAPH, True)
    return strength


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
        raise InputError(f"max_tokens must be >= 1, got {max_tokens}")
    text = doc.text
    raw = spans(text)
    if len(raw) <= max_tokens and (not raw or not _WORDISH.search(text, max(raw[-1]))):
        n = 0  # short, and the tokenizer reached the end: one chunk, no arrays needed
    else:
        starts_arr, ends_arr = _token_arrays(text, spans, raw)
        n = len(starts_arr)
    if n <= max_tokens:
        whole = Chunk.whole(doc)
        if PAGE_OFFSETS in doc.metadata:
            whole = whole.model_copy(update={
                "metadata": _chunk_metadata(doc.metadata, 0, len(text))})
        return [whole]
    overlap = max(0, min(overlap, max_tokens // 2))
    strength = _strengths(text, starts_arr, ends_arr)
    starts = starts_arr.tolist()
    title = doc.metadata.get("title")
    chunks: list[Chunk] = []
    i = 0
    start_char = 0
    while True:
        j = min(i + max_tokens, n)
        if j >= n:
            cut, natural = n, True
        else:
            floor = i + max(1, max_tokens // 2)
            window = strength[floor:j + 1]
            best = int(window.max())
            # the latest position with the best strength in the window's second half
            cut = floor + len(window) - 1 - int(np.argmax(window[::-1] == best))
            natural = best >= _SENTENCE
        end_char = starts[cut] if cut < n else len(text)
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
        start_char = starts[i]
    return chunks
