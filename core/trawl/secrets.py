"""Secrets in component configs never reach ``pipeline.json``.

A plugin marks a config field secret by typing it ``pydantic.SecretStr`` (or
``SecretBytes``); core finds those fields through the registry, so it needs to know
nothing about any backend. A secret written literally in a pipeline TOML is used for the
process that opened the index and left out of the saved file, with a warning: later opens
read it from the environment (the plugin's config names the variable, e.g. the qdrant
index's ``api_key_env``).

The same walk over component configs finds the fields marked query-time
(``trawl.components.QUERY_TIME``), which an existing index may open with new values, and
applies a setting to every component that declares it (``with_component_settings``: the
CLI's ``--device``), still without naming any backend.
"""

from __future__ import annotations

import types
import typing
import warnings
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr

from .components import query_time_fields
from .config import PipelineConfig
from .errors import ConfigError, TrawlError
from .plugins import ComponentKind, ComponentRegistry

# (component kind, key naming it, key holding its config) in a retriever entry
_RETRIEVER_PARTS: tuple[tuple[ComponentKind, str, str], ...] = (
    ("index", "index", "index_config"),
    ("encoder", "encoder", "encoder_config"),
    ("transform", "transform", "transform_config"),
)


def _is_secret(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


def secret_fields(config_cls: type[BaseModel]) -> set[str]:
    """Names of the fields of a component config that hold secrets."""
    return {name for name, f in config_cls.model_fields.items() if _is_secret(f.annotation)}


def _config_class(registry: ComponentRegistry, kind: ComponentKind, name: str
                  ) -> type[BaseModel] | None:
    try:
        cls = registry.get(kind, name).load()
        config: type[BaseModel] = cls.Config
        return config
    except (TrawlError, AttributeError, TypeError):  # unknown: building it reports that
        return None


def _secrets_of(registry: ComponentRegistry, kind: ComponentKind, name: str) -> set[str]:
    config = _config_class(registry, kind, name)
    return secret_fields(config) if config is not None else set()


def without_query_time(shape: dict[str, Any], registry: ComponentRegistry) -> dict[str, Any]:
    """A saved pipeline's dict less its components' query-time fields (in place), so that
    an index opens with new values for them (``trawl.components.QUERY_TIME``)."""
    for r in shape.get("retrievers", []):
        for kind, name_key, cfg_key in _RETRIEVER_PARTS:
            name, cfg = r.get(name_key), r.get(cfg_key)
            config = _config_class(registry, kind, name) if name and isinstance(
                cfg, dict) else None
            if config is not None and isinstance(cfg, dict):
                for field in query_time_fields(config) & cfg.keys():
                    cfg.pop(field)
    return shape


def without_secrets(config: PipelineConfig, registry: ComponentRegistry, *,
                    warn: bool = False) -> dict[str, Any]:
    """``config`` as saved in ``pipeline.json``: every secret field left out."""
    data = config.model_dump(mode="json")
    dropped: list[str] = []
    for r in data.get("retrievers", []):
        for kind, name_key, cfg_key in _RETRIEVER_PARTS:
            name, cfg = r.get(name_key), r.get(cfg_key)
            if not name or not isinstance(cfg, dict):
                continue
            for field in sorted(_secrets_of(registry, kind, name) & cfg.keys()):
                if cfg.pop(field) is not None:
                    dropped.append(f"{cfg_key}.{field} of retriever {r.get('name')!r}")
    reranker = data.get("reranker")
    if isinstance(reranker, dict) and isinstance(reranker.get("config"), dict):
        for field in sorted(_secrets_of(registry, "reranker", str(reranker.get("name")))
                            & reranker["config"].keys()):
            if reranker["config"].pop(field) is not None:
                dropped.append(f"reranker.config.{field}")
    if warn and dropped:
        warnings.warn(
            f"{', '.join(dropped)} is a secret: it is used now but not saved in pipeline.json. "
            "Later opens read it from the environment (see the component's *_env option)",
            stacklevel=3)
    return data


def with_component_settings(config: PipelineConfig, settings: Mapping[str, Any],
                            registry: ComponentRegistry) -> PipelineConfig:
    """``config`` with each setting given to every component (index, encoder, transform,
    reranker) whose config has that field marked query-time: e.g. ``{"device": "cuda"}``
    reaches the onnx encoders and cross-encoder, whatever the pipeline names them. Only
    query-time fields, so an existing index still opens with its saved pipeline.
    ``ConfigError`` when no component of the pipeline takes a setting."""
    data = config.model_dump(mode="json")
    parts: list[tuple[ComponentKind, str, dict[str, Any]]] = []
    for r in data["retrievers"]:
        for kind, name_key, cfg_key in _RETRIEVER_PARTS:
            if r.get(name_key):
                parts.append((kind, r[name_key], r.setdefault(cfg_key, {})))
    if data.get("reranker"):
        parts.append(("reranker", data["reranker"]["name"], data["reranker"]["config"]))
    for field, value in settings.items():
        took = False
        for kind, name, cfg in parts:
            if field in _query_time(registry, kind, name):
                cfg[field], took = value, True
        if not took:
            named = ", ".join(sorted({name for _, name, _ in parts}))
            raise ConfigError(f"no component of pipeline {config.name!r} ({named}) takes the "
                              f"setting {field!r}")
    return PipelineConfig.model_validate(data)


def _query_time(registry: ComponentRegistry, kind: ComponentKind, name: str) -> set[str]:
    config = _config_class(registry, kind, name)
    return query_time_fields(config) if config is not None else set()
