"""A dense and a token encoder of one export share one onnxruntime pass per document
(``hybrid-rerank`` stores both for every chunk; issue 15, ingestion)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trawl
from tests.plugins.conftest_onnx import minilm_fp32
from trawl import ComponentContext

__all__ = ["minilm_fp32"]

TEXTS = ["Photosynthesis converts sunlight into chemical energy, in plants.",
         "The stock market fell sharply today.",
         "A much longer passage about rain, rivers and the weather " * 8]


def _dense(folder: Path, **config: Any) -> Any:
    from trawl_onnx.encoders import OnnxDenseEncoder

    return OnnxDenseEncoder(OnnxDenseEncoder.Config(model=str(folder), threads=2, **config),
                            ComponentContext(name="onnx-dense"))


def _tokens(folder: Path, **config: Any) -> Any:
    from trawl_onnx.encoders import OnnxTokenEncoder

    return OnnxTokenEncoder(OnnxTokenEncoder.Config(model=str(folder), threads=2, **config),
                            ComponentContext(name="onnx-tokens"))


def _forbid_runs(encoder: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(feeds: Any) -> Any:
        raise AssertionError("the token encoder ran the model again")

    monkeypatch.setattr(encoder.model, "run", refuse)


def test_tokens_after_dense_reuse_its_states(minilm_fp32: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    dense, tokens = _dense(minilm_fp32), _tokens(minilm_fp32)
    fresh = tokens.encode_documents(TEXTS)  # nothing kept yet: runs the model
    dense.encode_documents(TEXTS)
    with monkeypatch.context() as m:
        _forbid_runs(tokens, m)
        shared = tokens.encode_documents(TEXTS)
    assert [s.shape for s in shared] == [f.shape for f in fresh]
    for s, f in zip(shared, fresh, strict=True):
        np.testing.assert_allclose(s, f, atol=1e-5)
    # used once: the same texts again run the model
    again = tokens.encode_documents(TEXTS)
    np.testing.assert_allclose(again[0], fresh[0], atol=1e-6)


def test_other_texts_queries_and_other_windows_run_the_model(
        minilm_fp32: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import trawl_onnx.encoders as encoders

    dense, tokens = _dense(minilm_fp32), _tokens(minilm_fp32)
    calls: list[int] = []
    real = tokens.model.run
    monkeypatch.setattr(tokens.model, "run", lambda feeds: calls.append(1) or real(feeds))
    dense.encode_documents(TEXTS)
    tokens.encode_documents(TEXTS[:2])  # not the texts the dense encoder ran
    assert calls
    calls.clear()
    dense.encode_documents(TEXTS)
    tokens.encode_queries(TEXTS)  # queries are never taken from documents' states
    assert calls
    calls.clear()
    short = _dense(minilm_fp32, max_length=64)  # another token window: other states
    short.encode_documents(TEXTS)
    assert (str(minilm_fp32.resolve()), 64) not in encoders._last_states
    monkeypatch.setattr(encoders, "KEEP_STATES_MAX_BYTES", 0)  # too big to keep
    dense.encode_documents(TEXTS[1:])
    tokens.encode_documents(TEXTS[1:])
    assert calls
    monkeypatch.undo()
    lone = _tokens(minilm_fp32, max_length=32)  # closed: nobody left to keep states for
    lone.close()
    _dense(minilm_fp32, max_length=32).encode_documents(TEXTS)
    assert (str(minilm_fp32.resolve()), 32) not in encoders._last_states


def test_hybrid_rerank_ingestion_runs_the_model_once_per_chunk(
        minilm_fp32: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = {"model": str(minilm_fp32), "threads": 2}
    pipeline = {"name": "dense-maxsim", "retrievers": [
        {"name": "bm25", "index": "bm25"},
        {"name": "dense", "index": "exact", "encoder": "onnx-dense", "encoder_config": cfg}],
        "reranker": {"name": "maxsim", "depth": 10, "config": cfg}}
    host = trawl.PluginHost(load={"onnx", "bm25"})
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(TEXTS * 3)]
    with trawl.Trawl.open(tmp_path / "idx", pipeline=pipeline, host=host,
                          show_progress=False) as t:
        reranker = t.pipeline.reranker
        assert reranker is not None
        with monkeypatch.context() as m:
            _forbid_runs(reranker.encoder, m)  # type: ignore[attr-defined]
            t.add(docs, batch_size=4)
        stored = t.pipeline.tokens
        assert stored is not None
        hits = t.search("sunlight plants", top_k=3)
        assert hits[0].doc_id in {"d0", "d3", "d6"}
        assert "maxsim" in hits[0].scores_by_source
        fresh = reranker.encoder.encode_documents([TEXTS[0]])[0]  # type: ignore[attr-defined]
        query = reranker.encoder.encode_queries(["sunlight plants"])[0]  # type: ignore[attr-defined]
        want = float((query @ fresh.T).max(axis=1).sum())
        assert hits[0].scores_by_source["maxsim"].score == pytest.approx(want, abs=1e-2)
