"""On-disk layout of a BM25 index: a base snapshot plus a log of small delta files.

::

    bm25.json                 manifest: format, analyzer, base files + sha256, base_seq
    base-<seq>.json           vocabulary (version 1 and 2: also the chunks)
    base-<seq>.chunks.*       version 3: the chunks as a ``trawl.chunktable.ChunkTable``
                              (mapped; a row is decoded when a hit or a write needs it)
    base-<seq>.<name>.npy     version 2+: doc_len and the postings in CSC form (indptr,
                              indices = rows, data = tf), memory-mapped read-only on open
    base-<seq>.npz            version 1 (still read): doc length and CSR (nnz, terms, tfs)
    delta-<seq>.json          one upsert (chunks) or delete (doc ids) after the snapshot

Every file is written by ``trawl.storage.atomic_write_bytes`` (temp file, fsync, rename)
and the folder is fsynced after the rename, so each file is either whole or absent.
``upsert``/``delete`` write one delta (O(batch), not O(index)) and return once it is
durable. On open the base is loaded and the deltas after ``base_seq`` are replayed in
order. When the deltas hold as many chunks as ``compact_ratio`` × the base (or there are
too many of them) a new snapshot is written and only then is the manifest switched to it:
a crash at any point leaves the previous manifest, base and deltas readable. No pickle:
JSON, and ``.npy``/``.npz`` read with ``allow_pickle=False``.

Version 2 keeps the postings as separate uncompressed ``.npy`` files, already in the CSC
order scoring uses, so a reopen maps them (page cache, not heap) instead of decoding a zip
and re-sorting every posting before the first answer. Version 3 does the same for the
chunks: validating every chunk of the JSON was most of a version-2 reopen (0.8 of 1.8 s
at 100k) and the chunk objects most of its heap.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, TypeAdapter
from scipy import sparse

from trawl.chunktable import ChunkTable
from trawl.errors import IndexCorruptError
from trawl.models import Chunk
from trawl.storage import atomic_write_bytes, atomic_writer, private_dir

FORMAT = "trawl-bm25"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
_CSC_FILES = ("doc_len", "indptr", "indices", "tf")
MANIFEST = "bm25.json"
_DELTA = re.compile(r"^delta-(\d{9})\.json$")
_BASE = re.compile(
    r"^base-(\d{9})\.(json|npz|(doc_len|indptr|indices|tf)(\.digests)?\.npy|chunks\..+)$")
_LAZY = ("indices", "tf")  # version 3: checked block by block as queries first read them
POSTINGS_BLOCK = 1 << 14  # postings per sha256 block (64 KiB of int32)
IntArray = npt.NDArray[np.int32]


class _BaseFile(BaseModel):
    vocab: list[str]
    chunks: list[Chunk]


# chunks to JSON in pydantic-core (Rust) in one call: model_dump + json.dumps per chunk was
# most of the time a bulk load spent writing deltas and snapshots
_CHUNKS_JSON = TypeAdapter(list[Chunk])


@dataclass
class Snapshot:
    """What a base holds: rows in order, with their term frequencies.

    Written from the CSR triple (nnz, terms, tfs) or the CSC (``csc``) and the chunks:
    ``table_rows`` of ``table`` (copied as bytes), then ``chunks`` (streamed). Read back,
    a version-2/3 base gives the memory-mapped CSC (``csc``: indptr, row indices, tf;
    read-only) and no CSR triple; version 3 gives the mapped ``table`` instead of a list
    of chunks."""

    vocab: list[str]
    chunks: Iterable[Chunk]
    rows: int
    doc_len: IntArray
    nnz: IntArray | None = None
    terms: IntArray | None = None
    tfs: IntArray | None = None
    csc: tuple[Any, Any, Any] | None = None
    table: ChunkTable | None = None  # read: the mapped chunks; written: copied first
    table_rows: Any = None  # written: the rows of ``table`` to copy (None: all)
    check: PostingsCheck | None = None  # the mapped postings' lazy check (version 3)


def block_digests(arr: Any) -> npt.NDArray[np.uint8]:
    """sha256 of every ``POSTINGS_BLOCK`` elements of a 1-d array."""
    arr = np.ascontiguousarray(arr)
    return np.frombuffer(b"".join(hashlib.sha256(arr[i:i + POSTINGS_BLOCK]).digest()
                                  for i in range(0, len(arr), POSTINGS_BLOCK)),
                         dtype=np.uint8).reshape(-1, 32)


class PostingsCheck:
    """Checks the mapped row indices and tfs of a base, a block at a time, the first time
    a query reads it: its sha256 and, for row indices, that each names a row.

    Hashing every posting at open cost ~0.4 s per 700 MB (1M chunks), most of the < 1 s
    budget for a reopen's first answer, for columns most queries never read. Anything
    that reads every posting (a merge, a snapshot, deleted rows) calls ``all()`` first."""

    def __init__(self, arrays: list[tuple[Path, Any, Any, int | None]]) -> None:
        self._arrays = arrays  # (path, mapped array, block digests, rows or None)
        self._checked = np.zeros(len(arrays[0][2]), dtype=bool)

    def __call__(self, start: int, stop: int) -> None:
        if stop <= start:
            return
        first, last = start // POSTINGS_BLOCK, (stop - 1) // POSTINGS_BLOCK
        if self._checked[first:last + 1].all():
            return
        for block in range(first, last + 1):
            if self._checked[block]:
                continue
            lo = block * POSTINGS_BLOCK
            for path, arr, digests, rows in self._arrays:
                part = arr[lo:lo + POSTINGS_BLOCK]
                if (hashlib.sha256(part).digest() != digests[block].tobytes()
                        or (rows is not None and len(part)
                            and (int(part.min()) < 0 or int(part.max()) >= rows))):
                    raise IndexCorruptError(
                        f"bm25 index file {path} is corrupt: postings {lo}.."
                        f"{lo + POSTINGS_BLOCK} do not match their recorded sha256")
            self._checked[block] = True

    def all(self) -> None:
        self(0, len(self._arrays[0][1]))

    def trust_all(self) -> None:
        """Mark every block checked: the postings were just written from arrays this
        process had checked, and their digests computed from those same arrays."""
        self._checked[:] = True


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Store:
    """Reads and writes one BM25 index folder; knows nothing about scoring."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest_path = folder / MANIFEST

    # -- reading -----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.manifest_path.exists()

    def read_manifest(self) -> dict[str, Any]:
        path = self.manifest_path
        try:
            manifest = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(f"bm25 index manifest {path} is unreadable ({exc}); restore "
                                    "it or delete the folder and re-index") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IndexCorruptError(f"bm25 index manifest {path} is not a trawl BM25 manifest")
        version = manifest.get("version")
        if version not in READABLE_VERSIONS:
            raise IndexCorruptError(
                f"bm25 index manifest {path} has format version {version!r}; this trawl reads "
                f"versions {READABLE_VERSIONS}. Re-index into a new folder.")
        return manifest

    def _checked_bytes(self, name: str, sha256: str | None) -> bytes:
        path = self.folder / name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise IndexCorruptError(f"bm25 index file {path} is missing or unreadable ({exc})"
                                    ) from exc
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise IndexCorruptError(f"bm25 index file {path} is corrupt: its sha256 does not match "
                                    f"the one recorded in {self.manifest_path}")
        return data

    def read_base(self, manifest: dict[str, Any]) -> Snapshot | None:
        base = manifest.get("base")
        if base is None:
            return None
        if not isinstance(base, dict) or not isinstance(base.get("json"), str):
            raise IndexCorruptError(f"bm25 index manifest {self.manifest_path} names no "
                                    "snapshot file")
        jpath = self.folder / base["json"]
        raw = self._checked_bytes(base["json"], base.get("json_sha256"))
        if "chunks" in base:  # version 3: the chunks are a mapped table
            return self._read_table(base, jpath, raw)
        try:  # parsed and validated in one pass by pydantic-core (about 2x json + validate)
            parsed = _BaseFile.model_validate_json(raw)
            vocab, chunks = parsed.vocab, parsed.chunks
        except ValueError as exc:
            raise IndexCorruptError(f"bm25 index file {jpath} is unreadable or holds an invalid "
                                    f"chunk ({exc})") from exc
        if "npy" in base:
            doc_len, csc, lazy = self._read_csc(base, jpath, len(vocab), len(chunks))
            return Snapshot(vocab=vocab, chunks=chunks, rows=len(chunks), doc_len=doc_len,
                            csc=csc, check=lazy)
        npath = self.folder / base["npz"]
        raw = self._checked_bytes(base["npz"], base.get("npz_sha256"))
        try:
            with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
                arrays = {k: np.asarray(npz[k], dtype=np.int32)
                          for k in ("doc_len", "nnz", "terms", "tfs")}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise IndexCorruptError(f"bm25 index file {npath} is unreadable ({exc})") from exc
        n = len(chunks)
        if (len(arrays["doc_len"]) != n or len(arrays["nnz"]) != n
                or len(arrays["terms"]) != len(arrays["tfs"])
                or int(arrays["nnz"].sum()) != len(arrays["terms"])
                or (len(arrays["terms"]) and int(arrays["terms"].max()) >= len(vocab))):
            raise IndexCorruptError(f"bm25 index files {jpath} and {npath} disagree "
                                    "(row or term counts); delete the folder and re-index")
        return Snapshot(vocab=vocab, chunks=chunks, rows=n, **arrays)

    def _read_table(self, base: dict[str, Any], jpath: Path, raw: bytes, *,
                    check: bool = True) -> Snapshot:
        """A version-3 base: vocabulary JSON, chunk table and postings, all but the
        vocabulary mapped (see ``trawl.chunktable`` for what is checked when)."""
        try:
            vocab = json.loads(raw.decode("utf-8"))["vocab"]
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"bm25 index file {jpath} is unreadable ({exc})") from exc
        if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
            raise IndexCorruptError(f"bm25 index file {jpath} holds no list of terms")
        table = ChunkTable.open(self.folder, base["chunks"], check_arrays=check)
        doc_len, csc, lazy = self._read_csc(base, jpath, len(vocab), len(table), check=check)
        return Snapshot(vocab=vocab, chunks=(), rows=len(table), doc_len=doc_len, csc=csc,
                        table=table, check=lazy)

    def _read_csc(self, base: dict[str, Any], jpath: Path, n_terms: int, n: int, *,
                  check: bool = True) -> tuple[Any, tuple[Any, Any, Any], PostingsCheck | None]:
        """Map a version-2/3 base's arrays read-only, checked against their sha256 first;
        version 3's postings have block digests instead, checked as they are read."""
        arrays: dict[str, Any] = {}
        npy = base["npy"] if isinstance(base["npy"], dict) else {}
        lazy = all(f"{k}.digests" in npy for k in _LAZY)
        keys = _CSC_FILES + tuple(f"{k}.digests" for k in _LAZY) if lazy else _CSC_FILES
        for key in keys:
            entry = npy.get(key)
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise IndexCorruptError(f"bm25 index manifest {self.manifest_path} names no "
                                        f"{key} file for its snapshot")
            path = self.folder / entry["file"]
            try:
                if (check and entry.get("sha256") is not None
                        and not (lazy and key in _LAZY)):
                    with path.open("rb") as fh:  # read through the page cache, not the heap
                        digest = hashlib.file_digest(fh, "sha256").hexdigest()
                    if digest != entry["sha256"]:
                        raise IndexCorruptError(
                            f"bm25 index file {path} is corrupt: its sha256 does not match the "
                            f"one recorded in {self.manifest_path}")
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise IndexCorruptError(f"bm25 index file {path} is missing or unreadable "
                                        f"({exc})") from exc
            if key.endswith(".digests"):
                want = (-(-len(arrays[key.split(".")[0]]) // POSTINGS_BLOCK), 32)
                if arr.shape != want or arr.dtype != np.uint8:
                    raise IndexCorruptError(f"bm25 index file {path} does not hold one sha256 "
                                            f"per {POSTINGS_BLOCK} postings")
            elif arr.ndim != 1 or arr.dtype.kind not in "iu":
                raise IndexCorruptError(f"bm25 index file {path} is not a 1-d integer array")
            arrays[key] = arr
        indptr, rows, tf = arrays["indptr"], arrays["indices"], arrays["tf"]
        if (len(arrays["doc_len"]) != n or len(indptr) != n_terms + 1 or len(rows) != len(tf)
                or int(indptr[0]) != 0 or int(indptr[-1]) != len(rows)
                or (len(indptr) > 1 and bool(np.any(np.diff(indptr) < 0)))
                or (not lazy and len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= n))):
            raise IndexCorruptError(f"bm25 index files of snapshot {jpath} disagree (row or "
                                    "term counts); delete the folder and re-index")
        postings = None
        if lazy:
            postings = PostingsCheck([
                (self.folder / npy["indices"]["file"], rows, arrays["indices.digests"], n),
                (self.folder / npy["tf"]["file"], tf, arrays["tf.digests"], None)])
        return arrays["doc_len"], (indptr, rows, tf), postings

    def deltas(self, after: int) -> list[tuple[int, Path]]:
        found = []
        for p in self.folder.iterdir():
            m = _DELTA.match(p.name)
            if m and int(m.group(1)) > after:
                found.append((int(m.group(1)), p))
        found.sort()
        for expected, (seq, p) in enumerate(found, start=after + 1):
            if seq != expected:
                raise IndexCorruptError(f"bm25 index {self.folder}: delta file for step {expected} "
                                        f"is missing (next is {p.name})")
        return found

    @staticmethod
    def read_delta(seq: int, path: Path) -> dict[str, Any]:
        try:
            delta = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexCorruptError(f"bm25 index file {path} is unreadable ({exc}); delete the "
                                    "folder and re-index") from exc
        if not isinstance(delta, dict) or delta.get("seq") != seq or delta.get("op") not in (
                "upsert", "delete"):
            raise IndexCorruptError(f"bm25 index file {path} is not a valid delta for step {seq}")
        return delta

    # -- writing -----------------------------------------------------------------------
    def write_delta(self, seq: int, op: str, payload: dict[str, Any]) -> None:
        """One delta file; ``payload["chunks"]`` (an upsert) holds ``Chunk`` objects."""
        chunks = payload.get("chunks")
        head = {"seq": seq, "op": op, **{k: v for k, v in payload.items() if k != "chunks"}}
        data = _dumps(head)
        if chunks is not None:
            data = data[:-1] + b',"chunks":' + _CHUNKS_JSON.dump_json(chunks) + b"}"
        atomic_write_bytes(self.folder / f"delta-{seq:09d}.json", data)  # fsyncs the folder

    def write_base(self, seq: int, snap: Snapshot, analyzer: dict[str, Any]) -> Snapshot:
        """Write a snapshot at ``seq``, switch the manifest to it, then drop older files;
        returns it read back (mapped, as a reopen would see it).

        The chunks go to a ``ChunkTable``, streamed in blocks: a 1M-chunk snapshot never
        exists as one object in memory."""
        private_dir(self.folder)
        jname = f"base-{seq:09d}.json"
        vocab_json = b'{"vocab":' + _dumps(snap.vocab) + b"}"
        atomic_write_bytes(self.folder / jname, vocab_json)
        table = ChunkTable.write(self.folder, f"base-{seq:09d}.chunks", snap.chunks,
                                 base=snap.table, base_rows=snap.table_rows)
        npy = {}
        written: dict[str, Any] = dict(zip(_CSC_FILES, (snap.doc_len, *_csc_of(snap)),
                                           strict=True))
        for key in _LAZY:
            written[f"{key}.digests"] = block_digests(written[key])
        for key, arr in written.items():
            name = f"base-{seq:09d}.{key}.npy"
            with atomic_writer(self.folder / name) as fh:  # straight to the file: no copies
                np.save(fh, np.ascontiguousarray(arr), allow_pickle=False)
            if key in _LAZY:  # its block digests (hashed below) stand for it
                npy[key] = {"file": name}
                continue
            with (self.folder / name).open("rb") as fh:  # hashed from the page cache
                npy[key] = {"file": name,
                            "sha256": hashlib.file_digest(fh, "sha256").hexdigest()}
        del written
        base = {"json": jname, "json_sha256": hashlib.sha256(vocab_json).hexdigest(),
                "npy": npy, "chunks": table, "rows": snap.rows}
        back = self._read_table(base, self.folder / jname, vocab_json, check=False)
        if back.rows != snap.rows:
            raise IndexCorruptError(f"bm25 index {self.folder}: snapshot {jname} holds "
                                    f"{back.rows} chunks, {snap.rows} were expected")
        if back.check is not None:
            back.check.trust_all()  # written just now from checked arrays, with these digests
        self.write_manifest(seq, analyzer, base)
        self.cleanup(seq, keep={jname, *(e["file"] for e in npy.values()),
                                *(e["file"] for e in table.values())})
        return back

    def write_manifest(self, seq: int, analyzer: dict[str, Any],
                       base: dict[str, Any] | None) -> None:
        atomic_write_bytes(self.manifest_path, json.dumps({
            "format": FORMAT, "version": FORMAT_VERSION, "base_seq": seq, "base": base,
            "analyzer": analyzer}, indent=1).encode("utf-8"))  # fsyncs the folder too

    def cleanup(self, seq: int, keep: set[str]) -> None:
        """Remove deltas folded into the snapshot at ``seq``, older bases and temp files."""
        for p in self.folder.iterdir():
            name = p.name
            m = _DELTA.match(name)
            stale = (m is not None and int(m.group(1)) <= seq) or (
                _BASE.match(name) is not None and name not in keep) or (
                name.startswith((".delta-", ".base-", f".{MANIFEST}.")) and name.endswith(".tmp"))
            if stale:
                p.unlink(missing_ok=True)


def _csc_of(snap: Snapshot) -> tuple[Any, Any, Any]:
    """The snapshot's rows as CSC (indptr, row indices, tf): the layout scoring reads."""
    if snap.csc is not None:
        return snap.csc
    assert snap.nnz is not None and snap.terms is not None and snap.tfs is not None
    indptr = np.zeros(len(snap.nnz) + 1, dtype=np.int64)
    np.cumsum(snap.nnz, out=indptr[1:])
    csc = sparse.csr_matrix((snap.tfs, snap.terms, indptr),
                            shape=(len(snap.nnz), len(snap.vocab))).tocsc()
    csc.sort_indices()
    return csc.indptr, csc.indices, csc.data.astype(np.int32, copy=False)
