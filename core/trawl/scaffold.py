"""``trawl plugins new NAME``: a plugin package that installs, loads and passes its tests.

The package follows the naming convention (docs/plugins.md): distribution
``trawl-plugin-NAME``, import package ``trawl_plugin_NAME``, entry point ``NAME`` in the
``trawl`` group. Its one component is a real reranker (query-word overlap) so the
generated conformance test has something to check; authors replace it with their own.
"""

from __future__ import annotations

import re
from pathlib import Path

from .distribution import DISTRIBUTION, ENTRY_POINT_GROUP, own_version
from .errors import InputError

_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
PREFIX = "trawl-plugin-"


def plugin_names(name: str) -> tuple[str, str, str]:
    """(entry-point name, distribution, import package) for a plugin called ``name``."""
    short = name.strip().lower().removeprefix(PREFIX)
    if not _NAME.match(short):
        raise InputError(f"plugin name {name!r} must be lowercase words joined by '-' "
                         "(letters and digits, starting with a letter), e.g. 'word-overlap'",
                         title="cannot create plugin")
    return short, PREFIX + short, (PREFIX + short).replace("-", "_")


def _files(short: str, dist: str, package: str) -> dict[str, str]:
    major, minor = own_version().split(".")[:2]
    cls = "".join(part.title() for part in short.split("-")) + "Reranker"
    return {
        "pyproject.toml": f'''\
[build-system]
requires = ["hatchling>=1.24"]
build-backend = "hatchling.build"

[project]
name = "{dist}"
version = "0.1.0"
description = "A trawl plugin: the {short} reranker."
requires-python = ">=3.11"
dependencies = ["{DISTRIBUTION}>={major}.{minor}"]

[project.optional-dependencies]
test = ["pytest>=8"]

# This entry point is what makes the package a trawl plugin.
[project.entry-points.{ENTRY_POINT_GROUP}]
{short} = "{package}"

[tool.hatch.build.targets.wheel]
packages = ["{package}"]

[tool.pytest.ini_options]
testpaths = ["tests"]
pythonpath = ["."]
''',
        f"{package}/__init__.py": f'''\
"""{dist}: registers the {short!r} reranker with trawl.

Only hooks live here; the component is registered as a "module:Class" string, so
`trawl plugins` lists it without importing its code.
"""

from __future__ import annotations

from typing import Any

import trawl


@trawl.hookimpl
def register_rerankers(register: Any) -> None:
    register("{package}.reranker:{cls}", name="{short}")
''',
        f"{package}/reranker.py": f'''\
"""The {short!r} reranker: hits sharing more of the query's words come first."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import Field

from trawl import ComponentConfig, Hit, Reranker, SourceScore

_WORD = re.compile(r"\\w+")


class {cls}Config(ComponentConfig):
    min_word_chars: int = Field(2, ge=1, description="ignore shorter query words")


class {cls}(Reranker):
    """Score: the share of the query's words found in the hit, plus a tie-breaker that
    keeps the incoming order among equals."""

    Config = {cls}Config

    def rerank(self, query: str, hits: Sequence[Hit], top_k: int | None = None) -> list[Hit]:
        cfg = self.config
        assert isinstance(cfg, {cls}Config)
        words = {{w for w in _WORD.findall(query.lower()) if len(w) >= cfg.min_word_chars}}
        scored = []
        for position, hit in enumerate(hits):
            found = set(_WORD.findall(hit.text.lower()))
            overlap = len(words & found) / len(words) if words else 0.0
            scored.append((overlap + 1.0 / (2 + position), position, hit))
        scored.sort(key=lambda item: (-item[0], item[1]))
        out = []
        for rank, (score, _, hit) in enumerate(scored[:top_k or len(scored)], start=1):
            sources = {{**hit.scores_by_source, self.name: SourceScore(score=score, rank=rank)}}
            out.append(hit.model_copy(update={{"score": score, "rank": rank,
                                              "scores_by_source": sources}}))
        return out
''',
        "tests/test_plugin.py": f'''\
"""trawl's conformance kit for rerankers, plus this plugin's own behaviour."""

from __future__ import annotations

import pytest
from {package}.reranker import {cls}

import trawl
from trawl import ComponentContext, Hit
from trawl.testing import RerankerContract


class Test{cls}(RerankerContract):
    @pytest.fixture
    def reranker(self) -> {cls}:
        return {cls}({cls}.Config(), ComponentContext(name="{short}"))


def test_more_shared_words_rank_higher() -> None:
    reranker = {cls}({cls}.Config(), ComponentContext(name="{short}"))
    hits = [Hit(doc_id=f"d{{i}}", chunk_id=f"d{{i}}#0", score=1.0, rank=i + 1, text=text)
            for i, text in enumerate(["tides and moons", "rank fusion of lists",
                                      "lists merged by rank fusion"])]
    out = reranker.rerank("rank fusion lists", hits, top_k=2)
    assert [h.doc_id for h in out] == ["d1", "d2"]


def test_registered_through_the_hook() -> None:
    import {package}

    host = trawl.PluginHost(entry_points=False, plugins=[("{short}", {package})])
    assert "{short}" in host.registry.names("reranker")
    with pytest.raises(trawl.ConfigError, match="min_word_chars"):
        host.registry.validate_config("reranker", "{short}", {{"min_word_chars": 0}})
''',
        "README.md": f'''\
# {dist}

A trawl plugin with one component, the `{short}` reranker.

```bash
trawl install -e .          # checks it, installs it, loads it once in a child process
trawl plugins               # lists {short} with its reranker
python -m pytest            # trawl's reranker conformance kit plus the plugin's own tests
```

Use it in a pipeline TOML: `[reranker] name = "{short}"`.
''',
    }


def scaffold(name: str, directory: Path | None = None) -> Path:
    """Write a new plugin package; refuses to write into a folder that has files."""
    short, dist, package = plugin_names(name)
    root = directory if directory is not None else Path(dist)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise InputError(f"{root} already exists and is not an empty folder; choose another "
                         "with --dir", title="cannot create plugin")
    for rel, text in _files(short, dist, package).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
