"""``Trawl.add`` encodes a window of batches in one call per encoder (less padding) and
still commits, isolates and reports batch by batch (issue 15, ingestion)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pytest

import trawl
import trawl.api
from tests.conftest import HashingEncoder, HashingPlugin
from trawl import Trawl

PIPELINE = {"name": "window", "retrievers": [
    {"name": "bm25", "index": "bm25"},
    {"name": "dense", "index": "exact", "encoder": "hashing"}]}


class CountingEncoder(HashingEncoder):
    """The hashing encoder, recording how many texts each call got; refuses ``EXPLODE``."""

    calls: ClassVar[list[int]] = []

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Any:
        CountingEncoder.calls.append(len(texts))
        if any("EXPLODE" in t for t in texts):
            raise ValueError("this encoder cannot encode EXPLODE")
        return super().encode_documents(texts)


class CountingPlugin:
    @staticmethod
    @trawl.hookimpl
    def register_encoders(register: Any) -> None:
        register(CountingEncoder, name="counting")


def _open(encoder: str = "counting") -> Trawl:
    host = trawl.PluginHost(plugins=[("hashing-test", HashingPlugin)])
    host.register(CountingPlugin, name="counting-test")
    pipeline = {**PIPELINE, "retrievers": [PIPELINE["retrievers"][0],
                                           {**PIPELINE["retrievers"][1], "encoder": encoder}]}
    return Trawl.memory(pipeline, host=host)


def _docs(n: int, bad: int | None = None) -> list[dict[str, str]]:
    return [{"id": f"d{i:02d}", "text": f"document {i} " + "word " * (i % 7)
             + ("EXPLODE" if i == bad else "")} for i in range(n)]


def _vectors(t: Trawl) -> dict[str, np.ndarray]:
    index = t.pipeline.retrievers["dense"].index
    query = np.ones(256, dtype=np.float32) / 16.0
    hits = index.search(trawl.IndexQuery(text="", vector=query), 1000, None)
    assert len(hits) == t.manifest.count()
    return {h.chunk_id: np.float32(h.score) for h in hits}


def test_a_window_is_encoded_in_one_call_and_committed_batch_by_batch(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trawl.api, "ENCODE_WINDOW_DOCS", 8)
    CountingEncoder.calls = []
    t = _open()
    committed: list[int] = []
    progress: list[tuple[int, int]] = []
    result = t.add(_docs(20), batch_size=3, on_batch=lambda r: committed.append(r.added),
                   on_progress=lambda d, n: progress.append((d, n)))
    # windows of 8, 8 and 4 documents: one encoder call each, not one per batch of 3
    assert CountingEncoder.calls == [8, 8, 4]
    assert committed == [3, 6, 8, 11, 14, 16, 19, 20]
    assert progress[0] == (0, 20) and progress[-1] == (20, 20) and len(progress) == 9
    assert result.added == 20 and t.manifest.count() == 20


def test_windowed_and_batch_by_batch_encoding_store_the_same_index(
        monkeypatch: pytest.MonkeyPatch) -> None:
    windowed = _open("hashing")
    windowed.add(_docs(30), batch_size=4)
    monkeypatch.setattr(trawl.api, "ENCODE_WINDOW_DOCS", 1)
    per_batch = _open("hashing")
    per_batch.add(_docs(30), batch_size=4)
    a, b = _vectors(windowed), _vectors(per_batch)
    assert a.keys() == b.keys() and len(a) == 30
    assert all(a[k] == b[k] for k in a)
    assert windowed.get(["d07"])[0].text == per_batch.get(["d07"])[0].text


def test_an_encoder_failure_in_a_window_costs_only_the_bad_document(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trawl.api, "ENCODE_WINDOW_DOCS", 8)
    CountingEncoder.calls = []
    t = _open()
    result = t.add(_docs(8, bad=5), batch_size=3, on_error="skip")
    assert [f.id for f in result.failed] == ["d05"]
    assert "cannot encode EXPLODE" in result.failed[0].reason
    assert t.manifest.doc_ids() == {f"d{i:02d}" for i in range(8)} - {"d05"}
    # the window (8), then batch by batch: 3, the failing 3 and its documents alone, 2
    assert CountingEncoder.calls == [8, 3, 3, 1, 1, 1, 2]
    assert t.pipeline.retrievers["bm25"].index.doc_ids() == t.manifest.doc_ids()


def test_token_vector_pipelines_encode_one_batch_at_a_time() -> None:
    t = _open()
    assert t._encode_window(64) == trawl.api.ENCODE_WINDOW_DOCS
    assert t._encode_window(1000) == 1000
    multi = Trawl.memory({"name": "mv", "retrievers": [
        {"name": "mv", "index": "exact", "encoder": "counting-tokens", "transform": "muvera"}]},
        host=_token_host())
    assert multi._encode_window(64) == 64


class TokenCounting(CountingEncoder):
    kind = "multivector"

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Any:
        return [row[None, :] for row in super().encode_documents(texts)]


def _token_host() -> trawl.PluginHost:
    class Plugin:
        @staticmethod
        @trawl.hookimpl
        def register_encoders(register: Any) -> None:
            register(TokenCounting, name="counting-tokens")

    host = trawl.PluginHost()
    host.register(Plugin, name="token-counting-test")
    return host


def test_a_window_also_ends_at_its_text_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trawl.api, "ENCODE_WINDOW_DOCS", 8)
    monkeypatch.setattr(trawl.api, "ENCODE_WINDOW_CHARS", 100)
    CountingEncoder.calls = []
    t = _open()
    docs = [{"id": f"d{i}", "text": f"doc{i} " + "x" * 30} for i in range(6)]  # 36 chars each
    docs.insert(3, {"id": "long", "text": "long " + "y " * 200})  # over the budget alone
    result = t.add(docs, batch_size=2)
    # d0+d1 (72), then d2 (d3... would pass 100 with 'long'), 'long' alone, d3+d4, d5
    assert CountingEncoder.calls == [2, 1, 1, 2, 1]
    assert result.added == 7 and t.manifest.count() == 7
