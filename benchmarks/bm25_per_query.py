"""Per-query cost of the ``bm25`` preset against bm25s on SciFact, top 100, side by side.

    python benchmarks/bm25_per_query.py [ROUNDS]

One process holds both: trawl's ``bm25`` preset (``Trawl.search(q, 100)``: analysis,
scoring, top-k and the Hit objects) and bm25s (``bm25s.tokenize`` with the same Snowball
stemmer and English stopwords, then ``retrieve(k=100)``) over SciFact's corpus (title +
text). Every query is timed one at a time, wall and thread CPU; the best round's p50 is
printed as JSON. Run it with two code trees' PYTHONPATH to compare before and after. On a
loaded machine wall times move with the load; thread CPU much less. Needs bm25s
(``pip install bm25s``; a benchmark dependency, not in any extra).
"""

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from trawl import PluginHost, Trawl, TrawlSettings, load_pipeline
from trawl.evaluation import load_beir

DATASETS = Path(os.environ.get("TRAWL_DATASETS",
                               Path(__file__).resolve().parents[2] / "shared" / "datasets"))


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    data = load_beir(DATASETS / "scifact")
    qs = list(data.queries.values())
    docs = list(data.corpus())
    t = Trawl(Path(tempfile.mkdtemp()) / "ix", load_pipeline("bm25"), host=PluginHost(),
              settings=TrawlSettings(), show_progress=False)
    t.add(docs, batch_size=1000)
    stemmer = Stemmer.Stemmer("english")
    retriever = bm25s.BM25(k1=1.5, b=0.75, method="robertson")
    texts = [f"{d.metadata.get('title', '')} {d.text}" for d in docs]
    retriever.index(bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False),
                    show_progress=False)

    def trawl_query(q: str) -> object:
        return t.search(q, 100)

    def bm25s_query(q: str) -> object:
        tokens = bm25s.tokenize([q], stopwords="en", stemmer=stemmer, show_progress=False)
        return retriever.retrieve(tokens, k=100, show_progress=False, n_threads=1)

    sides = {"trawl": trawl_query, "bm25s": bm25s_query}
    for search in sides.values():  # warm up
        for q in qs[:30]:
            search(q)
    p50: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in sides}
    for _ in range(rounds):
        for name, search in sides.items():  # interleaved: each round times both
            wall, cpu = [], []
            for q in qs:
                c0, w0 = time.thread_time(), time.perf_counter()
                search(q)
                wall.append((time.perf_counter() - w0) * 1000)
                cpu.append((time.thread_time() - c0) * 1000)
            p50[name]["wall"].append(float(np.percentile(wall, 50)))
            p50[name]["cpu"].append(float(np.percentile(cpu, 50)))
    best = {name: {"wall_p50_ms": min(v["wall"]), "cpu_p50_ms": min(v["cpu"]),
                   "wall_p50_rounds": [round(x, 3) for x in v["wall"]]}
            for name, v in p50.items()}
    best["trawl / bm25s"] = {k: best["trawl"][k] / best["bm25s"][k]  # type: ignore[operator]
                             for k in ("wall_p50_ms", "cpu_p50_ms")}
    print(json.dumps({"queries": len(qs), "load": os.getloadavg()[0], **best}))


if __name__ == "__main__":
    main()
