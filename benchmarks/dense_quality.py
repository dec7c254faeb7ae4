"""nDCG@10 of dense all-MiniLM-L6-v2 (trawl's ONNX encoder) with exact cosine search.

Every BEIR-layout dataset under ``../shared/datasets`` (or ``TRAWL_DATASETS``). Documents
are ``title + " " + text`` as BEIR encodes them for sentence-transformers, one vector per
document (no chunking: the published SciFact 0.645 is measured that way), top-100 exact
search, nDCG@10 with pytrec_eval (trec_eval's definition). SciFact must give 0.645 ± 0.005:
anything lower means a pooling, truncation or tokenizer bug.

    python benchmarks/dense_quality.py [--quick] [--quantize fp32|int8] [--datasets scifact]

``--quick`` runs limit-small and cranfield only. Prints a markdown table and writes it
to benchmarks/out/dense_quality.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "benchmarks" / "out"
PUBLISHED = {"scifact": 0.645}


def read_jsonl(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as f:
        next(f)
        for line in f:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    return qrels


def evaluate(name: str, quantize: str, threads: int) -> dict[str, object]:
    import pytrec_eval

    from trawl import ComponentContext
    from trawl_onnx.encoders import OnnxDenseEncoder

    folder = DATASETS / name
    corpus = read_jsonl(folder / "corpus.jsonl")
    queries = read_jsonl(folder / "queries.jsonl")
    qrels = read_qrels(folder / "qrels" / "test.tsv")
    queries = [q for q in queries if q["_id"] in qrels]
    enc = OnnxDenseEncoder(OnnxDenseEncoder.Config(quantize=quantize, threads=threads),
                           ComponentContext(name="onnx-dense"))
    texts = [(d.get("title", "") + " " + d.get("text", "")).strip() for d in corpus]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # long documents are truncated to 256 tokens, as in BEIR
        docs = enc.encode_documents(texts, show_progress=sys.stderr.isatty())
    encode_s = time.perf_counter() - t0
    qv = enc.encode_queries([q["text"] for q in queries])
    scores = qv @ docs.T
    run: dict[str, dict[str, float]] = {}
    k = min(100, len(corpus))
    for qi, q in enumerate(queries):
        top = np.argpartition(-scores[qi], k - 1)[:k]
        run[q["_id"]] = {corpus[i]["_id"]: float(scores[qi, i]) for i in top}
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"})
    per_query = evaluator.evaluate(run)
    ndcg = float(np.mean([m["ndcg_cut_10"] for m in per_query.values()]))
    recall = float(np.mean([m["recall_100"] for m in per_query.values()]))
    return {"dataset": name, "docs": len(corpus), "queries": len(queries), "ndcg@10": ndcg,
            "recall@100": recall, "encode_docs_per_s": len(corpus) / encode_s,
            "published": PUBLISHED.get(name)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="limit-small and cranfield only")
    parser.add_argument("--quantize", choices=["fp32", "int8"], default="fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--datasets", nargs="*", default=None)
    args = parser.parse_args()
    names = args.datasets or sorted(p.name for p in DATASETS.iterdir()
                                    if (p / "corpus.jsonl").is_file())
    if args.quick and not args.datasets:
        names = [n for n in names if n in ("limit-small", "cranfield")]
    rows = []
    for name in names:
        row = evaluate(name, args.quantize, args.threads)
        rows.append(row)
        print(f"{name}: nDCG@10 {row['ndcg@10']:.4f}", file=sys.stderr)
    lines = [
        f"Dense all-MiniLM-L6-v2 via trawl onnx-dense ({args.quantize}), exact cosine search, "
        "one vector per document (title + text, truncated at 256 tokens)", "",
        "| dataset | docs | queries | nDCG@10 | published | Recall@100 | encode docs/s |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        pub = f"{r['published']:.3f}" if r["published"] else "-"
        lines.append(f"| {r['dataset']} | {r['docs']} | {r['queries']} | {r['ndcg@10']:.4f} | "
                     f"{pub} | {r['recall@100']:.4f} | {r['encode_docs_per_s']:.1f} |")
    lines += ["", "encode docs/s: 2 CPU cores shared with other workers; not a speed claim."]
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.quantize == "fp32" else f"-{args.quantize}"
    (OUT / f"dense_quality{suffix}.md").write_text(table + "\n", encoding="utf-8")
    failed = [r for r in rows if r["published"] is not None
              and abs(float(r["ndcg@10"]) - float(r["published"])) > 0.005]
    if failed and args.quantize == "fp32":
        sys.exit(f"nDCG@10 off the published value: {[r['dataset'] for r in failed]}")


if __name__ == "__main__":
    main()
