"""Ingestion throughput and peak memory: files and JSONL through ``trawl.ingest.index_paths``.

    python benchmarks/ingest.py [--quick] [--pipelines bm25,hybrid] [--docs 1000]

Corpora (built from real text, never random words):
- ``scifact corpus.jsonl``: the BEIR file as is (5,183 abstracts, one JSONL file; bm25 only,
  since encoding all of it takes minutes per pipeline on 2 cores).
- ``scifact as files``: the first ``--docs`` abstracts written as one Markdown file each
  (title as a ``#`` heading), in 20 folders.

Each pipeline runs in its own subprocess so its peak RSS (``ru_maxrss``) is its own; the
``RSS before`` column is the process after imports and opening the index, so the growth
is what ingestion itself costs. Runs: cold (everything added), warm re-run (nothing
changed: files skipped by size+mtime without being read), after ``touch`` (read and
hashed, not re-indexed), plus reading + parsing alone (``load_documents``) to separate
reader cost from index cost. Docs/s = documents processed per wall second.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))
OUT = REPO / "benchmarks" / "out"
CORPUS = DATASETS / "scifact" / "corpus.jsonl"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _files_corpus(folder: Path, limit: int) -> int:
    n = 0
    with CORPUS.open(encoding="utf-8") as fh:
        for line in fh:
            if n >= limit:
                break
            row = json.loads(line)
            sub = folder / f"part{n % 20:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            title = row.get("title") or row["_id"]
            (sub / f"{row['_id']}.md").write_text(f"# {title}\n\n{row['text']}\n",
                                                  encoding="utf-8")
            n += 1
    return n


def child(pipeline: str, files: Path, with_jsonl: bool) -> list[dict[str, object]]:
    """One pipeline's runs, in this (fresh) process; returns table rows."""
    from trawl import Trawl
    from trawl.ingest import index_paths, load_documents

    rows: list[dict[str, object]] = []
    t0 = time.perf_counter()
    n_read = sum(1 for d in load_documents([files]) if hasattr(d, "text"))
    read_s = time.perf_counter() - t0
    rows.append({"corpus": "as files", "run": "read + parse only", "docs": n_read,
                 "seconds": read_s})
    sources = [("as files", files)] + ([("corpus.jsonl", CORPUS)] if with_jsonl else [])
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in sources:
            with Trawl.open(Path(tmp) / label.replace(" ", "-"), pipeline=pipeline,
                            show_progress=False) as t:
                t.search("warm up", 1)  # loads models, so RSS before excludes lazy loading
                before = _rss_mb()
                runs = ["cold", "warm (unchanged)"]
                if path.is_dir():  # never touch the shared dataset file
                    runs.append("after touch")
                for run in runs:
                    if run == "after touch":
                        now = time.time() + 5
                        for p in path.rglob("*.md"):
                            os.utime(p, (now, now))
                    report = index_paths(t, [path], show_progress=False)
                    rows.append({"corpus": label, "run": f"{run}: +{report.added} "
                                 f"~{report.updated} ={report.unchanged}",
                                 "docs": report.added + report.updated + report.unchanged,
                                 "chunks": report.chunks, "seconds": report.seconds,
                                 "rss_before": before, "rss_peak": _rss_mb()})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="bm25 only, 300 files")
    ap.add_argument("--pipelines", default="bm25,hybrid")
    ap.add_argument("--docs", type=int, default=1000, help="files in the files corpus")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--files", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if not CORPUS.exists():
        print(f"scifact not found under {DATASETS}", file=sys.stderr)
        return 1
    if args.child:
        rows = child(args.child, Path(args.files), with_jsonl=args.child == "bm25")
        print(json.dumps(rows))
        return 0
    pipelines = ["bm25"] if args.quick else args.pipelines.split(",")
    docs = 300 if args.quick else args.docs
    lines = ["| pipeline | corpus | run | docs | chunks | seconds | docs/s | RSS before MB "
             "| peak RSS MB |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "scifact-files"
        n_files = _files_corpus(files, docs)
        for pipeline in pipelines:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", pipeline, "--files", str(files)],
                text=True, capture_output=True, check=False)
            if proc.returncode != 0:
                lines.append(f"| {pipeline} | failed: {proc.stderr.strip().splitlines()[-1]} "
                             "| | | | | | | |")
                continue
            for r in json.loads(proc.stdout.strip().splitlines()[-1]):
                secs = float(r["seconds"])
                rate = float(r["docs"]) / secs if secs > 0 else 0.0
                rss = (f"{r['rss_before']:.0f} | {r['rss_peak']:.0f}" if "rss_peak" in r
                       else "– | –")
                lines.append(f"| {pipeline} | {r['corpus']} | {r['run']} | {r['docs']} | "
                             f"{r.get('chunks', '–')} | {secs:.2f} | {rate:,.0f} | {rss} |")
            print("\n".join(lines[-4:]), flush=True)
    table = (f"SciFact abstracts: {n_files} Markdown files (`as files`) and the 5,183-line "
             "corpus.jsonl (bm25 only). One subprocess per pipeline; peak RSS is that "
             "process's maximum so far (it only grows down the rows).\n\n" + "\n".join(lines))
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ingest.md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
