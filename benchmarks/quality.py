"""Retrieval quality of every preset pipeline on every shared BEIR dataset.

    python benchmarks/quality.py [--quick] [--datasets scifact,cranfield] [--pipelines bm25,dense]
                                 [--max-queries N]

``colbert`` and ``splade-hybrid`` take their model from TRAWL_COLBERT_MODEL /
TRAWL_SPLADE_MODEL; unset (offline), ``colbert`` runs MiniLM's token vectors (the
``multivector`` retriever under its own name) and ``splade-hybrid`` a stand-in built here
from MiniLM (``minilm_mlm_stand_in``): the plumbing at MiniLM's size, not a SPLADE's quality.

Indexes each dataset once per pipeline into the trawl cache (re-runs reuse it: unchanged
documents are skipped) and prints nDCG@10 / Recall@10 / Recall@100 / MRR@10 and query
latency p50/p95 as a markdown table; also writes benchmarks/out/quality.md.
``--quick``: cranfield and limit-small, pipelines bm25/dense/hybrid, first 100 queries each.
The script exits non-zero when any row failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from trawl import PipelineConfig, PluginHost, Trawl, TrawlSettings, load_pipeline
from trawl.config import PRESETS, RetrieverConfig
from trawl.evaluation import eval_index_folder, evaluate, load_beir

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))
PIPELINES = ["bm25", "dense", "hybrid", "hybrid-rrf", "multivector", "hybrid-rerank", "colbert",
             "splade-hybrid"]
# Variants of a preset measured here but not shipped as presets: (preset, overrides).
# hybrid-rrf shares hybrid's index (eval folders are keyed by retrievers only).
# *-rm3: BM25 with RM3 pseudo-relevance feedback at Anserini's defaults (10 chunks, 10 terms,
# original query weight 0.5), not tuned here; its own retriever name so a shared index
# holds it beside plain bm25.
_BM25_RM3 = {"name": "bm25-rm3", "index": "bm25", "index_config": {"feedback_docs": 10}}
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {
    "hybrid-rrf": ("hybrid", {"name": "hybrid-rrf", "fusion": {"method": "rrf"}}),
    "hybrid-dbsf": ("hybrid", {"name": "hybrid-dbsf", "fusion": {"method": "dbsf"}}),
    "bm25-rm3": ("bm25", {"name": "bm25-rm3", "retrievers": [_BM25_RM3]}),
    "hybrid-rm3": ("hybrid", {"name": "hybrid-rm3", "retrievers": [
        _BM25_RM3, *(r for r in PRESETS["hybrid"]["retrievers"] if r["name"] != "bm25")]}),
}


CAPTION = (
    "Presets as shipped (`hybrid`: weighted min-max fusion; `hybrid-rrf`: the same retrievers "
    "with RRF k=60; `multivector`: MiniLM token vectors, MUVERA FDE top-200 on Qdrant edge, "
    "exact MaxSim from the token store; `hybrid-rerank`: `hybrid` top-50 reranked by exact "
    "MaxSim over MiniLM token vectors stored at index time in the same token store). Latency "
    "is per query, one at a time, 2 CPU cores; index build time is not included.")
SHARED_CAPTION = (
    " `--shared-index`: one index per dataset holds every retriever and the reranker; each "
    "preset is its retrievers/fusion/rerank applied per search.")


def minilm_mlm_stand_in() -> Path:
    """MiniLM with an untrained masked-LM head: identity transform, unit LayerNorm, decoder
    tied to the word embeddings, zero bias. No SPLADE checkpoint ships offline; this one
    runs ``onnx-sparse`` end to end at MiniLM's size (6 layers, 30,522 ids). Its weights
    score a token by how close a contextual state is to its input embedding: a lexical
    signal with some spill-over, never trained for retrieval."""
    import json
    import shutil

    import numpy as np
    from safetensors.numpy import load_file, save_file

    from trawl_onnx.sources import resolve_model_folder

    out = Path(TrawlSettings().cache_dir) / "stand-ins" / "all-MiniLM-L6-v2-mlm-identity"
    if (out / "model.safetensors").is_file():
        return out
    src = resolve_model_folder("all-MiniLM-L6-v2")
    out.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt", "sentence_bert_config.json"):
        shutil.copyfile(src / name, out / name)
    config = json.loads((src / "config.json").read_text())
    config["architectures"] = ["BertForMaskedLM"]
    (out / "config.json").write_text(json.dumps(config, indent=2))
    weights = {f"bert.{k}": v for k, v in load_file(str(src / "model.safetensors")).items()
               if not k.startswith("pooler.")}
    hidden = int(config["hidden_size"])
    weights.update({
        "cls.predictions.transform.dense.weight": np.eye(hidden, dtype=np.float32),
        "cls.predictions.transform.dense.bias": np.zeros(hidden, np.float32),
        "cls.predictions.transform.LayerNorm.weight": np.ones(hidden, np.float32),
        "cls.predictions.transform.LayerNorm.bias": np.zeros(hidden, np.float32),
        "cls.predictions.bias": np.zeros(int(config["vocab_size"]), np.float32)})
    save_file(weights, str(out / "model.safetensors"))
    return out


#: presets that need a model trawl does not ship offline → a stand-in and its settings
STAND_INS: dict[str, tuple[str, Any, dict[str, object]]] = {
    # an untrained head weighs thousands of ids per passage: keep 256 (queries 64)
    "splade-hybrid": ("TRAWL_SPLADE_MODEL", minilm_mlm_stand_in,
                      {"max_terms": 256, "query_max_terms": 64}),
}


def pipeline_config(name: str) -> PipelineConfig:
    if name in STAND_INS and not os.environ.get(STAND_INS[name][0]):
        _, build, settings = STAND_INS[name]
        data = load_pipeline(f"{name}:{build()}").model_dump()
        for retriever in data["retrievers"]:
            if retriever["encoder"] == "onnx-sparse":
                retriever["encoder_config"].update(settings)
        return load_pipeline({**data, "name": f"{name} (MiniLM stand-in)"})
    if name in VARIANTS:
        base, overrides = VARIANTS[name]
        return load_pipeline({**load_pipeline(base).model_dump(), **overrides})
    return load_pipeline(name)


def shared_config(pipelines: list[str]) -> PipelineConfig:
    """One pipeline holding every retriever (and the reranker) the named presets use.

    Each preset is then evaluated on it through per-search overrides (``retrievers``,
    ``fusion``, ``rerank``): the same chunks (the first encoder's tokenizer is the same
    MiniLM one either way), the same indexes, but every passage is encoded once per
    encoder instead of once per preset, and the multi-vector retriever and the ``maxsim``
    reranker share one token store, as they do in one user index.
    """
    retrievers: dict[str, RetrieverConfig] = {}
    reranker = None
    for name in pipelines:
        cfg = pipeline_config(name)
        for r in cfg.retrievers:
            if retrievers.setdefault(r.name, r) != r:
                raise SystemExit(f"--shared-index: retriever {r.name!r} differs between presets")
        reranker = reranker or cfg.reranker
    return load_pipeline({"name": "shared", "retrievers": [
        r.model_dump() for r in retrievers.values()],
        "reranker": reranker.model_dump() if reranker else None})


def corpus_sample(data: Any, size: int | None) -> tuple[list[Any] | None, str]:
    """Every document judged for the evaluated queries plus the first others in corpus
    order, ``size`` in all (``None``: the whole corpus). A small corpus makes slow pipelines
    measurable on a busy machine; its figures compare only with rows of the same sample."""
    if not size:
        return None, data.name
    judged = {d for rels in data.qrels.values() for d in rels}
    docs = [d for d in data.corpus() if d.id in judged]
    for d in data.corpus():
        if len(docs) >= max(size, len(judged)):
            break
        if d.id not in judged:
            docs.append(d)
    return docs, f"{data.name}-sample{size}-q{len(data.queries)}"


def run(dataset_dir: Path, pipeline: str, host: PluginHost, max_queries: int | None,
        shared: PipelineConfig | None = None,
        corpus_size: int | None = None) -> dict[str, object]:
    settings = TrawlSettings()
    config = pipeline_config(pipeline)
    data = load_beir(dataset_dir).head(max_queries)
    index_config = shared or config
    docs, key = corpus_sample(data, corpus_size)
    folder = eval_index_folder(settings.cache_dir, key, index_config)
    t0 = time.perf_counter()
    with Trawl(folder, index_config, host=host, settings=settings, show_progress=False) as t:
        added = t.add(docs if docs is not None else data.corpus(), batch_size=128)
        build_s = time.perf_counter() - t0
        names = [r.name for r in config.retrievers]
        rerank = config.reranker is not None
        result = evaluate(lambda q, k: t.search(q, k, retrievers=names, fusion=config.fusion,
                                                rerank=rerank),
                          data, pipeline_name=config.name)
    row = result.to_json()
    row["index_s"] = round(build_s, 1) if added.added else None
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--datasets", default=None, help="comma list (default: all shared datasets)")
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--corpus-sample", type=int, default=None, help=(
        "index only the judged documents of the evaluated queries plus others up to N "
        "documents (comparable only with rows of the same sample)"))
    ap.add_argument("--rerank-max-queries", type=int, default=None, help=(
        "cap for hybrid-rerank only (its reranker encodes candidates at query time)"))
    ap.add_argument("--shared-index", action="store_true", help=(
        "build one index per dataset with every retriever the pipelines use and evaluate each "
        "preset on it (encodes each passage once per encoder, not once per preset)"))
    ap.add_argument("--quick", action="store_true", help=(
        "cranfield + limit-small, bm25/dense/hybrid, first 100 queries"))
    args = ap.parse_args(argv)
    if args.quick:
        args.datasets = args.datasets or "cranfield,limit-small"
        if args.pipelines == ",".join(PIPELINES):
            args.pipelines = "bm25,dense,hybrid"
        args.max_queries = args.max_queries or 100
    names = args.datasets.split(",") if args.datasets else sorted(
        p.name for p in DATASETS.iterdir() if (p / "corpus.jsonl").exists())
    host = PluginHost()
    lines = ["| dataset | pipeline | queries | nDCG@10 | R@10 | R@100 | MRR@10 | p50 ms | p95 ms |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    failed = 0
    shared = shared_config(args.pipelines.split(",")) if args.shared_index else None
    for name in names:
        for pipeline in args.pipelines.split(","):
            try:
                cap = args.max_queries
                if pipeline == "hybrid-rerank" and args.rerank_max_queries is not None:
                    cap = min(cap or args.rerank_max_queries, args.rerank_max_queries)
                r = run(DATASETS / name, pipeline, host, cap, shared, args.corpus_sample)
            except Exception as exc:  # a missing plugin must not hide the other rows
                lines.append(f"| {name} | {pipeline} | error: {type(exc).__name__}: {exc} "
                             "| | | | | | |")
                print(lines[-1], file=sys.stderr)
                failed += 1
                continue
            lines.append(f"| {name} | {pipeline} | {r['queries']} | {r['ndcg@10']:.4f} | "
                         f"{r['recall@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f} | "
                         f"{r['latency_ms_p50']:.1f} | {r['latency_ms_p95']:.1f} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n\n" + CAPTION + (SHARED_CAPTION if shared else "")
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "quality.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
