"""The exact index's files: a reopen maps the vectors and answers identically, old
``exact.npz`` folders still open, damaged files raise a typed error and overwrite nothing.

Tests marked with the ``layout`` fixture run twice: chunks in one JSON file (small indexes)
and in a mapped chunk table (from ``TABLE_MIN_ROWS`` rows, lowered to 0 here)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trawl import ComponentContext
from trawl.builtin import ExactIndex
from trawl.components import IndexQuery
from trawl.errors import IndexCorruptError
from trawl.filters import parse_filter
from trawl.models import Chunk

V1_FOLDER = Path(__file__).parent / "data" / "exact-v1"  # written by the version-1 code
FILTERS: list[Any] = [None, {"field": "year", "op": ">=", "value": 2003},
                      {"field": "tag", "op": "in", "value": ["a"]}]


@pytest.fixture(params=["json", "table"])
def layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    import trawl.exact_store as store

    monkeypatch.setattr(store, "TABLE_MIN_ROWS", 0 if request.param == "table" else 10**9)
    return str(request.param)


def _index(folder: Path | None, dim: int = 8) -> ExactIndex:
    return ExactIndex(ExactIndex.Config(), ComponentContext(
        name="exact", dim=dim, metric="cosine", storage_dir=folder))


def _chunks(n: int, start: int = 0) -> list[Chunk]:
    return [Chunk(id=f"d{i // 3}#{i % 3}", doc_id=f"d{i // 3}", text=f"text {i} é", index=i % 3,
                  metadata={"year": 2000 + i % 7, "tag": "ab"[i % 2]})
            for i in range(start, start + n)]


def _answers(index: ExactIndex, dim: int = 8) -> list[list[dict[str, Any]]]:
    """Every hit in full (id, score, rank, text, metadata, ...) for a few queries x filters."""
    rng = np.random.default_rng(11)
    out = []
    for _ in range(4):
        q = IndexQuery(text="", vector=rng.normal(size=dim).astype(np.float32))
        for f in FILTERS:
            hits = index.search(q, 7, None if f is None else parse_filter(f))
            out.append([h.model_dump() for h in hits])
    return out


def _files(folder: Path) -> list[str]:
    """The folder's files, each chunk-table file (``chunks-<seq>.*``) as ``chunks-<seq>``."""
    return sorted({p.name[:16] if p.name.startswith("chunks-") else p.name
                   for p in folder.iterdir()})


def _mapped_files(folder: Path) -> set[str]:
    text = Path("/proc/self/maps").read_text()
    return {Path(line.split(maxsplit=5)[5].strip()).name
            for line in text.splitlines() if str(folder) in line}


def test_reopen_maps_the_vectors_and_answers_identically(tmp_path: Path, layout: str) -> None:
    folder = tmp_path / "idx"
    ref, index = _index(None), _index(folder)
    rng = np.random.default_rng(5)
    for part in range(3):  # three saves: only the last write's files stay
        chunks, vecs = _chunks(40, 40 * part), rng.normal(size=(40, 8)).astype(np.float32)
        ref.upsert(chunks, vecs)
        index.upsert(chunks, vecs)
    for i in (ref, index):
        i.delete(["d3", "d17"])
    want = _answers(ref)
    assert _answers(index) == want
    assert _files(folder) == ["chunks-000000004", "exact.json", "vectors-000000004.npy"]

    again = _index(folder)
    # mapped, not read into the heap (the table's blobs are read per row with pread)
    mapped = {"vectors-000000004.npy"} | ({"chunks-000000004.texts.offsets.npy"}
                                          if layout == "table" else set())
    assert mapped <= _mapped_files(folder)
    assert _answers(again) == want
    assert again.count() == ref.count() and again.doc_ids() == ref.doc_ids()
    assert again.get_chunks(["d5#1", "d3#0"]) == ref.get_chunks(["d5#1", "d3#0"])

    # writes after a mapped open: an update, new rows, a delete, metadata; then reopen
    rows = np.vstack([rng.normal(size=(1, 8)), rng.normal(size=(9, 8))]).astype(np.float32)
    changed = [c.model_copy(update={"metadata": {"year": 1999, "tag": "b"}})
               for c in _chunks(2, 30)]
    for i in (ref, again):
        i.upsert([*_chunks(1, 10), *_chunks(9, 200)], rows)
        i.delete(["d8"])
        i.update_metadata(changed)
    want = _answers(ref)
    assert _answers(again) == want
    third = _index(folder)
    assert _answers(third) == want
    ids = [c.id for c in _chunks(220)]
    assert third.get_chunks(ids) == ref.get_chunks(ids)


def test_a_version_1_folder_opens_and_is_rewritten_on_its_next_save(tmp_path: Path,
                                                                     layout: str) -> None:
    folder = tmp_path / "idx"
    shutil.copytree(V1_FOLDER, folder)
    ref = _index(None)
    rng = np.random.default_rng(2026)  # what wrote the fixture (tests/core/data/exact-v1)
    ref.upsert(_chunks(48), rng.normal(size=(48, 8)).astype(np.float32))
    ref.delete(["d4"])
    old = _index(folder)
    assert old.count() == 45
    assert _answers(old) == _answers(ref)
    extra = rng.normal(size=(3, 8)).astype(np.float32)
    for i in (ref, old):
        i.upsert(_chunks(3, 90), extra)
    assert _files(folder) == ["chunks-000000001", "exact.json", "vectors-000000001.npy"]
    assert _answers(_index(folder)) == _answers(ref)


def _filled(folder: Path) -> ExactIndex:
    index = _index(folder)
    index.upsert(_chunks(30), np.random.default_rng(3).normal(size=(30, 8)).astype(np.float32))
    return index


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["truncated vectors", "flipped vectors", "missing vectors",
                                    "flipped chunks", "missing chunks", "wrong shape",
                                    "path outside the folder", "garbage manifest"])
def test_damaged_files_raise_naming_the_file_and_nothing_is_overwritten(
        tmp_path: Path, damage: str, layout: str) -> None:
    folder = tmp_path / "idx"
    _filled(folder)
    vectors = folder / "vectors-000000001.npy"
    named = vectors
    if damage == "truncated vectors":
        vectors.write_bytes(vectors.read_bytes()[:-64])
    elif damage == "flipped vectors":
        _flip_last_byte(vectors)
    elif damage == "missing vectors":
        vectors.unlink()
    elif damage == "flipped chunks":
        named = folder / ("chunks-000000001.positions.npy" if layout == "table"
                          else "chunks-000000001.json")
        _flip_last_byte(named)
    elif damage == "missing chunks":
        named = folder / ("chunks-000000001.ids.bin" if layout == "table"
                          else "chunks-000000001.json")
        named.unlink()
    elif damage == "wrong shape":  # a valid .npy of another shape, its manifest entry updated
        np.save(vectors, np.zeros((29, 8), np.float32))
        manifest = json.loads((folder / "exact.json").read_text())
        manifest["vectors"]["sha256"] = __import__("hashlib").sha256(
            vectors.read_bytes()).hexdigest()
        manifest["vectors"]["bytes"] = vectors.stat().st_size
        (folder / "exact.json").write_text(json.dumps(manifest))
    elif damage == "path outside the folder":
        manifest = json.loads((folder / "exact.json").read_text())
        manifest["vectors"]["file"] = "../vectors-000000001.npy"
        shutil.copy(vectors, tmp_path / "vectors-000000001.npy")
        (folder / "exact.json").write_text(json.dumps(manifest))
        named = folder / "exact.json"
    else:
        (folder / "exact.json").write_text("{not json")
        named = folder / "exact.json"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(IndexCorruptError, match=str(named)):
        _index(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_damaged_chunk_text_is_a_typed_error_when_its_row_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunk texts are checked per block when first read (the chunk table's contract), so
    the open succeeds and the search that would return the damaged text raises."""
    import trawl.exact_store as store

    monkeypatch.setattr(store, "TABLE_MIN_ROWS", 0)
    folder = tmp_path / "idx"
    _filled(folder)
    texts = folder / "chunks-000000001.texts.bin"
    _flip_last_byte(texts)
    index = _index(folder)
    with pytest.raises(IndexCorruptError, match=str(texts)):
        index.search(IndexQuery(text="", vector=np.ones(8, np.float32)), 30)


def test_large_vector_files_get_a_spot_check(tmp_path: Path, monkeypatch: Any) -> None:
    """Above FULL_CHECK_BYTES only sampled blocks are hashed (a 1M x 384 matrix is 1.5 GB):
    truncation and a damaged sampled block are still caught."""
    import trawl.exact_store as store

    monkeypatch.setattr(store, "FULL_CHECK_BYTES", 100)
    folder = tmp_path / "idx"
    _filled(folder)
    vectors = folder / "vectors-000000001.npy"
    good = vectors.read_bytes()
    assert _index(folder).count() == 30
    _flip_last_byte(vectors)  # the last block is always sampled
    with pytest.raises(IndexCorruptError, match=str(vectors)):
        _index(folder)
    vectors.write_bytes(good)
    assert _index(folder).count() == 30


def test_an_unfinished_write_is_ignored_and_cleaned_by_the_next(tmp_path: Path,
                                                                layout: str) -> None:
    """A crash after the new files were written but before the manifest switched: the
    folder opens at the last committed write; the next save removes the orphans."""
    folder = tmp_path / "idx"
    index = _filled(folder)
    want = _answers(index)
    np.save(folder / "vectors-000000002.npy", np.ones((31, 8), np.float32))
    (folder / ".chunks-000000002.texts.bin.abc.tmp").write_bytes(b"[")
    again = _index(folder)
    assert again.count() == 30 and _answers(again) == want
    again.delete(["d0"])
    assert _files(folder) == ["chunks-000000002", "exact.json", "vectors-000000002.npy"]
    assert _index(folder).count() == 27


def test_single_row_upserts_grow_the_buffer_geometrically() -> None:
    """A bulk load of one-row upserts copies the matrix O(log n) times, not once a row
    (np.vstack per upsert made it quadratic)."""
    index = _index(None, dim=4)
    rng = np.random.default_rng(1)
    copies, held = 0, None
    for i in range(3000):
        index.upsert([Chunk(id=f"c{i}", doc_id=f"c{i}", text="t")],
                     rng.normal(size=(1, 4)).astype(np.float32))
        copies += index._buffer is not held
        held = index._buffer
    assert index.count() == 3000
    assert copies <= 20, f"the matrix was copied {copies} times for 3000 upserts"


def test_writes_after_a_reopen_decode_no_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """Upserts (new and replacing), metadata updates and deletes after a table-backed reopen
    change only the row bookkeeping, and the save copies the kept rows as bytes: no chunk is
    decoded (a 1M-row index decoded every row at its first write, ~16-30 s)."""
    import trawl.exact_store as store
    from trawl.chunktable import ChunkTable

    monkeypatch.setattr(store, "TABLE_MIN_ROWS", 0)
    folder = tmp_path / "idx"
    ref, first = _index(None), _index(folder)
    rng = np.random.default_rng(8)
    vecs = rng.normal(size=(60, 8)).astype(np.float32)
    for i in (ref, first):
        i.upsert(_chunks(60), vecs)
    index = _index(folder)

    def no_decoding(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a write decoded chunk rows")

    with monkeypatch.context() as patched:
        patched.setattr(ChunkTable, "chunks", no_decoding)
        patched.setattr(ChunkTable, "__getitem__", no_decoding)
        more = rng.normal(size=(4, 8)).astype(np.float32)
        changed = [c.model_copy(update={"metadata": {"year": 1990}}) for c in _chunks(2, 20)]
        for i in (ref, index):
            i.upsert([*_chunks(2, 5), *_chunks(2, 300)], more)
            i.update_metadata(changed)
            i.delete(["d2", "d101"])
            with i.write_batch():
                i.upsert(_chunks(1, 7), more[:1])
                i.delete(["d11"])
    assert _answers(index) == _answers(ref)
    assert _answers(_index(folder)) == _answers(ref)
    ids = [c.id for c in _chunks(310)]
    assert _index(folder).get_chunks(ids) == ref.get_chunks(ids)
