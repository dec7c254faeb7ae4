"""BM25 benchmark: trawl's ``bm25`` index vs rank-bm25 (the reference) vs bm25s.

    python benchmarks/bm25.py [--quick] [--sizes 10000,100000] [--ref-queries 20]

Corpus: real text, recombined. Every sentence of SciFact and Cranfield (title + text,
split after ``. ``/``? ``/``! ``) goes into one pool (~60k sentences); synthetic document
``i`` is 3-9 sentences drawn from the pool with ``numpy.random.default_rng(i)``, so the
vocabulary, term statistics and lengths are those of real abstracts. Queries are the
SciFact and Cranfield test queries.

All three libraries get the same tokens (trawl's analyzer: lowercase, ``\\w+``, Lucene
English stopwords, Snowball English stemmer), k1=1.5, b=0.75; rank-bm25 is BM25Okapi
(epsilon=0.25), bm25s uses ``method="robertson"`` (same IDF without the floor). Timings:

* build: tokens → searchable index (trawl: term frequencies + weight matrix; rank-bm25:
  its constructor; bm25s: ``index``); trawl's build includes its own analysis (the
  tokenise column is the term lists the other two libraries are given);
* query: one query at a time, tokenisation included for trawl (``index.search`` →
  ``Hit`` objects), pre-tokenised for rank-bm25 (``get_scores`` + argsort) and bm25s
  (``retrieve(k=10)``); p50/p95 over the query set, rank-bm25 over the first
  ``--ref-queries`` queries only (it takes ~0.4 s per query at 100k);
* filtered: trawl with a 50% range filter (``year >= 1985``) and a 1% equality filter
  (``shard == "s7"``) on synthetic metadata, applied as a mask before top-k;
* identical top-10: trawl's top-10 ids and scores vs rank-bm25's (argsort, ties by row);
* incremental add: upsert 64 new chunks into the built index, then the next query
  (which rebuilds the weights lazily), in memory and with persistence (delta file + fsync).

``--build`` (build and memory against bm25s): each side runs in its own fresh process on the
same documents, so peak RSS is its own: trawl's ``bm25`` pipeline (``Trawl.add`` in batches
of 10,000 into a folder: tokenise, term frequencies, durable writes, then the first query
that builds the weights) against bm25s (``bm25s.tokenize`` with the same Snowball stemmer
and English stopwords, then ``index``; ``save`` timed separately). Peak RSS growth is
``VmHWM`` after the build minus ``VmRSS`` before it (the peak is reset with
``/proc/self/clear_refs`` once the documents are in memory); then each side answers the
queries at top 100 one at a time (p50), and trawl's folder is reopened in a third process:
time to the first answer and its RSS, then the whole process's RSS and heap (RssAnon)
once it has answered every query, and their growth over the open (what serving costs;
the absolute numbers include the benchmark's own corpus generation).

Writes the markdown table to benchmarks/out/bm25.md. Speed claims are ratios measured
side by side in this run; the machine is shared, so absolute numbers move between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
DATASETS = Path(os.environ.get("TRAWL_DATASETS", ROOT.parent / "shared" / "datasets"))
_SENT = re.compile(r"(?<=[.!?])\s+")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def sentence_pool() -> list[str]:
    pool: list[str] = []
    for name in ("scifact", "cranfield"):
        for d in read_jsonl(DATASETS / name / "corpus.jsonl"):
            text = f"{d['title']}. {d['text']}" if d["title"] else d["text"]
            pool.extend(s for s in _SENT.split(text) if len(s) > 20)
    return pool


def synth_corpus(n: int, pool: list[str]) -> list[str]:
    docs = []
    for i in range(n):
        rng = np.random.default_rng(i)
        picks = rng.integers(0, len(pool), size=int(rng.integers(3, 10)))
        docs.append(" ".join(pool[j] for j in picks))
    return docs


def queries() -> list[str]:
    out = []
    for name in ("scifact", "cranfield"):
        out.extend(q["text"] for q in read_jsonl(DATASETS / name / "queries.jsonl"))
    return out


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p)) if values else float("nan")


def timed(fn: Any) -> tuple[Any, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_bm25s(tokens: list[list[str]], qs_ok: list[tuple[str, list[str]]],
                ref_queries: int) -> dict[str, Any]:
    try:
        import bm25s
    except ImportError:
        return {"bm25s_build_s": float("nan"), "bm25s_p50": float("nan"),
                "bm25s_p95": float("nan")}
    row: dict[str, Any] = {}
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="robertson")
    _, row["bm25s_build_s"] = timed(lambda: retriever.index(tokens, show_progress=False))
    lat = []
    for _, t in qs_ok:
        _, dt = timed(lambda t=t: retriever.retrieve([t], k=10, show_progress=False, n_threads=1))
        lat.append(dt * 1000)
    row["bm25s_p50"], row["bm25s_p95"] = pct(lat, 50), pct(lat, 95)
    return row


def bench_rank_bm25(tokens: list[list[str]], qs_ok: list[tuple[str, list[str]]],
                    ref_queries: int, trawl_top: list[list[str]],
                    trawl_scores: list[list[float]]) -> dict[str, Any]:
    from rank_bm25 import BM25Okapi

    row: dict[str, Any] = {}
    ref, row["ref_build_s"] = timed(lambda: BM25Okapi(tokens))
    lat, same, worst = [], 0, 0.0
    for i, (_, t) in enumerate(qs_ok[:ref_queries]):
        def run(t: list[str] = t) -> Any:
            s = ref.get_scores(t)
            return s, np.argsort(-s, kind="stable")[:10]

        (s, top), dt = timed(run)
        lat.append(dt * 1000)
        # rank-bm25 scores every document; trawl returns only those with a query term
        want = [f"c{j:07d}" for j in top if s[j] != 0 or any(x in ref.doc_freqs[j] for x in t)]
        same += want == trawl_top[i]
        got = np.asarray(trawl_scores[i])
        worst = max(worst, float(np.max(np.abs(s[top[:len(got)]] - got))) if len(got) else 0.0)
    row["ref_p50"], row["ref_p95"] = pct(lat, 50), pct(lat, 95)
    row["top10_same"] = f"{same}/{min(ref_queries, len(qs_ok))}"
    row["max_abs_diff"] = worst
    return row


def bench_size(n: int, pool: list[str], qs: list[str], ref_queries: int,
               with_ref: bool) -> dict[str, Any]:
    from trawl.components import ComponentContext, IndexQuery
    from trawl.models import Chunk
    from trawl_bm25.index import BM25Index

    row: dict[str, Any] = {"n": n}
    texts = synth_corpus(n, pool)
    chunks = [Chunk(id=f"c{i:07d}", doc_id=f"d{i:07d}", text=t,
                    metadata={"year": 1950 + i % 70, "shard": f"s{i % 100}"})
              for i, t in enumerate(texts)]
    index = BM25Index(None, ComponentContext(name="bm25"))
    tokens, row["tokenise_s"] = timed(lambda: [index._analyze(c) for c in chunks])
    row["postings"] = sum(len(set(t)) for t in tokens)
    # trawl build: its analysis (word -> term id once per distinct word), term
    # frequencies, then the weight matrix
    t0 = time.perf_counter()
    with index._lock:
        index._append(chunks, index._count(chunks))
        index._ensure_weights()
    row["trawl_build_s"] = time.perf_counter() - t0
    row["trawl_weights_ms"] = index.last_rebuild_ms
    qtok = [index.query_terms(q) for q in qs]
    qs_ok = [(q, t) for q, t in zip(qs, qtok, strict=True) if t]
    # trawl queries (end to end: tokenise, score, top-k, Hit objects)
    lat = []
    trawl_top: list[list[str]] = []
    trawl_scores: list[list[float]] = []
    for q, _ in qs_ok:
        hits, dt = timed(lambda q=q: index.search(IndexQuery(text=q), 10))
        lat.append(dt * 1000)
        trawl_top.append([h.chunk_id for h in hits])
        trawl_scores.append([h.score for h in hits])
    row["trawl_p50"], row["trawl_p95"] = pct(lat, 50), pct(lat, 95)
    row["trawl_ref_p50"] = pct(lat[:ref_queries], 50)
    # filtered: a 50% range filter and a 1% equality filter, applied before top-k
    from trawl.filters import parse_filter

    for label, raw in (("half", {"field": "year", "op": ">=", "value": 1985}),
                       ("one_pct", {"shard": "s7"})):
        f = parse_filter(raw)
        index.search(IndexQuery(text=qs_ok[0][0]), 10, f)  # builds the column once
        lat = []
        for q, _ in qs_ok:
            _, dt = timed(lambda q=q, f=f: index.search(IndexQuery(text=q), 10, f))
            lat.append(dt * 1000)
        row[f"filter_{label}_p50"] = pct(lat, 50)
    # the bare scorer (no tokenisation, no Hit objects): what bm25s' retrieve does
    w = index._ensure_weights()
    core = []
    for _, t in qs_ok:
        counts = {term: float(t.count(term)) for term in t}
        t0 = time.perf_counter()
        scores, matched = index._score(w, counts)
        cand = np.flatnonzero(matched)
        if len(cand) > 10:
            cand = cand[np.argpartition(-scores[cand], 9)[:10]]
        core.append((time.perf_counter() - t0) * 1000)
    row["trawl_core_p50"], row["trawl_core_p95"] = pct(core, 50), pct(core, 95)
    row.update(bench_bm25s(tokens, qs_ok, ref_queries))
    if with_ref:  # rank-bm25: the reference, also for the identical-top-10 check
        row.update(bench_rank_bm25(tokens, qs_ok, ref_queries, trawl_top, trawl_scores))
    # incremental add at this size: 64 new chunks, then the next search rebuilds weights
    extra = [Chunk(id=f"x{i:07d}", doc_id=f"x{i:07d}", text=t)
             for i, t in enumerate(synth_corpus(n + 64, pool)[n:])]
    _, row["add64_mem_ms"] = timed(lambda: index.upsert(extra))
    row["add64_mem_ms"] *= 1000
    _, dt = timed(lambda: index.search(IndexQuery(text=qs_ok[0][0]), 10))
    row["next_query_ms"] = dt * 1000
    row["rebuild_ms"] = index.last_rebuild_ms
    # persisted: snapshot write, reopen, one delta
    folder = Path(tempfile.mkdtemp(prefix="trawl-bm25-bench-"))
    try:
        disk = BM25Index(None, ComponentContext(name="bm25", storage_dir=folder / "i"))
        _, row["persist_first_s"] = timed(lambda: disk.upsert(chunks))  # delta + snapshot
        more = [Chunk(id=f"y{i:07d}", doc_id=f"y{i:07d}", text=t) for i, t in
                enumerate(synth_corpus(n + 64, pool)[n:])]
        _, dt = timed(lambda: disk.upsert(more))
        row["add64_disk_ms"] = dt * 1000
        row["disk_mb"] = sum(p.stat().st_size for p in (folder / "i").iterdir()) / 2**20
        reopened, row["reopen_s"] = timed(
            lambda: BM25Index(None, ComponentContext(name="bm25", storage_dir=folder / "i")))
        assert reopened.count() == n + 64
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return row


def fmt(x: Any, digits: int = 1) -> str:
    if isinstance(x, float):
        return "–" if x != x else f"{x:.{digits}f}"
    return str(x)


def table(rows: list[dict[str, Any]], cmd: str) -> str:
    lines = [
        f"# BM25 benchmark\n\n`{cmd}` — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f} at the end: compare "
        f"ratios, not absolute times), Python {platform.python_version()}.\n",
        "## Query latency (ms, one query at a time, top-10)\n",
        "| docs | postings | trawl p50 | trawl p95 | trawl scorer p50 | trawl p50, 50% filter "
        "| trawl p50, 1% filter | bm25s p50 | bm25s p95 "
        "| rank-bm25 p50 | rank-bm25 p95 | trawl vs rank-bm25 | trawl vs bm25s "
        "| identical top-10 | max abs score diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        speedup = r.get("ref_p50", float("nan")) / r["trawl_ref_p50"]
        vs_bm25s = r["trawl_p50"] / r["bm25s_p50"]
        lines.append(
            f"| {r['n']:,} | {r['postings']:,} | {fmt(r['trawl_p50'], 2)} | "
            f"{fmt(r['trawl_p95'], 2)} | {fmt(r['trawl_core_p50'], 2)} | "
            f"{fmt(r['filter_half_p50'], 2)} | {fmt(r['filter_one_pct_p50'], 2)} | "
            f"{fmt(r['bm25s_p50'], 2)} | "
            f"{fmt(r['bm25s_p95'], 2)} | {fmt(r.get('ref_p50', float('nan')))} | "
            f"{fmt(r.get('ref_p95', float('nan')))} | {fmt(speedup, 0)}× faster | "
            f"{fmt(vs_bm25s, 2)}× bm25s' time | {r.get('top10_same', '–')} | "
            f"{r.get('max_abs_diff', float('nan')):.1e} |")
    lines += [
        "\n## Build and updates\n",
        "| docs | tokenise (s) | trawl build (s) | of which weights (ms) | bm25s build (s) "
        "| rank-bm25 build (s) | +64 chunks, memory (ms) | next query incl. rebuild (ms) "
        "| persist all (s) | +64 chunks, on disk (ms) | reopen (s) | disk (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {fmt(r['tokenise_s'], 2)} | {fmt(r['trawl_build_s'], 2)} | "
            f"{fmt(r['trawl_weights_ms'], 0)} | {fmt(r['bm25s_build_s'], 2)} | "
            f"{fmt(r.get('ref_build_s', float('nan')), 2)} | {fmt(r['add64_mem_ms'], 1)} | "
            f"{fmt(r['next_query_ms'], 0)} | {fmt(r['persist_first_s'], 2)} | "
            f"{fmt(r['add64_disk_ms'], 1)} | {fmt(r['reopen_s'], 2)} | {fmt(r['disk_mb'], 0)} |")
    return "\n".join(lines) + "\n"


def _status_mb(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:  # Linux >= 4.0: "5" resets VmHWM to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _measured(build: Any) -> dict[str, float]:
    """Wall and CPU time of ``build()`` and its peak RSS growth over the RSS before it."""
    import gc

    gc.collect()
    r0 = _status_mb("VmRSS")
    _reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    build()
    return {"build_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "peak_mb": _status_mb("VmHWM") - r0, "r0": r0}


def build_worker(side: str, n: int, folder: Path, n_queries: int) -> dict[str, Any]:
    """One side of ``--build`` in this (fresh) process; returns its measurements."""
    import gc

    pool = sentence_pool()
    texts = synth_corpus(n, pool)
    qs = queries()
    qs = [qs[i] for i in np.random.default_rng(0).permutation(len(qs))[:n_queries]]
    del pool
    row: dict[str, Any] = {"side": side, "n": n}
    if side == "trawl-reopen":
        from trawl import Trawl, load_pipeline

        del texts
        gc.collect()
        r0, a0 = _status_mb("VmRSS"), _status_mb("RssAnon")
        _reset_peak()
        t0 = time.perf_counter()
        with Trawl(folder, load_pipeline("bm25"), show_progress=False) as t:
            t.search(qs[0], 100)
            row["first_query_s"] = time.perf_counter() - t0
            row["rss_mb"] = _status_mb("VmRSS") - r0
            # heap only: VmRSS also counts the memory-mapped snapshot pages (page cache)
            row["anon_mb"] = _status_mb("RssAnon") - a0
            row["peak_mb"] = _status_mb("VmHWM") - r0
            for q in qs:  # serving: the pages the queries and their hits touch
                t.search(q, 100)
            row["served_rss_mb"] = _status_mb("VmRSS")
            row["served_anon_mb"] = _status_mb("RssAnon")
            row["served_rss_growth_mb"] = row["served_rss_mb"] - r0
            row["served_anon_growth_mb"] = row["served_anon_mb"] - a0
        return row
    if side == "trawl":
        from trawl import Document, Trawl, load_pipeline

        docs = [Document(id=f"d{i:07d}", text=t) for i, t in enumerate(texts)]
        del texts
        with Trawl(folder, load_pipeline("bm25"), show_progress=False) as t:
            def build_trawl() -> None:
                t.add(docs, batch_size=10_000)
                t.search(qs[0], 100)  # the first query builds the weights

            row.update(_measured(build_trawl))
            del docs
            gc.collect()
            row["rss_mb"] = _status_mb("VmRSS") - row.pop("r0")

            def search(q: str) -> Any:
                return t.search(q, 100)

            row["p50_ms"] = _p50(search, qs)
        return row
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="robertson")

    def build_bm25s() -> None:
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
        retriever.index(tokens, show_progress=False)

    row.update(_measured(build_bm25s))
    texts.clear()
    gc.collect()
    row["rss_mb"] = _status_mb("VmRSS") - row.pop("r0")
    _, row["save_s"] = timed(lambda: retriever.save(str(folder)))

    def search_bm25s(q: str) -> Any:
        qt = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
        return retriever.retrieve(qt, k=100, show_progress=False, n_threads=1)

    row["p50_ms"] = _p50(search_bm25s, qs)
    return row


def _p50(search: Any, qs: list[str]) -> float:
    for q in qs[:20]:
        search(q)
    lat = []
    for q in qs:
        _, dt = timed(lambda q=q: search(q))
        lat.append(dt * 1000)
    return pct(lat, 50)


def build_side_by_side(sizes: list[int], n_queries: int) -> str:
    """``--build``: trawl and bm25s each in a fresh process per size; a markdown table."""
    import subprocess

    lines = ["## Build and memory against bm25s (fresh process per side)\n",
             "| docs | side | build (s) | CPU (s) | peak RSS growth (MB) | RSS after (MB) "
             "| p50 top-100 (ms) | bm25s save (s) | reopen to first answer (s) "
             "| reopened RSS (MB) | reopened heap, RssAnon (MB) "
             "| process RSS / heap after the queries, growth (MB) | load |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        tmp = Path(tempfile.mkdtemp(prefix="trawl-bm25-build-"))
        try:
            rows = {}
            for side in ("bm25s", "trawl", "trawl-reopen"):
                folder = tmp / ("bm25s" if side == "bm25s" else "trawl")
                out = subprocess.run(
                    [sys.executable, __file__, "--build-worker", side, "--sizes", str(n),
                     "--queries", str(n_queries), "--folder", str(folder)],
                    capture_output=True, text=True)
                if out.returncode != 0:
                    raise SystemExit(f"{side} worker failed:\n{out.stderr[-3000:]}")
                rows[side] = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{n:,} {side}: {rows[side]}", file=sys.stderr, flush=True)
            load = os.getloadavg()[0]
            reopen = rows["trawl-reopen"]
            for side in ("bm25s", "trawl"):
                r = rows[side]
                lines.append(
                    f"| {n:,} | {side} | {r['build_s']:.1f} | {r['cpu_s']:.1f} | "
                    f"{r['peak_mb']:.0f} | {r['rss_mb']:.0f} | {r['p50_ms']:.2f} | "
                    f"{fmt(r.get('save_s', float('nan')), 1)} | "
                    + (f"{reopen['first_query_s']:.2f} | {reopen['rss_mb']:.0f} | "
                       f"{reopen['anon_mb']:.0f} | {reopen['served_rss_mb']:.0f} / "
                       f"{reopen['served_anon_mb']:.0f}, +{reopen['served_rss_growth_mb']:.0f}"
                       f" / +{reopen['served_anon_growth_mb']:.0f}"
                       if side == "trawl" else "– | – | – | –") + f" | {load:.1f} |")
            b, t = rows["bm25s"], rows["trawl"]
            lines.append(f"| {n:,} | trawl / bm25s | {t['build_s'] / b['build_s']:.2f}× | "
                         f"{t['cpu_s'] / b['cpu_s']:.2f}× | {t['peak_mb'] / b['peak_mb']:.2f}× "
                         f"| | {t['p50_ms'] / b['p50_ms']:.2f}× | | | | | | |")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", action="store_true", help=(
        "build time and peak RSS against bm25s, each side in a fresh process"))
    ap.add_argument("--build-worker", choices=("trawl", "bm25s", "trawl-reopen"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="10k docs, 100 queries, 10 reference")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=300, help="queries timed for trawl/bm25s")
    ap.add_argument("--ref-queries", type=int, default=20, help="queries timed for rank-bm25")
    ap.add_argument("--no-ref", action="store_true", help="skip rank-bm25")
    args = ap.parse_args(argv)
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if args.build_worker:
        print(json.dumps(build_worker(args.build_worker, sizes[0], args.folder, args.queries)))
        return
    if args.build:
        md = build_side_by_side(sizes, args.queries)
        cmd = "python benchmarks/bm25.py " + " ".join(argv if argv is not None else sys.argv[1:])
        md = f"# BM25 build and memory\n\n`{cmd.strip()}`\n\n" + md
        print(md)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "bm25_build.md").write_text(md, encoding="utf-8")
        return
    n_queries = 100 if args.quick else args.queries
    ref_queries = 10 if args.quick else args.ref_queries
    pool = sentence_pool()
    qs = queries()
    qs = [qs[i] for i in np.random.default_rng(0).permutation(len(qs))[:n_queries]]
    rows = []
    for n in sizes:
        print(f"{n:,} docs ...", file=sys.stderr, flush=True)
        rows.append(bench_size(n, pool, qs, ref_queries, not args.no_ref))
    cmd = "python benchmarks/bm25.py " + " ".join(argv if argv is not None else sys.argv[1:])
    md = table(rows, cmd.strip())
    md += (f"\nCorpus: {len(pool):,} sentences of SciFact + Cranfield recombined, 3-9 per "
           f"document; {len(qs)} SciFact/Cranfield queries.\n")
    print(md)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bm25.md").write_text(md, encoding="utf-8")


if __name__ == "__main__":
    main()
