"""On-disk layout of the ``exact`` index: a manifest switched last over seq-named files.

::

    exact.json                manifest: format, version, seq, rows, dim, metric, and each
                              file of the current write with its sha256
    vectors-<seq>.npy         the (rows, dim) float32 matrix, memory-mapped read-only on open
    chunks-<seq>.*            the chunks in row order: from ``TABLE_MIN_ROWS`` rows a
                              ``trawl.chunktable.ChunkTable`` (columns mapped read-only,
                              rows decoded on demand), below it one ``chunks-<seq>.json``
    exact.npz                 version 1 (still read): vectors + chunk JSON in one zip; the
                              next save writes the layout above and removes it

A save writes every file of a new ``seq`` through ``trawl.storage.atomic_writer`` (temp
file, fsync, rename), then replaces the manifest, then removes the older files. A crash at
any point leaves the previous manifest and the files it names, so vectors and chunks of
different writes are never read together. No pickle: ``.npy`` read with
``allow_pickle=False``, JSON validated by pydantic.

A small index keeps its chunks in one JSON file because every save rewrites them: the
table's 20 files cost ~250 ms of fsyncs and unlinks per save here against ~35 ms, while
validating 20k chunks on open costs ~0.2 s.

On open the vector file is checked against its recorded size and shape; up to
``FULL_CHECK_BYTES`` also against its full sha256 (the chunk table checks its own files).
A larger vector file (1M x 384-d is 1.5 GB) gets a spot check (the sha256 of its size and
64 evenly spread 64 KiB blocks) instead: hashing all of it would cost more than the 2 s a
reopen may take, while a crash cannot tear it (it is fsynced before the manifest names
it). What the spot check can miss is a flipped bit inside the matrix. File names in the
manifest must be this layout's own plain names (no path can point elsewhere).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from .chunktable import ChunkTable, _Hashing
from .components import FloatArray
from .errors import IndexCorruptError
from .models import Chunk
from .storage import FORMAT_VERSION, atomic_write_bytes, atomic_writer, private_dir

FORMAT = "trawl-exact"
VERSION = 2
MANIFEST = "exact.json"
LEGACY = "exact.npz"
FULL_CHECK_BYTES = 256 * 1024 * 1024
_SPOT_BLOCKS, _SPOT_BYTES = 64, 64 * 1024
TABLE_MIN_ROWS = 20_000
_OWN = re.compile(r"^(vectors|chunks)-\d{9}[.-]")
_CHUNKS_JSON = TypeAdapter(list[Chunk])
_JSON_BLOCK = 10_000  # chunks serialised at a time
_VECTOR_BLOCK = 65_536  # rows written at a time (96 MB at 384-d)


@dataclass
class Stored:
    """What one committed write holds; ``vectors`` is read-only when mapped."""

    seq: int
    vectors: FloatArray
    chunks: ChunkTable | list[Chunk]  # a mapped table, or (one JSON file, v1) heap chunks


def _spot_digest(path: Path) -> str:
    with path.open("rb") as fh:
        size = fh.seek(0, io.SEEK_END)
        sha = hashlib.sha256(str(size).encode())
        last = max(size - _SPOT_BYTES, 0)
        for i in range(_SPOT_BLOCKS):
            fh.seek(last * i // (_SPOT_BLOCKS - 1))
            sha.update(fh.read(_SPOT_BYTES))
    return sha.hexdigest()


def _full_digest(path: Path) -> str:
    with path.open("rb") as fh:  # through the page cache, not the heap
        return hashlib.file_digest(fh, "sha256").hexdigest()


class ExactStore:
    """Reads and writes one exact index folder; knows nothing about search."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.manifest_path = folder / MANIFEST

    def _corrupt(self, path: Path, problem: str) -> IndexCorruptError:
        return IndexCorruptError(f"exact index file {path} {problem}; restore it or delete "
                                 "the index folder and re-index")

    # -- reading ---------------------------------------------------------------------------
    def read(self) -> Stored | None:
        """The last committed write, or ``None`` for a folder that holds none."""
        if self.manifest_path.exists():
            return self._read_v2()
        if (self.folder / LEGACY).exists():
            return self._read_legacy(self.folder / LEGACY)
        return None

    def _read_v2(self) -> Stored:
        path = self.manifest_path
        try:
            manifest = json.loads(path.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._corrupt(path, f"is unreadable ({exc})") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise self._corrupt(path, "is not a trawl exact-index manifest")
        if manifest.get("version") != VERSION:
            raise IndexCorruptError(f"exact index manifest {path} has version "
                                    f"{manifest.get('version')!r}; this trawl reads {VERSION}. "
                                    "Re-index into a new folder.")
        try:
            seq, rows, dim = (int(manifest[k]) for k in ("seq", "rows", "dim"))
            vfile = manifest["vectors"]
            vname = str(vfile["file"])
        except (KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(path, f"lacks a field ({exc})") from exc
        if not _OWN.match(vname) or "/" in vname or "\\" in vname:
            raise self._corrupt(path, f"names {vname!r}, not a vector file of this layout")
        vectors = self._read_vectors(self.folder / vname, vfile, rows, dim)
        entry = manifest.get("chunks")
        chunks: ChunkTable | list[Chunk]
        if isinstance(entry, dict) and isinstance(entry.get("json"), dict):
            chunks = self._read_json_chunks(entry["json"])
        elif isinstance(entry, dict) and "table" in entry:
            chunks = ChunkTable.open(self.folder, entry["table"])
        else:
            raise self._corrupt(path, "names no chunk file")
        if len(chunks) != rows:
            raise self._corrupt(path, f"says {rows} rows, its chunks are {len(chunks)}")
        return Stored(seq=seq, vectors=vectors, chunks=chunks)

    def _read_json_chunks(self, entry: dict[str, Any]) -> list[Chunk]:
        name = entry.get("file")
        if not isinstance(name, str) or not _OWN.match(name) or "/" in name or "\\" in name:
            raise self._corrupt(self.manifest_path, "names no valid chunk file")
        path = self.folder / name
        self._check_digest(path, entry)
        try:
            return _CHUNKS_JSON.validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError) as exc:
            raise self._corrupt(path, f"is unreadable or holds an invalid chunk ({exc})"
                                ) from exc

    def _check_digest(self, path: Path, entry: dict[str, Any]) -> None:
        try:
            size = path.stat().st_size
            if entry.get("bytes") is not None and size != entry["bytes"]:
                raise self._corrupt(path, f"holds {size} bytes, {self.manifest_path} "
                                          f"recorded {entry['bytes']} (truncated or replaced)")
            if size <= FULL_CHECK_BYTES or entry.get("spot_sha256") is None:
                ok = _full_digest(path) == entry.get("sha256")
            else:
                ok = _spot_digest(path) == entry["spot_sha256"]
        except OSError as exc:
            raise self._corrupt(path, f"is missing or unreadable ({exc})") from exc
        if not ok:
            raise self._corrupt(path, f"is corrupt: its sha256 does not match the one recorded "
                                      f"in {self.manifest_path}")

    def _read_vectors(self, path: Path, entry: dict[str, Any], rows: int,
                      dim: int) -> FloatArray:
        self._check_digest(path, entry)
        try:  # a 0-row matrix has no data to map
            arr = np.load(path, mmap_mode="r" if rows else None, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise self._corrupt(path, f"is unreadable ({exc})") from exc
        if arr.dtype != np.float32 or arr.shape != (rows, dim):
            raise self._corrupt(path, f"holds {arr.dtype} {arr.shape}, {self.manifest_path} "
                                      f"says float32 ({rows}, {dim})")
        plain: FloatArray = arr.view(np.ndarray)  # still backed by the map
        return plain

    def _read_legacy(self, path: Path) -> Stored:
        """Version 1: one ``exact.npz``, loaded into the heap."""
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
                vectors = np.asarray(data["vectors"], dtype=np.float32)
        except (OSError, ValueError, KeyError, UnicodeDecodeError, zipfile.BadZipFile,
                EOFError) as exc:
            raise self._corrupt(path, f"is unreadable ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            got = meta.get("format") if isinstance(meta, dict) else None
            raise self._corrupt(path, f"has format {got!r}, this trawl reads {FORMAT_VERSION}")
        try:
            chunks = [Chunk.model_validate(c) for c in meta["chunks"]]
        except (KeyError, TypeError, ValidationError) as exc:
            raise self._corrupt(path, f"holds an invalid chunk ({exc})") from exc
        if len(chunks) != len(vectors) or (len(vectors) and vectors.ndim != 2):
            raise self._corrupt(path, f"holds {len(chunks)} chunks but vectors of shape "
                                      f"{vectors.shape}")
        return Stored(seq=0, vectors=vectors, chunks=chunks)

    # -- writing ---------------------------------------------------------------------------
    def write(self, seq: int, vectors: Sequence[FloatArray], metric: str, chunks: list[Chunk],
              *, base: ChunkTable | None = None, base_rows: Any = None
              ) -> tuple[ChunkTable | None, FloatArray]:
        """Write ``seq``'s files, switch the manifest to them, then drop older files.

        ``vectors`` are the matrix's parts in row order (a mapped base and a heap tail are
        streamed into the file, never joined in memory). The rows are ``base_rows`` of
        ``base`` (copied as bytes) followed by ``chunks``. From ``TABLE_MIN_ROWS`` rows they
        go into a chunk table, returned mapped for the index to adopt; below it into one
        JSON file (``base`` must be ``None``: the caller passes every chunk) and ``None``
        is returned. The written vectors come back mapped read-only too."""
        private_dir(self.folder)
        vname = f"vectors-{seq:09d}.npy"
        rows = sum(len(part) for part in vectors)
        dim = int(vectors[0].shape[1]) if vectors else 0
        with atomic_writer(self.folder / vname) as fh:
            hashing = _Hashing(fh)  # hashed as written: one pass over a large matrix
            np.lib.format.write_array_header_2_0(hashing, {
                "descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
            for part in vectors:
                for start in range(0, len(part), _VECTOR_BLOCK):
                    hashing.write(np.ascontiguousarray(
                        part[start:start + _VECTOR_BLOCK], dtype="<f4").tobytes())
        vpath = self.folder / vname
        vfile = {"file": vname, "sha256": hashing.sha.hexdigest(),
                 "spot_sha256": _spot_digest(vpath), "bytes": vpath.stat().st_size}
        entry: dict[str, Any]
        table = None
        if rows >= TABLE_MIN_ROWS:
            files = ChunkTable.write(self.folder, f"chunks-{seq:09d}", chunks, base=base,
                                     base_rows=base_rows)
            entry, keep = {"table": files}, {e["file"] for e in files.values()}
            table = ChunkTable.open(self.folder, files, check_arrays=False)
        else:
            assert base is None, "the one-file layout takes every chunk"
            entry = {"json": self._write_json_chunks(f"chunks-{seq:09d}.json", chunks)}
            keep = {entry["json"]["file"]}
        atomic_write_bytes(self.manifest_path, json.dumps({
            "format": FORMAT, "version": VERSION, "seq": seq, "rows": rows,
            "dim": dim, "metric": metric, "vectors": vfile, "chunks": entry},
            indent=1).encode("utf-8"))
        self.cleanup(keep={vname, *keep})
        return table, self._map_vectors(vpath, rows, dim)

    @staticmethod
    def _map_vectors(path: Path, rows: int, dim: int) -> FloatArray:
        arr = np.load(path, mmap_mode="r" if rows else None, allow_pickle=False)
        plain: FloatArray = arr.view(np.ndarray)  # still backed by the map
        return plain

    def _write_json_chunks(self, name: str, chunks: list[Chunk]) -> dict[str, Any]:
        with atomic_writer(self.folder / name) as fh:
            out = _Hashing(fh)
            out.write(b"[")
            for i in range(0, len(chunks), _JSON_BLOCK):
                out.write((b"," if i else b"") + _CHUNKS_JSON.dump_json(
                    chunks[i:i + _JSON_BLOCK])[1:-1])
            out.write(b"]")
        return {"file": name, "sha256": out.sha.hexdigest(),
                "bytes": (self.folder / name).stat().st_size}

    def cleanup(self, keep: set[str]) -> None:
        """Remove files of older writes, the version-1 file and stray temp files. The
        write is committed already: a file that cannot go now (still mapped, on Windows) is
        left for the next save rather than failing this one."""
        for p in self.folder.iterdir():
            name = p.name
            stale = (_OWN.match(name) is not None and name not in keep) or name == LEGACY or (
                name.startswith((".vectors-", ".chunks-", f".{MANIFEST}.", f".{LEGACY}."))
                and name.endswith(".tmp"))
            if stale:
                try:
                    p.unlink(missing_ok=True)
                except OSError:
                    pass
