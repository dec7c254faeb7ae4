"""ColBERT checkpoints through ``onnx-tokens``: PyLate's vectors from the torch-free export.

References run live, never stored numbers: PyLate itself (``pylate_reference.py`` in a
child interpreter: this one, or ``TRAWL_PYLATE_PYTHON`` where PyLate's pins keep it in
another environment) on checkpoints PyLate builds, and sentence-transformers'
``MultiVectorEncoder`` (6.x) on checkpoints laid out as PyLate and Stanford-NLP save them.
Every model is a tiny random BERT built here (no hub).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.plugins.conftest_onnx import CAN_EXPORT, HAS_TORCH
from trawl import ConfigError, ModelSourceError

pytestmark = [pytest.mark.skipif(not (CAN_EXPORT and HAS_TORCH),
                                 reason="needs the onnx and export extras"),
              pytest.mark.export]
HERE = Path(__file__).resolve().parent
# punctuation, "^"/"~" (not in the tiny vocabulary: PyLate's skiplist turns them into [UNK]),
# a text longer than both windows, a short one, repeated words
TEXTS = ["Late interaction, retrieval!", "the query: a sparse... vector ^~ search",
         "short", "A much longer document about protein and gene expansion; the study found "
         "a high effect on cancer patients, with low rank results, and more text to be cut",
         "score score score rank"]


def _export(folder: Path, out: Path) -> Path:
    from trawl_onnx.export import export_model

    return export_model(folder, out, exporter="numpy")


def _encoder(folder: Path, **config: Any) -> Any:
    from trawl_onnx.encoders import OnnxTokenEncoder

    return OnnxTokenEncoder(OnnxTokenEncoder.Config(model=str(folder), batch_size=2, **config))


def _assert_same(got: list[np.ndarray], expected: list[np.ndarray], what: str) -> None:
    assert [g.shape for g in got] == [e.shape for e in expected], what
    diff = max(float(np.abs(g - e).max()) for g, e in zip(got, expected, strict=True))
    assert diff <= 1e-5, f"{what}: max abs diff {diff:.2e}"


def _pylate_mismatch() -> str | None:
    """Why PyLate cannot run here, read from package metadata without importing it (PyLate
    pins the sentence-transformers it runs with)."""
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        requires = metadata.requires("pylate") or []
    except metadata.PackageNotFoundError:
        return "pylate is not installed"
    for line in requires:
        req = Requirement(line)
        if req.marker is not None or req.name not in ("sentence-transformers", "transformers"):
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            return f"{req.name} is not installed"
        if not req.specifier.contains(have, prereleases=True):
            return f"pylate needs {req}, this environment has {req.name} {have}"
    return None


@pytest.fixture(scope="module")
def pylate_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PyLate's checkpoints and vectors, made by PyLate in a child interpreter."""
    out = tmp_path_factory.mktemp("pylate")
    (out / "texts.json").write_text(json.dumps(TEXTS), encoding="utf-8")
    # .ci/setup makes .venv-pylate (PyLate with the sentence-transformers it pins, over
    # .venv's packages); where it or TRAWL_PYLATE_PYTHON names one, PyLate must run
    overlay = HERE.parents[1] / ".venv-pylate" / "bin" / "python"
    python = os.environ.get("TRAWL_PYLATE_PYTHON") or (
        str(overlay) if overlay.exists() else sys.executable)
    if python == sys.executable:
        reason = _pylate_mismatch()
        if reason:
            pytest.skip(f"{reason}; set TRAWL_PYLATE_PYTHON to an interpreter that runs PyLate")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([python, str(HERE / "pylate_reference.py"), str(out),
                           str(out / "texts.json")], capture_output=True, text=True,
                          env=env, timeout=600)
    if proc.returncode == 3 and python == sys.executable:
        pytest.skip("PyLate cannot run in " + python + " (set TRAWL_PYLATE_PYTHON to an "
                    "interpreter with pylate and its sentence-transformers): "
                    + proc.stderr.strip().splitlines()[-1])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.parametrize("case", ["pylate", "pylate-noexp", "pylate-attend", "stanford"])
def test_vectors_match_pylate(pylate_run: Path, tmp_path: Path, case: str) -> None:
    """Markers, [MASK] expansion, attention on it or not, the skiplist (with PyLate's [UNK]
    quirk), truncation and the projection: PyLate's vectors to 1e-5."""
    encoder = _encoder(_export(pylate_run / case, tmp_path / "onnx"))
    assert encoder.colbert is not None
    for side, encode in (("queries", encoder.encode_queries),
                         ("documents", encoder.encode_documents)):
        with np.load(pylate_run / f"{case}-{side}.npz") as npz:
            expected = [npz[f"arr_{i}"] for i in range(len(TEXTS))]
        _assert_same(encode(TEXTS), expected, f"{case} {side}")


def _st_reference(folder: Path, texts: list[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    st = pytest.importorskip("sentence_transformers")
    if not hasattr(st, "MultiVectorEncoder"):
        pytest.skip("sentence-transformers < 6 has no MultiVectorEncoder")
    model = st.MultiVectorEncoder(str(folder), device="cpu")
    queries = model.encode_query(texts, convert_to_numpy=True)
    documents = model.encode_document(texts, convert_to_numpy=True)
    return ([np.asarray(q, np.float32) for q in queries],
            [np.asarray(d, np.float32) for d in documents])


@pytest.mark.parametrize("layout", ["pylate", "stanford"])
def test_layouts_match_sentence_transformers(tmp_path: Path, layout: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The two checkpoint layouts, read by sentence-transformers' own ColBERT loader.

    Its skiplist drops words the vocabulary lacks where PyLate maps them to [UNK], so these
    texts hold only known punctuation (the PyLate test covers the other case).
    """
    from tests.plugins import tiny_checkpoints as tiny

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tiny.pylate_layout(tmp_path / "src", bias=True, query_length=10) \
        if layout == "pylate" else tiny.stanford_colbert(tmp_path / "src")
    texts = [t.replace("^~", "") for t in TEXTS]
    queries, documents = _st_reference(folder, texts)
    encoder = _encoder(_export(folder, tmp_path / "onnx"))
    _assert_same(encoder.encode_queries(texts), queries, f"{layout} queries")
    _assert_same(encoder.encode_documents(texts), documents, f"{layout} documents")
    assert encoder.dim == 16
    assert encoder.max_length == 20  # chunks fit the checkpoint's document length


def test_colbert_preset_indexes_and_ranks_by_maxsim(tmp_path: Path) -> None:
    """``colbert:MODEL``: MUVERA candidates, then exact MaxSim over the stored vectors."""
    from tests.plugins import tiny_checkpoints as tiny
    from trawl import Trawl, load_pipeline
    from trawl.vectors import maxsim_scores

    onnx = _export(tiny.pylate_layout(tmp_path / "src"), tmp_path / "onnx")
    config = load_pipeline(f"colbert:{onnx}")
    assert config.retrievers[0].encoder_config == {"model": str(onnx)}
    assert config.retrievers[0].transform == "muvera"
    texts = [t for t in TEXTS if len(t) < 60]  # one chunk each
    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    with Trawl.open(tmp_path / "index", pipeline=config) as t:
        t.add(docs)
        hits = t.search("sparse search score", top_k=5)
        encoder = _encoder(onnx)
        q = encoder.encode_queries(["sparse search score"])[0]
        exact = maxsim_scores(q, encoder.encode_documents(texts))
    assert sorted(h.doc_id for h in hits) == [f"d{i}" for i in range(len(texts))]
    # each score is the document's exact MaxSim, to the int8 rows the token store keeps
    for hit in hits:
        assert abs(hit.score - exact[int(hit.doc_id[1:])]) <= 0.05, (hit.doc_id, hit.score)


def test_qdrant_multivector_and_maxsim_reranker_take_the_vectors(tmp_path: Path) -> None:
    """Qdrant's native MaxSim field and the maxsim reranker use the ColBERT vectors as is."""
    from tests.plugins import tiny_checkpoints as tiny
    from trawl import Trawl
    from trawl.vectors import maxsim_scores

    onnx = str(_export(tiny.stanford_colbert(tmp_path / "src"), tmp_path / "onnx"))
    texts = [t for t in TEXTS if len(t) < 60]
    pipeline = {"name": "late", "retrievers": [
        {"name": "tokens", "index": "qdrant", "encoder": "onnx-tokens",
         "encoder_config": {"model": onnx}}],
        "reranker": {"name": "maxsim", "config": {"model": onnx}, "depth": 10}}
    query = "sparse search score"
    with Trawl.open(tmp_path / "index", pipeline=pipeline) as t:
        t.add([{"id": f"d{i}", "text": text} for i, text in enumerate(texts)])
        hits = t.search(query, top_k=len(texts))
    encoder = _encoder(Path(onnx))
    exact = maxsim_scores(encoder.encode_queries([query])[0], encoder.encode_documents(texts))
    for hit in hits:
        i = int(hit.doc_id[1:])
        assert abs(hit.scores_by_source["tokens"].score - exact[i]) <= 1e-4  # float32 field
        assert abs(hit.scores_by_source["maxsim"].score - exact[i]) <= 0.05  # int8 store


def test_model_presets_say_what_they_need(monkeypatch: pytest.MonkeyPatch) -> None:
    from trawl import load_pipeline

    monkeypatch.delenv("TRAWL_COLBERT_MODEL", raising=False)
    monkeypatch.delenv("TRAWL_SPLADE_MODEL", raising=False)
    assert load_pipeline("colbert").retrievers[0].encoder_config == {}  # MiniLM, offline
    monkeypatch.setenv("TRAWL_COLBERT_MODEL", "org/colbert-model")
    assert load_pipeline("colbert").retrievers[0].encoder_config == {"model": "org/colbert-model"}
    with pytest.raises(ConfigError, match="splade-hybrid:naver/splade-v3"):
        load_pipeline("splade-hybrid")
    with pytest.raises(ConfigError, match="name the model after the colon"):
        load_pipeline("colbert:")
    with pytest.raises(ConfigError, match="unknown pipeline 'dense:x'"):
        load_pipeline("dense:x")


def test_bad_checkpoints_are_named(tmp_path: Path) -> None:
    from tests.plugins import tiny_checkpoints as tiny

    folder = tiny.pylate_layout(tmp_path / "src", query_prefix="[Query] ")
    with pytest.raises(ModelSourceError, match=r"marker '\[Query\] '.*tokenizer.json"):
        _export(folder, tmp_path / "a")
    folder = tiny.pylate_layout(tmp_path / "src2")
    config = json.loads((folder / "1_Dense" / "config.json").read_text())
    config["activation_function"] = "torch.nn.modules.activation.Softsign"
    (folder / "1_Dense" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelSourceError, match=r"Softsign.*not supported"):
        _export(folder, tmp_path / "b")
    ok = _export(tiny.pylate_layout(tmp_path / "src3"), tmp_path / "c")
    np.save(tmp_path / "p.npy", np.eye(32, 8, dtype=np.float32))
    with pytest.raises(ConfigError, match="ColBERT checkpoint with its own projection"):
        _encoder(ok, projection=str(tmp_path / "p.npy"))
