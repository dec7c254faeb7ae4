"""Rerankers: ``maxsim`` (exact late interaction) and ``cross-encoder`` (ONNX classifier)."""

from __future__ import annotations

import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from threading import Lock
from typing import Literal

import numpy as np
from pydantic import Field

from trawl.components import QUERY_TIME, ComponentConfig, ComponentContext, FloatArray, Reranker
from trawl.errors import ConfigError, InputError
from trawl.models import Hit, SourceScore
from trawl.vectors import maxsim_scores

from .encoders import OnnxTokenConfig, OnnxTokenEncoder
from .export import ensure_exported
from .runtime import OnnxModel, check_texts


def _reorder(hits: Sequence[Hit], scores: FloatArray, source: str,
             top_k: int | None) -> list[Hit]:
    """New hits sorted by ``scores`` (ties by chunk id), ranks from 1, source score added."""
    if top_k is not None and top_k <= 0:
        raise InputError(f"top_k must be >= 1, got {top_k}")
    order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), hits[i].chunk_id))
    if top_k is not None:
        order = order[:top_k]
    out = []
    for rank, i in enumerate(order, start=1):
        h = hits[i]
        score = float(scores[i])
        sources = {**h.scores_by_source, source: SourceScore.of(score, rank)}
        out.append(h.ranked(score, rank, sources))
    return out


def _source_name(component: Reranker, default: str) -> str:
    return default if component.name == type(component).__name__ else component.name


class MaxSimRerankerConfig(OnnxTokenConfig):
    """Same options as the ``onnx-tokens`` encoder it runs, plus the token cache size."""

    cache_mb: int = Field(256, ge=0, le=65536, description=(
        "memory for token vectors of recently reranked passages (float16, keyed by text "
        "hash); 0 turns the cache off"))


class _TokenCache:
    """Bounded LRU of passage token matrices, keyed by the sha1 of the passage text.

    Why: search-as-you-type and follow-up questions rerank mostly the same candidates
    again, and encoding them is >95% of a rerank's cost. Keys are content hashes, so an
    edited passage can never be served stale vectors. Stored as float16 (MaxSim over
    L2-normalised vectors moves by ~1e-3, far below score gaps that reorder hits), evicted
    by bytes, not by count.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._lock = Lock()

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()

    def get(self, key: bytes) -> FloatArray | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value.astype(np.float32)

    def put(self, key: bytes, value: FloatArray) -> None:
        small = value.astype(np.float16)
        if small.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._items[key] = small
            self.bytes += small.nbytes
            while self.bytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.bytes -= dropped.nbytes


class MaxSimReranker(Reranker):
    """Reranks candidates by exact MaxSim (``Σ_q max_d <q, d>``) of ``onnx-tokens`` vectors.

    Works with the shipped MiniLM model: no trained reranker is needed. In a pipeline,
    every chunk's token vectors are encoded at index time into the index's token store
    (``token_encoder``), so a query encodes only itself and MaxSim runs over the stored,
    memory-mapped vectors. Used on its own (no store), it encodes the hits' texts at query
    time (depth 50 of 300-token abstracts ≈ 1–3 s on 2 cores) and keeps them in a bounded
    cache (``cache_mb``).
    """

    Config = MaxSimRerankerConfig
    config: MaxSimRerankerConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        self.encoder = OnnxTokenEncoder(
            OnnxTokenConfig.model_validate(self.config.model_dump(exclude={"cache_mb"})),
            ComponentContext(name=f"{self.name}:tokens"))
        self.cache = _TokenCache(self.config.cache_mb * 1024 * 1024)
        self._warned_missing = False

    def document_tokens(self, texts: Sequence[str]) -> list[FloatArray]:
        """Token matrices of ``texts``, from the cache where present, encoding the rest."""
        keys = [_TokenCache.key(t) for t in texts]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            fresh = self.encoder.encode_documents([texts[i] for i in missing])
            for i, vecs in zip(missing, fresh, strict=True):
                found[i] = vecs
                self.cache.put(keys[i], vecs)
        return [f for f in found if f is not None]

    def token_encoder(self) -> OnnxTokenEncoder:
        return self.encoder

    def rerank(self, query: str, hits: Sequence[Hit], top_k: int | None = None) -> list[Hit]:
        check_texts([query], "query")
        if not hits:
            return []
        qset = self.encoder.encode_queries([query])[0]
        if self.token_store is None:
            docs = self.document_tokens([h.text for h in hits])
            return _reorder(hits, maxsim_scores(qset, docs), _source_name(self, "maxsim"), top_k)
        scores, found = self.token_store.maxsim(qset, [h.chunk_id for h in hits])
        if not found.all():  # a chunk the store lacks (written while no store was kept)
            missing = np.flatnonzero(~found)
            if not self._warned_missing:
                self._warned_missing = True
                warnings.warn(f"reranker {self.name!r}: {len(missing)} candidates have no stored "
                              "token vectors and were encoded now; reopen the index to rebuild "
                              "its token store", RuntimeWarning, stacklevel=2)
            docs = self.document_tokens([hits[int(i)].text for i in missing])
            scores[missing] = maxsim_scores(qset, docs)
        return _reorder(hits, scores, _source_name(self, "maxsim"), top_k)

    def close(self) -> None:
        self.encoder.close()


class CrossEncoderConfig(ComponentConfig):
    model: str = Field(..., description=(
        "folder made by `trawl export MODEL --kind cross-encoder`, or a Hugging Face "
        "sequence-classification folder (exported into the cache on first use)"))
    quantize: Literal["fp32", "int8"] = Field("fp32", description="weights precision")
    threads: int | None = Field(None, ge=1, le=256, description="onnxruntime intra-op threads")
    providers: list[str] | None = Field(None, description="onnxruntime execution providers")
    device: Literal["cpu", "cuda"] = Field("cpu", description=(
        "where the model runs: 'cuda' uses onnxruntime's CUDAExecutionProvider (needs "
        "onnxruntime-gpu and a CUDA GPU; a typed error says so when it is missing)"),
        json_schema_extra=QUERY_TIME)
    batch_size: int = Field(16, ge=1, le=4096, description="(query, passage) pairs per call")
    max_length: int | None = Field(None, ge=8, description="pair window; default: the model's")
    label: int = Field(-1, description=(
        "which logit is the relevance score for multi-label models (-1: the last)"))


class OnnxCrossEncoder(Reranker):
    """Scores (query, passage) pairs with an ONNX sequence-classification model.

    The passage is truncated to fit the window, never the query (a query too long for
    the window is an ``InputError``). Works unchanged with an exported ms-marco
    cross-encoder folder; trawl's own test only checks the plumbing with a small
    randomly-initialised BERT classifier that the test builds and exports, because no
    cross-encoder weights can be downloaded where trawl is tested.
    """

    Config = CrossEncoderConfig
    config: CrossEncoderConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        cfg = self.config
        folder = ensure_exported(cfg.model, cfg.quantize, kind="cross-encoder")
        self.model = OnnxModel(folder, threads=cfg.threads, providers=cfg.providers,
                               device=cfg.device,
                               max_length=cfg.max_length, owner=f"reranker {self.name!r}")
        if self.model.manifest.kind != "cross-encoder":
            raise ConfigError(f"reranker {self.name!r}: {folder} holds a "
                              f"{self.model.manifest.kind} export, not a cross-encoder "
                              "(export with --kind cross-encoder)")

    def score(self, query: str, passages: Sequence[str]) -> FloatArray:
        """Relevance logits of ``(query, passage)`` pairs, in input order."""
        (query,) = check_texts([query], "query")
        items = check_texts(passages, "passage")
        out = np.zeros(len(items), dtype=np.float32)
        if not items:
            return out
        encodings = self.model.encode_pairs(query, items)
        for idx, feeds in self.model.batches(encodings, self.config.batch_size):
            logits = self.model.run(feeds)
            out[idx] = logits[:, self.config.label] if logits.ndim == 2 else logits
        return out

    def rerank(self, query: str, hits: Sequence[Hit], top_k: int | None = None) -> list[Hit]:
        if not hits:
            return []
        scores = self.score(query, [h.text for h in hits])
        return _reorder(hits, scores, _source_name(self, "cross-encoder"), top_k)

    def close(self) -> None:
        self.model.session = None
