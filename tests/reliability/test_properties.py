"""Property-based bad input: the only allowed outcomes are a result or a TrawlError.

CI runs a small number of examples per property; set TRAWL_HYPOTHESIS_EXAMPLES (e.g. 3000)
for the nightly-sized run.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trawl
from tests.conftest import HASHING_PIPELINE
from trawl import Trawl, TrawlError, load_pipeline

EXAMPLES = int(os.environ.get("TRAWL_HYPOTHESIS_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

texts = st.one_of(
    st.text(max_size=200),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=50),
    st.sampled_from(["", " ", "\x00", "\u202e\u200b", "🐈‍⬛" * 50, "a" * 50_000, "\ud800".encode(
        "utf-8", "surrogatepass").decode("utf-8", "replace"), "the of and", "ÄÖÜ ß ǅ",
        "<script>alert(1)</script>", "SELECT * FROM x; --"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["field", "op", "value", "and", "or", "not", "lang", "year", "x"]) |
        st.text(max_size=5), inner, max_size=4),
    max_leaves=10)


@pytest.fixture(scope="module")
def index() -> Trawl:
    host = trawl.PluginHost(entry_points=False, plugins=[
        ("hashing-test", __import__("tests.conftest", fromlist=["HashingPlugin"]).HashingPlugin)])
    t = Trawl.memory(HASHING_PIPELINE, host=host)
    t.add([{"id": f"d{i}", "text": f"document {i} about topic {i % 5}", "lang": "en",
            "year": 2000 + i} for i in range(30)])
    return t


def _allowed(fn: Any) -> Any:
    try:
        return fn()
    except TrawlError as exc:
        assert str(exc), "a TrawlError must say what went wrong"
        return exc


@SETTINGS
@given(query=texts, top_k=st.integers(-5, 20_000), filters=json_values)
def test_search_inputs(index: Trawl, query: str, top_k: int, filters: Any) -> None:
    out = _allowed(lambda: index.search(query, top_k, filters))
    if isinstance(out, list):
        assert len(out) <= max(top_k, 0)
        assert all(isinstance(h, trawl.Hit) for h in out)


@SETTINGS
@given(config=json_values)
def test_pipeline_configs(config: Any) -> None:
    out = _allowed(lambda: load_pipeline(config) if isinstance(config, dict)
                   else load_pipeline(str(config)))
    assert isinstance(out, trawl.PipelineConfig | TrawlError)


@SETTINGS
@given(doc=st.fixed_dictionaries({"text": texts}, optional={
    "id": st.text(max_size=30), "title": texts, "metadata": json_values}))
def test_documents(index: Trawl, doc: dict[str, Any]) -> None:
    out = _allowed(lambda: index.add([doc]))
    if not isinstance(out, TrawlError):
        assert out.added + out.updated + out.unchanged == 1
