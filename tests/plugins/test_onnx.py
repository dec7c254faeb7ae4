"""ONNX plugin: model sources, export manifest, dense encoder, bad input, parity."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import trawl
from tests.conftest import DATASETS
from tests.plugins.conftest_onnx import (
    HAS_TORCH,
    copy_export,
    minilm_fp32,
    minilm_int8,
    st_reference,
)
from trawl import ComponentContext, ConfigError, InputError, ModelSourceError
from trawl.testing import EncoderContract

__all__ = ["minilm_fp32", "minilm_int8", "st_reference"]  # fixtures re-exported for pytest


def dense(folder: Path, **config: object) -> trawl.Encoder:
    from trawl_onnx.encoders import OnnxDenseEncoder

    return OnnxDenseEncoder(OnnxDenseEncoder.Config(model=str(folder), **config),
                            ComponentContext(name="onnx-dense"))


_ENCODERS: dict[Path, trawl.Encoder] = {}


def _shared_encoder(folder: Path) -> trawl.Encoder:
    if folder not in _ENCODERS:
        _ENCODERS[folder] = dense(folder, threads=2)
    return _ENCODERS[folder]


@pytest.fixture
def encoder(minilm_fp32: Path) -> trawl.Encoder:
    return _shared_encoder(minilm_fp32)


# -- model sources ---------------------------------------------------------------------
def test_packaged_names_resolve_to_site_packages() -> None:
    from trawl_onnx.sources import resolve_model_folder

    a = resolve_model_folder("all-MiniLM-L6-v2")
    b = resolve_model_folder("sentence-transformers/all-MiniLM-L6-v2")
    assert a == b and "site-packages" in str(a)
    assert (a / "model.safetensors").is_file() and (a / "tokenizer.json").is_file()


def test_local_folder_resolves_to_itself(tmp_path: Path) -> None:
    from trawl_onnx.sources import resolve_model_folder

    assert resolve_model_folder(str(tmp_path)) == tmp_path.resolve()
    with pytest.raises(ModelSourceError, match="neither"):
        resolve_model_folder(str(tmp_path / "missing" / "deeper" / "x"))


def test_hub_id_offline_names_the_offline_options(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants as hub_constants

    from trawl_onnx.sources import resolve_model_folder

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelSourceError) as err:
        resolve_model_folder("BAAI/bge-small-en-v1.5")
    message = str(err.value)
    assert "BAAI/bge-small-en-v1.5" in message and "Offline options" in message
    assert "all-MiniLM-L6-v2" in message and "trawl export" in message


def test_resolve_model_source_hook_through_the_host() -> None:
    host = trawl.PluginHost(load={"onnx"})
    folder = host.resolve_model_source("all-MiniLM-L6-v2")
    assert Path(folder).name == "model" and (Path(folder) / "config.json").is_file()


def test_plugin_registers_components_without_heavy_imports() -> None:
    code = (
        "import sys, trawl\n"
        "h = trawl.PluginHost()\n"
        "r = h.registry\n"
        "print(r.names('encoder'), r.names('reranker'))\n"
        "print(sorted(m for m in ('onnxruntime', 'torch', 'tokenizers', 'transformers') "
        "if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert "onnx-dense" in out[0] and "onnx-tokens" in out[0]
    assert "maxsim" in out[0] and "cross-encoder" in out[0]
    assert out[1] == "[]"


def test_hf_folder_without_tokenizer_json(tmp_path: Path) -> None:
    from trawl_onnx.manifest import read_hf_info
    from trawl_onnx.sources import resolve_model_folder

    src = resolve_model_folder("all-MiniLM-L6-v2")
    (tmp_path / "config.json").write_bytes((src / "config.json").read_bytes())
    with pytest.raises(ModelSourceError, match=r"tokenizer\.json"):
        read_hf_info(tmp_path)


def test_max_length_comes_from_sentence_transformers_config() -> None:
    from trawl_onnx.manifest import read_hf_info
    from trawl_onnx.sources import resolve_model_folder

    info = read_hf_info(resolve_model_folder("all-MiniLM-L6-v2"))
    assert (info.max_length, info.pooling, info.normalize, info.hidden_size) == (
        256, "mean", True, 384)


# -- exported folder checks -------------------------------------------------------------
def test_manifest_records_model_facts(minilm_fp32: Path) -> None:
    from trawl_onnx.manifest import MANIFEST, load_manifest

    m = load_manifest(minilm_fp32)
    assert (m.dim, m.max_length, m.pooling, m.normalize, m.quantize) == (
        384, 256, "mean", True, "fp32")
    assert {"model.onnx", "tokenizer.json"} <= set(m.files)
    from trawl import TrawlSettings

    # exported into trawl's cache (TRAWL_CACHE_DIR or the user cache), not a temporary folder
    assert minilm_fp32.parent == TrawlSettings().cache_dir / "models"
    assert json.loads((minilm_fp32 / MANIFEST).read_text())["output"] == "last_hidden_state"


def test_mismatched_manifest_is_refused(minilm_fp32: Path, tmp_path: Path) -> None:
    bad = copy_export(minilm_fp32, tmp_path / "bad")
    with (bad / "tokenizer.json").open("a") as f:
        f.write(" ")
    with pytest.raises(ModelSourceError, match=r"tokenizer\.json.*does not match"):
        dense(bad)


def test_missing_tokenizer_json_is_refused(minilm_fp32: Path, tmp_path: Path) -> None:
    bad = copy_export(minilm_fp32, tmp_path / "notok")
    (bad / "tokenizer.json").unlink()
    with pytest.raises(ModelSourceError, match=r"tokenizer\.json"):
        dense(bad)


def test_folder_with_onnx_but_no_manifest(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not really")
    with pytest.raises(ModelSourceError, match=r"trawl_manifest\.json"):
        dense(tmp_path)


def test_unsupported_model_without_torch_names_model_type(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    import importlib.util

    import trawl_onnx.export as export
    from trawl_onnx.graph import UnsupportedModelError
    from trawl_onnx.sources import resolve_model_folder

    src = resolve_model_folder("all-MiniLM-L6-v2")
    folder = tmp_path / "deberta"
    folder.mkdir()
    config = json.loads((src / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "deberta-v2"}))
    (folder / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    monkeypatch.setenv("TRAWL_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(UnsupportedModelError) as err:
        export.ensure_exported(str(folder))
    message = str(err.value)
    assert "'deberta-v2'" in message and "torch==2.13.0" in message and "--exporter torch" in message
    assert not (tmp_path / "cache" / "models").exists() or not any(
        p.is_dir() and not p.name.endswith(".lock")
        for p in (tmp_path / "cache" / "models").iterdir())


def test_cache_dir_follows_trawl_cache_dir(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    from trawl_onnx.export import cache_folder

    monkeypatch.setenv("TRAWL_CACHE_DIR", str(tmp_path))
    assert cache_folder("all-MiniLM-L6-v2", "int8") == tmp_path / "models" / \
        "all-MiniLM-L6-v2-int8"
    a, b = cache_folder(str(tmp_path / "x" / "model")), cache_folder(str(tmp_path / "y/model"))
    assert a != b  # two local folders with the same name never share a cache entry


# -- dense encoder -------------------------------------------------------------------
class TestOnnxDenseContract(EncoderContract):
    @pytest.fixture
    def encoder(self, minilm_fp32: Path) -> trawl.Encoder:
        return _shared_encoder(minilm_fp32)


def test_encoder_reports_model_window_and_real_tokens(encoder: trawl.Encoder) -> None:
    assert encoder.dim == 384 and encoder.max_length == 256
    text = "Late-interaction retrievers, e.g. ColBERT, score tokens."
    spans = encoder.token_spans(text)
    pieces = [text[a:b] for a, b in spans]
    assert pieces[:4] == ["late", "-", "interaction", "retrieve"] or pieces[0].lower() == "late"
    assert "##" not in "".join(pieces) and len(spans) > len(text.split())


def test_empty_and_whitespace_texts_give_unit_vectors(encoder: trawl.Encoder) -> None:
    out = encoder.encode_documents(["", "   \n\t", "text"])
    assert out.shape == (3, 384) and np.isfinite(out).all()
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[0], out[1], atol=1e-6)  # whitespace tokenises to nothing


def test_very_long_text_is_truncated_with_one_warning(minilm_fp32: Path) -> None:
    enc = dense(minilm_fp32)
    long_text = ("The quick brown fox jumps over the lazy dog. " * 2300)[:100_000]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = enc.encode_documents([long_text, long_text[:5000]])
        enc.encode_documents([long_text])
    assert len([w for w in caught if "truncated" in str(w.message)]) == 1
    np.testing.assert_allclose(a[0], a[1], atol=1e-6)  # only the first 256 tokens count


def test_non_utf8_and_wrong_types_are_input_errors(encoder: trawl.Encoder) -> None:
    with pytest.raises(InputError, match="UTF-8"):
        encoder.encode_documents([b"caf\xe9"])  # type: ignore[list-item]
    with pytest.raises(InputError, match="surrogate"):
        encoder.encode_documents([b"caf\xe9".decode("utf-8", "surrogateescape")])
    with pytest.raises(InputError, match="list"):
        encoder.encode_documents("just a string")
    with pytest.raises(InputError, match="int"):
        encoder.encode_queries([3])  # type: ignore[list-item]
    ok = encoder.encode_documents(["café".encode()])  # type: ignore[list-item]
    np.testing.assert_allclose(ok, encoder.encode_documents(["café"]), atol=1e-6)


def test_matryoshka_dim_truncates_then_renormalises(minilm_fp32: Path,
                                                    encoder: trawl.Encoder) -> None:
    small = dense(minilm_fp32, dim=128)
    texts = ["matryoshka embeddings nest", "a second sentence"]
    out = small.encode_documents(texts)
    full = encoder.encode_documents(texts)
    assert small.dim == 128 and out.shape == (2, 128)
    ref = full[:, :128] / np.linalg.norm(full[:, :128], axis=1, keepdims=True)
    np.testing.assert_allclose(out, ref, atol=1e-5)
    with pytest.raises(ConfigError, match="dim"):
        dense(minilm_fp32, dim=1000)


def test_prefixes_pooling_and_normalize_options(minilm_fp32: Path,
                                                encoder: trawl.Encoder) -> None:
    pref = dense(minilm_fp32, query_prefix="query: ", document_prefix="passage: ")
    q = pref.encode_queries(["solar panels"])
    np.testing.assert_allclose(q, encoder.encode_documents(["query: solar panels"]), atol=1e-5)
    cls = dense(minilm_fp32, pooling="cls", normalize=False)
    v = cls.encode_documents(["solar panels"])
    assert abs(float(np.linalg.norm(v)) - 1.0) > 1e-3  # raw CLS state, not normalised


def test_unavailable_provider_names_available_ones(minilm_fp32: Path) -> None:
    with pytest.raises(ConfigError, match="CPUExecutionProvider"):
        dense(minilm_fp32, providers=["NoSuchExecutionProvider"])


def test_cuda_device_needs_the_cuda_provider(minilm_fp32: Path) -> None:
    """``device: cuda`` runs on the GPU only where onnxruntime has the CUDA provider;
    elsewhere a typed error names the missing provider and how to get it."""
    import onnxruntime as ort

    from trawl_onnx.runtime import ExecutionProviderError, session_providers

    if "CUDAExecutionProvider" in ort.get_available_providers():
        gpu = dense(minilm_fp32, device="cuda")
        assert gpu.model.session.get_providers()[0] == "CUDAExecutionProvider"
    else:
        with pytest.raises(ExecutionProviderError, match=r"CUDAExecutionProvider.*onnxruntime-gpu"):
            dense(minilm_fp32, device="cuda")
    cpu_only = ["CPUExecutionProvider"]
    assert session_providers("cpu", None, "e", cpu_only) == cpu_only
    assert session_providers("cuda", None, "e", ["CUDAExecutionProvider", *cpu_only]) == [
        "CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(ExecutionProviderError, match="CUDAExecutionProvider"):
        session_providers("cuda", None, "encoder 'dense'", cpu_only)
    with pytest.raises(ConfigError, match="not both"):
        session_providers("cuda", ["CPUExecutionProvider"], "e", cpu_only)
    assert dense(minilm_fp32).model.session.get_providers() == cpu_only  # the default


def test_config_typos_are_rejected() -> None:
    host = trawl.PluginHost(load={"onnx"})
    with pytest.raises(ConfigError, match="batchsize"):
        host.registry.validate_config("encoder", "onnx-dense", {"batchsize": 8})


def test_progress_bar_runs(encoder: trawl.Encoder) -> None:
    out = encoder.encode_documents([f"text number {i}" for i in range(300)], show_progress=True)
    assert out.shape == (300, 384)


def test_built_through_registry(minilm_fp32: Path) -> None:
    host = trawl.PluginHost(load={"onnx"})
    enc = host.registry.build("encoder", "onnx-dense", {"model": str(minilm_fp32)},
                              ComponentContext(name="dense"))
    assert type(enc).__name__ == "OnnxDenseEncoder" and enc.dim == 384


# -- parity with sentence-transformers ---------------------------------------------------
def _varied_sentences(n: int = 200) -> list[str]:
    """Real queries and passages (long ones exceed 256 tokens) plus awkward hand-made ones."""
    texts = ["", "   ", "a", "OK", "naïve café — ünïcödé ✓", "日本語のテキスト検索",
             "def f(x):\n    return x ** 2  # code", "3.14159 2.71828 1e-9 $100 50%",
             "🙂 emoji 🚀 rockets", "ALL CAPS SHOUTING TEXT", "x" * 3000,
             "word " * 600, "\u00a0non-breaking\u2009spaces\u200b", "tab\tseparated\tvalues"]
    for name, field, limit in (("scifact", "corpus.jsonl", 24), ("cranfield", "corpus.jsonl", 10),
                               ("limit-small", "corpus.jsonl", 4),
                               ("scifact", "queries.jsonl", 100),
                               ("cranfield", "queries.jsonl", 60)):
        path = DATASETS / name / field
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as f:
            for line, _ in zip(f, range(limit), strict=False):
                row = json.loads(line)
                texts.append((row.get("title", "") + " " + row["text"]).strip())
    return texts[:n]


@pytest.mark.export
@pytest.mark.slow
@pytest.mark.skipif(not HAS_TORCH, reason="needs the export extra")
def test_parity_with_sentence_transformers(encoder: trawl.Encoder, minilm_int8: Path,
                                           st_reference: tuple[list[str], np.ndarray]) -> None:
    texts, expected = st_reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = encoder.encode_documents(texts)
        int8 = dense(minilm_int8, threads=2).encode_documents(texts)
    cos = (got * expected).sum(1) / (np.linalg.norm(got, axis=1) *
                                     np.linalg.norm(expected, axis=1))
    assert cos.min() >= 0.9999, f"worst cosine {cos.min():.6f} at {texts[int(cos.argmin())]!r}"
    assert np.abs(got - expected).max() <= 1e-4
    cos8 = (int8 * got).sum(1)
    assert cos8.mean() >= 0.99 and cos8.min() >= 0.95
