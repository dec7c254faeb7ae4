"""Evaluation on BEIR-layout collections: nDCG@10, Recall@10/100, MRR@10, latency.

Metrics are hand-written (a dozen lines) so they carry no dependency; a test checks
them against pytrec_eval (trec_eval's reference implementation) to 1e-6. Conventions
follow trec_eval: nDCG gain = graded relevance, log2 discount, ideal DCG from all judged
relevant documents; Recall and MRR count any grade > 0 as relevant. Chunk hits are folded
to documents (best chunk wins) before scoring; ties are broken by document id.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import PipelineConfig
from .errors import InputError
from .models import Document, Hit

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}
_GRADE = re.compile(r"^-?[0-9]+$")


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, text)``; a line that is not UTF-8 is an error naming file and line."""
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    with fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}:{lineno}: not UTF-8 (byte 0x{raw[exc.start]:02x} at column "
                    f"{exc.start + 1}); BEIR files are UTF-8: convert the file") from exc
            yield lineno, line.removeprefix("\ufeff") if lineno == 1 else line


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for every non-blank line; each row must be a JSON object."""
    for lineno, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise InputError(f"{path}:{lineno}: expected a JSON object, got {_json_type(row)}")
        yield lineno, row


def _id_field(path: Path, lineno: int, row: Mapping[str, Any]) -> str:
    value = row.get("_id")
    if "_id" not in row:
        raise InputError(f"{path}:{lineno}: field '_id' is missing")
    if isinstance(value, bool) or not isinstance(value, str | int) or not str(value).strip():
        got = repr(value) if isinstance(value, str) else _json_type(value)
        raise InputError(f"{path}:{lineno}: field '_id' must be a non-empty string "
                         f"(or an integer), got {got}")
    return str(value)


def _text_field(path: Path, lineno: int, row: Mapping[str, Any], name: str, *,
                required: bool) -> str:
    value = row.get(name)
    if value is None:
        if required:
            state = "is null" if name in row else "is missing"
            raise InputError(f"{path}:{lineno}: field {name!r} {state}")
        return ""
    if not isinstance(value, str):
        raise InputError(f"{path}:{lineno}: field {name!r} must be a string, "
                         f"got {_json_type(value)}")
    if required and not value.strip():
        raise InputError(f"{path}:{lineno}: field {name!r} is empty")
    return value


def beir_document(row: Mapping[str, Any]) -> Document:
    """A BEIR corpus row as a Document: ``title + " " + text`` (as MTEB/BEIR encode it),
    unless the text already starts with the title (Cranfield repeats it)."""
    title = str(row.get("title") or "").strip()
    text = str(row.get("text") or "")
    full = text if not title or text.lstrip().startswith(title) else f"{title} {text}"
    return Document(id=str(row["_id"]), text=full, metadata={"title": title, "source": "beir"})


@dataclass
class BeirDataset:
    name: str
    path: Path
    queries: dict[str, str]
    qrels: Qrels

    def head(self, n: int | None) -> BeirDataset:
        """The same dataset with only its first ``n`` judged queries (all when ``n`` is None)."""
        if not n:
            return self
        queries = dict(list(self.queries.items())[:n])
        return BeirDataset(name=self.name, path=self.path, queries=queries,
                           qrels={q: self.qrels[q] for q in queries})

    def corpus(self) -> Iterator[Document]:
        """Stream the corpus; a malformed row stops it with an error naming file and line."""
        path = self.path / "corpus.jsonl"
        count = 0
        for lineno, row in _read_jsonl(path):
            _id_field(path, lineno, row)
            _text_field(path, lineno, row, "title", required=False)
            _text_field(path, lineno, row, "text", required=False)
            count += 1
            yield beir_document(row)
        if not count:
            raise InputError(f"{path}: no documents (the file is empty)")


def _load_qrels(path: Path) -> tuple[Qrels, dict[str, int]]:
    """Judgments and, per query, the line that first judged it."""
    qrels: Qrels = {}
    first_line: dict[str, int] = {}
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in _text_lines(path):
        if not line.strip():
            continue
        parts = line.rstrip("\r\n").split("\t")
        if lineno == 1 and parts[0] == "query-id":
            continue
        if len(parts) != 3:
            raise InputError(f"{path}:{lineno}: expected 3 tab-separated columns "
                             f"(query-id, corpus-id, score), got {len(parts)}")
        qid, did, score = (p.strip() for p in parts)
        for field_name, value in (("query-id", qid), ("corpus-id", did)):
            if not value:
                raise InputError(f"{path}:{lineno}: field {field_name!r} is empty")
        if not _GRADE.match(score):
            raise InputError(f"{path}:{lineno}: field 'score' must be an integer relevance "
                             f"grade (0, 1, 2, ...), got {score!r}")
        if (qid, did) in seen:
            raise InputError(f"{path}:{lineno}: query {qid!r} judges document {did!r} twice "
                             f"(first on line {seen[qid, did]})")
        seen[qid, did] = lineno
        first_line.setdefault(qid, lineno)
        qrels.setdefault(qid, {})[did] = int(score)
    if not qrels:
        raise InputError(f"{path}: no judgments (the file is empty or holds only its header)")
    return qrels, first_line


def load_beir(path: str | Path, split: str = "test") -> BeirDataset:
    """Load and check queries and qrels of a BEIR folder (corpus is streamed by ``corpus()``).

    Every problem is an ``InputError`` naming file, line and field: a non-integer grade, a
    query without ``_id`` or ``text``, a row that is not an object, a file that is not
    UTF-8, an empty query file, judgments for a query that does not exist.
    """
    root = Path(path)
    for needed in ("corpus.jsonl", "queries.jsonl", f"qrels/{split}.tsv"):
        if not (root / needed).is_file():
            raise InputError(f"{root} is not a BEIR dataset folder: {needed} is missing")
    qrels_path = root / "qrels" / f"{split}.tsv"
    qrels, qrels_line = _load_qrels(qrels_path)
    queries_path = root / "queries.jsonl"
    all_queries: dict[str, str] = {}
    query_line: dict[str, int] = {}
    for lineno, row in _read_jsonl(queries_path):
        qid = _id_field(queries_path, lineno, row)
        text = _text_field(queries_path, lineno, row, "text", required=True)
        if qid in query_line:
            raise InputError(f"{queries_path}:{lineno}: field '_id': {qid!r} is repeated "
                             f"(first on line {query_line[qid]})")
        query_line[qid] = lineno
        all_queries[qid] = text
    if not all_queries:
        raise InputError(f"{queries_path}: no queries (the file is empty)")
    missing = [q for q in qrels if q not in all_queries]
    if missing:
        q = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"{qrels_path}:{qrels_line[q]}: field 'query-id': {q!r} is not in "
                         f"{queries_path.name}{more}")
    queries = {q: t for q, t in all_queries.items() if q in qrels}
    return BeirDataset(name=root.name, path=root, queries=queries, qrels=qrels)


def eval_index_folder(cache_dir: Path, dataset: str, config: PipelineConfig) -> Path:
    """Where ``trawl eval`` keeps a dataset's index: keyed by the retrievers (and chunking)
    only, so pipelines that differ in fusion or reranker share one index."""
    digest = hashlib.sha256(config.model_dump_json(exclude={"name", "fusion", "reranker"})
                            .encode()).hexdigest()[:10]
    return cache_dir / "eval" / f"{dataset}-{digest}"


def _ranked(scores: Mapping[str, float]) -> list[str]:
    return sorted(scores, key=lambda d: (-scores[d], d))


def ndcg_at(run: Mapping[str, float], rels: Mapping[str, int], k: int) -> float:
    ranked = _ranked(run)[:k]
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked)
              if rels.get(d, 0) > 0)
    ideal = sorted((g for g in rels.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(run: Mapping[str, float], rels: Mapping[str, int], k: int) -> float:
    relevant = {d for d, g in rels.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_ranked(run)[:k])) / len(relevant)


def mrr_at(run: Mapping[str, float], rels: Mapping[str, int], k: int) -> float:
    for i, d in enumerate(_ranked(run)[:k]):
        if rels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def score_run(run: Run, qrels: Qrels) -> dict[str, float]:
    """Mean metrics over the judged queries (a query with no hits scores 0)."""
    qids = [q for q in qrels if any(g > 0 for g in qrels[q].values())]
    if not qids:
        raise InputError("qrels contain no relevant documents")
    metrics = {"ndcg@10": [], "recall@10": [], "recall@100": [], "mrr@10": []}  # type: dict[str, list[float]]
    for q in qids:
        r, rel = run.get(q, {}), qrels[q]
        metrics["ndcg@10"].append(ndcg_at(r, rel, 10))
        metrics["recall@10"].append(recall_at(r, rel, 10))
        metrics["recall@100"].append(recall_at(r, rel, 100))
        metrics["mrr@10"].append(mrr_at(r, rel, 10))
    return {name: sum(v) / len(v) for name, v in metrics.items()}


def hits_to_doc_scores(hits: list[Hit], depth: int = 100) -> dict[str, float]:
    """Fold chunk hits to documents (best chunk wins); scores strictly decrease with rank so
    any evaluator orders them exactly as trawl did."""
    out: dict[str, float] = {}
    for hit in hits:
        if hit.doc_id not in out:
            out[hit.doc_id] = float(depth + 1 - (len(out) + 1))
            if len(out) >= depth:
                break
    return out


def write_trec_run(run: Run, path: Path, tag: str) -> None:
    """TREC run format: ``qid Q0 docid rank score tag``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for qid in run:
            for rank, did in enumerate(_ranked(run[qid]), start=1):
                fh.write(f"{qid} Q0 {did.replace(' ', '_')} {rank} {run[qid][did]:.6f} {tag}\n")


@dataclass
class EvalResult:
    dataset: str
    pipeline: str
    queries: int
    metrics: dict[str, float]
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    run_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        return {
            "dataset": self.dataset, "pipeline": self.pipeline, "queries": self.queries,
            **{k: round(v, 6) for k, v in self.metrics.items()},
            "latency_ms_p50": round(_pct(lat, 50), 3), "latency_ms_p95": round(_pct(lat, 95), 3),
            "run_file": self.run_file,
        }


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def evaluate(search: Callable[[str, int], list[Hit]], dataset: BeirDataset, *,
             pipeline_name: str, depth: int = 100, run_file: Path | None = None,
             progress: Callable[[int], None] | None = None) -> EvalResult:
    """Run every judged query through ``search`` and score the run."""
    run: Run = {}
    latencies: list[float] = []
    for i, (qid, text) in enumerate(dataset.queries.items()):
        t0 = time.perf_counter()
        hits = search(text, depth * 2)
        latencies.append((time.perf_counter() - t0) * 1000)
        run[qid] = hits_to_doc_scores(hits, depth)
        if progress is not None:
            progress(i + 1)
    if run_file is not None:
        write_trec_run(run, run_file, pipeline_name)
    return EvalResult(dataset=dataset.name, pipeline=pipeline_name, queries=len(run),
                      metrics=score_run(run, dataset.qrels), latencies_ms=latencies,
                      run_file=str(run_file) if run_file else None)
