"""Embedded vector search: trawl's exact numpy index vs the qdrant index's engines.

    python benchmarks/qdrant.py [--quick] [--sizes 10000,100000] [--queries 50]

Engines, all through trawl's ``Index`` interface (so the numbers include trawl's own
overhead: normalisation, payload → ``Hit``):

* ``exact``: trawl core's brute-force numpy index (``core/trawl/builtin.py``), persisted.
* ``edge exact``: ``qdrant`` index, ``mode: edge`` (qdrant-edge-py, the Rust engine
  in-process), ``exact: true``, no HNSW built; persisted.
* ``edge hnsw``: the same engine after ``optimize()`` built the HNSW graph (m=16,
  ef_construct=--ef-construct, search ef=--ef); persisted.
* ``local``: ``qdrant`` index, ``mode: local`` (qdrant-client's embedded Python mode) in
  memory. Its persisted form (``path=``) commits every point to SQLite separately, which
  costs tens of ms per point on this disk, so its build/reopen are measured on
  --local-persist points and reported per point (see the second table).

Vectors are RANDOM unit vectors (384-d, the MiniLM width), not real embeddings: latency
does not depend on the values, HNSW recall does (random high-dimensional data is HNSW's
hardest case). Queries are random unit vectors. A second group of rows uses vectors from
a real model: SciFact's 5,183 abstracts and 300 queries as mean-pooled all-MiniLM-L6-v2
token vectors (cached by benchmarks/muvera.py; see ``real_vectors``; --no-real skips).
The 50% filter is ``{"part": "a"}`` on a keyword field (payload-indexed on edge).
Writes the markdown table to benchmarks/out/qdrant.md. Timings are wall clock on a machine
with 2 cores that other jobs may share: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "plugins"))

from trawl import Chunk, ComponentContext, Index, IndexQuery  # noqa: E402
from trawl.builtin import ExactIndex  # noqa: E402
from trawl.filters import parse_filter  # noqa: E402

DIM = 384
HALF = parse_filter({"part": "a"})


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def real_vectors() -> tuple[np.ndarray, np.ndarray] | None:
    """SciFact abstracts (5,183) and queries (300) as 384-d MiniLM-derived vectors.

    Reuses the token vectors ``benchmarks/muvera.py`` caches (all-MiniLM-L6-v2 last hidden
    states per token, each L2-normalised, docs truncated at 128 tokens): the mean of a text's
    token vectors, normalised. That is not bit-for-bit all-MiniLM-L6-v2's sentence embedding
    (which averages the raw states, [CLS]/[SEP] included) but it has real embeddings'
    clustered, anisotropic distribution, which is what HNSW recall depends on.
    """
    cache = HERE / "out" / "cache"
    docs_file = cache / "scifact_corpus_L128_n5183.npz"
    queries_file = cache / "scifact_queries_L64_n300.npz"
    if not (docs_file.exists() and queries_file.exists()):
        print("no cached MiniLM token vectors (run benchmarks/muvera.py once); skipping the "
              "real-vector rows", flush=True)
        return None

    def pooled(path: Path) -> np.ndarray:
        z = np.load(path, allow_pickle=False)
        flat, offs = z["flat"].astype(np.float32), z["offsets"]
        out = np.stack([flat[a:b].mean(axis=0) if b > a else np.zeros(flat.shape[1])
                        for a, b in itertools.pairwise(offs)]).astype(np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    return pooled(docs_file), pooled(queries_file)


def corpus(n: int, seed: int = 0) -> tuple[list[Chunk], np.ndarray]:
    chunks = [Chunk(id=f"d{i}#0", doc_id=f"d{i}", text=f"synthetic chunk {i}",
                    metadata={"part": "a" if i % 2 == 0 else "b", "n": i}) for i in range(n)]
    return chunks, unit(np.random.default_rng(seed), n)


def pct(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def qdrant(mode: str, folder: Path | None, **cfg: Any) -> Index:
    from trawl_qdrant.index import QdrantIndex

    config = QdrantIndex.Config.model_validate({"mode": mode, **cfg})
    return QdrantIndex(config, ComponentContext(name="dense", dim=DIM, storage_dir=folder))


def exact(folder: Path | None) -> Index:
    return ExactIndex(ExactIndex.Config(), ComponentContext(name="dense", dim=DIM,
                                                            storage_dir=folder))


def latencies(index: Index, queries: np.ndarray, filters: Any) -> tuple[list[float], list]:
    times, results = [], []
    index.search(IndexQuery(text="", vector=queries[0]), 10, filters)  # warm-up
    for q in queries:
        t0 = time.perf_counter()
        hits = index.search(IndexQuery(text="", vector=q), 10, filters)
        times.append((time.perf_counter() - t0) * 1000)
        results.append([h.chunk_id for h in hits])
    return times, results


def recall(got: list[list[str]], want: list[list[str]]) -> float:
    return statistics.mean(len(set(g) & set(w)) / max(len(w), 1) for g, w in zip(got, want,
                                                                                 strict=True))


def run_engine(label: str, make: Callable[[Path | None], Index], persist: bool,
               chunks: list[Chunk], vecs: np.ndarray, queries: np.ndarray, n_queries: int,
               reference: dict[str, list[list[str]]] | None, work: Path,
               after_build: Callable[[Index], None] | None = None) -> dict[str, Any]:
    folder = work / label.replace(" ", "-") if persist else None
    index = make(folder)
    t0 = time.perf_counter()
    step = 4096
    for start in range(0, len(chunks), step):
        index.upsert(chunks[start:start + step], vecs[start:start + step])
    build = time.perf_counter() - t0
    graph = 0.0
    if after_build is not None:
        t1 = time.perf_counter()
        after_build(index)
        graph = time.perf_counter() - t1
    qs = queries[:n_queries]
    plain, plain_ids = latencies(index, qs, None)
    filt, filt_ids = latencies(index, qs, HALF)
    row: dict[str, Any] = {"engine": label, "n": len(chunks), "build_s": build,
                           "graph_s": graph if after_build else None,
                           "p50": pct(plain, 50), "p95": pct(plain, 95),
                           "f_p50": pct(filt, 50), "f_p95": pct(filt, 95), "queries": len(qs)}
    if reference is not None:
        k = len(qs)
        row["recall"] = recall(plain_ids, reference["plain"][:k])
        row["f_recall"] = recall(filt_ids, reference["filtered"][:k])
    else:
        row["recall"] = row["f_recall"] = 1.0
        row["_ids"] = {"plain": plain_ids, "filtered": filt_ids}
    index.close()
    del index
    gc.collect()
    if persist:
        t0 = time.perf_counter()
        again = make(folder)
        count = again.count()
        row["reopen_s"] = time.perf_counter() - t0
        assert count == len(chunks), (label, count)
        again.close()
        shutil.rmtree(folder, ignore_errors=True)
    else:
        row["reopen_s"] = None
    print(f"  {label:11s} n={len(chunks):>6} build {build:6.1f}s"
          f"{f' +graph {graph:5.1f}s' if after_build else ''} p50 {row['p50']:7.2f} ms "
          f"filtered p50 {row['f_p50']:7.2f} ms recall {row['recall']:.3f}", flush=True)
    return row


def local_persistence(n: int, work: Path) -> dict[str, float]:
    """qdrant-client local mode with path=: per-point upsert cost and reopen time."""
    chunks, vecs = corpus(n, seed=5)
    folder = work / "local-persist"
    index = qdrant("local", folder)
    t0 = time.perf_counter()
    index.upsert(chunks, vecs)
    build = time.perf_counter() - t0
    index.close()
    t0 = time.perf_counter()
    again = qdrant("local", folder)
    assert again.count() == n
    reopen = time.perf_counter() - t0
    again.close()
    shutil.rmtree(folder, ignore_errors=True)
    return {"n": n, "ms_per_point": build / n * 1000, "reopen_s": reopen,
            "reopen_ms_per_point": reopen / n * 1000}


def fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def table(rows: list[dict[str, Any]], persist: dict[str, float], cmd: str) -> str:
    lines = [
        "### Embedded vector search (qdrant index engines vs trawl exact)",
        "",
        f"`{cmd}` — 384-d RANDOM unit vectors (not real embeddings) except the rows marked "
        "SciFact (mean-pooled all-MiniLM-L6-v2 token vectors of its 5,183 abstracts, its "
        "queries), top-10, single client thread; 2 CPU cores, load average "
        f"{os.getloadavg()[0]:.1f} at the end (compare ratios within a row group). Filter = 50% of points (keyword field). "
        "Recall@10 vs trawl exact.",
        "",
        "| n | engine | build s | HNSW s | p50 ms | p95 ms | filtered p50 ms | "
        "filtered p95 ms | recall@10 | filtered recall@10 | reopen s | queries |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']:,} | {r['engine']} | {fmt(r['build_s'])} | {fmt(r['graph_s'])} | "
            f"{fmt(r['p50'], 2)} | {fmt(r['p95'], 2)} | {fmt(r['f_p50'], 2)} | "
            f"{fmt(r['f_p95'], 2)} | {fmt(r['recall'], 3)} | {fmt(r['f_recall'], 3)} | "
            f"{fmt(r['reopen_s'], 2)} | {r['queries']} |")
    lines += [
        "",
        f"qdrant-client local mode persisted (`path=`), {persist['n']:,} points: "
        f"{persist['ms_per_point']:.1f} ms per upserted point (one SQLite commit each), "
        f"reopen {persist['reopen_s']:.2f} s ({persist['reopen_ms_per_point']:.2f} ms per "
        "point: every point is unpickled into memory). The local rows above are in memory.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10k only, 20 queries")
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=30)
    ap.add_argument("--local-queries", type=int, default=5,
                    help="queries for local mode at the largest size (it is slow)")
    ap.add_argument("--local-persist", type=int, default=300)
    ap.add_argument("--ef-construct", type=int, default=64)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--skip-local-above", type=int, default=100_000)
    ap.add_argument("--no-real", action="store_true", help="skip the real-vector rows")
    ap.add_argument("--only", default=None,
                    help="comma list of engines among 'edge exact,edge hnsw,local' (exact "
                    "always runs: it is the recall reference)")
    ap.add_argument("--hnsw-max", type=int, default=10_000,
                    help="build HNSW only up to this size: on 2 shared cores the in-process "
                    "graph build takes minutes per 10k random 384-d vectors")
    args = ap.parse_args(argv)
    sizes = [10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    n_queries = 20 if args.quick else args.queries
    cmd = " ".join(["python benchmarks/qdrant.py", *(sys.argv[1:] if argv is None else argv)])
    queries = unit(np.random.default_rng(99), max(n_queries, 1))
    work = Path(tempfile.mkdtemp(prefix="trawl-bench-qdrant-"))
    rows: list[dict[str, Any]] = []
    try:
        for n in sizes:
            chunks, vecs = corpus(n)
            print(f"n={n:,}", flush=True)
            ref = run_engine("exact", exact, True, chunks, vecs, queries, n_queries, None, work)
            reference = ref.pop("_ids")
            rows.append(ref)
            wanted = set(args.only.split(",")) if args.only else {"edge exact", "edge hnsw",
                                                                  "local"}
            if "edge exact" in wanted:
                rows.append(run_engine(
                    "edge exact", lambda f: qdrant("edge", f, exact=True, optimize_after=0,
                                                   payload_indexes={"part": "keyword"}),
                    True, chunks, vecs, queries, n_queries, reference, work))
            if "edge hnsw" not in wanted:
                pass
            elif n > args.hnsw_max:
                print(f"  edge hnsw skipped at n={n:,} (--hnsw-max {args.hnsw_max})", flush=True)
            else:
                rows.append(run_engine(
                    "edge hnsw", lambda f: qdrant(
                        "edge", f, optimize_after=0, payload_indexes={"part": "keyword"},
                        hnsw={"m": 16, "ef_construct": args.ef_construct, "ef": args.ef}),
                    True, chunks, vecs, queries, n_queries, reference, work,
                    after_build=lambda ix: ix.optimize()))  # type: ignore[attr-defined]
            if n <= args.skip_local_above and "local" in wanted:
                lq = n_queries if n < max(sizes) or len(sizes) == 1 else args.local_queries
                rows.append(run_engine("local", lambda f: qdrant("local", None), False, chunks,
                                       vecs, queries, lq, reference, work))
        real = None if args.no_real else real_vectors()
        if real is not None:
            docs, real_queries = real
            chunks, _ = corpus(len(docs))
            print(f"SciFact MiniLM n={len(docs):,}", flush=True)
            nq = min(len(real_queries), 100 if not args.quick else 20)
            ref = run_engine("exact", exact, True, chunks, docs, real_queries, nq, None, work)
            reference = ref.pop("_ids")
            for row in [ref, run_engine(
                    "edge hnsw", lambda f: qdrant(
                        "edge", f, optimize_after=0, payload_indexes={"part": "keyword"},
                        hnsw={"m": 16, "ef_construct": args.ef_construct, "ef": args.ef,
                              "indexing_threshold_kb": 1000, "full_scan_threshold": 1000}),
                    True, chunks, docs, real_queries, nq, reference, work,
                    after_build=lambda ix: ix.optimize())]:  # type: ignore[attr-defined]
                row["engine"] += " (SciFact, MiniLM-pooled)"
                rows.append(row)
        persist = local_persistence(args.local_persist, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = table(rows, persist, cmd)
    print(md)
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "qdrant.md").write_text(md, encoding="utf-8")


if __name__ == "__main__":
    main()
