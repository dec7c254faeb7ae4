"""The ``qdrant`` index: one Qdrant collection per trawl retriever.

Imported only when a pipeline builds a ``qdrant`` index; ``qdrant_client`` and
``qdrant_edge`` are imported inside the engine classes in ``engines.py``.

Points: id = ``uuid5(TRAWL_NAMESPACE, chunk_id)`` (re-ingesting a chunk overwrites it),
payload = ``{text, doc_id, chunk_id, chunk_index, chunk_start, chunk_end, metadata}``;
filters address ``metadata.<field>``. The folder holds ``trawl-qdrant.json`` (which engine,
collection, dimension and metric built it) next to the engine's own files, so ``mode:
auto`` reopens an index with the engine that wrote it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from trawl.components import (
    ComponentConfig,
    ComponentContext,
    FloatArray,
    Index,
    IndexQuery,
    make_hit,
)
from trawl.errors import ConfigError, DimensionMismatchError, IndexCorruptError, InputError
from trawl.filters import Filter
from trawl.models import Chunk, Hit
from trawl.storage import FORMAT_VERSION, atomic_write_json

from .config import QdrantConfig
from .engines import Engine, EngineSpec, open_engine

# Fixed namespace: the same chunk id gives the same point id on every machine, forever.
TRAWL_NAMESPACE = uuid.UUID("6f0d3c5e-7a3b-5b8e-9a55-2f2b1b0a7c11")
MARKER = "trawl-qdrant.json"
MAX_TOP_K = 100_000


def point_id(chunk_id: str) -> str:
    """Deterministic point id of a chunk: re-ingesting is an upsert, not a duplicate."""
    return str(uuid.uuid5(TRAWL_NAMESPACE, chunk_id))


def edge_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("qdrant_edge") is not None


class QdrantIndex(Index):
    """Dense vectors in Qdrant: embedded (edge engine or qdrant-client local) or a server."""

    input = "dense"
    Config = QdrantConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        self.cfg = cast(QdrantConfig, self.config)
        self._lock = threading.RLock()
        self._closed = False
        folder = self.context.storage_dir
        self.folder = Path(folder) if folder is not None else None
        marker = self._read_marker()
        self.mode = self._resolve_mode(marker)
        self.collection = self.cfg.collection or (marker or {}).get("collection") or \
            _collection_name(self.context.name)
        self.metric = self.context.metric
        if self.mode == "server" and not self.cfg.url:
            raise ConfigError(f"qdrant index {self.name!r} at {self.folder} lives on a Qdrant "
                              "server: set 'url' (and the API key) in the index config")
        built = (marker or {}).get("collection")
        if self.mode != "server" and built and self.cfg.collection not in (None, built):
            raise ConfigError(f"qdrant index {self.name!r} at {self.folder} holds collection "
                              f"{built!r}, config names {self.cfg.collection!r}")
        if marker and marker.get("metric") not in (None, self.metric):
            raise ConfigError(
                f"qdrant index {self.name!r} at {self.folder}: built with metric "
                f"{marker['metric']!r}, the pipeline now asks for {self.metric!r}; re-index "
                "into a new folder")
        # qdrant-client local mode is plain Python (not safe to read while writing): one lock.
        # The edge engine and a server take concurrent searches (edge releases the GIL), so
        # only writes are serialised there.
        self._read_lock: Any = self._lock if self.mode == "local" else contextlib.nullcontext()
        self.engine: Engine = open_engine(EngineSpec(
            mode=self.mode, config=self.cfg, folder=self.folder, collection=self.collection,
            metric=self.metric, name=self.name, expect_existing=bool(marker)))
        self.dim: int | None = self.engine.dim
        want = self.context.dim
        try:
            if self.dim is not None and want is not None and self.dim != want:
                where = self.folder or self.cfg.url
                raise DimensionMismatchError(
                    f"qdrant index {self.name!r} (collection {self.collection!r} at {where}) "
                    f"holds {self.dim}-d vectors, the encoder gives {want}-d; use the encoder "
                    "it was built with or re-index into a new folder")
            if self.dim is None and want is not None:
                self._create(want)
        except BaseException:
            self.engine.close()
            raise

    # -- setup ---------------------------------------------------------------------
    def _read_marker(self) -> dict[str, Any] | None:
        if self.folder is None or not (self.folder / MARKER).exists():
            return None
        path = self.folder / MARKER
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(f"qdrant index marker {path} is unreadable ({exc}); "
                                    "restore it or delete the folder and re-index") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION or \
                data.get("engine") not in ("edge", "local", "server"):
            raise IndexCorruptError(f"qdrant index marker {path} has an unknown format "
                                    f"({str(data)[:80]!r}); this trawl reads format "
                                    f"{FORMAT_VERSION}")
        return data

    def _resolve_mode(self, marker: dict[str, Any] | None) -> str:
        mode = self.cfg.mode
        on_disk = (marker or {}).get("engine")
        if mode == "auto":
            if self.cfg.url:
                return "server"
            if on_disk:
                return str(on_disk)
            return "edge" if edge_available() else "local"
        if on_disk and on_disk != mode:
            raise ConfigError(
                f"qdrant index {self.name!r} at {self.folder} was built in mode {on_disk!r}; "
                f"config asks for {mode!r}. Use mode {on_disk!r} (or 'auto'), or re-index "
                "into a new folder")
        if mode == "edge" and not edge_available():
            from trawl.errors import MissingDependencyError

            raise MissingDependencyError("qdrant-edge-py", "qdrant",
                                         purpose="qdrant index mode 'edge'")
        return mode

    def _create(self, dim: int) -> None:
        self.engine.create(dim)
        self.dim = dim
        if self.folder is not None:
            atomic_write_json(self.folder / MARKER, {
                "format": FORMAT_VERSION, "engine": self.mode, "collection": self.collection,
                "dim": dim, "metric": self.metric})

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"qdrant index {self.name!r} is closed")

    # -- writes --------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], vectors: FloatArray | None = None) -> int:
        """Write chunks in batches of ``batch_size``; durable when this returns.

        Every request is sent with ``wait=True`` semantics: local mode writes each point
        to its SQLite file before returning; edge applies the batch, then flushes the
        segments (WAL + data) to disk at the end of the call; a server acknowledges a
        batch only after it is applied to its WAL and visible to searches.
        """
        if not chunks:
            return 0
        if vectors is None:
            raise InputError(f"qdrant index {self.name!r} is a vector index: upsert needs "
                             "vectors")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(chunks):
            raise InputError(f"qdrant index {self.name!r}: expected ({len(chunks)}, dim) "
                             f"vectors, got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise InputError(f"qdrant index {self.name!r}: vectors contain NaN or inf")
        with self._lock:
            self._check_open()
            if self.dim is None:
                self._create(int(vectors.shape[1]))
            if vectors.shape[1] != self.dim:
                raise DimensionMismatchError(
                    f"qdrant index {self.name!r} (collection {self.collection!r}) holds "
                    f"{self.dim}-d vectors, got {vectors.shape[1]}-d")
            if self.metric == "cosine":
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = vectors / np.maximum(norms, 1e-12)
            batches = range(0, len(chunks), self.cfg.batch_size)
            progress = None
            if self.cfg.show_progress and len(batches) > 1:
                from tqdm import tqdm  # type: ignore[import-untyped]

                progress = tqdm(total=len(chunks), desc=f"qdrant {self.collection}",
                                unit="chunk")
            try:
                for start in batches:
                    part = chunks[start:start + self.cfg.batch_size]
                    vecs = vectors[start:start + self.cfg.batch_size]
                    self.engine.upsert([point_id(c.id) for c in part], vecs,
                                       [_payload(c) for c in part])
                    if progress is not None:
                        progress.update(len(part))
            finally:
                if progress is not None:
                    progress.close()
            self.engine.commit()
        return len(chunks)

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Remove every chunk of these documents (payload filter on ``doc_id``)."""
        ids = sorted({str(d) for d in doc_ids})
        if not ids:
            return 0
        with self._lock:
            self._check_open()
            if self.dim is None:
                return 0
            removed = self.engine.count_docs(ids)
            if removed:
                self.engine.delete_docs(ids)
                self.engine.commit()
        return removed

    def optimize(self) -> None:
        """Edge: build the HNSW graph and payload-index segments now (a server does this
        in the background; local mode has nothing to build)."""
        with self._lock:
            self._check_open()
            self.engine.optimize()

    # -- reads ---------------------------------------------------------------------
    def search(self, query: IndexQuery, top_k: int, filters: Filter | None = None) -> list[Hit]:
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k <= 0:
            raise InputError(f"top_k must be a positive integer, got {top_k!r}")
        if query.vector is None:
            raise InputError(f"qdrant index {self.name!r} needs a query vector")
        q = np.asarray(query.vector, dtype=np.float32).reshape(-1)
        if not np.isfinite(q).all():
            raise InputError(f"qdrant index {self.name!r}: query vector contains NaN or inf")
        top_k = min(int(top_k), MAX_TOP_K)
        native = self.engine.translate(filters)  # FilterError before touching the engine
        with self._read_lock:
            self._check_open()
            if self.dim is None:
                return []
            if q.shape[0] != self.dim:
                raise DimensionMismatchError(
                    f"qdrant index {self.name!r} (collection {self.collection!r}) holds "
                    f"{self.dim}-d vectors, the query is {q.shape[0]}-d")
            if self.metric == "cosine":
                q = q / max(float(np.linalg.norm(q)), 1e-12)
            found = self.engine.query(q, top_k, native)
        found.sort(key=lambda sp: (-sp[0], str(sp[1].get("chunk_id", ""))))
        return [make_hit(_chunk(p), score, rank, self.name)
                for rank, (score, p) in enumerate(found, start=1)]

    def count(self) -> int:
        with self._lock:
            self._check_open()
            return 0 if self.dim is None else self.engine.count()

    def doc_ids(self) -> set[str]:
        with self._lock:
            self._check_open()
            if self.dim is None:
                return set()
            return {str(p["doc_id"]) for p in self._scroll(["doc_id"])}

    def _scroll(self, fields: list[str]) -> Iterator[dict[str, Any]]:
        yield from self.engine.scroll(fields)

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        with self._lock:
            self._check_open()
            if self.dim is None or not chunk_ids:
                return [None] * len(chunk_ids)
            found = self.engine.retrieve([point_id(c) for c in chunk_ids])
        by_chunk = {str(p.get("chunk_id")): _chunk(p) for p in found}
        return [by_chunk.get(c) for c in chunk_ids]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self.engine.close()

    def __repr__(self) -> str:  # never shows the config (api key) or the URL's credentials
        return (f"QdrantIndex(name={self.name!r}, mode={self.mode!r}, "
                f"collection={self.collection!r}, dim={self.dim})")


def _collection_name(name: str) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9_\-.]", "_", name)[:255]
    return cleaned or "trawl"


def _payload(chunk: Chunk) -> dict[str, Any]:
    return {"text": chunk.text, "doc_id": chunk.doc_id, "chunk_id": chunk.id,
            "chunk_index": chunk.index, "chunk_start": chunk.start, "chunk_end": chunk.end,
            "metadata": dict(chunk.metadata)}


def _chunk(payload: dict[str, Any]) -> Chunk:
    return Chunk(id=str(payload["chunk_id"]), doc_id=str(payload["doc_id"]),
                 text=str(payload.get("text", "")), index=int(payload.get("chunk_index", 0)),
                 start=int(payload.get("chunk_start", 0)), end=int(payload.get("chunk_end", 0)),
                 metadata=dict(payload.get("metadata") or {}))
