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
Pooling = Literal["mean", "cls", "max"]
Kind = Literal["dense", "multivector", "cross-encoder"]


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
    normalize = False
    modules_path = folder / "modules.json"
    if modules_path.is_file():
        try:
            modules = json.loads(modules_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelSourceError(f"cannot read {modules_path}: {exc}") from exc
        for module in modules:
            kind = str(module.get("type", ""))
            if kind.endswith("Pooling"):
                pconf = folder / module.get("path", "1_Pooling") / "config.json"
                if pconf.is_file():
                    p = read_json(pconf)
                    if p.get("pooling_mode_cls_token"):
                        pooling = "cls"
                    elif p.get("pooling_mode_max_tokens"):
                        pooling = "max"
                    else:
                        pooling = "mean"
            elif kind.endswith("Normalize"):
                normalize = True
    else:
        normalize = True  # a plain encoder used for retrieval: cosine is the norm
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
