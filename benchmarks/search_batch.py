"""``Trawl.search_batch`` vs a loop of ``Trawl.search``: the same hits, fewer encoder calls.

The example corpus in an in-memory ``hybrid`` index (BM25 + MiniLM ONNX dense, the default
pipeline). Queries are sentences of the corpus itself. Rounds are interleaved (loop, batch,
loop, batch, ...) so machine load hits both alike; the best round counts. Every batch's
hits are checked equal (ids and scores to 1e-5) to the loop's.

    python benchmarks/search_batch.py [--quick] [--queries 64] [--rounds 3]

Prints a markdown table and writes it to benchmarks/out/search_batch.md.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def corpus_sentences(n: int) -> list[str]:
    sentences: list[str] = []
    for path in sorted((ROOT / "examples" / "corpus").iterdir()):
        text = path.read_text(encoding="utf-8")
        for s in re.split(r"(?<=[.!?])\s+", text):
            words = s.split()
            if 6 <= len(words) <= 30 and not s.startswith("#"):
                sentences.append(" ".join(words))
    step = max(1, len(sentences) // n)
    return sentences[::step][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="16 queries, 2 rounds")
    ap.add_argument("--queries", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--top-k", type=int, default=10)
    args = ap.parse_args()
    n, rounds = (16, 2) if args.quick else (args.queries, args.rounds)

    from trawl import Trawl
    from trawl.ingest import index_paths

    t = Trawl.memory("hybrid")
    index_paths(t, [ROOT / "examples" / "corpus"], show_progress=False)
    queries = corpus_sentences(n)
    t.search_batch(queries[:4], args.top_k)  # warm up the sessions
    loop_s: list[float] = []
    batch_s: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        looped = [t.search(q, args.top_k) for q in queries]
        loop_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        batched = t.search_batch(queries, args.top_k)
        batch_s.append(time.perf_counter() - t0)
        for a, b in zip(looped, batched, strict=True):
            assert [h.chunk_id for h in a] == [h.chunk_id for h in b]
            assert all(abs(x.score - y.score) < 1e-5 for x, y in zip(a, b, strict=True))
    best_loop, best_batch = min(loop_s), min(batch_s)
    load = os.getloadavg()
    lines = [
        f"search_batch vs search loop: {len(queries)} queries, top {args.top_k}, `hybrid` "
        f"(BM25 + MiniLM ONNX dense, exact results equal), best of {rounds} interleaved "
        f"rounds; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        "",
        "| way | total ms | ms per query | speed-up |",
        "|---|---:|---:|---:|",
        f"| loop of `search` | {best_loop * 1000:.1f} | {best_loop * 1000 / len(queries):.2f} "
        "| 1.00× |",
        f"| `search_batch` | {best_batch * 1000:.1f} | "
        f"{best_batch * 1000 / len(queries):.2f} | {best_loop / best_batch:.2f}× |",
    ]
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "search_batch.md").write_text(table + "\n", encoding="utf-8")
    t.close()


if __name__ == "__main__":
    main()
