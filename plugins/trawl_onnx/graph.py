"""Torch-free export: ``config.json`` + safetensors weights (read with numpy) → ONNX graph.

Why hand-built: the graph of a BERT-style encoder is a few dozen well-known operations,
and building it from the weights with ``onnx.helper`` needs neither torch nor
transformers, so any packaged or local model folder exports offline on a plain install.

Families: BERT (``model_type`` ``bert``: all-MiniLM, bge, e5, gte), the RoBERTa family
(``roberta``, ``xlm-roberta``, ``camembert``: position ids count non-padding tokens from
``padding_idx + 1``, as transformers does) and MPNet (``mpnet``: RoBERTa-style positions
plus a relative position bias shared by all layers; the bucket of every (query, key) pair
is precomputed with transformers' arithmetic and sliced to the sequence length). Anything
else raises ``UnsupportedModelError`` naming the ``model_type`` and the torch export.

The nodes follow the pattern onnxruntime's BERT optimizer recognises (MatMul + Add
projections, Reshape/Transpose per head, Div by sqrt(head size), additive mask
``(1 - mask) * min``, Softmax, erf GELU, LayerNormalization), so Attention,
SkipLayerNormalization and BiasGelu fuse exactly as for the torch export (MPNet's bias
term is outside that pattern: its graph runs unfused).

Outputs: ``last_hidden_state`` (dense pooling happens on it, as the folder's
sentence-transformers ``modules.json`` / ``1_Pooling/config.json`` say, and token vectors
are its rows) or, for ``kind="cross-encoder"``, the classifier ``logits``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trawl.errors import ModelSourceError

BERT_TYPES = ("bert",)
ROBERTA_TYPES = ("roberta", "xlm-roberta", "camembert")
MPNET_TYPES = ("mpnet",)
SUPPORTED_TYPES = BERT_TYPES + ROBERTA_TYPES + MPNET_TYPES
MPNET_BUCKETS = 32  # transformers' MPNetEncoder.compute_position_bias uses 32 buckets
MPNET_MAX_DISTANCE = 128
TORCH_EXPORT_HELP = (
    "export it with torch instead: pip install torch==2.13.0, then pip install "
    "'trawl[export]', then trawl export MODEL --exporter torch --out DIR (and pass model=DIR)")
OPSET = 17

FloatArray = npt.NDArray[np.float32]


class UnsupportedModelError(ModelSourceError):
    """The torch-free exporter does not build this architecture (the torch export may)."""


@dataclass
class EncoderConfig:
    """The fields of ``config.json`` the graph needs."""

    model_type: str
    hidden_size: int
    num_heads: int
    num_layers: int
    intermediate_act: str
    layer_norm_eps: float
    type_vocab_size: int
    pad_token_id: int


def read_config(folder: Path) -> EncoderConfig:
    """Read and check ``config.json``; unsupported families fail here, before any weights."""
    from .manifest import read_json

    path = folder / "config.json"
    raw = read_json(path)
    model_type = str(raw.get("model_type", ""))
    if model_type not in SUPPORTED_TYPES:
        raise UnsupportedModelError(
            f"model_type {model_type or '(missing)'!r} in {path} is not supported by trawl's "
            f"torch-free exporter (supported: {', '.join(SUPPORTED_TYPES)}); {TORCH_EXPORT_HELP}")
    position_type = raw.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise UnsupportedModelError(
            f"{path}: position_embedding_type {position_type!r} is not supported by trawl's "
            f"torch-free exporter (only 'absolute'); {TORCH_EXPORT_HELP}")
    try:
        config = EncoderConfig(
            model_type=model_type,
            hidden_size=int(raw["hidden_size"]),
            num_heads=int(raw["num_attention_heads"]),
            num_layers=int(raw["num_hidden_layers"]),
            intermediate_act=str(raw.get("hidden_act", "gelu")),
            layer_norm_eps=float(raw.get("layer_norm_eps", 1e-12)),
            type_vocab_size=int(raw.get("type_vocab_size", 0 if model_type in MPNET_TYPES
                                        else 2)),
            # MPNetEmbeddings pads positions from 1 whatever config.json says
            pad_token_id=1 if model_type in MPNET_TYPES else int(
                raw["pad_token_id"] if raw.get("pad_token_id") is not None
                else 1 if model_type in ROBERTA_TYPES else 0),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelSourceError(f"{path}: missing or invalid field {exc}") from exc
    if config.hidden_size % config.num_heads:
        raise ModelSourceError(f"{path}: hidden_size {config.hidden_size} is not a multiple of "
                               f"num_attention_heads {config.num_heads}")
    if config.intermediate_act not in _ACTIVATIONS:
        raise UnsupportedModelError(
            f"{path}: hidden_act {config.intermediate_act!r} is not supported by trawl's "
            f"torch-free exporter ({', '.join(_ACTIVATIONS)}); {TORCH_EXPORT_HELP}")
    return config


def load_weights(folder: Path) -> dict[str, FloatArray]:
    """All safetensors weights of the folder as float32 numpy arrays (sharded or not)."""
    try:
        from safetensors.numpy import load_file
    except ImportError as exc:
        from trawl.errors import MissingDependencyError

        raise MissingDependencyError("safetensors", "onnx",
                                     purpose="reading model weights for export") from exc
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelSourceError(f"cannot read {index}: {exc}") from exc
        files = sorted({folder / name for name in weight_map.values()})
    else:
        files = [folder / "model.safetensors"]
    missing = [f for f in files if not f.is_file()]
    if missing:
        pickled = [p.name for p in (folder / "pytorch_model.bin",) if p.is_file()]
        hint = (f"the folder only has {pickled[0]} (a pickle, which trawl never loads); "
                f"convert it to safetensors or {TORCH_EXPORT_HELP}") if pickled else \
            "download the model's safetensors weights into the folder"
        raise ModelSourceError(f"model weights {missing[0]} are missing; {hint}")
    weights: dict[str, FloatArray] = {}
    for file in files:
        try:
            tensors = load_file(str(file))
        except Exception as exc:  # bf16 (numpy has no bfloat16), truncated or corrupt files
            raise ModelSourceError(
                f"cannot read weights {file} with numpy ({type(exc).__name__}: {exc}); "
                f"bfloat16 weights need the torch export: {TORCH_EXPORT_HELP}") from exc
        for name, array in tensors.items():
            weights[name] = array.astype(np.float32) if array.dtype.kind == "f" else array
    return weights


class _Builder:
    """Collects nodes and initializers; every op gets a fresh, readable output name."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def const(self, name: str, value: npt.ArrayLike, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None,
           **attrs: Any) -> str:
        from onnx import helper

        self._count += 1
        out = output or f"{op_type.lower()}_{self._count}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=f"{op_type}_{self._count}",
                                           **attrs))
        return out


class _Weights:
    """Weight lookup that strips the architecture prefix (``bert.``, ``roberta.``) if any."""

    def __init__(self, weights: dict[str, FloatArray], folder: Path) -> None:
        self.weights = weights
        self.folder = folder
        anchors = [k for k in weights if k.endswith("embeddings.word_embeddings.weight")]
        if not anchors:
            raise ModelSourceError(f"weights in {folder} have no embeddings.word_embeddings.weight"
                                   "; not a BERT-style encoder checkpoint")
        self.prefix = anchors[0][: -len("embeddings.word_embeddings.weight")]

    def __call__(self, name: str) -> FloatArray:
        key = self.prefix + name
        try:
            return self.weights[key]
        except KeyError:
            raise ModelSourceError(f"weights in {self.folder} lack {key!r}") from None

    def has(self, name: str) -> bool:
        return self.prefix + name in self.weights


def _linear(g: _Builder, x: str, w: FloatArray, b: FloatArray, name: str) -> str:
    """``x @ w.T + b`` as MatMul + Add (the form the optimizer fuses and int8 quantises)."""
    weight = g.const(f"{name}.weight", np.ascontiguousarray(w.T))
    bias = g.const(f"{name}.bias", b)
    return g.op("Add", [g.op("MatMul", [x, weight]), bias])


def _layer_norm(g: _Builder, x: str, w: _Weights, name: str, eps: float,
                output: str | None = None) -> str:
    gamma = g.const(f"{name}.weight", w(f"{name}.weight"))
    beta = g.const(f"{name}.bias", w(f"{name}.bias"))
    return g.op("LayerNormalization", [x, gamma, beta], output, axis=-1, epsilon=eps)


def _gelu_erf(g: _Builder, x: str) -> str:
    half = g.const(f"gelu_half_{len(g.nodes)}", 0.5)
    one = g.const(f"gelu_one_{len(g.nodes)}", 1.0)
    root2 = g.const(f"gelu_sqrt2_{len(g.nodes)}", math.sqrt(2.0))
    erf = g.op("Erf", [g.op("Div", [x, root2])])
    return g.op("Mul", [g.op("Mul", [x, g.op("Add", [erf, one])]), half])


def _gelu_tanh(g: _Builder, x: str) -> str:
    n = len(g.nodes)
    cube = g.op("Mul", [g.op("Mul", [x, x]), x])
    inner = g.op("Add", [x, g.op("Mul", [cube, g.const(f"gelu_c_{n}", 0.044715)])])
    tanh = g.op("Tanh", [g.op("Mul", [inner, g.const(f"gelu_k_{n}", math.sqrt(2.0 / math.pi))])])
    one = g.const(f"gelu_one_{n}", 1.0)
    return g.op("Mul", [g.op("Mul", [x, g.const(f"gelu_half_{n}", 0.5)]),
                        g.op("Add", [tanh, one])])


def _relu(g: _Builder, x: str) -> str:
    return g.op("Relu", [x])


_ACTIVATIONS = {"gelu": _gelu_erf, "gelu_new": _gelu_tanh, "gelu_pytorch_tanh": _gelu_tanh,
                "relu": _relu}


def _embeddings(g: _Builder, w: _Weights, cfg: EncoderConfig, use_types: bool) -> str:
    word = g.op("Gather", [g.const("embeddings.word_embeddings.weight",
                                   w("embeddings.word_embeddings.weight")), "input_ids"])
    types = w("embeddings.token_type_embeddings.weight") if w.has(
        "embeddings.token_type_embeddings.weight") else None
    if use_types and types is not None:
        table = g.const("embeddings.token_type_embeddings.weight", types)
        x = g.op("Add", [word, g.op("Gather", [table, "token_type_ids"])])
    elif types is not None:  # one token type: every token adds row 0
        x = g.op("Add", [word, g.const("embeddings.token_type_row0", types[0])])
    else:
        x = word
    positions = w("embeddings.position_embeddings.weight")
    table = g.const("embeddings.position_embeddings.weight", positions)
    if cfg.model_type in ROBERTA_TYPES + MPNET_TYPES:
        # transformers: position = cumsum(id != pad) * (id != pad) + pad
        pad = g.const("embeddings.padding_idx", cfg.pad_token_id, np.int64)
        keep = g.op("Cast", [g.op("Not", [g.op("Equal", ["input_ids", pad])])],
                    to=7)  # INT64
        count = g.op("CumSum", [keep, g.const("embeddings.cumsum_axis", 1, np.int64)])
        ids = g.op("Add", [g.op("Mul", [count, keep]), pad])
    else:
        # BERT: 0..seq-1, sliced from a constant range like transformers' position_ids buffer
        seq = g.op("Gather", [g.op("Shape", ["input_ids"]),
                              g.const("embeddings.seq_axis", 1, np.int64)], axis=0)
        end = g.op("Unsqueeze", [seq, g.const("embeddings.unsqueeze0", [0], np.int64)])
        ids = g.op("Slice", [g.const("embeddings.position_ids",
                                     np.arange(len(positions))[None, :], np.int64),
                             g.const("embeddings.slice_start", [0], np.int64), end,
                             g.const("embeddings.slice_axis", [1], np.int64)])
    x = g.op("Add", [x, g.op("Gather", [table, ids])])
    return _layer_norm(g, x, w, "embeddings.LayerNorm", cfg.layer_norm_eps)


def _additive_mask(g: _Builder) -> str:
    """``(1 - mask[:, None, None, :]) * float32.min``, the optimizer's classic mask path."""
    m = g.op("Unsqueeze", ["attention_mask", g.const("mask.axis1", [1], np.int64)])
    m = g.op("Unsqueeze", [m, g.const("mask.axis2", [2], np.int64)])
    m = g.op("Cast", [m], to=1)  # FLOAT
    m = g.op("Sub", [g.const("mask.one", 1.0), m])
    return g.op("Mul", [m, g.const("mask.min", np.finfo(np.float32).min)])


# Parameter names inside ``encoder.layer.N``: (query, key, value, attention out, its LayerNorm)
_LAYER_NAMES = {
    "bert": ("attention.self.query", "attention.self.key", "attention.self.value",
             "attention.output.dense", "attention.output.LayerNorm"),
    "mpnet": ("attention.attn.q", "attention.attn.k", "attention.attn.v", "attention.attn.o",
              "attention.LayerNorm"),
}


def relative_position_buckets(length: int, num_buckets: int = MPNET_BUCKETS,
                              max_distance: int = MPNET_MAX_DISTANCE) -> npt.NDArray[np.int64]:
    """MPNet's (T5-style, bidirectional) bucket of ``key - query`` for every pair of
    positions below ``length``; the same arithmetic as transformers, float32 included."""
    position = np.arange(length, dtype=np.int64)
    n = position[:, None] - position[None, :]  # -(memory - context)
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    exact = half // 2
    with np.errstate(divide="ignore"):
        scaled = (np.log(np.maximum(n, 1).astype(np.float32) / np.float32(exact))
                  / np.float32(math.log(max_distance / exact)) * np.float32(half - exact))
    large = np.minimum(exact + scaled.astype(np.int64), half - 1)
    return np.asarray(ret + np.where(n < exact, n, large), dtype=np.int64)


def _position_bias(g: _Builder, w: _Weights, cfg: EncoderConfig) -> str:
    """``[1, heads, seq, seq]`` bias from ``encoder.relative_attention_bias`` (MPNet)."""
    table = w("encoder.relative_attention_bias.weight")  # (buckets, heads)
    limit = len(w("embeddings.position_embeddings.weight"))
    buckets = g.const("encoder.position_buckets", relative_position_buckets(limit), np.int64)
    seq = g.op("Gather", [g.op("Shape", ["input_ids"]),
                          g.const("bias.seq_axis", 1, np.int64)], axis=0)
    end = g.op("Unsqueeze", [seq, g.const("bias.unsqueeze0", [0], np.int64)])
    ends = g.op("Concat", [end, end], axis=0)
    square = g.op("Slice", [buckets, g.const("bias.start", [0, 0], np.int64), ends,
                            g.const("bias.axes", [0, 1], np.int64)])
    values = g.op("Gather", [g.const("encoder.relative_attention_bias.weight", table), square])
    heads_first = g.op("Transpose", [values], perm=[2, 0, 1])
    return g.op("Unsqueeze", [heads_first, g.const("bias.axis0", [0], np.int64)])


def _encoder_layer(g: _Builder, w: _Weights, cfg: EncoderConfig, i: int, x: str,
                   mask: str, bias: str | None) -> str:
    p = f"encoder.layer.{i}"
    heads, size = cfg.num_heads, cfg.hidden_size // cfg.num_heads
    names = _LAYER_NAMES["mpnet" if cfg.model_type in MPNET_TYPES else "bert"]
    split = g.const(f"{p}.split_heads", [0, 0, heads, size], np.int64)

    def project(name: str, perm: list[int]) -> str:
        y = _linear(g, x, w(f"{p}.{name}.weight"), w(f"{p}.{name}.bias"), f"{p}.{name}")
        return g.op("Transpose", [g.op("Reshape", [y, split])], perm=perm)

    q = project(names[0], [0, 2, 1, 3])
    k = project(names[1], [0, 2, 3, 1])
    v = project(names[2], [0, 2, 1, 3])
    scores = g.op("Div", [g.op("MatMul", [q, k]), g.const(f"{p}.scale", math.sqrt(size))])
    if bias is not None:
        scores = g.op("Add", [scores, bias])
    probs = g.op("Softmax", [g.op("Add", [scores, mask])], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, g.const(f"{p}.merge_heads", [0, 0, cfg.hidden_size],
                                                np.int64)])
    out = _linear(g, context, w(f"{p}.{names[3]}.weight"), w(f"{p}.{names[3]}.bias"),
                  f"{p}.{names[3]}")
    x = _layer_norm(g, g.op("Add", [out, x]), w, f"{p}.{names[4]}", cfg.layer_norm_eps)
    h = _linear(g, x, w(f"{p}.intermediate.dense.weight"), w(f"{p}.intermediate.dense.bias"),
                f"{p}.intermediate.dense")
    h = _ACTIVATIONS[cfg.intermediate_act](g, h)
    out = _linear(g, h, w(f"{p}.output.dense.weight"), w(f"{p}.output.dense.bias"),
                  f"{p}.output.dense")
    return _layer_norm(g, g.op("Add", [out, x]), w, f"{p}.output.LayerNorm", cfg.layer_norm_eps)


def _classifier(g: _Builder, w: _Weights, cfg: EncoderConfig, states: str) -> str:
    """Sequence-classification head on the first token: BERT pooler + classifier, or
    RoBERTa's ``classifier.dense`` + tanh + ``classifier.out_proj``."""
    first = g.op("Gather", [states, g.const("head.first_token", 0, np.int64)], axis=1)
    raw = w.weights
    if "classifier.out_proj.weight" in raw:
        h = g.op("Tanh", [_linear(g, first, raw["classifier.dense.weight"],
                                  raw["classifier.dense.bias"], "classifier.dense")])
        return g.op("Identity", [_linear(g, h, raw["classifier.out_proj.weight"],
                                         raw["classifier.out_proj.bias"],
                                         "classifier.out_proj")], "logits")
    if "classifier.weight" not in raw:
        raise ModelSourceError(f"weights in {w.folder} have no classifier head "
                               "(classifier.weight or classifier.out_proj.weight); not a "
                               "cross-encoder checkpoint")
    if w.has("pooler.dense.weight"):
        first = g.op("Tanh", [_linear(g, first, w("pooler.dense.weight"), w("pooler.dense.bias"),
                                      "pooler.dense")])
    return g.op("Identity", [_linear(g, first, raw["classifier.weight"], raw["classifier.bias"],
                                     "classifier")], "logits")


def build_graph(folder: Path, kind: str = "dense") -> tuple[Any, list[str], str]:
    """The ONNX model for ``folder``: (ModelProto, input names, output name)."""
    from onnx import TensorProto, helper

    cfg = read_config(folder)
    w = _Weights(load_weights(folder), folder)
    use_types = cfg.type_vocab_size > 1
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if use_types else [])
    g = _Builder()
    x = _embeddings(g, w, cfg, use_types)
    mask = _additive_mask(g)
    bias = _position_bias(g, w, cfg) if cfg.model_type in MPNET_TYPES else None
    for i in range(cfg.num_layers):
        x = _encoder_layer(g, w, cfg, i, x, mask, bias)
    if kind == "cross-encoder":
        output = _classifier(g, w, cfg, x)
        out_shape: list[str | int] = ["batch", "labels"]
    else:
        output = g.op("Identity", [x], "last_hidden_state")
        out_shape = ["batch", "sequence", cfg.hidden_size]
    graph = helper.make_graph(
        g.nodes, f"trawl-{cfg.model_type}",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
         for name in inputs],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape)],
        initializer=g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="trawl")
    model.ir_version = 8  # readable by every onnxruntime that supports opset 17
    return model, inputs, output


def save_graph(model: Any, path: Path) -> None:
    """Save the model as one file (protobuf caps one file at 2 GB: larger models need the
    torch export, which trawl's manifest does not split either)."""
    import onnx

    size = model.ByteSize()
    if size >= 2_000_000_000:
        raise UnsupportedModelError(f"model is {size / 1e9:.1f} GB, over ONNX's 2 GB single-file "
                                    "limit; trawl exports encoders below that size")
    onnx.save_model(model, str(path))
