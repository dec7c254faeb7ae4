"""The reference site (docs/site, built by ``mkdocs build --strict`` in CI) documents every
public name: each name in ``trawl.__all__``, each hook specification, each pipeline key,
each conformance kit and its fixture. A meta-test, so a new public name cannot ship
undocumented; it reads the Markdown and resolves each ``::: path`` directive by import
(what mkdocstrings would render), without building the site."""

from __future__ import annotations

import importlib
import re
import types
from pathlib import Path
from typing import Any

import pytest

import trawl
from trawl import hookspecs
from trawl.config import ChunkingConfig, FusionConfig, PipelineConfig, RerankConfig, RetrieverConfig
from trawl.errors import MissingDependencyError

SITE = Path(__file__).resolve().parents[2] / "docs" / "site"
_DIRECTIVE = re.compile(r"^::: (\S+)\s*$")


def _directives() -> list[tuple[str, list[str] | None]]:
    """``(path, members or None)`` for every ``::: path`` in the site's pages."""
    out: list[tuple[str, list[str] | None]] = []
    for page in sorted(SITE.glob("*.md")):
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            m = _DIRECTIVE.match(line)
            if not m:
                continue
            block = []
            for follow in lines[i + 1:]:
                if not follow.startswith("    "):
                    break
                block.append(follow.strip())
            members: list[str] | None = None
            for j, opt in enumerate(block):
                if opt.startswith("members:"):
                    inline = opt[len("members:"):].strip()
                    if inline.startswith("["):
                        members = [x.strip() for x in inline.strip("[]").split(",") if x.strip()]
                    elif inline not in ("false", "true"):
                        members = [x[2:].strip() for x in block[j + 1:] if x.startswith("- ")]
            out.append((m.group(1), members))
    return out


def _resolve(path: str) -> Any:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def _documented() -> tuple[set[int], list[str]]:
    """Ids of every documented object, and the directives that could not be checked
    because an optional framework is missing."""
    ids: set[int] = set()
    unchecked: list[str] = []
    for path, members in _directives():
        try:
            obj = _resolve(path)
        except (ImportError, MissingDependencyError):
            if path.startswith("trawl.integrations."):
                unchecked.append(path)
                continue
            raise
        ids.add(id(obj))
        if members is None and isinstance(obj, types.ModuleType):
            # a whole module: mkdocstrings renders the public objects defined in it
            members = [n for n, v in vars(obj).items() if not n.startswith("_")
                       and getattr(v, "__module__", None) == obj.__name__]
        for name in members or ():
            ids.add(id(getattr(obj, name)))
    return ids, unchecked


def test_every_directive_resolves() -> None:
    directives = _directives()
    assert len(directives) > 30
    _documented()  # raises AttributeError/ImportError naming a broken path


def test_every_public_name_is_documented() -> None:
    ids, _ = _documented()
    missing = [n for n in trawl.__all__ if id(getattr(trawl, n)) not in ids]
    assert missing == [], f"add these to a page under docs/site: {missing}"


def test_every_hookspec_is_documented() -> None:
    ids, _ = _documented()
    specs = [n for n, f in vars(hookspecs).items() if hasattr(f, "trawl_spec")]
    assert {"register_encoders", "register_indexes", "resolve_model_source"} <= set(specs)
    missing = [n for n in specs if id(getattr(hookspecs, n)) not in ids]
    assert missing == [], f"hookspecs missing from docs/site/hooks.md: {missing}"


def test_every_kit_and_fixture_is_documented() -> None:
    from trawl import testing

    ids, _ = _documented()
    missing = [n for n in testing.__all__ if id(getattr(testing, n)) not in ids]
    assert missing == []
    page = (SITE / "testing.md").read_text(encoding="utf-8")
    for fixture in ("make_index", "encoder", "reranker", "transform"):
        assert f"`{fixture}" in page


@pytest.mark.parametrize("model", [PipelineConfig, RetrieverConfig, FusionConfig,
                                   RerankConfig, ChunkingConfig])
def test_every_pipeline_key_is_in_the_toml_reference(model: type) -> None:
    page = (SITE / "pipelines.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", page, flags=re.M))
    missing = sorted(set(model.model_fields) - rows)
    assert missing == [], f"{model.__name__} keys missing from pipelines.md: {missing}"
