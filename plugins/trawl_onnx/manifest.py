"""The manifest written next to an exported model, and what a Hugging Face folder says.

``trawl_manifest.json`` records where the model came from and how to use it (pooling,
normalisation, max length, dims) plus the sha256 of every file; a folder whose files
do not match their manifest is refused (a half-copied or edited model must not load).
No heavy imports here.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from trawl.errors import ModelSourceError

MANIFEST = "trawl_manifest.json"
MANIFEST_VERSION = 1
Pooling = Literal["mean", "cls", "max", "lasttoken"]
POOLING_MODES: tuple[str, ...] = ("mean", "cls", "max", "lasttoken")
# sentence-transformers' older 1_Pooling/config.json: one boolean per mode
_LEGACY_POOLING = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                   "pooling_mode_mean_tokens": "mean",
                   "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                   "pooling_mode_weightedmean_tokens": "weightedmean",
                   "pooling_mode_lasttoken": "lasttoken"}
# encode_document takes the first of these prompts the model has (sentence-transformers' order)
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")
Kind = Literal["dense", "multivector", "cross-encoder", "sparse"]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelSourceError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelSourceError(f"{path} is not a JSON object")
    return data


@dataclass
class ModelInfo:
    """What a Hugging Face / sentence-transformers folder says about using the model."""

    hidden_size: int
    max_length: int
    pooling: Pooling = "mean"
    normalize: bool = True
    num_labels: int | None = None
    model_type: str = "bert"
    num_heads: int | None = None
    max_position_embeddings: int | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    truncate_dim: int | None = None
    include_prompt: bool = True
    pooled_dense: list[str] = field(default_factory=list)


def read_pooling(path: Path) -> tuple[Pooling, bool]:
    """``(mode, include_prompt)`` from a ``1_Pooling/config.json`` in either form: the one
    sentence-transformers writes now (``"pooling_mode": "mean"``) or the older booleans
    (``"pooling_mode_mean_tokens": true``). Combined or unsupported modes are refused: the
    vectors would silently differ from the model's."""
    p = read_json(path)
    mode = p.get("pooling_mode")
    if mode is None:
        modes = [name for key, name in _LEGACY_POOLING.items() if p.get(key)]
        mode = modes if len(modes) != 1 else modes[0]
        if not modes:
            mode = "mean"
    if isinstance(mode, list) and len(mode) == 1:
        mode = mode[0]
    if not isinstance(mode, str) or mode not in POOLING_MODES:
        raise ModelSourceError(
            f"{path}: pooling mode {mode!r} is not supported by trawl's ONNX encoders "
            f"(one of {', '.join(POOLING_MODES)})")
    return mode, bool(p.get("include_prompt", True))  # type: ignore[return-value]


def read_sentence_transformers_config(folder: Path) -> tuple[dict[str, str], str | None,
                                                             int | None]:
    """``(prompts, default_prompt_name, truncate_dim)`` from
    ``config_sentence_transformers.json`` (all empty when the file is absent)."""
    path = folder / "config_sentence_transformers.json"
    if not path.is_file():
        return {}, None, None
    raw = read_json(path)
    prompts_raw = raw.get("prompts") or {}
    if not isinstance(prompts_raw, dict) or not all(
            isinstance(k, str) and (v is None or isinstance(v, str))
            for k, v in prompts_raw.items()):
        raise ModelSourceError(f"{path}: field 'prompts' is not an object of strings")
    prompts = {k: v or "" for k, v in prompts_raw.items()}
    default = raw.get("default_prompt_name")
    if default is not None and default not in prompts:
        raise ModelSourceError(f"{path}: default_prompt_name {default!r} is not one of the "
                               f"prompts {sorted(prompts)}")
    truncate = raw.get("truncate_dim")
    if truncate is not None and (not isinstance(truncate, int) or truncate < 1):
        raise ModelSourceError(f"{path}: field 'truncate_dim' {truncate!r} is not a positive "
                               "integer")
    return prompts, default, truncate


def read_hf_info(folder: Path) -> ModelInfo:
    """Read ``config.json``, the sentence-transformers files and the tokenizer config.

    Max length comes from ``sentence_bert_config.json`` (``max_seq_length``) when present,
    because that is what sentence-transformers uses: the shipped ``tokenizer.json`` of
    all-MiniLM-L6-v2 truncates at 128 while the model is used with 256.
    """
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ModelSourceError(f"model folder {folder} has no config.json ({config_path})")
    if not (folder / "tokenizer.json").is_file():
        raise ModelSourceError(
            f"model folder {folder} has no tokenizer.json ({folder / 'tokenizer.json'}); "
            "trawl needs the fast-tokenizer file")
    config = read_json(config_path)
    hidden = int(config.get("hidden_size") or config.get("dim") or config.get("d_model") or 0)
    if hidden <= 0:
        raise ModelSourceError(f"{config_path} has no hidden_size")
    max_pos = config.get("max_position_embeddings")
    max_length: int | None = None
    sbert = folder / "sentence_bert_config.json"
    if sbert.is_file():
        max_length = read_json(sbert).get("max_seq_length")
    if max_length is None and (folder / "tokenizer_config.json").is_file():
        value = read_json(folder / "tokenizer_config.json").get("model_max_length")
        if isinstance(value, int) and value < 100_000:
            max_length = value
    if max_length is None:
        max_length = int(max_pos) if max_pos else 512
    if max_pos:
        max_length = min(int(max_length), int(max_pos))
    pooling: Pooling = "mean"
    include_prompt = True
    normalize = False
    seen_pooling = False
    pooled_dense: list[str] = []  # Dense modules after pooling: a projection of the vector
    modules_path = folder / "modules.json"
    if modules_path.is_file():
        try:
            modules = json.loads(modules_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelSourceError(f"cannot read {modules_path}: {exc}") from exc
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Dense") and seen_pooling:
                pooled_dense.append(str(module.get("path", kind)))
            if kind.endswith("Pooling"):
                seen_pooling = True
                pconf = folder / module.get("path", "1_Pooling") / "config.json"
                if pconf.is_file():
                    pooling, include_prompt = read_pooling(pconf)
            elif kind.endswith("Normalize"):
                normalize = True
    else:
        normalize = True  # a plain encoder used for retrieval: cosine is the norm
    prompts, default_prompt, truncate_dim = read_sentence_transformers_config(folder)
    labels = config.get("id2label")
    num_labels = len(labels) if isinstance(labels, dict) else config.get("num_labels")
    if num_labels is None and any(str(a).endswith("ForSequenceClassification")
                                  for a in config.get("architectures") or []):
        num_labels = 2  # transformers leaves its default of two labels out of config.json
    return ModelInfo(
        hidden_size=hidden, max_length=int(max_length), pooling=pooling, normalize=normalize,
        num_labels=num_labels,
        model_type=str(config.get("model_type", "bert")),
        num_heads=config.get("num_attention_heads") or config.get("n_heads"),
        max_position_embeddings=int(max_pos) if max_pos else None,
        prompts=prompts, default_prompt_name=default_prompt, truncate_dim=truncate_dim,
        include_prompt=include_prompt, pooled_dense=pooled_dense,
    )


@dataclass
class Manifest:
    """Contents of ``trawl_manifest.json``."""

    source: str
    kind: Kind
    quantize: Literal["fp32", "int8"]
    pooling: Pooling
    normalize: bool
    max_length: int
    dim: int
    inputs: list[str]
    output: str
    files: dict[str, str] = field(default_factory=dict)
    optimized: bool = False
    version: int = MANIFEST_VERSION
    exporter: str = ""
    # sentence-transformers metadata (absent from manifests written before it was kept)
    prompts: dict[str, str] = field(default_factory=dict)
    default_prompt_name: str | None = None
    truncate_dim: int | None = None
    include_prompt: bool = True
    #: sentence-transformers Dense modules after pooling, which onnx-dense does not apply
    #: itself: it needs a shipped graph's pooled output that includes them
    pooled_dense: list[str] = field(default_factory=list)
    #: a shipped graph's sentence-embedding output (the model's whole pipeline) and its width
    pooled_output: str | None = None
    pooled_dim: int | None = None

    @classmethod
    def from_info(cls, info: ModelInfo, *, source: str, kind: Kind,
                  quantize: Literal["fp32", "int8"], inputs: list[str], output: str,
                  files: dict[str, str], optimized: bool, exporter: str) -> Manifest:
        """The manifest of an ONNX model of the folder ``info`` was read from."""
        return cls(source=source, kind=kind, quantize=quantize, pooling=info.pooling,
                   normalize=info.normalize, max_length=info.max_length,
                   dim=int(info.num_labels or 1) if kind == "cross-encoder" else info.hidden_size,
                   inputs=inputs, output=output, files=files, optimized=optimized,
                   exporter=exporter, prompts=info.prompts,
                   default_prompt_name=info.default_prompt_name,
                   truncate_dim=info.truncate_dim, include_prompt=info.include_prompt,
                   pooled_dense=info.pooled_dense)

    def prompt(self, role: Literal["query", "document"], name: str | None = None) -> str:
        """The prompt put before a text, as sentence-transformers' ``encode_query`` /
        ``encode_document`` choose it: the named one, else ``query`` for queries and for
        documents the first non-empty of ``document``, ``passage``, ``corpus``, else none.

        The default prompt is not used for either role (``encode_query`` and
        ``encode_document`` do not fall back to it); name it to use it. Where ``document``
        is empty or missing and ``passage`` is set (models saved by older
        sentence-transformers), documents take ``passage``: today's ``encode_document``
        would give them no prompt."""
        if name is not None:
            if name not in self.prompts:
                raise ModelSourceError(f"prompt {name!r} is not one of the model's prompts "
                                       f"{sorted(self.prompts) or '(none)'} ({self.source})")
            return self.prompts[name]
        for candidate in ("query",) if role == "query" else DOCUMENT_PROMPT_NAMES:
            if self.prompts.get(candidate):
                return self.prompts[candidate]
        return ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def write(self, folder: Path) -> Path:
        path = folder / MANIFEST
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True) + "\n",
                       encoding="utf-8")
        tmp.replace(path)
        return path


def hash_files(folder: Path, names: list[str]) -> dict[str, str]:
    return {name: sha256_file(folder / name) for name in names}


def load_manifest(folder: Path, *, verify: bool = True) -> Manifest:
    """Read and check a folder's manifest; every listed file must exist with its sha256."""
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelSourceError(
            f"{folder} is not an exported trawl model: {path} is missing "
            f"(run `trawl export MODEL --out {folder}`)")
    data = read_json(path)
    try:
        manifest = Manifest(**data)
    except TypeError as exc:
        raise ModelSourceError(f"{path} is not a trawl model manifest: {exc}") from exc
    if manifest.version != MANIFEST_VERSION:
        raise ModelSourceError(f"{path}: manifest version {manifest.version}, this trawl reads "
                               f"{MANIFEST_VERSION}; re-export the model")
    for required in ("model.onnx", "tokenizer.json"):
        if required not in manifest.files:
            raise ModelSourceError(f"{path} does not list {required}")
    for name, digest in manifest.files.items():
        file = folder / name
        if not file.is_file():
            raise ModelSourceError(f"model file {file} listed in {path} is missing")
        if verify and sha256_file(file) != digest:
            raise ModelSourceError(
                f"model file {file} does not match its manifest {path} (sha256 differs): the "
                "folder was modified or half-copied; re-export it with `trawl export`")
    return manifest
