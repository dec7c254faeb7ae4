from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trawl.errors import ConfigError, FilterError
from trawl.filters import Not, matches, parse_filter, parse_where, to_json
from trawl.fusion import dbsf, fuse, rrf, weighted
from trawl.models import Hit


def test_shorthand_and_explicit_forms_agree() -> None:
    meta = {"lang": "en", "year": 2021, "tags": ["a", "b"]}
    assert matches(parse_filter({"lang": "en", "year": 2021}), meta)
    assert matches(parse_filter({"field": "year", "op": ">=", "value": 2020}), meta)
    assert not matches(parse_filter({"not": {"lang": "en"}}), meta)
    assert matches(parse_filter({"or": [{"lang": "de"}, {"tags": ["b"]}]}), meta)
    assert matches(parse_filter({"field": "missing", "op": "!=", "value": 1}), meta)
    assert not matches(parse_filter({"field": "missing", "op": "==", "value": 1}), meta)
    assert not matches(parse_filter({"field": "lang", "op": ">", "value": 3}), meta)


@pytest.mark.parametrize("bad, fragment", [
    ({"field": "x", "op": "~=", "value": 1}, "unknown filter operator"),
    ({"field": "x", "op": "in", "value": []}, "non-empty list"),
    ({"field": "x"}, "no 'value'"),
    ({"and": []}, "non-empty list"),
    ({"and": [{"a": 1}], "b": 2}, "only key"),
    ({"field": "1bad", "value": 1}, "invalid filter field"),
    ("lang=en", "JSON object"),
    ({"field": "x", "op": ">", "value": [1]}, "number or string"),
])
def test_bad_filters_name_the_problem(bad: object, fragment: str) -> None:
    with pytest.raises(FilterError, match=fragment):
        parse_filter(bad)


def test_parse_where() -> None:
    f = parse_where(["year>=2020", "lang=en", "ok=true"])
    assert to_json(f) == {"and": [{"field": "year", "op": ">=", "value": 2020},
                                  {"field": "lang", "op": "==", "value": "en"},
                                  {"field": "ok", "op": "==", "value": True}]}
    with pytest.raises(FilterError, match="FIELD OP VALUE"):
        parse_where(["nonsense"])


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_arbitrary_json_gives_a_filter_or_filter_error(obj: object) -> None:
    try:
        f = parse_filter(obj)
    except FilterError:
        return
    assert parse_filter(to_json(f)) == f  # round trip
    matches(f, {"a": 1, "b": ["x"], "c": None})


def _hits(ids: list[str], scores: list[float]) -> list[Hit]:
    return [Hit(doc_id=i, chunk_id=i, score=s, rank=r) for r, (i, s) in
            enumerate(zip(ids, scores, strict=True), start=1)]


def test_rrf_formula_and_per_source_scores() -> None:
    a = _hits(["x", "y", "z"], [3.0, 2.0, 1.0])
    b = _hits(["y", "w"], [0.9, 0.8])
    out = rrf({"bm25": a, "dense": b}, k=60)
    scores = {h.chunk_id: h.score for h in out}
    assert scores["y"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["x"] == pytest.approx(1 / 61)
    assert out[0].chunk_id == "y"
    y = out[0]
    assert y.scores_by_source["bm25"].rank == 2 and y.scores_by_source["dense"].rank == 1
    assert y.scores_by_source["bm25"].score == 2.0
    assert [h.rank for h in out] == [1, 2, 3, 4]
    # inputs untouched
    assert a[1].rank == 2 and a[1].score == 2.0 and a[1].scores_by_source == {}


def test_weighted_and_dbsf() -> None:
    a = _hits(["x", "y"], [10.0, 0.0])
    b = _hits(["y", "x"], [1.0, 0.5])
    out = weighted({"a": a, "b": b}, weights={"a": 1.0, "b": 3.0})
    assert [h.chunk_id for h in out] == ["y", "x"]
    assert out[0].score == pytest.approx(3.0) and out[1].score == pytest.approx(1.0)
    d = dbsf({"a": a, "b": b})
    assert len(d) == 2 and all(0 <= h.score <= 2 for h in d)
    assert fuse({"a": a}, "rrf", top_k=1)[0].chunk_id == "x"


def test_fusion_config_errors() -> None:
    a = _hits(["x"], [1.0])
    with pytest.raises(ConfigError, match="sum to zero"):
        rrf({"a": a}, weights={"a": 0.0})
    with pytest.raises(ConfigError, match=">= 0"):
        rrf({"a": a}, weights={"a": -1.0})
    with pytest.raises(ConfigError, match="unknown fusion"):
        fuse({"a": a}, "max")  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", [
    {"v": float("nan")}, {"field": "v", "op": ">", "value": float("inf")},
    {"field": "v", "op": "in", "value": [1, float("-inf")]}])
def test_non_finite_filter_values_are_refused(raw: Any) -> None:
    with pytest.raises(FilterError, match="finite"):
        parse_filter(raw)


def _nested(kind: str, depth: int) -> Any:
    node: Any = {"lang": "en"}
    for _ in range(depth):
        node = {"not": node} if kind == "not" else {kind: [node, {"year": 1}]}
    return node


@pytest.mark.parametrize("kind", ["and", "or", "not"])
def test_filter_depth_is_limited(kind: str) -> None:
    assert parse_filter(_nested(kind, 60)) is not None
    for depth in (65, 500, 1000):
        with pytest.raises(FilterError, match="deeper than 64"):
            parse_filter(_nested(kind, depth))


def test_a_deep_parsed_filter_is_refused_too() -> None:
    f = parse_filter({"lang": "en"})
    for _ in range(2000):
        f = Not(inner=f)
    with pytest.raises(FilterError, match="deeper than 64"):
        parse_filter(f)


def test_dbsf_equals_qdrants() -> None:
    fusion = pytest.importorskip("qdrant_client.hybrid.fusion")
    from qdrant_client.http import models as qm

    rng = np.random.default_rng(7)
    for trial in range(30):
        runs: dict[str, list[Hit]] = {}
        points = []
        for name in ("bm25", "dense"):
            n = int(rng.integers(1, 40))
            ids = [f"c{i}" for i in rng.choice(60, size=n, replace=False)]
            scores = sorted((float(x) for x in rng.gamma(2.0, 3.0, size=n)), reverse=True)
            if trial % 10 == 0:
                scores = [scores[0]] * n  # all equal: 0.5 each
            runs[name] = _hits(ids, scores)
            points.append([qm.ScoredPoint(id=int(i[1:]), version=0, score=s)
                           for i, s in zip(ids, scores, strict=True)])
        ours = {h.chunk_id: h.score for h in dbsf(runs)}
        theirs = {f"c{p.id}": p.score for p in
                  fusion.distribution_based_score_fusion(points, limit=1000)}
        assert ours.keys() == theirs.keys()
        for cid, score in theirs.items():
            assert ours[cid] == pytest.approx(score, abs=1e-9)
