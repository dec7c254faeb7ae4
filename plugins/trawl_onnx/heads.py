"""What an export keeps of a checkpoint besides the encoder graph and the tokenizer.

ColBERT checkpoints bring markers, lengths and a projection (``colbert.py``); sparse
exports get the masked-LM head and SPLADE pooling in the graph and their settings beside
it (``sparse.py``). ``export_model`` calls these on the folder being staged, so the files
are hashed into the manifest like the graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trawl.errors import ModelSourceError


def read_modules(folder: Path) -> list[dict[str, Any]]:
    """The sentence-transformers modules of ``folder`` (``modules.json``), in order; none
    when the file is absent."""
    path = folder / "modules.json"
    if not path.is_file():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, list):
        raise ModelSourceError(f"{path} is not a list of modules")
    modules = [m for m in data if isinstance(m, dict)]
    return sorted(modules, key=lambda m: int(m.get("idx", 0)))


def export_source(folder: Path, kind: str) -> Path:
    """The folder whose encoder is exported: for a sparse ``Router`` checkpoint (an
    inference-free model) the document route's transformer, else ``folder``."""
    if kind != "sparse":
        return folder
    from .sparse import sparse_layout

    return sparse_layout(folder).model_folder


def append_head(source: Path, onnx_path: Path, kind: str, output: str) -> str:
    """Extend the staged graph for ``kind``; the graph's output name afterwards."""
    if kind != "sparse":
        return output
    from .sparse import append_sparse_head, sparse_layout

    root = source.parent if (source.parent / "router_config.json").is_file() else source
    return append_sparse_head(onnx_path, sparse_layout(root), output)


def head_dim(stage: Path, kind: str, dim: int) -> int:
    """The export's output dimension: the vocabulary for a sparse head, else ``dim``."""
    if kind != "sparse":
        return dim
    from .sparse import SPARSE_CONFIG

    return int(json.loads((stage / SPARSE_CONFIG).read_text(encoding="utf-8"))["vocab_size"])


def write_head_files(source: Path, stage: Path, kind: str) -> list[str]:
    """Write the extra files ``source`` needs at run time into ``stage``; their names."""
    if kind == "cross-encoder":
        return []
    if kind == "sparse":
        from .sparse import write_sparse_files

        return write_sparse_files(source, stage)
    from .colbert import write_colbert_files

    return write_colbert_files(source, stage)
