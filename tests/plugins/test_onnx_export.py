"""Torch-free export (``trawl_onnx.graph``): runs without torch; matches torch when present.

The parity tests compare against the running sentence-transformers / transformers models
(never stored numbers) and are marked ``export``; they skip where torch is absent. The
BERT and XLM-RoBERTa families are checked on tiny random-weight models the tests build
with transformers (``save_pretrained(safe_serialization=True)``), so no hub is needed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.plugins.conftest_onnx import CAN_EXPORT, HAS_TORCH, st_reference
from tests.plugins.test_onnx import dense
from trawl import ModelSourceError

pytestmark = pytest.mark.skipif(not CAN_EXPORT, reason="needs the onnx extra (onnx, safetensors)")
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs the export extra (torch)")

__all__ = ["st_reference"]  # fixture re-exported for pytest
BLOCK_TORCH = ("import sys\n"
               "for name in ('torch', 'transformers', 'sentence_transformers'):\n"
               "    sys.modules[name] = None  # any import of them now fails\n")


def _minilm() -> Path:
    from trawl_onnx.sources import resolve_model_folder

    return resolve_model_folder("all-MiniLM-L6-v2")


# -- without torch ---------------------------------------------------------------------
def test_default_model_exports_and_encodes_with_torch_unimportable(tmp_path: Path) -> None:
    out = tmp_path / "minilm"
    code = BLOCK_TORCH + (
        "import json, sys\n"
        "from trawl_onnx.export import export_model\n"
        "from trawl_onnx.encoders import OnnxDenseEncoder\n"
        "from trawl import ComponentContext\n"
        f"folder = export_model('all-MiniLM-L6-v2', {str(out)!r})\n"
        "enc = OnnxDenseEncoder(OnnxDenseEncoder.Config(model=str(folder)),\n"
        "                       ComponentContext(name='d'))\n"
        "v = enc.encode_documents(['a cat sat on the mat', 'a kitten on a rug', 'tax law'])\n"
        "print(json.dumps({'sims': (v @ v.T)[0].tolist(),\n"
        "                  'torch': 'torch' in sys.modules and sys.modules['torch'] is not None}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch"] is False
    sims = result["sims"]
    assert abs(sims[0] - 1.0) < 1e-5 and sims[1] > sims[2] + 0.2  # real semantics, not noise
    manifest = json.loads((out / "trawl_manifest.json").read_text())
    assert manifest["exporter"].startswith("trawl numpy") and manifest["optimized"] is True
    assert manifest["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]


def test_numpy_graph_fuses_like_the_torch_graph(tmp_path: Path) -> None:
    """The hand-built graph takes every fusion onnxruntime's BERT optimizer knows."""
    from trawl_onnx.export import _optimize
    from trawl_onnx.graph import build_graph, save_graph

    model, _, _ = build_graph(_minilm())
    save_graph(model, tmp_path / "raw.onnx")
    assert _optimize(tmp_path / "raw.onnx", tmp_path / "fused.onnx", 12, 384)
    import onnx

    ops = [n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node]
    assert ops.count("Attention") == 6 and ops.count("SkipLayerNormalization") == 12
    assert ops.count("BiasGelu") == 6 and "Softmax" not in ops


def _fake_folder(tmp_path: Path, **config: Any) -> Path:
    src = _minilm()
    folder = tmp_path / "model"
    folder.mkdir()
    base = json.loads((src / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**base, **config}))
    shutil.copyfile(src / "tokenizer.json", folder / "tokenizer.json")
    return folder


@pytest.mark.parametrize("field,value,needle", [
    ("model_type", "deberta-v2", "'deberta-v2'"),
    ("model_type", "gpt2", "'gpt2'"),
    ("position_embedding_type", "relative_key", "'relative_key'"),
    ("hidden_act", "swish", "'swish'"),
])
def test_unsupported_architecture_names_the_field(tmp_path: Path, field: str, value: str,
                                                  needle: str) -> None:
    from trawl_onnx.export import export_model
    from trawl_onnx.graph import UnsupportedModelError

    folder = _fake_folder(tmp_path, **{field: value})
    with pytest.raises(UnsupportedModelError) as err:
        export_model(folder, tmp_path / "out", exporter="numpy")
    message = str(err.value)
    assert needle in message and "--exporter torch" in message and "torch==2.13.0" in message
    assert not (tmp_path / "out").exists()


def test_pickle_only_weights_are_refused_not_loaded(tmp_path: Path) -> None:
    from trawl_onnx.export import export_model

    folder = _fake_folder(tmp_path)
    (folder / "pytorch_model.bin").write_bytes(b"not opened")
    with pytest.raises(ModelSourceError, match=r"pytorch_model\.bin.*pickle.*never loads"):
        export_model(folder, tmp_path / "out", exporter="numpy")


def test_unknown_exporter_is_refused(tmp_path: Path) -> None:
    from trawl_onnx.export import export_model

    with pytest.raises(ModelSourceError, match="unknown exporter 'onnxscript'"):
        export_model("all-MiniLM-L6-v2", tmp_path / "out",
                     exporter="onnxscript")  # type: ignore[arg-type]


# -- parity with torch (export extra) ---------------------------------------------------
def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))


@pytest.mark.export
@pytest.mark.slow
@needs_torch
def test_default_model_parity_with_sentence_transformers_and_torch_export(
        tmp_path: Path, st_reference: tuple[list[str], np.ndarray]) -> None:
    """200 varied texts: the torch-free export vs sentence-transformers and vs the torch
    export, max abs diff <= 1e-5 per coordinate of the normalised vectors."""
    from trawl_onnx.export import export_model

    texts, expected = st_reference
    numpy_dir = export_model("all-MiniLM-L6-v2", tmp_path / "numpy", exporter="numpy")
    torch_dir = export_model("all-MiniLM-L6-v2", tmp_path / "torch", exporter="torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = dense(numpy_dir, threads=2).encode_documents(texts)
        via_torch = dense(torch_dir, threads=2).encode_documents(texts)
    assert np.abs(got - expected).max() <= 1e-5, np.abs(got - expected).max()
    assert _cosines(got, expected).min() >= 0.99999
    assert np.abs(got - via_torch).max() <= 1e-5, np.abs(got - via_torch).max()


def _tiny(folder: Path, family: str, classifier: bool) -> Path:
    """A random 2-layer model of ``family`` saved as safetensors, with MiniLM's tokenizer."""
    import torch
    import transformers as tf

    torch.manual_seed(7)
    common = dict(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128, max_position_embeddings=128, num_labels=3)
    if family == "bert":
        config: Any = tf.BertConfig(**common)
        cls = tf.BertForSequenceClassification if classifier else tf.BertModel
    elif family == "mpnet":  # relative position bias; positions from padding_idx + 1
        config = tf.MPNetConfig(**{**common, "max_position_embeddings": 130}, pad_token_id=1)
        cls = tf.MPNetForSequenceClassification if classifier else tf.MPNetModel
    else:  # XLM-RoBERTa: pad id 1, positions from padding_idx + 1, one token type
        config = tf.XLMRobertaConfig(**{**common, "max_position_embeddings": 130},
                                     type_vocab_size=1, pad_token_id=1)
        cls = tf.XLMRobertaForSequenceClassification if classifier else tf.XLMRobertaModel
    model = cls(config).eval()
    with torch.no_grad():  # random, non-trivial LayerNorm and bias values
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder, safe_serialization=True)
    src = _minilm()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copyfile(src / name, folder / name)
    return folder


def _batch(pad: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    lengths = [2, 5, 17, 40, 9, 1 + 1]
    width = max(lengths)
    ids = np.full((len(lengths), width), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(3, 30000, n)
        mask[row, :n] = 1
    types = np.zeros_like(ids)
    types[:, width // 2:] = mask[:, width // 2:]  # second segment for BERT pairs
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


@pytest.mark.export
@needs_torch
@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "mpnet"])
@pytest.mark.parametrize("kind", ["dense", "cross-encoder"])
def test_family_parity_with_transformers(tmp_path: Path, family: str, kind: str) -> None:
    import onnxruntime as ort
    import torch

    from trawl_onnx.export import export_model
    from trawl_onnx.manifest import load_manifest

    folder = _tiny(tmp_path / "src", family, kind == "cross-encoder")
    out = export_model(folder, tmp_path / "out", exporter="numpy", kind=kind)  # type: ignore[arg-type]
    manifest = load_manifest(out)
    config = json.loads((folder / "config.json").read_text())
    feeds = _batch(config["pad_token_id"], np.random.default_rng(3))
    if family != "bert":
        feeds["token_type_ids"][:] = 0
        assert "token_type_ids" not in manifest.inputs
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run([manifest.output], {k: feeds[k] for k in manifest.inputs})[0]
    import transformers as tf

    loader = tf.AutoModelForSequenceClassification if kind == "cross-encoder" else tf.AutoModel
    model = loader.from_pretrained(str(folder), attn_implementation="eager").eval()
    with torch.no_grad():
        args = {k: torch.from_numpy(v) for k, v in feeds.items()
                if k in manifest.inputs or (k == "token_type_ids" and family != "mpnet")}
        ref = getattr(model(**args), manifest.output).numpy()
    if kind == "cross-encoder":
        assert got.shape == (6, 3)
        diff = np.abs(got - ref)
    else:
        diff = np.abs(got - ref)[feeds["attention_mask"].astype(bool)]
        # fused (and the fused graph still matches); MPNet's bias keeps it unfused
        assert manifest.optimized is (family != "mpnet")
    assert diff.max() <= 1e-5, f"{family} {kind}: max abs diff {diff.max():.2e}"


def test_torch_exporter_without_torch_says_so_before_fetching(tmp_path: Path) -> None:
    code = BLOCK_TORCH + (
        "from trawl_onnx.export import export_model\n"
        "from trawl import TrawlError\n"
        "try:\n"
        f"    export_model('all-MiniLM-L6-v2', {str(tmp_path / 'out')!r}, exporter='torch')\n"
        "except TrawlError as exc:\n    print(type(exc).__name__, exc)\n")
    env = {**os.environ, "TRAWL_CACHE_DIR": str(tmp_path / "cache"), "TRAWL_NO_DOWNLOAD": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=env)
    out = proc.stdout.strip()
    assert out.startswith("MissingDependencyError"), proc.stdout + proc.stderr[-2000:]
    assert "'torch' is not installed" in out and "torch==2.13.0" in out
    assert "pip install 'trawl-rag[export]'" in out
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


def test_missing_onnx_package_is_named_with_its_extra(tmp_path: Path) -> None:
    """The issue's first-run failure: onnx missing must say onnx, not torch."""
    code = ("import sys\nsys.modules['onnx'] = None\n"
            "from trawl_onnx.export import ensure_exported\n"
            "from trawl import TrawlError\n"
            "try:\n    ensure_exported('all-MiniLM-L6-v2')\n"
            "except TrawlError as exc:\n    print(type(exc).__name__, exc)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ,
                                            "TRAWL_CACHE_DIR": str(tmp_path)})
    out = proc.stdout.strip()
    assert out.startswith("MissingDependencyError"), proc.stdout + proc.stderr[-2000:]
    assert "'onnx' is not installed" in out and "pip install 'trawl-rag[onnx]'" in out
    assert "torch" not in out
