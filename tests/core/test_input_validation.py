"""``trawl eval`` datasets and CLI arguments are checked: a typed, one-line error naming the
file, line and field (or the option), never a traceback or a silently wrong result."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from trawl.errors import InputError
from trawl.evaluation import load_beir

QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\n"
QUERIES = '{"_id": "q1", "text": "first"}\n{"_id": "q2", "text": "second"}\n'
CORPUS = '{"_id": "d1", "title": "A", "text": "alpha"}\n{"_id": "d2", "text": "beta"}\n'


def _dataset(root: Path, *, qrels: str | bytes = QRELS, queries: str | bytes = QUERIES,
             corpus: str | bytes = CORPUS) -> Path:
    (root / "qrels").mkdir(parents=True)
    for rel, content in (("qrels/test.tsv", qrels), ("queries.jsonl", queries),
                         ("corpus.jsonl", corpus)):
        data = content.encode("utf-8") if isinstance(content, str) else content
        (root / rel).write_bytes(data)
    return root


def test_a_well_formed_dataset_loads(tmp_path: Path) -> None:
    data = load_beir(_dataset(tmp_path / "ok"))
    assert data.queries == {"q1": "first", "q2": "second"}
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2}}
    assert [d.id for d in data.corpus()] == ["d1", "d2"]


@pytest.mark.parametrize(("files", "where"), [
    ({"qrels": QRELS + "q1\td2\thigh\n"}, r"qrels/test\.tsv:4: field 'score'.*'high'"),
    ({"qrels": QRELS + "q1\td2\t1.0\n"}, r"qrels/test\.tsv:4: field 'score'.*'1\.0'"),
    ({"qrels": QRELS + "q1\td2\n"}, r"qrels/test\.tsv:4: expected 3 tab-separated"),
    ({"qrels": QRELS + "q1\t\t1\n"}, r"qrels/test\.tsv:4: field 'corpus-id' is empty"),
    ({"qrels": QRELS + "q1\td1\t0\n"}, r"qrels/test\.tsv:4: .*twice \(first on line 2\)"),
    ({"qrels": "query-id\tcorpus-id\tscore\n"}, r"qrels/test\.tsv: no judgments"),
    ({"qrels": QRELS + "q9\td1\t1\n"}, r"qrels/test\.tsv:4: field 'query-id': 'q9' is not in"),
    ({"queries": '{"_id": "q1"}\n'}, r"queries\.jsonl:1: field 'text' is missing"),
    ({"queries": '{"_id": "q1", "text": null}\n'}, r"queries\.jsonl:1: field 'text' is null"),
    ({"queries": '{"_id": "q1", "text": "  "}\n'}, r"queries\.jsonl:1: field 'text' is empty"),
    ({"queries": '{"_id": "q1", "text": 5}\n'}, r"queries\.jsonl:1: field 'text' must be a str"),
    ({"queries": '{"text": "no id"}\n'}, r"queries\.jsonl:1: field '_id' is missing"),
    ({"queries": '{"_id": [1], "text": "x"}\n'}, r"queries\.jsonl:1: field '_id' .*got array"),
    ({"queries": QUERIES + '["q3", "array"]\n'}, r"queries\.jsonl:3: expected a JSON object, "
                                                  "got array"),
    ({"queries": QUERIES + "null\n"}, r"queries\.jsonl:3: expected a JSON object, got null"),
    ({"queries": QUERIES + '{"_id": "q1", "text": "again"}\n'},
     r"queries\.jsonl:3: field '_id': 'q1' is repeated \(first on line 1\)"),
    ({"queries": QUERIES + "{not json\n"}, r"queries\.jsonl:3: invalid JSON"),
    ({"queries": b'{"_id": "q1", "text": "caf\xe9"}\n'},
     r"queries\.jsonl:1: not UTF-8 \(byte 0xe9 at column 27\)"),
    ({"qrels": b"q1\td\xff\t1\n"}, r"qrels/test\.tsv:1: not UTF-8 \(byte 0xff"),
    ({"queries": ""}, r"queries\.jsonl: no queries"),
    ({"queries": "\n\n"}, r"queries\.jsonl: no queries"),
])
def test_malformed_datasets_name_file_line_and_field(tmp_path: Path, files: dict[str, str],
                                                     where: str) -> None:
    root = _dataset(tmp_path / "bad", **files)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=where):
        load_beir(root)


@pytest.mark.parametrize(("corpus", "where"), [
    ('{"_id": "d1", "text": "a"}\n7\n', r"corpus\.jsonl:2: expected a JSON object, got number"),
    ('{"text": "a"}\n', r"corpus\.jsonl:1: field '_id' is missing"),
    ('{"_id": "d1", "text": ["a"]}\n', r"corpus\.jsonl:1: field 'text' must be a string"),
    (b'{"_id": "d1", "text": "\xff"}\n', r"corpus\.jsonl:1: not UTF-8"),
    ("", r"corpus\.jsonl: no documents"),
])
def test_malformed_corpus_rows_are_named_while_streaming(tmp_path: Path, corpus: str,
                                                         where: str) -> None:
    data = load_beir(_dataset(tmp_path / "bad", corpus=corpus))
    with pytest.raises(InputError, match=where):
        list(data.corpus())


def _trawl(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAWL_HOME": str(home), "TRAWL_CACHE_DIR": str(home / "cache")}
    return subprocess.run([sys.executable, "-m", "trawl.cli", *args], capture_output=True,
                          text=True, env=env, check=False, stdin=subprocess.DEVNULL)


def test_eval_with_an_empty_query_file_fails_instead_of_scoring_zero(tmp_path: Path) -> None:
    root = _dataset(tmp_path / "empty", queries="")
    out = _trawl("eval", str(root), "--pipeline", "bm25", "--json", home=tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "queries.jsonl: no queries" in out.stderr
    bad = _dataset(tmp_path / "bad", qrels=QRELS + "q1\td2\thigh\n")
    out = _trawl("eval", str(bad), "--pipeline", "bm25", home=tmp_path)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "test.tsv:4: field 'score'" in out.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["search", "x", "--where", "year>="], "has no value after '>='"),
    (["search", "x", "--where", "year>nan"], "not a finite number"),
    (["search", "x", "--where", "year<-inf"], "not a finite number"),
    (["search", "x", "--filter", "NaN"], "NaN is not a valid filter value"),
    (["search", "x", "--filter", '{"field": "y", "op": ">", "value": Infinity}'],
     "Infinity is not a valid filter value"),
    (["search", "x", "--filter", "[1, 2]"], "expected a JSON object"),
    (["search", "x", "--top-k", "0"], "--top-k"),
    (["index", "docs", "--encoding", "nosuchcodec"], "unknown encoding 'nosuchcodec'"),
    (["index", "docs", "--encoding", "rot13"], "'rot13' is not a text encoding"),
    (["index", "docs", "--include", "["], "'[' at position 0 is never closed"),
    (["index", "docs", "--exclude", "build/[abc"], "never closed"),
    (["eval", ".", "--max-queries", "0"], "--max-queries"),
    (["eval", ".", "--rrf-k", "nan"], "not a finite number"),
])
def test_bad_cli_arguments_are_rejected_in_one_line(tmp_path: Path, args: list[str],
                                                    message: str) -> None:
    out = _trawl(*args, home=tmp_path)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr


def test_bare_trawl_shows_the_help_not_an_error(tmp_path: Path) -> None:
    out = _trawl(home=tmp_path)
    assert out.returncode == 2 and "Error" not in out.stderr
    assert out.stderr.startswith("Usage: trawl") and "\nCommands:\n" in out.stderr
    assert "Plugin commands:" in out.stderr
