"""Third-party plugins: the example plugin installed with pip and used through the CLI, and
broken plugins (import error, failing hook) listed with their error while others work."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import trawl
from tests.conftest import HASHING_PIPELINE, HashingPlugin
from tests.plugins.ingest_support import REPO
from tests.plugins.wheels import OverlayVenv
from trawl.distribution import own_distribution
from trawl.testing import write_fake_plugin

HELLO = REPO / "examples" / "trawl-plugin-hello"
TRAWL = Path(sys.executable).parent / "trawl"


def _trawl(*args: str, env: dict[str, str] | None = None,
           timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(TRAWL), *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _plugins_json(env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    proc = _trawl("plugins", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


# -- the example plugin's own test suite (runs without installing it) ----------------------
def test_example_plugin_passes_its_own_conformance_tests() -> None:
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(HELLO)], capture_output=True, text=True, timeout=300, cwd=HELLO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout


# -- trawl install into a throwaway venv over the test environment (wheels.py) ------------
@pytest.fixture(scope="module")
def hello_venv(tmp_path_factory: pytest.TempPathFactory) -> OverlayVenv:
    """The example plugin installed (editable) with `trawl install`, in a venv of its own:
    the developer's environment is never changed."""
    if own_distribution() is None:
        pytest.skip("trawl is not installed (pip needs its metadata)")
    venv = OverlayVenv.create(tmp_path_factory.mktemp("hello") / "venv")
    proc = venv.trawl("install", "-e", "--no-deps", str(HELLO), cwd=REPO)
    if proc.returncode != 0:
        pytest.fail(f"trawl install failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return venv


def _plugins_in(venv: OverlayVenv) -> list[dict[str, Any]]:
    proc = venv.trawl("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


@pytest.mark.plugin_install
def test_installed_plugin_is_listed_and_used_through_trawl_search(hello_venv: OverlayVenv,
                                                                  tmp_path: Path) -> None:
    hello = next(p for p in _plugins_in(hello_venv) if p["name"] == "hello")
    assert hello["distribution"] == "trawl-plugin-hello" and hello["version"] == "0.1.0"
    assert hello["error"] is None
    assert sorted(hello["hooks"]) == ["register_indexes", "register_readers",
                                      "register_rerankers"]
    assert {(c["kind"], c["name"]) for c in hello["components"]} == {
        ("index", "tfidf"), ("reranker", "phrase-boost"), ("reader", "ini")}

    index = str(tmp_path / "idx")
    proc = hello_venv.trawl("index", "examples/corpus", "--index", index, "--pipeline",
                            str(HELLO / "pipeline.toml"), "--json", cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["added"] > 20
    proc = hello_venv.trawl("search", '"rank fusion"', "--index", index, "--json", "-k", "3")
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)["hits"]
    assert hits[0]["doc_id"] == "corpus/reciprocal-rank-fusion.md"
    assert set(hits[0]["scores_by_source"]) == {"tfidf", "phrase-boost"}
    assert "rank fusion" in hits[0]["text"].lower()


@pytest.mark.plugin_install
def test_broken_installed_plugin_is_listed_and_uninstall_still_works(hello_venv: OverlayVenv,
                                                                    tmp_path: Path) -> None:
    src = tmp_path / "trawl-plugin-broken"
    (src / "trawl_plugin_broken").mkdir(parents=True)
    (src / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["hatchling>=1.24"]
        build-backend = "hatchling.build"

        [project]
        name = "trawl-plugin-broken"
        version = "0.0.1"

        [project.entry-points.trawl]
        broken = "trawl_plugin_broken"

        [tool.hatch.build.targets.wheel]
        packages = ["trawl_plugin_broken"]
    """))
    (src / "trawl_plugin_broken" / "__init__.py").write_text(
        "raise RuntimeError('this plugin is broken on purpose')\n")
    # `trawl install` would roll it back (test_install.py): plain pip puts it there
    proc = hello_venv.run("-m", "pip", "install", "--no-deps", str(src))
    assert proc.returncode == 0, proc.stderr[-2000:]
    try:
        plugins = {p["name"]: p for p in _plugins_in(hello_venv)}
        broken = plugins["broken"]
        assert broken["distribution"] == "trawl-plugin-broken"
        assert broken["version"] == "0.0.1"
        assert "broken on purpose" in broken["error"] and "'broken'" in broken["error"]
        assert plugins["hello"]["error"] is None  # the others keep working
        index = str(tmp_path / "idx")
        proc = hello_venv.trawl("index", str(HELLO / "README.md"), "--index", index,
                                "--pipeline", str(HELLO / "pipeline.toml"), "--json")
        assert proc.returncode == 0, proc.stderr
        assert hello_venv.trawl("search", "plugin", "--index", index, "--json").returncode == 0
    finally:
        proc = hello_venv.trawl("uninstall", "-y", "trawl-plugin-broken")
    assert proc.returncode == 0, proc.stderr
    assert "broken" not in {p["name"] for p in _plugins_in(hello_venv)}


# -- broken plugins without pip: a fake dist-info on sys.path --------------------------------
@pytest.fixture
def fake_plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_fake_plugin(tmp_path, "trawl-fake-import", "fake_import", "trawl_fake_import", version="0.3", code="""
        raise ImportError("No module named 'some_missing_backend'")
    """)
    write_fake_plugin(tmp_path, "trawl-fake-hook", "fake_hook", "trawl_fake_hook", version="0.3", code="""
        import trawl

        @trawl.hookimpl
        def register_indexes(register):
            raise ValueError("hook exploded")
    """)
    write_fake_plugin(tmp_path, "trawl-fake-good", "fake_good", "trawl_fake_good", version="0.3", code="""
        import trawl
        from trawl.builtin import ExactIndex

        class GoodIndex(ExactIndex):
            pass

        @trawl.hookimpl
        def register_indexes(register):
            register(GoodIndex, name="fake-good")
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    yield tmp_path
    for name in ("trawl_fake_import", "trawl_fake_hook", "trawl_fake_good"):
        sys.modules.pop(name, None)


def test_plugin_that_raises_at_import_or_in_a_hook(fake_plugins: Path) -> None:
    host = trawl.PluginHost(plugins=[("hashing-test", HashingPlugin)])
    errors = {e.entry_point: e for e in host.errors}
    imp = errors["fake_import"]
    assert imp.distribution == "trawl-fake-import"
    assert isinstance(imp.cause, ImportError) and "some_missing_backend" in str(imp)
    assert "'fake_import'" in str(imp) and "'trawl-fake-import'" in str(imp)
    hook = errors["fake_hook"]
    assert hook.distribution == "trawl-fake-hook" and "hook exploded" in str(hook)
    infos = {i.name: i for i in host.plugin_infos()}
    assert "some_missing_backend" in (infos["fake_import"].error or "")
    assert infos["fake_import"].version == "0.3"
    assert "hook exploded" in (infos["fake_hook"].error or "")
    assert infos["fake_good"].error is None and infos["fake_good"].distribution == "trawl-fake-good"
    # every other plugin still works, the fake good one included
    assert {"exact", "fake-good"} <= set(host.registry.names("index"))
    pipeline = {**HASHING_PIPELINE,
                "retrievers": [{"name": "dense", "index": "fake-good", "encoder": "hashing"}]}
    with trawl.Trawl.memory(pipeline, host=host) as t:
        t.add([{"id": "a", "text": "plugins that fail must not take the host down"}])
        assert t.search("host down", 1)[0].doc_id == "a"


def test_trawl_plugins_cli_lists_the_broken_plugin(fake_plugins: Path) -> None:
    if not TRAWL.exists():
        pytest.skip("trawl console script not installed")
    env = {"PYTHONPATH": f"{fake_plugins}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    plugins = {p["name"]: p for p in _plugins_json(env)}
    assert plugins["fake_import"]["distribution"] == "trawl-fake-import"
    assert "some_missing_backend" in plugins["fake_import"]["error"]
    assert plugins["fake_good"]["error"] is None
    assert _trawl("plugins", env=env).returncode == 0  # the table view too
