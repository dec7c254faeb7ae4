"""The ``multivector`` preset end to end: nDCG@10 and per-query latency per FDE setting and
number of candidates, side by side in one run.

    python benchmarks/multivector_latency.py [--quick] [--dataset scifact]
        [--settings r20k5p16,r40k4p16] [--candidates 200,400] [--repeat 2] [--queries N]
        [--hits 200] [--index-config '{"vector_datatype": "float16"}']

Each query goes through ``Trawl.search`` exactly as ``benchmarks/quality.py`` sends it
(``trawl eval``: 200 hits, the multivector retriever alone, no reranker; ``--hits 10``
for an interactive top-10 search): MiniLM query
tokens -> MUVERA query FDE -> Qdrant (edge) FDE top-``candidates`` -> exact MaxSim from the
token store. Reported per configuration: nDCG@10, R@100, wall p50/p95 and CPU ms p50
(``time.process_time``: onnxruntime's threads count too) per query, and the load average.

Indexes, without re-encoding any passage: the FDE setting the shared eval index
(``quality.py --shared-index``, built here when missing) was built with is measured on that
index; any other setting gets a multivector-only side index under the trawl cache, filled
from the shared index's token store (its chunks and stored token vectors go through the
side index's own MUVERA transform, Qdrant and token store; only passages whose text is not
in the store would be encoded, and they are counted). Candidates are a query-time choice:
the retriever's config is swapped in memory, nothing is rebuilt. ``--repeat`` runs every
configuration that many times, interleaved, so load drifts hit all of them alike.
``--quick``: limit-small, 50 queries, one repeat.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trawl import PluginHost, Trawl, TrawlSettings, load_pipeline
from trawl.evaluation import eval_index_folder, evaluate, load_beir

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))
sys.path.insert(0, str(REPO / "benchmarks"))
import fde_sweep  # noqa: E402
import quality  # noqa: E402


def side_config(setting: str, index_config: dict[str, Any]) -> Any:
    """The ``multivector`` preset with another FDE setting (and index options)."""
    base = load_pipeline("multivector").model_dump()
    (mv,) = base["retrievers"]
    mv["transform_config"] = {**mv["transform_config"], **fde_sweep.parse(setting)}
    mv["index_config"] = {**mv["index_config"], **index_config}
    return load_pipeline({**base, "name": f"multivector-{setting}"})


def fill_from_store(side: Trawl, shared: Trawl, corpus: Any) -> tuple[int, int]:
    """Add ``corpus`` to ``side``, its token encoder answering from ``shared``'s token store
    by chunk text (same tokenizer, same chunking): returns (passages looked up, encoded)."""
    store, source = shared.pipeline.tokens, shared.pipeline.token_encoder
    encoder = side.pipeline.token_encoder
    assert store is not None and source is not None and encoder is not None
    ids = store.chunk_ids()
    by_text: dict[str, str] = {}
    for cid, chunk in zip(ids, shared.pipeline.stored_chunks(ids), strict=True):
        if chunk is not None:
            by_text.setdefault(source.document_text(chunk), cid)
    counts = [0, 0]
    real_encode = encoder.encode_documents

    def from_store(texts: Sequence[str], *, show_progress: bool = False) -> Any:
        hits = [by_text.get(t) for t in texts]
        stored = store.get([h for h in hits if h is not None])
        missing = [t for t, h in zip(texts, hits, strict=True) if h is None]
        encoded = iter(real_encode(missing) if missing else [])
        found = iter(stored)
        counts[0] += len(texts) - len(missing)
        counts[1] += len(missing)
        return [next(found) if h is not None else next(encoded) for h in hits]

    encoder.encode_documents = from_store  # type: ignore[method-assign]
    try:
        side.add(corpus, batch_size=128)
    finally:
        del encoder.encode_documents
    return counts[0], counts[1]


def measure(t: Trawl, data: Any, candidates: int, hits: int) -> dict[str, float]:
    """One pass over the queries with the multivector retriever's ``candidates`` set."""
    retriever = t.pipeline.retrievers["multivector"]
    retriever.config = retriever.config.model_copy(update={"candidates": candidates})
    cpu: list[float] = []

    def search(q: str, k: int) -> Any:
        c0 = time.process_time()
        found = t.search(q, hits or k, retrievers=["multivector"], rerank=False)
        cpu.append((time.process_time() - c0) * 1000)
        return found

    for q in list(data.queries.values())[:10]:  # warm the page cache and the model
        search(q, 200)
    cpu.clear()
    load = os.getloadavg()[0]
    result = evaluate(search, data, pipeline_name="multivector").to_json()
    return {"ndcg": float(result["ndcg@10"]), "r100": float(result["recall@100"]),
            "p50": float(result["latency_ms_p50"]), "p95": float(result["latency_ms_p95"]),
            "cpu": statistics.median(cpu), "load": (load + os.getloadavg()[0]) / 2}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="limit-small, 50 queries, 1 repeat")
    ap.add_argument("--dataset", default=None, help="default: scifact (--quick: limit-small)")
    ap.add_argument("--settings", default="r20k5p16,r40k4p16")
    ap.add_argument("--candidates", default="200,400")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--queries", type=int, default=None)
    ap.add_argument("--index-config", type=json.loads, default={}, help=(
        "JSON options for the multivector retriever's index (every setting then gets a side "
        "index), e.g. '{\"vector_datatype\": \"float16\"}'"))
    ap.add_argument("--hits", type=int, default=200, help=(
        "hits per search (200: as trawl eval asks; nDCG@10 needs >= 10)"))
    args = ap.parse_args(argv)
    dataset = args.dataset or ("limit-small" if args.quick else "scifact")
    repeat = 1 if args.quick else args.repeat
    data = load_beir(DATASETS / dataset).head(50 if args.quick else args.queries)
    settings = TrawlSettings()
    host = PluginHost()
    shared_cfg = quality.shared_config(quality.PIPELINES)
    shared_folder = eval_index_folder(settings.cache_dir, data.name, shared_cfg)
    indexes: dict[str, Trawl] = {}
    notes: list[str] = []
    try:
        shared = Trawl(shared_folder, shared_cfg, host=host, settings=settings,
                       show_progress=False)
        indexes["shared"] = shared
        added = shared.add(data.corpus(), batch_size=128)
        if added.added:
            notes.append(f"built the shared eval index {shared_folder} ({added.added} docs)")
        own = shared.pipeline.state.get("transform:multivector", {})
        own_setting = f"r{own.get('r_reps')}k{own.get('k_sim')}p{own.get('d_proj')}"
        plan: dict[str, Trawl] = {}
        for setting in args.settings.split(","):
            if setting == own_setting and not args.index_config:
                plan[setting] = shared
                continue
            cfg = side_config(setting, args.index_config)
            folder = eval_index_folder(settings.cache_dir, data.name, cfg)
            side = Trawl(folder, cfg, host=host, settings=settings, show_progress=False)
            indexes[setting] = side
            t0 = time.perf_counter()
            looked_up, encoded = fill_from_store(side, shared, data.corpus())
            if looked_up or encoded:
                notes.append(f"{setting}: side index {folder} filled in "
                             f"{time.perf_counter() - t0:.0f} s ({looked_up} passages from "
                             f"the token store, {encoded} encoded)")
            plan[setting] = side
        for line in notes:
            print(line, file=sys.stderr)
        rows: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(repeat):
            for setting, t in plan.items():
                for n in (int(c) for c in args.candidates.split(",")):
                    r = measure(t, data, n, args.hits)
                    rows.setdefault((setting, n), []).append(r)
                    print(f"{setting} top-{n}: nDCG@10 {r['ndcg']:.4f} wall p50 "
                          f"{r['p50']:.1f} ms CPU p50 {r['cpu']:.1f} ms load {r['load']:.2f}",
                          file=sys.stderr, flush=True)
    finally:
        for t in indexes.values():
            t.close()
    lines = [f"{dataset}, {len(data.queries)} queries, {args.hits} hits per query; "
             f"{repeat} interleaved pass(es); own FDE setting of the shared index: "
             f"{own_setting}.", "",
             "| FDE setting | candidates | nDCG@10 | R@100 | wall p50 ms | wall p95 ms | "
             "CPU ms p50 | load avg |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (setting, n), runs in rows.items():
        lines.append(
            f"| {setting} | {n} | {runs[0]['ndcg']:.4f} | "
            + (f"{runs[0]['r100']:.4f}" if args.hits >= 100 else "–") + " | "
            + " / ".join(f"{r['p50']:.1f}" for r in runs) + " | "
            + " / ".join(f"{r['p95']:.1f}" for r in runs) + " | "
            + " / ".join(f"{r['cpu']:.1f}" for r in runs) + " | "
            + " / ".join(f"{r['load']:.1f}" for r in runs) + " |")
    lines += ["", "Timings per pass separated by ' / '. Command: `python "
              f"benchmarks/multivector_latency.py{' --quick' if args.quick else ''} --dataset "
              f"{dataset} --settings {args.settings} --candidates {args.candidates} --hits "
              f"{args.hits}" + (f" --index-config '{json.dumps(args.index_config)}'"
                                  if args.index_config else "") + "`."]
    table = "\n".join([*lines, "", *notes])
    out = REPO / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "multivector_latency.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    if any(len({round(r["ndcg"], 6) for r in runs}) > 1 for runs in rows.values()):
        print("nDCG@10 differs between passes of one configuration", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
