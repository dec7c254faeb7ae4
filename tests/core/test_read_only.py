"""Read-only and repeated opens: no rewrite on open, searches in read-only folders, a typed
error for every write there, and a clear error for a second open in one process."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HASHING_PIPELINE, HashingPlugin
from trawl import IndexLockedError, IndexReadOnlyError, PluginHost, Trawl

DOCS = [{"id": f"d{i}", "text": f"alpha beta document {i} gamma", "year": 2000 + i}
        for i in range(12)]
REPO = Path(__file__).resolve().parents[2]


def _host() -> PluginHost:
    """Entry-point plugins (bm25) plus the tests' hashing encoder (an exact vector index)."""
    return PluginHost(plugins=[("hashing-test", HashingPlugin)])


def _snapshot(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every file's inode, size and mtime: a rewrite (atomic rename) changes the inode."""
    out = {}
    for p in sorted(folder.rglob("*")):
        st = p.stat()
        out[str(p.relative_to(folder))] = (st.st_ino, st.st_size, st.st_mtime_ns)
    return out


def _build(folder: Path, pipeline: object = "bm25") -> None:
    with Trawl.open(folder, pipeline=pipeline, host=_host(), attach=False,
                    show_progress=False) as t:
        t.add(DOCS)


def test_open_rewrites_nothing_when_nothing_changed(tmp_path: Path) -> None:
    _build(tmp_path / "idx")
    before = (tmp_path / "idx" / "pipeline.json").stat()
    with Trawl.open(tmp_path / "idx", attach=False) as t:
        assert not t.read_only
        assert t.search("document 3", top_k=1)[0].doc_id == "d3"
    after = (tmp_path / "idx" / "pipeline.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_second_open_in_one_process_says_so_and_frees_on_close(tmp_path: Path) -> None:
    _build(tmp_path / "idx")
    first = Trawl.open(tmp_path / "idx", attach=False)
    with pytest.raises(IndexLockedError, match="already open in this process"):
        Trawl.open(tmp_path / "idx", attach=False)
    assert first.search("document 5", top_k=1)[0].doc_id == "d5"  # the first is unharmed
    first.close()
    with Trawl.open(tmp_path / "idx", attach=False) as again:
        assert again.manifest.count() == len(DOCS)


# -- read-only folders: a read-only bind mount when root (modes don't stop root), else modes
PROBE = r"""
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv.pop(1))
from tests.conftest import HashingPlugin
from trawl import PluginHost, Trawl, TrawlError
host = PluginHost(plugins=[("hashing-test", HashingPlugin)])
out = {}
for folder in sys.argv[1:]:
    r = out[Path(folder).name] = {}
    try:
        t = Trawl.open(folder, host=host, attach=False, show_progress=False)
    except TrawlError as exc:
        r["open"] = type(exc).__name__ + ": " + str(exc)
        continue
    r["read_only"] = t.read_only
    r["hits"] = [h.doc_id for h in t.search("document 3", top_k=2)]
    r["filtered"] = [h.doc_id for h in t.search("document", top_k=20,
                                                 filters={"field": "year", "op": ">=", "value": 2010})]
    r["get"] = [d.id for d in t.get(["d1"])]
    for name, call in [("add", lambda: t.add([{"id": "n", "text": "new"}])),
                       ("delete", lambda: t.delete(["d1"])),
                       ("update_metadata", lambda: t.update_metadata("d1", {"x": 1}))]:
        try:
            call()
            r[name] = "stored"
        except TrawlError as exc:
            r[name] = type(exc).__name__
    t.close()
print(json.dumps(out))
"""


def _read_only_mount_works(root: Path) -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c",
         'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && ! touch "$0/x"',
         str(root)], capture_output=True, timeout=30)
    return probe.returncode == 0


def _probe_read_only(root: Path, folders: list[Path]) -> dict[str, dict[str, object]]:
    """Run PROBE over ``folders`` while ``root`` cannot be written by the prober."""
    args = [sys.executable, "-c", PROBE, str(REPO), *map(str, folders)]
    if os.geteuid() == 0:
        if not _read_only_mount_works(root):
            pytest.skip("running as root without mount namespaces: cannot make a folder "
                        "read-only for this process")
        cmd = ["unshare", "-m", "sh", "-c",
               'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"',
               str(root), *args]
    else:
        for p in [root, *root.rglob("*")]:
            p.chmod(stat.S_IMODE(p.stat().st_mode) & ~0o222)
        cmd = args
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    finally:
        if os.geteuid() != 0:
            for p in [root, *root.rglob("*")]:
                p.chmod(stat.S_IMODE(p.stat().st_mode) | 0o200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    result: dict[str, dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture
def shared_root() -> Iterator[Path]:
    # under /tmp directly: a bind mount of pytest's tmp_path would do too, but the
    # folder must be a real path this process can mount over
    root = Path(tempfile.mkdtemp(prefix="trawl-ro-"))
    try:
        yield root
    finally:
        for p in [root, *root.rglob("*")]:
            if not p.is_symlink():
                p.chmod(stat.S_IMODE(p.stat().st_mode) | 0o700)
        shutil.rmtree(root, ignore_errors=True)


def test_read_only_folder_opens_for_search_and_refuses_writes(shared_root: Path) -> None:
    _build(shared_root / "lexical")
    _build(shared_root / "vectors", HASHING_PIPELINE)
    before = _snapshot(shared_root)
    out = _probe_read_only(shared_root, [shared_root / "lexical", shared_root / "vectors"])
    for name in ("lexical", "vectors"):
        r = out[name]
        assert r["read_only"] is True, r
        assert r["hits"] and r["hits"][0] == "d3", r  # type: ignore[index]
        assert sorted(r["filtered"]) == ["d10", "d11"], r  # type: ignore[arg-type]
        assert r["get"] == ["d1"]
        assert (r["add"], r["delete"], r["update_metadata"]) == ("IndexReadOnlyError",) * 3
    assert _snapshot(shared_root) == before  # nothing in the folder was touched


def test_read_only_manifest_opens_read_only(shared_root: Path) -> None:
    _build(shared_root / "idx")
    manifest = shared_root / "idx" / "manifest.sqlite"
    if os.geteuid() == 0:  # a 0400 file does not stop root: mount the file read-only
        r = _probe_read_only(manifest, [shared_root / "idx"])["idx"]
        assert r["read_only"] is True and r["hits"][0] == "d3", r  # type: ignore[index]
        assert r["add"] == "IndexReadOnlyError", r
        return
    manifest.chmod(0o400)
    with Trawl.open(shared_root / "idx", host=_host(), attach=False) as t:
        assert t.read_only
        assert t.search("document 4", top_k=1)[0].doc_id == "d4"
        with pytest.raises(IndexReadOnlyError, match=r"manifest\.sqlite"):
            t.add([{"id": "n", "text": "new"}])


def test_missing_index_in_a_read_only_folder_is_a_typed_error(shared_root: Path) -> None:
    (shared_root / "empty").mkdir()
    out = _probe_read_only(shared_root, [shared_root / "empty"])
    assert str(out["empty"]["open"]).startswith("IndexReadOnlyError"), out
