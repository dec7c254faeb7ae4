"""A columnar table of chunks on disk: what an index reopens without decoding.

An index that keeps every chunk as a pydantic object pays for it twice on reopen: parsing
and validating every chunk (~0.8 s per 100k) and holding them in the heap (~2 KB each).
A ``ChunkTable`` stores the same chunks as columns in files: integer arrays are mapped
read-only (``np.load(mmap_mode="r")``), the UTF-8 blobs are read a row at a time with
``os.pread`` (page cache, never the heap; see ``_Blob`` for why not mapped):

=====================  =========================================================
``<prefix>.ids``       chunk ids: UTF-8 blob ``.bin`` + ``.offsets.npy`` (int64, n + 1)
``<prefix>.texts``     texts, the same way
``<prefix>.metadata``  each chunk's metadata as JSON (empty metadata: zero bytes)
``<prefix>.docs``      the distinct doc ids, in first-seen order
``doc_index.npy``      per row, the number of its doc id in ``docs`` (int32)
``positions.npy``      per row, ``index``, ``start``, ``end`` (int64, n × 3)
``*.digests.npy``      per blob, the sha256 of every 4 KiB block (uint8, blocks × 32)
``{ids,docs}.keys``    a stable 64-bit hash (blake2b) of each id, sorted, and the
                       row (``.order.npy``) of each: a lookup is a binary search
``doc_rows.npy``       rows grouped by doc number, ``doc_bounds.npy`` each group's start
=====================  =========================================================

Reading ``table[row]`` decodes that row only (a ``Chunk`` built by
``trawl.models.trusted``: the files are trawl's own and were checked on open). Lookups by
chunk id and by doc id are binary searches in mapped arrays written with the table, so
neither an open nor the first write after it decodes every id (building a dict of them
cost ~0.07 s per 100k ids and ~110 bytes an id). A hit of a hash is confirmed against
the stored id.

**Integrity, and why it is split.** Opening checks the structure of every file (array
shapes and dtypes, offsets monotone and ending exactly at the blob's size, doc numbers and
lookup rows in range) and the sha256 of every ``.npy`` file (~90 bytes a row: ~0.06 s per
million rows at the 1.6 GB/s sha256 measured here). The blobs (the texts alone are
~600 MB at 1M chunks, ~0.4 s to hash, most of the < 1 s budget for a reopen's first
answer) are checked lazily, per 4 KiB block against ``digests``, the first time a row in
that block is read; ``verify()`` checks every block and every whole-file sha256 on demand.
So a corrupt or hostile file is an ``IndexCorruptError`` naming the file, never an
out-of-bounds read, a crash or silently wrong text (a hostile file with forged digests
can at worst make a lookup miss), and an open does not read what no query touches.

Files are written through ``trawl.storage.atomic_writer`` (temp file, fsync, rename), the
chunks streamed in blocks so memory stays bounded by a block plus ~80 bytes a row of
integer columns. A table is committed only by the caller's manifest, which stores the
entry ``write`` returns; files a crash left behind without it are the caller's to remove.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
from pydantic_core import to_jsonable_python

from .errors import IndexCorruptError
from .models import Chunk, trusted
from .storage import atomic_writer

__all__ = ["ChunkTable", "TableFiles"]

TableFiles = dict[str, dict[str, str]]  # name -> {"file": ..., "sha256": ...}
# a blob's unit of lazy verification: a page, so checking a hit's text reads ~one page
BLOCK_BYTES = 1 << 12
_OLD_BLOCK_BYTES = 1 << 16  # tables written before (read, never written)
_ROWS_PER_WRITE = 10_000  # chunks encoded at a time while writing
#: decoded chunks a table keeps for the next query (``ChunkTable.chunks``): ~8-16 MB
_CACHED_CHUNKS = 8192
#: a request for more rows than this (a snapshot, a bulk copy) bypasses the cache
_CACHEABLE_REQUEST = 1024
_BLOBS = ("ids", "texts", "metadata", "docs")
_UTF8 = "utf-8"
_SURROGATES = "surrogatepass"  # a Python str may hold lone surrogates: keep them exact
Int64Array = npt.NDArray[np.int64]


_KEYED = ("ids", "docs")  # blobs with a lookup (sorted hashes + rows)
_ARRAYS = ("doc_index", "positions", "doc_rows", "doc_bounds")


def _file_names(prefix: str) -> dict[str, str]:
    names = {a: f"{prefix}.{a}.npy" for a in _ARRAYS}
    for blob in _BLOBS:
        names[blob] = f"{prefix}.{blob}.bin"
        names[f"{blob}.offsets"] = f"{prefix}.{blob}.offsets.npy"
        names[f"{blob}.digests"] = f"{prefix}.{blob}.digests.npy"
    for blob in _KEYED:
        names[f"{blob}.keys"] = f"{prefix}.{blob}.keys.npy"
        names[f"{blob}.order"] = f"{prefix}.{blob}.order.npy"
    return names


def _key(encoded: bytes) -> bytes:
    """A stable 64-bit hash of an encoded id (the same in every process, unlike hash())."""
    return hashlib.blake2b(encoded, digest_size=8).digest()


def _key_of(text: str) -> int:
    return int.from_bytes(_key(text.encode(_UTF8, _SURROGATES)), "little", signed=True)


def _metadata_json(metadata: Mapping[str, Any]) -> bytes:
    if not metadata:
        return b""
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"),
                      default=to_jsonable_python).encode(_UTF8, _SURROGATES)


class _Hashing:
    """A write-only file that hashes what passes through (``np.save`` target)."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.sha.update(data)
        return self.fh.write(data)


class _BlobWriter:
    """One blob being written: its row offsets, block digests and whole-file sha256."""

    def __init__(self, fh: BinaryIO, keyed: bool) -> None:
        self.fh = fh
        self.keys: list[Int64Array] | None = [] if keyed else None
        self.size = 0
        self.ends: list[Int64Array] = []
        self.sha = hashlib.sha256()
        self.pending = bytearray()  # the bytes of the block not yet digested
        self.digests: list[bytes] = []

    def add(self, pieces: list[bytes], keys: Int64Array | None = None) -> None:
        """Append rows; ``keys`` are their lookup keys when already known (a copy)."""
        lengths = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
        self.ends.append(self.size + np.cumsum(lengths))
        if self.keys is not None:
            if keys is None:
                keys = np.frombuffer(b"".join(map(_key, pieces)), dtype="<i8").astype(np.int64)
            self.keys.append(keys)
        data = b"".join(pieces)
        self.size += len(data)
        self.fh.write(data)
        self.sha.update(data)
        self.pending += data
        done = len(self.pending) - len(self.pending) % BLOCK_BYTES
        view = memoryview(self.pending)
        self.digests.extend(hashlib.sha256(view[i:i + BLOCK_BYTES]).digest()
                            for i in range(0, done, BLOCK_BYTES))
        view.release()
        del self.pending[:done]

    def finish(self) -> tuple[Int64Array, npt.NDArray[np.uint8]]:
        if self.pending:
            self.digests.append(hashlib.sha256(self.pending).digest())
            self.pending = bytearray()
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), *self.ends])
        digests = np.frombuffer(b"".join(self.digests), dtype=np.uint8).reshape(-1, 32)
        return offsets, digests

    def lookup(self) -> tuple[Int64Array, Int64Array]:
        """The sorted keys and, for each, its row."""
        assert self.keys is not None
        keys = np.concatenate([np.zeros(0, dtype=np.int64), *self.keys])
        order = np.argsort(keys, kind="stable").astype(np.int64)
        return keys[order], order


class _Blob:
    """A blob with its offsets, read with ``os.pread``; each 4 KiB block is checked the
    first time a read covers it.

    Not memory-mapped: a random read of a mapped file maps (and counts in the process's
    RSS) the 64 KiB the kernel faults in around it, so serving 200 queries of 100 hits at
    1M chunks grew RSS by ~0.6 GB of text pages for ~10 MB of text. A ``pread`` of the
    blocks a row lies in reads what the check needs anyway, through the page cache."""

    def __init__(self, path: Path, offsets: Any, digests: Any, block: int) -> None:
        self.path = path
        self.block = block
        self.offsets = offsets
        self.digests = digests
        self.checked = np.zeros(len(digests), dtype=bool)
        self.size = int(offsets[-1])
        self._file: BinaryIO | None = None
        if self.size:
            self._file = path.open("rb", buffering=0)

    def _blocks(self, first: int, last: int) -> bytes:
        """Blocks ``[first, last]`` in one read, those not yet checked checked."""
        assert self._file is not None
        lo, hi = first * self.block, min((last + 1) * self.block, self.size)
        try:
            data = os.pread(self._file.fileno(), hi - lo, lo)
        except OSError as exc:
            raise IndexCorruptError(f"chunk table file {self.path} is unreadable ({exc})"
                                    ) from exc
        if len(data) != hi - lo:
            raise IndexCorruptError(f"chunk table file {self.path} is truncated")
        checked = self.checked
        for block in range(first, last + 1):
            if checked[block]:
                continue
            at = (block - first) * self.block
            if hashlib.sha256(data[at:at + self.block]).digest() != \
                    self.digests[block].tobytes():
                raise IndexCorruptError(
                    f"chunk table file {self.path} is corrupt: bytes {lo + at}.."
                    f"{lo + at + self.block} do not match their recorded sha256")
            checked[block] = True
        return data

    def raw(self, row: int) -> bytes:
        start, end = int(self.offsets[row]), int(self.offsets[row + 1])
        if end <= start:
            return b""
        first = start // self.block
        data = self._blocks(first, (end - 1) // self.block)
        base = first * self.block
        return data[start - base:end - base]

    def text(self, row: int) -> str:
        try:
            return self.raw(row).decode(_UTF8, _SURROGATES)
        except UnicodeDecodeError as exc:
            raise IndexCorruptError(f"chunk table file {self.path}: row {row} is not UTF-8 "
                                    f"({exc})") from exc

    def raws(self, rows: list[int]) -> list[bytes]:
        """The bytes of many rows: one read of their span when they lie close together
        (a snapshot copying rows in order), else a read per row (a query's scattered
        hits), each checking only the blocks it covers."""
        at = np.asarray(rows, dtype=np.int64)
        starts, ends = self.offsets[at].tolist(), self.offsets[at + 1].tolist()
        if not rows or self.size == 0:
            return [b""] * len(rows)
        lo, hi = min(starts), max(ends)
        dense = 2 * sum(e - s for s, e in zip(starts, ends, strict=True)) + 16 * self.block
        if hi > lo and hi - lo <= max(dense, 2 * self.block * len(rows)):
            # close together, or so many rows (ranking ties) that one read is cheaper
            first = lo // self.block
            data = self._blocks(first, (hi - 1) // self.block)
            base = first * self.block
            return [data[s - base:e - base] for s, e in zip(starts, ends, strict=True)]
        return [self.raw(r) for r in rows]

    def texts(self, rows: list[int]) -> list[str]:
        try:
            return [raw.decode(_UTF8, _SURROGATES) for raw in self.raws(rows)]
        except UnicodeDecodeError as exc:
            raise IndexCorruptError(f"chunk table file {self.path} is not UTF-8 ({exc})"
                                    ) from exc

    def all_texts(self) -> list[str]:
        """Every row's string (all doc ids, for a reopen's consistency check)."""
        data = self._blocks(0, len(self.digests) - 1) if self.size else b""
        bounds = self.offsets.tolist()
        try:
            if data.isascii():  # byte offsets are character offsets: decode once
                whole = data.decode("ascii")
                return [whole[s:e] for s, e in itertools.pairwise(bounds)]
            return [data[s:e].decode(_UTF8, _SURROGATES)
                    for s, e in itertools.pairwise(bounds)]
        except UnicodeDecodeError as exc:
            raise IndexCorruptError(f"chunk table file {self.path} is not UTF-8 ({exc})"
                                    ) from exc

    def verify(self, sha256: str) -> None:
        """Every block against its digest and the whole file against ``sha256``, 1 MiB
        at a time."""
        self.checked[:] = False
        whole = hashlib.sha256()
        step = max(1, (1 << 20) // self.block)
        for first in range(0, len(self.digests), step):
            whole.update(self._blocks(first, min(first + step, len(self.digests)) - 1))
        if whole.hexdigest() != sha256:
            raise IndexCorruptError(f"chunk table file {self.path} is corrupt: its sha256 does "
                                    "not match the recorded one")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class ChunkTable:
    """Read-only chunks in columns on disk (see the module docstring). Open with ``open``,
    write with ``write``."""

    def __init__(self, folder: Path, files: TableFiles, blobs: dict[str, _Blob],
                 arrays: dict[str, Any]) -> None:
        self.folder = folder
        self.files = files
        self._blobs = blobs
        self._ids, self._texts = blobs["ids"], blobs["texts"]
        self._metadata, self._docs = blobs["metadata"], blobs["docs"]
        self._doc_index = arrays["doc_index"]
        self._positions = arrays["positions"]
        self._arrays = arrays
        self._n = len(self._positions)
        #: row -> chunk recently returned (chunks are frozen, so sharing them is safe)
        self._recent: dict[int, Chunk] = {}

    # -- writing ----------------------------------------------------------------------
    @staticmethod
    def write(folder: Path, prefix: str, chunks: Iterable[Chunk], *,
              base: ChunkTable | None = None, base_rows: Iterable[int] | None = None
              ) -> TableFiles:
        """Stream ``chunks`` into the table files ``<prefix>.*`` in ``folder`` and return
        the manifest entry (name → file and sha256) that ``open`` takes.

        With ``base``, its rows ``base_rows`` (all by default) come first, copied as bytes
        with their lookup keys (each block checked against its digest first, so damage is
        never carried over): rewriting a snapshot then costs no decoding or encoding of
        the rows it keeps (~30 us a row under load, most of a 1M-chunk compaction)."""
        names = _file_names(prefix)
        doc_numbers: dict[str, int] = {}  # doc ids first seen in ``chunks``
        doc_index: list[npt.NDArray[np.int32]] = []
        positions: list[Int64Array] = []
        sha: dict[str, str] = {}
        copied_docs: Int64Array = np.zeros(0, dtype=np.int64)  # base doc numbers kept
        with ExitStack() as stack:
            writers = {b: _BlobWriter(stack.enter_context(atomic_writer(folder / names[b])),
                                      keyed=b in _KEYED) for b in _BLOBS}
            block: list[Chunk] = []
            if base is not None:
                copied_docs = base._copy_into(writers, doc_index, positions, base_rows)

            def numbers_in_base(doc_ids: list[str]) -> dict[str, int]:
                """New numbers of the doc ids that are kept base docs."""
                if base is None or not len(copied_docs) or not doc_ids:
                    return {}
                out = {}
                for doc_id, old in zip(doc_ids, base.doc_numbers_of(doc_ids), strict=True):
                    if old is not None:
                        at = int(np.searchsorted(copied_docs, old))
                        if at < len(copied_docs) and copied_docs[at] == old:
                            out[doc_id] = at
                return out

            def flush() -> None:
                new_docs: list[bytes] = []
                numbers = []
                known = numbers_in_base(list({c.doc_id for c in block
                                              if c.doc_id not in doc_numbers}))
                for c in block:
                    number = doc_numbers.get(c.doc_id)
                    if number is None:
                        number = known.get(c.doc_id)
                    if number is None:
                        number = doc_numbers[c.doc_id] = len(copied_docs) + len(doc_numbers)
                        new_docs.append(c.doc_id.encode(_UTF8, _SURROGATES))
                    numbers.append(number)
                doc_index.append(np.asarray(numbers, dtype=np.int32))
                positions.append(np.asarray([(c.index, c.start, c.end) for c in block],
                                            dtype=np.int64).reshape(-1, 3))
                writers["ids"].add([c.id.encode(_UTF8, _SURROGATES) for c in block])
                writers["texts"].add([c.text.encode(_UTF8, _SURROGATES) for c in block])
                writers["metadata"].add([_metadata_json(c.metadata) for c in block])
                writers["docs"].add(new_docs)
                block.clear()

            for chunk in chunks:
                block.append(chunk)
                if len(block) >= _ROWS_PER_WRITE:
                    flush()
            flush()
            arrays: dict[str, Any] = {
                "doc_index": np.concatenate(doc_index),
                "positions": np.concatenate(positions)}
            for b, writer in writers.items():
                arrays[f"{b}.offsets"], arrays[f"{b}.digests"] = writer.finish()
                if b in _KEYED:
                    arrays[f"{b}.keys"], arrays[f"{b}.order"] = writer.lookup()
                sha[b] = writer.sha.hexdigest()
            by_row = arrays["doc_index"]
            arrays["doc_rows"] = np.argsort(by_row, kind="stable").astype(np.int64)
            n_docs = len(copied_docs) + len(doc_numbers)
            bounds = np.zeros(n_docs + 1, dtype=np.int64)
            np.cumsum(np.bincount(by_row, minlength=n_docs), out=bounds[1:])
            arrays["doc_bounds"] = bounds
        for name, arr in arrays.items():
            with atomic_writer(folder / names[name]) as fh:
                out = _Hashing(fh)
                np.save(out, np.ascontiguousarray(arr), allow_pickle=False)
            sha[name] = out.sha.hexdigest()
        return {name: {"file": names[name], "sha256": sha[name]} for name in names}

    def _copy_into(self, writers: dict[str, _BlobWriter], doc_index: list[Any],
                   positions: list[Any], rows: Iterable[int] | None) -> Int64Array:
        """Append ``rows`` (all by default) to a table being written, as bytes; returns
        the base doc numbers kept, sorted (new doc number = position in it)."""
        every = (np.arange(self._n, dtype=np.int64) if rows is None
                 else np.fromiter(rows, dtype=np.int64))
        if len(every) and (int(every.min()) < 0 or int(every.max()) >= self._n):
            raise IndexError(f"rows outside the table's {self._n} rows")
        kept_docs, new_numbers = np.unique(self._doc_index[every], return_inverse=True)
        id_keys = _row_keys(self._arrays["ids.keys"], self._arrays["ids.order"], self._n)
        doc_keys = _row_keys(self._arrays["docs.keys"], self._arrays["docs.order"],
                             len(self._docs.offsets) - 1)
        for start in range(0, len(every), _ROWS_PER_WRITE):
            part = every[start:start + _ROWS_PER_WRITE]
            block = part.tolist()
            writers["ids"].add(self._ids.raws(block), keys=id_keys[part])
            writers["texts"].add(self._texts.raws(block))
            writers["metadata"].add(self._metadata.raws(block))
            positions.append(np.array(self._positions[part], dtype=np.int64))
            doc_index.append(new_numbers[start:start + _ROWS_PER_WRITE].astype(np.int32))
        for start in range(0, len(kept_docs), _ROWS_PER_WRITE):
            part = kept_docs[start:start + _ROWS_PER_WRITE]
            writers["docs"].add(self._docs.raws(part.tolist()), keys=doc_keys[part])
        out: Int64Array = kept_docs.astype(np.int64)
        return out

    # -- opening ----------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path, files: Any, *, check_arrays: bool = True) -> ChunkTable:
        """Map a table written by ``write`` (``files`` is its manifest entry, untrusted).

        Structure is always checked; ``check_arrays=False`` skips the sha256 of the
        ``.npy`` files (for a table this process has just written)."""
        entries = cls._entries(folder, files)
        arrays: dict[str, Any] = {}
        for name, (path, sha256) in entries.items():
            if name in _BLOBS:
                continue
            arrays[name] = _load_array(path, sha256 if check_arrays else None)
        doc_index, positions = arrays["doc_index"], arrays["positions"]
        n = len(positions) if positions.ndim == 2 else -1
        _expect(positions.ndim == 2 and positions.shape[1] == 3
                and positions.dtype == np.int64, entries["positions"][0],
                "is not an n × 3 int64 array")
        _expect(doc_index.shape == (n,) and doc_index.dtype == np.int32,
                entries["doc_index"][0], f"does not hold one int32 per row ({n} rows)")
        blobs: dict[str, _Blob] = {}
        try:
            n_docs = len(arrays["docs.offsets"]) - 1
            for name, rows in (("ids", n), ("docs", n_docs), ("doc_rows", n)):
                path = entries[f"{name}.order" if name != "doc_rows" else name][0]
                order = arrays[f"{name}.order" if name != "doc_rows" else name]
                _expect(order.shape == (rows,) and order.dtype == np.int64
                        and (rows == 0 or (int(order.min()) >= 0 and int(order.max()) < rows)),
                        path, f"does not hold {rows} row numbers")
                if name != "doc_rows":
                    keys = entries[f"{name}.keys"][0]
                    _expect(arrays[f"{name}.keys"].shape == (rows,)
                            and arrays[f"{name}.keys"].dtype == np.int64, keys,
                            f"does not hold {rows} int64 keys")
            bounds = arrays["doc_bounds"]
            _expect(bounds.shape == (n_docs + 1,) and bounds.dtype == np.int64
                    and int(bounds[0]) == 0 and int(bounds[-1]) == n
                    and not bool(np.any(bounds[1:] < bounds[:-1])), entries["doc_bounds"][0],
                    f"is not increasing bounds from 0 to {n}")
            for blob in _BLOBS:
                path = entries[blob][0]
                offsets, digests = arrays[f"{blob}.offsets"], arrays[f"{blob}.digests"]
                opath = entries[f"{blob}.offsets"][0]
                rows = len(offsets) - 1
                _expect(offsets.ndim == 1 and offsets.dtype == np.int64 and rows >= 0
                        and (blob == "docs" or rows == n), opath,
                        f"is not int64 offsets for {n} rows")
                try:
                    size = path.stat().st_size
                except OSError as exc:
                    raise IndexCorruptError(f"chunk table file {path} is missing or unreadable "
                                            f"({exc})") from exc
                _expect(int(offsets[0]) == 0 and int(offsets[-1]) == size
                        and not bool(np.any(offsets[1:] < offsets[:-1])), opath,
                        f"has offsets that are not increasing from 0 to the size of {path}")
                block = next((b for b in (BLOCK_BYTES, _OLD_BLOCK_BYTES)
                              if digests.shape == (-(-size // b), 32)), BLOCK_BYTES)
                _expect(digests.ndim == 2 and digests.dtype == np.uint8
                        and digests.shape == (-(-size // block), 32),
                        entries[f"{blob}.digests"][0],
                        f"does not hold one sha256 per {BLOCK_BYTES}-byte block of {path}")
                try:
                    blobs[blob] = _Blob(path, offsets, digests, block)
                except (OSError, ValueError) as exc:
                    raise IndexCorruptError(f"chunk table file {path} cannot be opened "
                                            f"({exc})") from exc
            _expect(n == 0 or (int(doc_index.min()) >= 0 and int(doc_index.max()) < n_docs),
                    entries["doc_index"][0], f"names doc numbers outside 0..{n_docs - 1}")
        except BaseException:
            for b in blobs.values():
                b.close()
            raise
        return cls(folder, {k: dict(v) for k, v in files.items()}, blobs, arrays)

    @staticmethod
    def _entries(folder: Path, files: Any) -> dict[str, tuple[Path, str]]:
        names = _file_names("x")
        if not isinstance(files, Mapping) or set(files) != set(names):
            raise IndexCorruptError(f"chunk table in {folder}: the manifest entry does not name "
                                    f"exactly the files {sorted(names)}")
        out = {}
        for name, entry in files.items():
            file = entry.get("file") if isinstance(entry, Mapping) else None
            sha256 = entry.get("sha256") if isinstance(entry, Mapping) else None
            if (not isinstance(file, str) or not isinstance(sha256, str) or not file
                    or os.path.basename(file) != file or file in (".", "..")):
                raise IndexCorruptError(f"chunk table in {folder}: the manifest entry for "
                                        f"{name!r} is not a plain file name with a sha256")
            out[name] = (folder / file, sha256)
        return out

    def verify(self) -> None:
        """Check every byte against its recorded sha256 (the blobs are otherwise checked
        block by block as rows are read): for ``trawl doctor``-style checks and tests."""
        entries = self._entries(self.folder, self.files)
        for name, (path, sha256) in entries.items():
            if name in _BLOBS:
                self._blobs[name].verify(sha256)
            else:
                _load_array(path, sha256)

    def close(self) -> None:
        """Unmap the blobs (the table is unusable afterwards)."""
        for b in self._blobs.values():
            b.close()

    # -- reading ----------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n

    def _row(self, row: int) -> int:
        row = int(row)
        if not 0 <= row < self._n:
            raise IndexError(f"row {row} is outside the table's {self._n} rows")
        return row

    def __getitem__(self, row: int) -> Chunk:
        row = self._row(row)
        index, start, end = self._positions[row].tolist()
        return trusted(Chunk, {
            "id": self._ids.text(row), "doc_id": self._docs.text(int(self._doc_index[row])),
            "text": self._texts.text(row), "index": index, "start": start, "end": end,
            "metadata": self.metadata(row)})

    def __iter__(self) -> Iterator[Chunk]:
        return self.chunks()

    def chunks(self, rows: Iterable[int] | None = None) -> Iterator[Chunk]:
        """The chunks of ``rows`` (every row by default) in that order, decoded a block of
        rows at a time: rewriting a snapshot reads every row, and per-row reads cost
        ~10x more in numpy scalar access than the decoding itself.

        A query's hits (up to ``_CACHEABLE_REQUEST`` rows) go through a cache of the last
        ``_CACHED_CHUNKS`` chunks returned, started over when full: reading a hit from the
        files costs ~20 us (three reads, a block check, JSON), which at 100 hits doubled a
        BM25 query, and popular chunks come back query after query."""
        every = np.arange(self._n) if rows is None else np.fromiter(rows, dtype=np.int64)
        if len(every) and (int(every.min()) < 0 or int(every.max()) >= self._n):
            raise IndexError(f"rows outside the table's {self._n} rows")
        if rows is not None and len(every) <= _CACHEABLE_REQUEST:
            yield from self._cached(every.tolist())
            return
        yield from self._decoded(every)

    def _cached(self, rows: list[int]) -> list[Chunk]:
        recent = self._recent  # another thread may clear it meanwhile: get, never []
        got = {r: c for r in set(rows) if (c := recent.get(r)) is not None}
        missing = sorted(set(rows) - got.keys())
        if missing:
            new = dict(zip(missing, self._decoded(np.asarray(missing, dtype=np.int64)),
                           strict=True))
            if len(recent) + len(new) > _CACHED_CHUNKS:
                recent.clear()
            recent.update(new)
            got.update(new)
        return [got[r] for r in rows]

    def _decoded(self, every: Any) -> Iterator[Chunk]:
        for start in range(0, len(every), _ROWS_PER_WRITE):
            block = every[start:start + _ROWS_PER_WRITE].tolist()
            numbers = self._doc_index[block].tolist()
            names = {n: self._docs.text(n) for n in set(numbers)}
            metas = self._metadata.raws(block)
            for row, chunk_id, number, text, (index, begin, end), meta in zip(
                    block, self._ids.texts(block), numbers, self._texts.texts(block),
                    self._positions[block].tolist(), metas, strict=True):
                yield trusted(Chunk, {
                    "id": chunk_id, "doc_id": names[number], "text": text, "index": index,
                    "start": begin, "end": end,
                    "metadata": self._decode_metadata(row, meta) if meta else {}})

    def chunk_ids(self, rows: Iterable[int]) -> list[str]:
        """The ids of many rows at once (ranking ties are broken by id)."""
        return self._ids.texts(self._rows_list(rows))

    def metadatas(self, rows: Iterable[int]) -> list[dict[str, Any]]:
        """The metadata of many rows at once (filter columns read a field of every row)."""
        block = self._rows_list(rows)
        return [self._decode_metadata(row, raw) if raw else {}
                for row, raw in zip(block, self._metadata.raws(block), strict=True)]

    def _rows_list(self, rows: Iterable[int]) -> list[int]:
        block = rows.tolist() if isinstance(rows, np.ndarray) else [int(r) for r in rows]
        if block and (min(block) < 0 or max(block) >= self._n):
            raise IndexError(f"rows outside the table's {self._n} rows")
        return block

    def chunk_id(self, row: int) -> str:
        return self._ids.text(self._row(row))

    def doc_id(self, row: int) -> str:
        return self._docs.text(int(self._doc_index[self._row(row)]))

    def text(self, row: int) -> str:
        return self._texts.text(self._row(row))

    def metadata(self, row: int) -> dict[str, Any]:
        """The row's metadata (a new dict each call)."""
        row = self._row(row)
        raw = self._metadata.raw(row)
        return self._decode_metadata(row, raw) if raw else {}

    def _decode_metadata(self, row: int, raw: bytes) -> dict[str, Any]:
        try:
            value = json.loads(raw.decode(_UTF8, _SURROGATES))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(f"chunk table file {self._metadata.path}: row {row} is not "
                                    f"JSON ({exc})") from exc
        if not isinstance(value, dict):
            raise IndexCorruptError(f"chunk table file {self._metadata.path}: row {row} is not "
                                    "a JSON object")
        return value

    @property
    def doc_numbers(self) -> npt.NDArray[np.int32]:
        """Per row, the number of its doc id (``doc_name`` turns it back)."""
        out: npt.NDArray[np.int32] = self._doc_index
        return out

    def doc_name(self, number: int) -> str:
        return self._docs.text(int(number))

    def doc_names(self) -> list[str]:
        """Every distinct doc id, by number (decoded in one pass: a reopen's consistency
        check asks for all of them)."""
        return self._docs.all_texts()

    def row_of(self, chunk_id: str) -> int | None:
        """The row holding ``chunk_id`` (the first, if a hostile file repeats it)."""
        for row in sorted(self._candidates("ids", chunk_id)):
            if self._ids.text(row) == chunk_id:
                return row
        return None

    def rows_of(self, chunk_ids: Iterable[str]) -> list[int | None]:
        """``row_of`` for many ids in one vectorised search (a batch of upserts checks
        each id for a row it replaces)."""
        return self._find("ids", list(chunk_ids))

    def doc_numbers_of(self, doc_ids: Iterable[str]) -> list[int | None]:
        """``doc_number`` for many doc ids in one vectorised search."""
        return self._find("docs", list(doc_ids))

    def _find(self, blob: str, texts: list[str]) -> list[int | None]:
        out: list[int | None] = [None] * len(texts)
        keys = self._arrays[f"{blob}.keys"]
        if not texts or not len(keys):
            return out
        wanted = np.frombuffer(b"".join(_key(t.encode(_UTF8, _SURROGATES)) for t in texts),
                               dtype="<i8").astype(np.int64)
        lo = np.searchsorted(keys, wanted, side="left")
        hi = np.searchsorted(keys, wanted, side="right")
        order, stored = self._arrays[f"{blob}.order"], self._blobs[blob]
        for i in np.flatnonzero(hi > lo).tolist():
            for row in sorted(order[lo[i]:hi[i]].tolist()):
                if stored.text(row) == texts[i]:
                    out[i] = row
                    break
        return out

    def doc_number(self, doc_id: str) -> int | None:
        for number in self._candidates("docs", doc_id):
            if self._docs.text(number) == doc_id:
                return number
        return None

    def _candidates(self, blob: str, text: str) -> list[int]:
        keys = self._arrays[f"{blob}.keys"]
        key = _key_of(text)
        lo = int(np.searchsorted(keys, key, side="left"))
        hi = int(np.searchsorted(keys, key, side="right"))
        out: list[int] = self._arrays[f"{blob}.order"][lo:hi].tolist()
        return out

    def rows_of_doc(self, doc_id: str) -> Int64Array:
        """The rows of one doc id, in row order (empty when absent)."""
        number = self.doc_number(doc_id)
        if number is None:
            return np.zeros(0, dtype=np.int64)
        bounds = self._arrays["doc_bounds"]
        rows: Int64Array = np.asarray(
            self._arrays["doc_rows"][int(bounds[number]):int(bounds[number + 1])])
        # a hostile file could group rows wrongly: keep only the doc's own
        keep: Int64Array = rows[self._doc_index[rows] == number]
        return keep


def _row_keys(sorted_keys: Any, order: Any, n: int) -> Int64Array:
    """Each row's lookup key, from the sorted keys and their rows."""
    keys = np.zeros(n, dtype=np.int64)
    keys[order] = sorted_keys
    return keys


def _expect(ok: bool, path: Path, problem: str) -> None:
    if not ok:
        raise IndexCorruptError(f"chunk table file {path} {problem}; delete the index folder "
                                "and re-index")


def _load_array(path: Path, sha256: str | None) -> Any:
    """A ``.npy`` file mapped read-only, after its sha256 (read via the page cache)."""
    try:
        if sha256 is not None:
            with path.open("rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
            if digest != sha256:
                raise IndexCorruptError(f"chunk table file {path} is corrupt: its sha256 does "
                                        "not match the recorded one")
        # a plain ndarray view of the map: still page cache, without np.memmap's
        # Python-level indexing (~3 us an access, most of a row's decoding)
        return np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
    except (OSError, ValueError, EOFError) as exc:
        raise IndexCorruptError(f"chunk table file {path} is missing or unreadable ({exc})"
                                ) from exc
