"""Does the contextual header (title and heading path before a chunk's text, for the
encoder only) change retrieval quality? Measured on a shared BEIR set, side by side.

    python benchmarks/context_headers.py [--dataset scifact] [--max-tokens 128]
                                         [--max-queries N]

Both variants index the same texts (``title + " " + text``, as ``trawl eval`` does) with
the same dense retriever (MiniLM, exact index) and chunk size; ``header`` also gives each
document the section a Markdown reader makes of a top heading equal to the title, so
every chunk after the first (which opens with the title itself) is encoded as
``title\\n<chunk>``. BEIR documents have titles but no headings: this shows what the
header does for later chunks of a split document, not what a heading path does.
Prints a markdown table (nDCG@10, Recall@10, chunks, index time; load average).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from trawl import Document, PluginHost, Trawl
from trawl.chunking import SECTIONS
from trawl.evaluation import evaluate, load_beir
from trawl.ingest.readers import heading_sections

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", REPO.parent / "shared" / "datasets"))


def with_header(doc: Document) -> Document:
    title = doc.title
    if not title or not doc.text.startswith(title):
        return doc
    sections = heading_sections([(0, 1, title)], len(doc.text), title)
    return Document(id=doc.id, text=doc.text, metadata={**doc.metadata, SECTIONS: sections})


def run(variant: str, dataset_dir: Path, max_tokens: int, max_queries: int | None
        ) -> dict[str, object]:
    dataset = load_beir(dataset_dir).head(max_queries)
    pipeline = {"name": f"ctx-{variant}",
                "retrievers": [{"name": "dense", "index": "exact", "encoder": "onnx-dense"}],
                "chunking": {"max_tokens": max_tokens, "overlap": 0}}
    with tempfile.TemporaryDirectory() as tmp:
        with Trawl.open(Path(tmp) / "idx", pipeline=pipeline, host=PluginHost(),
                        show_progress=False) as t:
            docs = list(dataset.corpus())
            if variant == "header":
                docs = [with_header(d) for d in docs]
            t0 = time.perf_counter()
            added = t.add(docs, batch_size=256, show_progress=False)
            seconds = time.perf_counter() - t0
            result = evaluate(lambda q, k: t.search(q, k), dataset, pipeline_name=variant)
    return {"variant": variant, "ndcg10": result.metrics["ndcg@10"],
            "recall10": result.metrics["recall@10"], "chunks": added.chunks,
            "index_s": seconds, "queries": result.queries}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="scifact")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--variants", default="title-in-text,header",
                    help="comma-separated: title-in-text, header")
    args = ap.parse_args()
    rows = []
    for variant in args.variants.split(","):
        rows.append(run(variant, DATASETS / args.dataset, args.max_tokens, args.max_queries))
        print(f"done {variant}: {rows[-1]}  load {os.getloadavg()}", flush=True)
    print(f"\n{args.dataset}, dense (MiniLM, exact index), chunks of <= {args.max_tokens} "
          f"tokens, no overlap; load average at the end {os.getloadavg()}\n")
    print("| variant | nDCG@10 | Recall@10 | chunks | index s | queries |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['ndcg10']:.4f} | {r['recall10']:.4f} | {r['chunks']} "
              f"| {r['index_s']:.0f} | {r['queries']} |")


if __name__ == "__main__":
    main()
