"""The embedded engine (qdrant edge) at 100k, 300k and 1M chunks: vector settings side by side.

    python benchmarks/scale.py [--sizes 100000] [--settings fp32,int8,binary,...]
                               [--queries 50] [--no-bm25] [--quick]

(300k / 1M: ``--sizes 1000000 --settings binary-flat``; BM25's build dominates there.)

Vectors: real MiniLM sentence vectors (a seeded sample of ``--pool`` SciFact + Cranfield
sentences, encoded once and cached under the trawl cache folder), reused with small
perturbations: chunk i is ``normalise(pool[i % P] + eps * z_i)`` with ``z_i`` Gaussian noise
of the pool's own covariance (``eps`` 0.5: a copy keeps cosine ~0.9 to its sentence). Real
vectors keep the anisotropy and clusters of MiniLM's space, which is what HNSW and
quantization errors depend on; the noise keeps the copies distinct. Encoding 1M real chunks
would take days on 2 cores. Queries are real SciFact/Cranfield queries encoded by MiniLM.
Chunk texts (for BM25) are 3-9 pool sentences per chunk, as in ``hybrid_latency.py``;
they are independent of the vectors, which only matters for latency, not for the recall
measured here (dense alone against exact search over the same vectors).

Settings (``--settings``): ``fp32`` HNSW; ``int8`` scalar quantization + HNSW (rescored);
``binary`` 1-bit codes + HNSW, originals on disk, oversampling 4 + rescoring (the seeds'
Binary Embedding-based Retrieval); ``binary-flat`` the same codes without a graph (a scan
of the codes, then rescoring); ``mrl256`` / ``mrl128`` Matryoshka-style truncation of every
vector to the first 256 / 128 dimensions (renormalised) with fp32 HNSW (its quality cost on
SciFact: ``benchmarks/qdrant_hybrid.py``).

``qdrant-hybrid``: the preset as shipped (``bm25-sparse`` sparse vectors with Qdrant's IDF
modifier + the dense retriever in one qdrant-edge collection, fused by trawl) with the
``binary`` setting's dense codes; its write time includes sparse-encoding the chunk texts.
Its row adds the lexical agreement: the mean top-10 overlap of its ``bm25`` retriever (sparse,
Qdrant IDF, fixed avgdl) with the ``bm25`` index (Okapi) on the same texts and queries.
``qdrant-hybrid-mapped``: the same with ``indexes_on_disk`` (the sparse and payload indexes
memory-mapped). ``exact``: core's brute-force index.

Reopen columns: after the build the index is closed and its folder opened in a fresh process
(``--reopen-worker``; imports are not timed): the time from the index's constructor to its
first top-10 answer, and that process's RSS and heap (RssAnon) growth. RSS counts the mapped
file pages a query touched; the heap does not.

Per size x setting: write time (points into the engine, no encoding), optimise time (HNSW
and quantized storage, blocking), RSS growth while building and querying (the process's
resident memory, so file pages the engine touched count too) and disk per chunk, hybrid
(``hybrid`` preset: query encoding + BM25 + dense + weighted fusion) p50/p95, and dense
recall@10 against exact search over the full 384-d vectors. BM25's build time, memory and
p50 at each size are reported once. Results append to benchmarks/out/scale.jsonl and
print as a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bm25 import queries, sentence_pool
from hybrid_latency import picks_for, sentence_vectors

from trawl import Chunk, ComponentContext, Hit, Index, IndexQuery, PluginHost, Trawl
from trawl.config import load_pipeline
from trawl.filters import Filter

REPO = Path(__file__).resolve().parents[1]
EPS = 0.5
BLOCK = 10_000

SETTINGS: dict[str, dict[str, Any]] = {
    "fp32": {},
    "int8": {"quantization": "scalar"},
    "binary": {"quantization": "binary", "quantization_oversampling": 4.0, "on_disk": True},
    "binary-flat": {"quantization": "binary", "quantization_oversampling": 4.0,
                    "on_disk": True, "hnsw": {"indexing_threshold_kb": 0}},
    "mrl256": {},
    "mrl128": {},
    # the qdrant-hybrid preset at scale: bm25-sparse vectors (IDF in the engine) and the
    # dense binary codes in one qdrant-edge collection
    "qdrant-hybrid": {"quantization": "binary", "quantization_oversampling": 4.0,
                      "on_disk": True},
    # the same with the sparse and payload indexes memory-mapped (``indexes_on_disk``)
    "qdrant-hybrid-mapped": {"quantization": "binary", "quantization_oversampling": 4.0,
                             "on_disk": True, "indexes_on_disk": True},
    # core's brute-force index (``exact``): every vector scanned, no engine
    "exact": {},
}
DIMS = {"mrl256": 256, "mrl128": 128}


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (``RssAnon``: heap only, without mapped files)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reopen(spec: dict[str, Any], query: str, qvec: np.ndarray) -> dict[str, float]:
    """Open a built, closed index folder in a fresh process and answer one query
    (``--reopen-worker``): the time from the index's constructor to its first answer and
    the process's RSS and heap (RssAnon) growth over its state before opening."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="trawl-scale-reopen-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps({**spec, "query": query, "vector": qvec.tolist()}))
        out = subprocess.run([sys.executable, __file__, "--reopen-worker", str(spec_file)],
                             capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"reopen worker failed for {spec['setting']}:\n{out.stderr[-3000:]}")
    row: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  reopen {spec['setting']}: {row}", file=sys.stderr, flush=True)
    return row


def reopen_worker(spec_file: Path) -> dict[str, float]:
    """The fresh process of ``reopen``: imports first (not timed), then open + one query."""
    from trawl import SparseVector, VectorField
    from trawl_bm25.sparse import BM25SparseEncoder

    spec = json.loads(spec_file.read_text())
    host = PluginHost()
    host.registry.get("index", spec["index"]).load()  # the plugin's modules, not timed
    fields = tuple(VectorField(**f) for f in spec.get("fields", ()))
    ctx = ComponentContext(name=spec["name"], storage_dir=Path(spec["storage_dir"]),
                           dim=spec.get("dim"), fields=fields)
    vector = np.asarray(spec["vector"], dtype=np.float32)
    sparse: SparseVector = BM25SparseEncoder().encode_queries([spec["query"]])[0]
    gc.collect()
    r0, a0 = rss_mb(), rss_mb("RssAnon")
    t0 = time.perf_counter()
    index = host.registry.build("index", spec["index"], spec["config"], ctx)
    if fields:  # qdrant-hybrid: sparse and dense from one request, as the preset searches
        hits = index.search_fields(  # type: ignore[attr-defined]
            {"bm25": IndexQuery(text=spec["query"], sparse=sparse),
             "dense": IndexQuery(text=spec["query"], vector=vector)}, 10)
        found = sum(len(h) for h in hits.values())
    else:
        found = len(index.search(IndexQuery(text=spec["query"], vector=vector), 10))
    first = time.perf_counter() - t0
    row = {"reopen_s": first, "reopen_rss_mb": rss_mb() - r0,
           "reopen_anon_mb": rss_mb("RssAnon") - a0, "reopen_hits": found}
    index.close()
    return row


def du_bytes(path: Path) -> int:
    """Allocated bytes (sparse files count what they use)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def pct(values: Sequence[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


class Generator:
    """Chunk vectors from real sentence vectors plus covariance-matched noise (seeded)."""

    def __init__(self, pool_vecs: np.ndarray, seed: int = 0) -> None:
        import hashlib

        from trawl import TrawlSettings

        self.pool = pool_vecs.astype(np.float32)
        digest = hashlib.sha256(self.pool.tobytes()).hexdigest()[:12]
        self.cache = TrawlSettings().cache_dir / "bench" / f"scale-{digest}-{seed}-{EPS}"
        cov = np.cov(self.pool, rowvar=False).astype(np.float64)
        self.chol = np.linalg.cholesky(cov + 1e-6 * np.eye(cov.shape[0])).astype(np.float32)
        self.seed = seed

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)``; blocks of BLOCK rows are cached under the trawl cache."""
        path = self.cache / f"{start}-{stop}.npy"
        if path.exists():
            return np.load(path)
        rng = np.random.default_rng([self.seed, start])
        base = self.pool[np.arange(start, stop) % len(self.pool)]
        noise = rng.standard_normal((stop - start, self.pool.shape[1]), dtype=np.float32)
        v = base + EPS * noise @ self.chol.T
        v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        if stop - start == BLOCK:
            self.cache.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, v)
            tmp.replace(path)
        return v

    def exact_top10(self, n: int, q: np.ndarray) -> list[list[int]]:
        best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
        best_i = np.zeros((len(q), 0), dtype=np.int64)
        for s in range(0, n, 50_000):
            v = self.block_range(s, min(n, s + 50_000))
            scores = q @ v.T
            cand_s = np.concatenate([best_s, scores], axis=1)
            cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(s, s + len(v)),
                                                              scores.shape)], axis=1)
            top = np.argpartition(-cand_s, 10, axis=1)[:, :10]
            best_s = np.take_along_axis(cand_s, top, 1)
            best_i = np.take_along_axis(cand_i, top, 1)
        return [list(map(int, row)) for row in best_i]

    def block_range(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` (``start`` a multiple of BLOCK), as ``block`` wrote them."""
        return np.concatenate([self.block(s, min(stop, s + BLOCK))
                               for s in range(start, stop, BLOCK)])


class Truncated(Index):
    """Matryoshka-style: the first ``dim`` dimensions of every vector, renormalised."""

    def __init__(self, inner: Index, dim: int) -> None:
        super().__init__(inner.config, inner.context)
        self.inner, self.dim = inner, dim

    def _cut(self, v: np.ndarray) -> np.ndarray:
        v = np.asarray(v, dtype=np.float32)[..., :self.dim]
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    def upsert(self, chunks: Sequence[Chunk], vectors: Any = None) -> int:
        return self.inner.upsert(chunks, self._cut(vectors))

    def search(self, query: IndexQuery, top_k: int, filters: Filter | None = None) -> list[Hit]:
        assert query.vector is not None
        return self.inner.search(IndexQuery(text=query.text, vector=self._cut(query.vector)),
                                 top_k, filters)

    def delete(self, doc_ids: Sequence[str]) -> int:
        return self.inner.delete(doc_ids)

    def count(self) -> int:
        return self.inner.count()

    def doc_ids(self) -> set[str]:
        return self.inner.doc_ids()

    def optimize(self) -> None:
        self.inner.optimize()  # type: ignore[attr-defined]

    def close(self) -> None:
        self.inner.close()


def chunks_for(start: int, stop: int, picks: list[np.ndarray], pool: list[str]) -> list[Chunk]:
    out = []
    for i in range(start, stop):
        text = " ".join(pool[j] for j in picks[i])
        out.append(Chunk(id=f"d{i}#0", doc_id=f"d{i}", text=text, end=len(text)))
    return out


def run_size(n: int, settings: list[str], gen: Generator, pool: list[str], qs: list[str],
             qvecs: np.ndarray, host: PluginHost, with_bm25: bool = True
             ) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    folder = Path(tempfile.mkdtemp(prefix=f"trawl-scale-{n}-", dir=REPO / "benchmarks" / "out"))
    config = load_pipeline("hybrid")
    config.retrievers[1].index_config["optimize_after"] = 0
    t0 = time.perf_counter()
    exact = gen.exact_top10(n, qvecs)
    print(f"[{n:,}] exact top-10 of {len(qs)} queries in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr, flush=True)
    try:
        with Trawl(folder / "trawl", config, host=host, show_progress=False) as t:
            t.search("warm up the encoder", 10, retrievers=["dense"])
            bm25 = t.pipeline.retrievers["bm25"].index
            picks = picks_for(n, len(pool)) if with_bm25 else []
            gc.collect()
            r0, t0 = rss_mb(), time.perf_counter()
            if with_bm25:
                for s in range(0, n, BLOCK):
                    bm25.upsert(chunks_for(s, min(n, s + BLOCK), picks, pool))
                bm25.search(IndexQuery(text="warm up"), 10)  # builds the weights
                build = time.perf_counter() - t0
                del picks
                gc.collect()
                bm25_mb = rss_mb() - r0
                lat = []
                for q in qs:
                    s0 = time.perf_counter()
                    bm25.search(IndexQuery(text=q), 10)
                    lat.append((time.perf_counter() - s0) * 1000)
                rows.append({"n": n, "setting": "bm25", "build_s": build, "rss_mb": bm25_mb,
                             "p50": pct(lat, 50), "p95": pct(lat, 95),
                             "disk_b": du_bytes(folder / "trawl" / "bm25"),
                             "load": os.getloadavg()[0]})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            retriever = t.pipeline.retrievers["dense"]
            placeholder = retriever.index
            for name in settings:
                if name.startswith("qdrant-hybrid"):
                    rows.append(run_qdrant_hybrid(n, name, gen, pool, folder, qs, qvecs, exact,
                                                  host, bm25 if with_bm25 else None))
                    print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
                    continue
                rows.append(run_setting(n, name, gen, t, retriever, folder, qs, qvecs, exact,
                                        host, with_bm25))
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            retriever.index = placeholder
            del bm25
        if with_bm25:  # closed with the Trawl: its snapshot holds every chunk now
            bm25_row = next(r for r in rows if r["setting"] == "bm25")
            bm25_row.update(reopen({"setting": "bm25", "index": "bm25",
                                    "config": config.retrievers[0].index_config,
                                    "name": "bm25", "storage_dir": str(folder / "trawl" / "bm25")},
                                   qs[0], qvecs[0]))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return rows


def run_qdrant_hybrid(n: int, name: str, gen: Generator, pool: list[str], folder: Path,
                      qs: list[str], qvecs: np.ndarray, exact: list[list[int]],
                      host: PluginHost, bm25: Index | None) -> dict[str, Any]:
    """The ``qdrant-hybrid`` preset: sparse BM25 + dense binary codes in one edge collection,
    written through the pipeline's own write path (dense vectors from the generator)."""
    where = folder / name
    config = load_pipeline("qdrant-hybrid")
    for r in config.retrievers:
        r.index_config.update({"mode": "edge", "optimize_after": 0, **SETTINGS[name]})
    picks = picks_for(n, len(pool))
    gc.collect()
    r0 = rss_mb()
    with Trawl(where, config, host=host, show_progress=False) as t:
        t.search("warm up the encoder", 10, retrievers=["dense"])
        sparse = t.pipeline.retrievers["bm25"]
        t0 = time.perf_counter()
        for s in range(0, n, BLOCK):
            stop = min(n, s + BLOCK)
            chunks = chunks_for(s, stop, picks, pool)
            t.pipeline.write(chunks, {"bm25": sparse.encode_chunks(chunks),
                                      "dense": gen.block(s, stop)})
        write_s = time.perf_counter() - t0
        del picks
        t0 = time.perf_counter()
        t.pipeline._stores["qdrant"].optimize()  # type: ignore[attr-defined]
        optimize_s = time.perf_counter() - t0
        t.search("warm up", 10)
        lat, dense_lat, found, overlap = [], [], [], []
        for q in qs:
            s0 = time.perf_counter()
            t.search(q, 10)
            lat.append((time.perf_counter() - s0) * 1000)
            s0 = time.perf_counter()
            hits = t.search(q, 10, retrievers=["dense"])
            dense_lat.append((time.perf_counter() - s0) * 1000)
            found.append([int(h.doc_id[1:]) for h in hits])
            if bm25 is not None:
                lexical = {h.doc_id for h in t.search(q, 10, retrievers=["bm25"])}
                okapi = {h.doc_id for h in bm25.search(IndexQuery(text=q), 10)}
                overlap.append(len(lexical & okapi) / max(1, min(10, len(okapi))))
        ram = rss_mb() - r0
        store = t.pipeline._stores["qdrant"]
        spec = {"setting": name, "index": "qdrant",
                "config": store.config.model_dump(mode="json"), "name": "qdrant",
                "storage_dir": str(store.context.storage_dir),
                "fields": [dataclasses.asdict(f) for f in store.context.fields]}
    opened = reopen(spec, qs[0], qvecs[0])
    recall = statistics.mean(len(set(a) & set(b)) / 10 for a, b in zip(exact, found,
                                                                        strict=True))
    disk = du_bytes(where)
    shutil.rmtree(where, ignore_errors=True)
    return {"n": n, "setting": name, "write_s": write_s, "optimize_s": optimize_s,
            "rss_mb": ram, "disk_b": disk, "p50": pct(lat, 50), "p95": pct(lat, 95),
            "dense_p50": pct(dense_lat, 50), "recall": recall,
            "lexical_overlap": statistics.mean(overlap) if overlap else float("nan"),
            **opened, "load": os.getloadavg()[0]}


def run_setting(n: int, name: str, gen: Generator, t: Trawl, retriever: Any, folder: Path,
                qs: list[str], qvecs: np.ndarray, exact: list[list[int]], host: PluginHost,
                with_bm25: bool = True) -> dict[str, Any]:
    dim = DIMS.get(name, 384)
    cfg = {"mode": "edge", "optimize_after": 0, **SETTINGS[name]}
    where = folder / name
    gc.collect()
    r0 = rss_mb()
    kind = "exact" if name == "exact" else "qdrant"
    if kind == "exact":
        cfg = {}
    index: Index = host.registry.build("index", kind, cfg, ComponentContext(
        name="dense", storage_dir=where, dim=dim))  # type: ignore[assignment]
    if dim != 384:
        index = Truncated(index, dim)
    t0 = time.perf_counter()
    for s in range(0, n, BLOCK):
        stop = min(n, s + BLOCK)
        chunks = [Chunk(id=f"d{i}#0", doc_id=f"d{i}", text="") for i in range(s, stop)]
        index.upsert(chunks, gen.block(s, stop))
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    if hasattr(index, "optimize"):
        index.optimize()
    optimize_s = time.perf_counter() - t0
    retriever.index = index
    t.search("warm up", 10)
    lat: list[float] = []
    found: list[list[int]] = []
    for q in (qs if with_bm25 else []):
        s0 = time.perf_counter()
        t.search(q, 10)
        lat.append((time.perf_counter() - s0) * 1000)
    dense_lat = []
    for q in qs:
        s0 = time.perf_counter()
        hits = t.search(q, 10, retrievers=["dense"])
        dense_lat.append((time.perf_counter() - s0) * 1000)
        found.append([int(h.doc_id[1:]) for h in hits])
    recall = statistics.mean(len(set(a) & set(b)) / 10 for a, b in zip(exact, found,
                                                                        strict=True))
    ram = rss_mb() - r0
    disk = du_bytes(where)
    index.close()
    retriever.index = None
    del index
    gc.collect()
    opened = {} if name in DIMS else reopen(
        {"setting": name, "index": kind, "config": cfg, "name": "dense",
         "storage_dir": str(where), "dim": dim}, qs[0], qvecs[0])
    shutil.rmtree(where, ignore_errors=True)
    return {"n": n, "setting": name, "write_s": write_s, "optimize_s": optimize_s,
            "rss_mb": ram, "disk_b": disk, **opened,
            "p50": pct(lat, 50) if lat else float("nan"),
            "p95": pct(lat, 95) if lat else float("nan"), "dense_p50": pct(dense_lat, 50),
            "recall": recall, "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000")
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--pool", type=int, default=20_000)
    ap.add_argument("--no-bm25", action="store_true", help="dense only (no BM25 index, no "
                    "hybrid latency): for sizes whose BM25 build does not fit the time")
    ap.add_argument("--quick", action="store_true", help="20k chunks, fp32 and binary, 20 "
                    "queries")
    ap.add_argument("--reopen-worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.reopen_worker:
        print(json.dumps(reopen_worker(args.reopen_worker)))
        return 0
    host = PluginHost()
    sizes = [20_000] if args.quick else [int(x) for x in args.sizes.split(",")]
    settings = ["fp32", "binary"] if args.quick else args.settings.split(",")
    unknown = set(settings) - set(SETTINGS)
    if unknown:
        ap.error(f"unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    qs = queries()[: (20 if args.quick else args.queries)]
    full = sentence_pool()
    sample = np.random.default_rng(7).choice(len(full), size=min(args.pool, len(full)),
                                             replace=False)
    pool = [full[i] for i in sorted(sample)]
    gen = Generator(sentence_vectors(pool, host))
    probe = gen.block(0, 2000)
    cos = float(np.mean(np.sum(probe * gen.pool[:2000], axis=1)))
    print(f"chunk vector vs its sentence: mean cosine {cos:.3f}", file=sys.stderr)
    from trawl import ComponentContext as Ctx

    enc = host.registry.build("encoder", "onnx-dense", {}, Ctx(name="dense"))
    qvecs = np.asarray(enc.encode_queries(qs), dtype=np.float32)
    enc.close()
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| chunks | setting | write s | optimise s | RSS MB | RAM B/chunk | disk B/chunk | "
             "hybrid p50 ms | p95 ms | dense p50 ms | dense recall@10 | lexical top-10 "
             "overlap with bm25 | reopen → first answer s | reopened RSS MB | reopened heap "
             "(RssAnon) MB | load |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in sizes:
        for r in run_size(n, settings, gen, pool, qs, qvecs, host, not args.no_bm25):
            r["command"] = f"python benchmarks/scale.py {' '.join(argv or sys.argv[1:])}"
            with (out / "scale.jsonl").open("a") as fh:
                fh.write(json.dumps(r) + "\n")
            lines.append(
                f"| {n:,} | {r['setting']} | {r.get('write_s', r.get('build_s', 0)):.1f} | "
                f"{r.get('optimize_s', 0):.1f} | {r['rss_mb']:.0f} | "
                f"{r['rss_mb'] * 2**20 / n:.0f} | {r['disk_b'] / n:.0f} | {r['p50']:.1f} | "
                f"{r['p95']:.1f} | {r.get('dense_p50', float('nan')):.1f} | "
                f"{r.get('recall', float('nan')):.3f} | "
                f"{r.get('lexical_overlap', float('nan')):.3f} | "
                f"{r.get('reopen_s', float('nan')):.2f} | "
                f"{r.get('reopen_rss_mb', float('nan')):.0f} | "
                f"{r.get('reopen_anon_mb', float('nan')):.0f} | {r['load']:.1f} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines) + (
        f"\n\n{len(qs)} queries, top 10; chunk vectors: real MiniLM sentence vectors "
        f"(pool {len(pool):,}) + covariance-matched noise (mean cosine {cos:.3f} to their "
        "sentence). bm25 row: build s, RSS MB, BM25 alone p50/p95. Load: the 1-minute load "
        "average after each row (a shared 2-core machine: latencies are not speed claims). "
        f"Command: `python benchmarks/scale.py {' '.join(argv or sys.argv[1:])}`.")
    (out / "scale.md").write_text(table + "\n", encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
