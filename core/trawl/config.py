"""Declarative configuration: pipelines (TOML or presets) and process settings (``TRAWL_*`` env).

A pipeline names components only by string, so core never imports a backend; the
registry validates each component's own config when the pipeline is built.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrieverConfig(_Strict):
    """One first-stage retriever: an index, the encoder that feeds it, optionally a transform.

    With ``transform`` set (MUVERA), the encoder must be multi-vector: each chunk's token
    vectors become one fixed-dimensional vector for the index, the token vectors are kept
    in a side store, and candidates are rescored by exact MaxSim when ``exact_rerank``.
    """

    name: str
    index: str
    index_config: dict[str, Any] = Field(default_factory=dict)
    encoder: str | None = None
    encoder_config: dict[str, Any] = Field(default_factory=dict)
    transform: str | None = None
    transform_config: dict[str, Any] = Field(default_factory=dict)
    exact_rerank: bool = True
    candidates: int = Field(100, ge=1, le=100_000)
    weight: float = Field(1.0, ge=0)
    store: str | None = Field(None, description=(
        "retrievers naming the same store share one index (e.g. one Qdrant collection with "
        "a named vector per retriever); their index and index_config must agree"))

    @field_validator("name")
    @classmethod
    def _name_is_path_safe(cls, v: str) -> str:
        if not v or not all(c.isalnum() or c in "-_" for c in v):
            raise ValueError("retriever names use letters, digits, '-' and '_' only")
        return v


class FusionConfig(_Strict):
    method: Literal["rrf", "weighted", "dbsf"] = "rrf"
    k: float = Field(60.0, ge=0)


class RerankConfig(_Strict):
    name: str
    config: dict[str, Any] = Field(default_factory=dict)
    depth: int = Field(50, ge=1, le=10_000)
    enabled: bool = True


class ChunkingConfig(_Strict):
    """Token-aware chunking; ``max_tokens`` defaults to the first encoder's max length."""

    enabled: bool = True
    max_tokens: int | None = Field(None, ge=8)
    overlap: int = Field(32, ge=0)


class PipelineConfig(_Strict):
    name: str = "custom"
    retrievers: list[RetrieverConfig]
    fusion: FusionConfig = Field(default_factory=lambda: FusionConfig())
    reranker: RerankConfig | None = None
    chunking: ChunkingConfig = Field(default_factory=lambda: ChunkingConfig())

    @model_validator(mode="after")
    def _unique(self) -> PipelineConfig:
        if not self.retrievers:
            raise ValueError("a pipeline needs at least one retriever")
        names = [r.name for r in self.retrievers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"retriever names must be unique, repeated: {dupes}")
        stores: dict[str, RetrieverConfig] = {}
        for r in self.retrievers:
            if r.store is None:
                continue
            if not all(c.isalnum() or c in "-_" for c in r.store) or r.store in names:
                raise ValueError(f"store {r.store!r} of retriever {r.name!r}: use letters, "
                                 "digits, '-' and '_', and a name no retriever has")
            first = stores.setdefault(r.store, r)
            if (r.index, r.index_config or first.index_config) != (
                    first.index, first.index_config or r.index_config):
                raise ValueError(
                    f"retrievers {first.name!r} and {r.name!r} share store {r.store!r} but "
                    "name different indexes or index_config; give the config once (or "
                    "identically)")
        return self


_DENSE = {"name": "dense", "index": "qdrant", "encoder": "onnx-dense"}
_BM25 = {"name": "bm25", "index": "bm25"}
# MUVERA's default FDE (r20 k5 p16, 10240-d) and 200 candidates, reranked by exact MaxSim.
# Kept on numbers (benchmarks/multivector_latency.py, full SciFact, 2026-11-30): nDCG@10
# r20k5p16/200 0.7327, r20k5p16/400 0.7306, r40k4p16/200 0.7318, r40k4p16/400 0.7313. The
# settings that find more of the exact MaxSim top-10 (fde_sweep: r40k4p16 + 400 candidates
# 0.972 vs 0.900) rank no better, and 400 candidates cost ~13 ms more CPU per query;
# 5120-d FDEs (r20k5p8, r10k5p16) save ~9 ms but score 0.7195.
_MULTI = {
    "name": "multivector", "index": "qdrant", "encoder": "onnx-tokens",
    "transform": "muvera", "candidates": 200,
}
_HYBRID_FUSION = {"method": "weighted"}
PRESETS: dict[str, dict[str, Any]] = {
    "bm25": {"name": "bm25", "retrievers": [_BM25]},
    "dense": {"name": "dense", "retrievers": [_DENSE]},
    # Weighted min-max fusion, not RRF: measured by benchmarks/hybrid.py it is the setting that
    # holds on both SciFact (nDCG@10 0.724 vs RRF 0.710) and LIMIT-small (Recall@10 0.9995 vs
    # RRF 0.899), where a failing dense retriever must not drag BM25's exact matches down.
    "hybrid": {"name": "hybrid", "retrievers": [_BM25, _DENSE], "fusion": _HYBRID_FUSION},
    "multivector": {"name": "multivector", "retrievers": [_MULTI]},
    "hybrid-rerank": {
        "name": "hybrid-rerank",
        "retrievers": [_BM25, _DENSE],
        "fusion": _HYBRID_FUSION,
        "reranker": {"name": "maxsim", "depth": 50},
    },
    # Everything on Qdrant (embedded edge by default, or a server with url=): BM25 as sparse
    # vectors with the engine's IDF plus dense, one point per chunk, one Query API request.
    "qdrant-hybrid": {
        "name": "qdrant-hybrid",
        "retrievers": [{"name": "bm25", "index": "qdrant", "encoder": "bm25-sparse",
                        "store": "qdrant"},
                       {**_DENSE, "store": "qdrant"}],
        "fusion": _HYBRID_FUSION,
    },
    # A trained ColBERT checkpoint (PyLate or Stanford layout; `colbert:MODEL` or
    # TRAWL_COLBERT_MODEL): MUVERA candidates from its token vectors, exact MaxSim. Without a
    # model named, MiniLM's token vectors (offline), i.e. the multivector preset.
    "colbert": {"name": "colbert", "retrievers": [{**_MULTI, "name": "colbert"}]},
    # Learned sparse (SPLADE, or an inference-free document model; `splade-hybrid:MODEL` or
    # TRAWL_SPLADE_MODEL) + dense MiniLM in one Qdrant collection, fused like hybrid. The
    # sparse weights are final: the collection keeps no IDF for them.
    "splade-hybrid": {
        "name": "splade-hybrid",
        "retrievers": [{"name": "splade", "index": "qdrant", "encoder": "onnx-sparse",
                        "store": "qdrant"},
                       {**_DENSE, "store": "qdrant"}],
        "fusion": _HYBRID_FUSION,
    },
    # Core only: exact numpy index over the default dense encoder; no Qdrant needed.
    "dense-exact": {"name": "dense-exact",
                    "retrievers": [{"name": "dense", "index": "exact", "encoder": "onnx-dense"}]},
}


#: presets that take a model (``PRESET:MODEL`` or the setting) → the retriever it feeds
MODEL_PRESETS: dict[str, str] = {"colbert": "colbert", "splade-hybrid": "splade"}
_MODEL_HELP = {
    "colbert": "e.g. colbert:answerdotai/answerai-colbert-small-v1 or TRAWL_COLBERT_MODEL",
    "splade-hybrid": ("e.g. splade-hybrid:naver/splade-v3 or TRAWL_SPLADE_MODEL; no SPLADE "
                      "model ships offline"),
}


def preset_pipeline(name: str, model: str | None = None) -> dict[str, Any]:
    """A preset as a dict; ``model`` (or its ``TRAWL_*_MODEL`` setting) fills the model of a
    preset in ``MODEL_PRESETS``."""
    data: dict[str, Any] = json.loads(json.dumps(PRESETS[name]))
    if name not in MODEL_PRESETS:
        if model is not None:
            raise ConfigError(f"preset {name!r} takes no model (presets that do: "
                              f"{', '.join(MODEL_PRESETS)})")
        return data
    settings = TrawlSettings()
    model = model or (settings.colbert_model if name == "colbert" else settings.splade_model)
    if not model and name == "splade-hybrid":
        raise ConfigError(f"preset {name!r} needs a learned sparse model: "
                          f"{_MODEL_HELP[name]}")
    if model:
        for retriever in data["retrievers"]:
            if retriever["name"] == MODEL_PRESETS[name]:
                retriever["encoder_config"] = {**retriever.get("encoder_config", {}),
                                               "model": model}
    return data


def _validate_pipeline(data: dict[str, Any], origin: str) -> PipelineConfig:
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"field {'.'.join(str(p) for p in e['loc']) or '(root)'!r}: {e['msg']}"
            for e in exc.errors()
        )
        raise ConfigError(f"pipeline {origin}: {problems}") from exc


def load_pipeline(spec: str | Path | dict[str, Any] | PipelineConfig) -> PipelineConfig:
    """A preset name, a TOML/JSON file, a dict, or a ready ``PipelineConfig``."""
    if isinstance(spec, PipelineConfig):
        return spec
    if isinstance(spec, dict):
        return _validate_pipeline(spec, "(dict)")
    text = str(spec)
    if text in PRESETS:
        return _validate_pipeline(preset_pipeline(text), f"preset {text!r}")
    preset, colon, model = text.partition(":")
    if colon and preset in MODEL_PRESETS:
        if not model.strip():
            raise ConfigError(f"pipeline {text!r}: name the model after the colon "
                              f"({_MODEL_HELP[preset]})")
        return _validate_pipeline(preset_pipeline(preset, model.strip()), f"preset {text!r}")
    path = Path(text)
    try:
        is_file = path.is_file()
    except (OSError, ValueError):  # names too long or with NUL bytes are not files
        is_file = False
    if not is_file:
        raise ConfigError(
            f"unknown pipeline {text!r}: not a preset ({', '.join(PRESETS)}) and not a file")
    try:
        raw = path.read_text(encoding="utf-8")
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read pipeline file {path}: {exc}") from exc
    if "pipeline" in data and isinstance(data["pipeline"], dict):
        data = data["pipeline"]
    data.setdefault("name", path.stem)
    return _validate_pipeline(data, f"file {path}")


class TrawlSettings(BaseSettings):
    """Process-wide settings from ``TRAWL_*`` environment variables (``__`` nests)."""

    model_config = SettingsConfigDict(env_prefix="TRAWL_", env_nested_delimiter="__",
                                      extra="ignore")

    home: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("trawl")))
    cache_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_cache_dir("trawl")))
    default_index: str = "default"
    default_pipeline: str = "hybrid"
    #: the model of the ``colbert`` / ``splade-hybrid`` presets when the pipeline names none
    colbert_model: str | None = None
    splade_model: str | None = None
    progress: bool = True

    def index_path(self, name_or_path: str | Path | None = None) -> Path:
        """An index folder: a path as given, or a bare name under ``home/indexes``."""
        value = str(name_or_path or self.default_index)
        if "/" in value or value.startswith(".") or Path(value).is_absolute():
            return Path(value).expanduser()
        return self.home / "indexes" / value
