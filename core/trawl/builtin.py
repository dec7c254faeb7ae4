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
from .exact_rows import ChunkRows, IntArray
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
    Vectors are a mapped base (what the last save wrote) plus a heap tail of appended rows
    that grows by half, so a bulk load is linear, not quadratic; only a write that changes
    or deletes base rows copies the base into the heap, until the next save maps it again."""

    input = "dense"
    Config = ExactIndexConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        self._lock = threading.RLock()
        self._rows = ChunkRows()
        self._dim = self.context.dim
        self._n = 0  # rows in use
        # rows [0, len(_base)) are in _base (read-only, mapped), the rest in the heap _buffer
        # (with room to grow)
        self._base: FloatArray = np.zeros((0, self._dim or 0), dtype=np.float32)
        self._buffer: FloatArray = np.zeros((0, self._dim or 0), dtype=np.float32)
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
        self._dim = int(vectors.shape[1]) if len(vectors) else self._dim
        self._adopt_vectors(vectors)
        self._seq = stored.seq

    def _adopt_vectors(self, vectors: FloatArray) -> None:
        """All rows in ``vectors`` (mapped by a save or an open), none in the heap."""
        self._n = len(vectors)
        self._base = vectors if len(vectors) else np.zeros((0, self._dim or 0), np.float32)
        self._buffer = np.zeros((0, self._dim or 0), dtype=np.float32)

    @property
    def _parts(self) -> list[FloatArray]:
        """The vectors of every row, in order: the mapped base, then the heap tail."""
        return [self._base, self._buffer[:self._n - len(self._base)]]

    def _scores(self, q: FloatArray, rows: IntArray | None = None) -> FloatArray:
        """``vectors @ q`` over every row, or over ``rows`` (ascending), part by part: no
        copy of the whole matrix."""
        base, tail = self._parts
        nb = len(base)
        if rows is None:
            return np.concatenate([base @ q, tail @ q]) if len(tail) else base @ q
        split = int(np.searchsorted(rows, nb))
        return np.concatenate([base[rows[:split]] @ q, tail[rows[split:] - nb] @ q])

    def _all_in_heap(self) -> None:
        """Copy the mapped base into the heap (a write changes or deletes base rows)."""
        if len(self._base):
            base, tail = self._parts
            grown = np.empty((self._n + self._n // 8, self._dim or 0), dtype=np.float32)
            grown[:len(base)], grown[len(base):self._n] = base, tail
            self._buffer = grown
            self._base = np.zeros((0, self._dim or 0), dtype=np.float32)

    def _room_for(self, extra: int) -> None:
        """Room in the heap tail for ``extra`` more rows: it grows by half when full
        (amortised O(1) a row)."""
        used = self._n - len(self._base)
        if used + extra <= len(self._buffer):
            return
        grown = np.empty((max(used + extra, len(self._buffer) * 3 // 2, 64), self._dim or 0),
                         dtype=np.float32)
        grown[:used] = self._buffer[:used]
        self._buffer = grown

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
            _, vectors = self._store.write(self._seq + 1, self._parts, metric, heap)
            rows.adopt(None, heap)
        else:  # the kept table rows copied as bytes, then the new and replaced ones
            copied, fresh, order = rows.save_plan()
            if order is not None:  # replaced rows move last (all rows are in the heap then)
                self._all_in_heap()
            parts = self._parts if order is None else [self._buffer[:self._n][order]]
            table, vectors = self._store.write(self._seq + 1, parts, metric, fresh,
                                               base=rows.table, base_rows=copied)
            rows.adopt(table)
        self._adopt_vectors(vectors)
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
                self._adopt_vectors(np.zeros((0, self._dim), dtype=np.float32))
            if vectors.shape[1] != self._dim:
                raise DimensionMismatchError(
                    f"index {self.name!r} holds {self._dim}-d vectors, got {vectors.shape[1]}-d")
            if self.context.metric == "cosine":
                norms = np.linalg.norm(vectors, axis=1, keepdims=True)
                vectors = vectors / np.maximum(norms, 1e-12)
            found = [self._rows.find(c.id) for c in chunks]
            if any(row is not None and row < len(self._base) for row in found):
                self._all_in_heap()  # base rows change
            self._room_for(len(chunks))
            nb = len(self._base)
            for chunk, vec, row in zip(chunks, vectors, found, strict=True):
                if row is None:
                    row = self._rows.find(chunk.id)  # an id given twice in this call
                if row is None:
                    row = self._rows.append(chunk)
                    self._n += 1
                else:
                    self._rows.replace(row, chunk)
                self._buffer[row - nb] = vec
            self._save()
        return len(chunks)

    def delete(self, doc_ids: Sequence[str]) -> int:
        with self._lock:
            kept = self._rows.remove_docs(set(doc_ids))
            if kept is None:
                return 0
            self._all_in_heap()
            self._buffer = self._buffer[:self._n][kept]  # a heap copy
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
                scores = self._scores(q)
            else:
                passes = compile_filter(filters)  # ``in`` lists as hashed sets
                rows = np.fromiter((i for i, m in enumerate(self._rows.metadata())
                                    if passes(m)), dtype=np.int64)
                if len(rows) == 0:
                    return []
                scores = self._scores(q, rows)
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
