"""The checks `trawl install` runs on what pip would install, without running pip: each
candidate is what a wheel would bring (its files and entry points)."""

from __future__ import annotations

import os
import sysconfig

import pytest

from trawl.distribution import builtin_packages, own_distribution, own_distribution_name
from trawl.install import Candidate, InstallPlan, check

pytestmark = pytest.mark.skipif(own_distribution() is None,
                                reason="trawl is not installed (checks read its metadata)")


def _plugin(name: str = "trawl-plugin-x", version: str = "1.0", *, files: list[str] | None = None,
            entry_points: dict[str, dict[str, str]] | None = None, requested: bool = True,
            replaces: str | None = None) -> Candidate:
    return Candidate(name=name, version=version, requested=requested, editable=False,
                     source="x.whl", replaces=replaces,
                     files=files or ["trawl_plugin_x/__init__.py"],
                     entry_points={"trawl": {"x": "trawl_plugin_x"}} if entry_points is None
                     else entry_points)


def test_a_clean_plugin_and_its_plain_dependency_pass() -> None:
    dep = Candidate(name="helper-lib", version="1.0", requested=False, editable=False,
                    source="h.whl", replaces=None, files=["helper_lib/__init__.py"])
    assert check([_plugin(), dep]) == []


def test_only_the_requested_distribution_must_be_a_plugin() -> None:
    lib = _plugin("plain-lib", entry_points={}, files=["plain_lib/__init__.py"])
    assert check([lib]) == [
        "plain-lib 1.0 declares no entry point in the 'trawl' group, so it is not a trawl plugin"]
    lib.requested = False
    assert check([lib]) == []


@pytest.mark.parametrize("path,what", [
    ("trawl/__init__.py", "files of the package 'trawl'"),
    ("trawl.py", "files of the package 'trawl'"),
    ("trawl_plugin_x-1.0.data/purelib/trawl/cli.py", "files of the package 'trawl'"),
    ("trawl_plugin_x-1.0.data/scripts/trawl", "a 'trawl' command"),
    ("trawl_plugin_x-1.0.data/data/bin/trawl", "a 'trawl' command"),
])
def test_files_of_trawl_or_its_command_are_refused(path: str, what: str) -> None:
    problems = check([_plugin(files=["trawl_plugin_x/__init__.py", path])])
    assert len(problems) == 1 and what in problems[0] and path in problems[0]


def test_built_in_plugin_packages_and_entry_point_names_are_taken() -> None:
    builtin = sorted(builtin_packages() - {"trawl"})
    if not builtin:
        pytest.skip("this trawl declares no built-in plugins")
    problems = check([_plugin(files=[f"{builtin[0]}/__init__.py"])])
    assert problems and f"files of the package {builtin[0]!r}" in problems[0]
    own = own_distribution()
    assert own is not None
    taken = next(ep.name for ep in own.entry_points if ep.group == "trawl")
    problems = check([_plugin(entry_points={"trawl": {taken: "trawl_plugin_x"}})])
    assert problems == [f"trawl-plugin-x 1.0 declares trawl plugin {taken!r}, which "
                        f"{own_distribution_name()} already provides"]


def test_trawl_itself_and_its_requirements_stay_in_range() -> None:
    own = own_distribution_name()
    itself = _plugin(own, "99.0", requested=False, replaces="0.2.0", entry_points={})
    assert check([itself])[0].startswith(f"{own} 99.0 would upgrade trawl itself")
    old_numpy = _plugin("numpy", "1.0.0", requested=False, replaces="2.0", entry_points={},
                        files=["numpy/__init__.py"])
    (problem,) = check([old_numpy])
    assert "would move numpy from 2.0 to 1.0.0" in problem
    assert f"{own} needs numpy>=1.26" in problem
    new_numpy = _plugin("numpy", "99.0", requested=False, replaces="2.0", entry_points={},
                        files=["numpy/__init__.py"])
    # inside trawl's own range (what else needs numpy may still say no)
    assert not any(f"{own} needs numpy" in p for p in check([new_numpy]))


def test_startup_files_are_shown_not_refused() -> None:
    hook = _plugin(files=["trawl_plugin_x/__init__.py", "trawl_plugin_x_hook.pth",
                          "trawl_plugin_x/data.pth"])
    assert check([hook]) == []
    lines = InstallPlan(candidates=[hook], problems=[]).describe()
    assert lines[0] == "install trawl-plugin-x 1.0"
    assert any(line.strip().startswith("trawl_plugin_x_hook.pth: a .pth file") for line in lines)
    assert not any("data.pth" in line for line in lines)  # not top level: never read


# where site-packages lies under the prefix .data/data files go to (lib/pythonX.Y/...)
_SITE = os.path.relpath(sysconfig.get_paths()["purelib"], sysconfig.get_paths()["data"])


@pytest.mark.parametrize("path,what", [
    ("./trawl/cli.py", "files of the package 'trawl'"),
    ("trawl_plugin_x/../trawl/cli.py", "files of the package 'trawl'"),
    ("Trawl/__init__.py", "files of the package 'Trawl'"),  # case-insensitive file systems
    (f"trawl_plugin_x-1.0.data/data/{_SITE}/trawl/__init__.py", "files of the package 'trawl'"),
    ("trawl_plugin_x-1.0.data/data/bin/../bin/trawl", "a 'trawl' command"),
    ("trawl_plugin_x-1.0.data/purelib/trawl_rag-9.9.dist-info/entry_points.txt",
     "the metadata of another distribution (trawl_rag-9.9.dist-info)"),
    (f"trawl_plugin_x-1.0.data/data/{_SITE}/other-1.0.dist-info/METADATA",
     "the metadata of another distribution (other-1.0.dist-info)"),
])
def test_paths_that_land_on_trawl_by_a_detour_are_refused(path: str, what: str) -> None:
    """Before: each of these was let through (the installer resolves ``.``/``..`` and puts
    ``.data/data`` files under the prefix, so they land in site-packages or bin)."""
    problems = check([_plugin(files=["trawl_plugin_x/__init__.py", path])])
    assert len(problems) == 1 and what in problems[0] and path in problems[0], problems


def test_harmless_data_files_pass_and_a_pth_under_data_is_shown() -> None:
    pth = f"trawl_plugin_x-1.0.data/data/{_SITE}/zz_startup.pth"
    plugin = _plugin(files=["trawl_plugin_x/__init__.py", pth,
                            "trawl_plugin_x-1.0.data/data/share/doc/x/README"])
    assert check([plugin]) == []
    assert plugin.startup_files() == [pth]
    assert any("zz_startup.pth" in line for line in InstallPlan([plugin], []).describe())


@pytest.mark.parametrize("spelling", [str.upper, lambda n: n.replace("-", "_").title(),
                                      lambda n: n.replace("-", ".")])
def test_trawl_itself_under_another_spelling_is_refused(spelling: object) -> None:
    assert callable(spelling)
    name = spelling(own_distribution_name())
    problems = check([_plugin(name, "99.0", replaces="0.2.0")])
    assert len(problems) == 1 and "trawl itself" in problems[0], problems
