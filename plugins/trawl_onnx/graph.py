"""Torch-free export: ``config.json`` + safetensors weights (read with numpy) → ONNX graph.

Why hand-built: the graph of a BERT-style encoder is a few dozen well-known operations,
and building it from the weights with ``onnx.helper`` needs neither torch nor
transformers, so any packaged or local model folder exports offline on a plain install.

Families: BERT (``model_type`` ``bert``: all-MiniLM, bge, e5, gte), the RoBERTa family
(``roberta``, ``xlm-roberta``, ``camembert``: position ids count non-padding tokens from
``padding_idx + 1``, as transformers does) and MPNet (``mpnet``: RoBERTa-style positions
plus a relative position bias shared by all layers; the bucket of every (query, key) pair
is precomputed with transformers' arithmetic and sliced to the sequence length),
DistilBERT (``distilbert``: BERT without token types, its own parameter names, a
``pre_classifier`` + ReLU head) and ModernBERT (``modernbert``: pre-norm, rotary positions
with a global and a local theta, every n-th layer global and the others attending within
``local_attention // 2`` tokens, GeGLU MLP, final norm; see the section below). Anything
else raises ``UnsupportedModelError`` naming the ``model_type`` and the torch export.

The nodes follow the pattern onnxruntime's BERT optimizer recognises (MatMul + Add
projections, Reshape/Transpose per head, Div by sqrt(head size), additive mask
``(1 - mask) * min``, Softmax, erf GELU, LayerNormalization), so Attention,
SkipLayerNormalization and BiasGelu fuse exactly as for the torch export (MPNet's bias
term and ModernBERT's rotary attention are outside that pattern: their graphs run unfused,
with onnxruntime's own session-level fusions only).

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
DISTILBERT_TYPES = ("distilbert",)
MODERNBERT_TYPES = ("modernbert",)
SUPPORTED_TYPES = BERT_TYPES + ROBERTA_TYPES + MPNET_TYPES + DISTILBERT_TYPES + MODERNBERT_TYPES
MPNET_BUCKETS = 32  # transformers' MPNetEncoder.compute_position_bias uses 32 buckets
MPNET_MAX_DISTANCE = 128
TORCH_EXPORT_HELP = (
    "export it with torch instead: pip install torch==2.13.0, then pip install "
    "'trawl-rag[export]', then trawl export MODEL --exporter torch --out DIR (and pass model=DIR)")
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
    # ModernBERT only: which layers attend globally, the local window (tokens either side),
    # rope theta of global and local layers, and the classifier head's pooling/activation
    global_layers: tuple[bool, ...] = ()
    local_half_window: int = 0
    rope_theta_global: float = 160_000.0
    rope_theta_local: float = 10_000.0
    classifier_pooling: str = "cls"
    classifier_act: str = "gelu"


def _modernbert_fields(raw: dict[str, Any], path: Path, layers: int) -> dict[str, Any]:
    """Layer types, window and rope thetas from either config.json form: the original
    (``global_attn_every_n_layers``, ``global_rope_theta``, ``local_rope_theta``) or the one
    transformers 5 writes (``layer_types``, ``rope_parameters`` per layer type)."""
    types = raw.get("layer_types")
    if types is None:
        every = int(raw.get("global_attn_every_n_layers") or 3)
        types = ["sliding_attention" if i % every else "full_attention" for i in range(layers)]
    if len(types) != layers or not set(types) <= {"full_attention", "sliding_attention"}:
        raise ModelSourceError(f"{path}: layer_types {types!r} is not {layers} entries of "
                               "'full_attention' / 'sliding_attention'")
    rope = raw.get("rope_parameters") or {}
    thetas = {"full_attention": float(raw.get("global_rope_theta") or 160_000.0),
              "sliding_attention": float(raw.get("local_rope_theta") or 10_000.0)}
    for kind in thetas:
        params = rope.get(kind) or {}
        if params.get("rope_type", "default") != "default":
            raise UnsupportedModelError(
                f"{path}: rope_type {params['rope_type']!r} ({kind}) is not supported by "
                f"trawl's torch-free exporter (only 'default'); {TORCH_EXPORT_HELP}")
        if params.get("rope_theta") is not None:
            thetas[kind] = float(params["rope_theta"])
    if raw.get("rope_scaling"):
        raise UnsupportedModelError(f"{path}: rope_scaling is not supported by trawl's "
                                    f"torch-free exporter; {TORCH_EXPORT_HELP}")
    pooling = str(raw.get("classifier_pooling", "cls"))
    if pooling not in ("cls", "mean"):
        raise UnsupportedModelError(f"{path}: classifier_pooling {pooling!r} is not 'cls' or "
                                    "'mean'")
    return {"global_layers": tuple(t == "full_attention" for t in types),
            "local_half_window": int(raw.get("local_attention", 128)) // 2,
            "rope_theta_global": thetas["full_attention"],
            "rope_theta_local": thetas["sliding_attention"],
            "classifier_pooling": pooling,
            "classifier_act": str(raw.get("classifier_activation", "gelu"))}


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
        if model_type in DISTILBERT_TYPES:  # DistilBERT names its fields differently
            config = EncoderConfig(
                model_type=model_type, hidden_size=int(raw["dim"]), num_heads=int(raw["n_heads"]),
                num_layers=int(raw["n_layers"]), intermediate_act=str(raw.get("activation",
                                                                              "gelu")),
                layer_norm_eps=1e-12,  # fixed in transformers' DistilBERT
                type_vocab_size=0, pad_token_id=int(raw.get("pad_token_id") or 0))
        elif model_type in MODERNBERT_TYPES:
            layers = int(raw["num_hidden_layers"])
            config = EncoderConfig(
                model_type=model_type, hidden_size=int(raw["hidden_size"]),
                num_heads=int(raw["num_attention_heads"]), num_layers=layers,
                intermediate_act=str(raw.get("hidden_activation", "gelu")),
                layer_norm_eps=float(raw.get("norm_eps", 1e-5)), type_vocab_size=0,
                pad_token_id=int(raw["pad_token_id"] if raw.get("pad_token_id") is not None
                                 else 50283),
                **_modernbert_fields(raw, path, layers))
        else:
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
    act_field = {"distilbert": "activation", "modernbert": "hidden_activation"}.get(
        model_type, "hidden_act")
    for field_name, act in ((act_field, config.intermediate_act),
                            ("classifier_activation", config.classifier_act)):
        if act not in _ACTIVATIONS:
            raise UnsupportedModelError(
                f"{path}: {field_name} {act!r} is not supported by trawl's torch-free exporter "
                f"({', '.join(_ACTIVATIONS)}); {TORCH_EXPORT_HELP}")
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
    """Weight lookup that strips the architecture prefix (``bert.``, ``model.``) if any."""

    def __init__(self, weights: dict[str, FloatArray], folder: Path,
                 anchor: str = "embeddings.word_embeddings.weight") -> None:
        self.weights = weights
        self.folder = folder
        anchors = sorted((k for k in weights if k.endswith(anchor)), key=len)
        if not anchors:
            raise ModelSourceError(f"weights in {folder} have no {anchor}; not a checkpoint of "
                                   "the architecture its config.json names")
        self.prefix = anchors[0][: -len(anchor)]

    def __call__(self, name: str) -> FloatArray:
        key = self.prefix + name
        try:
            return self.weights[key]
        except KeyError:
            raise ModelSourceError(f"weights in {self.folder} lack {key!r}") from None

    def has(self, name: str) -> bool:
        return self.prefix + name in self.weights

    def heads(self) -> _Weights:
        """The same weights looked up without the prefix (task heads sit beside the model)."""
        root = _Weights.__new__(_Weights)
        root.weights, root.folder, root.prefix = self.weights, self.folder, ""
        return root


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


# Parameter names of a post-norm layer: (layer prefix, query, key, value, attention out,
# its LayerNorm, feed-forward in, feed-forward out, its LayerNorm)
_LAYER_NAMES = {
    "bert": ("encoder.layer", "attention.self.query", "attention.self.key",
             "attention.self.value", "attention.output.dense", "attention.output.LayerNorm",
             "intermediate.dense", "output.dense", "output.LayerNorm"),
    "mpnet": ("encoder.layer", "attention.attn.q", "attention.attn.k", "attention.attn.v",
              "attention.attn.o", "attention.LayerNorm", "intermediate.dense", "output.dense",
              "output.LayerNorm"),
    "distilbert": ("transformer.layer", "attention.q_lin", "attention.k_lin", "attention.v_lin",
                   "attention.out_lin", "sa_layer_norm", "ffn.lin1", "ffn.lin2",
                   "output_layer_norm"),
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
    heads, size = cfg.num_heads, cfg.hidden_size // cfg.num_heads
    family = cfg.model_type if cfg.model_type in ("mpnet", "distilbert") else "bert"
    layers, *names = _LAYER_NAMES[family]
    p = f"{layers}.{i}"
    split = g.const(f"{p}.split_heads", [0, 0, heads, size], np.int64)

    def linear(y: str, name: str) -> str:
        return _linear(g, y, w(f"{p}.{name}.weight"), w(f"{p}.{name}.bias"), f"{p}.{name}")

    def project(name: str, perm: list[int]) -> str:
        return g.op("Transpose", [g.op("Reshape", [linear(x, name), split])], perm=perm)

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
    x = _layer_norm(g, g.op("Add", [linear(context, names[3]), x]), w, f"{p}.{names[4]}",
                    cfg.layer_norm_eps)
    h = _ACTIVATIONS[cfg.intermediate_act](g, linear(x, names[5]))
    return _layer_norm(g, g.op("Add", [linear(h, names[6]), x]), w, f"{p}.{names[7]}",
                       cfg.layer_norm_eps)


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
    if "pre_classifier.weight" in raw:  # DistilBERT: pre_classifier + ReLU + classifier
        first = g.op("Relu", [_linear(g, first, raw["pre_classifier.weight"],
                                      raw["pre_classifier.bias"], "pre_classifier")])
    elif "classifier.weight" not in raw:
        raise ModelSourceError(f"weights in {w.folder} have no classifier head "
                               "(classifier.weight or classifier.out_proj.weight); not a "
                               "cross-encoder checkpoint")
    elif w.has("pooler.dense.weight"):
        first = g.op("Tanh", [_linear(g, first, w("pooler.dense.weight"), w("pooler.dense.bias"),
                                      "pooler.dense")])
    return g.op("Identity", [_linear(g, first, raw["classifier.weight"], raw["classifier.bias"],
                                     "classifier")], "logits")


# -- ModernBERT ----------------------------------------------------------------------------
# Pre-norm layers (LayerNorm without bias; none before the first attention), fused QKV,
# rotary position embeddings with one theta for global and one for local layers, local
# layers attending to keys at most ``local_attention // 2`` positions away, GeGLU MLP and a
# final LayerNorm. Positions are 0..seq-1 (right padding, as trawl's tokenizer pads).


def _norm(g: _Builder, x: str, w: _Weights, name: str, eps: float) -> str:
    """LayerNorm whose bias is optional (ModernBERT's ``norm_bias`` is false by default)."""
    inputs = [x, g.const(f"{name}.weight", w(f"{name}.weight"))]
    if w.has(f"{name}.bias"):
        inputs.append(g.const(f"{name}.bias", w(f"{name}.bias")))
    return g.op("LayerNormalization", inputs, axis=-1, epsilon=eps)


def _matmul(g: _Builder, x: str, weight: FloatArray, bias: FloatArray | None, name: str) -> str:
    y = g.op("MatMul", [x, g.const(f"{name}.weight", np.ascontiguousarray(weight.T))])
    return y if bias is None else g.op("Add", [y, g.const(f"{name}.bias", bias)])


def _rotary(g: _Builder, theta: float, size: int, name: str) -> tuple[str, str]:
    """``(cos, sin)`` of shape ``[seq, head_size]`` as transformers computes them (float32
    ``position * inv_freq``, the frequencies repeated for both halves)."""
    inv_freq = 1.0 / (theta ** (np.arange(0, size, 2, dtype=np.int64).astype(np.float32)
                                / np.float32(size)))
    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const(f"{name}.seq_axis", 1, np.int64)],
               axis=0)
    positions = g.op("Cast", [g.op("Range", [g.const(f"{name}.zero", 0, np.int64), seq,
                                             g.const(f"{name}.one", 1, np.int64)])], to=1)
    column = g.op("Unsqueeze", [positions, g.const(f"{name}.axis1", [1], np.int64)])
    freqs = g.op("Mul", [column, g.const(f"{name}.inv_freq", inv_freq[None, :])])
    angles = g.op("Concat", [freqs, freqs], axis=-1)
    return g.op("Cos", [angles]), g.op("Sin", [angles])


def _apply_rotary(g: _Builder, x: str, cos: str, sin: str, size: int, name: str) -> str:
    """``x * cos + rotate_half(x) * sin`` with ``rotate_half = concat(-x2, x1)``."""
    axis = g.const(f"{name}.axis", [-1], np.int64)
    mid = g.const(f"{name}.mid", [size // 2], np.int64)
    x1 = g.op("Slice", [x, g.const(f"{name}.start", [0], np.int64), mid, axis])
    x2 = g.op("Slice", [x, mid, g.const(f"{name}.end", [size], np.int64), axis])
    rotated = g.op("Concat", [g.op("Neg", [x2]), x1], axis=-1)
    return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])])


def _modernbert_masks(g: _Builder, half_window: int) -> tuple[str, str]:
    """Additive masks ``[batch, 1, 1|seq, seq]``: padding only (global layers) and padding
    plus ``|query - key| <= half_window`` (local layers), combined as booleans first."""
    keep = g.op("Unsqueeze", ["attention_mask", g.const("mask.axes12", [1, 2], np.int64)])
    keep = g.op("Cast", [keep], to=9)  # BOOL
    zero, low = g.const("mask.zero", 0.0), g.const("mask.min", np.finfo(np.float32).min)
    seq = g.op("Gather", [g.op("Shape", ["input_ids"]), g.const("mask.seq_axis", 1, np.int64)],
               axis=0)
    positions = g.op("Range", [g.const("mask.r0", 0, np.int64), seq,
                               g.const("mask.r1", 1, np.int64)])
    distance = g.op("Abs", [g.op("Sub", [
        g.op("Unsqueeze", [positions, g.const("mask.col", [1], np.int64)]),
        g.op("Unsqueeze", [positions, g.const("mask.row", [0], np.int64)])])])
    window = g.op("LessOrEqual", [distance, g.const("mask.half_window", half_window, np.int64)])
    local = g.op("And", [keep, window])
    return g.op("Where", [keep, zero, low]), g.op("Where", [local, zero, low])


def _modernbert_layer(g: _Builder, w: _Weights, cfg: EncoderConfig, i: int, x: str,
                      mask: str, rope: tuple[str, str]) -> str:
    p = f"layers.{i}"
    heads, size, hidden = cfg.num_heads, cfg.hidden_size // cfg.num_heads, cfg.hidden_size
    eps = cfg.layer_norm_eps
    h = x if i == 0 else _norm(g, x, w, f"{p}.attn_norm", eps)
    qkv, qkv_bias = w(f"{p}.attn.Wqkv.weight"), (
        w(f"{p}.attn.Wqkv.bias") if w.has(f"{p}.attn.Wqkv.bias") else None)
    split = g.const(f"{p}.split_heads", [0, 0, heads, size], np.int64)

    def heads_of(part: int, name: str, rotate: bool) -> str:
        rows = slice(part * hidden, (part + 1) * hidden)
        y = _matmul(g, h, qkv[rows], None if qkv_bias is None else qkv_bias[rows],
                    f"{p}.attn.{name}")
        y = g.op("Transpose", [g.op("Reshape", [y, split])], perm=[0, 2, 1, 3])
        return _apply_rotary(g, y, *rope, size, f"{p}.rope_{name}") if rotate else y

    q, k, v = heads_of(0, "q", True), heads_of(1, "k", True), heads_of(2, "v", False)
    scores = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                          g.const(f"{p}.scale", size ** -0.5)])
    probs = g.op("Softmax", [g.op("Add", [scores, mask])], axis=-1)
    context = g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, g.const(f"{p}.merge_heads", [0, 0, hidden], np.int64)])
    out_bias = w(f"{p}.attn.Wo.bias") if w.has(f"{p}.attn.Wo.bias") else None
    x = g.op("Add", [x, _matmul(g, context, w(f"{p}.attn.Wo.weight"), out_bias,
                                f"{p}.attn.Wo")])
    # GeGLU: Wi's first half is the input, its second half the gate
    h = _norm(g, x, w, f"{p}.mlp_norm", eps)
    wi = w(f"{p}.mlp.Wi.weight")
    wi_bias = w(f"{p}.mlp.Wi.bias") if w.has(f"{p}.mlp.Wi.bias") else None
    inner = len(wi) // 2
    gate_in = _matmul(g, h, wi[:inner], None if wi_bias is None else wi_bias[:inner],
                      f"{p}.mlp.Wi_input")
    gate = _matmul(g, h, wi[inner:], None if wi_bias is None else wi_bias[inner:],
                   f"{p}.mlp.Wi_gate")
    act = g.op("Mul", [_ACTIVATIONS[cfg.intermediate_act](g, gate_in), gate])
    wo_bias = w(f"{p}.mlp.Wo.bias") if w.has(f"{p}.mlp.Wo.bias") else None
    return g.op("Add", [x, _matmul(g, act, w(f"{p}.mlp.Wo.weight"), wo_bias, f"{p}.mlp.Wo")])


def _modernbert_encoder(g: _Builder, w: _Weights, cfg: EncoderConfig) -> str:
    table = g.const("embeddings.tok_embeddings.weight", w("embeddings.tok_embeddings.weight"))
    x = _norm(g, g.op("Gather", [table, "input_ids"]), w, "embeddings.norm", cfg.layer_norm_eps)
    global_mask, local_mask = _modernbert_masks(g, cfg.local_half_window)
    size = cfg.hidden_size // cfg.num_heads
    rope = {True: _rotary(g, cfg.rope_theta_global, size, "rope_global"),
            False: _rotary(g, cfg.rope_theta_local, size, "rope_local")}
    for i, is_global in enumerate(cfg.global_layers):
        x = _modernbert_layer(g, w, cfg, i, x, global_mask if is_global else local_mask,
                              rope[is_global])
    return _norm(g, x, w, "final_norm", cfg.layer_norm_eps)


def _modernbert_classifier(g: _Builder, w: _Weights, cfg: EncoderConfig, states: str) -> str:
    """``ModernBertForSequenceClassification``: cls or masked-mean pooling, ``head`` (dense,
    activation, LayerNorm), ``classifier``."""
    raw = w.weights
    if "classifier.weight" not in raw or "head.dense.weight" not in raw:
        raise ModelSourceError(f"weights in {w.folder} have no classifier head (head.dense, "
                               "classifier); not a cross-encoder checkpoint")
    if cfg.classifier_pooling == "cls":
        pooled = g.op("Gather", [states, g.const("head.first_token", 0, np.int64)], axis=1)
    else:
        m = g.op("Cast", [g.op("Unsqueeze", ["attention_mask",
                                             g.const("head.axis2", [2], np.int64)])], to=1)
        axis = g.const("head.seq_axis", [1], np.int64)
        pooled = g.op("Div", [g.op("ReduceSum", [g.op("Mul", [states, m]), axis], keepdims=0),
                              g.op("ReduceSum", [m, axis], keepdims=0)])
    h = _matmul(g, pooled, raw["head.dense.weight"], raw.get("head.dense.bias"), "head.dense")
    h = _ACTIVATIONS[cfg.classifier_act](g, h)
    h = _norm(g, h, w.heads(), "head.norm", cfg.layer_norm_eps)
    return g.op("Identity", [_matmul(g, h, raw["classifier.weight"], raw.get("classifier.bias"),
                                     "classifier")], "logits")


def build_graph(folder: Path, kind: str = "dense") -> tuple[Any, list[str], str]:
    """The ONNX model for ``folder``: (ModelProto, input names, output name)."""
    from onnx import TensorProto, helper

    cfg = read_config(folder)
    modernbert = cfg.model_type in MODERNBERT_TYPES
    weights = load_weights(folder)
    w = _Weights(weights, folder, "embeddings.tok_embeddings.weight") if modernbert \
        else _Weights(weights, folder)
    use_types = cfg.type_vocab_size > 1
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if use_types else [])
    g = _Builder()
    if modernbert:
        x = _modernbert_encoder(g, w, cfg)
    else:
        x = _embeddings(g, w, cfg, use_types)
        mask = _additive_mask(g)
        bias = _position_bias(g, w, cfg) if cfg.model_type in MPNET_TYPES else None
        for i in range(cfg.num_layers):
            x = _encoder_layer(g, w, cfg, i, x, mask, bias)
    if kind == "cross-encoder":
        output = _modernbert_classifier(g, w, cfg, x) if modernbert else \
            _classifier(g, w, cfg, x)
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
