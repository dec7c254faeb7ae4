"""``onnx-sparse``: learned sparse vectors (SPLADE, inference-free document models).

The export appends the masked-language-model head and SPLADE's pooling to the encoder's
graph, so onnxruntime returns one weight per vocabulary entry and text:
``pool_t log(1 + relu(logits[t]))`` over the tokens ``t`` the attention mask keeps (``max``
pooling, or ``sum``; ``log1p_relu`` applies the log twice, as OpenSearch's models do),
exactly sentence-transformers' ``SpladePooling``. The head's weights come from the same
safetensors file as the encoder (the decoder tied to the word embeddings when the file
leaves it out), so the graph is built without torch wherever the encoder is.

Inference-free models (OpenSearch's document-side encoders): documents go through the
model, queries are only tokenised and weighed from a table: ``idf.json`` beside the model,
or the ``SparseStaticEmbedding`` of a sentence-transformers ``Router`` (query route). The
table is kept in the export as ``trawl_sparse_query.npy``.

Term ids are vocabulary ids, so queries and documents must use one model; the weights are
final (the index adds no IDF: ``metric = "dot"``). ``max_terms`` keeps a document's
``max_terms`` largest weights (sentence-transformers' ``max_active_dims``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from trawl.components import ComponentConfig, ComponentContext, SparseVector
from trawl.errors import ModelSourceError

from .encoders import PROGRESS_MIN_TEXTS, OnnxEncoderConfig, _OnnxEncoderBase
from .runtime import check_texts, progress

SPARSE_CONFIG = "trawl_sparse.json"
SPARSE_QUERY_TABLE = "trawl_sparse_query.npy"
SPARSE_OUTPUT = "sparse_weights"
FloatArray = npt.NDArray[np.float32]


@dataclass
class SparseLayout:
    """Where a sparse checkpoint keeps its parts."""

    model_folder: Path  # config.json + safetensors of the MLM encoder (documents)
    pooling: str = "max"
    activation: str = "relu"
    query_table: FloatArray | None = None  # inference-free: one weight per vocabulary id


def _pooling(folder: Path, layout: SparseLayout) -> None:
    from .manifest import read_json

    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    layout.pooling = str(config.get("pooling_strategy", "max"))
    layout.activation = str(config.get("activation_function", "relu"))
    if layout.pooling not in ("max", "sum") or layout.activation not in ("relu", "log1p_relu"):
        raise ModelSourceError(f"{folder / 'config.json'}: SPLADE pooling "
                               f"{layout.pooling!r}/{layout.activation!r} is not supported "
                               "(max or sum; relu or log1p_relu)")


def _static_table(folder: Path) -> FloatArray:
    from safetensors.numpy import load_file

    path = folder / "model.safetensors"
    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise ModelSourceError(f"cannot read the query weights {path}: {exc}") from exc
    if len(tensors) != 1:
        raise ModelSourceError(f"{path}: expected one weight table, found {sorted(tensors)}")
    return np.asarray(next(iter(tensors.values())), dtype=np.float32).reshape(-1)


def _idf_table(path: Path, model_folder: Path) -> FloatArray:
    """``idf.json`` (token → weight) as a table over the model's vocabulary ids; tokens the
    vocabulary lacks are skipped, as sentence-transformers' ``from_json`` maps them to
    [UNK] whose weight a later token overwrites."""
    from tokenizers import Tokenizer

    try:
        idf = json.loads(path.read_text(encoding="utf-8"))
        tok = Tokenizer.from_file(str(model_folder / "tokenizer.json"))
    except Exception as exc:
        raise ModelSourceError(f"cannot read {path}: {exc}") from exc
    if not isinstance(idf, dict):
        raise ModelSourceError(f"{path} is not a JSON object of token weights")
    table = np.zeros(tok.get_vocab_size(), dtype=np.float32)
    unk = tok.token_to_id("[UNK]")
    for token, weight in idf.items():
        i = tok.token_to_id(token)
        i = unk if i is None else i
        if i is not None:
            try:
                table[i] = float(weight)
            except (TypeError, ValueError) as exc:
                raise ModelSourceError(f"{path}: weight of {token!r} is not a number") from exc
    return table


def sparse_layout(folder: Path) -> SparseLayout:
    """The parts of a sparse checkpoint: a plain masked-LM folder (SPLADE pooling
    defaults), a sentence-transformers ``SparseEncoder`` (``SpladePooling`` module), or
    its ``Router`` form with a static query route (inference-free)."""
    from .heads import read_modules

    modules = read_modules(folder)
    router = folder / "router_config.json"
    if any(str(m.get("type", "")).endswith("Router") for m in modules) and router.is_file():
        from .manifest import read_json

        structure = read_json(router).get("structure") or {}
        document = [folder / name for name in structure.get("document") or []]
        query = [folder / name for name in structure.get("query") or []]
        model = next((p for p in document if (p / "config.json").is_file()
                      and (p / "tokenizer.json").is_file()), None)
        if model is None:
            raise ModelSourceError(f"{router}: no document route with a transformer "
                                   "(config.json + tokenizer.json)")
        layout = SparseLayout(model)
        pooling = next((p for p in document if p.name.endswith("SpladePooling")), None)
        if pooling is not None:
            _pooling(pooling, layout)
        static = next((p for p in query if p.name.endswith("SparseStaticEmbedding")), None)
        if static is not None:
            layout.query_table = _static_table(static)
        elif query and query != document:
            raise ModelSourceError(f"{router}: the query route {[p.name for p in query]} is "
                                   "neither the document model nor a SparseStaticEmbedding")
        return layout
    layout = SparseLayout(folder)
    for m in modules:
        if str(m.get("type", "")).endswith("SpladePooling"):
            _pooling(folder / str(m.get("path", "")), layout)
    if (folder / "idf.json").is_file():
        layout.query_table = _idf_table(folder / "idf.json", folder)
    return layout


# -- the head, appended to an exported graph ------------------------------------------
def _mlm_head(folder: Path) -> dict[str, Any]:
    """The masked-LM head's weights and settings for the BERT, RoBERTa, DistilBERT and
    ModernBERT families (a decoder missing from the file is tied to the word embeddings;
    ModernBERT's head may have no biases)."""
    from .graph import load_weights
    from .manifest import read_json

    config = read_json(folder / "config.json")
    w = load_weights(folder)

    def find(*names: str) -> Any:
        for name in names:
            if name in w:
                return w[name]
        return None

    embeddings = next((v for k, v in w.items() if k.endswith(
        ("embeddings.word_embeddings.weight", "embeddings.tok_embeddings.weight"))), None)
    eps = float(config.get("layer_norm_eps", 1e-12))
    # (dense, norm, decoder weights, decoder biases, activation, LayerNorm eps)
    families = (
        ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm",
         ("cls.predictions.decoder.weight",), ("cls.predictions.bias",
                                               "cls.predictions.decoder.bias"),
         str(config.get("hidden_act", "gelu")), eps),
        ("lm_head.dense", "lm_head.layer_norm", ("lm_head.decoder.weight",),
         ("lm_head.bias", "lm_head.decoder.bias"), "gelu", eps),
        ("vocab_transform", "vocab_layer_norm", ("vocab_projector.weight",),
         ("vocab_projector.bias",), str(config.get("activation", "gelu")), 1e-12),
        ("head.dense", "head.norm", ("decoder.weight",), ("decoder.bias",),
         str(config.get("classifier_activation", "gelu")), float(config.get("norm_eps",
                                                                             1e-5))),
    )
    for dense, norm, decoder, bias, act, norm_eps in families:
        if f"{dense}.weight" in w:
            dec = find(*decoder)
            dec = embeddings if dec is None else dec
            if dec is None:
                break
            hidden = w[f"{dense}.weight"].shape[0]
            zeros = np.zeros(hidden, np.float32)
            return {"dense_w": w[f"{dense}.weight"], "dense_b": find(f"{dense}.bias"),
                    "norm_w": w[f"{norm}.weight"],
                    "norm_b": zeros if find(f"{norm}.bias") is None else w[f"{norm}.bias"],
                    "decoder": dec, "bias": find(*bias), "act": act, "eps": norm_eps}
    raise ModelSourceError(
        f"weights in {folder} have no masked-language-model head (cls.predictions.*, "
        "lm_head.*, vocab_transform/vocab_projector or head.*/decoder): not a SPLADE-style "
        "checkpoint; onnx-sparse needs a model trained for learned sparse retrieval (e.g. "
        "naver/splade-v3)")


def append_sparse_head(onnx_path: Path, layout: SparseLayout,
                       states: str = "last_hidden_state") -> str:
    """Rewrite ``onnx_path`` so it outputs ``sparse_weights`` ``(batch, vocab)``."""
    import onnx
    from onnx import TensorProto, helper

    from .graph import _ACTIVATIONS, _Builder, _linear

    head = _mlm_head(layout.model_folder)
    if head["act"] not in _ACTIVATIONS:
        raise ModelSourceError(f"{layout.model_folder / 'config.json'}: head activation "
                               f"{head['act']!r} is not supported ({', '.join(_ACTIVATIONS)})")
    model = onnx.load(str(onnx_path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    g = _Builder()
    dense_b = head["dense_b"] if head["dense_b"] is not None else \
        np.zeros(head["dense_w"].shape[0], np.float32)
    h = _linear(g, states, head["dense_w"], dense_b, "sparse_head.dense")
    h = _ACTIVATIONS[head["act"]](g, h)
    h = g.op("LayerNormalization", [h, g.const("sparse_head.norm.weight", head["norm_w"]),
                                    g.const("sparse_head.norm.bias", head["norm_b"])],
             axis=-1, epsilon=head["eps"])
    logits = g.op("MatMul", [h, g.const("sparse_head.decoder.weight",
                                        np.ascontiguousarray(head["decoder"].T))])
    if head["bias"] is not None:
        logits = g.op("Add", [logits, g.const("sparse_head.bias", head["bias"])])
    mask = g.op("Cast", [g.op("Unsqueeze", ["attention_mask",
                                            g.const("sparse_head.axis2", [2], np.int64)])],
                to=1)
    x = g.op("Relu", [g.op("Mul", [logits, mask])])
    one = g.const("sparse_head.one", 1.0)
    for _ in range(2 if layout.activation == "log1p_relu" else 1):
        x = g.op("Log", [g.op("Add", [x, one])])
    axes = g.const("sparse_head.seq_axis", [1], np.int64)
    if layout.pooling == "sum":
        g.op("ReduceSum", [x, axes], SPARSE_OUTPUT, keepdims=0)
    elif opset >= 18:
        g.op("ReduceMax", [x, axes], SPARSE_OUTPUT, keepdims=0)
    else:
        g.op("ReduceMax", [x], SPARSE_OUTPUT, axes=[1], keepdims=0)
    # the head's names get a prefix of their own: the encoder graph uses the same scheme
    names = {o for n in g.nodes for o in n.output} | {t.name for t in g.initializers}
    rename = {name: f"sparse_head/{name}" for name in names if name != SPARSE_OUTPUT}
    for node in g.nodes:
        node.name = f"sparse_head/{node.name}"
        node.input[:] = [rename.get(i, i) for i in node.input]
        node.output[:] = [rename.get(o, o) for o in node.output]
    for tensor in g.initializers:
        tensor.name = rename[tensor.name]
    model.graph.node.extend(g.nodes)
    model.graph.initializer.extend(g.initializers)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(
        SPARSE_OUTPUT, TensorProto.FLOAT, ["batch", int(head["decoder"].shape[0])]))
    onnx.save_model(model, str(onnx_path))
    return SPARSE_OUTPUT


def _vocab_size(folder: Path) -> int:
    from .manifest import read_json

    path = folder / "config.json"
    try:
        return int(read_json(path)["vocab_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelSourceError(f"{path} has no valid vocab_size ({exc})") from exc


def write_sparse_files(source: Path, stage: Path) -> list[str]:
    """``trawl_sparse.json`` (and the query table of an inference-free model)."""
    root = source.parent if (source.parent / "router_config.json").is_file() else source
    layout = sparse_layout(root)
    names = [SPARSE_CONFIG]
    (stage / SPARSE_CONFIG).write_text(json.dumps(
        {"pooling": layout.pooling, "activation": layout.activation,
         "inference_free": layout.query_table is not None,
         "vocab_size": _vocab_size(layout.model_folder)},
        indent=2) + "\n", encoding="utf-8")
    if layout.query_table is not None:
        np.save(stage / SPARSE_QUERY_TABLE, layout.query_table, allow_pickle=False)
        names.append(SPARSE_QUERY_TABLE)
    return names


# -- the encoder -------------------------------------------------------------------------
class OnnxSparseConfig(OnnxEncoderConfig):
    # 4, not 16: the head's logits are (batch, tokens, vocab) floats: 125 MB for 4 passages
    # of 256 tokens over BERT's 30,522 ids
    batch_size: int = Field(4, ge=1, le=4096, description="texts per onnxruntime call")
    max_terms: int | None = Field(None, ge=1, description=(
        "keep a document's largest `max_terms` weights (term pruning; default: all)"))
    query_max_terms: int | None = Field(None, ge=1, description=(
        "keep a query's largest `query_max_terms` weights (default: all)"))


class OnnxSparseEncoder(_OnnxEncoderBase):
    """Learned sparse vectors: SPLADE (queries and documents through the model) or an
    inference-free model (queries weighed from its table)."""

    kind = "sparse"
    metric: ClassVar[Any] = "dot"  # final weights: no IDF in the index
    export_kind = "sparse"
    Config = OnnxSparseConfig
    config: OnnxSparseConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        from .manifest import read_json

        if self.manifest.output != SPARSE_OUTPUT:
            raise ModelSourceError(f"{self.folder} is a {self.manifest.kind} export, not a "
                                   "sparse one; export it with --kind sparse")
        settings = read_json(self.folder / SPARSE_CONFIG)
        self.query_table: FloatArray | None = None
        if settings.get("inference_free"):
            self.query_table = np.load(self.folder / SPARSE_QUERY_TABLE, allow_pickle=False)
        self._dim = int(settings.get("vocab_size") or self.manifest.dim)

    @property
    def dim(self) -> int:
        return self._dim

    @staticmethod
    def _vector(weights: FloatArray, keep: int | None) -> SparseVector:
        ids = np.flatnonzero(weights > 0)
        if keep is not None and len(ids) > keep:
            top = np.argpartition(-weights[ids], keep - 1)[:keep]
            ids = np.sort(ids[top])
        return SparseVector(indices=ids.astype(np.uint32),
                            values=np.ascontiguousarray(weights[ids], dtype=np.float32))

    def _encode(self, texts: Sequence[Any], prefix: str, keep: int | None,
                show_progress: bool = False) -> list[SparseVector]:
        items = check_texts(texts)
        items = [prefix + t for t in items] if prefix else items
        out: list[SparseVector] = [self._vector(np.zeros(0, np.float32), None)] * len(items)
        if not items:
            return out
        encodings = self.model.encode(items)
        with progress(len(items), show_progress and len(items) >= PROGRESS_MIN_TEXTS,
                      f"encoding sparse ({self.name})") as bar:
            for idx, feeds in self.model.batches(encodings, self.config.batch_size):
                weights = self.model.run(feeds)
                for row, i in enumerate(idx):
                    out[i] = self._vector(weights[row], keep)
                bar.advance(len(idx))
        return out

    def _weigh_queries(self, texts: Sequence[Any]) -> list[SparseVector]:
        """Inference-free queries: each distinct token (no special tokens) weighs its
        table entry, as sentence-transformers' ``SparseStaticEmbedding``."""
        assert self.query_table is not None
        items = check_texts(texts)
        prefix = self.query_prefix
        table = self.query_table
        out = []
        for text in items:
            enc = self.model.spans_tokenizer.encode(prefix + text, add_special_tokens=False)
            ids = np.unique(np.asarray(enc.ids[: self.model.max_length], dtype=np.int64))
            ids = ids[ids < len(table)]
            weights = np.zeros(len(table), dtype=np.float32)
            weights[ids] = table[ids]
            out.append(self._vector(weights, self.config.query_max_terms))
        return out

    def encode_documents(self, texts: Sequence[str], *,
                         show_progress: bool = False) -> list[SparseVector]:
        return self._encode(texts, self.document_prefix, self.config.max_terms,
                            show_progress)

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        if self.query_table is not None:
            return self._weigh_queries(texts)
        return self._encode(texts, self.query_prefix, self.config.query_max_terms)
