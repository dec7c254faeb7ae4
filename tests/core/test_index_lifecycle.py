"""A failed create leaves no index folder; ``stats`` reports what the index takes on disk."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

import trawl
from tests.conftest import HASHING_PIPELINE
from trawl.storage import folder_sizes

BAD_PIPELINE = {"name": "bad", "retrievers": [
    {"name": "d", "index": "exact", "encoder": "hashing", "encoder_config": {"dim": "wide"}}]}


def test_a_failed_create_removes_only_the_folder_it_created(host: trawl.PluginHost,
                                                            tmp_path: Path) -> None:
    fresh = tmp_path / "indexes" / "new"
    with pytest.raises(trawl.ConfigError, match="'dim'"):
        trawl.Trawl.open(fresh, pipeline=BAD_PIPELINE, host=host)
    assert not fresh.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(trawl.ConfigError):
        trawl.Trawl.open(mine, pipeline=BAD_PIPELINE, host=host)
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"
    with trawl.Trawl.open(fresh, pipeline=HASHING_PIPELINE, host=host) as t:  # still usable
        t.add(["hello"])


def test_stats_reports_allocated_and_apparent_size(host: trawl.PluginHost,
                                                   tmp_path: Path) -> None:
    folder = tmp_path / "idx"
    with trawl.Trawl.open(folder, pipeline=HASHING_PIPELINE, host=host) as t:
        t.add(["some text to store"])
        before = t.stats()
        sparse = folder / "preallocated.bin"
        with open(sparse, "wb") as fh:
            fh.truncate(64 * 1024 * 1024)  # like a preallocated segment: size, no blocks
        after = t.stats()
    if os.stat(sparse).st_blocks * 512 >= 64 * 1024 * 1024:
        pytest.skip("this file system does not keep sparse files")
    assert before["disk_bytes"] > 0 and before["apparent_bytes"] > 0
    assert after["apparent_bytes"] - before["apparent_bytes"] == 64 * 1024 * 1024
    assert after["disk_bytes"] - before["disk_bytes"] < 1024 * 1024
    allocated, apparent = folder_sizes(folder)  # after close: the same accounting
    assert apparent > 64 * 1024 * 1024 > allocated


def test_folder_sizes_count_hard_links_once_and_skip_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 5000)
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "c").symlink_to(tmp_path / "a")
    allocated, apparent = folder_sizes(tmp_path)
    assert apparent == 5000 and allocated == os.stat(tmp_path / "a").st_blocks * 512



@pytest.mark.skipif("bm25" not in trawl.PluginHost().registry.names("index"),
                    reason="trawl_bm25 plugin not available")
def test_cli_stats_prints_allocated_and_apparent_size(tmp_path: Path) -> None:
    import subprocess
    import sys

    folder = tmp_path / "idx"
    with trawl.Trawl.open(folder, pipeline="bm25", show_progress=False) as t:
        t.add(["some text to store"])
    env = {**os.environ, "TRAWL_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "trawl.cli", "stats", "--index", str(folder)],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert re.fullmatch(r"\d+ \(\d+\.\d KiB allocated on disk\)", lines["disk_bytes"])
    assert re.fullmatch(r"\d+ \(\d+\.\d KiB\)", lines["apparent_bytes"])
