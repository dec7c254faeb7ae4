"""Dates filter as dates whatever way metadata holds them: ISO strings or epoch seconds
(``mtime``), with one rule for the CLI's ``--where``, the API and the TUI."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

import trawl
from tests.conftest import HashingPlugin
from trawl.filters import Or, expand_dates, matches, parse_filter, parse_where, to_json

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
DOCS = {  # doc id -> (mtime as epoch seconds, date as an ISO string)
    "old": (DEC_1 - 86400 * 30, "2026-11-01"),
    "eve": (DEC_1 - 1, "2026-11-30T23:59:59Z"),
    "day": (DEC_1, "2026-12-01"),
    "new": (DEC_1 + 86400 * 3, "2026-12-04T10:00:00+00:00"),
}


def test_reference_semantics_compare_a_date_with_an_epoch_number() -> None:
    f = parse_where(["mtime>=2026-12-01"])
    assert {d for d, (mtime, _) in DOCS.items() if matches(f, {"mtime": mtime})} == \
        {"day", "new"}
    assert {d for d, (_, date) in DOCS.items() if matches(f, {"mtime": date})} == \
        {"day", "new"}
    # a date-time with a zone, and a strict bound
    g = parse_where(["mtime<2026-12-01T01:00:00+01:00"])  # = 2026-12-01T00:00Z
    assert {d for d, (mtime, _) in DOCS.items() if matches(g, {"mtime": mtime})} == \
        {"old", "eve"}
    # a non-date string never matches a number, and equality is not a date comparison
    assert not matches(parse_filter({"field": "n", "op": "==", "value": "2026-12-01"}),
                       {"n": DEC_1})


def test_expansion_is_what_indexes_get_and_the_parsed_filter_is_unchanged() -> None:
    f = parse_where(["mtime>=2026-12-01", "lang=en"])
    assert to_json(f) == {"and": [{"field": "mtime", "op": ">=", "value": "2026-12-01"},
                                  {"field": "lang", "op": "==", "value": "en"}]}
    expanded = expand_dates(f)
    first = expanded.all[0]  # type: ignore[union-attr]
    assert isinstance(first, Or)
    assert [c.value for c in first.any] == ["2026-12-01", DEC_1]  # type: ignore[union-attr]
    for mtime, date in DOCS.values():
        for value in (mtime, date):
            meta: dict[str, Any] = {"mtime": value, "lang": "en"}
            assert matches(expanded, meta) == matches(f, meta)
    assert expand_dates(parse_where(["year>=2020"])) == parse_where(["year>=2020"])


@pytest.mark.parametrize("index", ["exact", "qdrant", "bm25"])
def test_every_index_filters_epoch_mtime_by_date(index: str) -> None:
    if index == "qdrant":
        pytest.importorskip("qdrant_client")
    host = trawl.PluginHost(entry_points=True, plugins=[("hashing-test", HashingPlugin)])
    retriever: dict[str, Any] = {"name": "r", "index": index}
    if index != "bm25":
        retriever["encoder"] = "hashing"
    pipeline = {"name": "dates", "retrievers": [retriever]}
    docs = [trawl.Document(id=d, text=f"tide report {d}",
                           metadata={"mtime": mtime, "date": date})
            for d, (mtime, date) in DOCS.items()]
    with trawl.Trawl.memory(pipeline, host=host) as t:
        t.add(docs, show_progress=False)
        for field in ("mtime", "date"):
            hits = t.search("tide report", 10, parse_where([f"{field}>=2026-12-01"]))
            assert {h.doc_id for h in hits} == {"day", "new"}, (index, field)
            hits = t.search("tide report", 10,
                            {"field": field, "op": "<", "value": "2026-12-01"})
            assert {h.doc_id for h in hits} == {"old", "eve"}, (index, field)
