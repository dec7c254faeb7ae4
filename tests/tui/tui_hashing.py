"""A small, real trawl plugin for TUI tests and the latency benchmark.

Two hashing encoders (word bag-of-words and character trigrams: deterministic, no model
files, ~microseconds per text), an ``exact`` index variant that notices its folder was
deleted, and a term-overlap reranker, so the TUI can be driven against a real hybrid
pipeline without the ONNX/BM25 plugins.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import Field

import trawl
from trawl.builtin import ExactIndex
from trawl.components import ComponentConfig, IndexQuery
from trawl.errors import IndexCorruptError
from trawl.filters import Filter
from trawl.models import Hit, SourceScore

_WORD = re.compile(r"\w+")


class HashConfig(ComponentConfig):
    dim: int = Field(512, ge=8, description="vector width (hash buckets)")
    max_tokens: int = Field(64, ge=8, description="window the chunker keeps chunks under")


class WordHashEncoder(trawl.Encoder):
    """Bag of lowercase words hashed into ``dim`` buckets (crc32: stable across runs)."""

    Config = HashConfig

    @property
    def dim(self) -> int:
        return int(self.config.dim)  # type: ignore[attr-defined]

    @property
    def max_length(self) -> int:
        return int(self.config.max_tokens)  # type: ignore[attr-defined]

    def features(self, text: str) -> list[str]:
        return [w.lower() for w in _WORD.findall(text)]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for feat in self.features(text):
                out[i, zlib.crc32(feat.encode()) % self.dim] += 1.0
        return out

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Any:
        return self._encode(texts)

    def encode_queries(self, texts: Sequence[str]) -> Any:
        return self._encode(texts)


class TrigramHashEncoder(WordHashEncoder):
    """Character trigrams of each word: matches half-typed words, like a dense model would."""

    def features(self, text: str) -> list[str]:
        feats = []
        for w in super().features(text):
            padded = f"^{w}$"
            feats.extend(padded[i:i + 3] for i in range(max(1, len(padded) - 2)))
        return feats


class DiskCheckedIndex(ExactIndex):
    """``exact``, but a search fails the way a disk-backed index does once its folder is gone."""

    def search(self, query: IndexQuery, top_k: int, filters: Filter | None = None) -> list[Hit]:
        folder = self.context.storage_dir
        if folder is not None and not folder.exists():
            raise IndexCorruptError(f"index {self.name!r}: folder {folder} is missing; "
                                    "re-open or re-index")
        return super().search(query, top_k, filters)


class OverlapReranker(trawl.Reranker):
    """Scores a hit by how many distinct query words its text contains."""

    def rerank(self, query: str, hits: Sequence[Hit], top_k: int | None = None) -> list[Hit]:
        words = {w.lower() for w in _WORD.findall(query)}
        scored = []
        for h in hits:
            text_words = {w.lower() for w in _WORD.findall(h.text)}
            scored.append((len(words & text_words) + h.score * 1e-3, h))
        scored.sort(key=lambda x: (-x[0], x[1].chunk_id))
        out = []
        for rank, (score, h) in enumerate(scored[:top_k or len(scored)], start=1):
            out.append(h.model_copy(update={"score": score, "rank": rank, "scores_by_source": {
                **h.scores_by_source, "overlap": SourceScore(score=score, rank=rank)}}))
        return out


@trawl.hookimpl
def register_encoders(register: Any) -> None:
    register(WordHashEncoder, name="hash-words")
    register(TrigramHashEncoder, name="hash-trigrams")


@trawl.hookimpl
def register_indexes(register: Any) -> None:
    register(DiskCheckedIndex, name="exact-checked")


@trawl.hookimpl
def register_rerankers(register: Any) -> None:
    register(OverlapReranker, name="overlap")


def host(*, entry_points: bool = False) -> trawl.PluginHost:
    import sys

    return trawl.PluginHost(entry_points=entry_points,
                            plugins=[("tui-test-hashing", sys.modules[__name__])])


def hybrid_pipeline(index: str = "exact", *, lexical: str = "words", rerank: bool = True,
                    max_tokens: int = 64) -> dict[str, Any]:
    """Two real retrievers, rrf fusion, an optional (disabled by default) overlap reranker.

    ``lexical="bm25"`` uses the BM25 plugin (needs ``host(entry_points=True)``) as the
    first retriever; ``"words"`` the word-hashing encoder over ``index``. The second
    retriever, ``grams``, stands in for a dense encoder (it matches half-typed words).
    """
    first: dict[str, Any] = (
        {"name": "bm25", "index": "bm25"} if lexical == "bm25" else
        {"name": "words", "index": index, "encoder": "hash-words",
         "encoder_config": {"max_tokens": max_tokens}})
    cfg: dict[str, Any] = {
        "name": "test-hybrid",
        "retrievers": [
            first,
            {"name": "grams", "index": index, "encoder": "hash-trigrams",
             "encoder_config": {"max_tokens": max_tokens}},
        ],
    }
    if rerank:
        cfg["reranker"] = {"name": "overlap", "depth": 20, "enabled": False}
    return cfg
