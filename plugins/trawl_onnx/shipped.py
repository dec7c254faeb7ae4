"""Ready-made ONNX: a model folder (or hub snapshot) that ships its own ONNX files.

Many repositories carry ``onnx/model.onnx`` beside the safetensors weights, often with
quantised variants (``model_quantized.onnx``, ``model_int8.onnx``, ``model_qint8_avx512.onnx``,
``model_O1..O4.onnx``). trawl uses such a file instead of exporting again:

- the file is picked by the requested precision (``FILES``); an int8 request on a
  folder with only the fp32 file quantises that file the way trawl's own exports are
  quantised;
- it is checked like trawl's own exports: the graph's inputs are the tokenizer's
  (``input_ids``, ``attention_mask``, optional ``token_type_ids``, int64), the output the
  kind needs exists with the config's width (token states ``[batch, seq, hidden]`` for
  ``dense``/``multivector``, not a pooled ``[batch, hidden]``; ``logits [batch, labels]``
  for ``cross-encoder``), and two padded rows run through onnxruntime to finite values
  of that shape;
- it is then copied (hard-linked where the file system allows) into trawl's cache with
  the tokenizer files and a ``trawl_manifest.json`` carrying the sha256 of every file, the
  same layout and checks as an export.

No torch anywhere. Names are matched case-sensitively, as the hub stores them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from trawl.errors import ModelSourceError

from .manifest import Kind, Manifest, hash_files, read_hf_info

log = logging.getLogger("trawl.onnx")

# Candidates per precision, best first. fp32: the plain export, then optimum's fp32
# optimisation levels (O4 is fp16, for GPUs). int8: the dynamic-quantised names that
# optimum, sentence-transformers' export_dynamic_quantized_onnx_model and transformers.js use.
FILES: dict[str, tuple[str, ...]] = {
    "fp32": ("model.onnx", "model_O3.onnx", "model_O2.onnx", "model_O1.onnx"),
    "int8": ("model_quantized.onnx", "model_int8.onnx", "model_qint8_avx512_vnni.onnx",
             "model_qint8_avx512.onnx", "model_qint8_arm64.onnx", "model_quint8_avx2.onnx",
             "model_uint8.onnx"),
}
FOLDERS = ("onnx", "")  # hub convention first, then files beside config.json
TOKEN_OUTPUTS = ("last_hidden_state", "token_embeddings")
POOLED_OUTPUT = "sentence_embedding"  # optimum's / sentence-transformers' pooled output
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def choose(names: list[str] | set[str], quantize: Literal["fp32", "int8"]
           ) -> tuple[str, bool] | None:
    """``(relative path, needs int8 quantising)`` of the shipped file for ``quantize``
    among a repository's file ``names`` (posix paths), or None when it ships none."""
    present = set(names)
    for precision in (quantize, "fp32") if quantize == "int8" else (quantize,):
        for folder in FOLDERS:
            for name in FILES[precision]:
                path = str(PurePosixPath(folder) / name) if folder else name
                if path in present:
                    return path, precision != quantize
    return None


def shipped_file(folder: Path, quantize: Literal["fp32", "int8"]) -> tuple[Path, bool] | None:
    """The shipped ONNX file of a local folder for ``quantize`` (see ``choose``)."""
    names = [str(PurePosixPath(d) / n) if d else n
             for d in FOLDERS for n in FILES["fp32"] + FILES["int8"]
             if (folder / d / n).is_file()]
    found = choose(names, quantize)
    return None if found is None else (folder / found[0], found[1])


def _dims(value_info: Any) -> list[int | str]:
    shape = value_info.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def inspect(path: Path, kind: Kind, hidden: int, labels: int | None
            ) -> tuple[list[str], str, list[str], str | None]:
    """``(inputs, output, external data files, pooled output)`` of a shipped graph, or a
    clear error; the pooled output is a rank-2 ``sentence_embedding`` when there is one."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelSourceError(f"cannot read ONNX file {path}: {exc}") from exc
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    names = [i.name for i in inputs]
    unknown = [n for n in names if n not in INPUTS]
    if unknown or not {"input_ids", "attention_mask"} <= set(names):
        raise ModelSourceError(
            f"{path}: graph inputs {names} are not what trawl feeds (input_ids, "
            "attention_mask, optional token_type_ids); export the folder with `trawl export`")
    for i in inputs:
        if i.type.tensor_type.elem_type != onnx.TensorProto.INT64:
            raise ModelSourceError(f"{path}: input {i.name!r} is not int64; export the folder "
                                   "with `trawl export`")
    outputs = {o.name: o for o in graph.output}
    if kind == "cross-encoder":
        if "logits" not in outputs:
            raise ModelSourceError(f"{path}: no 'logits' output (outputs: {sorted(outputs)}); "
                                   "not a sequence-classification (cross-encoder) export")
        output, width, rank = "logits", labels, 2
    else:
        found = [n for n in TOKEN_OUTPUTS if n in outputs]
        if not found:
            raise ModelSourceError(
                f"{path}: no token-state output ({' or '.join(TOKEN_OUTPUTS)}; outputs: "
                f"{sorted(outputs)}); a graph with only a pooled sentence embedding cannot "
                "serve trawl's pooling or token vectors; export the folder with `trawl export`")
        output, width, rank = found[0], hidden, 3
    dims = _dims(outputs[output])
    if len(dims) != rank or (isinstance(dims[-1], int) and width and dims[-1] != width):
        raise ModelSourceError(f"{path}: output {output!r} has shape {dims}, expected rank "
                               f"{rank} with last dimension {width} (config.json)")
    external = sorted({entry.value for init in graph.initializer for entry in init.external_data
                       if entry.key == "location"})
    pooled = POOLED_OUTPUT if kind != "cross-encoder" and POOLED_OUTPUT in outputs and \
        len(_dims(outputs[POOLED_OUTPUT])) == 2 else None
    return names, output, external, pooled


def _smoke_run(path: Path, feeds: dict[str, Any], inputs: list[str], output: str,
               expected: tuple[int, ...], source: Path, pooled: str | None) -> int | None:
    """Two padded rows through onnxruntime: the shape the manifest promises, finite values
    (``source``: the shipped file, named in errors). Returns the pooled output's width."""
    import numpy as np
    import onnxruntime as ort

    names = [output] + ([pooled] if pooled else [])
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs = [np.asarray(o) for o in session.run(names, {k: feeds[k] for k in inputs})]
    except Exception as exc:
        raise ModelSourceError(f"onnxruntime cannot run {source}: {exc}") from exc
    for name, out, shape in zip(names, outs, [expected, (2, None)], strict=False):
        if len(out.shape) != len(shape) or any(
                want is not None and got != want for got, want in zip(out.shape, shape,
                                                                       strict=True)) or \
                not np.isfinite(out).all():
            raise ModelSourceError(f"{source}: output {name!r} of two test rows has shape "
                                   f"{out.shape} (expected {expected if name == output else '(2, dim)'}) "
                                   "or non-finite values")
    return int(outs[1].shape[1]) if pooled else None


def _link_or_copy(src: Path, dst: Path) -> None:
    src = src.resolve()  # hub snapshots hold symlinks into the blob store
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def adopt(folder: Path, out_dir: Path, *, source: str, quantize: Literal["fp32", "int8"],
          kind: Kind) -> Path | None:
    """Put ``folder``'s shipped ONNX for ``quantize`` into ``out_dir`` with a manifest.

    Returns None when the folder ships no ONNX file (the caller exports instead).
    """
    from .export import TOKENIZER_FILES, _check_feeds, quantize_int8
    from .heads import write_head_files

    found = shipped_file(folder, quantize)
    if found is None:
        return None
    path, needs_quantizing = found
    info = read_hf_info(folder)
    if kind == "cross-encoder" and not info.num_labels:
        raise ModelSourceError(f"{folder / 'config.json'} declares no labels: not a sequence "
                               "classification (cross-encoder) model")
    inputs, output, external, pooled = inspect(path, kind, info.hidden_size, info.num_labels)
    if not info.pooled_dense:
        pooled = None  # trawl's own pooling gives the same vector and keeps token states
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.", dir=out_dir.parent) as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        for name in external:  # onnxruntime finds external data beside the graph
            if "/" in name or "\\" in name or name.startswith(".") or \
                    not (path.parent / name).is_file():
                raise ModelSourceError(f"{path}: external data {name!r} is missing or not a "
                                       "plain file name beside the graph")
            _link_or_copy(path.parent / name, stage / name)
        if needs_quantizing:
            if external:
                raise ModelSourceError(f"{path}: quantising a graph with external data is not "
                                       "supported; ask for fp32 or ship an int8 file")
            quantize_int8(path.resolve(), stage / "model.onnx")
        else:
            _link_or_copy(path, stage / "model.onnx")
        feeds = _check_feeds(folder)
        width = int(info.num_labels or 1) if kind == "cross-encoder" else info.hidden_size
        expected = (2, width) if kind == "cross-encoder" else (2, 7, width)
        pooled_dim = _smoke_run(stage / "model.onnx", feeds, inputs, output, expected, path,
                                pooled)
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, stage / name)
        write_head_files(folder, stage, kind)
        files = [p.name for p in sorted(stage.iterdir()) if p.is_file()]
        relative = path.relative_to(folder).as_posix()
        label = f"ready-made {relative}" + (" quantised to int8 by trawl"
                                            if needs_quantizing else "")
        manifest = Manifest.from_info(
            info, source=source, kind=kind, quantize=quantize,
            inputs=[n for n in ("input_ids", "attention_mask", "token_type_ids")
                    if n in inputs],
            output=output, files=hash_files(stage, files), optimized=False, exporter=label)
        manifest.pooled_output, manifest.pooled_dim = pooled, pooled_dim
        manifest.write(stage)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(stage, out_dir)
    log.warning("using %s shipped with %s (no export) from %s", relative, source, out_dir)
    return out_dir
