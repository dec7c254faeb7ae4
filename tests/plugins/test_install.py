"""`trawl install` checks before it changes anything, and undoes an install whose plugin
does not load; `trawl plugins new` makes a plugin that installs and passes its own tests.

Every install runs in a throwaway venv layered over the test environment (wheels.py), with
pip offline: the wheels are written by the tests, and the developer's venv is never touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.wheels import OverlayVenv, make_wheel
from trawl.distribution import DISTRIBUTION, own_distribution, own_distribution_name

REPO = Path(__file__).resolve().parents[2]
PLUGIN_HOOK = ("import trawl\n\n@trawl.hookimpl\ndef register_rerankers(register):\n"
               "    register('trawl_plugin_ok.impl:Nothing', name='ok-reranker')\n")

pytestmark = pytest.mark.plugin_install


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> OverlayVenv:
    if own_distribution() is None:
        pytest.skip("trawl is not installed (pip needs its metadata to resolve plugins)")
    return OverlayVenv.create(tmp_path_factory.mktemp("install") / "venv")


@pytest.fixture
def wheels(tmp_path: Path) -> Path:
    return tmp_path / "wheels"


def _refused(proc: subprocess.CompletedProcess[str], *reasons: str) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "install refused" in proc.stderr and "Nothing was changed" in proc.stderr
    for reason in reasons:
        assert reason in proc.stderr, proc.stderr


def test_a_wheel_without_a_trawl_entry_point_is_refused(venv: OverlayVenv,
                                                        wheels: Path) -> None:
    wheel = make_wheel(wheels, "plain-lib", files={"plain_lib/__init__.py": "X = 1\n"})
    before, files = venv.freeze(), venv.contents()
    _refused(venv.trawl("install", str(wheel)),
             "plain-lib 1.0 declares no entry point in the 'trawl' group")
    assert venv.freeze() == before and venv.contents() == files


def test_a_wheel_shipping_trawl_files_or_a_trawl_command_is_refused(venv: OverlayVenv,
                                                                    wheels: Path) -> None:
    hijack = make_wheel(wheels, "trawl-plugin-hijack", files={
        "trawl_plugin_hijack/__init__.py": "", "trawl/cli.py": "def main(): print('other')\n"},
        entry_points={"trawl": {"hijack": "trawl_plugin_hijack"}})
    script = make_wheel(wheels, "trawl-plugin-script", files={
        "trawl_plugin_script/__init__.py": "def main(): print('other')\n"},
        entry_points={"trawl": {"script": "trawl_plugin_script"},
                      "console_scripts": {"trawl": "trawl_plugin_script:main"}})
    raw_script = make_wheel(wheels, "trawl-plugin-raw", files={
        "trawl_plugin_raw/__init__.py": "",
        "trawl_plugin_raw-1.0.data/scripts/trawl": "#!python\nprint('other')\n"},
        entry_points={"trawl": {"raw": "trawl_plugin_raw"}})
    builtin = make_wheel(wheels, "trawl-plugin-shadow", files={
        "trawl_plugin_shadow/__init__.py": "", "trawl_bm25/__init__.py": ""},
        entry_points={"trawl": {"shadow": "trawl_plugin_shadow"}})
    files = venv.contents()
    # one command, every reason listed with its distribution
    _refused(venv.trawl("install", str(hijack), str(script), str(raw_script), str(builtin)),
             "trawl-plugin-hijack 1.0 ships files of the package 'trawl'", "trawl/cli.py",
             "trawl-plugin-script 1.0 ships a 'trawl' command (console_scripts: "
             "trawl_plugin_script:main)",
             "trawl-plugin-raw 1.0 ships a 'trawl' command",
             "trawl_plugin_raw-1.0.data/scripts/trawl",
             "trawl-plugin-shadow 1.0 ships files of the package 'trawl_bm25'")
    assert venv.contents() == files
    assert not (venv.root / "bin" / "trawl").exists()
    # trawl still runs this project
    proc = venv.run("-c", "import trawl; print(trawl.__file__)")
    assert Path(proc.stdout.strip()).is_relative_to(REPO), proc.stdout + proc.stderr
    proc = venv.trawl("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("trawl "), proc.stderr


def test_a_wheel_pinning_another_trawl_is_refused_without_force(venv: OverlayVenv,
                                                                wheels: Path) -> None:
    own = own_distribution_name()
    make_wheel(wheels, own, "0.0.1", files={"trawl/__init__.py": ""})
    pinned = make_wheel(wheels, "trawl-plugin-pinned", requires=[f"{own}==0.0.1"],
                        files={"trawl_plugin_pinned/__init__.py": ""},
                        entry_points={"trawl": {"pinned": "trawl_plugin_pinned"}})
    files = venv.contents()
    proc = venv.trawl("install", str(pinned), PIP_FIND_LINKS=str(wheels))
    _refused(proc, f"{own} 0.0.1 would downgrade trawl itself")
    assert f"downgrade {own} " in proc.stderr and "-> 0.0.1" in proc.stderr
    # --force shows exactly what would change (here without doing it: --dry-run)
    proc = venv.trawl("install", "--force", "--dry-run", str(pinned),
                      PIP_FIND_LINKS=str(wheels))
    assert proc.returncode == 0, proc.stderr
    assert "install trawl-plugin-pinned 1.0" in proc.stdout
    assert f"downgrade {own} " in proc.stdout and "--force: installing despite" in proc.stdout
    assert venv.contents() == files


def test_moving_a_requirement_of_trawl_out_of_range_is_refused(venv: OverlayVenv,
                                                               wheels: Path) -> None:
    make_wheel(wheels, "click", "7.0", files={"click/__init__.py": ""})
    old_click = make_wheel(wheels, "trawl-plugin-oldclick", requires=["click==7.0"],
                           files={"trawl_plugin_oldclick/__init__.py": ""},
                           entry_points={"trawl": {"oldclick": "trawl_plugin_oldclick"}})
    files = venv.contents()
    _refused(venv.trawl("install", str(old_click), PIP_FIND_LINKS=str(wheels)),
             "click 7.0 would move click from", "outside the range trawl needs",
             f"{own_distribution_name()} needs click>=8.1")
    assert venv.contents() == files


def test_a_plugin_that_fails_at_import_is_rolled_back(venv: OverlayVenv,
                                                      wheels: Path) -> None:
    broken = make_wheel(wheels, "trawl-plugin-broken", files={
        "trawl_plugin_broken/__init__.py": "raise RuntimeError('broken on purpose')\n"},
        entry_points={"trawl": {"broken": "trawl_plugin_broken"}})
    before, files = venv.freeze(), venv.contents()
    proc = venv.trawl("install", str(broken))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "install rolled back" in proc.stderr
    assert "'broken'" in proc.stderr and "broken on purpose" in proc.stderr
    assert venv.freeze() == before and venv.contents() == files


def test_a_good_plugin_installs_loads_and_shows_in_version(venv: OverlayVenv,
                                                           wheels: Path) -> None:
    good = make_wheel(wheels, "trawl-plugin-ok", "1.2.3", files={
        "trawl_plugin_ok/__init__.py": PLUGIN_HOOK,
        "trawl_plugin_ok/impl.py": "from trawl import Reranker\nclass Nothing(Reranker):\n"
                                   "    def rerank(self, query, hits, top_k=None):\n"
                                   "        return list(hits)[:top_k]\n"},
        entry_points={"trawl": {"ok": "trawl_plugin_ok"}})
    proc = venv.trawl("install", str(good))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "install trawl-plugin-ok 1.2.3" in proc.stdout and "load: ok" in proc.stdout
    try:
        proc = venv.trawl("--version")
        assert "ok" in proc.stdout and "trawl-plugin-ok 1.2.3" in proc.stdout, proc.stdout
        plugins = {p["name"]: p for p in json.loads(venv.trawl("plugins", "--json").stdout)}
        assert plugins["ok"]["error"] is None
        assert plugins["ok"]["components"][0]["name"] == "ok-reranker"
        # installed already: nothing to do, nothing changed
        proc = venv.trawl("install", str(good))
        assert proc.returncode == 0 and "nothing to install" in proc.stdout
    finally:
        venv.run("-m", "pip", "uninstall", "-y", "trawl-plugin-ok")


@pytest.mark.slow  # builds the plugin and runs its test suite: ~20 s
def test_a_scaffolded_plugin_installs_editable_and_passes_its_tests(
        venv: OverlayVenv, tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="builds the plugin offline (test extra)")
    if own_distribution_name() != DISTRIBUTION:
        pytest.skip(f"trawl is installed as {own_distribution_name()!r}, not {DISTRIBUTION!r}: "
                    "reinstall it (.ci/setup) so the plugin's dependency resolves")
    root = tmp_path / "plugin"
    proc = venv.trawl("plugins", "new", "word-overlap", "--dir", str(root))
    assert proc.returncode == 0, proc.stderr
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent))
    if ruff:  # the generated code is clean by this project's own lint rules
        lint = subprocess.run([ruff, "check", "--config", str(REPO / "pyproject.toml"),
                               str(root)], capture_output=True, text=True)
        assert lint.returncode == 0, lint.stdout
    proc = venv.trawl("install", "-e", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "install trawl-plugin-word-overlap 0.1.0 (editable)" in proc.stdout
    try:
        plugins = {p["name"]: p for p in json.loads(venv.trawl("plugins", "--json").stdout)}
        assert plugins["word-overlap"]["distribution"] == "trawl-plugin-word-overlap"
        assert plugins["word-overlap"]["error"] is None
        tests = venv.run("-m", "pytest", "-q", "-p", "no:cacheprovider", str(root / "tests"),
                         cwd=root)
        assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
        assert "6 passed" in tests.stdout
    finally:
        venv.run("-m", "pip", "uninstall", "-y", "trawl-plugin-word-overlap")


def test_a_name_pip_cannot_resolve_fails_with_pips_own_words(venv: OverlayVenv) -> None:
    files = venv.contents()
    proc = venv.trawl("install", "trawl-plugin-no-such-thing")
    assert proc.returncode == 1 and "Error (pip failed)" in proc.stderr
    assert "No matching distribution found for trawl-plugin-no-such-thing" in proc.stderr
    assert "\\n" not in proc.stderr  # pip's lines as lines, not escaped
    assert venv.contents() == files
