"""Hugging Face folder → ONNX (token states or classifier logits), optional int8, manifest.

Two exporters write the same graph contract (inputs ``input_ids``/``attention_mask``
[/``token_type_ids``], output ``last_hidden_state`` or ``logits``):

- ``numpy`` (default, no torch): ``graph.py`` builds the graph from ``config.json`` and
  the safetensors weights for the BERT, RoBERTa, MPNet, DistilBERT and ModernBERT families;
- ``torch`` (optional, the ``export`` extra): ``torch.onnx.export`` (TorchScript exporter)
  on a ``transformers`` model loaded with eager attention, for other architectures and as
  a cross-check.

Both graphs are fused offline by onnxruntime's BERT optimizer (Attention, SkipLayerNorm,
BiasGelu). int8 is ``quantize_dynamic(per_channel=True)``: per-tensor int8 loses too much
(mean cosine to fp32 0.956 vs 0.992).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args

from trawl.errors import MissingDependencyError, ModelSourceError

from .heads import append_head, export_source, head_dim, write_head_files
from .manifest import MANIFEST, Kind, Manifest, hash_files, load_manifest, read_hf_info
from .sources import PACKAGED_MODELS, model_slug, resolve_model_folder

log = logging.getLogger("trawl.onnx")
Quantize = Literal["fp32", "int8"]
Exporter = Literal["auto", "numpy", "torch"]
EXPORTERS: tuple[str, ...] = get_args(Exporter)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "config.json")


def cache_root() -> Path:
    """``<cache_dir>/models``: ``TRAWL_CACHE_DIR`` or platformdirs' user cache dir for trawl."""
    from trawl.config import TrawlSettings

    return Path(TrawlSettings().cache_dir).expanduser() / "models"


def cache_folder(name: str, quantize: Quantize = "fp32", kind: Kind = "dense") -> Path:
    """Cache folder of an exported model: ``models/<name>-<fp32|int8>[-cross-encoder]``.

    Packaged models keep their plain name; local folders and hub ids get a short hash of
    where they came from, so two folders both called ``model`` never share a cache entry.
    """
    slug = model_slug(name)
    if name.strip().lower() not in PACKAGED_MODELS:
        source = str(Path(name).expanduser().resolve()) if Path(name).expanduser().exists() \
            else name
        slug = f"{slug}-{hashlib.sha256(source.encode()).hexdigest()[:8]}"
    suffix = "" if kind in ("dense", "multivector") else f"-{kind}"
    return cache_root() / f"{slug}-{quantize}{suffix}"


@contextlib.contextmanager
def file_lock(path: Path, timeout: float = 900.0) -> Iterator[None]:
    """An inter-process lock (so parallel tests or workers do not export twice at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        from filelock import FileLock, Timeout
    except ImportError:  # pragma: no cover - filelock ships with huggingface_hub/torch
        import fcntl

        with path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    try:
        with FileLock(str(path), timeout=timeout):
            yield
    except Timeout as exc:
        raise ModelSourceError(f"timed out after {timeout:.0f}s waiting for lock {path} "
                               "(another process is exporting this model)") from exc


def _require(packages: tuple[str, ...], extra: str, purpose: str) -> None:
    for package in packages:
        try:
            __import__(package)
        except ImportError as exc:
            raise MissingDependencyError(package, extra, purpose=purpose) from exc


def _require_torch(why: str) -> None:
    _require(("torch", "transformers"), "export",
             f"{why} (first pip install torch==2.13.0, a CPU build, then the extra)")


def choose_exporter(folder: Path, exporter: Exporter) -> Literal["numpy", "torch"]:
    """``auto``: the torch-free builder for the families it knows, torch for the rest.

    An architecture the builder does not know, with torch missing, raises
    ``UnsupportedModelError`` naming its ``model_type`` and the torch install.
    """
    from .graph import UnsupportedModelError, read_config

    if exporter not in EXPORTERS:
        raise ModelSourceError(f"unknown exporter {exporter!r}; use one of {EXPORTERS}")
    if exporter == "torch":
        _require_torch("the torch exporter")
        return "torch"
    try:
        read_config(folder)
    except UnsupportedModelError:
        if exporter == "numpy" or importlib.util.find_spec("torch") is None:
            raise
        return "torch"
    return "numpy"


def _torch_export(folder: Path, onnx_path: Path, kind: Kind, opset: int) -> tuple[list[str], str]:
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    loader = AutoModelForSequenceClassification if kind == "cross-encoder" else AutoModel
    try:
        model = loader.from_pretrained(str(folder), attn_implementation="eager")
    except (OSError, ValueError) as exc:
        raise ModelSourceError(f"transformers cannot load the model in {folder}: {exc}") from exc
    model.eval()
    output = "logits" if kind == "cross-encoder" else "last_hidden_state"
    import inspect

    accepts_types = "token_type_ids" in inspect.signature(model.forward).parameters and (
        getattr(model.config, "type_vocab_size", 0) or 0) > 0
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if accepts_types else [])

    class Wrapper(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            out = self.inner(**dict(zip(inputs, args, strict=True)))
            return getattr(out, output)  # type: ignore[no-any-return]

    ids = torch.tensor([[101, 7592, 2088, 102, 0, 0, 0, 0], [101, 7592, 2088, 2003, 1037, 3231,
                                                               2146, 102]], dtype=torch.long)
    mask = (ids != 0).long()
    args = (ids, mask, torch.zeros_like(ids))[: len(inputs)]
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    axes[output] = {0: "batch"} if kind == "cross-encoder" else {0: "batch", 1: "sequence"}
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Wrapper(model), args, str(onnx_path), input_names=inputs,
                          output_names=[output], dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    return inputs, output


def _optimize(onnx_path: Path, out_path: Path, num_heads: int | None, hidden: int) -> bool:
    """Fuse BERT attention/layer-norm/gelu offline with onnxruntime's transformer optimizer."""
    try:
        from onnxruntime.transformers import optimizer
    except ImportError:
        return False
    from onnxruntime.transformers.fusion_options import FusionOptions

    # Symbolic shape inference needs sympy (only torch brings it); the BERT fusions give
    # the same graph without it (checked on MiniLM), so every install takes this path.
    options = FusionOptions("bert")
    options.enable_shape_inference = False
    previous = logging.root.manager.disable
    # The optimizer warns on loggers of its own ("producer not matched", "shape inference
    # disabled") about choices made here on purpose.
    logging.disable(logging.WARNING)
    try:
        model = optimizer.optimize_model(str(onnx_path), model_type="bert",
                                         num_heads=num_heads or 0, hidden_size=hidden,
                                         opt_level=0, use_gpu=False,
                                         optimization_options=options)
        fused = model.get_fused_operator_statistics()
        if fused.get("Attention"):
            model.save_model_to_file(str(out_path))
    except Exception as exc:  # optimizer coverage varies by architecture
        failure: Exception | None = exc
    else:
        failure = None
    finally:
        logging.disable(previous)
    if failure is not None:
        log.warning("onnxruntime transformer optimizer failed (%s); keeping the plain graph",
                    failure)
        return False
    if not fused.get("Attention"):
        log.info("onnxruntime optimizer fused no attention; keeping the plain graph")
        return False
    return True


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic int8, per channel (per-tensor loses too much accuracy on MiniLM)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def _check_feeds(folder: Path) -> dict[str, Any]:
    """Two right-padded rows of in-vocabulary ids, padded with the model's own pad id."""
    import json

    import numpy as np

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    vocab = int(config.get("vocab_size") or 1000)
    pad = int(config.get("pad_token_id") or 0)
    ids = np.array([[5, 17, 29, 41, 53, 65, 77], [5, 11, 19, 0, 0, 0, 0]], dtype=np.int64)
    ids = ids % max(vocab - 3, 1) + 2  # two ids up from 0 keep clear of most special tokens
    lengths = [7, 3]
    mask = np.array([[1] * n + [0] * (7 - n) for n in lengths], dtype=np.int64)
    ids[mask == 0] = pad
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _run_graph(onnx_path: Path, feeds: dict[str, Any], inputs: list[str], output: str) -> Any:
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run([output], {k: feeds[k] for k in inputs})[0])


def _max_diff(a: Any, b: Any, feeds: dict[str, Any], kind: Kind) -> float:
    import numpy as np

    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    if kind != "cross-encoder":  # padded positions carry no meaning
        diff = diff[feeds["attention_mask"].astype(bool)]
    return float(diff.max())


def _check_parity(folder: Path, onnx_path: Path, inputs: list[str], output: str,
                  kind: Kind) -> float:
    """Max abs diff between the graph and the torch model on two padded inputs."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification

    loader = AutoModelForSequenceClassification if kind == "cross-encoder" else AutoModel
    model = loader.from_pretrained(str(folder), attn_implementation="eager").eval()
    feeds = _check_feeds(folder)
    with torch.no_grad():
        ref = getattr(model(**{k: torch.from_numpy(feeds[k]) for k in inputs}), output)
    return _max_diff(_run_graph(onnx_path, feeds, inputs, output), ref.numpy(), feeds, kind)


def _numpy_export(folder: Path, onnx_path: Path, kind: Kind) -> tuple[list[str], str]:
    from .graph import build_graph, save_graph

    model, inputs, output = build_graph(folder, kind)
    save_graph(model, onnx_path)
    return inputs, output


def export_model(model: str | os.PathLike[str], out: str | os.PathLike[str], *,
                 quantize: Quantize = "fp32", kind: Kind = "dense", optimize: bool = True,
                 opset: int = 17, source_name: str | None = None, exporter: Exporter = "auto",
                 cross_check: bool = False) -> Path:
    """Export ``model`` (packaged name, folder or hub id) to ``out`` with a manifest.

    ``exporter``: ``numpy`` builds the graph from the weights without torch, ``torch``
    traces the transformers model, ``auto`` takes numpy when the architecture is one it
    builds. ``cross_check`` also runs the torch model and refuses a graph that differs
    (needs torch; the torch exporter always checks).

    The folder is built beside ``out`` and renamed into place, so a crash never leaves a
    half-written model that looks complete. ``out`` must not already hold other files.
    """
    out_dir = Path(out).expanduser().resolve()
    src_dir = Path(model) if Path(model).is_dir() and (Path(model) / MANIFEST).is_file() \
        else None
    if src_dir is not None:  # already exported: only (re)quantise
        manifest = load_manifest(src_dir)
        if quantize == manifest.quantize and kind == manifest.kind:
            raise ModelSourceError(f"{src_dir} is already an exported {quantize} {kind} model")
        if manifest.quantize == "int8" or quantize == "fp32":
            raise ModelSourceError(f"{src_dir} holds an {manifest.quantize} export; export "
                                   "the original model instead")
        return _quantize_export(src_dir, manifest, out_dir)
    _require(("onnx", "onnxruntime"), "onnx", "exporting a model to ONNX")
    if exporter == "torch" or cross_check:  # before fetching any weights
        _require_torch("the torch exporter" if exporter == "torch" else "--cross-check")
    folder = export_source(resolve_model_folder(model), kind)
    info = read_hf_info(folder)
    if kind == "cross-encoder" and not info.num_labels:
        raise ModelSourceError(f"{folder / 'config.json'} declares no labels: not a sequence "
                               "classification (cross-encoder) model")
    chosen = choose_exporter(folder, exporter)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ModelSourceError(f"export target {out_dir} exists and is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.", dir=out_dir.parent) as tmp:
        work = Path(tmp)
        raw = work / "raw.onnx"
        if chosen == "numpy":
            inputs, output = _numpy_export(folder, raw, kind)
            label = f"trawl numpy graph builder opset {opset}"
        else:
            inputs, output = _torch_export(folder, raw, kind, opset)
            label = f"torch.onnx.export opset {opset}"
        if chosen == "torch" or cross_check:
            diff = _check_parity(folder, raw, inputs, output, kind)
            if diff > 1e-4:
                raise ModelSourceError(f"exported graph of {folder} differs from the torch model "
                                       f"(max abs diff {diff:.2e}); the export is not usable")
        stage = work / "stage"
        stage.mkdir()
        optimized = bool(optimize and kind != "cross-encoder" and info.model_type in (
            "bert", "roberta", "xlm-roberta", "camembert", "distilbert") and _optimize(
                raw, stage / "model.onnx", info.num_heads, info.hidden_size))
        if optimized:
            # A fusion that changed the numbers (e.g. position ids it assumed) is not kept.
            feeds = _check_feeds(folder)
            diff = _max_diff(_run_graph(raw, feeds, inputs, output),
                             _run_graph(stage / "model.onnx", feeds, inputs, output), feeds, kind)
            if diff > 1e-4:
                log.warning("fused graph differs from the plain one (max abs diff %.2e); "
                            "keeping the plain graph", diff)
                optimized = False
        if not optimized:
            shutil.copyfile(raw, stage / "model.onnx")
        output = append_head(folder, stage / "model.onnx", kind, output)
        if quantize == "int8":
            quantize_int8(stage / "model.onnx", work / "int8.onnx")
            os.replace(work / "int8.onnx", stage / "model.onnx")
        for name in TOKENIZER_FILES:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, stage / name)
        write_head_files(folder, stage, kind)
        files = [p.name for p in sorted(stage.iterdir()) if p.is_file()]
        manifest = Manifest.from_info(
            info, source=source_name or str(model), kind=kind, quantize=quantize,
            inputs=inputs, output=output, files=hash_files(stage, files), optimized=optimized,
            exporter=label)
        manifest.dim = head_dim(stage, kind, manifest.dim)
        manifest.write(stage)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(stage, out_dir)
    log.info("exported %s to %s with %s in %.1fs", model, out_dir, chosen,
             time.perf_counter() - started)
    return out_dir


def _quantize_export(src: Path, manifest: Manifest, out_dir: Path) -> Path:
    """int8 from an existing fp32 export (no torch needed)."""
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ModelSourceError(f"export target {out_dir} exists and is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out_dir.name}.", dir=out_dir.parent) as tmp:
        stage = Path(tmp) / "stage"
        stage.mkdir()
        quantize_int8(src / "model.onnx", stage / "model.onnx")
        for name in manifest.files:
            if name != "model.onnx":
                shutil.copyfile(src / name, stage / name)
        manifest.quantize = "int8"
        manifest.files = hash_files(stage, sorted(manifest.files))
        manifest.write(stage)
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(stage, out_dir)
    return out_dir


def _adopt_shipped(model: str, target: Path, quantize: Quantize, kind: Kind) -> Path | None:
    """The repository's own ONNX file for ``quantize`` in the cache, or None (export then).

    A shipped file that fails trawl's checks is skipped with a warning when the folder has
    weights to export from; without weights the check's error is the answer."""
    from .shipped import adopt

    folder = resolve_model_folder(model, onnx=quantize)
    try:
        return adopt(folder, target, source=model, quantize=quantize, kind=kind)
    except ModelSourceError as exc:
        if not any(folder.glob("*.safetensors")):
            raise
        log.warning("not using the ONNX file shipped with %s (%s); exporting from its "
                    "weights instead", model, exc)
        return None


def ensure_exported(model: str, quantize: Quantize = "fp32", kind: Kind = "dense") -> Path:
    """The exported folder for ``model``: an exported folder as is, else the cache entry.

    The first use exports into the cache (under a file lock, so parallel processes wait
    for one export); int8 is quantised from the cached fp32 export. A folder or hub
    repository that ships ONNX files (``onnx/model.onnx``, ``onnx/model_quantized.onnx``...)
    is used without exporting: the file of the requested precision, checked like an export
    (``shipped.py``). The families
    ``graph.py`` builds need no torch; other architectures without torch fail naming their ``model_type``.
    """
    path = Path(model).expanduser()
    if path.is_dir() and (path / MANIFEST).is_file():
        return path
    if path.is_dir() and (path / "model.onnx").is_file() and not (path / "config.json").is_file():
        raise ModelSourceError(f"{path} holds model.onnx but no {MANIFEST}; export it with "
                               f"`trawl export` so trawl knows pooling and max length")
    target = cache_folder(model, quantize, kind)
    if (target / MANIFEST).is_file():
        return target
    with file_lock(target.with_name(target.name + ".lock")):
        if (target / MANIFEST).is_file():
            return target
        # sparse graphs end in trawl's own MLM head: a shipped file is not that graph
        if model.strip().lower() not in PACKAGED_MODELS and kind != "sparse":
            adopted = _adopt_shipped(model, target, quantize, kind)
            if adopted is not None:
                return adopted
        if quantize == "int8":
            fp32 = ensure_exported(model, "fp32", kind)
            log.warning("quantising %s to int8 into %s (first use)", model, target)
            return _quantize_export(fp32, load_manifest(fp32, verify=False), target)
        folder = export_source(resolve_model_folder(model), kind)
        choose_exporter(folder, "auto")  # an unsupported model_type without torch fails here
        log.warning("exporting %s to ONNX into %s (first use, once)", model, target)
        return export_model(model, target, quantize="fp32", kind=kind, source_name=model)
