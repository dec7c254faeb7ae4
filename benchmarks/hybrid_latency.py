"""End-to-end hybrid search latency (query encoding + BM25 + Qdrant edge + fusion) at 10k and
100k chunks, exact and HNSW.

    python benchmarks/hybrid_latency.py [--sizes 10000,100000] [--queries 50]
                                        [--vectors sentence-mean|random] [--quick]

Chunk texts are 3-9 real sentences each, drawn from a seeded sample of ``--pool`` SciFact and
Cranfield sentences; BM25 indexes them for real. Encoding 100k whole chunks with MiniLM takes
about an hour on 2 cores, so each chunk's vector is the normalised mean of the real MiniLM
vectors of its sentences (``sentence-mean``: vectors that live where MiniLM's do, which is
what HNSW recall depends on; the sentence vectors are cached under the trawl cache). With
``--vectors random`` they are random unit vectors, a worst case for HNSW. The measured path
is the real one at query time: MiniLM ONNX query encoding, edge search over 384-d vectors,
BM25 scoring, weighted fusion, Hit construction. At the largest size the edge index is then
optimised (HNSW, the default once 100k points are written) and measured again at several
``ef``: overlap is the share of the exact search's hybrid top 10 that the HNSW search also
returns, dense recall@10 the same for the dense retriever alone.
Writes benchmarks/out/hybrid_latency.md.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bm25 import queries, sentence_pool

from trawl import Chunk, PluginHost, Trawl, TrawlSettings, load_pipeline

REPO = Path(__file__).resolve().parents[1]


def pct(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def picks_for(n: int, pool_size: int) -> list[np.ndarray]:
    """Sentence indices of each chunk: 3-9 sentences, seeded per chunk."""
    out = []
    for i in range(n):
        rng = np.random.default_rng(i)
        out.append(rng.integers(0, pool_size, size=int(rng.integers(3, 10))))
    return out


def sentence_vectors(pool: list[str], host: PluginHost) -> np.ndarray:
    """MiniLM vectors of every pool sentence, cached on disk by content hash."""
    digest = hashlib.sha256("\n".join(pool).encode()).hexdigest()[:16]
    cache = TrawlSettings().cache_dir / "bench" / f"sentences-minilm-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    from trawl import ComponentContext

    enc = host.registry.build("encoder", "onnx-dense", {}, ComponentContext(name="dense"))
    t0 = time.perf_counter()
    vecs = np.asarray(enc.encode_documents(pool, show_progress=True), dtype=np.float32)
    print(f"encoded {len(pool):,} sentences in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    enc.close()
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vecs)
    return vecs


def measure(t: Trawl, qs: list[str]) -> tuple[dict[str, float], list[list[str]]]:
    t.search("warm up the encoder", 10)
    totals, encode, retrieve, tops = [], [], [], []
    for q in qs:
        s0 = time.perf_counter()
        hits = t.search(q, 10)
        totals.append((time.perf_counter() - s0) * 1000)
        encode.append(t.last_trace.encode_ms)
        retrieve.append(t.last_trace.retrieve_ms)
        tops.append([h.chunk_id for h in hits])
    return {"p50": pct(totals, 50), "p95": pct(totals, 95), "encode_p50": pct(encode, 50),
            "retrieve_p50": pct(retrieve, 50)}, tops


def dense_tops(t: Trawl, qs: list[str]) -> list[list[str]]:
    return [[h.chunk_id for h in t.search(q, 10, retrievers=["dense"])] for q in qs]


def overlap(reference: list[list[str]], found: list[list[str]]) -> float:
    """Mean share of each reference top-10 that ``found`` also returns."""
    return statistics.mean(len(set(a) & set(b)) / max(1, len(a))
                           for a, b in zip(reference, found, strict=True))


def bench(n: int, pool: list[str], svecs: np.ndarray | None, qs: list[str], host: PluginHost,
          hnsw: bool, one_sentence: bool = False) -> list[dict[str, object]]:
    rng = np.random.default_rng(0)
    if one_sentence:  # each chunk is one pool sentence: its vector is its real embedding
        picks = [np.array([i]) for i in range(min(n, len(pool)))]
        n = len(picks)
    else:
        picks = picks_for(n, len(pool))
    folder = Path(tempfile.mkdtemp(prefix="trawl-hybrid-bench-", dir=REPO / "benchmarks" / "out"))
    config = load_pipeline("hybrid")
    # exact edge search first: no HNSW build in the middle of the writes
    config.retrievers[1].index_config["optimize_after"] = 0
    rows: list[dict[str, object]] = []
    try:
        with Trawl(folder, config, host=host, show_progress=False) as t:
            bm25 = t.pipeline.retrievers["bm25"].index
            dense = t.pipeline.retrievers["dense"].index
            t0 = time.perf_counter()
            for s in range(0, n, 10_000):
                part = picks[s:s + 10_000]
                texts = [" ".join(pool[j] for j in p) for p in part]
                chunks = [Chunk(id=f"d{s + i}#0", doc_id=f"d{s + i}", text=x, end=len(x))
                          for i, x in enumerate(texts)]
                if svecs is None:
                    vec = rng.normal(size=(len(part), 384)).astype(np.float32)
                else:
                    vec = np.stack([svecs[p].mean(axis=0) for p in part]).astype(np.float32)
                vec /= np.linalg.norm(vec, axis=1, keepdims=True)
                bm25.upsert(chunks)
                dense.upsert(chunks, vec)
            build = time.perf_counter() - t0
            stats, exact_tops = measure(t, qs)
            exact_dense = dense_tops(t, qs)
            rows.append({"n": n, "search": "exact", "build_s": build, **stats})
            if hnsw:
                t0 = time.perf_counter()
                dense.optimize()  # type: ignore[attr-defined]
                hnsw_s = time.perf_counter() - t0
                for ef in (None, 128, 256):
                    dense.config.hnsw.ef = ef  # type: ignore[attr-defined]
                    stats, tops = measure(t, qs)
                    rows.append({"n": n, "search": f"HNSW m=16, ef={ef or 'default'}",
                                 "build_s": hnsw_s, "overlap": overlap(exact_tops, tops),
                                 "recall": overlap(exact_dense, dense_tops(t, qs)), **stats})
                    hnsw_s = 0.0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--pool", type=int, default=20_000, help="sentences to draw chunks from")
    ap.add_argument("--vectors", choices=["sentence-mean", "sentence", "random"],
                    default="sentence-mean", help=(
                        "sentence: each chunk is one pool sentence with its own real MiniLM "
                        "vector (sizes are capped at --pool)"))
    ap.add_argument("--quick", action="store_true", help="10k only, 30 queries")
    args = ap.parse_args(argv)
    sizes = [10_000] if args.quick else [int(x) for x in args.sizes.split(",")]
    qs = queries()[: (30 if args.quick else args.queries)]
    full = sentence_pool()
    sample = np.random.default_rng(7).choice(len(full), size=min(args.pool, len(full)),
                                             replace=False)
    pool = [full[i] for i in sorted(sample)]
    host = PluginHost()
    svecs = sentence_vectors(pool, host) if args.vectors != "random" else None
    out_name = "hybrid_latency.md" if args.vectors == "sentence-mean" else \
        f"hybrid_latency_{args.vectors}.md"
    lines = ["| chunks | dense search | build s | end-to-end p50 ms | p95 ms | "
             "query encode p50 ms | retrieve p50 ms | hybrid top-10 overlap vs exact | "
             "dense recall@10 vs exact |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        for r in bench(n, pool, svecs, qs, host, hnsw=(n == max(sizes) and not args.quick),
                       one_sentence=args.vectors == "sentence"):
            ov = f"{r['overlap']:.3f}" if "overlap" in r else "–"
            rc = f"{r['recall']:.3f}" if "recall" in r else "–"
            lines.append(f"| {n:,} | {r['search']} | {r['build_s']:.1f} | {r['p50']:.1f} | "
                         f"{r['p95']:.1f} | {r['encode_p50']:.1f} | {r['retrieve_p50']:.1f} | "
                         f"{ov} | {rc} |")
            print(lines[-1], flush=True)
    vec_note = {"sentence-mean": "normalised mean of real MiniLM vectors of the chunk's "
                "sentences", "random": "random unit vectors",
                "sentence": "each chunk one sentence, its own real MiniLM vector"}[args.vectors]
    table = "\n".join(lines) + (
        f"\n\n`hybrid` preset (BM25 + onnx-dense on qdrant edge, weighted fusion), top 10, "
        f"{len(qs)} SciFact queries, one at a time. Chunks drawn from {len(pool):,} real "
        f"sentences; chunk vectors: {vec_note}; query encoding real (MiniLM fp32 ONNX). "
        "Build s: bm25 + edge writes without encoding (exact rows), HNSW optimise time "
        "(first HNSW row). Overlap and recall: share of the exact search's top 10 returned. "
        f"Command: `python benchmarks/hybrid_latency.py {' '.join(argv or sys.argv[1:])}`.")
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / out_name).write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
