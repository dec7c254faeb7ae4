"""Shared fixtures for the ONNX plugin tests (imported by tests/plugins/test_onnx*.py).

The default model is exported once per machine into trawl's cache dir
(``TRAWL_CACHE_DIR`` or the platformdirs user cache); a file lock makes parallel
workers wait for one export instead of racing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

HAS_TORCH = all(importlib.util.find_spec(m) is not None
                for m in ("torch", "transformers", "onnx"))


def _exported(quantize: str) -> Path:
    from trawl_onnx.export import cache_folder, ensure_exported
    from trawl_onnx.manifest import MANIFEST

    if not HAS_TORCH and not (cache_folder("all-MiniLM-L6-v2", "fp32") / MANIFEST).is_file():
        pytest.skip("no cached ONNX export and no torch to make one (pip install 'trawl[export]')")
    return ensure_exported("all-MiniLM-L6-v2", quantize)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def minilm_fp32() -> Path:
    return _exported("fp32")


@pytest.fixture(scope="session")
def minilm_int8() -> Path:
    return _exported("int8")


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
