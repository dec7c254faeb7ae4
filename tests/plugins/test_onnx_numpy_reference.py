"""Torch-free parity: the exported graph vs a plain numpy forward pass of the same weights.

Runs where torch is absent (a user-like install with the ``onnx`` extra). The random models
are written with ``safetensors.numpy`` alone; the reference below is the textbook encoder
arithmetic (embeddings, post-LayerNorm blocks, softmax attention with an additive mask,
erf GELU, MPNet's relative-position buckets, the classification heads) written straight
in numpy, independently of ``graph.py``'s ONNX node construction. The torch-backed tests in
``test_onnx_export.py`` check the same graphs against transformers itself.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.plugins.conftest_onnx import CAN_EXPORT

pytestmark = pytest.mark.skipif(not CAN_EXPORT, reason="needs the onnx extra")
H, HEADS, FFN, LAYERS, VOCAB, MAXPOS = 48, 4, 96, 2, 300, 80


def _random_model(folder: Path, family: str, classifier: bool, seed: int = 0) -> Path:
    from safetensors.numpy import save_file

    from trawl_onnx.sources import resolve_model_folder

    rng = np.random.default_rng(seed)

    def t(*shape: int, scale: float = 0.2) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    prefix = {"bert": "bert.", "xlm-roberta": "roberta.", "mpnet": "mpnet."}[family] \
        if classifier else ""
    w: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": t(VOCAB, H, scale=1.0),
        "embeddings.position_embeddings.weight": t(MAXPOS, H, scale=1.0),
        "embeddings.LayerNorm.weight": 1 + t(H), "embeddings.LayerNorm.bias": t(H),
    }
    if family != "mpnet":
        w["embeddings.token_type_embeddings.weight"] = t(2 if family == "bert" else 1, H)
    else:
        w["encoder.relative_attention_bias.weight"] = t(32, HEADS, scale=1.0)
    names = ({"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v",
              "o": "attention.attn.o", "ln": "attention.LayerNorm"} if family == "mpnet" else
             {"q": "attention.self.query", "k": "attention.self.key",
              "v": "attention.self.value", "o": "attention.output.dense",
              "ln": "attention.output.LayerNorm"})
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."
        for part in ("q", "k", "v", "o"):
            w[p + names[part] + ".weight"], w[p + names[part] + ".bias"] = t(H, H), t(H)
        w[p + names["ln"] + ".weight"], w[p + names["ln"] + ".bias"] = 1 + t(H), t(H)
        w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"] = t(FFN, H), t(FFN)
        w[p + "output.dense.weight"], w[p + "output.dense.bias"] = t(H, FFN), t(H)
        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"] = 1 + t(H), t(H)
    weights = {prefix + k: v for k, v in w.items()}
    if classifier and family == "bert":
        weights.update({"bert.pooler.dense.weight": t(H, H), "bert.pooler.dense.bias": t(H),
                        "classifier.weight": t(3, H), "classifier.bias": t(3)})
    elif classifier:
        weights.update({"classifier.dense.weight": t(H, H), "classifier.dense.bias": t(H),
                        "classifier.out_proj.weight": t(3, H), "classifier.out_proj.bias": t(3)})
    folder.mkdir(parents=True)
    save_file(weights, str(folder / "model.safetensors"))
    config = {"model_type": family, "hidden_size": H, "num_attention_heads": HEADS,
              "num_hidden_layers": LAYERS, "intermediate_size": FFN, "hidden_act": "gelu",
              "layer_norm_eps": 1e-5, "vocab_size": VOCAB, "max_position_embeddings": MAXPOS,
              "pad_token_id": 0 if family == "bert" else 1,
              "type_vocab_size": {"bert": 2, "xlm-roberta": 1}.get(family, 0)}
    if classifier:
        config["id2label"] = {str(i): f"L{i}" for i in range(3)}
    (folder / "config.json").write_text(json.dumps(config))
    shutil.copyfile(resolve_model_folder("all-MiniLM-L6-v2") / "tokenizer.json",
                    folder / "tokenizer.json")
    return folder


def _layer_norm(x: np.ndarray, g: np.ndarray, b: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def _erf(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf)(x.astype(np.float64))


def _bucket(i: int, j: int) -> int:
    """MPNet/T5 bidirectional bucket of relative position j - i (32 buckets, distance 128)."""
    n = i - j
    ret = 16 if n < 0 else 0
    n = abs(n)
    if n < 8:
        return ret + n
    return ret + min(8 + int(math.log(n / 8) / math.log(128 / 8) * 8), 15)


def numpy_forward(folder: Path, ids: np.ndarray, mask: np.ndarray, types: np.ndarray,
                  classifier: bool) -> np.ndarray:
    from safetensors.numpy import load_file

    cfg = json.loads((folder / "config.json").read_text())
    family, pad = cfg["model_type"], cfg["pad_token_id"]
    raw = {k.split(".", 1)[1] if k.split(".", 1)[0] in ("bert", "roberta", "mpnet") else k: v
           for k, v in load_file(str(folder / "model.safetensors")).items()}
    w = {k: v.astype(np.float64) for k, v in raw.items()}
    batch, seq = ids.shape
    if family == "bert":
        pos = np.tile(np.arange(seq), (batch, 1))
    else:
        keep = (ids != pad).astype(np.int64)
        pos = np.cumsum(keep, axis=1) * keep + pad
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][pos]
    if family != "mpnet":
        x = x + w["embeddings.token_type_embeddings.weight"][types if family == "bert" else 0 * types]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    additive = np.where(mask[:, None, None, :] > 0, 0.0, -1e9)
    bias = 0.0
    if family == "mpnet":
        buckets = np.array([[_bucket(i, j) for j in range(seq)] for i in range(seq)])
        bias = w["encoder.relative_attention_bias.weight"][buckets].transpose(2, 0, 1)[None]
    mp = family == "mpnet"
    d = H // HEADS
    for i in range(LAYERS):
        p = f"encoder.layer.{i}."

        def lin(name: str, h: np.ndarray, p: str = p) -> np.ndarray:
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def heads(h: np.ndarray) -> np.ndarray:
            return h.reshape(batch, seq, HEADS, d).transpose(0, 2, 1, 3)

        q = heads(lin("attention.attn.q" if mp else "attention.self.query", x))
        k = heads(lin("attention.attn.k" if mp else "attention.self.key", x))
        v = heads(lin("attention.attn.v" if mp else "attention.self.value", x))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias + additive
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        ctx = (scores / scores.sum(-1, keepdims=True)) @ v
        ctx = ctx.transpose(0, 2, 1, 3).reshape(batch, seq, H)
        ln = "attention.LayerNorm" if mp else "attention.output.LayerNorm"
        x = _layer_norm(lin("attention.attn.o" if mp else "attention.output.dense", ctx) + x,
                        w[p + ln + ".weight"], w[p + ln + ".bias"])
        h = lin("intermediate.dense", x)
        h = 0.5 * h * (1 + _erf(h / math.sqrt(2)))
        x = _layer_norm(lin("output.dense", h) + x, w[p + "output.LayerNorm.weight"],
                        w[p + "output.LayerNorm.bias"])
    if not classifier:
        return x
    first = x[:, 0]
    if family == "bert":
        pooled = np.tanh(first @ w["pooler.dense.weight"].T + w["pooler.dense.bias"])
        return pooled @ w["classifier.weight"].T + w["classifier.bias"]
    h = np.tanh(first @ w["classifier.dense.weight"].T + w["classifier.dense.bias"])
    return h @ w["classifier.out_proj.weight"].T + w["classifier.out_proj.bias"]


@pytest.mark.parametrize("family", ["bert", "xlm-roberta", "mpnet"])
@pytest.mark.parametrize("kind", ["dense", "cross-encoder"])
def test_graph_matches_a_numpy_forward_pass(tmp_path: Path, family: str, kind: str) -> None:
    import onnxruntime as ort

    from trawl_onnx.export import export_model
    from trawl_onnx.manifest import load_manifest

    classifier = kind == "cross-encoder"
    folder = _random_model(tmp_path / "src", family, classifier)
    out = export_model(folder, tmp_path / "out", exporter="numpy", kind=kind)  # type: ignore[arg-type]
    manifest = load_manifest(out)
    pad = 0 if family == "bert" else 1
    rng = np.random.default_rng(4)
    lengths = [1, 4, 11, 30]
    ids = np.full((len(lengths), max(lengths)), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(2, VOCAB, n)
        mask[row, :n] = 1
    types = np.zeros_like(ids)
    types[:, 6:] = mask[:, 6:]
    feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run([manifest.output], {k: feeds[k] for k in manifest.inputs})[0]
    ref = numpy_forward(folder, ids, mask, types, classifier)
    if classifier:
        diff = np.abs(got - ref)
    else:
        diff = np.abs(got - ref)[mask.astype(bool)]
        assert manifest.optimized is (family != "mpnet")
    assert diff.max() <= 1e-5, f"{family} {kind}: max abs diff {diff.max():.2e}"


def test_reference_buckets_match_the_exporters_table() -> None:
    from trawl_onnx.graph import relative_position_buckets

    table = relative_position_buckets(200)
    mine = np.array([[_bucket(i, j) for j in range(200)] for i in range(200)])
    assert (table == mine).all()
