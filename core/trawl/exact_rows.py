"""The exact index's chunks in row order, over a mapped chunk table without decoding it.

Rows are the table's kept rows (``keep``, table row numbers in order; a base row an upsert
or metadata update replaced is held in ``replaced``) followed by heap rows (``tail``). A
write changes only this bookkeeping, so the first write after a 1M-row reopen decodes
nothing, and a save copies the kept rows as bytes (``ChunkTable.write(base=...)``) instead
of decoding and re-encoding them. An index without a table (new, small, version 1) keeps
every row in ``tail``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from .chunktable import ChunkTable
from .models import Chunk

IntArray = npt.NDArray[np.int64]


class ChunkRows:
    """Row ``i`` of the index: ``keep[i]`` of the table for ``i < len(keep)``, then ``tail``."""

    def __init__(self, table: ChunkTable | None = None, heap: list[Chunk] | None = None) -> None:
        self.adopt(table, heap)

    def adopt(self, table: ChunkTable | None, heap: list[Chunk] | None = None) -> None:
        """Start over from what a save (or open) wrote: every row in ``table`` or ``heap``."""
        self.table = table
        self.keep: IntArray = np.arange(len(table) if table is not None else 0, dtype=np.int64)
        self.whole = True  # keep is every table row, in order: table row == row
        self.replaced: dict[int, Chunk] = {}  # table row -> the chunk that replaced it
        self.tail: list[Chunk] = list(heap or [])
        self._tail_row: dict[str, int] | None = None
        self._table_metadata: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.keep) + len(self.tail)

    # -- reading ---------------------------------------------------------------------------
    def chunk(self, row: int) -> Chunk:
        base = len(self.keep)
        if row >= base:
            return self.tail[row - base]
        table_row = int(self.keep[row])
        got = self.replaced.get(table_row)
        return got if got is not None else self._table()[table_row]

    def chunk_id(self, row: int) -> str:  # a replacement keeps its id
        base = len(self.keep)
        return self.tail[row - base].id if row >= base else self._table().chunk_id(
            int(self.keep[row]))

    def find(self, chunk_id: str) -> int | None:
        """The row holding ``chunk_id``; lookups come from the table (built on first use)
        and a dict over the heap rows."""
        if self._tail_row is None:
            self._tail_row = {c.id: i for i, c in enumerate(self.tail)}
        at = self._tail_row.get(chunk_id)
        if at is not None:
            return len(self.keep) + at
        if self.table is None:
            return None
        table_row = self.table.row_of(chunk_id)
        if table_row is None:
            return None
        if self.whole:
            return table_row
        i = int(np.searchsorted(self.keep, table_row))
        return i if i < len(self.keep) and int(self.keep[i]) == table_row else None

    def metadata(self) -> Iterator[Mapping[str, Any]]:
        """Every row's metadata in row order (the table's decoded once, at the first call:
        the first filtered search)."""
        if self.table is not None and len(self.keep):
            if self._table_metadata is None:  # in bulk
                self._table_metadata = self.table.metadatas(range(len(self.table)))
            decoded = self._table_metadata
            if self.whole and not self.replaced:
                yield from decoded
            else:
                replaced = self.replaced
                for table_row in self.keep.tolist():
                    got = replaced.get(table_row)
                    yield got.metadata if got is not None else decoded[table_row]
        for chunk in self.tail:
            yield chunk.metadata

    def doc_ids(self) -> set[str]:
        out = {c.doc_id for c in self.tail} | {c.doc_id for c in self.replaced.values()}
        if self.table is None or not len(self.keep):
            return out
        names = self.table.doc_names()
        if self.whole and not self.replaced:  # every doc the table names has a row
            return out | set(names)
        rows = self.keep if not self.replaced else self.keep[
            ~np.isin(self.keep, np.fromiter(self.replaced, dtype=np.int64))]
        return out | {names[k] for k in np.unique(self.table.doc_numbers[rows]).tolist()}

    def every_chunk(self) -> list[Chunk]:
        """All rows decoded (in bulk): for the one-file layout of a small index."""
        base: list[Chunk] = []
        if self.table is not None and len(self.keep):
            base = list(self.table.chunks(self.keep.tolist()))
            for i, table_row in enumerate(self.keep.tolist()):
                got = self.replaced.get(table_row)
                if got is not None:
                    base[i] = got
        return base + self.tail

    # -- writing ---------------------------------------------------------------------------
    def append(self, chunk: Chunk) -> int:
        if self._tail_row is None:
            self._tail_row = {c.id: i for i, c in enumerate(self.tail)}
        self._tail_row[chunk.id] = len(self.tail)
        self.tail.append(chunk)
        return len(self) - 1

    def replace(self, row: int, chunk: Chunk) -> None:
        """``chunk`` (the same id) in place of ``row``."""
        base = len(self.keep)
        if row >= base:
            self.tail[row - base] = chunk
        else:
            self.replaced[int(self.keep[row])] = chunk

    def remove_docs(self, gone: set[str]) -> npt.NDArray[np.bool_] | None:
        """Drop every row of these documents; returns the kept-rows mask (``None`` when
        nothing went), for the caller to compact its vectors the same way."""
        base_mask = np.ones(len(self.keep), dtype=bool)
        if self.table is not None and len(self.keep):
            numbers = [n for n in (self.table.doc_number(d) for d in gone) if n is not None]
            if numbers:
                base_mask = ~np.isin(self.table.doc_numbers[self.keep], numbers)
            for table_row, chunk in self.replaced.items():  # their doc id is the chunk's
                i = int(np.searchsorted(self.keep, table_row))
                base_mask[i] = chunk.doc_id not in gone
        tail_mask = np.fromiter((c.doc_id not in gone for c in self.tail), dtype=bool,
                                count=len(self.tail))
        mask = np.concatenate([base_mask, tail_mask])
        if mask.all():
            return None
        if not base_mask.all():
            self.keep, self.whole = self.keep[base_mask], False
            kept = set(self.keep.tolist())
            self.replaced = {r: c for r, c in self.replaced.items() if r in kept}
        if not tail_mask.all():
            self.tail = [c for c, m in zip(self.tail, tail_mask.tolist(), strict=True) if m]
            self._tail_row = None
        return mask

    def save_plan(self) -> tuple[IntArray, list[Chunk], IntArray | None]:
        """What a table write takes: the table rows copied as bytes, then the chunks
        written fresh (replaced base rows, then the heap rows), and the order of the rows
        in that write (``None`` when it is the current row order)."""
        if not self.replaced:
            return self.keep, self.tail, None
        fresh_at = np.isin(self.keep, np.fromiter(self.replaced, dtype=np.int64))
        positions = np.arange(len(self), dtype=np.int64)
        order = np.concatenate([positions[:len(self.keep)][~fresh_at],
                                positions[:len(self.keep)][fresh_at],
                                positions[len(self.keep):]])
        fresh = [self.replaced[int(r)] for r in self.keep[fresh_at].tolist()] + self.tail
        return self.keep[~fresh_at], fresh, order

    def _table(self) -> ChunkTable:
        assert self.table is not None
        return self.table
