"""Encode throughput: sentence-transformers (torch CPU) vs trawl onnx-dense fp32 vs int8.

Real passages from SciFact (title + text, ~230 tokens each, truncated at 256), batch 32,
the same thread count for every engine. Each (engine, round) runs in its own subprocess
so peak RSS is per engine and one engine's memory or thread pools never slow another;
rounds are interleaved (A B C A B C ...) so machine load hits every engine alike, and the
best round counts. Cosine is each engine's vectors against trawl fp32's.

    python benchmarks/encoders.py [--quick] [--n 2000] [--rounds 2] [--threads 2]

Prints a markdown table and writes it to benchmarks/out/encoders.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "benchmarks" / "out"
ENGINES = {
    "sentence-transformers": "sentence-transformers 6 (torch 2.13 CPU)",
    "trawl-fp32": "trawl onnx-dense fp32 (fused graph)",
    "trawl-fp32-plain": "trawl onnx-dense fp32, unfused graph (ablation)",
    "trawl-int8": "trawl onnx-dense int8 (per-channel)",
}


def passages(n: int) -> list[str]:
    out = []
    with (DATASETS / "scifact" / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            out.append((row["title"] + " " + row["text"]).strip())
            if len(out) >= n:
                break
    return out


def plain_export() -> Path:
    """The unfused fp32 export (for the ablation row), cached beside the fused one."""
    from trawl_onnx.export import cache_folder, export_model, file_lock
    from trawl_onnx.manifest import MANIFEST

    target = cache_folder("all-MiniLM-L6-v2", "fp32").with_name("all-MiniLM-L6-v2-fp32-plain")
    with file_lock(target.with_name(target.name + ".lock")):
        if not (target / MANIFEST).is_file():
            export_model("all-MiniLM-L6-v2", target, optimize=False,
                         source_name="all-MiniLM-L6-v2")
    return target


def worker(engine: str, n: int, threads: int, batch: int, out: Path) -> None:
    texts = passages(n)
    warnings.simplefilter("ignore")
    if engine == "sentence-transformers":
        import torch
        from sentence_transformers import SentenceTransformer

        from trawl_onnx.sources import resolve_model_folder

        torch.set_num_threads(threads)
        model = SentenceTransformer(str(resolve_model_folder("all-MiniLM-L6-v2")), device="cpu")

        def encode(t: list[str]) -> np.ndarray:
            return model.encode(t, batch_size=batch, convert_to_numpy=True)
    else:
        from trawl import ComponentContext
        from trawl_onnx.encoders import OnnxDenseEncoder

        model_name = str(plain_export()) if engine == "trawl-fp32-plain" else "all-MiniLM-L6-v2"
        enc = OnnxDenseEncoder(OnnxDenseEncoder.Config(
            model=model_name, quantize="int8" if engine == "trawl-int8" else "fp32",
            threads=threads, batch_size=batch), ComponentContext(name=engine))

        def encode(t: list[str]) -> np.ndarray:
            return enc.encode_documents(t)
    encode(texts[:batch])  # warm-up: first-run allocations and kernel selection
    start = time.perf_counter()
    vectors = encode(texts)
    seconds = time.perf_counter() - start
    np.save(out / f"{engine}.npy", vectors.astype(np.float32))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"engine": engine, "seconds": seconds, "peak_rss_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 passages, 1 round")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--engines", nargs="*", default=list(ENGINES))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--tmp", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n, args.rounds = 256, 1
    if args.worker:
        worker(args.worker, args.n, args.threads, args.batch, Path(args.tmp))
        return
    if "trawl-fp32-plain" in args.engines:
        plain_export()
    texts = passages(args.n)
    results: dict[str, list[dict[str, float]]] = {e: [] for e in args.engines}
    with tempfile.TemporaryDirectory(prefix="trawl-bench-") as tmp:
        for rnd in range(args.rounds):
            for engine in args.engines:
                cmd = [sys.executable, __file__, "--worker", engine, "--tmp", tmp,
                       "--n", str(args.n), "--threads", str(args.threads),
                       "--batch", str(args.batch)]
                proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
                if proc.returncode != 0:
                    sys.exit(f"{engine} failed:\n{proc.stderr[-3000:]}")
                row = json.loads(proc.stdout.strip().splitlines()[-1])
                results[engine].append(row)
                print(f"round {rnd + 1} {engine}: {args.n / row['seconds']:.1f} docs/s",
                      file=sys.stderr)
        vectors = {e: np.load(Path(tmp) / f"{e}.npy") for e in args.engines}
    ref = vectors.get("trawl-fp32")
    base = min(r["seconds"] for r in results.get("sentence-transformers", [])) \
        if results.get("sentence-transformers") else None
    lengths = [len(t) for t in texts]
    lines = [
        f"{args.n} SciFact passages (mean {np.mean(lengths):.0f} chars), batch {args.batch}, "
        f"{args.threads} threads each, best of {args.rounds} interleaved rounds, one subprocess "
        f"per run. Machine: {os.cpu_count()} CPU cores, load average "
        f"{os.getloadavg()[0]:.1f} when the table was written: read the ratios, not the "
        "absolute docs/s.", "",
        "| engine | docs/s | vs sentence-transformers | mean cosine vs trawl fp32 | "
        "min cosine | peak RSS MB |", "|---|---:|---:|---:|---:|---:|"]
    for engine in args.engines:
        best = min(r["seconds"] for r in results[engine])
        rss = max(r["peak_rss_mb"] for r in results[engine])
        ratio = f"{base / best:.2f}x" if base else "-"
        if ref is not None:
            v = vectors[engine]
            cos = (v * ref).sum(1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(ref, axis=1))
            mean_cos, min_cos = f"{cos.mean():.4f}", f"{cos.min():.4f}"
        else:
            mean_cos = min_cos = "-"
        lines.append(f"| {ENGINES[engine]} | {args.n / best:.1f} | {ratio} | {mean_cos} | "
                     f"{min_cos} | {rss:.0f} |")
    table = "\n".join(lines)
    print(table)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "encoders.md").write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
