"""End-to-end hybrid search latency (query encoding + BM25 + Qdrant edge + fusion) at 10k and
100k chunks.

    python benchmarks/hybrid_latency.py [--sizes 10000,100000] [--queries 50] [--quick]

Chunk texts are synthesised from real SciFact/Cranfield sentences (benchmarks/bm25.py's
`synth_corpus`); BM25 indexes them for real. Encoding 100k chunks with MiniLM takes hours
on 2 cores, so the dense side stores random unit vectors for the chunks (labelled as such):
the measured path is the real one at query time — MiniLM ONNX query encoding, exact edge
search over 384-d vectors, BM25 scoring, weighted fusion, Hit construction. Writes
benchmarks/out/hybrid_latency.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bm25 import queries, sentence_pool, synth_corpus

from trawl import Chunk, PluginHost, Trawl, load_pipeline

REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def bench(n: int, pool: list[str], qs: list[str], host: PluginHost) -> dict[str, float]:
    rng = np.random.default_rng(0)
    texts = synth_corpus(n, pool)
    chunks = [Chunk(id=f"d{i}#0", doc_id=f"d{i}", text=t, end=len(t)) for i, t in enumerate(texts)]
    folder = Path(tempfile.mkdtemp(prefix="trawl-hybrid-bench-", dir=REPO / "benchmarks" / "out"))
    config = load_pipeline("hybrid")
    # exact edge search: no HNSW build in the middle of the benchmark
    config.retrievers[1].index_config["optimize_after"] = 0
    with Trawl(folder, config, host=host, show_progress=False) as t:
        bm25 = t.pipeline.retrievers["bm25"].index
        dense = t.pipeline.retrievers["dense"].index
        t0 = time.perf_counter()
        for s in range(0, n, 10_000):
            part = chunks[s:s + 10_000]
            vec = rng.normal(size=(len(part), 384)).astype(np.float32)
            vec /= np.linalg.norm(vec, axis=1, keepdims=True)
            bm25.upsert(part)
            dense.upsert(part, vec)
        build = time.perf_counter() - t0
        t.search("warm up the encoder", 10)
        totals, encode, retrieve = [], [], []
        for q in qs:
            s0 = time.perf_counter()
            t.search(q, 10)
            totals.append((time.perf_counter() - s0) * 1000)
            encode.append(t.last_trace.encode_ms)
            retrieve.append(t.last_trace.retrieve_ms)
    return {"n": n, "build_s": build, "p50": pct(totals, 50), "p95": pct(totals, 95),
            "encode_p50": pct(encode, 50), "retrieve_p50": pct(retrieve, 50)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="10k only, 30 queries")
    args = ap.parse_args(argv)
    sizes = [10_000] if args.quick else [int(x) for x in args.sizes.split(",")]
    qs = queries()[: (30 if args.quick else args.queries)]
    pool = sentence_pool()
    host = PluginHost()
    lines = ["| chunks | build s (bm25 + edge, no encoding) | end-to-end p50 ms | p95 ms | "
             "query encode p50 ms | retrieve p50 ms |", "|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        r = bench(n, pool, qs, host)
        lines.append(f"| {n:,} | {r['build_s']:.1f} | {r['p50']:.1f} | {r['p95']:.1f} | "
                     f"{r['encode_p50']:.1f} | {r['retrieve_p50']:.1f} |")
        print(lines[-1], flush=True)
    table = "\n".join(lines) + (
        f"\n\n`hybrid` preset (BM25 + onnx-dense on qdrant edge, exact search, weighted fusion), "
        f"top 10, {len(qs)} SciFact queries; dense chunk vectors random (query encoding real).")
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "hybrid_latency.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
