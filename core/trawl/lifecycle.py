"""Which distributions ``trawl uninstall`` may remove: plugins only, never trawl itself.

Read from installed metadata alone (``importlib.metadata``), so it works while a plugin is
broken: no plugin is imported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata

from .distribution import ENTRY_POINT_GROUP, IMPORT_PACKAGE, normalize, own_distribution_name
from .errors import InputError

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _required_names(dist: metadata.Distribution) -> list[str]:
    """Names a distribution always needs (requirements behind an ``extra`` are optional).

    Only the names matter, so a regex suffices; a requirement with any other marker
    (``python_version`` ...) counts as needed, which errs on the side of keeping it.
    """
    names = []
    for req in dist.requires or []:
        _, _, marker = req.partition(";")
        if "extra" in marker:
            continue
        match = _NAME.match(req)
        if match:
            names.append(match.group(1))
    return names


def protected_distributions(root: str | None = None) -> set[str]:
    """trawl, pip, and everything trawl's core needs (transitively), normalised."""
    root = root or own_distribution_name()
    keep = {normalize(root), "pip"}
    todo = [root]
    while todo:
        try:
            dist = metadata.distribution(todo.pop())
        except metadata.PackageNotFoundError:
            continue
        for name in _required_names(dist):
            if normalize(name) not in keep:
                keep.add(normalize(name))
                todo.append(name)
    return keep


@dataclass(frozen=True)
class UninstallTarget:
    given: str         # what the user typed
    distribution: str  # the distribution pip will remove
    plugins: tuple[str, ...]  # its entry points in the ``trawl`` group


def _plugin_dists() -> dict[str, tuple[str, list[str]]]:
    """Normalised distribution name -> (its name, its trawl entry points)."""
    found: dict[str, tuple[str, list[str]]] = {}
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is None:
            continue
        found.setdefault(normalize(ep.dist.name), (ep.dist.name, []))[1].append(ep.name)
    return found


def resolve_uninstall(names: list[str] | tuple[str, ...]) -> list[UninstallTarget]:
    """Map distribution, entry-point and plugin names to removable plugin distributions.

    Every name is checked before anything is removed; all problems are reported at once.
    """
    plugins = _plugin_dists()
    by_entry_point = {ep: key for key, (_, eps) in plugins.items() for ep in eps}
    protected = protected_distributions()
    own = normalize(own_distribution_name())
    targets: dict[str, UninstallTarget] = {}
    problems: list[str] = []
    for given in names:
        key = normalize(given)
        if key not in plugins and given in by_entry_point:
            key = by_entry_point[given]
        if key == IMPORT_PACKAGE:  # the command's name means trawl-rag, never another dist
            key = own
        if key in protected:
            if key == own and given in by_entry_point and normalize(given) != IMPORT_PACKAGE:
                problems.append(
                    f"{given!r} is a built-in plugin inside the {own!r} distribution; turn it "
                    f"off with TRAWL_DISABLE_PLUGINS={given} instead")
            else:
                problems.append(f"{given!r} is trawl itself or a distribution trawl needs; "
                                "it cannot be removed with trawl uninstall")
            continue
        if key not in plugins:
            try:
                metadata.distribution(given)
            except (metadata.PackageNotFoundError, ValueError):
                problems.append(f"{given!r} is not installed (no distribution or trawl plugin "
                                "of that name; see `trawl plugins`)")
            else:
                problems.append(f"{given!r} is installed but is not a trawl plugin (no "
                                f"'{ENTRY_POINT_GROUP}' entry point); use pip to remove it")
            continue
        dist_name, eps = plugins[key]
        targets.setdefault(key, UninstallTarget(given, dist_name, tuple(sorted(eps))))
    if problems:
        raise InputError("; ".join(problems), title="cannot uninstall")
    return list(targets.values())


def still_installed(targets: list[UninstallTarget]) -> list[str]:
    """The targets' distributions that are still importable-visible after pip ran."""
    left = []
    for target in targets:
        try:
            metadata.distribution(target.distribution)
        except metadata.PackageNotFoundError:
            continue
        left.append(target.distribution)
    return left
