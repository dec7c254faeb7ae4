"""ModernBERT without torch: export time and encode throughput, torch-free against torch.

Two random-weight ModernBERT models built here with transformers (no hub): ``tiny``
(hidden 64, 4 layers) and ``minilm-sized`` (hidden 384, 6 layers, 12 heads, GeGLU 576,
global attention every 3rd layer, 128-token local window, ModernBERT's rope thetas), with
MiniLM's tokenizer and a mean-pooling sentence-transformers layout.

Per model, side by side in one run:
- export time, best of ``--rounds``, each in a fresh subprocess (imports included):
  trawl's numpy graph builder with torch made unimportable, and trawl's torch exporter
  (``torch.onnx.export``);
- parity of the pooled vectors of both exports with sentence-transformers (max abs diff);
- encode throughput (texts/s) of ``onnx-dense`` on either export and of
  sentence-transformers on torch, on the same ``--texts`` SciFact passages, 2 threads,
  batch 16, best of ``--rounds`` passes that alternate between the encoders, plus each
  encoder's load time; all-MiniLM-L6-v2 (BERT, the same size as
  ``minilm-sized``, fused by onnxruntime's BERT optimizer) as a reference row.

    python benchmarks/modernbert.py [--quick] [--rounds 2] [--texts 256]

Needs the export extra (torch, transformers, sentence-transformers). Prints a markdown
table, also written to benchmarks/out/modernbert.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATASETS = Path(os.environ.get("TRAWL_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "benchmarks" / "out"
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden=64, layers=4, heads=4, intermediate=96, local_attention=8,
                 global_attn_every_n_layers=2),
    "minilm-sized": dict(hidden=384, layers=6, heads=12, intermediate=576,
                         local_attention=128, global_attn_every_n_layers=3,
                         global_rope_theta=160_000.0, local_rope_theta=10_000.0),
}
EXPORT = """import sys, time
if sys.argv[2] == "numpy":
    for m in ("torch", "transformers", "sentence_transformers"):
        sys.modules[m] = None  # imports of them fail: the user's install
t = time.perf_counter()
from trawl_onnx.export import export_model
export_model(sys.argv[1], sys.argv[3], exporter=sys.argv[2])
print(time.perf_counter() - t)
"""


def passages(n: int) -> list[str]:
    texts = []
    with (DATASETS / "scifact" / "corpus.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            texts.append((row.get("title", "") + " " + row["text"]).strip())
            if len(texts) == n:
                break
    return texts


def build(work: Path, size: str) -> Path:
    from tests.plugins.tiny_encoders import sentence_transformers_layout, tiny_modernbert

    folder = tiny_modernbert(work / size, **SIZES[size])
    return sentence_transformers_layout(folder, pooling="mean", max_seq_length=256)


def export_seconds(folder: Path, exporter: str, work: Path, rounds: int) -> tuple[float, Path]:
    best, out = float("inf"), work / "none"
    for r in range(rounds):
        out = work / f"{folder.name}-{exporter}-{r}"
        proc = subprocess.run([sys.executable, "-c", EXPORT, str(folder), exporter, str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{exporter} export of {folder} failed:\n{proc.stderr[-3000:]}")
        best = min(best, float(proc.stdout.strip().splitlines()[-1]))
    return best, out


def throughput(makers: dict[str, tuple[Any, Any]], texts: list[str], rounds: int
               ) -> dict[str, tuple[float, float, Any]]:
    """label -> (load seconds, texts per second, vectors). Every encoder is loaded and
    warmed up (one batch), then the timed passes alternate between encoders, ``rounds``
    times, and the best pass counts: on a shared machine, drift hits all of them alike."""
    loaded, load = {}, {}
    for label, (make, encode) in makers.items():
        t = time.perf_counter()
        loaded[label] = make()
        load[label] = time.perf_counter() - t
        encode(loaded[label], texts[:16])
    best = dict.fromkeys(makers, 0.0)
    vectors: dict[str, Any] = {}
    for _ in range(rounds):
        for label, (_, encode) in makers.items():
            t = time.perf_counter()
            vectors[label] = encode(loaded[label], texts)
            best[label] = max(best[label], len(texts) / (time.perf_counter() - t))
    return {label: (load[label], best[label], vectors[label]) for label in makers}


def documents(encoder: Any, batch: list[str]) -> Any:
    return encoder.encode_documents(batch)


def st_encode(model: Any, batch: list[str]) -> Any:
    return model.encode(batch, batch_size=16, convert_to_numpy=True)


def onnx(out: Path) -> Any:
    """A maker of ``onnx-dense`` on the export in ``out`` (2 threads, batch 16)."""
    from trawl import ComponentContext
    from trawl_onnx.encoders import OnnxDenseEncoder

    return lambda: OnnxDenseEncoder(OnnxDenseEncoder.Config(
        model=str(out), threads=2, batch_size=16), ComponentContext(name="d"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 texts, one round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--texts", type=int, default=256)
    args = parser.parse_args()
    n, rounds = (64, 1) if args.quick else (args.texts, args.rounds)
    texts = passages(n)
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    export_rows, encode_rows = [], []
    with tempfile.TemporaryDirectory(prefix="trawl-modernbert-") as tmp, \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = Path(tmp)
        for size in SIZES:
            folder = build(work, size)
            seconds = {}
            outs = {}
            for exporter in ("numpy", "torch"):
                seconds[exporter], outs[exporter] = export_seconds(folder, exporter, work, rounds)
            export_rows.append([size, f"{seconds['numpy']:.2f}", f"{seconds['torch']:.2f}",
                                f"{seconds['torch'] / seconds['numpy']:.1f}x"])

            results = throughput({
                "onnx-dense, numpy export": (onnx(outs["numpy"]), documents),
                "onnx-dense, torch export": (onnx(outs["torch"]), documents),
                "sentence-transformers (torch)": (
                    lambda src=folder: SentenceTransformer(str(src), device="cpu"), st_encode),
            }, texts, rounds)
            reference = results["sentence-transformers (torch)"][2]
            for label, (load, rate, vectors) in results.items():
                diff = float(np.abs(np.asarray(vectors) - reference).max())
                encode_rows.append([size, label, f"{load:.2f}", f"{rate:.1f}",
                                    "reference" if "torch)" in label else f"{diff:.1e}"])
        from trawl_onnx.export import ensure_exported

        minilm = ensure_exported("all-MiniLM-L6-v2")
        load_s, rate, _ = throughput({"minilm": (onnx(minilm), documents)}, texts,
                                     rounds)["minilm"]
        encode_rows.append(["all-MiniLM-L6-v2 (BERT, fused)", "onnx-dense, numpy export",
                            f"{load_s:.2f}", f"{rate:.1f}", "-"])
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) \
        if Path("/proc/loadavg").exists() else "n/a"
    lines = [f"Export to fp32 ONNX, best of {rounds}, fresh subprocess (imports included):", "",
             "| model | numpy builder, torch unimportable (s) | torch.onnx.export (s) | "
             "torch / numpy |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in export_rows]
    lines += ["", f"Encoding {len(texts)} SciFact passages (256-token window), 2 threads, "
              f"batch 16, best of {rounds} alternating passes:", "", "| model | encoder | load (s) | texts/s | "
              "max abs diff to sentence-transformers |", "|---|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in encode_rows]
    lines += ["", f"load average after the run: {load}"]
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "modernbert.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
