"""Evaluate a trawl pipeline on a BEIR-layout dataset from Python.

Indexes ``corpus.jsonl`` through the same ingestion path as ``trawl index`` (so ids are
the dataset's ``_id``s), runs every judged query, and prints nDCG@10, Recall@10/100 and
MRR@10 with trawl's evaluation harness; with ``--check`` the run is also scored by
pytrec_eval (trec_eval's reference implementation) as a cross-check.

    python examples/eval_beir.py                                  # limit-small, bm25
    python examples/eval_beir.py ../shared/datasets/scifact --pipeline hybrid
    python examples/eval_beir.py ../shared/datasets/cranfield --max-queries 50 --check

The command-line equivalent is ``trawl eval DATASET_DIR --pipeline NAME``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trawl import Trawl
from trawl.evaluation import evaluate, hits_to_doc_scores, load_beir
from trawl.ingest import index_paths

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))


def pytrec_check(t: Trawl, dataset: object, depth: int = 100) -> dict[str, float]:
    """The same run scored by pytrec_eval (mean over queries)."""
    import pytrec_eval

    queries: dict[str, str] = dataset.queries  # type: ignore[attr-defined]
    qrels: dict[str, dict[str, int]] = dataset.qrels  # type: ignore[attr-defined]
    run = {qid: hits_to_doc_scores(t.search(text, depth * 2), depth)
           for qid, text in queries.items()}
    evaluator = pytrec_eval.RelevanceEvaluator(
        qrels, {"ndcg_cut.10", "recall.10", "recall.100", "recip_rank"})
    per_query = evaluator.evaluate(run)
    n = max(1, len(per_query))
    return {m: sum(q[m] for q in per_query.values()) / n
            for m in ("ndcg_cut_10", "recall_10", "recall_100")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dataset", nargs="?", default=str(DATASETS / "limit-small"),
                    help="BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv")
    ap.add_argument("--pipeline", default="bm25", help="pipeline preset or TOML file")
    ap.add_argument("--index", default=None,
                    help="index folder to reuse between runs (default: in memory)")
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--check", action="store_true", help="cross-check with pytrec_eval")
    args = ap.parse_args(argv)

    dataset = load_beir(args.dataset)
    if args.max_queries:
        dataset.queries = dict(list(dataset.queries.items())[:args.max_queries])
        dataset.qrels = {q: dataset.qrels[q] for q in dataset.queries}
    t = (Trawl.open(args.index, pipeline=args.pipeline, show_progress=False) if args.index
         else Trawl.memory(args.pipeline))
    with t:
        report = index_paths(t, [Path(args.dataset) / "corpus.jsonl"],
                             show_progress=sys.stderr.isatty())
        print(f"indexed: {report.summary().splitlines()[0]}", file=sys.stderr)
        result = evaluate(lambda q, k: t.search(q, k), dataset,
                          pipeline_name=t.pipeline.config.name)
        data = result.to_json()
        print(f"| dataset | pipeline | queries | nDCG@10 | Recall@10 | Recall@100 | MRR@10 "
              f"| p50 ms |\n|---|---|---:|---:|---:|---:|---:|---:|\n"
              f"| {data['dataset']} | {data['pipeline']} | {data['queries']} "
              f"| {data['ndcg@10']:.4f} | {data['recall@10']:.4f} | {data['recall@100']:.4f} "
              f"| {data['mrr@10']:.4f} | {data['latency_ms_p50']:.1f} |")
        if args.check:
            ref = pytrec_check(t, dataset)
            print(f"pytrec_eval: nDCG@10 {ref['ndcg_cut_10']:.4f}  "
                  f"Recall@10 {ref['recall_10']:.4f}  Recall@100 {ref['recall_100']:.4f}")
            if abs(ref["ndcg_cut_10"] - data["ndcg@10"]) > 1e-4:
                print("WARNING: trawl and pytrec_eval disagree on nDCG@10", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
