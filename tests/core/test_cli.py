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
