"""Token-aware chunking: chunks fit the encoder's window and end on natural boundaries.

Long inputs are split, never silently truncated (LongEmbed; Length-Induced Embedding
Collapse). Boundaries are preferred in this order: paragraph, sentence, token.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .models import Chunk, Document

SpanFn = Callable[[str], list[tuple[int, int]]]
_PARA = re.compile(r"\n\s*\n")
_SENT = re.compile(r"(?<=[.!?。！？])\s+")


def _boundaries(text: str) -> tuple[set[int], set[int]]:
    paras = {m.end() for m in _PARA.finditer(text)}
    sents = {m.end() for m in _SENT.finditer(text)} | {m.start() for m in _SENT.finditer(text)}
    return paras, sents


def chunk_document(doc: Document, spans: SpanFn, max_tokens: int, overlap: int = 32) -> list[Chunk]:
    """Split a document into chunks of at most ``max_tokens`` tokens by the encoder's tokenizer.

    A chunk ends at the last paragraph break inside its window, else the last sentence
    end, else at the window edge; the next chunk starts ``overlap`` tokens earlier when the
    cut was mid-sentence. Offsets are character offsets into ``doc.text``.
    """
    text = doc.text
    tokens = spans(text)
    title = doc.metadata.get("title")
    if len(tokens) <= max_tokens:
        return [Chunk.whole(doc)]
    overlap = min(overlap, max_tokens // 2)
    paras, sents = _boundaries(text)
    chunks: list[Chunk] = []
    i = 0
    while i < len(tokens):
        j = min(i + max_tokens, len(tokens))
        cut = j
        natural = False
        if j < len(tokens):
            floor = i + max(1, max_tokens // 2)
            for pool in (paras, sents):
                for k in range(j - 1, floor - 1, -1):
                    gap_start, gap_end = tokens[k - 1][1], tokens[k][0]
                    if any(gap_start <= b <= gap_end for b in pool if gap_start <= b <= gap_end):
                        cut, natural = k, True
                        break
                if natural:
                    break
        start_char = tokens[i][0] if i > 0 else 0
        end_char = tokens[cut - 1][1] if cut < len(tokens) else len(text)
        index = len(chunks)
        meta = dict(doc.metadata)
        if title:
            meta["title"] = title
        chunks.append(Chunk(id=f"{doc.id}#{index}", doc_id=doc.id, text=text[start_char:end_char],
                            index=index, start=start_char, end=end_char, metadata=meta))
        if cut >= len(tokens):
            break
        i = cut if natural else max(cut - overlap, i + 1)
    return chunks
