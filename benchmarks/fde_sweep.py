"""MUVERA FDE settings vs exact MaxSim on real MiniLM token vectors: the recall/latency curve.

    python benchmarks/fde_sweep.py [--quick] [--dataset cranfield] [--queries 100]
                                   [--index FOLDER] [--grid r20k5p16,r10k4p16,...]

Reads the document token vectors a trawl index already holds (its token store, written by
a ``multivector`` or ``hybrid-rerank`` pipeline; default: the ``--shared-index`` eval
folder ``benchmarks/quality.py`` built for the dataset, so nothing is re-encoded; built here
when missing) and
encodes only the queries (``onnx-tokens``). For each FDE setting (r_reps, k_sim, d_proj)
and number of candidates it reports recall@10 of the exact MaxSim top-10 (brute force over
every chunk) after exact reranking of the FDE top-n, and the CPU milliseconds per query of
both paths, one BLAS thread, measured side by side in this run: FDE scan (numpy matmul over
the FDE matrix) + exact rerank from the token store, against brute-force MaxSim over the
whole store. CPU time, not wall time, because the machine is shared (wall time is printed
too). Writes benchmarks/out/fde_sweep.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from trawl import ComponentContext, PluginHost, Trawl, TrawlSettings
from trawl.evaluation import eval_index_folder, load_beir
from trawl.vectors import one_blas_thread

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))
GRID = "r20k5p16,r20k5p32,r20k4p32,r10k4p16,r10k5p32,r30k5p16,r40k4p16"
CANDIDATES = [50, 100, 200, 400]


def parse(setting: str) -> dict[str, int]:
    r, rest = setting[1:].split("k")
    k, p = rest.split("p")
    return {"r_reps": int(r), "k_sim": int(k), "d_proj": int(p)}


def cpu_ms(fn, *args):  # type: ignore[no-untyped-def]
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, (time.process_time() - c0) * 1000, (time.perf_counter() - w0) * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="limit-small, 30 queries, 3 settings")
    ap.add_argument("--dataset", default=None, help="default: cranfield (--quick: limit-small)")
    ap.add_argument("--index", type=Path, default=None, help="index folder with a token store")
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--grid", default=GRID)
    args = ap.parse_args(argv)
    args.dataset = args.dataset or ("limit-small" if args.quick else "cranfield")
    n_queries = 30 if args.quick else args.queries
    grid = args.grid.split(",")[:3] if args.quick else args.grid.split(",")
    sys.path.insert(0, str(REPO / "benchmarks"))
    import quality

    data = load_beir(DATASETS / args.dataset).head(n_queries)
    settings = TrawlSettings()
    shared = quality.shared_config(quality.PIPELINES)
    folder = args.index or eval_index_folder(settings.cache_dir, data.name, shared)
    host = PluginHost()
    if args.index is None:  # the quality.py --shared-index folder: build it if missing
        with Trawl(folder, shared, host=host, settings=settings, show_progress=False) as t:
            added = t.add(data.corpus(), batch_size=128)
        if added.added:
            print(f"indexed {added.added} documents of {args.dataset} into {folder}",
                  file=sys.stderr)
    elif not (folder / "pipeline.json").exists():
        print(f"no index at {folder}", file=sys.stderr)
        return 1
    with Trawl.open(folder, host=host, settings=settings, show_progress=False) as t:
        store = t.pipeline.tokens
        encoder = t.pipeline.token_encoder
        if store is None or encoder is None or store.count() == 0:
            print(f"index {folder} holds no token vectors", file=sys.stderr)
            return 1
        ids = store.chunk_ids()
        docs = [m if m is not None else np.zeros((0, store.dim or 0), np.float32)
                for m in store.get(ids)]
        queries = encoder.encode_queries(list(data.queries.values()))
        dim = int(store.dim or 0)
        n_tokens = sum(len(d) for d in docs)
        lines = [f"Token vectors of {len(ids)} chunks of {args.dataset} ({n_tokens} tokens, "
                 f"{dim}-d, from the index's token store, format {store.format}), "
                 f"{len(queries)} queries; load average {os.getloadavg()[0]:.1f}.", ""]
        with one_blas_thread():
            # brute force: exact MaxSim of every chunk, straight from the store
            exact_top: list[np.ndarray] = []
            bf_cpu, bf_wall = [], []
            for q in queries:
                (scores, _), c, w = cpu_ms(store.maxsim, q, ids)
                exact_top.append(np.argsort(-scores, kind="stable")[:10])
                bf_cpu.append(c)
                bf_wall.append(w)
            bf = float(np.median(bf_cpu))
            lines += [f"Brute-force exact MaxSim over all chunks: CPU p50 {bf:.1f} ms/query "
                      f"(wall {np.median(bf_wall):.1f} ms).", "",
                      "| setting | FDE dim | doc encode ms/chunk | " + " | ".join(
                          f"R@10 top-{n}" for n in CANDIDATES) + " | " + " | ".join(
                          f"CPU ms top-{n}" for n in CANDIDATES) + " | speed-up at first "
                      "R@10 >= 0.95 |",
                      "|---|---:|---:|" + "---:|" * (2 * len(CANDIDATES)) + "---|"]
            from trawl_muvera.fde import MuveraTransform

            for setting in grid:
                cfg = MuveraTransform.Config(**parse(setting))
                fde = MuveraTransform(cfg, ComponentContext(name="fde", dim=dim))
                t0 = time.process_time()
                doc_fde = fde.encode_document_set(docs)
                enc_ms = (time.process_time() - t0) * 1000 / len(docs)
                recalls = {n: [] for n in CANDIDATES}  # type: dict[int, list[float]]
                costs = {n: [] for n in CANDIDATES}  # type: dict[int, list[float]]
                for q, truth in zip(queries, exact_top, strict=True):
                    for n in CANDIDATES:
                        c0 = time.process_time()
                        qf = fde.encode_query_set([q])[0]
                        approx = doc_fde @ qf
                        cand = np.argpartition(-approx, min(n, len(ids) - 1))[:n]
                        scores, _ = store.maxsim(q, [ids[i] for i in cand])
                        top = cand[np.argsort(-scores, kind="stable")[:10]]
                        costs[n].append((time.process_time() - c0) * 1000)
                        recalls[n].append(len(set(top.tolist()) & set(truth.tolist())) / 10)
                r = {n: float(np.mean(v)) for n, v in recalls.items()}
                c = {n: float(np.median(v)) for n, v in costs.items()}
                first = next((n for n in CANDIDATES if r[n] >= 0.95), None)
                speed = f"{bf / c[first]:.1f}x (top-{first})" if first else "not reached"
                lines.append(f"| r{cfg.r_reps} k{cfg.k_sim} p{cfg.d_proj} | {fde.dim} | "
                             f"{enc_ms:.2f} | " + " | ".join(f"{r[n]:.3f}" for n in CANDIDATES)
                             + " | " + " | ".join(f"{c[n]:.1f}" for n in CANDIDATES)
                             + f" | {speed} |")
                print(lines[-1], flush=True)
    lines += ["", f"Command: `python benchmarks/fde_sweep.py{' --quick' if args.quick else ''}"
              f" --dataset {args.dataset}`. CPU ms: process CPU time per query on one BLAS "
              "thread (FDE query encoding + FDE scan + exact rerank from the token store)."]
    table = "\n".join(lines)
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "fde_sweep.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
