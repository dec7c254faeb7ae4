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
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from trawl.components import (
    ComponentConfig,
    ComponentContext,
    FusionRequest,
    Index,
    IndexQuery,
    SparseVector,
    VectorField,
    make_hit,
)
from trawl.errors import ConfigError, DimensionMismatchError, IndexCorruptError, InputError
from trawl.filters import Filter
from trawl.models import Chunk, Hit, trusted
from trawl.storage import FORMAT_VERSION, atomic_write_json, private_dir, secure_tree

from .config import QdrantConfig
from .engines import Engine, EngineSpec, describe_fields, open_engine

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
    """Vectors in Qdrant: embedded (edge engine or qdrant-client local) or a server.

    One retriever: one named vector (``dense``, ``fde`` for MUVERA's dot-product
    encodings, ``sparse`` or ``tokens``). Several retrievers sharing a ``store``: one
    point per chunk with a named vector per retriever (``context.fields``), written in one
    request per batch and searched in one Query API request (a batch, or prefetches fused
    by the engine with RRF / DBSF).
    """

    input = "dense"
    vector_kinds = frozenset({"dense", "sparse", "multivector"})
    shareable = True
    native_fusion = frozenset({"rrf", "dbsf"})
    Config = QdrantConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        self.cfg = cast(QdrantConfig, self.config)
        self._lock = threading.RLock()
        self._closed = False
        folder = self.context.storage_dir
        self.folder = Path(folder) if folder is not None else None
        if self.folder is not None:
            private_dir(self.folder)  # before the engine writes: documents are in there
        marker = self._read_marker()
        self.mode = self._resolve_mode(marker)
        self.collection = self.cfg.collection or (marker or {}).get("collection") or \
            _collection_name(self.context.name)
        self.metric = self.context.metric
        self.shared = bool(self.context.fields)
        #: the single field's vector name (None when shared by several retrievers)
        self.single: str | None = None if self.shared else _single_name(
            self.context.kind, self.metric)
        if self.mode == "server" and not self.cfg.url:
            raise ConfigError(f"qdrant index {self.name!r} at {self.folder} lives on a Qdrant "
                              "server: set 'url' (and the API key) in the index config")
        built = (marker or {}).get("collection")
        if self.mode != "server" and built and self.cfg.collection not in (None, built):
            raise ConfigError(f"qdrant index {self.name!r} at {self.folder} holds collection "
                              f"{built!r}, config names {self.cfg.collection!r}")
        if not self.shared and marker and marker.get("metric") not in (None, self.metric):
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
            name=self.name, expect_existing=bool(marker)))
        self.fields: dict[str, VectorField] | None = None
        try:
            self._check_fields(self.engine.fields, self._wanted())
        except BaseException:
            self.engine.close()
            raise

    # -- setup ---------------------------------------------------------------------
    def _wanted(self) -> list[VectorField] | None:
        """The fields the pipeline asks for (``None``: a dense field whose dimension the
        first upsert tells)."""
        if self.shared:
            return [VectorField(f.name, f.kind, f.dim, f.metric) for f in self.context.fields]
        assert self.single is not None
        kind = self.context.kind
        if kind != "sparse" and self.context.dim is None:
            return None
        return [VectorField(self.single, kind, None if kind == "sparse" else self.context.dim,
                            self.metric)]

    def _check_fields(self, existing: dict[str, VectorField] | None,
                      wanted: list[VectorField] | None) -> None:
        where = self.folder or self.cfg.url
        if existing is None:
            if wanted is not None:
                self._create(wanted)
            return
        if wanted is None:
            wanted = [f for f in existing.values() if f.name == self.single]
            if not wanted or wanted[0].kind != self.context.kind:
                wanted = [VectorField(cast(str, self.single), self.context.kind, None,
                                      self.metric)]
        same = {f.name: f for f in wanted} == existing
        if not same and self.single is not None and set(existing) == {self.single} and \
                existing[self.single].kind == wanted[0].kind == "dense" and \
                existing[self.single].metric == wanted[0].metric:
            raise DimensionMismatchError(
                f"qdrant index {self.name!r} (collection {self.collection!r} at {where}) "
                f"holds {existing[self.single].dim}-d vectors, the encoder gives "
                f"{wanted[0].dim}-d; use the encoder it was built with or re-index into a "
                "new folder")
        if not same:
            raise ConfigError(
                f"qdrant collection {self.collection!r} at {where} has vectors "
                f"[{describe_fields(existing)}]; the pipeline expects "
                f"[{describe_fields(wanted)}]. Point 'collection' at a collection this "
                "pipeline created, or re-index into a new folder/collection")
        self.fields = existing

    @property
    def dim(self) -> int | None:
        """The single dense field's dimension (``None`` before the first write)."""
        if self.fields is None or self.single is None:
            return None
        return self.fields[self.single].dim

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

    def _secure(self) -> None:
        """Qdrant's engine creates its files with the umask's mode: make them 0600."""
        if self.folder is not None:
            secure_tree(self.folder)

    def _create(self, fields: list[VectorField]) -> None:
        self.engine.create(fields)
        self._secure()
        self.fields = {f.name: f for f in fields}
        if self.folder is not None:
            marker: dict[str, Any] = {
                "format": FORMAT_VERSION, "engine": self.mode, "collection": self.collection,
                "metric": self.metric}
            if self.single is not None and self.fields[self.single].dim is not None:
                marker["dim"] = self.fields[self.single].dim
            if self.shared or self.context.kind != "dense":
                marker["fields"] = [{"name": f.name, "kind": f.kind, "dim": f.dim,
                                     "metric": f.metric} for f in fields]
            atomic_write_json(self.folder / MARKER, marker)

    def _check_open(self) -> None:
        if self._closed:
            raise InputError(f"qdrant index {self.name!r} is closed")

    # -- writes --------------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], vectors: Any = None) -> int:
        """Write chunks in batches of ``batch_size``; durable when this returns.

        Every request is sent with ``wait=True`` semantics: local mode writes each point
        to its SQLite file before returning; edge applies the batch, then flushes the
        segments (WAL + data) to disk at the end of the call; a server acknowledges a
        batch only after it is applied to its WAL and visible to searches.
        """
        if self.shared:
            raise InputError(f"qdrant index {self.name!r} is shared by retrievers "
                             f"{sorted(f.name for f in self.context.fields)}: write with "
                             "upsert_fields")
        if not chunks:
            return 0
        if vectors is None:
            raise InputError(f"qdrant index {self.name!r} is a vector index: upsert needs "
                             "vectors")
        assert self.single is not None
        return self._write(chunks, {self.single: vectors})

    def upsert_fields(self, chunks: Sequence[Chunk], encoded: Mapping[str, Any]) -> int:
        if not chunks:
            return 0
        names = {f.name for f in self.context.fields} if self.shared else {self.single}
        if set(encoded) != names:
            raise InputError(f"qdrant index {self.name!r}: upsert_fields needs every field "
                             f"{sorted(str(n) for n in names)}, got {sorted(encoded)}")
        return self._write(chunks, encoded)

    def _write(self, chunks: Sequence[Chunk], encoded: Mapping[str, Any]) -> int:
        with self._lock:
            self._check_open()
            if self.fields is None:  # a single dense field learns its dimension now
                first = np.asarray(next(iter(encoded.values())), dtype=np.float32)
                if first.ndim != 2:
                    raise InputError(f"qdrant index {self.name!r}: expected ({len(chunks)}, "
                                     f"dim) vectors, got shape {first.shape}")
                self._create([VectorField(cast(str, self.single), "dense",
                                          int(first.shape[1]), self.metric)])
            assert self.fields is not None
            plain = {name: self._plain(self.fields[name], chunks, value)
                     for name, value in encoded.items()}
            batches = range(0, len(chunks), self.cfg.batch_size)
            progress = None
            if self.cfg.show_progress and len(batches) > 1:
                from tqdm import tqdm  # type: ignore[import-untyped]

                progress = tqdm(total=len(chunks), desc=f"qdrant {self.collection}",
                                unit="chunk")
            try:
                for start in batches:
                    stop = start + self.cfg.batch_size
                    part = chunks[start:stop]
                    # dense matrices become lists one batch at a time (peak memory)
                    self.engine.upsert([point_id(c.id) for c in part],
                                       {n: vs[start:stop].tolist() if isinstance(
                                           vs, np.ndarray) else vs[start:stop]
                                        for n, vs in plain.items()},
                                       [_payload(c) for c in part])
                    if progress is not None:
                        progress.update(len(part))
            finally:
                if progress is not None:
                    progress.close()
            self.engine.commit()
            self._secure()
        return len(chunks)

    def _plain(self, f: VectorField, chunks: Sequence[Chunk], value: Any) -> Any:
        """Check one field's encodings of ``chunks``: a normalised matrix (dense) or plain
        Python per point (``None``: no vector in this field, e.g. no known term)."""
        n = len(chunks)
        if f.kind == "dense":
            vectors = np.asarray(value, dtype=np.float32)
            if vectors.ndim != 2 or len(vectors) != n:
                raise InputError(f"qdrant index {self.name!r}: expected ({n}, dim) vectors, "
                                 f"got shape {vectors.shape}")
            if not np.isfinite(vectors).all():
                raise InputError(f"qdrant index {self.name!r}: vectors contain NaN or inf")
            if vectors.shape[1] != f.dim:
                raise DimensionMismatchError(
                    f"qdrant index {self.name!r} (collection {self.collection!r}) holds "
                    f"{f.dim}-d vectors in {f.name!r}, got {vectors.shape[1]}-d")
            if f.metric == "cosine":
                vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True),
                                               1e-12)
            return vectors
        items = list(value)
        if len(items) != n:
            raise InputError(f"qdrant index {self.name!r}: field {f.name!r} got {len(items)} "
                             f"encodings for {n} chunks")
        if f.kind == "sparse":
            return [_sparse_plain(self.name, f.name, sv) for sv in items]
        return [_tokens_plain(self.name, f, t) for t in items]

    def delete(self, doc_ids: Sequence[str]) -> int:
        """Remove every chunk of these documents (payload filter on ``doc_id``)."""
        ids = sorted({str(d) for d in doc_ids})
        if not ids:
            return 0
        with self._lock:
            self._check_open()
            if self.fields is None:
                return 0
            removed = self.engine.count_docs(ids)
            if removed:
                self.engine.delete_docs(ids)
                self.engine.commit()
                self._secure()
        return removed

    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        """Overwrite the payloads of these points; vectors stay as they are."""
        if not chunks:
            return
        with self._lock:
            self._check_open()
            if self.fields is None:
                return
            present = {str(p.get("chunk_id")) for p in
                       self.engine.retrieve([point_id(c.id) for c in chunks])}
            keep = [c for c in chunks if c.id in present]  # never create a point
            self.engine.overwrite_payloads([point_id(c.id) for c in keep],
                                           [_payload(c) for c in keep])
            self.engine.commit()

    def optimize(self) -> None:
        """Edge: build the HNSW graph and payload-index segments now (a server does this
        in the background; local mode has nothing to build)."""
        with self._lock:
            self._check_open()
            self.engine.optimize()
            self._secure()

    # -- reads ---------------------------------------------------------------------
    def search(self, query: IndexQuery, top_k: int, filters: Filter | None = None) -> list[Hit]:
        if self.shared:
            raise InputError(f"qdrant index {self.name!r} is shared by retrievers: search "
                             "with search_fields")
        found = self.search_fields({cast(str, self.single): query}, top_k, filters)
        assert isinstance(found, dict)
        return next(iter(found.values()))

    def search_fields(self, queries: Mapping[str, IndexQuery], top_k: int,
                      filters: Filter | None = None, fusion: FusionRequest | None = None
                      ) -> dict[str, list[Hit]] | list[Hit]:
        """Each field's run from one batched request, or, for ``fusion`` RRF (equal
        weights, integral k) or DBSF (equal weights), one request whose prefetches the
        engine fuses. Other fusions get the runs back (the caller fuses)."""
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k <= 0:
            raise InputError(f"top_k must be a positive integer, got {top_k!r}")
        top_k = min(int(top_k), MAX_TOP_K)
        native = self.engine.translate(filters)  # FilterError before touching the engine
        with self._read_lock:
            self._check_open()
            fields = self.fields
            if fields is None:
                return {name: [] for name in queries}
            plain: dict[str, Any] = {}
            for name, q in queries.items():
                if name not in fields:
                    raise InputError(f"qdrant index {self.name!r} has no field {name!r} "
                                     f"(it has {sorted(fields)})")
                plain[name] = self._query_plain(fields[name], q)
            asked = [(n, q) for n, q in plain.items() if q is not None]
            rrf_k = _native_rrf_k(fusion, list(queries)) if fusion is not None else None
            if fusion is not None and len(asked) > 1 and (
                    (fusion.method == "rrf" and rrf_k is not None) or
                    (fusion.method == "dbsf" and _equal_weights(fusion, list(queries)))):
                found = self.engine.query_fused(asked, top_k, native, fusion.method,
                                                rrf_k or 0)
                return _hits(found, self.name)
            runs = self.engine.query_many(asked, top_k, native) if asked else []
        out = {name: [] for name in queries}  # type: dict[str, list[Hit]]
        for (name, _), found in zip(asked, runs, strict=True):
            out[name] = _hits(found, name if self.shared else self.name)
        return out

    def _query_plain(self, f: VectorField, query: IndexQuery) -> Any:
        """The query for one field as plain Python; ``None`` for a sparse query without
        terms (no hits, not an error)."""
        if f.kind == "sparse":
            if query.sparse is None:
                raise InputError(f"qdrant index {self.name!r}: field {f.name!r} is sparse "
                                 "and needs a sparse query (IndexQuery.sparse)")
            indices, values = _sparse_plain(self.name, f.name, query.sparse) or ([], [])
            return (indices, values) if indices else None
        if f.kind == "multivector":
            if query.tokens is None:
                raise InputError(f"qdrant index {self.name!r}: field {f.name!r} is "
                                 "multi-vector and needs query tokens (IndexQuery.tokens)")
            tokens = _tokens_plain(self.name, f, query.tokens)
            return tokens
        if query.vector is None:
            raise InputError(f"qdrant index {self.name!r} needs a query vector")
        q = np.asarray(query.vector, dtype=np.float32).reshape(-1)
        if not np.isfinite(q).all():
            raise InputError(f"qdrant index {self.name!r}: query vector contains NaN or inf")
        if q.shape[0] != f.dim:
            raise DimensionMismatchError(
                f"qdrant index {self.name!r} (collection {self.collection!r}) holds "
                f"{f.dim}-d vectors, the query is {q.shape[0]}-d")
        if f.metric == "cosine":
            q = q / max(float(np.linalg.norm(q)), 1e-12)
        return q.tolist()

    def count(self) -> int:
        with self._lock:
            self._check_open()
            return 0 if self.fields is None else self.engine.count()

    def doc_ids(self) -> set[str]:
        with self._lock:
            self._check_open()
            if self.fields is None:
                return set()
            return {str(p["doc_id"]) for p in self._scroll(["doc_id"])}

    def _scroll(self, fields: list[str]) -> Iterator[dict[str, Any]]:
        yield from self.engine.scroll(fields)

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        with self._lock:
            self._check_open()
            if self.fields is None or not chunk_ids:
                return [None] * len(chunk_ids)
            found = self.engine.retrieve([point_id(c) for c in chunk_ids])
        by_chunk = {str(p.get("chunk_id")): _chunk(p) for p in found}
        return [by_chunk.get(c) for c in chunk_ids]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self.engine.close()
            finally:
                self._secure()

    def __repr__(self) -> str:  # never shows the config (api key) or the URL's credentials
        return (f"QdrantIndex(name={self.name!r}, mode={self.mode!r}, "
                f"collection={self.collection!r}, fields={sorted(self.fields or {})})")


def _single_name(kind: str, metric: str) -> str:
    """Vector name of a one-retriever collection (``dense``/``fde`` as before stores)."""
    if kind == "sparse":
        return "sparse"
    if kind == "multivector":
        return "tokens"
    return "fde" if metric == "dot" else "dense"


def _equal_weights(fusion: FusionRequest, names: list[str]) -> bool:
    weights = {float(fusion.weights.get(n, 1.0)) for n in names}
    return len(weights) == 1 and weights != {0.0}


def _native_rrf_k(fusion: FusionRequest, names: list[str]) -> int | None:
    """Qdrant's RRF is ``Σ 1/(k' + rank - 1)`` with integral k' and no weights here; trawl's
    is ``Σ w/(k + rank)``. Same order when the weights are equal and k' = k + 1."""
    if fusion.method != "rrf" or not _equal_weights(fusion, names):
        return None
    k = fusion.k + 1
    return int(k) if float(k).is_integer() else None


def _sparse_plain(index: str, field: str, sv: Any) -> tuple[list[int], list[float]] | None:
    if not isinstance(sv, SparseVector):
        raise InputError(f"qdrant index {index!r}: field {field!r} is sparse and takes "
                         f"trawl.SparseVector, got {type(sv).__name__}")
    if len(sv) == 0:
        return None
    indices = np.asarray(sv.indices)
    values = np.asarray(sv.values, dtype=np.float32)
    if indices.shape != values.shape or indices.ndim != 1:
        raise InputError(f"qdrant index {index!r}: sparse vector has {indices.shape} "
                         f"indices and {values.shape} values")
    # strictly increasing (what bm25-sparse gives) is unique without np.unique's sort
    increasing = len(indices) < 2 or bool((indices[1:] > indices[:-1]).all())
    if (indices.min() < 0 or indices.max() >= 2**32
            or (not increasing and len(np.unique(indices)) != len(indices))):
        raise InputError(f"qdrant index {index!r}: sparse indices must be unique and in "
                         "[0, 2**32)")
    if not np.isfinite(values).all():
        raise InputError(f"qdrant index {index!r}: sparse values contain NaN or inf")
    return [int(i) for i in indices.tolist()], values.tolist()


def _tokens_plain(index: str, f: VectorField, tokens: Any) -> list[list[float]] | None:
    t = np.asarray(tokens, dtype=np.float32)
    if t.ndim != 2 or (len(t) and t.shape[1] != f.dim):
        raise DimensionMismatchError(
            f"qdrant index {index!r}: field {f.name!r} holds {f.dim}-d token vectors, got "
            f"shape {t.shape}")
    if not len(t):
        return None
    if not np.isfinite(t).all():
        raise InputError(f"qdrant index {index!r}: token vectors contain NaN or inf")
    if f.metric == "cosine":
        t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    return cast(list[list[float]], t.tolist())


def _hits(found: list[tuple[float, dict[str, Any]]], source: str) -> list[Hit]:
    found = sorted(found, key=lambda sp: (-sp[0], str(sp[1].get("chunk_id", ""))))
    return [make_hit(_chunk(p), score, rank, source)
            for rank, (score, p) in enumerate(found, start=1)]


def _collection_name(name: str) -> str:
    import re

    cleaned = re.sub(r"[^A-Za-z0-9_\-.]", "_", name)[:255]
    return cleaned or "trawl"


def _payload(chunk: Chunk) -> dict[str, Any]:
    return {"text": chunk.text, "doc_id": chunk.doc_id, "chunk_id": chunk.id,
            "chunk_index": chunk.index, "chunk_start": chunk.start, "chunk_end": chunk.end,
            "metadata": dict(chunk.metadata)}


def _chunk(payload: dict[str, Any]) -> Chunk:
    """The chunk a payload stores; each field is coerced to its type here, so the model is
    built without a second validation pass (this runs for every hit of every query)."""
    return trusted(Chunk, {
        "id": str(payload["chunk_id"]), "doc_id": str(payload["doc_id"]),
        "text": str(payload.get("text", "")), "index": int(payload.get("chunk_index", 0)),
        "start": int(payload.get("chunk_start", 0)), "end": int(payload.get("chunk_end", 0)),
        "metadata": dict(payload.get("metadata") or {})})
