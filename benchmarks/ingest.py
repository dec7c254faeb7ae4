"""Ingestion throughput: files and JSONL through ``trawl.ingest.index_paths``.

    python benchmarks/ingest.py [--quick] [--pipeline bm25]

Corpora (built from real text, never random words):
- ``scifact corpus.jsonl``: the BEIR file as is (5,183 abstracts, one JSONL file).
- ``scifact as files``: the same abstracts written as one Markdown file each (title as
  a ``#`` heading), in 20 folders; ``--quick`` takes the first 1,000.

For each corpus: a cold run (everything added), a warm re-run (nothing changed: files
are skipped by size+mtime without being read), a run after ``touch`` (read and hashed,
not re-indexed) and, for the files corpus, reading + parsing alone (``load_documents``)
to separate reader cost from index cost. Docs/s counts documents processed per wall
second. The machine is shared (2 cores, other workers running): compare rows of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))
OUT = REPO / "benchmarks" / "out"


def _files_corpus(corpus: Path, folder: Path, limit: int | None) -> int:
    n = 0
    with corpus.open(encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and n >= limit:
                break
            row = json.loads(line)
            sub = folder / f"part{n % 20:02d}"
            sub.mkdir(parents=True, exist_ok=True)
            title = row.get("title") or row["_id"]
            (sub / f"{row['_id']}.md").write_text(f"# {title}\n\n{row['text']}\n",
                                                  encoding="utf-8")
            n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pipeline", default="bm25")
    args = ap.parse_args(argv)

    from trawl import Trawl
    from trawl.ingest import index_paths, load_documents

    corpus = DATASETS / "scifact" / "corpus.jsonl"
    if not corpus.exists():
        print(f"scifact not found under {DATASETS}", file=sys.stderr)
        return 1
    rows: list[tuple[str, str, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        files = tmpdir / "scifact-files"
        n_files = _files_corpus(corpus, files, 1000 if args.quick else None)
        t0 = time.perf_counter()
        n_read = sum(1 for d in load_documents([files]) if hasattr(d, "text"))
        read_s = time.perf_counter() - t0
        rows.append(("scifact as files", "read + parse only", n_read, read_s, n_read / read_s))
        sources = [("scifact corpus.jsonl", corpus), ("scifact as files", files)]
        if args.quick:
            sources = sources[1:]
        for label, path in sources:
            with Trawl.open(tmpdir / f"index-{label.replace(' ', '-')}",
                            pipeline=args.pipeline, show_progress=False) as t:
                runs = ["cold", "warm (unchanged)"]
                if path.is_dir():  # never touch the shared dataset file
                    runs.append("after touch")
                for run in runs:
                    if run == "after touch":
                        now = time.time() + 5
                        for p in path.rglob("*.md"):
                            os.utime(p, (now, now))
                    report = index_paths(t, [path], show_progress=False)
                    done = report.added + report.updated + report.unchanged
                    rows.append((label, f"{run}: +{report.added} ~{report.updated} "
                                        f"={report.unchanged}", done, report.seconds,
                                 report.docs_per_s))
    head = (f"Ingestion throughput, pipeline `{args.pipeline}`, {n_files} files"
            f"{' (--quick)' if args.quick else ''}; shared 2-core machine, compare within "
            "this table.\n\n| corpus | run | docs | seconds | docs/s |\n|---|---|---:|---:|---:|\n")
    table = head + "".join(f"| {c} | {r} | {n} | {s:.2f} | {d:,.0f} |\n"
                           for c, r, n, s, d in rows)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ingest.md").write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
