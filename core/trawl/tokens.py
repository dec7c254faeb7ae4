"""The token store: every chunk's token vectors, for exact MaxSim at query time.

One store per index, shared by every component that scores late interaction (the
``multivector`` retriever's exact rerank and the ``maxsim`` reranker of ``hybrid-rerank``),
so nothing about a stored passage is encoded at query time.

Layout of ``<index>/tokens.d/`` (retriever names hold no dot, so no retriever folder clashes):

* ``rows-<generation>.i8s``: one contiguous array of fixed-size rows, append-only,
  memory-mapped for reads (raw little-endian, no header, no pickle). Each row is one token:
  ``dim`` int8 values then its float32 scale (symmetric per-token quantisation: value =
  int8 * scale, scale = max |x| / 127). A MaxSim score moves by ~1e-3 against float32, far
  below the gaps that reorder candidates, and int8 rows convert to float32 ~100x faster
  than float16 ones in numpy (measured: 0.35 vs 99 ms for 10k x 384), which is what the
  query pays. Stores written in float16 (``rows-<generation>.f16``, format ``f16``) open
  and grow in their own format;
* ``tokens.sqlite``: ``chunk_id -> (doc_id, first row, rows)`` plus meta (dim, row format,
  the data file's generation, the producing encoder's fingerprint).

Crash safety: rows are appended and fsynced *before* the SQLite transaction that points at
them commits, so a crash leaves at worst unreferenced bytes past the end, cut off on the
next open. Deleted rows are dead space until more than half the file is dead; then the live
rows are copied into the next generation's file, and one transaction switches every offset
and the generation at once (a crash before it keeps the old file, after it the new one;
whichever file is not current is removed on open).

Why hand-written: no library offers an append-only, crash-safe, memory-mapped ragged array
keyed by chunk id; it is ~200 lines on numpy + sqlite3 (stdlib).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import DimensionMismatchError, IndexCorruptError
from .storage import private_file
from .vectors import FloatArray

FORMATS = {"int8": ".i8s", "f16": ".f16"}  # row format -> data file suffix
DEFAULT_FORMAT = "int8"
LEGACY_FILE = "tokens.sqlite"  # the per-retriever SQLite store of earlier versions
_COMPACT_MIN_ROWS = 65_536
#: rows converted and multiplied per step of ``maxsim`` (2048 x 384 float32 = 3 MB)
_BLOCK_ROWS = 2048
_scratch = threading.local()


def _connect(path: Path | None) -> sqlite3.Connection:
    try:
        if path is None:
            return sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        private_file(path)  # token rows spell out the documents: 0600 (SQLite copies it)
        conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn
    except sqlite3.DatabaseError as exc:
        raise IndexCorruptError(f"token store {path} is not a valid database ({exc}); "
                                "delete the tokens folder and reopen to rebuild it") from exc


class TokenStore:
    """Per-chunk token matrices in one memory-mapped float16 array (``folder=None``: memory)."""

    def __init__(self, folder: Path | None, *, row_format: str = DEFAULT_FORMAT) -> None:
        """Open (or create) the store; ``row_format`` applies only to a new, empty store."""
        self.folder = folder
        self._lock = threading.RLock()
        self._conn = _connect(folder / "tokens.sqlite" if folder else None)
        try:
            self._conn.executescript(
                """
                CREATE TABLE IF NOT EXISTS chunks (chunk_id TEXT PRIMARY KEY,
                    doc_id TEXT NOT NULL, start INTEGER NOT NULL, rows INTEGER NOT NULL);
                CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                """)
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"token store in {folder} is unreadable ({exc}); delete "
                                    "the tokens folder and reopen the index to rebuild it") from exc
        self.dim: int | None = self._meta("dim")
        # a store with rows but no recorded format was written as float16 (the first format)
        self.format: str = self._meta("format") or ("f16" if self.dim is not None
                                                     else row_format)
        if self.format not in FORMATS:
            raise IndexCorruptError(f"token store in {folder}: unknown row format "
                                    f"{self.format!r}; delete the tokens folder and reopen")
        self.generation: int = self._meta("generation") or 0
        self._spans: dict[str, tuple[int, int]] = {}
        self._rows_used = 0
        for cid, start, rows in self._conn.execute("SELECT chunk_id, start, rows FROM chunks"):
            self._spans[cid] = (int(start), int(rows))
            self._rows_used = max(self._rows_used, int(start) + int(rows))
        self._live_rows = sum(r for _, r in self._spans.values())
        self._memory = np.zeros((0, self._row_bytes), dtype=np.uint8)  # folder=None only
        self._view: npt.NDArray[np.uint8] | None = None
        if folder is not None:
            self._tidy_files()
        self._remap()

    # -- meta -------------------------------------------------------------------------------
    def _meta(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _set_meta(self, key: str, value: Any) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))

    @property
    def producer(self) -> Any:
        """Fingerprint of the encoder that made the stored vectors (None: nothing stored yet)."""
        with self._lock:
            return self._meta("producer")

    def set_producer(self, fingerprint: Any) -> None:
        with self._lock:
            self._set_meta("producer", fingerprint)

    # -- row format -------------------------------------------------------------------------
    @property
    def _row_bytes(self) -> int:
        dim = self.dim or 0
        return dim + 4 if self.format == "int8" else 2 * dim

    def _encode_rows(self, block: FloatArray) -> npt.NDArray[np.uint8]:
        """float32 ``(n, dim)`` -> raw rows ``(n, row_bytes)`` in this store's format."""
        if self.format == "f16":
            return block.astype("<f2").view(np.uint8).reshape(len(block), -1)
        peak = np.abs(block).max(axis=1) if block.size else np.zeros(len(block), np.float32)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype("<f4")
        values = np.clip(np.rint(block / scale[:, None]), -127, 127).astype(np.int8)
        raw = np.empty((len(block), self._row_bytes), dtype=np.uint8)
        raw[:, :-4] = values.view(np.uint8)
        raw[:, -4:] = scale.view(np.uint8).reshape(-1, 4)
        return raw

    def _decode_rows(self, raw: npt.NDArray[np.uint8]
                     ) -> tuple[FloatArray, FloatArray | None]:
        """Raw rows -> float32 values (unscaled for int8) and the per-row scales (or None)."""
        if self.format == "f16":
            return np.ascontiguousarray(raw).view("<f2").astype(np.float32), None
        values = raw[:, :-4].view(np.int8).astype(np.float32)
        scales = np.ascontiguousarray(raw[:, -4:]).view("<f4").reshape(-1)
        return values, scales.astype(np.float32)

    # -- files ------------------------------------------------------------------------------
    def _data_path(self, generation: int | None = None) -> Path:
        assert self.folder is not None
        gen = self.generation if generation is None else generation
        return self.folder / f"rows-{gen}{FORMATS[self.format]}"

    def _tidy_files(self) -> None:
        """Cut bytes past the last committed row (a crash mid-append); drop old generations."""
        assert self.folder is not None
        current = self._data_path()
        for p in self.folder.glob("rows-*"):
            if p != current:
                p.unlink(missing_ok=True)
        need = self._rows_used * self._row_bytes
        size = current.stat().st_size if current.exists() else 0
        if size < need:
            raise IndexCorruptError(
                f"token store {current} holds {size} bytes but its table points at {need}; "
                f"delete {self.folder} and reopen the index: the vectors are re-encoded")
        if size > need:
            with open(current, "r+b") as fh:
                fh.truncate(need)
                os.fsync(fh.fileno())

    def _remap(self) -> None:
        """Point the read view at all committed rows (a new memory map after appends)."""
        if self.folder is None:
            self._view = self._memory[: self._rows_used]
            return
        if self._rows_used == 0 or not self.dim:
            self._view = None
            return
        # a plain ndarray over the map: slicing a np.memmap subclass costs ~10 us a slice
        self._view = np.asarray(np.memmap(self._data_path(), dtype=np.uint8, mode="r",
                                          shape=(self._rows_used, self._row_bytes)))

    def _append(self, rows: npt.NDArray[np.uint8]) -> int:
        """Write rows after the last committed one; returns the first row's number."""
        start = self._rows_used
        if self.folder is None:
            if len(self._memory) < start + len(rows):
                grown = np.zeros((max(2 * len(self._memory), start + len(rows)), rows.shape[1]),
                                 dtype=np.uint8)
                grown[:start] = self._memory[:start]
                self._memory = grown
            self._memory[start:start + len(rows)] = rows
            return start
        path = self._data_path()
        private_file(path)
        with open(path, "ab") as fh:
            fh.truncate(start * rows.shape[1])
            fh.write(rows.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        return start

    # -- writing ----------------------------------------------------------------------------
    def put(self, chunk_ids: Sequence[str], doc_ids: Sequence[str],
            matrices: Sequence[FloatArray]) -> None:
        """Store (or replace) chunks' token matrices, durable when this returns."""
        if not chunk_ids:
            return
        arrays = [np.asarray(m, dtype=np.float32) for m in matrices]
        if len(arrays) != len(chunk_ids) or len(doc_ids) != len(chunk_ids):
            raise ValueError("chunk_ids, doc_ids and matrices differ in length")
        dims = {a.shape[1] for a in arrays if a.ndim == 2}
        if any(a.ndim != 2 for a in arrays) or len(dims) > 1:
            raise DimensionMismatchError("token matrices must be 2-D and equally wide, got "
                                         f"shapes {sorted({a.shape for a in arrays})[:3]}")
        with self._lock:
            dim = dims.pop() if dims else (self.dim or 0)
            if self.dim is None:
                self.dim = dim
                self._memory = np.zeros((0, self._row_bytes), dtype=np.uint8)
            elif dim != self.dim:
                raise DimensionMismatchError(
                    f"token store {self.folder or ':memory:'} holds {self.dim}-d vectors, "
                    f"got {dim}-d")
            start = self._append(self._encode_rows(np.concatenate(arrays)))
            rows = []
            offset = start
            for cid, did, a in zip(chunk_ids, doc_ids, arrays, strict=True):
                rows.append((cid, did, offset, len(a)))
                offset += len(a)
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?)", rows)
                self._set_meta("dim", self.dim)
                self._set_meta("format", self.format)
                self._set_meta("generation", self.generation)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            for cid, _, s, n in rows:
                old = self._spans.get(cid)
                if old is not None:
                    self._live_rows -= old[1]
                self._spans[cid] = (s, n)
                self._live_rows += n
            self._rows_used = offset
            self._remap()

    def delete_docs(self, doc_ids: Sequence[str]) -> None:
        if not doc_ids:
            return
        with self._lock:
            gone: list[str] = []
            for start in range(0, len(doc_ids), 900):
                part = list(doc_ids[start:start + 900])
                marks = ",".join("?" * len(part))
                gone += [r[0] for r in self._conn.execute(
                    f"SELECT chunk_id FROM chunks WHERE doc_id IN ({marks})", part)]
            if not gone:
                return
            self._conn.execute("BEGIN")
            self._conn.executemany("DELETE FROM chunks WHERE doc_id=?", [(d,) for d in doc_ids])
            self._conn.execute("COMMIT")
            for cid in gone:
                _, n = self._spans.pop(cid)
                self._live_rows -= n
            if self._rows_used > _COMPACT_MIN_ROWS and self._live_rows * 2 < self._rows_used:
                self.compact()

    def clear(self) -> None:
        """Forget every vector (the producing encoder changed)."""
        with self._lock:
            self.delete_docs(sorted(self.doc_ids()))
            self.compact()

    def compact(self) -> None:
        """Copy live rows into the next generation's file and switch to it atomically."""
        with self._lock:
            order = sorted(self._spans.items(), key=lambda kv: kv[1][0])
            new_spans: dict[str, tuple[int, int]] = {}
            offset = 0
            parts = []
            view = self._view
            for cid, (s, n) in order:
                new_spans[cid] = (offset, n)
                if view is not None:
                    parts.append(np.asarray(view[s:s + n]))
                offset += n
            block = np.concatenate(parts) if parts else np.zeros((0, self._row_bytes), np.uint8)
            if self.folder is None:
                self._memory = block.copy()
            else:
                new_gen = self.generation + 1
                path = self._data_path(new_gen)
                private_file(path)
                with open(path, "wb") as fh:
                    fh.write(block.tobytes())
                    fh.flush()
                    os.fsync(fh.fileno())
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany("UPDATE chunks SET start=? WHERE chunk_id=?",
                                       [(s, cid) for cid, (s, _) in new_spans.items()])
                if self.folder is not None:
                    self._set_meta("generation", self.generation + 1)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            old = self._data_path() if self.folder is not None else None
            if self.folder is not None:
                self.generation += 1
            self._spans = new_spans
            self._rows_used = offset
            self._live_rows = offset
            self._view = None  # release the old map before removing its file
            if old is not None:
                old.unlink(missing_ok=True)
            self._remap()

    # -- reading ----------------------------------------------------------------------------
    def get(self, chunk_ids: Sequence[str]) -> list[FloatArray | None]:
        """Token matrices as float32 (``None`` where a chunk has none stored)."""
        with self._lock:
            view = self._view
            spans = [self._spans.get(c) for c in chunk_ids]
        out: list[FloatArray | None] = []
        for span in spans:
            if span is None or view is None:
                out.append(None if span is None else np.zeros((0, self.dim or 0), np.float32))
                continue
            values, scales = self._decode_rows(np.asarray(view[span[0]:span[0] + span[1]]))
            out.append(values if scales is None else values * scales[:, None])
        return out

    def chunk_ids(self) -> list[str]:
        """Every stored chunk id, sorted."""
        with self._lock:
            return sorted(self._spans)

    def has(self, chunk_ids: Sequence[str]) -> list[bool]:
        with self._lock:
            return [c in self._spans for c in chunk_ids]

    def maxsim(self, query: FloatArray, chunk_ids: Sequence[str]
               ) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
        """Exact MaxSim ``Σ_q max_d <q, d>`` of the query against each chunk, vectorised.

        The candidates' contiguous row spans are copied out of the map in one concatenate,
        then converted to float32 and multiplied with the query ``_BLOCK_ROWS`` rows at a
        time in a small per-thread buffer: converting all rows at once allocates tens of MB
        per query, and the kernel's page faults on that fresh memory cost as much as the
        GEMM itself (measured on SciFact, 200 candidates, ~31k rows: 20 ms -> 11 ms CPU).
        Rows are scaled after the GEMM; per-chunk maxima come from ``np.maximum.reduceat``.
        Returns the scores and a mask of chunks found (a chunk without stored vectors
        scores 0 and is ``False`` in the mask).
        """
        n = len(chunk_ids)
        scores = np.zeros(n, dtype=np.float32)
        with self._lock:
            view = self._view
            spans = [self._spans.get(c) for c in chunk_ids]
        found = np.fromiter((s is not None for s in spans), dtype=bool, count=n)
        if view is None or len(query) == 0:
            return scores, found
        present = [(i, s) for i, s in enumerate(spans) if s is not None and s[1] > 0]
        if not present:
            return scores, found
        keep = np.fromiter((i for i, _ in present), dtype=np.int64, count=len(present))
        lens = np.fromiter((s[1] for _, s in present), dtype=np.int64, count=len(present))
        offsets = np.cumsum(lens) - lens
        raw = np.concatenate([view[s:s + r] for _, (s, r) in present])
        q = np.ascontiguousarray(query, dtype=np.float32)
        sims = np.empty((len(q), len(raw)), dtype=np.float32)  # (t_q, rows)
        block = self._block_buffer()
        for b in range(0, len(raw), _BLOCK_ROWS):
            part = raw[b:b + _BLOCK_ROWS]
            rows = block[:len(part)]
            self._values_into(part, rows)
            np.matmul(q, rows.T, out=sims[:, b:b + len(part)])
        if self.format == "int8":
            sims *= np.ascontiguousarray(raw[:, -4:]).view("<f4").reshape(1, -1)
        scores[keep] = np.maximum.reduceat(sims, offsets, axis=1).sum(axis=0)
        return scores, found

    def _block_buffer(self) -> FloatArray:
        """This thread's float32 scratch block (searches may run in parallel threads)."""
        buf: FloatArray | None = getattr(_scratch, "block", None)
        if buf is None or buf.shape[1] != self.dim:
            buf = np.empty((_BLOCK_ROWS, self.dim or 0), dtype=np.float32)
            _scratch.block = buf
        return buf

    def _values_into(self, raw: npt.NDArray[np.uint8], out: FloatArray) -> None:
        """Raw rows -> float32 values in ``out`` (unscaled for int8), without allocating."""
        if self.format == "f16":
            np.copyto(out, np.ascontiguousarray(raw).view("<f2"), casting="same_kind")
        else:
            np.copyto(out, raw[:, :-4].view(np.int8), casting="unsafe")

    def doc_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT DISTINCT doc_id FROM chunks")}

    def count(self) -> int:
        with self._lock:
            return len(self._spans)

    def nbytes(self) -> int:
        """Bytes of the data file (live and dead rows)."""
        return self._rows_used * self._row_bytes

    def close(self) -> None:
        with self._lock:
            self._view = None
            try:
                self._conn.close()
            except sqlite3.Error:
                pass

    # -- migration --------------------------------------------------------------------------
    def import_legacy(self, path: Path) -> int:
        """Copy an earlier version's SQLite token store (float16 or float32 blobs) into this
        one; returns the chunks copied. The old file is left for the caller to remove."""
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            rows = conn.execute("SELECT chunk_id, doc_id, rows, dim, data FROM tokens").fetchall()
            conn.close()
        except sqlite3.DatabaseError as exc:
            raise IndexCorruptError(f"old token store {path} is unreadable ({exc}); delete it "
                                    "and reopen the index: the vectors are re-encoded") from exc
        batch_ids: list[str] = []
        batch_docs: list[str] = []
        batch: list[FloatArray] = []
        for cid, did, n, dim, data in rows:
            width = len(data) // max(1, n * dim) if n and dim else 2
            dtype = {2: np.float16, 4: np.float32}.get(width)
            if dtype is None:
                raise IndexCorruptError(f"old token store {path}: chunk {cid!r} has {len(data)} "
                                        f"bytes for {n}x{dim} values")
            batch_ids.append(cid)
            batch_docs.append(did)
            batch.append(np.frombuffer(data, dtype=dtype).reshape(n, dim).astype(np.float32))
            if len(batch) >= 1024:
                self.put(batch_ids, batch_docs, batch)
                batch_ids, batch_docs, batch = [], [], []
        self.put(batch_ids, batch_docs, batch)
        return len(rows)
