"""sentence-transformers metadata honoured by ``onnx-dense``: prompts and the default
prompt, ``truncate_dim`` (Matryoshka), the Normalize module, pooling modes (cls, mean,
last token, ``include_prompt``), in the files sentence-transformers itself saves.

Each case saves a tiny random ModernBERT with sentence-transformers and compares trawl's
vectors with ``encode_query`` / ``encode_document`` of the running library (<= 1e-5).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.plugins.conftest_onnx import CAN_EXPORT, HAS_TORCH
from tests.plugins.test_onnx import dense
from trawl import ConfigError, ModelSourceError

pytestmark = [pytest.mark.skipif(not CAN_EXPORT, reason="needs the onnx extra"),
              pytest.mark.skipif(not HAS_TORCH, reason="needs the export extra (torch)"),
              pytest.mark.export]

QUERIES = ["what do cats sit on", "tax law 2024", "x"]
DOCS = ["a cat sat on the mat", "the kitten slept on a warm rug by the fire",
        "tax law changed in 2024 " * 5]
PROMPTS = {"query": "query: ", "document": "passage: ", "classification": "label this: "}


def _st_folder(tmp_path: Path, *, pooling: str = "mean", normalize: bool = True,
               include_prompt: bool = True, prompts: dict[str, str] | None = None,
               default_prompt_name: str | None = None) -> tuple[Path, Any]:
    """A tiny ModernBERT wrapped and saved by sentence-transformers (its current format)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Transformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

    from tests.plugins.tiny_encoders import tiny_modernbert

    base = tiny_modernbert(tmp_path / "base")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        transformer = Transformer(str(base), max_seq_length=128,
                                  model_kwargs={"attn_implementation": "eager"})
        modules: list[Any] = [transformer, Pooling(64, pooling_mode=pooling,  # type: ignore[arg-type]
                                                   include_prompt=include_prompt)]
        if normalize:
            modules.append(Normalize())
        model = SentenceTransformer(modules=modules, device="cpu",
                                    prompts=PROMPTS if prompts is None else prompts,
                                    default_prompt_name=default_prompt_name)
        folder = tmp_path / "st"
        model.save(str(folder))
    return folder, model


def _export(folder: Path, tmp_path: Path) -> Path:
    from trawl_onnx.export import export_model

    return export_model(folder, tmp_path / "onnx", exporter="numpy")


def _close(got: np.ndarray, want: Any) -> None:
    want = np.asarray(want, dtype=np.float32)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-5, np.abs(got - want).max()


@pytest.mark.parametrize("pooling,normalize,include_prompt", [
    ("mean", True, True), ("cls", False, True), ("lasttoken", True, True),
    ("mean", True, False)])
def test_prompts_pooling_and_normalisation_match_sentence_transformers(
        tmp_path: Path, pooling: str, normalize: bool, include_prompt: bool) -> None:
    folder, model = _st_folder(tmp_path, pooling=pooling, normalize=normalize,
                               include_prompt=include_prompt)
    pooling_config = json.loads((folder / "1_Pooling" / "config.json").read_text())
    assert pooling_config.get("pooling_mode") == pooling  # the current format, not booleans
    out = _export(folder, tmp_path)
    enc = dense(out, threads=2)
    assert (enc.query_prefix, enc.document_prefix) == ("query: ", "passage: ")
    assert enc.normalize is normalize
    _close(enc.encode_queries(QUERIES), model.encode_query(QUERIES))
    _close(enc.encode_documents(DOCS), model.encode_document(DOCS))
    # an explicit prefix still wins over the model's prompts ('' turns them off)
    _close(dense(out, threads=2, query_prefix="").encode_queries(QUERIES),
           model.encode(QUERIES, prompt=""))
    _close(dense(out, threads=2, query_prompt_name="classification").encode_queries(QUERIES),
           model.encode(QUERIES, prompt_name="classification"))


def test_default_prompt_and_other_document_prompt_names(tmp_path: Path) -> None:
    """Queries without a 'query' prompt take none (``encode_query`` does not fall back to
    the default prompt either); naming the default prompt uses it; an older model's
    'passage' prompt serves documents."""
    prompts = {"passage": "doc: ", "retrieval": "represent for retrieval: "}
    folder, model = _st_folder(tmp_path, prompts=prompts, default_prompt_name="retrieval")
    out = _export(folder, tmp_path)
    enc = dense(out, threads=2)
    assert (enc.query_prefix, enc.document_prefix) == ("", "doc: ")
    _close(enc.encode_queries(QUERIES), model.encode_query(QUERIES))
    _close(enc.encode_documents(DOCS), model.encode_document(DOCS, prompt_name="passage"))
    named = dense(out, threads=2, query_prompt_name="retrieval")
    _close(named.encode_queries(QUERIES), model.encode(QUERIES))  # encode: the default


@pytest.mark.parametrize("where", ["encoder", "model"])
def test_truncate_dim_matches_sentence_transformers(tmp_path: Path, where: str) -> None:
    """Matryoshka: the first 16 of 64 dims, re-normalised because the model normalises
    (sentence-transformers' ``truncate_dim`` with ``normalize_embeddings``). ``model``: the
    dimension comes from ``truncate_dim`` in config_sentence_transformers.json."""
    folder, model = _st_folder(tmp_path)
    if where == "model":
        path = folder / "config_sentence_transformers.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "truncate_dim": 16}))
    enc = dense(_export(folder, tmp_path), threads=2, **({"dim": 16} if where == "encoder"
                                                          else {}))
    assert enc.dim == 16
    want = model.encode_document(DOCS, truncate_dim=16, normalize_embeddings=True)
    _close(enc.encode_documents(DOCS), want)
    # not the same as normalising first and cutting afterwards (the model's own output)
    cut = model.encode_document(DOCS, truncate_dim=16)
    assert np.abs(np.linalg.norm(cut, axis=1) - 1).max() > 1e-3


def test_bad_metadata_is_named(tmp_path: Path) -> None:
    from trawl_onnx.manifest import read_hf_info

    folder, _ = _st_folder(tmp_path)
    out = _export(folder, tmp_path)
    with pytest.raises(ConfigError, match=r"query_prompt_name.*'nope'.*classification"):
        dense(out, query_prompt_name="nope")
    config = folder / "config_sentence_transformers.json"
    config.write_text(json.dumps({"prompts": {"query": "q: "}, "default_prompt_name": "doc"}))
    with pytest.raises(ModelSourceError, match="default_prompt_name 'doc'"):
        read_hf_info(folder)
    config.write_text(json.dumps({"prompts": {}}))
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"embedding_dimension": 64,
                                   "pooling_mode": ["cls", "mean"]}))
    with pytest.raises(ModelSourceError, match=r"1_Pooling.*\['cls', 'mean'\]"):
        read_hf_info(folder)
    pooling.write_text(json.dumps({"pooling_mode_weightedmean_tokens": True}))
    with pytest.raises(ModelSourceError, match="'weightedmean'"):
        read_hf_info(folder)


def test_a_projection_after_pooling_is_refused_not_ignored(tmp_path: Path) -> None:
    """A Dense module after Pooling (EmbeddingGemma-style) changes the vector; onnx-dense
    does not apply it, so it says so instead of returning other vectors."""
    folder, _ = _st_folder(tmp_path)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense",
                       "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConfigError, match=r"Dense module\(s\) \['2_Dense'\]"):
        dense(_export(folder, tmp_path))
