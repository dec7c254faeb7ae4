"""``tfidf``: a lexical index scoring chunks by TF-IDF cosine similarity.

Weights are ``(1 + log tf) * idf`` with ``idf = log((1 + N) / (1 + df)) + 1`` (smoothed,
as scikit-learn does), over lowercase word tokens. The index keeps postings in memory,
applies filters while scoring (so ``top_k`` is filled whenever enough chunks match), and
persists itself as one JSON file written atomically.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from trawl import (
    Chunk,
    ComponentConfig,
    ComponentContext,
    Hit,
    Index,
    IndexCorruptError,
    IndexQuery,
    InputError,
    make_hit,
)
from trawl.filters import Filter, matches
from trawl.storage import atomic_write_json

_WORD = re.compile(r"\w+")
FORMAT = 1


class TfidfConfig(ComponentConfig):
    lowercase: bool = Field(True, description="fold case before matching")
    min_token_chars: int = Field(1, ge=1, le=20, description="ignore shorter tokens")


class TfidfIndex(Index):
    input = "text"
    Config = TfidfConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        self._lock = threading.RLock()
        self._chunks: dict[str, Chunk] = {}
        self._tf: dict[str, Counter[str]] = {}
        self._df: Counter[str] = Counter()
        self._postings: dict[str, set[str]] = {}
        self._norms: dict[str, float] = {}
        self._load()

    # -- text ------------------------------------------------------------------------
    def tokens(self, text: str) -> list[str]:
        cfg = self.config
        assert isinstance(cfg, TfidfConfig)
        words = _WORD.findall(text.lower() if cfg.lowercase else text)
        return [w for w in words if len(w) >= cfg.min_token_chars]

    def _idf(self, term: str) -> float:
        return math.log((1 + len(self._chunks)) / (1 + self._df.get(term, 0))) + 1.0

    def _norm(self, chunk_id: str) -> float:
        norm = self._norms.get(chunk_id)
        if norm is None:
            norm = math.sqrt(sum(((1 + math.log(tf)) * self._idf(t)) ** 2
                                 for t, tf in self._tf[chunk_id].items())) or 1.0
            self._norms[chunk_id] = norm
        return norm

    # -- persistence -------------------------------------------------------------------
    def _file(self) -> Path | None:
        d = self.context.storage_dir
        return None if d is None else d / "tfidf.json"

    def _load(self) -> None:
        path = self._file()
        if path is None or not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {FORMAT}")
            chunks = [Chunk.model_validate(c) for c in data["chunks"]]
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"tfidf index {path} is unreadable ({exc}); "
                                    "delete the folder and re-index") from exc
        self._add(chunks)

    def _save(self) -> None:
        path = self._file()
        if path is None:
            return
        # trawl's storage helper: temp file + fsync + rename, folder 0700 and file 0600
        atomic_write_json(path, {"format": FORMAT,
                                 "chunks": [c.model_dump() for c in self._chunks.values()]})

    # -- the Index contract ------------------------------------------------------------
    def _remove(self, chunk_id: str) -> None:
        self._chunks.pop(chunk_id)
        for term in self._tf.pop(chunk_id):
            self._df[term] -= 1
            if self._df[term] <= 0:
                del self._df[term]
            posting = self._postings.get(term)
            if posting is not None:
                posting.discard(chunk_id)
                if not posting:
                    del self._postings[term]

    def _add(self, chunks: Sequence[Chunk]) -> None:
        for chunk in chunks:
            if chunk.id in self._chunks:
                self._remove(chunk.id)
            tf = Counter(self.tokens(chunk.text))
            self._chunks[chunk.id] = chunk
            self._tf[chunk.id] = tf
            for term in tf:
                self._df[term] += 1
                self._postings.setdefault(term, set()).add(chunk.id)
        self._norms.clear()  # N and df changed: every norm may have

    def upsert(self, chunks: Sequence[Chunk], vectors: Any = None) -> int:
        if not chunks:
            return 0
        with self._lock:
            self._add(chunks)
            self._save()
        return len(chunks)

    def delete(self, doc_ids: Sequence[str]) -> int:
        gone = set(doc_ids)
        with self._lock:
            doomed = [cid for cid, c in self._chunks.items() if c.doc_id in gone]
            for cid in doomed:
                self._remove(cid)
            if doomed:
                self._norms.clear()
                self._save()
        return len(doomed)

    def search(self, query: IndexQuery, top_k: int, filters: Filter | None = None) -> list[Hit]:
        if top_k <= 0:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        q_tf = Counter(self.tokens(query.text))
        with self._lock:
            weights = {t: (1 + math.log(n)) * self._idf(t) for t, n in q_tf.items()
                       if t in self._postings}
            if not weights:
                return []
            q_norm = math.sqrt(sum(w * w for w in weights.values()))
            scores: dict[str, float] = {}
            for term, wq in weights.items():
                idf = self._idf(term)
                for cid in self._postings[term]:
                    wd = (1 + math.log(self._tf[cid][term])) * idf
                    scores[cid] = scores.get(cid, 0.0) + wq * wd
            ranked = []
            for cid, dot in scores.items():
                chunk = self._chunks[cid]
                if filters is not None and not matches(filters, chunk.metadata):
                    continue
                ranked.append((dot / (q_norm * self._norm(cid)), cid))
            ranked.sort(key=lambda x: (-x[0], x[1]))
            best = [(self._chunks[cid], score) for score, cid in ranked[:top_k]]
        return [make_hit(c, s, rank, self.name) for rank, (c, s) in enumerate(best, start=1)]

    def count(self) -> int:
        with self._lock:
            return len(self._chunks)

    def doc_ids(self) -> set[str]:
        with self._lock:
            return {c.doc_id for c in self._chunks.values()}

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        with self._lock:
            return [self._chunks.get(c) for c in chunk_ids]
