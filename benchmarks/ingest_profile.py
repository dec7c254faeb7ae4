"""Where cold ingestion time goes: wall and CPU seconds per phase of ``index_paths``.

    python benchmarks/ingest_profile.py [--quick] [--docs 300] [--pipeline hybrid]

The same corpus as ``benchmarks/ingest.py`` (SciFact abstracts as Markdown files), indexed
cold into a fresh folder after a warm-up search (models loaded, as there). Each phase is a
function wrapped with a timer that counts exclusive time: a wrapped callee's seconds are
taken out of its wrapped caller, so the rows add up to the run and ``unattributed`` is the
rest (loops, hashing, glue). ``cores busy`` is process CPU (every thread, onnxruntime's
pool included) over wall for that phase: about 2 when both cores work, under 1 for
single-threaded Python or I/O waits. The numbers say whether overlapping work with
encoding can pay (it can hide at most the non-encoding rows).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest as corpus  # the files corpus of benchmarks/ingest.py

OUT = corpus.OUT

# (module, attribute path, row label); modules of plugins not installed are skipped
PHASES = [
    ("os", "fsync", "fsync (every caller)"),
    ("trawl.ingest.runner", "scan", "walk the folders"),
    ("trawl.ingest.runner", "_read_bytes", "read files"),
    ("trawl.ingest.runner", "read_file", "parse files"),
    ("trawl.api", "_as_document", "check documents"),
    ("trawl.api", "Trawl.chunk", "chunking (without its tokenizer)"),
    ("trawl_onnx.runtime", "OnnxModel.token_spans", "tokenize for chunking"),
    ("trawl_onnx.runtime", "OnnxModel.encode", "tokenize for the encoder"),
    ("trawl_onnx.runtime", "OnnxModel.run", "onnxruntime session.run"),
    ("trawl_onnx.encoders", "OnnxDenseEncoder._pool", "pooling"),
    ("trawl_onnx.encoders", "OnnxDenseEncoder.encode_documents", "encoder glue (pad, norm)"),
    ("trawl_onnx.encoders", "OnnxTokenEncoder.encode_documents", "token encoder glue"),
    ("trawl_bm25.index", "BM25Index._analyze", "bm25 analysis"),
    ("trawl_bm25.index", "BM25Index._append", "bm25 in-memory append"),
    ("trawl_bm25.index", "BM25Index._maybe_compact", "bm25 compaction"),
    ("trawl_bm25.index", "BM25Index._persist", "bm25 delta files"),
    ("trawl_bm25.index", "BM25Index.upsert", "bm25 upsert glue"),
    ("trawl_qdrant.engines", "EdgeEngine.upsert", "qdrant edge upsert"),
    ("trawl_qdrant.engines", "EdgeEngine.commit", "qdrant edge flush (durable)"),
    ("trawl_qdrant.index", "QdrantIndex._secure", "qdrant file modes"),
    ("trawl_qdrant.index", "QdrantIndex._write", "qdrant glue (lists, payloads)"),
    ("trawl.tokens", "TokenStore.put", "token store writes"),
    ("trawl.storage", "Manifest.mark", "manifest mark"),
    ("trawl.storage", "Manifest.set_meta", "manifest file records"),
    ("trawl.storage", "Manifest.get_meta", "manifest file lookups"),
    ("trawl.storage", "Manifest.hashes", "manifest hashes"),
    ("trawl.api", "Trawl._add_batch", "add: batch glue"),
    ("trawl.api", "Trawl.add", "add: call glue"),
]


class Timers:
    """Exclusive wall and process-CPU seconds per label (nested calls subtracted)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._local = threading.local()

    @staticmethod
    def now_cpu() -> float:
        t = os.times()
        return t.user + t.system

    def wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = self._local.__dict__.setdefault("stack", [])
            t0, c0 = time.perf_counter(), self.now_cpu()
            stack.append([0.0, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                wall, cpu = time.perf_counter() - t0, self.now_cpu() - c0
                inner_wall, inner_cpu = stack.pop()
                self.wall[label] += wall - inner_wall
                self.cpu[label] += cpu - inner_cpu
                self.calls[label] += 1
                if stack:
                    stack[-1][0] += wall
                    stack[-1][1] += cpu
        return timed

    def install(self) -> list[str]:
        """Wrap every phase that exists here; returns the labels left out."""
        missing = []
        for module, path, label in PHASES:
            try:
                owner: Any = importlib.import_module(module)
                *parents, attr = path.split(".")
                for p in parents:
                    owner = getattr(owner, p)
                setattr(owner, attr, self.wrap(getattr(owner, attr), label))
            except (ImportError, AttributeError):
                missing.append(label)
        return missing


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="100 files")
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--pipeline", default="hybrid")
    args = ap.parse_args(argv)
    if not corpus.CORPUS.exists():
        print(f"scifact not found under {corpus.DATASETS}", file=sys.stderr)
        return 1
    from trawl import Trawl
    from trawl.ingest import index_paths

    timers = Timers()
    with tempfile.TemporaryDirectory() as tmp:
        files = Path(tmp) / "files"
        n = corpus._files_corpus(files, 100 if args.quick else args.docs)
        with Trawl.open(Path(tmp) / "index", pipeline=args.pipeline, show_progress=False) as t:
            t.search("warm up", 1)
            missing = timers.install()
            load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
            c0, w0 = timers.now_cpu(), time.perf_counter()
            report = index_paths(t, [files], show_progress=False)
            wall, cpu = time.perf_counter() - w0, timers.now_cpu() - c0
    lines = [f"Cold `{args.pipeline}` ingestion of {n} SciFact files ({report.added} documents, "
             f"{report.chunks} chunks): {wall:.1f} s wall, {report.added / wall:.1f} docs/s, "
             f"{cpu:.1f} s process CPU ({cpu / wall:.2f} cores busy); load before: {load}.",
             "", "| phase | calls | wall s | share of wall | CPU s | cores busy |",
             "|---|---:|---:|---:|---:|---:|"]
    for label in sorted(timers.wall, key=lambda k: -timers.wall[k]):
        w, c = timers.wall[label], timers.cpu[label]
        lines.append(f"| {label} | {timers.calls[label]} | {w:.2f} | {100 * w / wall:.1f} % | "
                     f"{c:.2f} | {c / w if w > 0 else 0:.2f} |")
    rest = wall - sum(timers.wall.values())
    lines.append(f"| unattributed | | {rest:.2f} | {100 * rest / wall:.1f} % | | |")
    if missing:
        lines += ["", f"Not in this pipeline/install: {', '.join(missing)}."]
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ingest_profile.md").write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
