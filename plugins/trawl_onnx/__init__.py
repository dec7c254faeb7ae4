"""trawl's ONNX plugin: encoders, rerankers, the ``trawl export`` command, model sources.

Only hook implementations live here; components are registered lazily by
``"module:Class"`` so listing plugins never imports onnxruntime or torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trawl


@trawl.hookimpl
def register_encoders(register: Any) -> None:
    register("trawl_onnx.encoders:OnnxDenseEncoder", name="onnx-dense")
    register("trawl_onnx.encoders:OnnxTokenEncoder", name="onnx-tokens")
    register("trawl_onnx.sparse:OnnxSparseEncoder", name="onnx-sparse")


@trawl.hookimpl
def register_rerankers(register: Any) -> None:
    register("trawl_onnx.rerankers:MaxSimReranker", name="maxsim")
    register("trawl_onnx.rerankers:OnnxCrossEncoder", name="cross-encoder")


@trawl.hookimpl
def register_commands(cli: Any) -> None:
    from .cli import export_command, models_command

    cli.add_command(export_command)
    cli.add_command(models_command)


@trawl.hookimpl
def resolve_model_source(name: str) -> Path | None:
    """Packaged model → its folder in site-packages; local folder → itself; hub id → download."""
    from .sources import resolve_model_folder

    return resolve_model_folder(name)
