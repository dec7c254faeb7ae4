"""Fusion sweep: which hybrid (BM25 + dense) fusion setting holds on every dataset?

    python benchmarks/hybrid.py [--datasets limit-small,scifact,cranfield] [--quick]

Each retriever's top-100 is computed once per query from the cached `hybrid` index
(built by `trawl eval ... --pipeline hybrid` or benchmarks/quality.py); every fusion
variant is then applied to the same runs, so the comparison isolates fusion. Prints
nDCG@10 and Recall@10 per dataset and variant, and writes benchmarks/out/hybrid.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trawl import PluginHost, Trawl, TrawlSettings, load_pipeline
from trawl.evaluation import eval_index_folder, hits_to_doc_scores, load_beir, score_run
from trawl.fusion import fuse

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))
VARIANTS: list[tuple[str, str, float, dict[str, float]]] = [
    ("bm25 only", "single", 0, {"bm25": 1.0}),
    ("dense only", "single", 0, {"dense": 1.0}),
    ("rrf k=60", "rrf", 60, {}),
    ("rrf k=60 bm25×2", "rrf", 60, {"bm25": 2.0, "dense": 1.0}),
    ("rrf k=10", "rrf", 10, {}),
    ("weighted minmax", "weighted", 0, {}),
    ("weighted minmax bm25×2", "weighted", 0, {"bm25": 2.0, "dense": 1.0}),
    ("dbsf", "dbsf", 0, {}),
    ("dbsf bm25×2", "dbsf", 0, {"bm25": 2.0, "dense": 1.0}),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="limit-small,scifact,cranfield")
    ap.add_argument("--quick", action="store_true", help="first 200 queries per dataset")
    args = ap.parse_args(argv)
    host = PluginHost()
    settings = TrawlSettings()
    config = load_pipeline("hybrid")
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    for name in args.datasets.split(","):
        data = load_beir(DATASETS / name).head(200 if args.quick else None)
        folder = eval_index_folder(settings.cache_dir, data.name, config)
        with Trawl(folder, config, host=host, settings=settings, show_progress=False) as t:
            t.add(data.corpus(), batch_size=128)
            runs = {}
            for qid, text in data.queries.items():
                per = {}
                for rname in ("bm25", "dense"):
                    r = t.pipeline.retrievers[rname]
                    per[rname] = r.search(text, r.encode_query(text), 100, None)
                runs[qid] = per
        for label, method, k, weights in VARIANTS:
            run = {}
            for qid, per in runs.items():
                if method == "single":
                    (only,) = weights
                    hits = per[only]
                else:
                    hits = fuse(per, method, k=k, weights=weights or None)  # type: ignore[arg-type]
                run[qid] = hits_to_doc_scores(hits, 100)
            m = score_run(run, data.qrels)
            rows.setdefault(label, {})[name] = (m["ndcg@10"], m["recall@10"])
            print(f"{name:12s} {label:24s} nDCG@10={m['ndcg@10']:.4f} R@10={m['recall@10']:.4f}",
                  flush=True)
    names = args.datasets.split(",")
    lines = ["| fusion | " + " | ".join(f"{n} nDCG@10 | {n} R@10" for n in names) + " |",
             "|---|" + "---:|---:|" * len(names)]
    for label, per in rows.items():
        cells = " | ".join(f"{per[n][0]:.4f} | {per[n][1]:.4f}" for n in names)
        lines.append(f"| {label} | {cells} |")
    table = "\n".join(lines)
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "hybrid.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
