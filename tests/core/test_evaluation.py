from __future__ import annotations

import pytest

from tests.conftest import HASHING_PIPELINE, dataset
from trawl import Trawl, load_pipeline
from trawl.evaluation import evaluate, load_beir, score_run


def test_metrics_agree_with_pytrec_eval_on_a_real_run(host, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytrec_eval = pytest.importorskip("pytrec_eval")
    data = load_beir(dataset("cranfield"))
    with Trawl(tmp_path / "idx", load_pipeline(HASHING_PIPELINE),
               host=host, show_progress=False) as t:
        t.add(data.corpus(), batch_size=256)
        result = evaluate(lambda q, k: t.search(q, k), data, pipeline_name="hashing",
                          run_file=tmp_path / "run.trec")
    # re-read the TREC run file we wrote and score it with trec_eval's implementation
    run: dict[str, dict[str, float]] = {}
    for line in (tmp_path / "run.trec").read_text().splitlines():
        qid, _, did, _rank, score, _tag = line.split()
        run.setdefault(qid, {})[did] = float(score)
    assert set(run) == set(data.queries)
    ours = score_run(run, data.qrels)
    assert ours == pytest.approx(result.metrics, abs=1e-12)
    ev = pytrec_eval.RelevanceEvaluator(data.qrels, {"ndcg_cut.10", "recall.10", "recall.100"})
    per_q = ev.evaluate(run)
    top10 = {q: dict(sorted(r.items(), key=lambda kv: -kv[1])[:10]) for q, r in run.items()}
    rr = pytrec_eval.RelevanceEvaluator(data.qrels, {"recip_rank"}).evaluate(top10)
    judged = [q for q in data.qrels if q in per_q]
    ref = {
        "ndcg@10": sum(per_q[q]["ndcg_cut_10"] for q in judged) / len(judged),
        "recall@10": sum(per_q[q]["recall_10"] for q in judged) / len(judged),
        "recall@100": sum(per_q[q]["recall_100"] for q in judged) / len(judged),
        "mrr@10": sum(rr[q]["recip_rank"] for q in judged) / len(judged),
    }
    for name, value in ref.items():
        assert ours[name] == pytest.approx(value, abs=1e-6), name
    assert 0.05 < ours["ndcg@10"] < 0.6  # a real, non-trivial ranking
    assert result.to_json()["latency_ms_p50"] > 0


def test_load_beir_rejects_non_beir_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from trawl.errors import InputError

    with pytest.raises(InputError, match=r"corpus\.jsonl"):
        load_beir(tmp_path)


def test_ndcg_uses_graded_gains() -> None:
    from trawl.evaluation import ndcg_at

    rels = {"a": 4, "b": 1}
    assert ndcg_at({"a": 2.0, "b": 1.0}, rels, 10) == pytest.approx(1.0)
    swapped = ndcg_at({"b": 2.0, "a": 1.0}, rels, 10)
    import math

    assert swapped == pytest.approx((1 + 4 / math.log2(3)) / (4 + 1 / math.log2(3)))
