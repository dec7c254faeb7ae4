"""A plugin that fails on a missing module names the extra that brings it back."""

from __future__ import annotations

import pytest

from trawl.distribution import own_distribution_name
from trawl.errors import PluginLoadError, missing_module_fix


@pytest.mark.parametrize("module,extra", [
    ("scipy", "bm25"), ("Stemmer", "bm25"),            # PyStemmer installs module Stemmer
    ("qdrant_edge", "qdrant"), ("qdrant_client.http", "qdrant"),
    ("onnxruntime", "onnx"), ("safetensors", "onnx"), ("tokenizers", "onnx"),
    ("textual", "tui"), ("pypdf", "ingest"), ("torch", "export"),
])
def test_smallest_extra_that_provides_the_module(module: str, extra: str) -> None:
    # read from trawl's installed metadata, so a dependency moved between extras in
    # pyproject.toml shows up here once reinstalled
    dist = own_distribution_name()  # trawl-rag (trawl in a venv made before the rename)
    assert missing_module_fix(dist, module) == f"pip install '{dist}[{extra}]'"


def test_no_hint_when_nothing_provides_it() -> None:
    assert missing_module_fix(own_distribution_name(), "numpy") == ""          # a base dependency, no extra
    assert missing_module_fix("trawl", "no_such_module") == ""
    assert missing_module_fix("no-such-distribution-xyz", "scipy") == ""
    assert missing_module_fix(own_distribution_name(), None) == ""


def test_plugin_load_error_carries_the_command() -> None:
    cause = ModuleNotFoundError("No module named 'onnxruntime'", name="onnxruntime")
    dist = own_distribution_name()
    err = PluginLoadError(distribution=dist, entry_point="onnx", cause=cause)
    assert str(err).endswith(f"install it: pip install '{dist}[onnx]'")
    other = PluginLoadError(distribution="trawl", entry_point="onnx", cause=ValueError("x"))
    assert "pip install" not in str(other)
