"""Good-document survival under mixed bad batches (issue 12): must be 100%.

    python benchmarks/batch_isolation.py [--quick] [--rounds 200] [--seed 0]

Each round opens an on-disk index (two real bm25 indexes; the second refuses any chunk that
holds ``POISON``, as a backend with its own limits would, after writing the chunks before
it), stores 20 documents, then adds one seeded random batch mixing new documents, updates
of stored ones and bad records: door-refused (lone surrogate, NaN, inf, bytes, a set,
metadata 2,000 deep, a non-string text) and index-refused (``POISON``). It then reopens the
folder and counts: good documents searchable by their own unique word, stored documents
still there (old text kept when their update was bad), failures reported, and failures
that were not a ``TrawlError``. Prints one table row per on_error mode.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trawl
from trawl import AddError, Trawl
from trawl_bm25.index import BM25Index

OUT = Path(__file__).resolve().parent / "out"


class PoisonBM25(BM25Index):
    """bm25 that refuses chunks holding POISON mid-batch."""

    def upsert(self, chunks: Sequence[trawl.Chunk], vectors: Any = None) -> int:
        for i, c in enumerate(chunks):
            if "POISON" in c.text:
                if i:
                    super().upsert(chunks[:i], vectors)
                raise RuntimeError(f"backend refuses chunk {c.id}")
        return super().upsert(chunks, vectors)


class PoisonPlugin:
    @staticmethod
    @trawl.hookimpl
    def register_indexes(register: Any) -> None:
        register(PoisonBM25, name="poison-bm25")


PIPELINE = {"name": "isolation", "retrievers": [
    {"name": "bm25", "index": "bm25"}, {"name": "strict", "index": "poison-bm25"}]}



def _deep(levels: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(levels):
        node["x"] = {}
        node = node["x"]
    return root


BAD: list[dict[str, Any]] = [
    {"text": "lone \ud800 surrogate"}, {"text": "x", "score": math.nan},
    {"text": "x", "score": math.inf}, {"text": "x", "blob": b"\xff"},
    {"text": "x", "tags": {"a"}}, {"text": "x", "deep": _deep(2000)}, {"text": 42},
    {"text": "the backend says POISON"},
]


def one_round(rng: random.Random, folder: Path, on_error: str) -> dict[str, int]:
    host = trawl.PluginHost()
    host.register(PoisonPlugin, name="poison-bench")
    stored = {f"old{i}": f"stored unique{i}old" for i in range(20)}
    with Trawl.open(folder, pipeline=PIPELINE, host=host, attach=False,
                    show_progress=False) as t:
        t.add([{"id": k, "text": v} for k, v in stored.items()])
    batch, good = [], {}
    for j in range(rng.randint(5, 60)):
        doc_id = f"old{rng.randrange(20)}" if rng.random() < 0.4 else f"new{j}"
        if rng.random() < 0.35:
            batch.append({"id": doc_id, **rng.choice(BAD)})
            good.pop(doc_id, None)
        else:
            text = f"good unique{doc_id}w{j} words"
            batch.append({"id": doc_id, "text": text})
            good[doc_id] = text
    expected = {**stored, **good}
    failed: list[Any] = []
    with Trawl.open(folder, host=host, attach=False, show_progress=False) as t:
        try:
            failed = t.add(batch, on_error=on_error, batch_size=rng.randint(1, 16)).failed
        except AddError as exc:
            failed = exc.result.failed
        except trawl.PluginRuntimeError:  # every written document was refused: no good ones
            pass
    host2 = trawl.PluginHost()
    host2.register(PoisonPlugin, name="poison-bench")
    with Trawl.open(folder, host=host2, attach=False, show_progress=False) as t:
        held = {d.id: d.text for d in t.get(sorted(t.manifest.doc_ids()))}
        found = sum(1 for k, v in good.items()
                    if k in {h.doc_id for h in t.search(v.split()[1], top_k=5)})
    return {"good": len(good), "good_found": found,
            "stored": len(stored), "stored_kept": sum(1 for k in stored if k in held),
            "exact": int(held == expected), "failed": len(failed),
            "untyped": sum(1 for f in failed if not isinstance(f.error, trawl.TrawlError))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="30 rounds per mode")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rounds = 30 if args.quick else args.rounds
    lines = [f"load average {os.getloadavg()[0]:.2f}; {rounds} rounds per mode, seed {args.seed}",
             "", "| on_error | rounds | good docs | good found | survival | stored kept "
             "| index == expected | failures | untyped | s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    broken = False
    for mode in ("skip", "raise"):
        rng = random.Random(args.seed)
        total: dict[str, int] = {}
        start = time.perf_counter()
        for _ in range(rounds):
            folder = Path(tempfile.mkdtemp(prefix="trawl-iso-"))
            try:
                for k, v in one_round(rng, folder / "idx", mode).items():
                    total[k] = total.get(k, 0) + v
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        survival = 100.0 * total["good_found"] / max(total["good"], 1)
        lines.append(f"| {mode} | {rounds} | {total['good']} | {total['good_found']} | "
                     f"{survival:.1f}% | {total['stored_kept']}/{total['stored']} | "
                     f"{total['exact']}/{rounds} | {total['failed']} | {total['untyped']} | "
                     f"{time.perf_counter() - start:.1f} |")
        print(lines[-1], flush=True)
        broken |= (total["good_found"] != total["good"] or total["untyped"] > 0
                   or total["stored_kept"] != total["stored"] or total["exact"] != rounds)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "batch_isolation.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 1 if broken else 0  # a lost good document or an untyped error is a failure


if __name__ == "__main__":
    sys.exit(main())
