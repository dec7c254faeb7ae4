"""The document contract and API argument types: typed errors naming the problem."""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

import numpy as np
import pytest

from trawl import Document, DocumentError, FilterError, InputError, Trawl
from trawl.validation import MAX_DEPTH, normalize_metadata


@pytest.fixture
def t() -> Trawl:
    t = Trawl.memory("bm25")
    t.add([{"id": "a", "text": "alpha beta", "year": 2020}])
    return t


@pytest.mark.parametrize("top_k", ["5", 5.0, True, None, 0, -1, [5]])
def test_top_k_must_be_a_positive_int(t: Trawl, top_k: Any) -> None:
    with pytest.raises(InputError, match="top_k"):
        t.search("alpha", top_k=top_k)


def test_numpy_integers_are_fine_as_top_k(t: Trawl) -> None:
    assert [h.doc_id for h in t.search("alpha", top_k=np.int64(3))] == ["a"]


@pytest.mark.parametrize("ids", [None, 5, b"a", [1], ["a", None], {"a": 1}])
def test_delete_takes_strings(t: Trawl, ids: Any) -> None:
    with pytest.raises(InputError, match="doc_ids"):
        t.delete(ids)
    assert t.manifest.doc_ids() == {"a"}


def test_delete_accepts_a_string_a_list_or_a_set(t: Trawl) -> None:
    assert t.delete([]) == 0
    assert t.delete({"a"}) == 1
    assert t.delete("a") == 0


def test_filter_checked_even_for_a_blank_query(t: Trawl) -> None:
    assert t.search("   ", filters={"year": 2020}) == []
    with pytest.raises(FilterError):
        t.search("", filters={"field": "year", "op": "~", "value": 1})
    with pytest.raises(InputError, match="top_k"):
        t.search("", top_k="3")


def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels - 1):
        node["x"] = {}
        node = node["x"]
    return root


@pytest.mark.parametrize(("value", "field", "problem"), [
    (math.nan, "v", "finite"),
    (-math.inf, "v", "finite"),
    ({"in": [1, {"z": math.inf}]}, "v.in[1].z", "finite"),
    (datetime.date(2020, 1, 1), "v", "date is not a JSON type"),
    ({1, 2}, "v", "set is not a JSON type"),
    (b"\xff", "v", "bytes is not a JSON type"),
    ("a\ud800b", "v", "lone surrogate U+D800 at character 1"),
    ({1: "x"}, "v", "keys must be strings"),
    (_deep(2000), "v" + ".x" * (MAX_DEPTH - 1), f"deeper than {MAX_DEPTH}"),
])
def test_metadata_contract_names_document_and_field(t: Trawl, value: Any, field: str,
                                                     problem: str) -> None:
    with pytest.raises(DocumentError, match=re.escape(problem)) as info:
        normalize_metadata("d1", {"v": value})
    assert (info.value.doc_id, info.value.field) == ("d1", field)
    result = t.add([{"id": "d1", "text": "x", "v": value}], on_error="skip")
    assert [f.id for f in result.failed] == ["d1"] and problem in result.failed[0].reason
    assert t.manifest.doc_ids() == {"a"}


def test_metadata_at_the_depth_limit_and_json_values_pass(t: Trawl) -> None:
    meta = {"deep": _deep(MAX_DEPTH - 1), "t": (1, 2.5, None, True), "n": np.float32(0.5),
            "i": np.int64(3), "s": "ok ✓"}
    out = normalize_metadata("d", meta)
    assert out["t"] == [1, 2.5, None, True] and out["i"] == 3 and type(out["i"]) is int
    t.add([Document(id="d", text="gamma", metadata=meta)])
    hit, = t.search("gamma")
    assert hit.metadata["t"] == [1, 2.5, None, True]


@pytest.mark.parametrize("doc", [
    {"id": "x\udcffy", "text": "t"}, {"id": True, "text": "t"}, {"id": ["a"], "text": "t"},
    Document(id="ok", text="bad \udc80"), {"id": "ok", "text": b"bytes"},
])
def test_bad_ids_and_texts_are_refused(t: Trawl, doc: Any) -> None:
    result = t.add([doc, {"id": "good", "text": "fine"}], on_error="skip")
    assert len(result.failed) == 1 and result.added == 1
    assert isinstance(result.failed[0].error, InputError)


def test_memory_index_writes_no_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's ':memory:' is a name, not a path: an in-memory index leaves no file behind."""
    monkeypatch.chdir(tmp_path)
    t = Trawl.memory("bm25")
    t.add([{"id": "a", "text": "alpha"}])
    t.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["e", "2020", "banana", "2024-13-01", "01/02/2024"])
def test_string_ranges_are_iso_dates_on_every_index(t: Trawl, value: str) -> None:
    """One filter contract: Qdrant orders strings only as dates, so bm25 must refuse too."""
    with pytest.raises(FilterError, match="ISO-8601"):
        t.search("alpha", filters={"field": "year", "op": ">=", "value": value})


def test_iso_date_ranges_work(t: Trawl) -> None:
    t.add([{"id": "b", "text": "alpha gamma", "day": "2024-05-01"}])
    hits = t.search("alpha", filters={"field": "day", "op": ">=", "value": "2024-01-01T00:00Z"})
    assert [h.doc_id for h in hits] == ["b"]


def test_an_overlong_query_is_cut_with_a_warning(t: Trawl) -> None:
    t.add([{"id": "a", "text": "wing flutter"}, {"id": "b", "text": "heat transfer"}])
    long = "wing " + "x" * 30_000 + " heat"
    with pytest.warns(RuntimeWarning, match="30010 characters cut to the first 20000"):
        hits = t.search(long)
    assert [h.doc_id for h in hits] == ["a"]  # 'heat' lies past the cut
    with pytest.warns(RuntimeWarning, match="cut to the first"):
        assert [[h.doc_id for h in r] for r in t.search_batch([long, "heat"])] == [["a"], ["b"]]
