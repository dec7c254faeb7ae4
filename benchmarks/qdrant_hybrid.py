"""``qdrant-hybrid`` (BM25 as Qdrant sparse vectors + dense, one collection, one Query API
request) against ``hybrid`` (the ``bm25`` index + dense) on every shared dataset.

    python benchmarks/qdrant_hybrid.py [--datasets scifact,cranfield,limit-small] [--quick]

The figures are the ones ``trawl eval DATASET -p qdrant-hybrid`` and ``-p hybrid`` give
(the same chunks, MiniLM vectors, query path and scoring: ``trawl.evaluation.evaluate``),
but each dataset's chunks are encoded once for both pipelines (and cached under the trawl
cache folder) instead of once per pipeline: SciFact takes tens of minutes to encode here.
Also reported, from the same vectors:

* the lexical retrievers alone: the ``bm25`` index (Okapi IDF, and Lucene's
  ``ln(1 + (N-n+0.5)/(n+0.5))``, which is Qdrant's) and ``bm25-sparse`` on Qdrant with its
  fixed ``avgdl`` (128) and with the dataset's true mean chunk length;
* Matryoshka-style truncation of the dense vectors (first 256/128/64 dimensions,
  renormalised; MiniLM was not trained for it): nDCG@10 of exact dense search.

Writes benchmarks/out/qdrant_hybrid.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from trawl import Chunk, PluginHost, Trawl, TrawlSettings, load_pipeline
from trawl.config import FusionConfig
from trawl.evaluation import BeirDataset, evaluate, load_beir, score_run

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))
BATCH = 1000


def dense_vectors(t: Trawl, chunks: list[Chunk], name: str) -> np.ndarray:
    """MiniLM vectors of the chunks (the hybrid preset's encoder), cached by content."""
    digest = hashlib.sha256("\x00".join(c.text for c in chunks).encode()).hexdigest()[:16]
    cache = TrawlSettings().cache_dir / "bench" / f"chunks-minilm-{name}-{digest}.npy"
    if cache.exists():
        return np.load(cache)
    t0 = time.perf_counter()
    dense = t.pipeline.retrievers["dense"]
    parts = [np.asarray(dense.encode_chunks(chunks[s:s + BATCH]), dtype=np.float32)
             for s in range(0, len(chunks), BATCH)]
    vecs = np.concatenate(parts)
    print(f"{name}: encoded {len(chunks):,} chunks in {time.perf_counter() - t0:.0f} s "
          f"(load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vecs)
    return vecs


def fill(t: Trawl, chunks: list[Chunk], vecs: np.ndarray | None) -> None:
    """Write chunks through the pipeline's own write path with precomputed dense vectors."""
    for s in range(0, len(chunks), BATCH):
        part = chunks[s:s + BATCH]
        encoded: dict[str, Any] = {}
        for name, r in t.pipeline.retrievers.items():
            if r.encoder is not None and r.encoder.kind == "dense":
                assert vecs is not None
                encoded[name] = vecs[s:s + BATCH]
            else:
                encoded[name] = r.encode_chunks(part)
        t.pipeline.write(part, encoded)


def scores(t: Trawl, ds: BeirDataset, label: str, **search: Any) -> dict[str, Any]:
    res = evaluate(lambda q, k: t.search(q, k, **search), ds, pipeline_name=label)
    return {"label": label, "ndcg": res.metrics["ndcg@10"], "r100": res.metrics["recall@100"],
            "p50": statistics.median(res.latencies_ms)}


def truncation(t: Trawl, ds: BeirDataset, chunks: list[Chunk], vecs: np.ndarray
               ) -> list[tuple[int, float]]:
    enc = t.pipeline.retrievers["dense"].encoder
    assert enc is not None
    qids = list(ds.queries)
    q = np.asarray(enc.encode_queries([ds.queries[i] for i in qids]), dtype=np.float32)
    out = []
    for d in (384, 256, 128, 64):
        vd = vecs[:, :d] / np.linalg.norm(vecs[:, :d], axis=1, keepdims=True)
        qd = q[:, :d] / np.linalg.norm(q[:, :d], axis=1, keepdims=True)
        run: dict[str, dict[str, float]] = {}
        for qid, row in zip(qids, qd @ vd.T, strict=True):
            docs: dict[str, float] = {}
            for i in np.argsort(-row)[:300]:  # a document scores as its best chunk
                docs.setdefault(chunks[i].doc_id, float(row[i]))
            run[qid] = docs
        out.append((d, score_run(run, ds.qrels)["ndcg@10"]))
    return out


def run_dataset(name: str, host: PluginHost, max_queries: int | None) -> list[str]:
    ds = load_beir(DATASETS / name).head(max_queries)
    docs = list(ds.corpus())
    folder = Path(tempfile.mkdtemp(prefix=f"trawl-qh-{name}-", dir=REPO / "benchmarks" / "out"))
    lines: list[str] = []
    try:
        hybrid = Trawl(folder / "hybrid", load_pipeline("hybrid"), host=host,
                       show_progress=False)
        qh = Trawl(folder / "qh", load_pipeline("qdrant-hybrid"), host=host,
                   show_progress=False)
        chunks = [c for d in docs for c in hybrid.chunk(d)]
        assert all(qh.chunk(d) == hybrid.chunk(d) for d in docs[:200]), "chunking differs"
        vecs = dense_vectors(hybrid, chunks, name)
        t0 = time.perf_counter()
        fill(hybrid, chunks, vecs)
        t_h = time.perf_counter() - t0
        t0 = time.perf_counter()
        fill(qh, chunks, vecs)
        t_q = time.perf_counter() - t0
        print(f"{name}: {len(chunks):,} chunks written: hybrid {t_h:.1f} s, qdrant-hybrid "
              f"{t_q:.1f} s (no encoding)", file=sys.stderr, flush=True)
        rows = []
        for method in ("weighted", "rrf", "dbsf"):
            fusion = FusionConfig(method=method)  # type: ignore[arg-type]
            rows.append(scores(hybrid, ds, f"hybrid, {method}", fusion=fusion))
            rows.append(scores(qh, ds, f"qdrant-hybrid, {method}", fusion=fusion))
        rows.append(scores(hybrid, ds, "bm25 index (Okapi IDF)", retrievers=["bm25"]))
        rows.append(scores(qh, ds, "bm25-sparse on Qdrant (avgdl 128)", retrievers=["bm25"]))
        sparse = qh.pipeline.retrievers["bm25"].encoder
        assert sparse is not None
        lengths = [len(sparse.analyzer(sparse.document_text(c)))  # type: ignore[attr-defined]
                   for c in chunks]
        avgdl = float(np.mean(lengths))
        for label, pipeline in (
                ("bm25 index (Lucene IDF = Qdrant's)",
                 {"name": "l", "retrievers": [{"name": "bm25", "index": "bm25",
                                               "index_config": {"idf": "lucene"}}]}),
                (f"bm25-sparse on Qdrant (true avgdl {avgdl:.0f})",
                 {"name": "s", "retrievers": [{"name": "bm25", "index": "qdrant",
                                               "encoder": "bm25-sparse",
                                               "encoder_config": {"avgdl": avgdl}}]})):
            with Trawl(folder / label.split()[0] / str(len(rows)), load_pipeline(pipeline),
                       host=host, show_progress=False) as t:
                fill(t, chunks, None)
                rows.append(scores(t, ds, label))
        for r in rows:
            lines.append(f"| {name} | {r['label']} | {r['ndcg']:.4f} | {r['r100']:.4f} | "
                         f"{r['p50']:.1f} |")
            print(lines[-1], flush=True)
        for d, nd in truncation(hybrid, ds, chunks, vecs):
            lines.append(f"| {name} | dense exact, first {d} dims | {nd:.4f} | – | – |")
            print(lines[-1], flush=True)
        hybrid.close()
        qh.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="scifact,cranfield,limit-small")
    ap.add_argument("--quick", action="store_true", help="limit-small, 200 queries")
    args = ap.parse_args(argv)
    names = ["limit-small"] if args.quick else args.datasets.split(",")
    host = PluginHost()
    load0 = os.getloadavg()[0]
    lines = ["| dataset | pipeline / retriever | nDCG@10 | R@100 | p50 ms |",
             "|---|---|---:|---:|---:|"]
    for name in names:
        lines += run_dataset(name, host, 200 if args.quick else None)
    table = "\n".join(lines) + (
        f"\n\nAll judged queries{' (first 200)' if args.quick else ''}; load average "
        f"{load0:.1f} at start, {os.getloadavg()[0]:.1f} at the end (p50 is not a speed "
        f"claim on a shared machine). Command: `python benchmarks/qdrant_hybrid.py "
        f"{' '.join(argv or sys.argv[1:])}`.")
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "qdrant_hybrid.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
