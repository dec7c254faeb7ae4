"""What an export keeps of a checkpoint besides the graph and the tokenizer.

ColBERT checkpoints bring markers, lengths and a projection (``colbert.py``). Called by
``export_model`` on the folder being staged, so the files are hashed into the manifest
like the graph.
"""

from __future__ import annotations

from pathlib import Path


def write_head_files(source: Path, stage: Path, kind: str) -> list[str]:
    """Write the extra files ``source`` needs at run time into ``stage``; their names."""
    if kind == "cross-encoder":
        return []
    from .colbert import write_colbert_files

    return write_colbert_files(source, stage)
