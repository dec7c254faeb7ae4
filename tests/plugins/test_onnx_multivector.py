"""ONNX plugin: token encoder, MaxSim reranker, cross-encoder reranker, `trawl export`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

import trawl
from tests.plugins.conftest_onnx import HAS_TORCH, minilm_fp32
from trawl import ComponentContext, ConfigError, Hit, InputError, SourceScore
from trawl.testing import EncoderContract, RerankerContract
from trawl.vectors import maxsim_scores

__all__ = ["minilm_fp32"]


def tokens(folder: Path, **config: object) -> trawl.Encoder:
    from trawl_onnx.encoders import OnnxTokenEncoder

    return OnnxTokenEncoder(OnnxTokenEncoder.Config(model=str(folder), **config),
                            ComponentContext(name="onnx-tokens"))


_SHARED: dict[str, object] = {}


@pytest.fixture
def token_encoder(minilm_fp32: Path) -> trawl.Encoder:
    if "tokens" not in _SHARED:
        _SHARED["tokens"] = tokens(minilm_fp32, threads=2)
    return _SHARED["tokens"]  # type: ignore[return-value]


@pytest.fixture
def maxsim_reranker(minilm_fp32: Path) -> trawl.Reranker:
    if "maxsim" not in _SHARED:
        host = trawl.PluginHost(load={"onnx"})
        _SHARED["maxsim"] = host.registry.build(
            "reranker", "maxsim", {"model": str(minilm_fp32), "threads": 2},
            ComponentContext(name="maxsim"))
    return _SHARED["maxsim"]  # type: ignore[return-value]


# -- token encoder ---------------------------------------------------------------------
class TestOnnxTokenContract(EncoderContract):
    @pytest.fixture
    def encoder(self, token_encoder: trawl.Encoder) -> trawl.Encoder:
        return token_encoder


def test_token_vectors_drop_specials_and_punctuation(token_encoder: trawl.Encoder) -> None:
    assert token_encoder.kind == "multivector" and token_encoder.dim == 384
    (doc,) = token_encoder.encode_documents(["Hello, world!"])
    (query,) = token_encoder.encode_queries(["Hello, world!"])
    assert doc.shape == (2, 384)  # hello world: no [CLS]/[SEP], no punctuation
    assert query.shape == (4, 384)  # queries keep punctuation
    assert doc.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(query, axis=1), 1.0, atol=1e-5)
    (empty,) = token_encoder.encode_documents([""])
    assert empty.shape == (0, 384)
    assert token_encoder.encode_documents([]) == []


def test_padding_does_not_change_token_vectors(token_encoder: trawl.Encoder) -> None:
    alone = token_encoder.encode_documents(["short text"])[0]
    batched = token_encoder.encode_documents(["short text", "a much longer text " * 30])[0]
    np.testing.assert_allclose(alone, batched, atol=1e-4)


def test_query_max_length_and_options(minilm_fp32: Path) -> None:
    enc = tokens(minilm_fp32, query_max_length=8, skip_punctuation=False)
    (q,) = enc.encode_queries(["one two three four five six seven eight nine ten"])
    assert q.shape == (6, 384)  # 8 minus [CLS] and [SEP]
    (d,) = enc.encode_documents(["Hello, world!"])
    assert d.shape == (4, 384)
    with pytest.raises(ConfigError, match="query_max_length"):
        tokens(minilm_fp32, query_max_length=1000)


def test_projection_reduces_dims(minilm_fp32: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "proj.npy", rng.standard_normal((384, 64)).astype(np.float32))
    enc = tokens(minilm_fp32, projection=tmp_path / "proj.npy")
    (d,) = enc.encode_documents(["projected token vectors"])
    assert enc.dim == 64 and d.shape[1] == 64
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0, atol=1e-5)
    np.save(tmp_path / "bad.npy", np.zeros((10, 4), np.float32))
    with pytest.raises(ConfigError, match="projection"):
        tokens(minilm_fp32, projection=tmp_path / "bad.npy")


def test_token_encoder_bad_input(token_encoder: trawl.Encoder) -> None:
    with pytest.raises(InputError, match="UTF-8"):
        token_encoder.encode_documents([b"\xff\xfe"])  # type: ignore[list-item]


# -- MaxSim reranker -------------------------------------------------------------------
class TestMaxSimContract(RerankerContract):
    @pytest.fixture
    def reranker(self, maxsim_reranker: trawl.Reranker) -> trawl.Reranker:
        return maxsim_reranker


def _hits(texts: list[str]) -> list[Hit]:
    return [Hit(doc_id=f"d{i}", chunk_id=f"d{i}#0", score=1.0 / (i + 1), rank=i + 1, text=t,
                scores_by_source={"bm25": SourceScore(score=1.0 / (i + 1), rank=i + 1)})
            for i, t in enumerate(texts)]


def test_maxsim_reranks_by_exact_late_interaction(maxsim_reranker: trawl.Reranker,
                                                  token_encoder: trawl.Encoder) -> None:
    texts = ["the stock market fell sharply today", "weather forecast: rain tomorrow",
             "photosynthesis converts sunlight into chemical energy in plants"]
    query = "how do plants make energy from sunlight"
    out = maxsim_reranker.rerank(query, _hits(texts))
    assert out[0].doc_id == "d2" and [h.rank for h in out] == [1, 2, 3]
    expected = maxsim_scores(token_encoder.encode_queries([query])[0],
                             token_encoder.encode_documents(texts))
    assert out[0].scores_by_source["maxsim"].score == pytest.approx(float(expected[2]), abs=1e-4)
    assert out[0].scores_by_source["bm25"].rank == 3  # the first-stage opinion is kept
    assert out[0].score == out[0].scores_by_source["maxsim"].score
    with pytest.raises(InputError):
        maxsim_reranker.rerank(query, _hits(texts), top_k=0)


def test_maxsim_in_a_pipeline_reads_stored_vectors_only(
        minilm_fp32: Path, token_encoder: trawl.Encoder, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["the stock market fell sharply today", "weather forecast: rain tomorrow",
             "photosynthesis converts sunlight into chemical energy in plants",
             "plants need water, and sunlight makes the weather warm"]
    pipeline = {"name": "bm25-maxsim", "retrievers": [{"name": "bm25", "index": "bm25"}],
                "reranker": {"name": "maxsim", "depth": 10,
                             "config": {"model": str(minilm_fp32), "threads": 2}}}
    host = trawl.PluginHost(load={"onnx", "bm25"})
    with trawl.Trawl.open(tmp_path / "idx", pipeline=pipeline, host=host,
                          show_progress=False) as t:
        t.add([{"id": f"d{i}", "text": x} for i, x in enumerate(texts)])
        reranker = t.pipeline.reranker
        assert reranker is not None and reranker.token_store is t.pipeline.tokens

        def no_passages(*args: object, **kwargs: object) -> object:
            raise AssertionError("a stored passage was encoded at query time")

        monkeypatch.setattr(reranker.encoder, "encode_documents", no_passages)  # type: ignore[attr-defined]
        hits = t.search("sunlight plants weather", top_k=4)
    query = token_encoder.encode_queries(["sunlight plants weather"])[0]
    fresh = dict(zip([f"d{i}" for i in range(4)],
                     maxsim_scores(query, token_encoder.encode_documents(texts)), strict=True))
    assert {h.doc_id for h in hits} == {"d1", "d2", "d3"}  # bm25 candidates
    for h in hits:  # stored float16 vectors: MaxSim within 1e-2 of freshly encoded ones
        assert h.scores_by_source["maxsim"].score == pytest.approx(float(fresh[h.doc_id]),
                                                                   abs=1e-2)
    assert [h.doc_id for h in hits] == sorted(
        (h.doc_id for h in hits), key=lambda d: -fresh[d])


def test_maxsim_token_cache_reuses_vectors_and_never_serves_stale(
        minilm_fp32: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trawl_onnx.rerankers import MaxSimReranker

    rr = MaxSimReranker(MaxSimReranker.Config(model=str(minilm_fp32), threads=2),
                        ComponentContext(name="maxsim"))
    encoded: list[str] = []
    real = rr.encoder.encode_documents

    def counting(texts: list[str], **kw: object) -> list[np.ndarray]:
        encoded.extend(texts)
        return real(texts)

    monkeypatch.setattr(rr.encoder, "encode_documents", counting)
    texts = ["sunlight drives photosynthesis in green plants", "the bond market rallied"]
    first = rr.rerank("how do plants use light", _hits(texts))
    assert encoded == texts
    second = rr.rerank("how do plants use light", _hits(texts))
    assert encoded == texts  # nothing re-encoded
    assert [h.doc_id for h in second] == [h.doc_id for h in first]
    for a, b in zip(first, second, strict=True):
        assert b.score == pytest.approx(a.score, abs=2e-3)  # float16 storage
    edited = [texts[0], "green plants turn sunlight into sugar"]
    rr.rerank("how do plants use light", _hits(edited))
    assert encoded == [*texts, edited[1]]  # the edited passage is encoded, not reused
    assert rr.cache.hits == 3 and rr.cache.misses == 3

    tiny = MaxSimReranker(MaxSimReranker.Config(model=str(minilm_fp32), threads=2,
                                                cache_mb=0), ComponentContext(name="maxsim"))
    tiny.rerank("plants", _hits(texts))
    assert tiny.cache.bytes == 0 and tiny.cache.hits == 0


def test_maxsim_token_cache_evicts_by_bytes() -> None:
    from trawl_onnx.rerankers import _TokenCache

    cache = _TokenCache(max_bytes=3 * 10 * 384 * 2)  # three 10-token float16 matrices
    for i in range(5):
        cache.put(_TokenCache.key(str(i)), np.ones((10, 384), np.float32))
    assert cache.bytes <= cache.max_bytes
    assert cache.get(_TokenCache.key("0")) is None  # oldest went first
    got = cache.get(_TokenCache.key("4"))
    assert got is not None and got.dtype == np.float32 and got.shape == (10, 384)


# -- trawl export + cross-encoder (plumbing with a random tiny classifier) --------------
@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 2-layer BERT sequence classifier with MiniLM's tokenizer.

    Plumbing only: no cross-encoder weights can be downloaded here, so this checks the
    export, pair tokenisation, truncation and scoring path against torch, not quality.
    """
    if not HAS_TORCH:
        pytest.skip("needs the export extra (torch, transformers)")
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from trawl_onnx.sources import resolve_model_folder

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "tiny-ce"
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64, num_labels=1)
    BertForSequenceClassification(config).eval().save_pretrained(folder)
    src = resolve_model_folder("all-MiniLM-L6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt",
                 "special_tokens_map.json"):
        shutil.copyfile(src / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def tiny_exported(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from trawl_onnx.cli import export_command

    out = tmp_path_factory.mktemp("ce") / "tiny-onnx"
    result = CliRunner().invoke(export_command, [str(tiny_classifier), "--out", str(out),
                                                 "--kind", "cross-encoder"])
    assert result.exit_code == 0, result.output
    assert "cross-encoder" in result.output
    return out


def test_register_commands_adds_export() -> None:
    import trawl_onnx

    group = click.Group("trawl")
    trawl_onnx.register_commands(cli=group)
    assert "export" in group.commands
    result = CliRunner().invoke(group, ["export", "--help"])
    assert "--int8" in result.output and "--kind" in result.output


@pytest.mark.export
def test_cross_encoder_matches_torch_and_never_truncates_the_query(
        tiny_classifier: Path, tiny_exported: Path) -> None:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from trawl_onnx.rerankers import OnnxCrossEncoder

    manifest = json.loads((tiny_exported / "trawl_manifest.json").read_text())
    assert manifest["kind"] == "cross-encoder" and manifest["max_length"] == 64
    assert "token_type_ids" in manifest["inputs"]
    ce = OnnxCrossEncoder(OnnxCrossEncoder.Config(model=str(tiny_exported), batch_size=2),
                          ComponentContext(name="cross-encoder"))
    query = "what do cats eat"
    passages = ["cats eat fish", "dogs bark", "word " * 200, "", "a cat is a small feline"]
    got = ce.score(query, passages)
    tok = AutoTokenizer.from_pretrained(str(tiny_classifier))
    model = BertForSequenceClassification.from_pretrained(str(tiny_classifier)).eval()
    batch = tok([query] * len(passages), passages, truncation="only_second", max_length=64,
                padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**batch).logits[:, 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    out = ce.rerank(query, _hits(passages), top_k=2)
    assert [h.rank for h in out] == [1, 2] and "cross-encoder" in out[0].scores_by_source
    with pytest.raises(InputError, match="never the query"):
        ce.score("long query " * 100, ["passage"])


@pytest.mark.export
def test_cross_encoder_contract_and_int8_export(tiny_classifier: Path, tiny_exported: Path,
                                                tmp_path: Path) -> None:
    from trawl_onnx.cli import export_command
    from trawl_onnx.rerankers import OnnxCrossEncoder

    out = tmp_path / "int8"
    result = CliRunner().invoke(export_command, [str(tiny_exported), "--out", str(out),
                                                 "--int8"])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "trawl_manifest.json").read_text())["quantize"] == "int8"
    ce = OnnxCrossEncoder(OnnxCrossEncoder.Config(model=str(out)),
                          ComponentContext(name="ce8"))
    assert np.isfinite(ce.score("q", ["a", "b"])).all()
    again = CliRunner().invoke(export_command, [str(tiny_classifier), "--out", str(out)])
    assert again.exit_code != 0 and "not empty" in again.output


@pytest.mark.export
class TestCrossEncoderContract(RerankerContract):
    @pytest.fixture
    def reranker(self, tiny_exported: Path) -> trawl.Reranker:
        from trawl_onnx.rerankers import OnnxCrossEncoder

        return OnnxCrossEncoder(OnnxCrossEncoder.Config(model=str(tiny_exported)),
                                ComponentContext(name="cross-encoder"))


def test_dense_encoder_refuses_a_cross_encoder_folder(tiny_exported: Path) -> None:
    from trawl_onnx.encoders import OnnxDenseEncoder

    with pytest.raises(ConfigError, match="cross-encoder"):
        OnnxDenseEncoder(OnnxDenseEncoder.Config(model=str(tiny_exported)))
