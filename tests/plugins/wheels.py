"""Wheels written from files inside a test (no build backend, no network), and a throwaway
virtual environment layered over the test's own, so pip can install into it while the
developer's environment stays untouched."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def make_wheel(out: Path, name: str, version: str = "1.0", *,
               files: Mapping[str, str] = {},
               entry_points: Mapping[str, Mapping[str, str]] = {},
               requires: Sequence[str] = ()) -> Path:
    """A valid py3-none-any wheel of ``files`` with this metadata and entry points."""
    stem = f"{name.replace('-', '_')}-{version}"
    info = f"{stem}.dist-info"
    contents = dict(files)
    contents[f"{info}/METADATA"] = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                    + "".join(f"Requires-Dist: {r}\n" for r in requires))
    contents[f"{info}/WHEEL"] = ("Wheel-Version: 1.0\nGenerator: trawl-tests\n"
                                 "Root-Is-Purelib: true\nTag: py3-none-any\n")
    if entry_points:
        contents[f"{info}/entry_points.txt"] = "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
            for group, eps in entry_points.items())
    record = []
    for path, text in contents.items():
        data = text.encode()
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = "\n".join(record) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    wheel = out / f"{stem}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for path, text in contents.items():
            zf.writestr(path, text)
    return wheel


@dataclass
class OverlayVenv:
    """A venv whose own site-packages is empty and which sees the test environment's
    packages after it (a .pth that adds them as a site dir, so editable installs work).
    pip run by its python installs into it, and never removes what lies outside it."""

    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    @property
    def site_packages(self) -> Path:
        return next((self.root / "lib").glob("python3*/site-packages"))

    @classmethod
    def create(cls, root: Path) -> OverlayVenv:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
        venv = cls(root)
        base = dict.fromkeys([sysconfig.get_paths()["purelib"],
                              sysconfig.get_paths()["platlib"]])
        (venv.site_packages / "_trawl_test_base.pth").write_text(
            "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in base) + "\n")
        return venv

    def env(self, **extra: str) -> dict[str, str]:
        """Offline pip: no index, no build isolation (build backends come from the test
        environment), no user configuration."""
        return {**os.environ, "PIP_NO_INDEX": "1", "PIP_NO_BUILD_ISOLATION": "0",
                "PIP_CONFIG_FILE": os.devnull, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PYTHONDONTWRITEBYTECODE": "1", **extra}

    def run(self, *args: str, timeout: int = 300, cwd: Path | None = None,
            **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.python), *args], capture_output=True, text=True,
                              timeout=timeout, env=self.env(**env), stdin=subprocess.DEVNULL,
                              cwd=cwd)

    def trawl(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "trawl.cli", *args, **env)

    def freeze(self) -> str:
        proc = self.run("-m", "pip", "freeze", "--all")
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def contents(self) -> list[str]:
        """Every path in the venv (its own site-packages and bin), for byte-level checks."""
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*"))
