from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import trawl
from tests.conftest import dataset

needs_bm25 = pytest.mark.skipif("bm25" not in trawl.PluginHost().registry.names("index"),
                                reason="trawl_bm25 plugin not available")


def _trawl(*args: str, env_home: Path) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, "TRAWL_HOME": str(env_home), "TRAWL_CACHE_DIR": str(env_home / "cache")}
    return subprocess.run([sys.executable, "-m", "trawl.cli", *args], capture_output=True,
                          text=True, env=env, check=False)


@needs_bm25
def test_eval_prints_json_with_the_documented_keys(tmp_path: Path) -> None:
    out = _trawl("eval", str(dataset("limit-small")), "--pipeline", "bm25", "--json",
                 "--max-queries", "200", env_home=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("dataset", "pipeline", "queries", "ndcg@10", "recall@10", "recall@100", "mrr@10",
                "latency_ms_p50", "latency_ms_p95"):
        assert key in data
    assert data["dataset"] == "limit-small" and data["queries"] == 200
    assert data["ndcg@10"] > 0.9  # LIMIT is easy for lexical retrieval
    run_lines = Path(data["run_file"]).read_text().splitlines()
    assert run_lines and len(run_lines[0].split()) == 6


@needs_bm25
def test_search_json_and_filters(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with trawl.Trawl.open(index, pipeline="bm25", show_progress=False) as t:
        t.add([{"id": "a", "text": "reciprocal rank fusion combines rankings", "year": 2009},
               {"id": "b", "text": "rank fusion of lexical and dense retrieval", "year": 2023}])
    out = _trawl("search", "rank fusion", "--index", str(index), "--json", "--where",
                 "year>=2020", env_home=tmp_path)
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)["hits"]
    assert [h["doc_id"] for h in hits] == ["b"]


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    out = _trawl("search", "x", "--index", str(tmp_path / "missing"), env_home=tmp_path)
    assert out.returncode == 1
    assert "no trawl index at" in out.stderr and "Traceback" not in out.stderr
    out = _trawl("eval", str(tmp_path), "--pipeline", "bm25", env_home=tmp_path)
    assert out.returncode == 1 and "corpus.jsonl" in out.stderr and "Traceback" not in out.stderr
    out = _trawl("eval", str(tmp_path), "--pipeline", "no-such-pipeline", env_home=tmp_path)
    assert out.returncode == 1 and "unknown pipeline" in out.stderr


@needs_bm25
def test_index_flags_reach_the_walker_and_readers(tmp_path: Path) -> None:
    root = tmp_path / "notes"
    root.mkdir()
    (root / "big.md").write_text("a large note about turbines " * 200, encoding="utf-8")
    (root / "latin.txt").write_bytes("crème brûlée recipe".encode("cp1252"))
    (root / ".hidden.md").write_text("hidden note on pumps", encoding="utf-8")
    (root / ".gitignore").write_text("ignored.md\n", encoding="utf-8")
    (root / "ignored.md").write_text("ignored note on valves", encoding="utf-8")
    idx = str(tmp_path / "idx")
    plain = _trawl("index", str(root), "--index", idx, "--pipeline", "bm25", "--json",
                   "--max-bytes", "1000", env_home=tmp_path)
    assert plain.returncode == 0, plain.stderr
    report = json.loads(plain.stdout)
    reasons = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
    assert "file too large" in reasons["big.md"]
    assert reasons["latin.txt"].startswith("not valid UTF-8")
    assert report["added"] == 0
    every = _trawl("index", str(root), "--index", idx, "--json", "--encoding", "cp1252",
                   "--hidden", "--no-ignore-files", env_home=tmp_path)
    assert every.returncode == 0, every.stderr
    report = json.loads(every.stdout)
    assert report["added"] == 5 and not report["skipped"]  # .gitignore itself is text too
    bad = _trawl("index", str(root), "--index", idx, "--max-bytes", "0", env_home=tmp_path)
    assert bad.returncode == 2 and "--max-bytes" in bad.stderr
