"""Every row's chunk, whether it lives in the mapped snapshot or in the heap.

Rows ``[0, base_n)`` are the snapshot's, read from its ``trawl.chunktable.ChunkTable``
one row at a time (a reopen decodes nothing); rows appended since (replayed deltas, this
session's writes) are a list. Deleted rows keep their number (``alive`` is False) until
the index renumbers them. The chunk id → row and doc → rows lookups of the base are the
table's, built on first use; only the tail keeps dicts.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from trawl.chunktable import ChunkTable
from trawl.models import Chunk


class Rows:
    """The row accessor of a ``BM25Index`` (see the module docstring)."""

    def __init__(self, table: ChunkTable | None = None, chunks: Sequence[Chunk] = ()) -> None:
        self.table = table
        self.base_n = len(table) if table is not None else 0
        self.tail: list[Chunk | None] = []
        self.alive: npt.NDArray[np.bool_] = np.ones(self.base_n, dtype=bool)
        self.dead = 0
        self._tail_row: dict[str, int] = {}  # chunk id -> row, live tail rows
        self._tail_docs: dict[str, list[int]] = {}  # doc id -> live tail rows
        if chunks:
            self.append(chunks)

    def __len__(self) -> int:
        return self.base_n + len(self.tail)

    @property
    def live(self) -> int:
        return len(self) - self.dead

    def chunk(self, row: int) -> Chunk | None:
        """The row's chunk, ``None`` when deleted."""
        if not self.alive[row]:
            return None
        if row < self.base_n:
            assert self.table is not None
            return self.table[row]
        return self.tail[row - self.base_n]

    def chunk_id(self, row: int) -> str:
        """The id of a live row (ties in ranking are broken by it)."""
        if row < self.base_n:
            assert self.table is not None
            return self.table.chunk_id(row)
        chunk = self.tail[row - self.base_n]
        return chunk.id if chunk is not None else ""

    def chunks(self, rows: Sequence[int]) -> list[Chunk | None]:
        """``chunk`` of many rows, the base's decoded in one pass (a query's hits)."""
        out: list[Chunk | None] = [None] * len(rows)
        base = [(i, r) for i, r in enumerate(rows) if r < self.base_n and self.alive[r]]
        if base:
            assert self.table is not None
            for (i, _), chunk in zip(base, self.table.chunks(r for _, r in base), strict=True):
                out[i] = chunk
        for i, r in enumerate(rows):
            if r >= self.base_n:
                out[i] = self.tail[r - self.base_n]
        return out

    def chunk_ids(self, rows: Sequence[int]) -> list[str]:
        """``chunk_id`` of many rows, the base's decoded in one pass (ranking ties)."""
        if self.table is None or not any(r < self.base_n for r in rows):
            return [self.chunk_id(r) for r in rows]
        base = [r for r in rows if r < self.base_n]
        ids = iter(self.table.chunk_ids(base))
        return [next(ids) if r < self.base_n else self.chunk_id(r) for r in rows]

    def metadata(self, row: int) -> Mapping[str, Any] | None:
        """The row's metadata, ``None`` when deleted (what filter columns read)."""
        if not self.alive[row]:
            return None
        if row < self.base_n:
            assert self.table is not None
            return self.table.metadata(row)
        chunk = self.tail[row - self.base_n]
        return None if chunk is None else chunk.metadata

    def row_of(self, chunk_id: str) -> int | None:
        """The live row holding ``chunk_id``."""
        row = self._tail_row.get(chunk_id)
        if row is not None:
            return row
        if self.table is not None:
            base = self.table.row_of(chunk_id)
            if base is not None and self.alive[base]:
                return base
        return None

    def rows_of(self, chunk_ids: Sequence[str]) -> list[int | None]:
        """``row_of`` for many ids, the base's searched in one vectorised pass."""
        out: list[int | None] = [self._tail_row.get(c) for c in chunk_ids]
        if self.table is not None:
            missing = [i for i, row in enumerate(out) if row is None]
            found = self.table.rows_of([chunk_ids[i] for i in missing])
            for i, row in zip(missing, found, strict=True):
                if row is not None and self.alive[row]:
                    out[i] = row
        return out

    def rows_of_doc(self, doc_id: str) -> list[int]:
        """The live rows of a doc id, in row order."""
        rows: list[int] = []
        if self.table is not None:
            base = self.table.rows_of_doc(doc_id)
            if len(base):
                rows = base[self.alive[base]].tolist()
        rows.extend(self._tail_docs.get(doc_id, ()))
        return rows

    def doc_ids(self) -> set[str]:
        """The doc ids with at least one live row."""
        out = set(self._tail_docs)
        if self.table is not None and self.base_n:
            names = self.table.doc_names()
            numbers = self.table.doc_numbers
            if self.dead:
                numbers = numbers[self.alive[:self.base_n]]
            used = np.bincount(numbers, minlength=len(names)) > 0
            out.update(names if used.all() else itertools.compress(names, used.tolist()))
        return out

    def live_chunks(self) -> Iterator[Chunk]:
        """The live chunks in row order (the base's decoded a block at a time)."""
        if self.table is not None:
            yield from self.table.chunks(np.flatnonzero(self.alive[:self.base_n]).tolist())
        for chunk in self.tail:
            if chunk is not None:
                yield chunk

    def base_live(self) -> npt.NDArray[np.int64]:
        """The live rows of the base table."""
        return np.flatnonzero(self.alive[:self.base_n]).astype(np.int64)

    def tail_live(self) -> Iterator[Chunk]:
        """The live chunks after the base, in row order."""
        for chunk in self.tail:
            if chunk is not None:
                yield chunk

    def append(self, chunks: Sequence[Chunk]) -> None:
        """New rows at the end (the caller has killed the rows they replace)."""
        start = len(self)
        self.tail.extend(chunks)
        self.alive = np.concatenate([self.alive, np.ones(len(chunks), dtype=bool)])
        docs = self._tail_docs
        for row, chunk in enumerate(chunks, start=start):
            self._tail_row[chunk.id] = row
            docs.setdefault(chunk.doc_id, []).append(row)

    def kill(self, row: int) -> bool:
        """Mark a row deleted; ``False`` when it already was."""
        if not self.alive[row]:
            return False
        self.alive[row] = False
        self.dead += 1
        if row >= self.base_n:
            chunk = self.tail[row - self.base_n]
            assert chunk is not None
            self.tail[row - self.base_n] = None
            del self._tail_row[chunk.id]
            rows = self._tail_docs[chunk.doc_id]
            rows.remove(row)
            if not rows:
                del self._tail_docs[chunk.doc_id]
        return True


class RowMetadata(Sequence[Mapping[str, Any] | None]):
    """The rows' metadata as a sequence (``None`` for deleted rows), for filter columns;
    base rows are decoded as a column reads them."""

    def __init__(self, rows: Rows) -> None:
        self._rows = rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i: Any) -> Any:
        if not isinstance(i, slice):
            return self._rows.metadata(i)
        rows = self._rows
        wanted = range(*i.indices(len(rows)))
        table, base_n = rows.table, rows.base_n
        if table is None or wanted.step != 1 or wanted.start >= base_n:
            return [rows.metadata(r) for r in wanted]
        base = range(wanted.start, min(wanted.stop, base_n))  # decoded in one pass
        out: list[Mapping[str, Any] | None] = list(table.metadatas(base))
        for at, r in enumerate(base):
            if not rows.alive[r]:
                out[at] = None
        out.extend(rows.metadata(r) for r in range(base.stop, wanted.stop))
        return out
