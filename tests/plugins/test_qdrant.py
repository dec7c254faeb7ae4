"""The ``qdrant`` index, for real: qdrant-client local mode and the qdrant-edge engine here,
a Qdrant server when ``TRAWL_QDRANT_URL`` is set (same code, marked ``qdrant_server``)."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trawl
from tests.conftest import HashingPlugin
from trawl import Chunk, ComponentContext, Document, Index, IndexQuery, Trawl
from trawl.errors import (
    ConfigError,
    DimensionMismatchError,
    FilterError,
    IndexCorruptError,
    IndexLockedError,
    InputError,
    TrawlError,
)
from trawl.filters import matches, parse_filter
from trawl.storage import FORMAT_VERSION
from trawl.testing import IndexContract

pytest.importorskip("qdrant_client")
from trawl_qdrant.config import QdrantConfig
from trawl_qdrant.index import TRAWL_NAMESPACE, QdrantIndex, point_id

SERVER_URL = os.environ.get("TRAWL_QDRANT_URL")
server = pytest.mark.skipif(not SERVER_URL, reason="set TRAWL_QDRANT_URL to run against a "
                            "Qdrant server")
EMBEDDED = ["local", "edge"]
MODES = [*EMBEDDED, pytest.param("server", marks=[pytest.mark.qdrant_server, server])]


@pytest.fixture
def make_qdrant(tmp_path: Path) -> Iterator[Callable[..., QdrantIndex]]:
    """``make(mode, dim=8, metric="cosine", storage=True, **config)``; a server collection
    gets a unique name per test and is dropped afterwards."""
    made: list[QdrantIndex] = []
    collection = f"trawl-test-{uuid.uuid4().hex[:12]}"

    def make(mode: str, dim: int | None = 8, metric: str = "cosine", storage: bool = True,
             folder: Path | None = None, **config: Any) -> QdrantIndex:
        if mode == "server":
            config = {"url": SERVER_URL, "collection": collection, **config}
        cfg = QdrantConfig.model_validate({"mode": mode, **config})
        ctx = ComponentContext(name="dense", dim=dim, metric=metric,  # type: ignore[arg-type]
                               storage_dir=(folder or tmp_path / "idx") if storage else None)
        index = QdrantIndex(cfg, ctx)
        made.append(index)
        return index

    yield make
    for index in made:
        index.close()
    if SERVER_URL and any(i.mode == "server" for i in made):
        from qdrant_client import QdrantClient

        client = QdrantClient(url=SERVER_URL, api_key=QdrantConfig().resolved_api_key())
        client.delete_collection(collection)
        client.close()


# -- the conformance kit, once per engine -------------------------------------------------
class _Contract(IndexContract):
    mode = "local"

    @pytest.fixture
    def make_index(self, make_qdrant: Callable[..., QdrantIndex]) -> Callable[..., Index]:
        def make(dim: int = 8, metric: str = "cosine", storage: bool = True) -> Index:
            if self.mode == "server":
                storage = True  # the server keeps it; the folder only holds the marker
            return make_qdrant(self.mode, dim=dim, metric=metric, storage=storage)

        return make


class TestLocalContract(_Contract):
    mode = "local"


class TestEdgeContract(_Contract):
    mode = "edge"


@pytest.mark.qdrant_server
@server
class TestServerContract(_Contract):
    mode = "server"


# -- filters agree with trawl.filters.matches ------------------------------------------
_VALUES: list[Any] = ["en", "de", "fr", 0, 1, 2, 3, 2.5, True, False, None]


def _random_metadata(rng: random.Random) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for field in ("a", "b", "c"):
        r = rng.random()
        if r < 0.15:
            continue  # missing
        # non-empty lists: Qdrant cannot tell [] from a missing field (see filters.py)
        meta[field] = ([rng.choice(_VALUES) for _ in range(rng.randint(1, 3))] if r < 0.3
                       else rng.choice(_VALUES))
    if rng.random() < 0.3:
        meta["n"] = {"x": rng.choice([1, 2, "q"])}
    meta["lang"] = rng.choice(["en", "de", "fr"])
    meta["year"] = rng.randint(2000, 2010)
    meta["score"] = round(rng.uniform(0, 1), 2)
    meta["flag"] = rng.random() < 0.5
    meta["my-field"] = rng.choice(["x", "y"])
    return meta


def _random_condition(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(["a", "b", "c", "n.x", "missing", "lang", "year", "score", "flag",
                        "my-field"])
    op = rng.choice(["==", "!=", ">", ">=", "<", "<=", "in", "not in"])
    scalars = [v for v in _VALUES if v is not None] + [2005, 0.5, "x"]
    if op in ("in", "not in"):
        value: Any = [rng.choice(scalars) for _ in range(rng.randint(1, 3))]
    elif op in (">", ">=", "<", "<="):
        value = rng.choice([0, 1, 2, 2.5, 3, 2004, 0.5])
    else:
        value = rng.choice([*_VALUES, 2005, "x"])
    return {"field": field, "op": op, "value": value}


def _random_filter(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    r = rng.random()
    if depth > 2 or r < 0.5:
        return _random_condition(rng)
    if r < 0.7:
        return {"and": [_random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    if r < 0.9:
        return {"or": [_random_filter(rng, depth + 1) for _ in range(rng.randint(1, 3))]}
    return {"not": _random_filter(rng, depth + 1)}


def _random_corpus(n: int = 120, seed: int = 0) -> tuple[list[Chunk], np.ndarray]:
    rng = random.Random(seed)
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i // 2}", text=f"text {i}", index=i % 2,
                    metadata=_random_metadata(rng)) for i in range(n)]
    vecs = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return chunks, vecs


FILTER_SEEDS = range(3)
CASES_PER_SEED = 80


@pytest.mark.parametrize("payload_indexes", [False, True], ids=["plain", "indexed"])
@pytest.mark.parametrize("mode", MODES)
def test_random_filters_agree_with_reference(make_qdrant: Callable[..., QdrantIndex],
                                             mode: str, payload_indexes: bool) -> None:
    """The same random filters, on both embedded engines: the set of hits of a search with
    top_k = collection size equals the set of chunks ``trawl.filters.matches`` accepts."""
    indexes = {"lang": "keyword", "year": "integer", "score": "float", "flag": "bool"}
    index = make_qdrant(mode, dim=4, payload_indexes=indexes if payload_indexes else {})
    chunks, vecs = _random_corpus()
    index.upsert(chunks, vecs)
    query = IndexQuery(text="", vector=vecs[0])
    failures = []
    for seed in FILTER_SEEDS:
        rng = random.Random(100 + seed)
        for _ in range(CASES_PER_SEED):
            raw = _random_filter(rng)
            f = parse_filter(raw)
            want = {c.id for c in chunks if matches(f, c.metadata)}
            got = {h.chunk_id for h in index.search(query, len(chunks), f)}
            if want != got:
                failures.append((raw, sorted(want ^ got)[:3]))
    assert not failures, f"{len(failures)} filters disagree, e.g. {failures[:3]}"


@pytest.mark.parametrize("mode", EMBEDDED)
def test_filter_keeps_top_k_full_when_few_match(make_qdrant: Callable[..., QdrantIndex],
                                                mode: str) -> None:
    """Filtering happens inside the search: 1 allowed point in 100 is still found."""
    index = make_qdrant(mode, dim=4)
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(100, 4)).astype(np.float32)
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text="t",
                    metadata={"rare": i == 99}) for i in range(100)]
    index.upsert(chunks, vecs)
    hits = index.search(IndexQuery(text="", vector=vecs[0]), 3, parse_filter({"rare": True}))
    assert [h.chunk_id for h in hits] == ["c99"]


@pytest.mark.parametrize("mode", EMBEDDED)
def test_iso_dates_compare_and_other_string_ranges_are_rejected(
        make_qdrant: Callable[..., QdrantIndex], mode: str) -> None:
    index = make_qdrant(mode, dim=4)
    dates = ["2023-12-31", "2024-01-01T00:00:00Z", "2024-06-15", "2025-01-02"]
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text="t", metadata={"date": d})
              for i, d in enumerate(dates)]
    vecs = np.eye(4, dtype=np.float32)
    index.upsert(chunks, vecs)
    f = parse_filter({"field": "date", "op": ">=", "value": "2024-01-01"})
    got = {h.chunk_id for h in index.search(IndexQuery(text="", vector=vecs[0]), 10, f)}
    assert got == {c.id for c in chunks if matches(f, c.metadata)} == {"c1", "c2", "c3"}
    with pytest.raises(FilterError, match="ISO-8601"):
        index.search(IndexQuery(text="", vector=vecs[0]), 3,
                     parse_filter({"field": "date", "op": ">", "value": "banana"}))


@pytest.mark.parametrize("mode", EMBEDDED)
def test_empty_list_counts_as_null(make_qdrant: Callable[..., QdrantIndex], mode: str) -> None:
    """The one documented difference from ``matches``: Qdrant's IsEmpty treats [] as null."""
    index = make_qdrant(mode, dim=4)
    metas: list[dict[str, Any]] = [{"t": []}, {"t": None}, {}, {"t": ["a"]}, {"t": ["a", None]}]
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text="t", metadata=m)
              for i, m in enumerate(metas)]
    index.upsert(chunks, np.eye(5, 4, dtype=np.float32) + 0.1)
    f = parse_filter({"field": "t", "op": "==", "value": None})
    got = {h.chunk_id for h in index.search(IndexQuery(text="", vector=np.ones(4)), 10, f)}
    assert {c.id for c in chunks if matches(f, c.metadata)} == {"c1", "c2", "c4"}
    assert got == {"c0", "c1", "c2", "c4"}
    # every other operator agrees on []: it has no element equal to / in / above anything
    for raw in ({"t": "a"}, {"field": "t", "op": "!=", "value": "a"},
                {"field": "t", "op": "not in", "value": ["a"]}):
        f = parse_filter(raw)
        got = {h.chunk_id for h in index.search(IndexQuery(text="", vector=np.ones(4)), 10, f)}
        assert got == {c.id for c in chunks if matches(f, c.metadata)}, raw


# -- ids, payload, upsert, delete ------------------------------------------------------
def test_point_ids_are_deterministic_uuids() -> None:
    assert point_id("doc#0") == point_id("doc#0") != point_id("doc#1")
    assert uuid.UUID(point_id("doc#0")).version == 5
    assert point_id("doc#0") == str(uuid.uuid5(TRAWL_NAMESPACE, "doc#0"))


@pytest.mark.parametrize("mode", MODES)
def test_reingest_overwrites_and_payload_round_trips(make_qdrant: Callable[..., QdrantIndex],
                                                     mode: str) -> None:
    index = make_qdrant(mode, dim=4, batch_size=3)
    chunks = [Chunk(id=f"d{i // 3}#{i % 3}", doc_id=f"d{i // 3}", text=f"old {i}", index=i % 3,
                    start=10 * i, end=10 * i + 5, metadata={"k": i, "nested": {"a": [1, 2]}})
              for i in range(10)]
    vecs = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    index.upsert(chunks, vecs)
    changed = [c.model_copy(update={"text": "new"}) for c in chunks[:4]]
    index.upsert(changed, vecs[:4])
    assert index.count() == 10
    got = index.get_chunks([chunks[2].id, "nope", chunks[7].id])
    assert got[0] is not None and got[0].text == "new" and got[1] is None
    assert got[2] == chunks[7]
    hit = index.search(IndexQuery(text="", vector=vecs[7]), 1)[0]
    assert hit.chunk_id == chunks[7].id and hit.doc_id == "d2"
    assert hit.metadata == {"k": 7, "nested": {"a": [1, 2]}, "chunk_index": 1,
                            "chunk_start": 70, "chunk_end": 75}
    assert hit.scores_by_source["dense"].rank == 1
    assert index.delete(["d0", "d1", "missing"]) == 6
    assert index.doc_ids() == {"d2", "d3"} and index.count() == 4


@pytest.mark.parametrize("mode", EMBEDDED)
def test_dot_metric_uses_the_fde_vector_and_raw_scores(make_qdrant: Callable[..., QdrantIndex],
                                                       mode: str, tmp_path: Path) -> None:
    index = make_qdrant(mode, dim=4, metric="dot")
    vecs = np.array([[2.0, 0, 0, 0], [0, 1.0, 0, 0]], dtype=np.float32)
    index.upsert([Chunk(id="a", doc_id="a", text="a"), Chunk(id="b", doc_id="b", text="b")], vecs)
    hits = index.search(IndexQuery(text="", vector=np.array([3.0, 0, 0, 0])), 2)
    assert hits[0].chunk_id == "a" and hits[0].score == pytest.approx(6.0)
    marker = json.loads((tmp_path / "idx" / "trawl-qdrant.json").read_text())
    assert marker["metric"] == "dot"
    index.close()
    with pytest.raises(ConfigError, match="metric 'dot'"):
        make_qdrant(mode, dim=4, metric="cosine")


@pytest.mark.parametrize("mode", EMBEDDED)
def test_many_batches_with_progress(make_qdrant: Callable[..., QdrantIndex], mode: str) -> None:
    # local mode commits every point to SQLite (~25 ms each on this shared disk): keep n small
    index = make_qdrant(mode, dim=4, batch_size=32, show_progress=True)
    n = 150
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i % 50}", text="t") for i in range(n)]
    index.upsert(chunks, np.random.default_rng(1).normal(size=(n, 4)).astype(np.float32))
    assert index.count() == n and len(index.doc_ids()) == 50
    assert index.delete([f"d{i}" for i in range(10)]) == 30


@pytest.mark.parametrize("quantization", ["scalar", "binary"])
def test_edge_hnsw_and_quantization_still_find_the_point(
        make_qdrant: Callable[..., QdrantIndex], quantization: str) -> None:
    index = make_qdrant("edge", dim=32, quantization=quantization, optimize_after=1500,
                        hnsw={"m": 8, "ef_construct": 32, "ef": 64, "full_scan_threshold": 10,
                              "indexing_threshold_kb": 10})
    vecs = np.random.default_rng(2).normal(size=(1500, 32)).astype(np.float32)
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text="t", metadata={"g": i % 2})
              for i in range(1500)]
    index.upsert(chunks, vecs)  # crosses optimize_after: builds HNSW + quantized segments
    info = index.engine.shard.info()  # type: ignore[attr-defined]
    assert info.indexed_vectors_count == 1500
    for i in (5, 777):
        assert index.search(IndexQuery(text="", vector=vecs[i]), 5)[0].chunk_id == f"c{i}"
    hits = index.search(IndexQuery(text="", vector=vecs[6]), 5, parse_filter({"g": 0}))
    assert hits[0].chunk_id == "c6" and all(h.metadata["g"] == 0 for h in hits)


@pytest.mark.parametrize("mode", MODES)
def test_float16_vectors_keep_the_ranking_within_rounding(
        make_qdrant: Callable[..., QdrantIndex], mode: str, tmp_path: Path) -> None:
    """``vector_datatype = "float16"``: the same top hits as float32, scores within float16
    rounding, and the engine really stores half-precision vectors (edge: its config says so)."""
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(300, 64)).astype(np.float32)
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text="t") for i in range(300)]
    full = make_qdrant(mode, dim=64, metric="dot", folder=tmp_path / "f32")
    half = make_qdrant(mode, dim=64, metric="dot", folder=tmp_path / "f16",
                       vector_datatype="float16")
    full.upsert(chunks, vecs)
    half.upsert(chunks, vecs)
    for q in rng.normal(size=(5, 64)).astype(np.float32):
        want = full.search(IndexQuery(text="", vector=q), 20)
        got = half.search(IndexQuery(text="", vector=q), 20)
        assert [h.chunk_id for h in got[:5]] == [h.chunk_id for h in want[:5]]
        np.testing.assert_allclose([h.score for h in got], [h.score for h in want],
                                   rtol=0, atol=0.02)
    if mode == "edge":
        saved = json.loads((tmp_path / "f16" / "edge" / "edge_config.json").read_text())
        assert json.dumps(saved).lower().count("float16") == 1
        plain = json.loads((tmp_path / "f32" / "edge" / "edge_config.json").read_text())
        assert "float16" not in json.dumps(plain).lower()


# -- modes and configuration ------------------------------------------------------------
def test_auto_picks_edge_and_reopens_with_the_engine_on_disk(
        make_qdrant: Callable[..., QdrantIndex], tmp_path: Path) -> None:
    a = make_qdrant("auto", folder=tmp_path / "a")
    assert a.mode == "edge"
    b = make_qdrant("local", folder=tmp_path / "b")
    b.upsert([Chunk(id="x", doc_id="x", text="x")], np.ones((1, 8), np.float32))
    b.close()
    reopened = make_qdrant("auto", folder=tmp_path / "b")
    assert reopened.mode == "local" and reopened.count() == 1
    reopened.close()
    with pytest.raises(ConfigError, match="built in mode 'local'"):
        make_qdrant("edge", folder=tmp_path / "b")


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="needs a 'url'"):
        QdrantConfig(mode="server")
    with pytest.raises(ValueError, match="takes no 'url'"):
        QdrantConfig(mode="edge", url="http://localhost:6333")
    with pytest.raises(ValueError):
        QdrantConfig.model_validate({"mode": "edge", "hnsw": {"m": 16, "typo": 1}})
    with pytest.raises(ValueError, match="collection names"):
        QdrantConfig(collection="has space")


def test_registered_lazily_without_importing_qdrant() -> None:
    code = ("import sys, trawl; h = trawl.PluginHost(); "
            "assert 'qdrant' in h.registry.names('index'), h.errors; "
            "bad = [m for m in ('qdrant_client', 'qdrant_edge') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_end_to_end_through_trawl(tmp_path: Path) -> None:
    import trawl_qdrant

    host = trawl.PluginHost(entry_points=False, plugins=[("hashing-test", HashingPlugin),
                                                         ("qdrant", trawl_qdrant)])
    pipeline = {"name": "q", "retrievers": [{"name": "dense", "index": "qdrant",
                                             "encoder": "hashing"}]}
    docs = [Document(id="cats", text="Cats purr and sleep.", metadata={"lang": "en"}),
            Document(id="katzen", text="Katzen schnurren und schlafen.", metadata={"lang": "de"})]
    with Trawl.open(tmp_path / "i", pipeline=pipeline, host=host, show_progress=False) as t:
        t.add(docs)
        assert t.search("cats purr", 1)[0].doc_id == "cats"
        assert [h.doc_id for h in t.search("cats purr", 5, {"lang": "de"})] == ["katzen"]
        assert t.delete(["cats"]) == 1
    assert (tmp_path / "i" / "dense" / "edge" / "edge_config.json").exists()
    with Trawl.open(tmp_path / "i", pipeline=pipeline, host=host, show_progress=False) as t:
        assert [h.doc_id for h in t.search("cats purr", 5)] == ["katzen"]


# -- bad input -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", EMBEDDED)
def test_wrong_dimension_names_both(make_qdrant: Callable[..., QdrantIndex], mode: str) -> None:
    index = make_qdrant(mode, dim=8)
    index.upsert([Chunk(id="x", doc_id="x", text="x")], np.ones((1, 8), np.float32))
    with pytest.raises(DimensionMismatchError, match=r"8-d.*got 5-d"):
        index.upsert([Chunk(id="y", doc_id="y", text="y")], np.ones((1, 5), np.float32))
    with pytest.raises(DimensionMismatchError, match=r"8-d.*query is 3-d"):
        index.search(IndexQuery(text="", vector=np.ones(3)), 1)
    index.close()
    with pytest.raises(DimensionMismatchError, match=r"holds 8-d vectors, the encoder gives 384-d"):
        make_qdrant(mode, dim=384)


@pytest.mark.parametrize("mode", EMBEDDED)
def test_bad_queries(make_qdrant: Callable[..., QdrantIndex], mode: str) -> None:
    index = make_qdrant(mode, dim=4)
    index.upsert([Chunk(id="x", doc_id="x", text="x")], np.ones((1, 4), np.float32))
    q = IndexQuery(text="", vector=np.ones(4))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(InputError, match="top_k"):
            index.search(q, bad)  # type: ignore[arg-type]
    assert len(index.search(q, 10**9)) == 1  # huge top_k is capped, not an error
    with pytest.raises(InputError, match="needs a query vector"):
        index.search(IndexQuery(text="x"), 1)
    with pytest.raises(InputError, match="NaN"):
        index.search(IndexQuery(text="", vector=np.array([np.nan, 0, 0, 0])), 1)
    with pytest.raises(InputError, match="needs vectors"):
        index.upsert([Chunk(id="y", doc_id="y", text="y")])
    with pytest.raises(InputError, match="expected"):
        index.upsert([Chunk(id="y", doc_id="y", text="y")], np.ones((2, 4), np.float32))


_HOLDER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from trawl import ComponentContext
    from trawl_qdrant.index import QdrantIndex
    index = QdrantIndex(QdrantIndex.Config(mode=sys.argv[1]),
                        ComponentContext(name="dense", dim=8, storage_dir=Path(sys.argv[2])))
    print("open", flush=True)
    sys.stdin.readline()
    index.close()
""")


@pytest.mark.parametrize("mode", EMBEDDED)
def test_folder_locked_by_another_process(tmp_path: Path, mode: str) -> None:
    folder = tmp_path / "idx"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, mode, str(folder)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(IndexLockedError, match=re.escape(str(folder))):
            QdrantIndex(QdrantConfig(mode=mode),  # type: ignore[arg-type]
                        ComponentContext(name="dense", dim=8, storage_dir=folder))
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=60)
    again = QdrantIndex(QdrantConfig(mode=mode),  # type: ignore[arg-type]
                        ComponentContext(name="dense", dim=8, storage_dir=folder))
    again.close()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != ".lock"}


def _corrupt_local_meta(folder: Path) -> None:
    (folder / "local" / "meta.json").write_text("{truncated")


def _corrupt_local_points(folder: Path) -> None:
    db = next((folder / "local").rglob("storage.sqlite"))
    db.write_bytes(b"not a database" * 100)


def _corrupt_edge_segment(folder: Path) -> None:
    for f in (folder / "edge" / "segments").rglob("version.info"):
        f.write_text("garbage")


def _corrupt_edge_config(folder: Path) -> None:
    (folder / "edge" / "edge_config.json").write_text("{not json")


def _corrupt_marker(folder: Path) -> None:
    (folder / "trawl-qdrant.json").write_text('{"format": 99}')


def _delete_engine_files(folder: Path) -> None:
    import shutil

    for sub in ("local", "edge"):
        shutil.rmtree(folder / sub, ignore_errors=True)


@pytest.mark.parametrize(("mode", "damage"), [
    ("local", _corrupt_local_meta), ("local", _corrupt_local_points),
    ("edge", _corrupt_edge_segment), ("edge", _corrupt_edge_config),
    ("edge", _corrupt_marker), ("local", _delete_engine_files),
    ("edge", _delete_engine_files)])
def test_corrupted_folder_is_reported_and_left_alone(make_qdrant: Callable[..., QdrantIndex],
                                                     tmp_path: Path, mode: str,
                                                     damage: Callable[[Path], None]) -> None:
    folder = tmp_path / "idx"
    index = make_qdrant(mode, dim=4)
    index.upsert([Chunk(id=f"c{i}", doc_id="d", text="t") for i in range(20)],
                 np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32))
    index.close()
    damage(folder)
    before = _snapshot(folder)
    with pytest.raises(IndexCorruptError, match=re.escape(str(folder))):
        make_qdrant(mode, dim=4)
    with pytest.raises(IndexCorruptError):  # and again: the first attempt repaired nothing
        make_qdrant("auto", dim=4)
    assert _snapshot(folder) == before


# -- server mode: configuration and secrets ---------------------------------------------
SECRET = "s3cr3t-key-that-must-not-leak"


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
def test_api_key_is_never_shown(monkeypatch: pytest.MonkeyPatch,
                                caplog: pytest.LogCaptureFixture,
                                capfd: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = QdrantConfig(mode="server", url="http://127.0.0.1:9", api_key=SECRET, timeout=1)
    assert cfg.resolved_api_key() == SECRET
    for text in (repr(cfg), str(cfg), cfg.model_dump_json(), json.dumps(cfg.model_dump(
            mode="json"))):
        assert SECRET not in text
    monkeypatch.delenv("TRAWL_QDRANT_API_KEY", raising=False)
    monkeypatch.setenv("QDRANT_API_KEY", "from-env")
    assert QdrantConfig(mode="server", url="http://x:6333").resolved_api_key() == "from-env"
    monkeypatch.setenv("TRAWL_QDRANT_API_KEY", "trawl-env")
    assert QdrantConfig(mode="server", url="http://x:6333").resolved_api_key() == "trawl-env"
    # a server that is not there: the error names the URL and never the key
    caplog.set_level(logging.DEBUG)
    with pytest.raises(TrawlError) as info:
        QdrantIndex(cfg, ComponentContext(name="dense", dim=4, storage_dir=tmp_path / "s"))
    message = str(info.value)
    assert "127.0.0.1:9" in message and SECRET not in message
    assert SECRET not in repr(info.value) and SECRET not in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in out + err


def test_validate_config_error_does_not_echo_the_key() -> None:
    host = trawl.PluginHost(entry_points=True)
    with pytest.raises(ConfigError) as info:
        host.registry.validate_config("index", "qdrant", {"mode": "server", "api_key": SECRET})
    assert "needs a 'url'" in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(ValueError) as direct:  # pydantic's own error hides its input too
        QdrantConfig.model_validate({"mode": "server", "api_key": SECRET})
    assert SECRET not in str(direct.value)


@pytest.mark.parametrize("mode", EMBEDDED)
def test_concurrent_searches_while_writing(make_qdrant: Callable[..., QdrantIndex],
                                           mode: str) -> None:
    import threading

    index = make_qdrant(mode, dim=8)
    rng = np.random.default_rng(4)
    vecs = rng.normal(size=(120, 8)).astype(np.float32)
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text="t", metadata={"g": i % 3})
              for i in range(120)]
    index.upsert(chunks[:40], vecs[:40])
    errors: list[BaseException] = []
    done = threading.Event()

    def searcher() -> None:
        try:
            while not done.is_set():
                hits = index.search(IndexQuery(text="", vector=vecs[0]), 5, parse_filter({"g": 0}))
                assert all(h.metadata["g"] == 0 for h in hits)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for start in range(40, 120, 20):
        index.upsert(chunks[start:start + 20], vecs[start:start + 20])
    index.delete(["d0", "d1"])
    done.set()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:1]
    assert index.count() == 118


def test_edge_adds_newly_configured_payload_indexes_on_reopen(
        make_qdrant: Callable[..., QdrantIndex]) -> None:
    index = make_qdrant("edge", dim=4)
    index.upsert([Chunk(id="a", doc_id="a", text="t", metadata={"lang": "en"})],
                 np.ones((1, 4), np.float32))
    index.close()
    again = make_qdrant("edge", dim=4, payload_indexes={"lang": "keyword"})
    schema = again.engine.shard.info().payload_schema  # type: ignore[attr-defined]
    assert {"doc_id", "metadata.lang"} <= set(schema)
    assert "chunk_id" not in schema  # chunks are found by point id; nothing filters on it
    hits = again.search(IndexQuery(text="", vector=np.ones(4)), 3, parse_filter({"lang": "en"}))
    assert [h.chunk_id for h in hits] == ["a"]


def test_folder_built_on_a_server_needs_the_url(tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "trawl-qdrant.json").write_text(json.dumps(
        {"format": FORMAT_VERSION, "engine": "server", "collection": "c", "dim": 4, "metric": "cosine"}))
    with pytest.raises(ConfigError, match="set 'url'"):
        QdrantIndex(QdrantConfig(), ComponentContext(name="dense", dim=4, storage_dir=folder))
