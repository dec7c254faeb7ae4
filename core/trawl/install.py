"""``trawl install``: resolve with pip, check what would arrive, install exactly that.

A plain ``pip install NAME`` trusts a name. A look-alike (``trawl-search`` is an unrelated
project) can ship its own top-level ``trawl`` package and ``trawl`` command and take the
installation over. So nothing is changed until pip's own resolver has said what it would
install (``pip install --dry-run --report``) and the wheels of those distributions have
been read (``pip wheel --no-deps``: the files and entry points a wheel ships are only in
the wheel). A distribution is refused when it

* is the one asked for and declares no entry point in the ``trawl`` group (not a plugin),
  or takes an entry-point name another installed distribution already uses;
* ships files of the ``trawl`` package or of a built-in plugin's package;
* ships a ``trawl`` command (console script, script file, or a data file at ``bin/trawl``);
* would replace trawl itself, or move one of the distributions trawl needs outside the
  range trawl (or what trawl needs) declares.

Then pip installs exactly the checked wheels (``--no-deps``: the set was resolved already),
and the new plugin is loaded in a child process (plugin_probe.py). If it fails there,
what was added is uninstalled again and what was replaced is put back.
"""

from __future__ import annotations

import configparser
import importlib
import json
import os
import posixpath
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import parse_wheel_filename
from packaging.version import InvalidVersion, Version

from .distribution import (
    COMMAND,
    ENTRY_POINT_GROUP,
    builtin_packages,
    normalize,
    own_distribution,
    own_distribution_name,
)
from .errors import InputError, TrawlError


class InstallRefused(TrawlError):
    """A distribution ``trawl install`` would install failed a safety check."""

    title = "install refused"

    def __init__(self, problems: Sequence[str], plan: InstallPlan) -> None:
        self.problems = list(problems)
        self.plan = plan
        super().__init__("; ".join(self.problems) + ". Nothing was changed. Pass --force to "
                         "install anyway (after reading what would change)")


class PipError(TrawlError):
    title = "pip failed"


@dataclass
class Candidate:
    """One distribution pip's resolver would install."""

    name: str
    version: str
    requested: bool        # asked for on the command line (not a dependency)
    editable: bool
    source: str            # what `pip wheel` / `pip install -e` is given: a URL or a path
    replaces: str | None   # the installed version it would replace
    wheel: Path | None = None
    files: list[str] = field(default_factory=list)
    entry_points: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return normalize(self.name)

    def startup_files(self) -> list[str]:
        """Top-level ``.pth`` files: not refused (setuptools ships one), but shown."""
        return [path for path in self.files
                if (found := _landing(path)) is not None and found[0] == "site"
                and "/" not in found[1] and found[1].endswith(".pth")]

    def change(self) -> str:
        """One line: what installing this does to the environment."""
        how = " (editable)" if self.editable else ""
        if self.replaces is None:
            return f"install {self.name} {self.version}{how}"
        try:
            verb = ("upgrade" if Version(self.version) > Version(self.replaces) else
                    "downgrade" if Version(self.version) < Version(self.replaces) else
                    "reinstall")
        except InvalidVersion:
            verb = "replace"
        return f"{verb} {self.name} {self.replaces} -> {self.version}{how}"


@dataclass
class InstallPlan:
    candidates: list[Candidate]
    problems: list[str]

    def describe(self) -> list[str]:
        """Exactly what would change: each distribution, and what it brings to trawl."""
        lines = []
        for c in self.candidates:
            lines.append(c.change())
            for name, value in sorted(c.entry_points.get(ENTRY_POINT_GROUP, {}).items()):
                lines.append(f"    trawl plugin {name!r} = {value}")
            for group in ("console_scripts", "gui_scripts"):
                for name, value in sorted(c.entry_points.get(group, {}).items()):
                    lines.append(f"    command {name!r} = {value}")
            for path in c.startup_files():
                lines.append(f"    {path}: a .pth file, read at every Python start (its "
                             "'import' lines run code)")
        return lines


def pip(args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run pip in trawl's own interpreter (plugins land where trawl finds them)."""
    cmd = [sys.executable, "-m", "pip", *args]
    proc = subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL, text=True,
                          capture_output=True)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout or "").strip()[-3000:]
        raise PipError(f"pip exited with status {proc.returncode}: {' '.join(cmd)}"
                       + (f"\n{detail}" if detail else ""))
    return proc


def installed_versions() -> dict[str, tuple[str, str]]:
    """Normalised name -> (name, version) of every distribution on ``sys.path`` (the first
    one found, as pip and imports see it); read afresh on each call."""
    importlib.invalidate_caches()
    found: dict[str, tuple[str, str]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(normalize(name), (str(name), dist.version))
    return found


def _source(item: dict[str, Any]) -> tuple[str, bool]:
    """What pip is given again for one report item, and whether it is editable."""
    info = item["download_info"]
    url = str(info["url"])
    if "dir_info" in info:
        path = unquote(urlparse(url).path)
        return path, bool(info["dir_info"].get("editable"))
    if "vcs_info" in info:
        vcs = info["vcs_info"]
        return f"{vcs['vcs']}+{url}@{vcs['commit_id']}", False
    hashes = info.get("archive_info", {}).get("hashes", {})
    if "sha256" in hashes and "#" not in url:
        url += f"#sha256={hashes['sha256']}"
    return url, False


def resolve(packages: Sequence[str], *, editable: bool, upgrade: bool, no_deps: bool,
            workdir: Path) -> list[Candidate]:
    """What pip would install for this request (``--dry-run --report``: changes nothing)."""
    report_file = workdir / "report.json"
    args = ["install", "--dry-run", "--quiet", "--report", str(report_file),
            "--disable-pip-version-check"]
    if upgrade:
        args.append("--upgrade")
    if no_deps:
        args.append("--no-deps")
    for p in packages:
        args += ["-e", p] if editable else [p]
    pip(args)
    report = json.loads(report_file.read_text(encoding="utf-8"))
    installed = installed_versions()
    found = []
    for item in report.get("install", []):
        meta = item["metadata"]
        source, is_editable = _source(item)
        current = installed.get(normalize(meta["name"]))
        found.append(Candidate(
            name=meta["name"], version=meta["version"],
            requested=bool(item.get("requested")), editable=is_editable, source=source,
            replaces=current[1] if current else None))
    return found


def _read_wheel(candidate: Candidate, wheel: Path) -> None:
    """The files a wheel ships and the entry points it declares."""
    with zipfile.ZipFile(wheel) as zf:
        candidate.files = zf.namelist()
        ep_files = [n for n in candidate.files
                    if n.count("/") == 1 and n.endswith(".dist-info/entry_points.txt")]
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        if ep_files:
            parser.read_string(zf.read(ep_files[0]).decode("utf-8"))
    candidate.wheel = wheel
    candidate.entry_points = {s: dict(parser.items(s)) for s in parser.sections()}


def _local_wheel(source: str) -> Path | None:
    parsed = urlparse(source)
    if parsed.scheme == "file" and parsed.path.endswith(".whl"):
        return Path(unquote(parsed.path))
    return None


def fetch_wheels(candidates: Sequence[Candidate], workdir: Path) -> None:
    """One wheel per candidate, in ``workdir``: local wheels copied (so the file checked is
    the file installed), the rest downloaded or built by ``pip wheel --no-deps``."""
    out = workdir / "wheels"
    out.mkdir()
    remote = []
    for c in candidates:
        local = _local_wheel(c.source)
        if local is not None:
            shutil.copyfile(local, out / local.name)
        else:
            remote.append(c.source)
    if remote:
        pip(["wheel", "--no-deps", "--quiet", "--disable-pip-version-check", "-w", str(out),
             *remote])
    wheels = {}
    for path in out.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        wheels[(normalize(name), str(version))] = path
    for c in candidates:
        try:
            key = (c.key, str(Version(c.version)))
        except InvalidVersion:
            key = (c.key, c.version)
        if key not in wheels:
            raise PipError(f"pip wheel made no wheel for {c.name} {c.version} ({c.source})")
        _read_wheel(c, wheels[key])


def _prefix_relative(key: str) -> str:
    """Where sysconfig's ``key`` folder (site-packages, scripts) lies under the prefix a
    wheel's ``.data/data`` files are installed to, as a wheel path."""
    paths = sysconfig.get_paths()
    return os.path.relpath(paths[key], paths["data"]).replace(os.sep, "/")


def _landing(path: str) -> tuple[str, str] | None:
    """Where a wheel path is installed: ('site', path under site-packages), ('script',
    file name) or ('data', path under the environment's prefix); None for the wheel's
    own metadata and folders.

    The path is normalised first, as the installer's own join resolves it
    (``./trawl/cli.py`` and ``x/../trawl/cli.py`` land at ``trawl/cli.py``), and a
    ``.data/data`` file is followed to where it lands: under site-packages it is a
    module like any other, under the scripts folder a command."""
    if not path or path.endswith("/"):
        return None
    parts = posixpath.normpath(path).split("/")
    if parts[0].endswith(".dist-info"):
        return None  # the wheel's own metadata (pip refuses a second one at the root)
    if not parts[0].endswith(".data") or len(parts) < 3:
        return ("site", "/".join(parts))
    if parts[1] in ("purelib", "platlib"):
        return ("site", "/".join(parts[2:]))
    if parts[1] == "scripts":
        return ("script", parts[-1])
    if parts[1] != "data":
        return None  # headers
    rest = "/".join(parts[2:])
    for key in ("purelib", "platlib"):
        lib = _prefix_relative(key)
        if rest.startswith(lib + "/"):
            return ("site", rest[len(lib) + 1:])
    if rest.startswith(_prefix_relative("scripts") + "/"):
        return ("script", parts[-1])
    return ("data", rest)


def _top_level(path: str) -> tuple[str, str] | None:
    """(kind, name) of what a wheel path installs: ('module', top-level import name),
    ('metadata', a ``.dist-info``/``.egg-info`` folder put into site-packages: a second
    distribution), ('script', file name) or ('data', path under the prefix)."""
    found = _landing(path)
    if found is None or found[0] != "site":
        return found
    parts = found[1].split("/")
    if len(parts) > 1 and parts[0].endswith((".dist-info", ".egg-info")):
        return ("metadata", parts[0])
    return ("module", parts[0].split(".")[0])


def _requirement_guards() -> dict[str, list[tuple[str, Requirement]]]:
    """Normalised name -> (who needs it, requirement): trawl's requirements (those of an
    extra when what they name is installed) and, transitively, what those need."""
    own = own_distribution()
    if own is None:
        return {}
    guards: dict[str, list[tuple[str, Requirement]]] = {}
    seen: set[str] = set()
    todo: list[metadata.Distribution] = [own]
    while todo:
        dist = todo.pop()
        who = str(dist.metadata["Name"])
        if normalize(who) in seen:
            continue
        seen.add(normalize(who))
        for line in dist.requires or []:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.marker is not None:
                is_own = dist is own
                extras = [""] + ([e for e in dist.metadata.get_all("Provides-Extra") or []]
                                 if is_own else [])
                if not any(req.marker.evaluate({"extra": e}) for e in extras):
                    continue
            try:
                needed = metadata.distribution(req.name)
            except metadata.PackageNotFoundError:
                continue  # an extra that is not installed: nothing to keep in range
            guards.setdefault(normalize(req.name), []).append((who, req))
            todo.append(needed)
    return guards


def _entry_point_owners() -> dict[str, str]:
    """Entry-point name in the ``trawl`` group -> the installed distribution declaring it."""
    owners: dict[str, str] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is not None:
            owners.setdefault(ep.name, str(ep.dist.metadata["Name"]))
    return owners


def check(candidates: Sequence[Candidate]) -> list[str]:
    """Every reason to refuse, each naming the distribution and what it would do."""
    problems = []
    own = own_distribution_name()
    protected_packages = {name.lower() for name in builtin_packages()}
    guards = _requirement_guards()
    owners = _entry_point_owners()
    for c in candidates:
        who = f"{c.name} {c.version}"
        if c.key == normalize(own):
            problems.append(f"{who} would {c.change().split(' ')[0]} trawl itself "
                            f"({own} {c.replaces or 'not installed'}): update trawl with pip, "
                            "not as a plugin")
            continue
        plugins = c.entry_points.get(ENTRY_POINT_GROUP, {})
        if c.requested and not plugins:
            problems.append(f"{who} declares no entry point in the {ENTRY_POINT_GROUP!r} "
                            "group, so it is not a trawl plugin")
        for name in sorted(plugins):
            owner = owners.get(name)
            if owner is not None and normalize(owner) != c.key:
                problems.append(f"{who} declares trawl plugin {name!r}, which {owner} "
                                "already provides")
        shipped: dict[str, list[str]] = {}
        for path in c.files:
            found = _top_level(path)
            if found is None:
                continue
            kind, name = found
            # case-blind: on a case-insensitive file system Trawl/ is trawl/
            if kind == "module" and name.lower() in protected_packages:
                shipped.setdefault(f"files of the package {name!r}, which is trawl's own",
                                   []).append(path)
            elif kind == "metadata":  # importlib would see a second distribution
                shipped.setdefault(f"the metadata of another distribution ({name}) "
                                   "into site-packages", []).append(path)
            elif (kind == "script" and name.split(".")[0].lower() == COMMAND) or (
                    kind == "data" and name.lower().split(".")[0] in (
                        f"bin/{COMMAND}", f"scripts/{COMMAND}")):
                shipped.setdefault(f"a {COMMAND!r} command, which is trawl's own",
                                   []).append(path)
        for what, paths in shipped.items():
            problems.append(f"{who} ships {what} "
                            f"({', '.join(paths[:3])}{' ...' if len(paths) > 3 else ''})")
        for group in ("console_scripts", "gui_scripts"):
            if any(n.lower() == COMMAND for n in c.entry_points.get(group, {})):
                problems.append(f"{who} ships a {COMMAND!r} command ({group}: "
                                f"{c.entry_points[group].get(COMMAND, '')}), which would "
                                "replace trawl's")
        broken = [f"{needer} needs {req.name}{req.specifier}"
                  for needer, req in guards.get(c.key, [])
                  if not req.specifier.contains(c.version, prereleases=True)]
        if broken:
            problems.append(f"{who} would move {c.name} from {c.replaces or 'nothing'} to "
                            f"{c.version}, outside the range trawl needs ({'; '.join(broken)})")
    return problems


def plan(packages: Sequence[str], *, editable: bool, upgrade: bool, no_deps: bool,
         workdir: Path) -> InstallPlan:
    """Resolve and check; changes nothing in the environment."""
    for p in packages:
        if editable and not Path(p).is_dir():
            raise InputError(f"-e needs a local project folder, got {p!r}",
                             title="cannot install")
    candidates = resolve(packages, editable=editable, upgrade=upgrade, no_deps=no_deps,
                         workdir=workdir)
    fetch_wheels(candidates, workdir)
    return InstallPlan(candidates=candidates, problems=check(candidates))


def apply(install_plan: InstallPlan) -> None:
    """Install exactly the checked wheels (``-e`` folders from their folder)."""
    args = ["install", "--no-deps", "--disable-pip-version-check"]
    for c in install_plan.candidates:
        if c.editable:
            args += ["-e", c.source]
        else:
            assert c.wheel is not None
            args.append(str(c.wheel))
    pip(args)


def probe_new_plugins(install_plan: InstallPlan) -> list[str]:
    """Load every plugin in a child process; the problems of the newly installed ones."""
    from .plugin_probe import probe_plugins

    report = probe_plugins()
    problems = []
    for c in install_plan.candidates:
        names = set(c.entry_points.get(ENTRY_POINT_GROUP, {}))
        if not names:
            continue
        infos = {i.name: i for i in report.plugins if normalize(i.distribution) == c.key}
        for name in sorted(names):
            info = infos.get(name)
            if info is None:
                problems.append(f"plugin {name!r} of {c.name} was not found after installing")
            elif info.error:
                problems.append(info.error)
    return problems


def rollback(before: dict[str, tuple[str, str]]) -> list[str]:
    """Undo an install: remove what was added, put back the versions that were replaced.
    Returns what could not be undone."""
    after = installed_versions()
    added = [after[k][0] for k in after if k not in before]
    changed = [f"{before[k][0]}=={before[k][1]}" for k in after
               if k in before and after[k][1] != before[k][1]]
    left = []
    if added:
        try:
            pip(["uninstall", "-y", "--disable-pip-version-check", *added])
        except PipError as exc:
            left.append(f"uninstalling {', '.join(added)}: {exc}")
    if changed:
        try:
            pip(["install", "--no-deps", "--disable-pip-version-check", *changed])
        except PipError as exc:
            left.append(f"reinstalling {', '.join(changed)}: {exc}")
    return left


def install(packages: Sequence[str], *, editable: bool = False, upgrade: bool = False,
            no_deps: bool = False, force: bool = False, dry_run: bool = False,
            say: Any = print) -> InstallPlan:
    """The whole of ``trawl install``; ``say`` prints one line for the user."""
    with tempfile.TemporaryDirectory(prefix="trawl-install-") as tmp:
        install_plan = plan(packages, editable=editable, upgrade=upgrade, no_deps=no_deps,
                            workdir=Path(tmp))
        if not install_plan.candidates:
            say(f"nothing to install: {', '.join(packages)} already installed")
            return install_plan
        if install_plan.problems and not force:
            raise InstallRefused(install_plan.problems, install_plan)
        say("would change:" if dry_run else "changes:")
        for line in install_plan.describe():
            say(f"  {line}")
        if install_plan.problems:
            say("--force: installing despite:")
            for problem in install_plan.problems:
                say(f"  {problem}")
        if dry_run:
            return install_plan
        before = installed_versions()
        apply(install_plan)
        failures = probe_new_plugins(install_plan)
        if failures:
            left = rollback(before)
            undone = ("what was installed was removed again" if not left else
                      "rolling back failed too: " + "; ".join(left))
            raise TrawlError("the new plugin does not load: " + "; ".join(failures)
                             + f". {undone[0].upper()}{undone[1:]}", title="install rolled back")
        say("installed; the new plugins load: " + ", ".join(
            sorted(n for c in install_plan.candidates
                   for n in c.entry_points.get(ENTRY_POINT_GROUP, {}))))
    return install_plan
