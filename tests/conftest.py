"""Shared fixtures: a real (if simple) hashing encoder plugin and isolated trawl homes."""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trawl
from trawl import ComponentConfig, Encoder

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))


class HashingEncoderConfig(ComponentConfig):
    dim: int = 256


class HashingEncoder(Encoder):
    """Bag of words hashed into ``dim`` buckets (crc32), L2-normalised: a real, deterministic
    lexical encoder so core behaviour is tested without a neural model."""

    Config = HashingEncoderConfig

    @property
    def dim(self) -> int:
        return int(self.config.dim)  # type: ignore[attr-defined]

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                out[i, zlib.crc32(word.encode()) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Any:
        return self._encode(texts)

    def encode_queries(self, texts: Sequence[str]) -> Any:
        return self._encode(texts)


class HashingPlugin:
    @staticmethod
    @trawl.hookimpl
    def register_encoders(register: Any) -> None:
        register(HashingEncoder, name="hashing")


HASHING_PIPELINE = {"name": "hashing",
                    "retrievers": [{"name": "dense", "index": "exact", "encoder": "hashing"}]}


@pytest.fixture
def host() -> trawl.PluginHost:
    """A plugin host with core components and the hashing encoder, no entry points."""
    return trawl.PluginHost(entry_points=False, plugins=[("hashing-test", HashingPlugin)])


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TRAWL_HOME", str(tmp_path_factory.mktemp("trawl-home")))
    yield


def dataset(name: str) -> Path:
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"dataset {name} not found under {DATASETS} (set TRAWL_DATASETS)")
    return path
