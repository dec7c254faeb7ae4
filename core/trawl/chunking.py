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

#: Metadata key a reader may set: the document's sections, ``[{"start": int, "end": int,
#: "labels": {...}}, ...]`` with character offsets into the text. A section inside another
#: (a method in a class, a subsection) is its child. Chunks stay inside one section where
#: they fit and carry its ``labels``; a section without labels is only a place to split
#: (an inner block of a long function) and belongs to its parent.
SECTIONS = "sections"
#: Metadata key a reader may set to ``True``: chunks get ``line_start``/``line_end``
#: (1-based lines of the text, for source code and other line-oriented files).
LINE_NUMBERS = "line_numbers"
#: Metadata key a reader may set to ``True``: a long section is cut at line ends only,
#: never after a sentence's full stop inside a line (source code).
CUT_AT_LINES = "cut_at_lines"
#: Metadata key a reader may set: numbered positions, ``{"row": [[offset, number], ...]}``
#: in text order. A chunk gets ``row_start``/``row_end``: the numbers of the last marks at
#: or before its first and last characters (spreadsheet rows, notebook cells).
MARKS = "marks"
#: Label (chunk metadata) key: text encoders see before the chunk's text (file path and
#: symbol, document title and heading path). Stored apart, never part of ``chunk.text``.
CONTEXT = "context"
#: Label key a reader may set next to ``context``: the header for the chunk that starts
#: the section, whose text already begins with the section's own heading (so the
#: heading is not said twice); empty means no header there.
CONTEXT_HEAD = "context_head"
#: Keys chunking derives per chunk (page, line and mark ranges, the header): they describe
#: one chunk, not its document, and cannot be updated by hand. Section labels (``section``,
#: ``symbol``, ``slide``...) are not listed: a user's own metadata may use those names.
DERIVED_KEYS = ("page_start", "page_end", "line_start", "line_end", "row_start", "row_end",
                "cell_start", "cell_end", CONTEXT, "heading_level")
_READER_ONLY = (PAGE_OFFSETS, SECTIONS, LINE_NUMBERS, MARKS, CUT_AT_LINES)


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


def _strengths(text: str, starts: IntArray, ends: IntArray, lines_only: bool = False
               ) -> npt.NDArray[np.int8]:
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
    if not lines_only:
        mark(_SENT_PUNCT, _SENTENCE, False)
        mark(_CJK_PUNCT, _SENTENCE, False)
    mark(_PARA_GAP, _PARAGRAPH, True)
    return strength


def _chunk_metadata(meta: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    if not any(k in meta for k in _READER_ONLY):
        return dict(meta)
    out = {k: v for k, v in meta.items() if k not in _READER_ONLY}
    marks = meta.get(MARKS)
    if isinstance(marks, dict):
        for name, points in marks.items():
            _mark_range(out, str(name), points, start, end)
    offsets = meta.get(PAGE_OFFSETS)
    if not offsets:
        return out
    try:
        pages = [int(o) for o in offsets]
    except (TypeError, ValueError):
        return out
    out["page_start"] = max(1, bisect_right(pages, start))
    out["page_end"] = max(out["page_start"], bisect_right(pages, max(start, end - 1)))
    return out


def _mark_range(out: dict[str, Any], name: str, points: Any, start: int, end: int) -> None:
    try:
        offsets = [int(p[0]) for p in points]
        numbers = [p[1] for p in points]
    except (TypeError, ValueError, IndexError, KeyError):
        return
    first = bisect_right(offsets, start) - 1
    last = bisect_right(offsets, max(start, end - 1)) - 1
    if last < 0:
        return
    out[f"{name}_start"] = numbers[max(first, 0)]
    out[f"{name}_end"] = numbers[last]


def _whole(doc: Document) -> Chunk:
    whole = Chunk.whole(doc)
    if any(k in doc.metadata for k in _READER_ONLY):
        text = doc.text
        whole = whole.model_copy(update={
            "metadata": _with_lines(doc.metadata, _chunk_metadata(doc.metadata, 0, len(text)),
                                    text, 0, len(text))})
    return whole


#: ``segmented`` hands a tokenizer at most about this many characters per call
SEGMENT_CHARS = 50_000


def segmented(spans: SpanFn) -> SpanFn:
    """``spans`` over a long text in segments of about ``SEGMENT_CHARS`` cut at whitespace,
    offsets shifted back: a native tokenizer holds the GIL for the whole call (1 MB: ~2 s),
    which stalled every thread of a server, searches included, while a large document was
    chunked. Between segments other threads run. Tokenizers that split at whitespace first
    (WordPiece, words) give the same spans; others may differ only at a segment's edge."""

    def by_segments(text: str) -> list[tuple[int, int]]:
        if len(text) <= SEGMENT_CHARS:
            return list(spans(text))
        out: list[tuple[int, int]] = []
        start = 0
        while start < len(text):
            stop = min(start + SEGMENT_CHARS, len(text))
            if stop < len(text):
                space = _last_space(text, start, stop)
                stop = space if space > start else stop
            out += [(a + start, b + start) for a, b in spans(text[start:stop])]
            start = stop
        return out

    return by_segments


def _last_space(text: str, start: int, stop: int) -> int:
    """The last whitespace position in ``text[start:stop]`` (``-1``: none)."""
    for i in range(stop - 1, max(start, stop - 2_000) - 1, -1):
        if text[i].isspace():
            return i
    return -1


def chunk_document(doc: Document, spans: SpanFn, max_tokens: int, overlap: int = 32, *,
                   count: Callable[[str], int] | None = None) -> list[Chunk]:
    """Split a document into chunks of at most ``max_tokens`` tokens by the encoder's tokenizer.

    A chunk ends at the last paragraph break in the second half of its window, else the
    last sentence end or line break, else the last word break, else at the window edge.
    When the cut is not at a sentence or paragraph boundary the next chunk starts
    ``overlap`` tokens earlier, so a sentence cut in two is seen whole by one of the
    chunks' neighbours. Offsets are character offsets into ``doc.text``. ``count``: the
    exact token count of ``spans`` computed more cheaply (no offsets); a text within
    ``max_tokens`` is then one chunk without listing its spans.
    """
    if max_tokens < 1:
        raise InputError(f"max_tokens must be >= 1, got {max_tokens}")
    text = doc.text
    sections = _sections(doc.metadata.get(SECTIONS), len(text))
    if sections:
        return _chunk_sections(doc, spans, max_tokens, overlap, sections)
    if count is not None and count(text) <= max_tokens:
        return [_whole(doc)]
    raw = spans(text)
    if len(raw) <= max_tokens and (not raw or not _WORDISH.search(text, max(raw[-1]))):
        n = 0  # short, and the tokenizer reached the end: one chunk, no arrays needed
    else:
        starts_arr, ends_arr = _token_arrays(text, spans, raw)
        n = len(starts_arr)
    if n <= max_tokens:
        return [_whole(doc)]
    strength = _strengths(text, starts_arr, ends_arr, doc.metadata.get(CUT_AT_LINES) is True)
    starts = starts_arr.tolist()
    pieces = _windows(starts, strength, 0, n, 0, len(text), max_tokens, overlap)
    return _make_chunks(doc, [(a, b, {}) for a, b in pieces])


def _windows(starts: list[int], strength: npt.NDArray[np.int8], first: int, stop: int,
             start_char: int, end_char: int, max_tokens: int, overlap: int
             ) -> list[tuple[int, int]]:
    """Character spans covering ``[start_char, end_char)`` whose tokens are
    ``first..stop-1``, each of at most ``max_tokens`` tokens, cut at the best boundary."""
    overlap = max(0, min(overlap, max_tokens // 2))
    out: list[tuple[int, int]] = []
    i = first
    while True:
        j = min(i + max_tokens, stop)
        if j >= stop:
            cut, natural = stop, True
        else:
            floor = i + max(1, max_tokens // 2)
            window = strength[floor:j + 1]
            best = int(window.max())
            # the latest position with the best strength in the window's second half
            cut = floor + len(window) - 1 - int(np.argmax(window[::-1] == best))
            natural = best >= _SENTENCE
        cut_char = starts[cut] if cut < stop else end_char
        out.append((start_char, cut_char))
        if cut >= stop:
            return out
        i = cut if natural or not overlap else max(cut - overlap, i + 1)
        start_char = starts[i]


def _with_lines(doc_meta: dict[str, Any], meta: dict[str, Any], text: str, start: int,
                end: int) -> dict[str, Any]:
    if doc_meta.get(LINE_NUMBERS) is True:
        # the first and last lines with text (blank lines a chunk carries do not count)
        body = text[start:end]
        first = start + len(body) - len(body.lstrip())
        last = start + len(body.rstrip())
        if last <= first:
            first, last = start, end
        meta["line_start"] = text.count("\n", 0, first) + 1
        meta["line_end"] = meta["line_start"] + text.count("\n", first, max(first, last - 1))
    return meta


def _make_chunks(doc: Document, pieces: Sequence[tuple[int, int, dict[str, Any]]]
                 ) -> list[Chunk]:
    text = doc.text
    title = doc.metadata.get("title")
    chunks: list[Chunk] = []
    for index, (a, b, labels) in enumerate(pieces):
        meta = _chunk_metadata(doc.metadata, a, b)
        meta.update(labels)
        if title:
            meta["title"] = title
        chunks.append(Chunk(id=f"{doc.id}#{index}", doc_id=doc.id, text=text[a:b],
                            index=index, start=a, end=b,
                            metadata=_with_lines(doc.metadata, meta, text, a, b)))
    return chunks


# -- sections ----------------------------------------------------------------------------
class _Node:
    __slots__ = ("children", "end", "labels", "start")

    def __init__(self, start: int, end: int, labels: dict[str, Any] | None) -> None:
        self.start, self.end, self.labels = start, end, labels
        self.children: list[_Node] = []


def _has_labels(nodes: list[_Node]) -> bool:
    """Whether any of ``nodes`` or their descendants is a labelled section."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        if node.labels is not None:
            return True
        todo.extend(node.children)
    return False


def _sections(raw: Any, length: int) -> list[_Node]:
    """Valid sections as a forest: in range, non-empty, properly nested (a section that
    crosses its neighbour's edge is dropped, so a reader's mistake costs only that split)."""
    if not isinstance(raw, list) or not raw:
        return []
    nodes: list[_Node] = []
    for item in raw:
        if not isinstance(item, dict):
            continue
        a, b, labels = item.get("start"), item.get("end"), item.get("labels")
        if not isinstance(a, int) or not isinstance(b, int) or not 0 <= a < b <= length:
            continue
        nodes.append(_Node(a, b, dict(labels) if isinstance(labels, dict) and labels
                           else None))
    nodes.sort(key=lambda nd: (nd.start, -nd.end))
    roots: list[_Node] = []
    stack: list[_Node] = []
    for node in nodes:
        while stack and node.start >= stack[-1].end:
            stack.pop()
        if stack and node.end > stack[-1].end:
            continue  # crosses its parent's end
        (stack[-1].children if stack else roots).append(node)
        stack.append(node)
    return roots


def _chunk_sections(doc: Document, spans: SpanFn, max_tokens: int, overlap: int,
                    sections: list[_Node]) -> list[Chunk]:
    """Chunks along the sections: a labelled section never shares a chunk with another
    one; a section too long for one chunk splits at its unlabelled children (inner
    blocks), whose neighbours merge back while they fit, else at the usual boundaries.
    The ``context`` label's tokens count against the chunk's budget."""
    text = doc.text
    starts_arr, ends_arr = _token_arrays(text, spans)
    strength = _strengths(text, starts_arr, ends_arr, doc.metadata.get(CUT_AT_LINES) is True)
    starts = starts_arr.tolist()
    header_cost: dict[str, int] = {}

    def tokens(a: int, b: int) -> tuple[int, int]:
        lo, hi = np.searchsorted(starts_arr, [a, b], side="left")
        return int(lo), int(hi)

    def budget(labels: dict[str, Any]) -> int:
        header = labels.get(CONTEXT)
        if not isinstance(header, str) or not header:
            return max_tokens
        if header not in header_cost:
            header_cost[header] = len(spans(header)) + 1
        return max(max(1, max_tokens // 4), max_tokens - header_cost[header])

    pieces: list[tuple[int, int, dict[str, Any]]] = []

    def leaf(a: int, b: int, labels: dict[str, Any]) -> None:
        lo, hi = tokens(a, b)
        limit = budget(labels)
        if hi - lo <= limit:
            pieces.append((a, b, labels))
            return
        for x, y in _windows(starts, strength, lo, hi, a, b, limit, overlap):
            pieces.append((x, y, labels))

    def place(node: _Node, labels: dict[str, Any]) -> None:
        lo, hi = tokens(node.start, node.end)
        labelled = _has_labels(node.children)
        if not node.children or (not labelled and hi - lo <= budget(labels)):
            leaf(node.start, node.end, labels)
            return
        pos = node.start
        for child in node.children:
            if child.start > pos:
                leaf(pos, child.start, labels)
            place(child, labels if child.labels is None else child.labels)
            pos = child.end
        if pos < node.end:
            leaf(pos, node.end, labels)

    root = _Node(0, len(text), None)
    root.children = sections
    place(root, {})
    return _make_chunks(doc, _headed(_merge(pieces, text, tokens, budget), text, sections))


def _headed(pieces: list[tuple[int, int, dict[str, Any]]], text: str, sections: list[_Node]
            ) -> list[tuple[int, int, dict[str, Any]]]:
    """``context_head`` replaces ``context`` on the piece that opens its section."""
    opens: set[int] = set()
    todo = list(sections)
    while todo:
        node = todo.pop()
        todo.extend(node.children)
        if node.labels is not None and CONTEXT_HEAD in node.labels:
            opens.add(node.start)
    out = []
    for a, b, labels in pieces:
        if CONTEXT_HEAD in labels:
            labels = dict(labels)
            head = labels.pop(CONTEXT_HEAD)
            first = a + len(text[a:b]) - len(text[a:b].lstrip())
            if a in opens or first in opens:
                if head:
                    labels[CONTEXT] = head
                else:
                    labels.pop(CONTEXT, None)
        out.append((a, b, labels))
    return out


def _merge(pieces: list[tuple[int, int, dict[str, Any]]], text: str,
           tokens: Callable[[int, int], tuple[int, int]],
           budget: Callable[[dict[str, Any]], int]) -> list[tuple[int, int, dict[str, Any]]]:
    """Whitespace-only pieces join the piece before them (the first joins the next), so a
    chunk starts where its section does; neighbours with the same labels join while they
    fit one chunk."""
    out: list[tuple[int, int, dict[str, Any]]] = []
    carry: int | None = None
    for a, b, labels in pieces:
        if not text[a:b].strip():
            if out and out[-1][1] >= a:
                pa, _, plabels = out[-1]
                out[-1] = (pa, b, plabels)
            elif carry is None:
                carry = a
            continue
        if carry is not None:
            a, carry = carry, None
        if out and out[-1][1] == a:
            # leading blank lines and indentation: the piece starts at its first line
            body = text[a:b]
            newline = body.rfind("\n", 0, len(body) - len(body.lstrip()))
            if newline >= 0:
                out[-1] = (out[-1][0], a + newline + 1, out[-1][2])
                a += newline + 1
        if out:
            pa, pb, plabels = out[-1]
            if plabels == labels and pb >= a:
                lo, hi = tokens(pa, b)
                if hi - lo <= budget(labels):
                    out[-1] = (pa, b, labels)
                    continue
        out.append((a, b, labels))
    if carry is not None:
        out.append((carry, len(text), {}))
    return out
