"""Installed-looking plugins without pip, for testing discovery and failure reporting."""

from __future__ import annotations

import textwrap
from pathlib import Path


def write_fake_plugin(root: Path, dist: str, entry_point: str, module: str, code: str,
                      *, version: str = "0.3.1") -> None:
    """Write ``<dist>-<version>.dist-info`` (METADATA + a ``[trawl]`` entry point) and
    ``<module>.py`` into ``root``: put ``root`` on ``sys.path`` and ``importlib.metadata``
    finds a real distribution, exactly as for a pip-installed plugin."""
    # dist-info folder names use '_' (a '-' would end the name part)
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[trawl]\n{entry_point} = {module}\n")
    (root / f"{module}.py").write_text(textwrap.dedent(code))
