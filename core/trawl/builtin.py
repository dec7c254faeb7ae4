"""Components that ship with core because they are not backends.

``exact``: a brute-force numpy index. It is the reference every vector index is tested
against, and a fine choice for a few thousand chunks.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from .components import ComponentConfig, ComponentContext, FloatArray, Index, IndexQuery
from .errors import DimensionMismatchError, IndexCorruptError, InputError
from .filters import Filter, compile_filter
from .hookspecs import hookimpl
from .models import Chunk, Hit
from .storage import FORMAT_VERSION, atomic_write_bytes


class ExactIndexConfig(ComponentConfig):
    batch_size: int = Field(4096, ge=1, description="rows scored per numpy matmul")


class ExactIndex(Index):
    """Exact top-k by cosine or dot product over all stored vectors, filters pre-applied."""

    input = "dense"
    Config = ExactIndexConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        self._lock = threading.RLock()
        self._chunks: list[Chunk] = []
        self._row: dict[str, int] = {}
        self._dim = self.context.dim
        self._vectors: FloatArray = np.zeros((0, self._dim or 0), dtype=np.float32)
        self._batch_depth = 0  # inside write_batch blocks: the file is written at the end
        self._dirty = False
        self._load()

    # persistence: one exact.npz (vectors + chunk JSON as bytes), replaced atomically, so a
    # crash can never leave vectors and chunks from different writes
    def _file(self) -> Path | None:
        d = self.context.storage_dir
        return None if d is None else d / "exact.npz"

    def _load(self) -> None:
        path = self._file()
        if path is None or not path.exists():
            return
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
                vectors = data["vectors"].astype(np.float32)
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
            raise IndexCorruptError(f"exact index {path} unreadable: {exc}") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise IndexCorruptError(f"exact index {path}: format {meta.get('format')!r}, "
                                    f"this trawl reads {FORMAT_VERSION}")
        chunks = [Chunk.model_validate(c) for c in meta["chunks"]]
        if len(chunks) != len(vectors):
            raise IndexCorruptError(f"exact index {path}: {len(chunks)} chunks but "
                                    f"{len(vectors)} vectors")
        if self._dim is not None and len(vectors) and vectors.shape[1] != self._dim:
            raise DimensionMismatchError(
                f"exact index {path} holds {vectors.shape[1]}-d vectors, "
                f"the encoder gives {self._dim}-d")
        self._chunks, self._vectors = chunks, vectors
        self._dim = int(vectors.shape[1]) if len(vectors) else self._dim
        self._row = {c.id: i for i, c in enumerate(chunks)}

    @contextmanager
    def write_batch(self) -> Iterator[None]:
        """The file is rewritten once when the block ends, not after every upsert: core
        writes a large document in 256-chunk slices, and rewriting all vectors per slice
        made that quadratic. Rows are searchable at once; core's repair removes an
        uncommitted batch after a crash, so the deferred write loses nothing committed."""
        with self._lock:
            self._batch_depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._batch_depth -= 1
                if not self._batch_depth and self._dirty:
                    self._save()

    def _save(self) -> None:
        path = self._file()
        if path is None:
            return
        if self._batch_depth:
            self._dirty = True
            return
        self._dirty = False
        meta = json.dumps({"format": FORMAT_VERSION, "metric": self.context.metric,
                           "chunks": [c.model_dump() for c in self._chunks]},
                          ensure_ascii=False).encode("utf-8")
        buf = io.BytesIO()
        np.savez(buf, vectors=self._vectors, meta=np.frombuffer(meta, dtype=np.uint8))
        atomic_write_bytes(path, buf.getvalue())

    def upsert(self, chunks: Sequence[Chunk], vectors: FloatArray | None = None) -> int:
        if not chunks:
            return 0
        if vectors is None:
            raise InputError(f"index {self.name!r} is a vector index: upsert needs vectors")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(chunks):
            raise InputError(f"index {self.name!r}: expected ({len(chunks)}, dim) vectors, "
                             f"got shape {vectors.shape}")
        with self._lock:
            if self._dim is None or (len(self._chunks) == 0 and self._vectors.shape[1] == 0):
                self._dim = int(vectors.shape[1])
                self._vectors = np.zeros((0, self._dim), dtype=np.float32)
            if vectors.shape[1] != self._dim:
                raise DimensionMismatchError(
                    f"index {self.name!r} holds {self._dim}-d vectors, got {vectors.shape[1]}-d")
            if self.context.metric == "cosine":
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = vectors / np.maximum(norms, 1e-12)
            new_rows: list[tuple[Chunk, FloatArray]] = []
            for chunk, vec in zip(chunks, vectors, strict=True):
                row = self._row.get(chunk.id)
                if row is None:
                    self._row[chunk.id] = len(self._chunks) + len(new_rows)
                    new_rows.append((chunk, vec))
                else:
                    self._chunks[row] = chunk
                    self._vectors[row] = vec
            if new_rows:
                self._chunks.extend(c for c, _ in new_rows)
                self._vectors = np.vstack([self._vectors, np.stack([v for _, v in new_rows])])
            self._save()
        return len(chunks)

    def delete(self, doc_ids: Sequence[str]) -> int:
        gone = set(doc_ids)
        with self._lock:
            keep = [i for i, c in enumerate(self._chunks) if c.doc_id not in gone]
            removed = len(self._chunks) - len(keep)
            if removed:
                self._chunks = [self._chunks[i] for i in keep]
                self._vectors = self._vectors[keep]
                self._row = {c.id: i for i, c in enumerate(self._chunks)}
                self._save()
        return removed

    def search(self, query: IndexQuery, top_k: int, filters: Filter | None = None) -> list[Hit]:
        if top_k <= 0:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        if query.vector is None:
            raise InputError(f"index {self.name!r} needs a query vector")
        q = np.asarray(query.vector, dtype=np.float32).reshape(-1)
        with self._lock:
            if not self._chunks:
                return []
            if q.shape[0] != self._dim:
                raise DimensionMismatchError(
                    f"index {self.name!r} holds {self._dim}-d vectors, query is {q.shape[0]}-d")
            if self.context.metric == "cosine":
                q = q / max(float(np.linalg.norm(q)), 1e-12)
            rows = np.arange(len(self._chunks))
            if filters is None:
                scores = self._vectors @ q  # no fancy-index copy of the whole matrix
            else:
                passes = compile_filter(filters)  # ``in`` lists as hashed sets
                rows = np.fromiter((i for i, c in enumerate(self._chunks)
                                    if passes(c.metadata)), dtype=np.int64)
                if len(rows) == 0:
                    return []
                scores = self._vectors[rows] @ q
            k = min(top_k, len(rows))
            top = np.argpartition(-scores, k - 1)[:k]
            order = sorted(top, key=lambda i: (-scores[i], self._chunks[rows[i]].id))
            chunks = [self._chunks[rows[i]] for i in order]
            values = [float(scores[i]) for i in order]
        from .components import make_hit

        return [make_hit(c, s, r, self.name) for r, (c, s) in enumerate(zip(chunks, values,
                                                                              strict=True), 1)]

    def count(self) -> int:
        with self._lock:
            return len(self._chunks)

    def doc_ids(self) -> set[str]:
        with self._lock:
            return {c.doc_id for c in self._chunks}

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        with self._lock:
            return [self._chunks[self._row[c]] if c in self._row else None for c in chunk_ids]

    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        with self._lock:
            for chunk in chunks:
                row = self._row.get(chunk.id)
                if row is not None:
                    self._chunks[row] = chunk
            self._save()


@hookimpl
def register_indexes(register: Any) -> None:
    register(ExactIndex, name="exact", aliases=("numpy",))
