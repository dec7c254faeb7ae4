"""A 10k-value ``in`` filter (an access list of document ids) on every index: set
membership, not a clause per value. Same answers as ``trawl.filters.matches``, fast, and
lists past ``MAX_IN_VALUES`` are a typed error (the server answers 4xx)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from trawl import Chunk, ComponentContext, Index, IndexQuery
from trawl.builtin import ExactIndex
from trawl.errors import FilterError, FilterTooLargeError
from trawl.filters import MAX_IN_VALUES, compile_filter, matches, parse_filter

N, DIM = 3000, 16
KINDS = ["exact", "bm25", "edge", "local"]


def _chunks() -> list[Chunk]:
    rng = np.random.default_rng(1)
    words = [f"w{i}" for i in range(300)]
    out = []
    for i in range(N):
        meta: dict[str, Any] = {"acl": f"doc-{i}", "n": i, "group": ["a", "b", "c"][i % 3]}
        if i % 7 == 0:
            meta["acl"] = [f"doc-{i}", "shared"]  # a list: matches if any element does
        if i % 11 == 0:
            meta["flag"] = bool(i % 2)
        out.append(Chunk(id=f"c{i}", doc_id=f"d{i}", text=" ".join(rng.choice(words, 12)),
                         metadata=meta))
    return out


@pytest.fixture(scope="module")
def chunks() -> list[Chunk]:
    return _chunks()


@pytest.fixture(scope="module", params=KINDS)
def index(request: pytest.FixtureRequest, chunks: list[Chunk],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    kind = request.param
    # local mode in memory: on disk it writes each point to sqlite (a minute for 3k here)
    folder = None if kind == "local" else tmp_path_factory.mktemp(kind) / "idx"
    ctx = ComponentContext(name="x", dim=DIM, metric="cosine", storage_dir=folder)
    made: Index
    if kind == "exact":
        made = ExactIndex(None, ctx)
    elif kind == "bm25":
        from trawl_bm25.index import BM25Index

        made = BM25Index(None, ctx)
    else:
        pytest.importorskip("qdrant_client")
        from trawl_qdrant.config import QdrantConfig
        from trawl_qdrant.index import QdrantIndex

        made = QdrantIndex(QdrantConfig.model_validate({"mode": kind}), ctx)
    vectors = np.random.default_rng(2).standard_normal((N, DIM)).astype(np.float32)
    made.upsert(chunks, None if made.input == "text" else vectors)
    yield made
    made.close()


def _query(index: Index) -> IndexQuery:
    return IndexQuery(text="w1 w2 w3 w4 w5", vector=np.ones(DIM, dtype=np.float32))


def _search_ms(index: Index, f: Any, top_k: int) -> tuple[list[Any], float]:
    times, hits = [], []
    for _ in range(3):
        started = time.perf_counter()
        hits = index.search(_query(index), top_k, f)
        times.append((time.perf_counter() - started) * 1000)
    return hits, statistics.median(times)


ACCESS = [f"doc-{i}" for i in range(0, 20_000, 2)]  # 10k ids, half of them stored


@pytest.mark.parametrize("raw", [
    {"field": "acl", "op": "in", "value": ACCESS},
    {"field": "acl", "op": "not in", "value": ACCESS},
    {"field": "n", "op": "in", "value": list(range(1, 20_000, 2))},  # 10k numbers
    {"field": "flag", "op": "in", "value": [True, *range(2, 200)]},  # True == 1
    {"and": [{"field": "acl", "op": "in", "value": ACCESS}, {"group": "b"}]},
], ids=["in", "not-in", "numbers", "bools", "and"])
def test_long_in_list_agrees_with_matches_and_is_fast(index: Index, chunks: list[Chunk],
                                                      raw: Any) -> None:
    f = parse_filter(raw)
    allowed = {c.id for c in chunks if matches(f, c.metadata)}
    assert allowed and len(allowed) < N
    top_k = 1000 if index.input == "dense" else N  # bm25 returns only chunks with a term
    hits, ms = _search_ms(index, f, top_k)
    got = {h.chunk_id for h in hits}
    assert got <= allowed
    if index.input == "dense":
        assert len(got) == min(top_k, len(allowed))  # applied inside the search
    # the goal is ~100 ms on a SciFact-sized index (benchmarks/serve.py); a clause per
    # value took seconds to minutes here, so this bound still catches that on a busy machine
    assert ms < 2500, f"{index.name}: {ms:.0f} ms"


def test_compiled_filter_agrees_with_matches(chunks: list[Chunk]) -> None:
    metas: list[dict[str, Any]] = [c.metadata for c in chunks[:300]] + [
        {"acl": {"nested": 1}}, {"acl": [["doc-2"]]}, {"acl": None}, {}, {"acl": 2.0},
        {"acl": True}, {"acl": [1, "x"]}]
    for raw in [{"field": "acl", "op": op, "value": value}
                for op in ("in", "not in")
                for value in (ACCESS[:50], ["doc-2", 2, True], [1.0, "shared"], [0])]:
        f = parse_filter(raw)
        compiled = compile_filter(f)
        assert [compiled(m) for m in metas] == [matches(f, m) for m in metas], raw


def test_lists_past_the_cap_are_a_typed_error() -> None:
    assert parse_filter({"field": "acl", "op": "in", "value": ["x"] * MAX_IN_VALUES})
    with pytest.raises(FilterTooLargeError, match="100001 values") as caught:
        parse_filter({"acl": ["x"] * (MAX_IN_VALUES + 1)})
    assert isinstance(caught.value, FilterError) and caught.value.field == "acl"


def test_trawl_search_with_a_long_access_list() -> None:
    from trawl import Trawl

    t = Trawl.memory("bm25")
    t.add([{"id": f"d{i}", "text": f"shared words {i}", "metadata": {"acl": f"doc-{i}"}}
           for i in range(500)])
    hits = t.search("shared words", top_k=500, filters={"acl": ACCESS})
    assert hits and {h.metadata["acl"] for h in hits} <= set(ACCESS)
    with pytest.raises(FilterTooLargeError):
        t.search("shared", filters={"acl": ["x"] * (MAX_IN_VALUES + 1)})
