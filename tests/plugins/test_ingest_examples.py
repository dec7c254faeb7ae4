"""The examples and the README's main command run as documented (bm25: no model needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import dataset
from tests.plugins.ingest_support import REPO

CORPUS = REPO / "examples" / "corpus"
TRAWL = Path(sys.executable).parent / "trawl"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, cwd=REPO,
                          env={**os.environ, **(env or {})})


def test_example_corpus_is_small_original_prose() -> None:
    files = sorted(p for p in CORPUS.iterdir() if p.is_file())
    assert 20 <= len(files) <= 40
    assert all(p.suffix in (".md", ".txt") for p in files)
    assert all(80 <= len(p.read_text(encoding="utf-8").split()) <= 400 for p in files)


def test_rag_minimal_prints_a_cited_prompt_without_an_llm() -> None:
    proc = _run(sys.executable, "examples/rag_minimal.py", "-q",
                "What does the constant k do in reciprocal rank fusion?", "--max-tokens", "400")
    assert proc.returncode == 0, proc.stderr
    assert "no LLM configured" in proc.stderr
    out = proc.stdout
    assert out.startswith("Answer the question using only the numbered sources")
    assert "[1] Reciprocal rank fusion — " in out and "reciprocal-rank-fusion.md (chars" in out
    assert out.rstrip().endswith("Answer:")


def test_rag_minimal_calls_a_configured_llm(tmp_path: Path) -> None:
    (tmp_path / "fake_llm.py").write_text(
        "def complete(prompt):\n    return 'ANSWER from %d chars of prompt' % len(prompt)\n")
    proc = _run(sys.executable, "examples/rag_minimal.py",
                env={"TRAWL_LLM": "fake_llm:complete",
                     "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ANSWER from ")


def test_eval_beir_example_agrees_with_pytrec_eval() -> None:
    path = dataset("limit-small")
    proc = _run(sys.executable, "examples/eval_beir.py", str(path), "--max-queries", "100",
                "--check")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "| limit-small | bm25 | 100 |" in proc.stdout and "pytrec_eval: nDCG@10" in proc.stdout


@pytest.mark.skipif(not TRAWL.exists(), reason="trawl console script not installed")
def test_readme_main_command_indexes_and_searches_the_corpus(tmp_path: Path) -> None:
    index = str(tmp_path / "idx")
    proc = _run(str(TRAWL), "index", "examples/corpus", "--index", index, "--pipeline", "bm25",
                "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["added"] == len(list(CORPUS.iterdir())) and report["skipped"] == []
    again = json.loads(_run(str(TRAWL), "index", "examples/corpus", "--index", index,
                            "--json").stdout)
    assert (again["added"], again["unchanged"]) == (0, report["added"])
    proc = _run(str(TRAWL), "search", "how does reciprocal rank fusion work", "--index", index,
                "--json")
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)["hits"]
    assert hits[0]["doc_id"] == "corpus/reciprocal-rank-fusion.md"
