"""Which installed distribution is this trawl, and which import packages are its own.

The distribution is ``trawl-rag``: ``trawl`` on PyPI is an unrelated project, so a plain
``pip install trawl`` installs something else. The import package and the command stay
``trawl``. Reads installed metadata only and imports nothing else from trawl, so errors,
lifecycle and install can all use it.
"""

from __future__ import annotations

import re
from importlib import metadata

DISTRIBUTION = "trawl-rag"
IMPORT_PACKAGE = "trawl"
COMMAND = "trawl"
ENTRY_POINT_GROUP = "trawl"


def normalize(name: str) -> str:
    """PEP 503 normalisation: ``Trawl_Foo`` and ``trawl-foo`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def own_distribution() -> metadata.Distribution | None:
    """The installed distribution of this trawl, or ``None`` when run from a source tree.

    ``trawl-rag`` when installed; else (an environment installed before the rename) the
    distribution whose ``trawl`` console script runs ``trawl.cli:main``.
    """
    try:
        return metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    for ep in metadata.entry_points(group="console_scripts", name=COMMAND):
        if ep.value.replace(" ", "") == "trawl.cli:main" and ep.dist is not None:
            return ep.dist
    return None


def own_distribution_name() -> str:
    """The name of this trawl's distribution as installed (``trawl-rag`` from source)."""
    dist = own_distribution()
    return str(dist.metadata["Name"]) if dist is not None else DISTRIBUTION


def own_version() -> str:
    """trawl's version: ``trawl.__version__``, the one place it is written."""
    from . import __version__

    return __version__


def builtin_packages() -> set[str]:
    """Top-level import packages that belong to trawl: ``trawl`` and each built-in plugin's
    (from the entry points trawl's own distribution declares, so editable installs count)."""
    packages = {IMPORT_PACKAGE}
    dist = own_distribution()
    if dist is not None:
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                packages.add(ep.value.split(":")[0].split(".")[0].strip())
    return packages
