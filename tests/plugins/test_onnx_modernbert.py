"""ModernBERT and DistilBERT in the torch-free graph builder.

Parity with the running transformers models (eager attention) for every head trawl uses:
token states (``onnx-dense`` pools them, ``onnx-tokens`` keeps their rows) and the
sequence-classification logits (``cross-encoder``), max abs diff <= 1e-5, on tiny random
models built here. The user's install (no torch) exports and encodes a ModernBERT folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.plugins.conftest_onnx import CAN_EXPORT, HAS_TORCH
from tests.plugins.test_onnx_export import BLOCK_TORCH

pytestmark = [pytest.mark.skipif(not CAN_EXPORT, reason="needs the onnx extra"),
              pytest.mark.skipif(not HAS_TORCH, reason="needs the export extra (torch)"),
              pytest.mark.export]

TEXTS = ["a cat sat on the mat", "the kitten slept on a warm rug by the fire",
         "tax law changed in 2024 " * 6, "x", "naïve café — ünïcödé ✓ " * 3]


def _build(folder: Path, family: str, classifier: bool) -> Path:
    from tests.plugins.tiny_encoders import tiny_distilbert, tiny_modernbert

    if family == "distilbert":
        return tiny_distilbert(folder, classifier=classifier)
    if family == "modernbert-mean":  # the classifier pools the mean instead of [CLS]
        return tiny_modernbert(folder, classifier=classifier, classifier_pooling="mean")
    if family == "modernbert-legacy":  # config.json as transformers 4.x writes it
        return tiny_modernbert(folder, classifier=classifier, legacy_config=True,
                               norm_bias=False, layers=3, global_attn_every_n_layers=3)
    return tiny_modernbert(folder, classifier=classifier)


def _feeds(pad: int) -> dict[str, np.ndarray]:
    """Six right-padded rows, up to 40 tokens: longer than ModernBERT's 8-token window."""
    rng = np.random.default_rng(3)
    lengths = [2, 5, 17, 40, 9, 3]
    ids = np.full((len(lengths), max(lengths)), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(3, 30000, n)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("family,kind", [
    ("modernbert", "dense"), ("modernbert", "cross-encoder"),
    ("modernbert-mean", "cross-encoder"),  # classifier pooling only changes the head
    ("modernbert-legacy", "dense"), ("modernbert-legacy", "cross-encoder"),
    ("distilbert", "dense"), ("distilbert", "cross-encoder")])
def test_parity_with_transformers(tmp_path: Path, family: str, kind: str) -> None:
    import onnxruntime as ort
    import torch
    import transformers as tf

    from trawl_onnx.export import export_model
    from trawl_onnx.manifest import load_manifest

    folder = _build(tmp_path / "src", family, kind == "cross-encoder")
    out = export_model(folder, tmp_path / "out", exporter="numpy", kind=kind)  # type: ignore[arg-type]
    manifest = load_manifest(out)
    assert manifest.inputs == ["input_ids", "attention_mask"]  # neither has token types
    assert manifest.exporter.startswith("trawl numpy")
    feeds = _feeds(int(json.loads((folder / "config.json").read_text()).get("pad_token_id")
                       or 0))
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run([manifest.output], feeds)[0]
    loader = tf.AutoModelForSequenceClassification if kind == "cross-encoder" else tf.AutoModel
    model = loader.from_pretrained(str(folder), attn_implementation="eager").eval()
    with torch.no_grad():
        ref = getattr(model(**{k: torch.from_numpy(v) for k, v in feeds.items()}),
                      manifest.output).numpy()
    if kind == "cross-encoder":
        assert got.shape == ref.shape == (6, 3)
        diff = np.abs(got - ref)
    else:
        diff = np.abs(got - ref)[feeds["attention_mask"].astype(bool)]
        # DistilBERT takes the BERT fusions; ModernBERT's rotary attention runs unfused
        assert manifest.optimized is (family == "distilbert")
    assert diff.max() <= 1e-5, f"{family} {kind}: max abs diff {diff.max():.2e}"


def test_window_and_rope_thetas_matter(tmp_path: Path) -> None:
    """The parity above is not luck: a wider window or other thetas change the states."""
    import onnxruntime as ort

    from trawl_onnx.graph import build_graph, save_graph

    outputs = []
    for name, overrides in (("base", {}), ("wide", {"local_attention": 64}),
                            ("theta", {"local_rope_theta": 10_000.0})):
        from tests.plugins.tiny_encoders import tiny_modernbert

        folder = tiny_modernbert(tmp_path / name, **overrides)
        model, _, output = build_graph(folder)
        save_graph(model, folder / "model.onnx")
        session = ort.InferenceSession(str(folder / "model.onnx"),
                                       providers=["CPUExecutionProvider"])
        outputs.append(session.run([output], _feeds(0))[0][3])  # the 40-token row
    assert np.abs(outputs[0] - outputs[1]).max() > 1e-3
    assert np.abs(outputs[0] - outputs[2]).max() > 1e-3


def _st_model(folder: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu",
                               model_kwargs={"attn_implementation": "eager"})


@pytest.mark.parametrize("family", ["modernbert", "distilbert"])
def test_dense_and_token_encoders_match_the_reference_libraries(tmp_path: Path,
                                                                family: str) -> None:
    """``onnx-dense`` against sentence-transformers on the same folder, ``onnx-tokens``
    against transformers' token states (special tokens dropped, rows L2-normalised)."""
    import torch
    import transformers as tf

    from tests.plugins.test_onnx import dense
    from tests.plugins.tiny_encoders import sentence_transformers_layout
    from trawl import ComponentContext
    from trawl_onnx.encoders import OnnxTokenEncoder

    folder = sentence_transformers_layout(_build(tmp_path / "src", family, False),
                                          pooling="mean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _st_model(folder).encode(TEXTS, convert_to_numpy=True)
    out = tmp_path / "out"
    from trawl_onnx.export import export_model

    export_model(folder, out, exporter="numpy")
    got = dense(out, threads=2).encode_documents(TEXTS)
    assert np.abs(got - expected).max() <= 1e-5, np.abs(got - expected).max()

    tokens = OnnxTokenEncoder(OnnxTokenEncoder.Config(model=str(out), threads=2,
                                                      skip_punctuation=False),
                              ComponentContext(name="tok"))
    vectors = tokens.encode_documents(TEXTS)
    hf_tok = tf.AutoTokenizer.from_pretrained(str(folder))
    model = tf.AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    for text, got_rows in zip(TEXTS, vectors, strict=True):
        enc = hf_tok(text, return_tensors="pt", return_special_tokens_mask=True,
                     return_token_type_ids=False)
        special = enc.pop("special_tokens_mask")[0].bool().numpy()
        with torch.no_grad():
            states = model(**enc).last_hidden_state[0].numpy()[~special]
        want = states / np.linalg.norm(states, axis=1, keepdims=True)
        assert got_rows.shape == want.shape
        assert np.abs(got_rows - want).max() <= 1e-5


@pytest.mark.slow
def test_modernbert_folder_encodes_on_an_install_without_torch(tmp_path: Path) -> None:
    """The user's install: torch, transformers and sentence-transformers cannot be
    imported; a ModernBERT folder (config.json + safetensors + tokenizer) exports on first
    use and encodes the same vectors sentence-transformers gives (computed here, with torch)."""
    from tests.plugins.tiny_encoders import sentence_transformers_layout, tiny_modernbert

    folder = sentence_transformers_layout(tiny_modernbert(tmp_path / "modernbert"),
                                          pooling="cls")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = _st_model(folder).encode(TEXTS, convert_to_numpy=True)
    code = BLOCK_TORCH + (
        "import json, sys\n"
        "from trawl_onnx.encoders import OnnxDenseEncoder\n"
        "from trawl import ComponentContext\n"
        f"enc = OnnxDenseEncoder(OnnxDenseEncoder.Config(model={str(folder)!r}, threads=2),\n"
        "                       ComponentContext(name='d'))\n"
        f"v = enc.encode_documents({TEXTS!r})\n"
        "print(json.dumps({'vectors': v.tolist(), 'exporter': enc.manifest.exporter,\n"
        "                  'torch': sys.modules.get('torch') is not None}))\n")
    env = {**__import__("os").environ, "TRAWL_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch"] is False and result["exporter"].startswith("trawl numpy")
    got = np.asarray(result["vectors"], dtype=np.float32)
    assert np.abs(got - expected).max() <= 1e-5, np.abs(got - expected).max()
