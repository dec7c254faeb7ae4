"""ColBERT checkpoints (PyLate's layout and Stanford-NLP's) for the ``onnx-tokens`` encoder.

Everything comes from the checkpoint's own files, read once at export time and written
beside the ONNX graph as ``trawl_colbert.json`` (markers, lengths, expansion, skiplist,
as token ids) and ``trawl_colbert.npz`` (the projection), so the encoder at run time needs
neither torch nor the source folder:

* PyLate: ``config_sentence_transformers.json`` (``model_type`` ``ColBERT``:
  ``query_prefix``/``document_prefix`` marker tokens, ``query_length``/``document_length``,
  ``do_query_expansion``, ``attend_to_expansion_tokens``, ``skiplist_words``) and the
  ``Dense`` modules of ``modules.json`` (``1_Dense/``: weight, optional bias, activation,
  optional residual);
* Stanford-NLP: ``config.json`` with ``architectures`` ``HF_ColBERT``, ``linear.weight``
  in the safetensors weights and ``artifact.metadata`` (``query_token_id``,
  ``doc_token_id``, ``query_maxlen``, ``doc_maxlen``, ``attend_to_mask_tokens``), with
  PyLate's defaults where the metadata is silent.

Vectors are PyLate's: a marker token inserted after the first token; queries padded with
[MASK] to ``query_length`` (attention off on the expansion unless the checkpoint attends to
it) and every query position kept; documents truncated to ``document_length``, their
skiplist tokens dropped (PyLate looks skiplist words up as tokens, so a word the vocabulary
lacks maps to [UNK] and [UNK] tokens are dropped too); then the projection and L2
normalisation. The projection runs in numpy after the graph, only on the rows kept.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from trawl.errors import ModelSourceError

COLBERT_CONFIG = "trawl_colbert.json"
COLBERT_WEIGHTS = "trawl_colbert.npz"
FloatArray = npt.NDArray[np.float32]

# PyLate's defaults where a checkpoint does not say
PYLATE_DEFAULTS: dict[str, Any] = {
    "query_prefix": "[Q] ", "document_prefix": "[D] ", "query_length": 32,
    "document_length": 180, "do_query_expansion": True, "attend_to_expansion_tokens": False,
}
STANFORD_MARKERS = ("[unused0]", "[unused1]")
_ACTIVATIONS = {
    "torch.nn.modules.linear.Identity": "identity",
    "torch.nn.modules.activation.Tanh": "tanh",
    "torch.nn.modules.activation.ReLU": "relu",
}


@dataclass
class ColbertSpec:
    """What a ColBERT checkpoint says, as token ids (``None`` marker: no marker)."""

    source: str
    query_marker_id: int | None
    document_marker_id: int | None
    expansion_id: int
    query_length: int
    document_length: int
    query_expansion: bool
    attend_to_expansion: bool
    skiplist_ids: list[int]
    #: activation per Dense layer, in order; weights in ``COLBERT_WEIGHTS``
    activations: list[str] = field(default_factory=list)
    residual: list[bool] = field(default_factory=list)


@dataclass
class DenseLayer:
    weight: FloatArray  # (out, in), as torch stores it
    bias: FloatArray | None
    activation: str
    residual: FloatArray | None  # (out, in) when the residual needs a projection
    use_residual: bool = False

    def __call__(self, x: FloatArray) -> FloatArray:
        y = x @ self.weight.T
        if self.bias is not None:
            y = y + self.bias
        if self.activation == "tanh":
            y = np.tanh(y)
        elif self.activation == "relu":
            y = np.maximum(y, 0)
        if self.use_residual:
            y = y + (x @ self.residual.T if self.residual is not None else x)
        return np.asarray(y, dtype=np.float32)


def _read_json(path: Path) -> dict[str, Any]:
    from .manifest import read_json

    return read_json(path)


def _tokenizer(folder: Path) -> Any:
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    try:
        return Tokenizer.from_file(str(path))
    except Exception as exc:
        raise ModelSourceError(f"cannot read tokenizer {path}: {exc}") from exc


def _special(folder: Path, key: str) -> str | None:
    """A special token (``mask_token``, ``unk_token``) from the tokenizer's config files."""
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            value = _read_json(path).get(key)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                return value
    return None


def _is_stanford(folder: Path) -> bool:
    path = folder / "config.json"
    return path.is_file() and "HF_ColBERT" in (_read_json(path).get("architectures") or [])


def _pylate_config(folder: Path) -> dict[str, Any] | None:
    path = folder / "config_sentence_transformers.json"
    if not path.is_file():
        return None
    config = _read_json(path)
    if config.get("model_type") != "ColBERT" and "query_prefix" not in config:
        return None
    return config


def is_colbert(folder: Path) -> bool:
    """A PyLate or Stanford-NLP ColBERT checkpoint (not a plain encoder)."""
    return _pylate_config(folder) is not None or _is_stanford(folder)


def _dense_layers(folder: Path) -> list[tuple[dict[str, Any], dict[str, FloatArray]]]:
    """``(config, weights)`` of each Dense module listed in ``modules.json``, in order."""
    from safetensors.numpy import load_file

    from .heads import read_modules

    layers = []
    for module in read_modules(folder):
        kind = str(module.get("type", ""))
        if not kind.endswith(".Dense"):
            continue
        sub = folder / str(module.get("path", ""))
        config = _read_json(sub / "config.json")
        weights_path = sub / "model.safetensors"
        if not weights_path.is_file():
            raise ModelSourceError(f"Dense layer {sub} has no model.safetensors (a pickled "
                                   "pytorch_model.bin is never loaded); convert it to "
                                   "safetensors")
        try:
            tensors = load_file(str(weights_path))
        except Exception as exc:
            raise ModelSourceError(f"cannot read {weights_path}: {exc}") from exc
        layers.append((config, {k: v.astype(np.float32) for k, v in tensors.items()}))
    return layers


def read_colbert(folder: Path) -> tuple[ColbertSpec, list[DenseLayer]] | None:
    """The ColBERT settings and projection of a source checkpoint, or ``None`` if it is not
    one. Fails with ``ModelSourceError`` naming the file when one is malformed."""
    pylate = _pylate_config(folder)
    stanford = _is_stanford(folder)
    if pylate is None and not stanford:
        return None
    settings = dict(PYLATE_DEFAULTS)
    layers: list[DenseLayer] = []
    if stanford:
        settings["query_prefix"], settings["document_prefix"] = STANFORD_MARKERS
        meta_path = folder / "artifact.metadata"
        if meta_path.is_file():
            meta = _read_json(meta_path)
            for key, target in (("query_token_id", "query_prefix"),
                                ("doc_token_id", "document_prefix"),
                                ("query_maxlen", "query_length"),
                                ("doc_maxlen", "document_length"),
                                ("attend_to_mask_tokens", "attend_to_expansion_tokens")):
                if meta.get(key) is not None:
                    settings[target] = meta[key]
        from .graph import load_weights

        weights = load_weights(folder)
        linear = next((v for k, v in weights.items() if k.endswith("linear.weight")
                       and "encoder" not in k), None)
        if linear is None:
            raise ModelSourceError(f"{folder / 'config.json'} says HF_ColBERT but the weights "
                                   "have no 'linear.weight' projection")
        layers.append(DenseLayer(linear, None, "identity", None))
    if pylate is not None:
        for key in [*PYLATE_DEFAULTS, "skiplist_words"]:
            if pylate.get(key) is not None:
                settings[key] = pylate[key]
        for config, tensors in _dense_layers(folder):
            where = folder / "modules.json"
            activation = _ACTIVATIONS.get(str(config.get("activation_function",
                                                         "torch.nn.modules.linear.Identity")))
            if activation is None:
                raise ModelSourceError(f"{where}: Dense activation "
                                       f"{config.get('activation_function')!r} is not supported "
                                       f"(supported: {', '.join(_ACTIVATIONS)})")
            if "linear.weight" not in tensors:
                raise ModelSourceError(f"{where}: a Dense layer has no linear.weight")
            use_residual = bool(config.get("use_residual", False))
            layers.append(DenseLayer(tensors["linear.weight"], tensors.get("linear.bias"),
                                     activation, tensors.get("residual.weight"), use_residual))
    tok = _tokenizer(folder)
    unk = _special(folder, "unk_token") or "[UNK]"
    unk_id = tok.token_to_id(unk)

    def marker(text: str) -> int | None:
        if not text:
            return None
        found = tok.token_to_id(text)
        if found is None:
            raise ModelSourceError(f"ColBERT marker {text!r} of {folder} is not a token of "
                                   f"{folder / 'tokenizer.json'}")
        return int(found)

    mask = _special(folder, "mask_token")
    expansion = tok.token_to_id(mask) if mask else None
    if expansion is None:
        expansion = tok.token_to_id(_special(folder, "eos_token") or "") or \
            tok.token_to_id(_special(folder, "pad_token") or "")
    if expansion is None:
        raise ModelSourceError(f"{folder}: the tokenizer has no mask, eos or pad token to "
                               "expand queries with")
    words = settings.get("skiplist_words")
    if words is None:
        words = list(string.punctuation)
    skip = {tok.token_to_id(w) for w in words}
    skiplist = sorted({int(i) for i in skip if i is not None} |
                      ({int(unk_id)} if None in skip and unk_id is not None else set()))
    try:
        spec = ColbertSpec(
            source=str(folder), query_marker_id=marker(str(settings["query_prefix"])),
            document_marker_id=marker(str(settings["document_prefix"])),
            expansion_id=int(expansion), query_length=int(settings["query_length"]),
            document_length=int(settings["document_length"]),
            query_expansion=bool(settings["do_query_expansion"]),
            attend_to_expansion=bool(settings["attend_to_expansion_tokens"])
            and bool(settings["do_query_expansion"]),
            skiplist_ids=skiplist, activations=[lay.activation for lay in layers],
            residual=[lay.use_residual for lay in layers])
    except (TypeError, ValueError) as exc:
        raise ModelSourceError(f"{folder}: invalid ColBERT setting ({exc})") from exc
    if spec.query_length < 4 or spec.document_length < 4:
        raise ModelSourceError(f"{folder}: ColBERT query/document lengths must be >= 4, got "
                               f"{spec.query_length}/{spec.document_length}")
    return spec, layers


def write_colbert_files(source: Path, stage: Path) -> list[str]:
    """Write ``trawl_colbert.json``/``.npz`` into an export being staged (nothing for a
    plain encoder); returns the file names written."""
    found = read_colbert(source)
    if found is None:
        return []
    spec, layers = found
    arrays: dict[str, FloatArray] = {}
    for i, layer in enumerate(layers):
        arrays[f"{i}.weight"] = layer.weight
        if layer.bias is not None:
            arrays[f"{i}.bias"] = layer.bias
        if layer.residual is not None:
            arrays[f"{i}.residual"] = layer.residual
    (stage / COLBERT_CONFIG).write_text(json.dumps(asdict(spec), indent=2) + "\n",
                                        encoding="utf-8")
    with (stage / COLBERT_WEIGHTS).open("wb") as handle:
        np.savez(handle, **arrays)
    return [COLBERT_CONFIG, COLBERT_WEIGHTS]


def load_colbert(folder: Path) -> tuple[ColbertSpec, list[DenseLayer]] | None:
    """The ColBERT settings of an exported folder (``None``: a plain encoder's export)."""
    path = folder / COLBERT_CONFIG
    if not path.is_file():
        return None
    data = _read_json(path)
    try:
        spec = ColbertSpec(**data)
        with np.load(folder / COLBERT_WEIGHTS, allow_pickle=False) as npz:
            arrays = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
        layers = [DenseLayer(arrays[f"{i}.weight"], arrays.get(f"{i}.bias"), act,
                             arrays.get(f"{i}.residual"), res)
                  for i, (act, res) in enumerate(zip(spec.activations, spec.residual,
                                                     strict=True))]
    except (TypeError, KeyError, ValueError, OSError) as exc:
        raise ModelSourceError(f"{path} or {COLBERT_WEIGHTS} beside it is not a trawl ColBERT "
                               f"config ({type(exc).__name__}: {exc}); re-export the model") \
            from exc
    return spec, layers


class ColbertEncoding:
    """PyLate's inputs and outputs around an exported graph (``OnnxModel``)."""

    def __init__(self, model: Any, spec: ColbertSpec, layers: list[DenseLayer]) -> None:
        self.model = model
        self.spec = spec
        self.layers = layers
        self.skip = np.asarray(spec.skiplist_ids, dtype=np.int64)
        self._query_tokenizer: Any = None
        self._query_window = 0
        limit = model.max_length
        for what, length in (("query_length", spec.query_length),
                             ("document_length", spec.document_length)):
            if length > limit:
                raise ModelSourceError(f"{model.folder / COLBERT_CONFIG}: {what} {length} "
                                       f"exceeds the model's {limit} positions")

    @property
    def dim(self) -> int:
        return int(self.layers[-1].weight.shape[0]) if self.layers else \
            int(self.model.manifest.dim)

    def project(self, states: FloatArray) -> FloatArray:
        for layer in self.layers:
            states = layer(states)
        from trawl.vectors import l2_normalize

        return l2_normalize(np.ascontiguousarray(states, dtype=np.float32))

    def _tokenize(self, texts: list[str], window: int, query: bool) -> list[Any]:
        """Documents through the model's tokenizer (which warns once when one is cut);
        queries through a copy of it: ColBERT cuts queries at ``query_length`` by design."""
        if not query:
            return list(self.model.encode(texts, window))
        if self._query_tokenizer is None or self._query_window != window:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_str(self.model.spans_tokenizer.to_str())
            tokenizer.enable_truncation(window)
            self._query_tokenizer, self._query_window = tokenizer, window
        return list(self._query_tokenizer.encode_batch(self.model._cap(texts)))

    def _rows(self, texts: list[str], query: bool
              ) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64],
                              npt.NDArray[np.int64]]]:
        """``(ids, attention, type ids)`` per text, as PyLate's ``tokenize`` builds them."""
        spec = self.spec
        marker = spec.query_marker_id if query else spec.document_marker_id
        length = spec.query_length if query else spec.document_length
        window = length - 1 if marker is not None else length
        rows = []
        for e in self._tokenize(texts, window, query):
            ids = list(e.ids)
            types = list(e.type_ids)
            attention = [1] * len(ids)
            if query and spec.query_expansion and len(ids) < window:
                pad = window - len(ids)
                ids += [spec.expansion_id] * pad
                types += [0] * pad
                attention += [1 if spec.attend_to_expansion else 0] * pad
            if marker is not None:
                ids.insert(1, marker)
                types.insert(1, 0)
                attention.insert(1, 1)
            rows.append((np.asarray(ids, np.int64), np.asarray(attention, np.int64),
                         np.asarray(types, np.int64)))
        return rows

    def _batches(self, rows: list[Any], batch_size: int
                 ) -> Iterator[tuple[npt.NDArray[np.intp], dict[str, Any]]]:
        lengths = np.asarray([len(r[0]) for r in rows], dtype=np.int64)
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = int(lengths[idx].max())
            ids = np.full((len(idx), width), self.spec.expansion_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            types = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(rows[i][0])
                ids[row, :n], mask[row, :n], types[row, :n] = rows[i]
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
            yield idx, {k: feeds[k] for k in self.model.manifest.inputs}

    def encode(self, texts: list[str], *, query: bool, batch_size: int,
               advance: Any = None) -> list[FloatArray]:
        rows = self._rows(texts, query)
        out: list[FloatArray] = [np.zeros((0, self.dim), np.float32)] * len(texts)
        for idx, feeds in self._batches(rows, batch_size):
            states = self.model.run(feeds)
            for row, i in enumerate(idx):
                ids, attention, _ = rows[i]
                if query:
                    keep = np.ones(len(ids), bool) if self.spec.query_expansion \
                        else attention.astype(bool)
                else:
                    keep = ~np.isin(ids, self.skip)
                out[i] = self.project(states[row, :len(ids)][keep])
            if advance is not None:
                advance(len(idx))
        return out
