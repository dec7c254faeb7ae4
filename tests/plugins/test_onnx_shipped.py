"""Ready-made ONNX: a folder laid out like a hub snapshot with an ``onnx/`` directory loads
without export, picks its file by precision, and is checked like trawl's own exports."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.plugins.conftest_onnx import CAN_EXPORT, HAS_TORCH
from tests.plugins.test_onnx import dense
from trawl import ModelSourceError

pytestmark = pytest.mark.skipif(not CAN_EXPORT, reason="needs the onnx extra")
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs the export extra (torch)")
TEXTS = ["a cat sat on the mat", "the kitten slept on a warm rug", "tax law changed in 2024"]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(tmp_path: Path, classifier: bool = False,
              variants: tuple[str, ...] = ("model.onnx", "model_quantized.onnx")) -> Path:
    """``models--org--tiny/snapshots/<rev>/``: configs, tokenizer and ``onnx/`` files as
    symlinks into ``blobs/`` (how huggingface_hub stores a snapshot), and no weights.

    The graph is traced by torch from a tiny random ModernBERT (trawl's torch exporter,
    the same ``torch.onnx.export`` call optimum makes); the int8 variant is
    onnxruntime's dynamic quantisation of it."""
    from tests.plugins.tiny_encoders import sentence_transformers_layout, tiny_modernbert
    from trawl_onnx.export import _torch_export, quantize_int8

    src = tiny_modernbert(tmp_path / "src", classifier=classifier, layers=2)
    sentence_transformers_layout(src, pooling="mean", prompts={"query": "query: "})
    work = tmp_path / "work"
    work.mkdir()
    kind = "cross-encoder" if classifier else "dense"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _torch_export(src, work / "model.onnx", kind, 17)  # type: ignore[arg-type]
    quantize_int8(work / "model.onnx", work / "model_quantized.onnx")
    repo = tmp_path / "hub" / "models--org--tiny"
    snapshot = repo / "snapshots" / ("0" * 40)
    blobs = repo / "blobs"
    blobs.mkdir(parents=True)
    files = {p.relative_to(src).as_posix(): p for p in src.rglob("*")
             if p.is_file() and not p.name.endswith(".safetensors")}
    files.update({f"onnx/{name}": work / name for name in variants})
    for relative, path in files.items():
        blob = blobs / _sha(path)
        shutil.copyfile(path, blob)
        link = snapshot / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(blob, link.parent), link)
    return snapshot


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TRAWL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@needs_torch
def test_snapshot_with_onnx_folder_loads_without_export(tmp_path: Path, cache: Path) -> None:
    """No weights in the folder, so nothing could be exported: the shipped files serve, the
    precision picks the file, the manifest keeps the sentence-transformers metadata, and the
    vectors are the torch model's (mean pooled, normalised, query prompt)."""
    import torch
    import transformers as tf

    from trawl_onnx.export import ensure_exported
    from trawl_onnx.manifest import load_manifest

    snapshot = _snapshot(tmp_path)
    fp32 = ensure_exported(str(snapshot), "fp32")
    int8 = ensure_exported(str(snapshot), "int8")
    assert cache in fp32.parents and cache in int8.parents
    m32, m8 = load_manifest(fp32), load_manifest(int8)
    assert m32.exporter == "ready-made onnx/model.onnx" and m32.quantize == "fp32"
    assert m8.exporter == "ready-made onnx/model_quantized.onnx" and m8.quantize == "int8"
    assert _sha(fp32 / "model.onnx") == _sha((snapshot / "onnx/model.onnx").resolve())
    assert _sha(int8 / "model.onnx") == _sha((snapshot / "onnx/model_quantized.onnx").resolve())
    assert m32.inputs == ["input_ids", "attention_mask"] and m32.output == "last_hidden_state"
    assert m32.prompts == {"query": "query: "} and m32.pooling == "mean"
    assert ensure_exported(str(snapshot), "fp32") == fp32  # cached: the same entry

    got = dense(fp32, threads=2).encode_queries(TEXTS)
    model = tf.AutoModel.from_pretrained(str(tmp_path / "src"), attn_implementation="eager")
    hf_tok = tf.AutoTokenizer.from_pretrained(str(tmp_path / "src"))
    batch = hf_tok(["query: " + t for t in TEXTS], padding=True, return_tensors="pt",
                   return_token_type_ids=False)
    with torch.no_grad():
        states = model.eval()(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    want = ((states * mask).sum(1) / mask.sum(1)).numpy()
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    assert np.abs(got - want).max() <= 1e-5
    quantized = dense(int8, threads=2).encode_queries(TEXTS)
    assert (quantized * got).sum(1).min() > 0.98  # int8, close to fp32


@needs_torch
def test_int8_without_a_shipped_int8_file_quantises_the_fp32_file(tmp_path: Path,
                                                                   cache: Path) -> None:
    from trawl_onnx.export import ensure_exported
    from trawl_onnx.manifest import load_manifest

    snapshot = _snapshot(tmp_path, variants=("model.onnx",))
    manifest = load_manifest(ensure_exported(str(snapshot), "int8"))
    assert manifest.exporter == "ready-made onnx/model.onnx quantised to int8 by trawl"
    assert manifest.quantize == "int8"


@needs_torch
def test_shipped_cross_encoder_logits(tmp_path: Path, cache: Path) -> None:
    import onnxruntime as ort

    from trawl_onnx.export import ensure_exported
    from trawl_onnx.manifest import load_manifest

    snapshot = _snapshot(tmp_path, classifier=True, variants=("model.onnx",))
    out = ensure_exported(str(snapshot), "fp32", "cross-encoder")
    manifest = load_manifest(out)
    assert (manifest.output, manifest.dim, manifest.kind) == ("logits", 3, "cross-encoder")
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    ids = np.array([[101, 2000, 2001, 102]], dtype=np.int64)
    assert session.run(["logits"], {"input_ids": ids,
                                    "attention_mask": np.ones_like(ids)})[0].shape == (1, 3)


def test_choose_by_precision() -> None:
    from trawl_onnx.shipped import choose

    repo = ["config.json", "onnx/model.onnx", "onnx/model_O4.onnx", "onnx/model_int8.onnx",
            "onnx/model_qint8_avx512.onnx"]
    assert choose(repo, "fp32") == ("onnx/model.onnx", False)
    assert choose(repo, "int8") == ("onnx/model_int8.onnx", False)
    assert choose(["model.onnx"], "int8") == ("model.onnx", True)
    assert choose(["onnx/model_O4.onnx"], "fp32") is None  # fp16 (GPU): not an fp32 file
    assert choose(["onnx/model_quantized.onnx"], "fp32") is None


def _graph(path: Path, *, inputs: dict[str, Any], output: str, dims: list[Any],
           width: int = 8) -> None:
    """A minimal graph with the given interface (what the checks read, and runnable)."""
    import onnx
    from onnx import TensorProto, helper

    first = next(iter(inputs))
    nodes = [helper.make_node("Cast", [first], ["as_float"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["as_float", "axis"], ["expanded"]),
             helper.make_node("Expand", ["expanded", "shape"], [output])]
    graph = helper.make_graph(
        nodes if len(dims) == 3 else
        [helper.make_node("ReduceMean", [first], ["mean"], keepdims=1),
         helper.make_node("Cast", ["mean"], ["meanf"], to=TensorProto.FLOAT),
         helper.make_node("Expand", ["meanf", "shape2"], [output])], "g",
        [helper.make_tensor_value_info(n, t, ["batch", "sequence"]) for n, t in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, dims)],
        initializer=[helper.make_tensor("axis", TensorProto.INT64, [1], [2]),
                     helper.make_tensor("shape", TensorProto.INT64, [3], [1, 1, width]),
                     helper.make_tensor("shape2", TensorProto.INT64, [2], [1, width])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))


def _bad_folder(tmp_path: Path, **graph: Any) -> Path:
    from trawl_onnx.sources import resolve_model_folder

    folder = tmp_path / "bad"
    folder.mkdir()
    src = resolve_model_folder("all-MiniLM-L6-v2")
    config = json.loads((src / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 8}))
    shutil.copyfile(src / "tokenizer.json", folder / "tokenizer.json")
    _graph(folder / "onnx" / "model.onnx", **graph)
    return folder


@pytest.mark.parametrize("graph,needle", [
    ({"inputs": {"input_ids": 7, "attention_mask": 7}, "output": "sentence_embedding",
      "dims": ["batch", 8]}, "only a pooled sentence embedding"),
    ({"inputs": {"input_ids": 6, "attention_mask": 6}, "output": "last_hidden_state",
      "dims": ["batch", "sequence", 8]}, "input 'input_ids' is not int64"),
    ({"inputs": {"ids": 7, "attention_mask": 7}, "output": "last_hidden_state",
      "dims": ["batch", "sequence", 8]}, "graph inputs ['ids', 'attention_mask']"),
    ({"inputs": {"input_ids": 7, "attention_mask": 7}, "output": "last_hidden_state",
      "dims": ["batch", "sequence", 16]}, "last dimension 8 (config.json)"),
    ({"inputs": {"input_ids": 7, "attention_mask": 7}, "output": "last_hidden_state",
      "dims": ["batch", "sequence", "hidden"], "width": 4}, "shape (2, 7, 4) (expected (2, 7, 8))"),
])
def test_shipped_graph_that_fails_the_checks_is_named(tmp_path: Path, cache: Path,
                                                      graph: dict[str, Any],
                                                      needle: str) -> None:
    """No weights beside it, so the check's error is the answer (nothing is cached)."""
    from trawl_onnx.export import ensure_exported

    folder = _bad_folder(tmp_path, **graph)
    with pytest.raises(ModelSourceError) as err:
        ensure_exported(str(folder), "fp32")
    assert needle in str(err.value) and "model.onnx" in str(err.value)
    assert not any(p.name.endswith("-fp32") for p in (cache / "models").glob("*"))


@needs_torch
def test_a_failing_shipped_file_beside_weights_falls_back_to_export(
        tmp_path: Path, cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    from tests.plugins.tiny_encoders import tiny_modernbert
    from trawl_onnx.export import ensure_exported
    from trawl_onnx.manifest import load_manifest

    folder = tiny_modernbert(tmp_path / "src", layers=2)
    _graph(folder / "onnx" / "model.onnx", inputs={"input_ids": 7, "attention_mask": 7},
           output="sentence_embedding", dims=["batch", 64])
    with caplog.at_level("WARNING", logger="trawl.onnx"):
        manifest = load_manifest(ensure_exported(str(folder), "fp32"))
    assert manifest.exporter.startswith("trawl numpy")
    assert "not using the ONNX file shipped" in caplog.text and "pooled" in caplog.text


@needs_torch
def test_shipped_pooled_output_carries_a_dense_projection(tmp_path: Path, cache: Path) -> None:
    """Pooling -> Dense (64 -> 32, tanh) -> Normalize: onnx-dense cannot apply the Dense
    module itself, so it takes the shipped graph's ``sentence_embedding`` (the model's whole
    pipeline) and matches sentence-transformers; token vectors still come from the states."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling

    from tests.plugins.tiny_encoders import tiny_modernbert
    from trawl import ComponentContext
    from trawl_onnx.encoders import OnnxTokenEncoder
    from trawl_onnx.export import ensure_exported
    from trawl_onnx.manifest import load_manifest

    base = tiny_modernbert(tmp_path / "base", layers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(3)
        model = SentenceTransformer(modules=[
            Transformer(str(base), model_kwargs={"attn_implementation": "eager"}),
            Pooling(64), Dense(64, 32, activation_function=torch.nn.Tanh()), Normalize()],
            device="cpu").eval()
        folder = tmp_path / "repo"
        model.save(str(folder))

        class Pipeline(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> Any:
                out = self.inner({"input_ids": ids, "attention_mask": mask})
                return out["token_embeddings"], out["sentence_embedding"]

        ids = torch.tensor([[101, 2000, 2001, 102], [101, 2000, 102, 0]])
        (folder / "onnx").mkdir()
        with torch.no_grad():
            torch.onnx.export(Pipeline(), (ids, (ids != 0).long()),
                              str(folder / "onnx/model.onnx"),
                              input_names=["input_ids", "attention_mask"],
                              output_names=["last_hidden_state", "sentence_embedding"],
                              dynamic_axes={"input_ids": {0: "b", 1: "s"},
                                            "attention_mask": {0: "b", 1: "s"},
                                            "last_hidden_state": {0: "b", 1: "s"},
                                            "sentence_embedding": {0: "b"}},
                              opset_version=17, dynamo=False)
    for weights in folder.rglob("*.safetensors"):
        weights.unlink()
    out = ensure_exported(str(folder), "fp32")
    manifest = load_manifest(out)
    assert manifest.pooled_dense == ["2_Dense"]
    assert (manifest.pooled_output, manifest.pooled_dim) == ("sentence_embedding", 32)
    enc = dense(out, threads=2)
    assert enc.dim == 32
    got = enc.encode_documents(TEXTS)
    want = model.encode_document(TEXTS)
    assert np.abs(got - want).max() <= 1e-5, np.abs(got - want).max()
    tokens = OnnxTokenEncoder(OnnxTokenEncoder.Config(model=str(out)), ComponentContext(name="t"))
    assert tokens.dim == 64 and tokens.encode_documents(TEXTS)[0].shape[1] == 64
