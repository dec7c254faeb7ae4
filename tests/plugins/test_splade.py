"""Learned sparse encoders (``onnx-sparse``) against sentence-transformers' ``SparseEncoder``.

Tiny random masked LMs built here, saved as sentence-transformers saves SPLADE and
inference-free (``Router``) models, plus OpenSearch's older ``idf.json`` form; the
reference is the running ``SparseEncoder`` (never stored numbers). The ``splade-hybrid``
preset then stores the vectors in the embedded Qdrant engine without an IDF modifier.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.plugins.conftest_onnx import CAN_EXPORT, HAS_TORCH
from trawl import ModelSourceError

pytestmark = [pytest.mark.skipif(not (CAN_EXPORT and HAS_TORCH),
                                 reason="needs the onnx and export extras"),
              pytest.mark.export]
TEXTS = ["Late interaction, retrieval!", "the query: a sparse... vector search notaword",
         "short", "A much longer document about protein and gene expansion; the study found "
         "a high effect on cancer patients, with low rank results", ""]


def _export(folder: Path, out: Path) -> Path:
    from trawl_onnx.export import export_model

    return export_model(folder, out, exporter="numpy", kind="sparse")


def _encoder(folder: Path, **config: Any) -> Any:
    from trawl_onnx.sparse import OnnxSparseEncoder

    return OnnxSparseEncoder(OnnxSparseEncoder.Config(model=str(folder), batch_size=2, **config))


def _dense(vectors: list[Any], size: int) -> np.ndarray:
    out = np.zeros((len(vectors), size), dtype=np.float32)
    for row, sv in enumerate(vectors):
        assert sv.indices.dtype == np.uint32 and sv.values.dtype == np.float32
        assert np.all(np.diff(sv.indices.astype(np.int64)) > 0) and np.all(sv.values > 0)
        out[row, sv.indices] = sv.values
    return out


def _reference(folder: Path) -> Any:
    from sentence_transformers import SparseEncoder

    return SparseEncoder(str(folder), device="cpu")


def _assert_close(got: np.ndarray, expected: np.ndarray, what: str) -> None:
    diff = float(np.abs(got - expected).max())
    assert diff <= 1e-5, f"{what}: max abs diff {diff:.2e}"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(("pooling", "activation"), [("max", "relu"), ("sum", "log1p_relu")])
def test_splade_matches_sparse_encoder(tmp_path: Path, pooling: str, activation: str) -> None:
    from tests.plugins import tiny_checkpoints as tiny

    folder = tiny.splade_checkpoint(tmp_path / "splade", pooling=pooling, activation=activation)
    reference = _reference(folder)
    encoder = _encoder(_export(folder, tmp_path / "onnx"))
    assert encoder.kind == "sparse" and encoder.metric == "dot"
    size = encoder.dim
    for got, ref, side in ((encoder.encode_documents(TEXTS), reference.encode_document, "docs"),
                           (encoder.encode_queries(TEXTS), reference.encode_query, "queries")):
        expected = ref(TEXTS, convert_to_tensor=True).to_dense().numpy()
        assert expected.shape[1] == size
        _assert_close(_dense(got, size), expected, f"{pooling}/{activation} {side}")
    # term pruning: a document keeps its largest weights, as max_active_dims does
    pruned = _encoder(encoder.folder, max_terms=7).encode_documents(TEXTS)
    assert max(len(sv) for sv in pruned) == 7
    expected = reference.encode_document(TEXTS, convert_to_tensor=True,
                                         max_active_dims=7).to_dense().numpy()
    _assert_close(_dense(pruned, size), expected, "max_terms=7")


@pytest.mark.parametrize("family", ["distilbert", "roberta", "modernbert"])
def test_masked_lm_heads_of_other_families(tmp_path: Path, family: str) -> None:
    """DistilBERT's vocab_transform/projector, RoBERTa's lm_head, ModernBERT's head/decoder."""
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.models import MLMTransformer, SpladePooling

    from tests.plugins import tiny_checkpoints as tiny

    folder = tiny.masked_lm(tmp_path / family, family)
    reference = SparseEncoder(modules=[MLMTransformer(str(folder)), SpladePooling("max")],
                              device="cpu")
    encoder = _encoder(_export(folder, tmp_path / "onnx"))
    expected = reference.encode(TEXTS, convert_to_tensor=True).to_dense().numpy()
    _assert_close(_dense(encoder.encode_documents(TEXTS), encoder.dim), expected, family)


def test_inference_free_router_matches_sparse_encoder(tmp_path: Path) -> None:
    """Documents through the model, queries weighed from the static table (no model run)."""
    from tests.plugins import tiny_checkpoints as tiny

    folder = tiny.inference_free_checkpoint(tmp_path / "ifree")
    reference = _reference(folder)
    encoder = _encoder(_export(folder, tmp_path / "onnx"))
    assert encoder.query_table is not None
    size = encoder.dim
    _assert_close(_dense(encoder.encode_documents(TEXTS), size),
                  reference.encode_document(TEXTS, convert_to_tensor=True).to_dense().numpy(),
                  "documents")
    queries = encoder.encode_queries(TEXTS)
    _assert_close(_dense(queries, size),
                  reference.encode_query(TEXTS, convert_to_tensor=True).to_dense().numpy(),
                  "queries")
    assert len(queries[4]) == 0  # an empty query weighs nothing


def test_opensearch_idf_json_matches_static_embedding(tmp_path: Path) -> None:
    from sentence_transformers import SparseEncoder
    from sentence_transformers.sparse_encoder.models import (
        MLMTransformer,
        SparseStaticEmbedding,
        SpladePooling,
    )

    from tests.plugins import tiny_checkpoints as tiny

    folder = tiny.opensearch_layout(tmp_path / "os")
    mlm = MLMTransformer(str(folder))
    static = SparseStaticEmbedding.from_json(str(folder / "idf.json"), tokenizer=mlm.tokenizer)
    encoder = _encoder(_export(folder, tmp_path / "onnx"))
    size = encoder.dim
    expected = SparseEncoder(modules=[static], device="cpu").encode(
        TEXTS, convert_to_tensor=True).to_dense().numpy()
    _assert_close(_dense(encoder.encode_queries(TEXTS), size), expected, "idf.json queries")
    documents = SparseEncoder(modules=[mlm, SpladePooling("max")], device="cpu").encode(
        TEXTS, convert_to_tensor=True).to_dense().numpy()
    _assert_close(_dense(encoder.encode_documents(TEXTS), size), documents, "documents")


def test_a_model_without_mlm_head_is_named(tmp_path: Path) -> None:
    from tests.plugins import tiny_checkpoints as tiny

    folder = tiny.tiny_bert(tmp_path / "plain")
    with pytest.raises(ModelSourceError, match=r"no masked-language-model head.*splade"):
        _export(folder, tmp_path / "onnx")


@pytest.mark.parametrize("mode", ["edge", "local"])
def test_splade_hybrid_preset_stores_final_weights(tmp_path: Path, mode: str) -> None:
    """SPLADE + dense in one Qdrant collection: the sparse field has no IDF modifier, so a
    hit's SPLADE score is the plain dot product of the two vectors."""
    from tests.plugins import tiny_checkpoints as tiny
    from trawl import Trawl, load_pipeline

    onnx = _export(tiny.splade_checkpoint(tmp_path / "splade"), tmp_path / "onnx")
    config = load_pipeline(f"splade-hybrid:{onnx}").model_dump()
    assert config["retrievers"][0]["encoder"] == "onnx-sparse"
    for retriever in config["retrievers"]:
        retriever["index_config"] = {"mode": mode}
    texts = [t for t in TEXTS if t]
    with Trawl.open(tmp_path / "index", pipeline=config) as t:
        t.add([{"id": f"d{i}", "text": text} for i, text in enumerate(texts)])
        hits = t.search("sparse vector search", top_k=4, retrievers=["splade"])
    encoder = _encoder(onnx)
    q = _dense(encoder.encode_queries(["sparse vector search"]), encoder.dim)[0]
    docs = _dense(encoder.encode_documents(texts), encoder.dim)
    expected = docs @ q
    assert [h.doc_id for h in hits] == [f"d{i}" for i in np.argsort(-expected)[:4]]
    assert np.allclose([h.scores_by_source["splade"].score for h in hits],
                       np.sort(expected)[::-1][:4], rtol=1e-4)
    if mode == "edge":
        saved = json.loads(next((tmp_path / "index").rglob("edge_config.json")).read_text())
        assert saved["sparse_vectors"]["splade"].get("modifier") in (None, "none")
