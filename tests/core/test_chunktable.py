"""The columnar chunk table: exact round trip, lazy lookups, and hostile files."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trawl.chunktable import BLOCK_BYTES, ChunkTable
from trawl.errors import IndexCorruptError
from trawl.models import Chunk

# JSON values a chunk's metadata holds (no NaN: it is not equal to itself; no lone
# surrogates in the strategy, a separate test keeps them)
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12)
_chunks = st.lists(st.builds(
    Chunk, id=_text, doc_id=st.sampled_from(["a", "b", "ünï", ""]) | _text, text=_text,
    index=st.integers(-(2**40), 2**40), start=st.integers(0, 2**40), end=st.integers(0, 2**40),
    metadata=st.dictionaries(_text, _json, max_size=5)), max_size=25)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chunks=_chunks)
def test_round_trip_is_exact(tmp_path: Path, chunks: list[Chunk]) -> None:
    folder = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    table = ChunkTable.open(folder, ChunkTable.write(folder, "c", iter(chunks)))
    assert len(table) == len(chunks)
    assert [c.model_dump() for c in table] == [c.model_dump() for c in chunks]
    for row, c in enumerate(chunks):
        assert (table.chunk_id(row), table.doc_id(row)) == (c.id, c.doc_id)
        assert table.row_of(c.id) == next(i for i, d in enumerate(chunks) if d.id == c.id)
        assert row in table.rows_of_doc(c.doc_id).tolist()
    assert table.row_of("not-" + "x" * 50) is None
    ids = [c.id for c in chunks]
    assert table.rows_of([*ids, "not-" + "x" * 50]) == [table.row_of(i) for i in ids] + [None]
    docs = [c.doc_id for c in chunks]
    assert table.doc_numbers_of(docs) == [table.doc_number(d) for d in docs]
    table.verify()


def test_lookups_metadata_types_and_surrogates(tmp_path: Path) -> None:
    when = dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC)
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i % 3}", text="t\ud800x" if i == 4 else "wörd " * i,
                    index=i, start=i * 2, end=i * 3,
                    metadata={} if i % 2 else {"n": i, "f": -0.0, "big": 2**64, "s": "日本",
                                               "l": [1, None, {"k": True}]})
              for i in range(7)]
    chunks.append(Chunk(id="dated", doc_id="d9", text="", metadata={"when": when}))
    table = ChunkTable.open(tmp_path, ChunkTable.write(tmp_path, "c", chunks))
    assert [c.model_dump() for c in table][:7] == [c.model_dump() for c in chunks[:7]]
    assert table[4].text == "t\ud800x"  # kept exactly
    assert table.metadata(7) == {"when": "2024-05-01T12:30:00Z"}  # its JSON form, as before
    assert table.rows_of_doc("d1").tolist() == [1, 4]
    assert table.doc_name(int(table.doc_numbers[5])) == "d2"
    with pytest.raises(IndexError):
        table[8]


def _write(tmp_path: Path, rows: int = 3000) -> dict[str, dict[str, str]]:
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i // 2}", text=f"text number {i} " * 8,
                    metadata={"i": i}) for i in range(rows)]
    return ChunkTable.write(tmp_path, "c", chunks)


def test_a_flipped_text_byte_is_caught_when_its_row_is_read(tmp_path: Path) -> None:
    files = _write(tmp_path)
    path = tmp_path / files["texts"]["file"]
    data = bytearray(path.read_bytes())
    assert len(data) > 2 * BLOCK_BYTES
    data[BLOCK_BYTES + 10] ^= 1  # a valid ASCII byte becomes another: structure intact
    path.write_bytes(bytes(data))
    table = ChunkTable.open(tmp_path, files)  # blobs are checked lazily
    assert table[0].text.startswith("text number 0")  # rows in intact blocks still read
    first_last = list(table.chunks([0, len(table) - 1]))  # a bulk read of scattered rows
    assert first_last[1].id == f"c{len(table) - 1}"
    assert int(table._texts.checked.sum()) == 2  # checks their blocks only, not the span
    bad = int(np.searchsorted(table._texts.offsets, BLOCK_BYTES + 10, side="right")) - 1
    with pytest.raises(IndexCorruptError, match=r"texts\.bin"):
        table.text(bad)
    with pytest.raises(IndexCorruptError, match=r"texts\.bin"):
        table.verify()


def _save(path: Path, arr: Any) -> None:
    with path.open("wb") as fh:
        np.save(fh, arr)


@pytest.mark.parametrize("case", [
    "truncated blob", "missing blob", "offsets past the blob", "decreasing offsets",
    "doc number out of range", "wrong row count", "pickled object array", "bit flip in npy",
    "path in manifest", "entry missing", "lookup row out of range", "doc bounds"])
def test_hostile_files_raise_naming_the_file(tmp_path: Path, case: str) -> None:
    files = _write(tmp_path, rows=50)
    entry = json.loads(json.dumps(files))
    path = {k: tmp_path / v["file"] for k, v in files.items()}

    def forged(name: str, arr: Any) -> None:  # a consistent sha256: only structure can catch it
        _save(path[name], arr)
        import hashlib
        entry[name]["sha256"] = hashlib.sha256(path[name].read_bytes()).hexdigest()

    expect = None
    if case == "truncated blob":
        path["texts"].write_bytes(path["texts"].read_bytes()[:-5])
        expect = "texts"
    elif case == "missing blob":
        path["ids"].unlink()
        expect = "ids"
    elif case == "offsets past the blob":
        off = np.load(path["texts.offsets"]).copy()
        off[-1] += 100
        forged("texts.offsets", off)
        expect = "texts.offsets"
    elif case == "decreasing offsets":
        off = np.load(path["ids.offsets"]).copy()
        off[3], off[4] = off[4], off[3]
        forged("ids.offsets", off)
        expect = "ids.offsets"
    elif case == "doc number out of range":
        di = np.load(path["doc_index"]).copy()
        di[7] = 10_000
        forged("doc_index", di)
        expect = "doc_index"
    elif case == "wrong row count":
        forged("positions", np.load(path["positions"])[:-1].copy())
        expect = "doc_index|offsets"
    elif case == "pickled object array":
        with path["positions"].open("wb") as fh:
            np.save(fh, np.array([{"a": 1}], dtype=object), allow_pickle=True)
        import hashlib
        entry["positions"]["sha256"] = hashlib.sha256(path["positions"].read_bytes()).hexdigest()
        expect = "positions"
    elif case == "bit flip in npy":
        data = bytearray(path["positions"].read_bytes())
        data[-3] ^= 4
        path["positions"].write_bytes(bytes(data))
        expect = "positions"
    elif case == "lookup row out of range":
        order = np.load(path["ids.order"]).copy()
        order[0] = 10**9
        forged("ids.order", order)
        expect = "ids.order"
    elif case == "doc bounds":
        bounds = np.load(path["doc_bounds"]).copy()
        bounds[1] = bounds[-1] + 1
        forged("doc_bounds", bounds)
        expect = "doc_bounds"
    elif case == "path in manifest":
        entry["texts"]["file"] = "../elsewhere.bin"
        expect = "texts"
    else:
        del entry["metadata.digests"]
        expect = "metadata.digests"
    with pytest.raises(IndexCorruptError, match=expect):
        ChunkTable.open(tmp_path, entry)


def test_rows_copied_from_a_base_table_equal_written_ones(tmp_path: Path) -> None:
    first = [Chunk(id=f"c{i}", doc_id=f"d{i // 3}", text=f"tëxt {i} " * (i % 40), index=i,
                   metadata={"i": i} if i % 2 else {}) for i in range(25_000)]
    base = ChunkTable.open(tmp_path, ChunkTable.write(tmp_path, "a", first))
    keep = [r for r in range(len(first)) if r % 7 and r // 3 != 5]  # doc d5 fully dropped
    more = [Chunk(id="n1", doc_id="d4", text="joins a kept doc"),
            Chunk(id="n2", doc_id="d5", text="a dropped doc again"),
            Chunk(id="n3", doc_id="new", text="a new doc", metadata={"x": [1]})]
    copied = ChunkTable.open(tmp_path, ChunkTable.write(tmp_path, "b", iter(more), base=base,
                                                        base_rows=keep))
    want = [first[r] for r in keep] + more
    assert [c.model_dump() for c in copied] == [c.model_dump() for c in want]
    for c in (want[0], want[777], *more):
        assert copied.row_of(c.id) == want.index(c)
    assert copied.rows_of_doc("d4").tolist() == [i for i, c in enumerate(want) if c.doc_id == "d4"]
    assert copied.rows_of_doc("d5").tolist() == [len(want) - 2]
    assert copied.row_of("c35") is None  # 35 % 7 == 0: not kept
    assert sorted(copied.doc_names()) == sorted({c.doc_id for c in want})
    copied.verify()


def test_tables_with_the_earlier_64k_blocks_still_open(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import trawl.chunktable as chunktable

    chunks = [Chunk(id=f"c{i}", doc_id="d", text=f"text {i} " * 50) for i in range(500)]
    monkeypatch.setattr(chunktable, "BLOCK_BYTES", 1 << 16)
    files = ChunkTable.write(tmp_path, "old", chunks)
    monkeypatch.undo()
    table = ChunkTable.open(tmp_path, files)
    assert [c.model_dump() for c in table] == [c.model_dump() for c in chunks]
    table.verify()


def test_recent_chunks_cache_returns_what_the_files_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hits come from a bounded cache of recently returned chunks; whatever it holds or
    drops, concurrent callers get exactly the chunks of the rows they asked for."""
    import random
    import threading

    import trawl.chunktable as chunktable

    monkeypatch.setattr(chunktable, "_CACHED_CHUNKS", 16)  # started over often
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i // 4}", text=f"text {i} " * (i % 5 + 1),
                    index=i % 4, metadata={"i": i} if i % 3 else {}) for i in range(300)]
    table = ChunkTable.open(tmp_path, ChunkTable.write(tmp_path, "c", iter(chunks)))
    wrong: list[tuple[list[int], list[str]]] = []

    def ask(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(200):
            rows = [rng.randrange(300) for _ in range(rng.randrange(1, 12))]  # repeats too
            got = [c.id for c in table.chunks(rows)]
            if got != [f"c{r}" for r in rows]:
                wrong.append((rows, got))

    threads = [threading.Thread(target=ask, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong
    assert len(table._recent) <= 16
    assert [c.model_dump() for c in table.chunks(range(300))] == [
        c.model_dump() for c in chunks]  # a large request bypasses the cache
