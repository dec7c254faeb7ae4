"""Parity and export time of trawl's torch-free ONNX export, per model family.

Rows (each compared with the *running* reference, nothing stored):
- all-MiniLM-L6-v2 (BERT): pooled, normalised vectors of 200 varied texts (queries and
  passages from the BEIR datasets under ``TRAWL_DATASETS`` plus awkward hand-made ones)
  vs sentence-transformers, and vs trawl's torch export of the same model;
- tiny random-weight BERT, XLM-RoBERTa and MPNet models built here with transformers (no hub):
  ``last_hidden_state`` and cross-encoder ``logits`` vs transformers, and pooled vectors
  vs sentence-transformers wrapping the same folder.
Export times: the torch-free export in a subprocess where torch cannot be imported, and
the torch export, both of the default model, best of ``--rounds``.

    python benchmarks/export_parity.py [--quick] [--rounds 2]

Needs the export extra (torch, transformers, sentence-transformers) for the references.
``--quick``: 40 texts, one round. Prints a markdown table, also written to
benchmarks/out/export_parity.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("TRAWL_DATASETS", ROOT.parent / "shared" / "datasets"))
OUT = ROOT / "benchmarks" / "out"
HAND_MADE = ["", "   ", "a", "OK", "naïve café — ünïcödé ✓", "日本語のテキスト検索",
             "def f(x):\n    return x ** 2  # code", "3.14159 2.71828 1e-9 $100 50%",
             "🙂 emoji 🚀 rockets", "ALL CAPS SHOUTING TEXT", "x" * 3000, "word " * 600,
             "\u00a0non-breaking\u2009spaces\u200b", "tab\tseparated\tvalues"]


def varied_texts(n: int) -> list[str]:
    texts = list(HAND_MADE)
    for name, file, limit in (("scifact", "corpus.jsonl", 24), ("cranfield", "corpus.jsonl", 10),
                              ("limit-small", "corpus.jsonl", 4),
                              ("scifact", "queries.jsonl", 100),
                              ("cranfield", "queries.jsonl", 60)):
        path = DATASETS / name / file
        if path.is_file():
            with path.open(encoding="utf-8") as f:
                for line, _ in zip(f, range(limit), strict=False):
                    row = json.loads(line)
                    texts.append((row.get("title", "") + " " + row["text"]).strip())
    return texts[:n]


def compare(a: Any, b: Any) -> tuple[float, float]:
    """(max abs diff, min cosine) over rows."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    return float(np.abs(a - b).max()), float(cos.min())


def encoder(folder: Path) -> Any:
    from trawl import ComponentContext
    from trawl_onnx.encoders import OnnxDenseEncoder

    return OnnxDenseEncoder(OnnxDenseEncoder.Config(model=str(folder), threads=2),
                            ComponentContext(name="onnx-dense"))


def encode(folder: Path, texts: list[str]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return encoder(folder).encode_documents(texts)


def tiny_model(folder: Path, family: str, classifier: bool) -> Path:
    import torch
    import transformers as tf

    from trawl_onnx.sources import resolve_model_folder

    torch.manual_seed(11)
    common = dict(vocab_size=30522, hidden_size=96, num_hidden_layers=3, num_attention_heads=6,
                  intermediate_size=192, max_position_embeddings=514, num_labels=2)
    if family == "bert":
        config: Any = tf.BertConfig(**common)
        cls = tf.BertForSequenceClassification if classifier else tf.BertModel
    elif family == "mpnet":
        config = tf.MPNetConfig(**common, pad_token_id=1)
        cls = tf.MPNetForSequenceClassification if classifier else tf.MPNetModel
    else:
        config = tf.XLMRobertaConfig(**common, type_vocab_size=1, pad_token_id=1)
        cls = tf.XLMRobertaForSequenceClassification if classifier else tf.XLMRobertaModel
    model = cls(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder, safe_serialization=True)
    src = resolve_model_folder("all-MiniLM-L6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "vocab.txt"):
        shutil.copyfile(src / name, folder / name)
    # sentence-transformers layout: mean pooling + normalise, 256-token window (as MiniLM)
    (folder / "sentence_bert_config.json").write_text('{"max_seq_length": 256}')
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"}]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": common["hidden_size"], "pooling_mode_mean_tokens": True}))
    return folder


def token_batch(pad: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    lengths = [1, 2, 7, 33, 128, 250, 64, 3]
    ids = np.full((len(lengths), max(lengths)), pad, dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(3, 30000, n)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def graph_rows(work: Path, family: str, texts: list[str]) -> list[list[str]]:
    import onnxruntime as ort
    import torch
    import transformers as tf
    from sentence_transformers import SentenceTransformer

    from trawl_onnx.export import export_model
    from trawl_onnx.manifest import load_manifest

    rows = []
    for kind in ("dense", "cross-encoder"):
        src = tiny_model(work / f"{family}-{kind}", family, kind == "cross-encoder")
        out = export_model(src, work / f"{family}-{kind}-onnx", exporter="numpy",
                           kind=kind)  # type: ignore[arg-type]
        manifest = load_manifest(out)
        pad = json.loads((src / "config.json").read_text())["pad_token_id"]
        feeds = token_batch(pad, 5)
        session = ort.InferenceSession(str(out / "model.onnx"),
                                       providers=["CPUExecutionProvider"])
        got = session.run([manifest.output], {k: feeds[k] for k in manifest.inputs})[0]
        loader = tf.AutoModelForSequenceClassification if kind == "cross-encoder" \
            else tf.AutoModel
        model = loader.from_pretrained(str(src), attn_implementation="eager").eval()
        with torch.no_grad():
            args = {k: torch.from_numpy(v) for k, v in feeds.items()
                    if k != "token_type_ids" or family != "mpnet"}
            ref = getattr(model(**args), manifest.output).numpy()
        if kind == "dense":
            keep = feeds["attention_mask"].astype(bool)
            got, ref = got[keep], ref[keep]
        diff, cos = compare(got, ref)
        what = "token states" if kind == "dense" else "logits"
        rows.append([f"{family} (tiny random, 3 layers)", f"{what}, fused={manifest.optimized}",
                     "transformers", f"{len(feeds['input_ids'])} seqs (1-250 tokens)",
                     f"{diff:.1e}", f"{cos:.7f}"])
        if kind == "dense":
            st = SentenceTransformer(str(src), device="cpu")
            expected = st.encode(texts, batch_size=32, convert_to_numpy=True)
            diff, cos = compare(encode(out, texts), expected)
            rows.append([f"{family} (tiny random, 3 layers)", "mean-pooled, normalised",
                         "sentence-transformers", f"{len(texts)} texts", f"{diff:.1e}",
                         f"{cos:.7f}"])
    return rows


def time_exports(work: Path, rounds: int) -> list[list[str]]:
    def script(block: bool) -> str:
        hide = ("for m in ('torch', 'transformers', 'sentence_transformers'):\n"
                "    sys.modules[m] = None  # imports of them fail\n") if block else ""
        return ("import sys, time\n" + hide + "t = time.perf_counter()\n"
                "from trawl_onnx.export import export_model\n"
                "export_model('all-MiniLM-L6-v2', sys.argv[1], exporter=sys.argv[2])\n"
                "print(time.perf_counter() - t)\n")

    blocked, free = script(True), script(False)
    rows = []
    for label, code, exporter in (("numpy (torch not importable)", blocked, "numpy"),
                                  ("torch (torch.onnx.export)", free, "torch")):
        best = float("inf")
        for r in range(rounds):
            target = work / f"time-{exporter}-{r}"
            proc = subprocess.run([sys.executable, "-c", code, str(target), exporter],
                                  capture_output=True, text=True, check=True)
            best = min(best, float(proc.stdout.strip().splitlines()[-1]))
        rows.append([label, f"{best:.1f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    n, rounds = (40, 1) if args.quick else (200, args.rounds)
    texts = varied_texts(n)
    from sentence_transformers import SentenceTransformer

    from trawl_onnx.export import export_model
    from trawl_onnx.sources import resolve_model_folder

    rows: list[list[str]] = []
    with tempfile.TemporaryDirectory(prefix="trawl-export-parity-") as tmp:
        work = Path(tmp)
        numpy_dir = export_model("all-MiniLM-L6-v2", work / "numpy", exporter="numpy")
        torch_dir = export_model("all-MiniLM-L6-v2", work / "torch", exporter="torch")
        st = SentenceTransformer(str(resolve_model_folder("all-MiniLM-L6-v2")), device="cpu")
        expected = st.encode(texts, batch_size=32, convert_to_numpy=True)
        got = encode(numpy_dir, texts)
        diff, cos = compare(got, expected)
        rows.append(["bert (all-MiniLM-L6-v2)", "mean-pooled, normalised, fused",
                     "sentence-transformers", f"{len(texts)} texts", f"{diff:.1e}", f"{cos:.7f}"])
        diff, cos = compare(got, encode(torch_dir, texts))
        rows.append(["bert (all-MiniLM-L6-v2)", "mean-pooled, normalised, fused",
                     "trawl torch export", f"{len(texts)} texts", f"{diff:.1e}", f"{cos:.7f}"])
        int8_dir = export_model(numpy_dir, work / "int8", quantize="int8")
        quantized = encode(int8_dir, texts)
        diff, cos = compare(quantized, got)
        mean = float((quantized * got).sum(1).mean())
        rows.append(["bert (all-MiniLM-L6-v2)",
                     f"int8 per-channel from the numpy export (mean cosine {mean:.4f})",
                     "same model fp32", f"{len(texts)} texts", f"{diff:.1e}", f"{cos:.7f}"])
        for family in ("bert", "xlm-roberta", "mpnet"):
            rows.extend(graph_rows(work, family, texts))
        times = time_exports(work, rounds)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    lines = ["| family | output | reference | inputs | max abs diff | min cosine |",
             "|---|---|---|---|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", f"Export of all-MiniLM-L6-v2 to fused fp32 ONNX, best of {rounds} "
              "(subprocess, imports included):", "", "| exporter | seconds |", "|---|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in times]
    lines += ["", f"load average after the run: {' '.join(load)}"]
    text = "\n".join(lines)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "export_parity.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
