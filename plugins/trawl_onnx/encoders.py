"""ONNX encoders: ``onnx-dense`` (pooled sentence vectors) and ``onnx-tokens`` (multi-vector).

Both run the same exported graph (token states, ``last_hidden_state``); only what
happens after it differs. Imported only when one of them is built.
"""

from __future__ import annotations

import string
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field
from tokenizers import Encoding

from trawl.components import QUERY_TIME, ComponentConfig, ComponentContext, Encoder, FloatArray
from trawl.errors import ConfigError, ModelSourceError
from trawl.vectors import l2_normalize

from .export import ensure_exported
from .manifest import Kind
from .runtime import OnnxModel, check_texts, progress
from .sources import DEFAULT_MODEL

PROGRESS_MIN_TEXTS = 256


class OnnxEncoderConfig(ComponentConfig):
    """Options shared by the ONNX encoders."""

    model: str = Field(DEFAULT_MODEL, description=(
        "packaged model name, Hugging Face folder, hub id, or a folder made by `trawl export`"))
    quantize: Literal["fp32", "int8"] = Field(
        "fp32", description="int8 (dynamic, per channel) is ~2x faster at ~0.99 cosine to fp32")
    threads: int | None = Field(None, ge=1, le=256,
                                description="onnxruntime intra-op threads (default: cores, <=8)")
    providers: list[str] | None = Field(
        None, description="onnxruntime execution providers (default: CPUExecutionProvider)")
    device: Literal["cpu", "cuda"] = Field("cpu", description=(
        "where the model runs: 'cuda' uses onnxruntime's CUDAExecutionProvider (needs "
        "onnxruntime-gpu and a CUDA GPU; a typed error says so when it is missing)"),
        json_schema_extra=QUERY_TIME)
    # 16, not 32: the same CPU time per passage on 2 cores, and onnxruntime's arena peaks
    # at 477 instead of 705 MB for 256-token passages (issue 15, docs/design/speed.md)
    batch_size: int = Field(16, ge=1, le=4096, description="texts per onnxruntime call")
    max_length: int | None = Field(
        None, ge=4, description="token window; default: the model's (256 for MiniLM)")
    query_prefix: str | None = Field(None, description=(
        "prepended to queries; default: the model's sentence-transformers query prompt "
        "(`prompts` in config_sentence_transformers.json), '' for none"))
    document_prefix: str | None = Field(None, description=(
        "prepended to documents; default: the model's document prompt, '' for none"))
    query_prompt_name: str | None = Field(None, description=(
        "which of the model's prompts queries take (default: 'query', else the model's "
        "default prompt)"))
    document_prompt_name: str | None = Field(None, description=(
        "which of the model's prompts documents take (default: 'document', 'passage' or "
        "'corpus', else the model's default prompt)"))


class OnnxDenseConfig(OnnxEncoderConfig):
    dim: int | None = Field(None, ge=1, description=(
        "Matryoshka truncation: keep the first `dim` components, then re-normalise "
        "(default: the model's sentence-transformers `truncate_dim`, else all)"))
    normalize: bool | None = Field(None, description=(
        "L2-normalise the output vectors (default: as the model does: a Normalize module "
        "in modules.json, or any folder without modules.json)"))
    pooling: Literal["mean", "cls", "max", "lasttoken"] | None = Field(
        None, description="token pooling; default: the model's 1_Pooling config")


class OnnxTokenConfig(OnnxEncoderConfig):
    query_max_length: int | None = Field(
        None, ge=4, description="token window for queries (default: max_length)")
    skip_punctuation: bool = Field(
        True, description="drop punctuation tokens from documents (ColBERT's skiplist)")
    projection: Path | None = Field(None, description=(
        "optional .npy matrix (hidden, k) applied to token states before normalising"))


# A pipeline that stores token vectors beside dense ones (``hybrid-rerank``: the maxsim
# reranker's token encoder) encodes every chunk with both encoders of one export, one after
# the other. The dense encoder keeps the token states of its last documents here when a
# token encoder of the same export is alive, and that encoder takes them instead of running
# the model again: one onnxruntime pass per chunk instead of two.
_StateKey = tuple[str, int]
#: Token states kept at most per call (a 64-document batch of abstracts needs ~35 MB; 96 MB is
#: 65,536 MiniLM tokens); a bigger call (long documents, or a window in a pipeline without
#: token vectors) keeps none, and its token encoder runs the model itself.
KEEP_STATES_MAX_BYTES = 96 * 1024 * 1024
_shared_lock = threading.Lock()
_token_encoders: weakref.WeakSet[OnnxTokenEncoder] = weakref.WeakSet()
_last_states: dict[_StateKey, tuple[list[str], list[Encoding], list[FloatArray]]] = {}


def _take_states(key: _StateKey, texts: list[str]
                 ) -> tuple[list[Encoding], list[FloatArray]] | None:
    """The kept token states of exactly ``texts`` (removed: they are used once), or None."""
    with _shared_lock:
        found = _last_states.get(key)
        if found is None or found[0] != texts:
            return None
        del _last_states[key]
        return found[1], found[2]


class _OnnxEncoderBase(Encoder):
    Config = OnnxEncoderConfig
    config: OnnxEncoderConfig
    #: the export this encoder runs (``sparse``: with the masked-LM head and pooling)
    export_kind: ClassVar[Kind] = "dense"

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        cfg = self.config
        self.folder = ensure_exported(cfg.model, cfg.quantize, self.export_kind)
        self.model = OnnxModel(self.folder, threads=cfg.threads, providers=cfg.providers,
                               device=cfg.device,
                               max_length=cfg.max_length, owner=f"encoder {self.name!r}")
        self.manifest = self.model.manifest
        if self.manifest.kind == "cross-encoder":
            raise ConfigError(f"encoder {self.name!r}: {self.folder} holds a cross-encoder; "
                              "use it with the 'cross-encoder' reranker")
        try:  # an explicit prefix wins, else the model's sentence-transformers prompts
            self.query_prefix = cfg.query_prefix if cfg.query_prefix is not None else \
                self.manifest.prompt("query", cfg.query_prompt_name)
            self.document_prefix = cfg.document_prefix if cfg.document_prefix is not None \
                else self.manifest.prompt("document", cfg.document_prompt_name)
        except ModelSourceError as exc:
            field = "query_prompt_name" if cfg.query_prompt_name and \
                cfg.query_prompt_name not in self.manifest.prompts else "document_prompt_name"
            raise ConfigError(f"encoder {self.name!r}: field {field!r}: {exc}") from exc

    @property
    def max_length(self) -> int:
        return self.model.max_length

    @property
    def state_key(self) -> _StateKey:
        """Encoders with equal keys compute the same token states for the same text."""
        return (str(self.folder.resolve()), self.model.max_length)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        return self.model.token_spans(text)

    def count_tokens(self, text: str) -> int:
        return len(self.model.spans_tokenizer.encode(text, add_special_tokens=False).ids)

    def close(self) -> None:
        self.model.session = None


class OnnxDenseEncoder(_OnnxEncoderBase):
    """Pooled, normalised sentence vectors from an ONNX export (default all-MiniLM-L6-v2).

    Matches sentence-transformers on the same model (cosine >= 0.9999): truncation uses
    the model's sentence-transformers max length (256), not tokenizer.json's 128.
    """

    kind = "dense"
    Config = OnnxDenseConfig
    config: OnnxDenseConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        # The model's own pooled output (a shipped graph that includes Dense projections
        # after pooling), else trawl pools the token states itself.
        self._pooled_output = self.manifest.pooled_output if self.manifest.pooled_dense \
            else None
        if self.manifest.pooled_dense and self._pooled_output is None:
            raise ConfigError(
                f"encoder {self.name!r}: {self.manifest.source} projects its pooled vector with "
                f"sentence-transformers Dense module(s) {self.manifest.pooled_dense}, which "
                "onnx-dense applies only through a shipped ONNX graph's 'sentence_embedding' "
                "output; its vectors would not be the model's")
        full = (self.manifest.pooled_dim or self.manifest.dim) if self._pooled_output \
            else self.manifest.dim
        if self.config.dim is not None and self.config.dim > full:
            raise ConfigError(f"encoder {self.name!r}: field 'dim' {self.config.dim} exceeds the "
                              f"model's {full} dimensions")
        self._dim = min(self.config.dim or self.manifest.truncate_dim or full, full)
        self.pooling = self.config.pooling or self.manifest.pooling
        self.normalize = self.manifest.normalize if self.config.normalize is None \
            else self.config.normalize
        # sentence-transformers' include_prompt=false: prompt tokens stay out of the pooling
        self._prompt_tokens = {prefix: 0 if self.manifest.include_prompt or not prefix
                               else self._prompt_length(prefix)
                               for prefix in (self.query_prefix, self.document_prefix)}

    def _prompt_length(self, prompt: str) -> int:
        """Tokens of ``prompt`` as it starts a text: its encoding without a trailing special
        token (sentence-transformers' count)."""
        enc = self.model.spans_tokenizer.encode(prompt)
        return len(enc.ids) - (1 if enc.special_tokens_mask and enc.special_tokens_mask[-1]
                               else 0)

    @property
    def dim(self) -> int:
        return self._dim

    def _pool(self, states: npt.NDArray[np.float32], mask: npt.NDArray[np.int64],
              skip: int = 0) -> FloatArray:
        if self.pooling == "cls":
            return states[:, 0]
        if self.pooling == "lasttoken":  # rows are right-padded
            last = np.maximum(mask.sum(axis=1) - 1, 0)
            return np.ascontiguousarray(states[np.arange(len(states)), last])
        if skip:
            mask = mask.copy()
            mask[:, :skip] = 0
        m = mask[..., None].astype(np.float32)
        if self.pooling == "max":
            return np.asarray(np.where(m > 0, states, -1e9).max(axis=1), dtype=np.float32)
        return np.asarray((states * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9),
                          dtype=np.float32)

    def _encode(self, texts: Sequence[Any], prefix: str, show_progress: bool, *,
                documents: bool = False) -> FloatArray:
        items = check_texts(texts)
        out = np.zeros((len(items), self._dim), dtype=np.float32)
        if not items:
            return out
        items = [prefix + t for t in items] if prefix else items
        encodings = self.model.encode(items)
        key = self.state_key
        kept: list[FloatArray] | None = None
        with _shared_lock:
            wanted = any(e.state_key == key for e in _token_encoders)
        if documents and wanted and self._pooled_output is None and \
                sum(len(e.ids) for e in encodings) * self.manifest.dim * 4 <= \
                KEEP_STATES_MAX_BYTES:
            kept = [np.zeros((0, 0), np.float32)] * len(items)
        with progress(len(items), show_progress and len(items) >= PROGRESS_MIN_TEXTS,
                      f"encoding ({self.name})") as bar:
            for idx, feeds in self.model.batches(encodings, self.config.batch_size):
                if self._pooled_output is not None:
                    pooled = self.model.run(feeds, self._pooled_output)
                else:
                    states = self.model.run(feeds)
                    if kept is not None:
                        for row, i in enumerate(idx):
                            kept[i] = states[row, :len(encodings[i].ids)].copy()
                    pooled = self._pool(states, feeds["attention_mask"],
                                        self._prompt_tokens[prefix])
                pooled = pooled[:, : self._dim]
                out[idx] = l2_normalize(pooled) if self.normalize else pooled
                bar.advance(len(idx))
        if kept is not None:
            with _shared_lock:
                _last_states[key] = (items, encodings, kept)
        return out

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> FloatArray:
        return self._encode(texts, self.document_prefix, show_progress, documents=True)

    def encode_queries(self, texts: Sequence[str]) -> FloatArray:
        return self._encode(texts, self.query_prefix, False)


_PUNCT = frozenset(string.punctuation) | frozenset("“”‘’–—…«»·")


class OnnxTokenEncoder(_OnnxEncoderBase):
    """Per-token L2-normalised vectors (ColBERT-style late interaction) from the same export.

    Special tokens and padding are dropped; documents may also drop punctuation tokens.
    Each text gives a float32 ``(t_i, dim)`` array (``(0, dim)`` for an empty text).
    Score with ``trawl.vectors.maxsim_scores``.
    """

    kind = "multivector"
    Config = OnnxTokenConfig
    config: OnnxTokenConfig

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        self._projection: FloatArray | None = None
        from .colbert import ColbertEncoding, load_colbert

        found = load_colbert(self.folder)
        #: PyLate's markers, expansion, skiplist and projection for a ColBERT checkpoint
        self.colbert = ColbertEncoding(self.model, *found) if found is not None else None
        if self.colbert is not None and self.config.projection is not None:
            raise ConfigError(f"encoder {self.name!r}: field 'projection': {self.folder} is a "
                              "ColBERT checkpoint with its own projection; leave it unset")
        if self.config.projection is not None:
            path = self.config.projection
            try:
                matrix = np.load(path, allow_pickle=False).astype(np.float32)
            except (OSError, ValueError) as exc:
                raise ConfigError(f"encoder {self.name!r}: field 'projection': cannot read "
                                  f"{path}: {exc}") from exc
            if matrix.ndim != 2 or matrix.shape[0] != self.manifest.dim:
                raise ConfigError(f"encoder {self.name!r}: field 'projection': {path} has shape "
                                  f"{matrix.shape}, expected ({self.manifest.dim}, k)")
            self._projection = matrix
        qmax = self.config.query_max_length
        if qmax is not None and qmax > self.model.max_length:
            raise ConfigError(f"encoder {self.name!r}: field 'query_max_length' {qmax} exceeds "
                              f"the model's {self.model.max_length}")
        self._query_model_length = qmax
        if self.colbert is not None and qmax is not None:
            self.colbert.spec.query_length = qmax  # the user's query window wins
        with _shared_lock:
            _token_encoders.add(self)

    def close(self) -> None:
        with _shared_lock:
            _token_encoders.discard(self)
        super().close()

    @property
    def dim(self) -> int:
        if self.colbert is not None:
            return self.colbert.dim
        return int(self._projection.shape[1]) if self._projection is not None \
            else self.manifest.dim

    @property
    def max_length(self) -> int:
        if self.colbert is not None:  # chunks fit the checkpoint's document length
            return min(self.model.max_length, self.colbert.spec.document_length)
        return self.model.max_length

    @property
    def state_key(self) -> _StateKey:
        key = super().state_key
        # ColBERT inputs carry markers: no dense encoder's token states are the same
        return (key[0] + "#colbert", key[1]) if self.colbert is not None else key

    def _vectors(self, e: Encoding, states: FloatArray, skip: bool) -> FloatArray:
        """One text's token vectors from its token states (rows in ``e``'s token order)."""
        keep = [j for j, (special, tok) in enumerate(
            zip(e.special_tokens_mask, e.tokens, strict=True))
            if not special and not (skip and tok in _PUNCT)]
        vecs = states[keep]
        if self._projection is not None:
            vecs = vecs @ self._projection
        return l2_normalize(np.ascontiguousarray(vecs, dtype=np.float32))

    def _encode(self, texts: Sequence[Any], prefix: str, *, query: bool,
                show_progress: bool = False) -> list[FloatArray]:
        items = check_texts(texts)
        if not items:
            return []
        items = [prefix + t for t in items] if prefix else items
        if self.colbert is not None:
            with progress(len(items), show_progress and len(items) >= PROGRESS_MIN_TEXTS,
                          f"encoding tokens ({self.name})") as bar:
                return self.colbert.encode(items, query=query,
                                           batch_size=self.config.batch_size,
                                           advance=bar.advance)
        skip = self.config.skip_punctuation and not query
        shared = None if query else _take_states(self.state_key, items)
        if shared is not None:  # the dense encoder of this export just ran these texts
            return [self._vectors(e, st, skip) for e, st in zip(*shared, strict=True)]
        encodings = self.model.encode(items, self._query_model_length if query else None)
        out: list[FloatArray] = [np.zeros((0, self.dim), np.float32)] * len(items)
        with progress(len(items), show_progress and len(items) >= PROGRESS_MIN_TEXTS,
                      f"encoding tokens ({self.name})") as bar:
            for idx, feeds in self.model.batches(encodings, self.config.batch_size):
                states = self.model.run(feeds)
                for row, i in enumerate(idx):
                    out[i] = self._vectors(encodings[i], states[row], skip)
                bar.advance(len(idx))
        return out

    def encode_documents(self, texts: Sequence[str], *,
                         show_progress: bool = False) -> list[FloatArray]:
        return self._encode(texts, self.document_prefix, query=False,
                            show_progress=show_progress)

    def encode_queries(self, texts: Sequence[str]) -> list[FloatArray]:
        return self._encode(texts, self.query_prefix, query=True)
