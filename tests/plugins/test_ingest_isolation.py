"""`trawl index` with bad records and odd file names: report them, store everything else."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import trawl
from tests.conftest import HashingPlugin
from trawl import Trawl
from trawl.ingest import index_paths

HYBRID = {"name": "hyb", "retrievers": [
    {"name": "bm25", "index": "bm25"},
    {"name": "dense", "index": "qdrant", "encoder": "hashing"}]}


def _jsonl(path: Path, rows: list[dict[str, object]], extra: str = "") -> None:
    path.write_text("\n".join(json.dumps(r) for r in rows) + ("\n" + extra if extra else ""),
                    encoding="utf-8")


@pytest.mark.parametrize(("pipeline", "bad"), [
    ("bm25", json.dumps({"id": "bad", "text": "x \ud800 y"})),   # lone surrogate
    (HYBRID, '{"id": "bad", "text": "x", "score": NaN}'),         # NaN metadata
])
def test_edits_next_to_a_bad_record_are_all_stored(tmp_path: Path, pipeline: object,
                                                   bad: str) -> None:
    """The issue's reproduction: 30 documents, 10 edited plus one bad record."""
    corpus = tmp_path / "docs.jsonl"
    rows: list[dict[str, object]] = [{"id": f"k{i}", "text": f"document {i} about things"}
                                     for i in range(30)]
    _jsonl(corpus, rows)
    host = trawl.PluginHost(plugins=[("hashing-test", HashingPlugin)])
    with Trawl.open(tmp_path / "idx", pipeline=pipeline, host=host, show_progress=False) as t:
        index_paths(t, [corpus], show_progress=False)
        for r in rows[:10]:
            r["text"] = f"{r['text']} edited"
        _jsonl(corpus, rows, bad)
        for _ in range(2):  # a re-run converges: same result, nothing lost
            report = index_paths(t, [corpus], show_progress=False)
            assert [(f.path, "field" in f.reason) for f in report.failed] == [
                (f"{corpus}:31", True)]
            assert t.manifest.count() == 30
            for r in t.pipeline.retrievers.values():
                assert r.count() == 30
        assert report.updated == 0 and report.unchanged == 30
        hits = t.search("edited", top_k=30, retrievers=["bm25"])
        assert {h.doc_id for h in hits} == {f"k{i}" for i in range(10)}


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAWL_HOME": str(home), "TRAWL_CACHE_DIR": str(home / "cache")}
    return subprocess.run([sys.executable, "-m", "trawl.cli", *args], capture_output=True,
                          text=True, env=env, check=False)


def test_cli_lists_failed_documents_and_exits_non_zero(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    _jsonl(corpus, [{"id": "a", "text": "alpha"}, {"id": "b", "text": "beta"}],
           json.dumps({"id": "bad", "text": "x", "tags": {"deep": [[[[1e400]]]]}}))
    out = _cli("index", str(corpus), "--index", str(tmp_path / "idx"), "-p", "bm25",
               home=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "2 added" in out.stdout and "1 failed (not stored)" in out.stdout
    assert "'tags.deep[0][0][0][0]': numbers must be finite" in out.stdout
    assert "1 document(s) were not stored" in out.stderr and "Traceback" not in out.stderr
    out = _cli("index", str(corpus), "--index", str(tmp_path / "idx"), "--json", home=tmp_path)
    assert out.returncode == 1
    report = json.loads(out.stdout)
    assert report["unchanged"] == 2 and report["failed"][0]["path"] == f"{corpus}:3"


@pytest.mark.skipif(sys.platform != "linux", reason="needs a byte-named file system")
def test_non_utf8_file_names_are_indexed_and_pruned_correctly(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.txt").write_text("plain good text", encoding="utf-8")
    odd = os.path.join(os.fsencode(docs), b"caf\xe9.txt")
    with open(odd, "wb") as fh:
        fh.write(b"latin one name")
    out = _cli("index", str(docs), "--index", str(tmp_path / "idx"), "-p", "bm25",
               home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 added" in out.stdout
    with Trawl.open(tmp_path / "idx", show_progress=False) as t:
        hit, = t.search("latin", top_k=5)
        assert hit.doc_id == "docs/caf\\xe9.txt"
        assert hit.metadata["path"] == f"{docs}/caf\\xe9.txt"
    # unchanged on a re-run (the file record was found), and --prune keeps the odd file
    os.remove(docs / "good.txt")
    out = _cli("index", str(docs), "--index", str(tmp_path / "idx"), "--prune", "--json",
               home=tmp_path)
    report = json.loads(out.stdout)
    assert (report["unchanged"], report["pruned"]) == (1, 1), out.stderr
    os.remove(odd)
    out = _cli("index", str(docs), "--index", str(tmp_path / "idx"), "--prune", "--json",
               home=tmp_path)
    assert json.loads(out.stdout)["pruned"] == 1
