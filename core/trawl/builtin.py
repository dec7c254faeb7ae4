"""Components that ship with core because they are not backends.

``exact``: a brute-force numpy index. It is the reference every vector index is tested
against, and a fine choice for a few thousand chunks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from pydantic import Field

from . import exact_store
from .chunktable import ChunkTable
from .components import ComponentConfig, ComponentContext, FloatArray, Index, IndexQuery
from .errors import DimensionMismatchError, InputError
from .exact_rows import ChunkRows
from .exact_store import ExactStore
from .filters import Filter, compile_filter
from .hookspecs import hookimpl
from .models import Chunk, Hit


class ExactIndexConfig(ComponentConfig):
    batch_size: int = Field(4096, ge=1, description="rows scored per numpy matmul")


class ExactIndex(Index):
    """Exact top-k by cosine or dot product over all stored vectors, filters pre-applied.

    A reopened index maps its vectors and (from 20k rows) its chunk table read-only (page
    cache, not heap: see ``trawl.exact_store``) and decodes only the rows a query returns.
    Writes never decode the table (``trawl.exact_rows``): new and replaced rows live in the
    heap until the next save copies the kept rows as bytes and adopts the table it wrote.
    The first write copies the vectors into a heap buffer that grows by half, so a bulk
    load is linear, not quadratic."""

    input = "dense"
    Config = ExactIndexConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        self._lock = threading.RLock()
        self._rows = ChunkRows()
        self._dim = self.context.dim
        self._n = 0  # rows in use
        # rows [0, _n) are the vectors; the rest is room to grow (heap) or nothing (mapped)
        self._buffer: FloatArray = np.zeros((0, self._dim or 0), dtype=np.float32)
        self._mapped = False
        self._seq = 0
        self._batch_depth = 0  # inside write_batch blocks: the files are written at the end
        self._dirty = False
        d = self.context.storage_dir
        self._store = None if d is None else ExactStore(d)
        self._load()

    def _load(self) -> None:
        stored = None if self._store is None else self._store.read()
        if stored is None:
            return
        vectors = stored.vectors
        if self._dim is not None and len(vectors) and vectors.shape[1] != self._dim:
            raise DimensionMismatchError(
                f"exact index {self.context.storage_dir} holds {vectors.shape[1]}-d "
                f"vectors, the encoder gives {self._dim}-d")
        if isinstance(stored.chunks, ChunkTable):
            self._rows.adopt(stored.chunks)
        else:
            self._rows.adopt(None, stored.chunks)
        self._buffer, self._n = vectors, len(vectors)
        self._mapped, self._seq = not vectors.flags.writeable, stored.seq  # read-only map
        self._dim = int(vectors.shape[1]) if len(vectors) else self._dim

    @property
    def _vectors(self) -> FloatArray:
        return self._buffer[:self._n]

    def _room_for(self, extra: int) -> None:
        """A writable heap buffer with room for ``extra`` more rows: mapped vectors are
        copied on the first write (with an eighth to spare, so the next write does not
        copy them again); a full buffer grows by half (amortised O(1) a row)."""
        need = self._n + extra
        if not self._mapped and need <= len(self._buffer):
            return
        capacity = max(need, self._n + self._n // 8 if self._mapped else
                       len(self._buffer) * 3 // 2, 64)
        grown = np.empty((capacity, self._dim or 0), dtype=np.float32)
        grown[:self._n] = self._buffer[:self._n]
        self._buffer, self._mapped = grown, False

    @contextmanager
    def write_batch(self) -> Iterator[None]:
        """The files are rewritten once when the block ends, not after every upsert: core
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
        if self._store is None:
            return
        if self._batch_depth:
            self._dirty = True
            return
        self._dirty = False
        rows, metric = self._rows, self.context.metric
        if self._n < exact_store.TABLE_MIN_ROWS:  # one JSON file: every chunk, in the heap
            heap = rows.every_chunk()
            self._store.write(self._seq + 1, self._vectors, metric, heap)
            rows.adopt(None, heap)
        else:  # the kept table rows copied as bytes, then the new and replaced ones
            copied, fresh, order = rows.save_plan()
            vectors = self._vectors if order is None else self._vectors[order]
            table = self._store.write(self._seq + 1, vectors, metric, fresh,
                                      base=rows.table, base_rows=copied)
            if order is not None:  # the written row order (replaced rows moved last)
                self._buffer, self._mapped = vectors, False
            rows.adopt(table)
        self._seq += 1

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
            if self._dim is None or (self._n == 0 and self._buffer.shape[1] == 0):
                self._dim = int(vectors.shape[1])
                self._buffer, self._mapped = np.zeros((0, self._dim), dtype=np.float32), False
            if vectors.shape[1] != self._dim:
                raise DimensionMismatchError(
                    f"index {self.name!r} holds {self._dim}-d vectors, got {vectors.shape[1]}-d")
            if self.context.metric == "cosine":
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = vectors / np.maximum(norms, 1e-12)
            self._room_for(len(chunks))
            for chunk, vec in zip(chunks, vectors, strict=True):
                row = self._rows.find(chunk.id)
                if row is None:
                    row = self._rows.append(chunk)
                    self._n += 1
                else:
                    self._rows.replace(row, chunk)
                self._buffer[row] = vec
            self._save()
        return len(chunks)

    def delete(self, doc_ids: Sequence[str]) -> int:
        with self._lock:
            kept = self._rows.remove_docs(set(doc_ids))
            if kept is None:
                return 0
            self._buffer, self._mapped = self._vectors[kept], False  # a heap copy
            removed, self._n = self._n - len(self._buffer), len(self._buffer)
            self._save()
        return removed

    def search(self, query: IndexQuery, top_k: int, filters: Filter | None = None) -> list[Hit]:
        if top_k <= 0:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        if query.vector is None:
            raise InputError(f"index {self.name!r} needs a query vector")
        q = np.asarray(query.vector, dtype=np.float32).reshape(-1)
        with self._lock:
            if not self._n:
                return []
            if q.shape[0] != self._dim:
                raise DimensionMismatchError(
                    f"index {self.name!r} holds {self._dim}-d vectors, query is {q.shape[0]}-d")
            if self.context.metric == "cosine":
                q = q / max(float(np.linalg.norm(q)), 1e-12)
            rows = np.arange(self._n)
            if filters is None:
                scores = self._vectors @ q  # no fancy-index copy of the whole matrix
            else:
                passes = compile_filter(filters)  # ``in`` lists as hashed sets
                rows = np.fromiter((i for i, m in enumerate(self._rows.metadata())
                                    if passes(m)), dtype=np.int64)
                if len(rows) == 0:
                    return []
                scores = self._vectors[rows] @ q
            k = min(top_k, len(rows))
            top = np.argpartition(-scores, k - 1)[:k]
            order = sorted(top, key=lambda i: (-scores[i], self._rows.chunk_id(int(rows[i]))))
            chunks = [self._rows.chunk(int(rows[i])) for i in order]
            values = [float(scores[i]) for i in order]
        from .components import make_hit

        return [make_hit(c, s, r, self.name) for r, (c, s) in enumerate(zip(chunks, values,
                                                                              strict=True), 1)]

    def count(self) -> int:
        with self._lock:
            return self._n

    def doc_ids(self) -> set[str]:
        with self._lock:
            return self._rows.doc_ids()

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        with self._lock:
            found = [self._rows.find(c) for c in chunk_ids]
            return [None if row is None else self._rows.chunk(row) for row in found]

    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        with self._lock:
            for chunk in chunks:
                row = self._rows.find(chunk.id)
                if row is not None:
                    self._rows.replace(row, chunk)
            self._save()


@hookimpl
def register_indexes(register: Any) -> None:
    register(ExactIndex, name="exact", aliases=("numpy",))
