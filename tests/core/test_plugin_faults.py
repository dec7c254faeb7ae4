"""A plugin whose component raises while working (encode, search, upsert, rerank, delete).

The error must name the plugin, its distribution, the component and the operation; the
other retrievers and the data already stored must keep working.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import trawl
from tests.conftest import HashingPlugin
from trawl import AddError, PluginRuntimeError, Trawl
from trawl.errors import InputError, TrawlError
from trawl.testing import write_fake_plugin

FLAKY = """
    import trawl
    from trawl.components import Reranker
    from trawl.errors import InputError
    from trawl.testing import ExactIndex
    from tests.conftest import HashingEncoder

    FAIL = set()  # operations that raise right now; the tests flip them

    def check(op):
        if op in FAIL:
            raise RuntimeError(f"flaky {op} exploded")
        if "typed-" + op in FAIL:
            raise InputError(f"flaky {op} refuses this input")

    class FlakyIndex(ExactIndex):
        def search(self, query, top_k, filters=None):
            check("search")
            return super().search(query, top_k, filters)

        def upsert(self, chunks, vectors=None):
            check("upsert")
            return super().upsert(chunks, vectors)

        def delete(self, doc_ids):
            check("delete")
            return super().delete(doc_ids)

    class FlakyEncoder(HashingEncoder):
        def encode_documents(self, texts, *, show_progress=False):
            check("encode_documents")
            return super().encode_documents(texts)

        def encode_queries(self, texts):
            check("encode_queries")
            return super().encode_queries(texts)

    class FlakyReranker(Reranker):
        def rerank(self, query, hits, top_k=None):
            check("rerank")
            return list(hits)[:top_k]

    @trawl.hookimpl
    def register_indexes(register):
        register(FlakyIndex, name="flaky-index")

    @trawl.hookimpl
    def register_encoders(register):
        register(FlakyEncoder, name="flaky-encoder")

    @trawl.hookimpl
    def register_rerankers(register):
        register(FlakyReranker, name="flaky-reranker")
"""

PIPELINE = {
    "name": "two-plugins",
    "retrievers": [
        {"name": "good", "index": "exact", "encoder": "hashing"},
        {"name": "shaky", "index": "flaky-index", "encoder": "flaky-encoder"},
    ],
    "reranker": {"name": "flaky-reranker", "depth": 20},
}


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    site = tmp_path / "site"
    write_fake_plugin(site, "trawl-flaky", "flaky", "trawl_flaky_mod", FLAKY)
    monkeypatch.syspath_prepend(str(site))
    module = importlib.import_module("trawl_flaky_mod")
    yield module
    module.FAIL.clear()  # a failing test must not leave the next one's plugin broken


@pytest.fixture
def index(flaky: ModuleType, tmp_path: Path) -> Trawl:
    host = trawl.PluginHost(load={"flaky"})
    host.register(HashingPlugin, name="hashing")
    t = Trawl(tmp_path / "idx", trawl.load_pipeline(PIPELINE), host=host, show_progress=False)
    t.add([{"id": "a", "text": "pumps move water uphill"},
           {"id": "b", "text": "turbines turn wind into power"}])
    yield t
    t.close()


@pytest.mark.parametrize(("operation", "kind", "component"), [
    ("search", "index", "shaky"),
    ("encode_queries", "encoder", "flaky-encoder"),
    ("rerank", "reranker", "flaky-reranker"),
])
def test_search_time_failure_names_plugin_and_operation(
        index: Trawl, flaky: ModuleType, operation: str, kind: str, component: str) -> None:
    flaky.FAIL.add(operation)
    with pytest.raises(PluginRuntimeError) as info:
        index.search("water pumps")
    err = info.value
    assert (err.kind, err.component, err.operation) == (kind, component, operation)
    assert (err.plugin, err.distribution) == ("flaky", "trawl-flaky")
    assert isinstance(err.cause, RuntimeError) and err.__cause__ is err.cause
    assert str(err) == (f"{kind} {component!r} (plugin 'flaky' from distribution "
                        f"'trawl-flaky') failed in {operation}: RuntimeError: "
                        f"flaky {operation} exploded")
    # the working plugin keeps working in the same Trawl, and the flaky one recovers
    if operation != "rerank":
        hits = index.search("water pumps", retrievers=["good"], rerank=False)
        assert hits[0].doc_id == "a"
    flaky.FAIL.clear()
    assert index.search("water pumps")[0].doc_id == "a"


def test_typed_errors_from_a_plugin_pass_through_unchanged(index: Trawl,
                                                           flaky: ModuleType) -> None:
    flaky.FAIL.add("typed-search")
    with pytest.raises(InputError, match="flaky search refuses this input"):
        index.search("water pumps")


@pytest.mark.parametrize(("operation", "kind"), [("encode_documents", "encoder"),
                                                  ("upsert", "index")])
def test_ingest_failure_loses_nothing_stored(index: Trawl, flaky: ModuleType, tmp_path: Path,
                                             operation: str, kind: str) -> None:
    flaky.FAIL.add(operation)
    with pytest.raises(AddError, match=f"failed in {operation}") as info:
        index.add([{"id": "c", "text": "solar panels charge batteries"}])
    (failure,) = info.value.failures
    assert failure.id == "c" and isinstance(failure.error, PluginRuntimeError)
    assert failure.error.kind == kind and info.value.__cause__ is failure.error
    assert index.manifest.doc_ids() == {"a", "b"}  # the failed batch is not committed
    flaky.FAIL.clear()
    assert {h.doc_id for h in index.search("pumps turbines", top_k=5)} == {"a", "b"}
    # a later run adds what failed, and every index agrees on what it holds
    assert index.add([{"id": "c", "text": "solar panels charge batteries"}]).added == 1
    for r in index.pipeline.retrievers.values():
        assert r.index.doc_ids() == {"a", "b", "c"}


def test_delete_failure_is_named_and_retry_converges(index: Trawl, flaky: ModuleType) -> None:
    flaky.FAIL.add("delete")
    with pytest.raises(PluginRuntimeError, match=r"'shaky'.*failed in delete"):
        index.delete("a")
    flaky.FAIL.clear()
    index.delete("a")
    assert "a" not in {h.doc_id for h in index.search("water pumps", top_k=5)}
    for r in index.pipeline.retrievers.values():
        assert r.index.doc_ids() == {"b"}


def test_component_built_outside_the_registry_reports_its_module() -> None:
    from trawl.components import plugin_call
    from trawl.testing import ExactIndex

    idx = ExactIndex()
    with pytest.raises(PluginRuntimeError) as info, plugin_call(idx, "index", "search"):
        raise KeyError("x")
    assert info.value.plugin == "trawl" and info.value.distribution == "trawl.builtin"
    assert isinstance(info.value, TrawlError)


def test_failed_update_in_encoding_keeps_the_old_version_across_reopen(
        index: Trawl, flaky: ModuleType, tmp_path: Path) -> None:
    flaky.FAIL.add("encode_documents")
    with pytest.raises(AddError):
        index.add([{"id": "a", "text": "pumps now push oil downhill"}])
    host = index.host
    index.close()
    flaky.FAIL.clear()
    with Trawl(tmp_path / "idx", trawl.load_pipeline(PIPELINE), host=host,
               show_progress=False) as again:
        hits = again.search("water uphill", top_k=1)
        assert hits[0].doc_id == "a" and "water" in hits[0].text
        assert again.manifest.doc_ids() == {"a", "b"}
