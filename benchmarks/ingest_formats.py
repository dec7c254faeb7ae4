"""Ingestion by file format, the Python standard library as a code base, and a code
search check.

    python benchmarks/ingest_formats.py [--files 30] [--stdlib DIR] [--hybrid-files 40]
                                        [--queries 200] [--skip-hybrid] [--skip-stdlib]

1. files/s and chunks/s per format: ``--files`` generated files of each format (office
   ones when trawl-office's libraries are installed) indexed with the ``bm25`` preset.
2. The standard library's ``.py`` files (``--stdlib``, default: this interpreter's, tests
   included, ``site-packages`` left out) indexed with ``bm25`` in a child process: wall
   time, files, chunks, peak RSS. ``hybrid`` (BM25 + MiniLM) on 2 shared cores encodes
   a few dozen chunks a second, so it indexes a deterministic subset (``--hybrid-files``
   of the larger modules) and says so.
3. Code search on the hybrid index: ``--queries`` functions with docstrings sampled from
   the indexed files; the query is the docstring's first line with the function's name
   removed; a hit is the function's own chunk (same symbol) in the top 10.
Prints markdown tables with the load average; ``hybrid`` also per retriever alone.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def host() -> Any:
    """Installed plugins, plus trawl-code / trawl-office from this checkout when the
    installed trawl predates their entry points."""
    import trawl_code
    import trawl_office
    from trawl import PluginHost

    h = PluginHost()
    names = set(h.registry.names("reader"))
    if "code" not in names:
        h.register(trawl_code, name="code")
    if "docx" not in names:
        h.register(trawl_office, name="office")
    return h


# -- 1. formats --------------------------------------------------------------------------
def _prose(i: int, words: int = 220) -> str:
    vocab = ("owl gull heron wren finch hawk eagle sparrow robin swift crane stork ibis "
             "night sea nest prey wing flight song field river marsh coast winter").split()
    rng = random.Random(i)
    return " ".join(rng.choice(vocab) for _ in range(words))


def make_formats(root: Path, n: int) -> dict[str, Path]:
    from tests.plugins.ingest_support import make_pdf

    out: dict[str, Path] = {}

    def folder(name: str) -> Path:
        out[name] = root / name
        out[name].mkdir(parents=True)
        return out[name]

    for i in range(n):
        (folder("txt") if i == 0 else out["txt"]).joinpath(f"f{i}.txt").write_text(_prose(i))
        (folder("md") if i == 0 else out["md"]).joinpath(f"f{i}.md").write_text(
            f"# Doc {i}\n\n{_prose(i, 80)}\n\n## Part A\n\n{_prose(i + 1, 80)}\n\n"
            f"## Part B\n\n{_prose(i + 2, 80)}\n")
        (folder("html") if i == 0 else out["html"]).joinpath(f"f{i}.html").write_text(
            f"<html><head><title>Doc {i}</title></head><body><h1>Doc {i}</h1><p>"
            f"{_prose(i, 120)}</p><h2>More</h2><p>{_prose(i + 1, 120)}</p></body></html>")
        (folder("pdf") if i == 0 else out["pdf"]).joinpath(f"f{i}.pdf").write_bytes(
            make_pdf([_prose(i, 100), _prose(i + 1, 100)]))
        rows = "\n".join(f"{w},{j},{w}{j}" for j, w in enumerate(_prose(i, 60).split()))
        (folder("csv") if i == 0 else out["csv"]).joinpath(f"f{i}.csv").write_text(
            "bird,count,tag\n" + rows + "\n")
        nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
              "cells": [{"cell_type": "markdown", "metadata": {}, "source": f"# NB {i}\n"
                         + _prose(i, 60)},
                        {"cell_type": "code", "metadata": {}, "execution_count": 1,
                         "outputs": [], "source": "print('owls')\n" * 20}]}
        (folder("ipynb") if i == 0 else out["ipynb"]).joinpath(f"f{i}.ipynb").write_text(
            json.dumps(nb))
        from email.message import EmailMessage

        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "a@example.org", "b@example.org", f"Note {i}"
        msg.set_content(_prose(i, 150))
        (folder("eml") if i == 0 else out["eml"]).joinpath(f"f{i}.eml").write_bytes(
            msg.as_bytes())
    try:
        import docx
        import openpyxl
        import pptx
    except ImportError:
        return out
    for i in range(n):
        d = docx.Document()
        d.add_heading(f"Doc {i}", 0)
        for h in range(3):
            d.add_heading(f"Section {h}", 1)
            d.add_paragraph(_prose(i + h, 80))
        buf = io.BytesIO()
        d.save(buf)
        (folder("docx") if i == 0 else out["docx"]).joinpath(f"f{i}.docx").write_bytes(
            buf.getvalue())
        deck = pptx.Presentation()
        for s in range(5):
            slide = deck.slides.add_slide(deck.slide_layouts[1])
            slide.shapes.title.text = f"Slide {s}"
            slide.placeholders[1].text = _prose(i + s, 40)
        buf = io.BytesIO()
        deck.save(buf)
        (folder("pptx") if i == 0 else out["pptx"]).joinpath(f"f{i}.pptx").write_bytes(
            buf.getvalue())
        book = openpyxl.Workbook()
        sheet = book.active
        sheet.append(["bird", "count", "tag"])
        for j, w in enumerate(_prose(i, 200).split()):
            sheet.append([w, j, f"{w}{j}"])
        buf = io.BytesIO()
        book.save(buf)
        (folder("xlsx") if i == 0 else out["xlsx"]).joinpath(f"f{i}.xlsx").write_bytes(
            buf.getvalue())
    return out


def bench_formats(n: int, stdlib: Path) -> list[dict[str, Any]]:
    from trawl import Trawl
    from trawl.ingest import index_paths

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folders = make_formats(Path(tmp) / "formats", n)
        py = Path(tmp) / "formats" / "py"
        py.mkdir()
        for p in sorted(stdlib.glob("*.py"))[:n]:
            shutil.copy(p, py / p.name)
        folders["py"] = py
        h = host()
        for name, folder in folders.items():
            with Trawl.open(Path(tmp) / f"idx-{name}", pipeline="bm25", host=h,
                            show_progress=False) as t:
                t0 = time.perf_counter()
                report = index_paths(t, [folder], show_progress=False)
                seconds = time.perf_counter() - t0
            files = report.added + report.updated
            rows.append({"format": name, "files": files, "skipped": len(report.skipped),
                         "chunks": report.chunks, "seconds": seconds,
                         "files_s": files / seconds, "chunks_s": report.chunks / seconds})
    return rows


# -- 2. the standard library --------------------------------------------------------------
def child(pipeline: str, root: str, index: str) -> None:
    """Index ``root``'s .py files into ``index`` (run in a fresh process for its RSS)."""
    from trawl import Trawl
    from trawl.ingest import index_paths

    with Trawl.open(index, pipeline=pipeline, host=host(), show_progress=False) as t:
        t0 = time.perf_counter()
        report = index_paths(t, [root], include=["*.py"], exclude=["site-packages/"],
                             show_progress=False)
        seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"files": report.added + report.updated + report.unchanged,
                      "skipped": len(report.skipped), "chunks": report.chunks,
                      "seconds": seconds, "peak_rss_mb": rss,
                      "skips": [[s.path, s.reason] for s in report.skipped[:5]]}))


def run_child(pipeline: str, root: Path, index: Path) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, "--child", pipeline, str(root),
                           str(index)], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(
                              [str(REPO / "core"), str(REPO / "plugins"), str(REPO / "tui"),
                               os.environ.get("PYTHONPATH", "")])})
    if proc.returncode != 0:
        raise SystemExit(f"child {pipeline} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def subset(stdlib: Path, n: int, dest: Path) -> list[Path]:
    """The ``n`` largest top-level modules (deterministic), copied under ``dest``."""
    files = sorted(stdlib.glob("*.py"), key=lambda p: (-p.stat().st_size, p.name))[:n]
    dest.mkdir(parents=True)
    for p in files:
        shutil.copy(p, dest / p.name)
    return [dest / p.name for p in files]


# -- 3. code search -------------------------------------------------------------------------
def docstring_queries(files: list[Path], n: int, seed: int = 0) -> list[tuple[str, str]]:
    """``(query, symbol)``: a function's docstring first line without its name."""
    found: list[tuple[str, str]] = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def visit(node: ast.AST, prefix: list[str], path: Path = path) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    visit(child, [*prefix, child.name])
                elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    doc = ast.get_docstring(child) or ""
                    first = doc.strip().split("\n")[0]
                    query = re.sub(rf"\b{re.escape(child.name)}\b", " ", first, flags=re.I)
                    query = " ".join(query.replace("()", " ").split())
                    if len(query.split()) >= 3:
                        found.append((query, ".".join([path.stem, *prefix, child.name])))
                    visit(child, [*prefix, child.name])
                else:
                    visit(child, prefix)

        visit(tree, [])
    rng = random.Random(seed)
    rng.shuffle(found)
    return found[:n]


def code_search(index: Path, files: list[Path], n: int) -> dict[str, Any]:
    from trawl import Trawl

    queries = docstring_queries(files, n)
    out: dict[str, Any] = {"queries": len(queries)}
    with Trawl.open(index, host=host(), show_progress=False) as t:
        for label, retrievers in (("hybrid", None), ("bm25", ["bm25"]), ("dense", ["dense"])):
            found = 0
            for query, symbol in queries:
                hits = t.search(query, 10, retrievers=retrievers)
                found += any(h.metadata.get("symbol") == symbol for h in hits)
            out[label] = found / max(1, len(queries))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=30)
    ap.add_argument("--stdlib", type=Path, default=Path(os.__file__).parent)
    ap.add_argument("--hybrid-files", type=int, default=40)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--skip-hybrid", action="store_true")
    ap.add_argument("--skip-stdlib", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("PIPELINE", "ROOT", "INDEX"))
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    print(f"load average at start: {os.getloadavg()}\n", flush=True)
    rows = bench_formats(args.files, args.stdlib)
    print(f"### Formats ({args.files} generated files each, `bm25` preset, one process)\n")
    print("| format | files | skipped | chunks | s | files/s | chunks/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['format']} | {r['files']} | {r['skipped']} | {r['chunks']} | "
              f"{r['seconds']:.2f} | {r['files_s']:.1f} | {r['chunks_s']:.0f} |")
    print(f"\nload average: {os.getloadavg()}\n", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        if not args.skip_stdlib:
            results.append(("bm25", f"all of {args.stdlib}",
                            run_child("bm25", args.stdlib, Path(tmp) / "bm25")))
            print(f"stdlib bm25 done: {results[-1][2]}, load {os.getloadavg()}", flush=True)
        search = None
        if not args.skip_hybrid:
            files = subset(args.stdlib, args.hybrid_files, Path(tmp) / "subset")
            results.append(("bm25", f"{len(files)} largest modules",
                            run_child("bm25", Path(tmp) / "subset", Path(tmp) / "bm25-sub")))
            results.append(("hybrid", f"{len(files)} largest modules",
                            run_child("hybrid", Path(tmp) / "subset", Path(tmp) / "hybrid")))
            print(f"stdlib hybrid done: {results[-1][2]}, load {os.getloadavg()}", flush=True)
            search = code_search(Path(tmp) / "hybrid", files, args.queries)
        print("\n### Python standard library (child process per row)\n")
        print("| pipeline | files | files indexed | skipped | chunks | wall s | peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        for pipeline, what, r in results:
            print(f"| {pipeline} | {what} | {r['files']} | {r['skipped']} | {r['chunks']} | "
                  f"{r['seconds']:.0f} | {r['peak_rss_mb']:.0f} |")
        if search is not None:
            print(f"\n### Code search: {search['queries']} docstring queries (first line, "
                  "name removed), own chunk in the top 10\n")
            print("| retrievers | found in top 10 |\n|---|---|")
            for label in ("hybrid", "bm25", "dense"):
                print(f"| {label} | {search[label]:.1%} |")
    print(f"\nload average at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
