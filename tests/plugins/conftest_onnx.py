"""Shared fixtures for the ONNX plugin tests (imported by tests/plugins/test_onnx*.py).

The default model is exported once per machine (torch-free) into trawl's cache dir
(``TRAWL_CACHE_DIR`` or the platformdirs user cache); a file lock makes parallel
workers wait for one export instead of racing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

HAS_TORCH = all(importlib.util.find_spec(m) is not None
                for m in ("torch", "transformers", "onnx"))
# The torch-free exporter needs only the `onnx` extra.
CAN_EXPORT = all(importlib.util.find_spec(m) is not None for m in ("onnx", "safetensors"))


def _exported(quantize: str) -> Path:
    from trawl_onnx.export import cache_folder, ensure_exported
    from trawl_onnx.manifest import MANIFEST

    if not CAN_EXPORT and not (cache_folder("all-MiniLM-L6-v2", "fp32") / MANIFEST).is_file():
        pytest.skip("no cached ONNX export and no onnx/safetensors to make one "
                    "(pip install 'trawl-rag[onnx]')")
    return ensure_exported("all-MiniLM-L6-v2", quantize)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def minilm_fp32() -> Path:
    return _exported("fp32")


@pytest.fixture(scope="session")
def minilm_int8() -> Path:
    return _exported("int8")


@pytest.fixture(scope="session")
def st_reference() -> tuple[list[str], Any]:
    """200 varied texts and sentence-transformers' vectors for them, computed once per run
    (the running reference, never stored numbers). Needs the export extra."""
    if not HAS_TORCH:
        pytest.skip("needs the export extra (torch, sentence-transformers)")
    from sentence_transformers import SentenceTransformer

    from tests.plugins.test_onnx import _varied_sentences
    from trawl_onnx.sources import resolve_model_folder

    texts = _varied_sentences()
    assert len(texts) >= 150, f"only {len(texts)} texts: datasets missing (set TRAWL_DATASETS)"
    model = SentenceTransformer(str(resolve_model_folder("all-MiniLM-L6-v2")), device="cpu")
    return texts, model.encode(texts, batch_size=32, convert_to_numpy=True)


def copy_export(src: Path, dst: Path) -> Path:
    """Copy an exported folder cheaply: the big model.onnx is hard-linked (or copied)."""
    dst.mkdir(parents=True)
    for item in src.iterdir():
        if item.name == "model.onnx":
            try:
                os.link(item, dst / item.name)
                continue
            except OSError:
                pass
        shutil.copyfile(item, dst / item.name)
    return dst
