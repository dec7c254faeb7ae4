"""Every retriever on Qdrant: sparse BM25 with the engine's IDF, native multi-vector MaxSim,
several retrievers in one collection searched with one Query API request.

The server code path runs for real against qdrant-client's local mode (the same client
API a server speaks); ``edge`` is the embedded engine; a Qdrant server when
``TRAWL_QDRANT_URL`` is set.
"""

from __future__ import annotations

import http.server
import math
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trawl
from tests.conftest import HashingPlugin
from trawl import Chunk, ComponentContext, Document, IndexQuery, Trawl, VectorField
from trawl.config import FusionConfig
from trawl.errors import ConfigError, DimensionMismatchError, InputError, TrawlError
from trawl.fusion import fuse
from trawl.vectors import maxsim_scores

pytest.importorskip("qdrant_client")
import trawl_bm25
import trawl_qdrant
from trawl_bm25.analysis import Analyzer
from trawl_bm25.sparse import BM25SparseEncoder, term_id
from trawl_qdrant.config import QdrantConfig
from trawl_qdrant.index import QdrantIndex

SERVER_URL = os.environ.get("TRAWL_QDRANT_URL")
server = pytest.mark.skipif(not SERVER_URL, reason="set TRAWL_QDRANT_URL to run against a "
                            "Qdrant server")
MODES = ["local", "edge", pytest.param("server", marks=[pytest.mark.qdrant_server, server])]

DOCS = [
    ("cats", "Cats purr and sleep all day; a cat purrs when content.", "en"),
    ("dogs", "Dogs bark at cats, cars and the postman.", "en"),
    ("katzen", "Katzen schnurren und schlafen den ganzen Tag.", "de"),
    ("birds", "Birds sing at dawn and sleep at night.", "en"),
    ("fish", "Fish swim; cats watch the fish tank all day long, purring.", "en"),
]


def _host() -> trawl.PluginHost:
    return trawl.PluginHost(entry_points=False, plugins=[
        ("hashing-test", HashingPlugin), ("qdrant", trawl_qdrant), ("bm25", trawl_bm25)])


def _config(mode: str, collection: str, **extra: Any) -> dict[str, Any]:
    if mode == "server":
        return {"mode": "server", "url": SERVER_URL, "collection": collection, **extra}
    return {"mode": mode, **extra}


@pytest.fixture
def collection() -> Iterator[str]:
    name = f"trawl-test-{uuid.uuid4().hex[:12]}"
    yield name
    if SERVER_URL:
        from qdrant_client import QdrantClient

        client = QdrantClient(url=SERVER_URL, api_key=QdrantConfig().resolved_api_key())
        if client.collection_exists(name):
            client.delete_collection(name)
        client.close()


def _pipeline(mode: str, collection: str, fusion: str = "weighted") -> dict[str, Any]:
    shared = {"store": "qdrant", "index": "qdrant"}
    return {"name": "qh", "fusion": {"method": fusion}, "retrievers": [
        {"name": "bm25", "encoder": "bm25-sparse", "index_config": _config(mode, collection),
         **shared},
        {"name": "dense", "encoder": "hashing", **shared}]}


def _chunks() -> list[Chunk]:
    return [Chunk(id=f"{d}#0", doc_id=d, text=text, metadata={"lang": lang})
            for d, text, lang in DOCS]


# -- sparse BM25 ---------------------------------------------------------------------------
def test_sparse_encoder_weights_are_okapi_tf_with_the_bm25_analyzer() -> None:
    enc = BM25SparseEncoder(BM25SparseEncoder.Config.model_validate({"avgdl": 4.0}))
    text = "The cats purr; cats sleep."
    terms = Analyzer()(text)  # the bm25 index's analyzer: stopwords gone, stemmed
    assert terms == ["cat", "purr", "cat", "sleep"]
    (doc,), (query,) = enc.encode_documents([text]), enc.encode_queries(["cats cats purr"])
    weights = dict(zip(doc.indices.tolist(), doc.values.tolist(), strict=True))
    k1, b, dl, avgdl = 1.5, 0.75, 4, 4.0
    for term, tf in (("cat", 2), ("purr", 1), ("sleep", 1)):
        expected = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))
        assert weights[term_id(term)] == pytest.approx(expected, rel=1e-6)
    assert dict(zip(query.indices.tolist(), query.values.tolist(), strict=True)) == {
        term_id("cat"): 2.0, term_id("purr"): 1.0}
    assert term_id("cat") == 3138554730  # stable across processes and machines (blake2b)
    assert len(enc.encode_queries(["the and of"])[0]) == 0  # only stopwords: no terms


def test_block_encoding_equals_one_text_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """``encode_documents`` counts a block of texts together in numpy; every weight must be
    the float32 that Okapi's formula gives one text at a time, bit for bit, across block
    boundaries and word-cache resets, with empty texts, stopword-only texts, repeats and
    non-ASCII words."""
    from collections import Counter

    import trawl_bm25.sparse as sparse

    monkeypatch.setattr(sparse, "DOCUMENT_BLOCK", 7)
    monkeypatch.setattr(sparse, "WORD_CACHE", 9)  # reset often: a block re-learns its words
    rng = np.random.default_rng(3)
    vocab = ["the", "of", "Cats", "cat", "purring", "wing", "wings", "stall", "Café", "naïve",
             "x", "42", "aerofoil", "angles", "high", "low", "Über", "données"]
    texts = ["", "the of and", "cats " * 40] + [
        " ".join(rng.choice(vocab, size=int(rng.integers(1, 300)))) for _ in range(40)]
    enc = BM25SparseEncoder(BM25SparseEncoder.Config.model_validate({"avgdl": 37.0}))
    k1, b = 1.5, 0.75
    for text, got in zip(texts, enc.encode_documents(texts), strict=True):
        terms = Analyzer()(text)
        counts = Counter(term_id(t) for t in terms)
        ids = np.array(sorted(counts), dtype=np.uint32)
        tf = np.array([counts[int(i)] for i in ids], dtype=np.float32)
        norm = k1 * (1.0 - b + b * len(terms) / 37.0)
        expected = (tf * (k1 + 1.0) / (tf + norm)).astype(np.float32)
        assert got.indices.dtype == np.uint32 and got.values.dtype == np.float32
        np.testing.assert_array_equal(got.indices, ids)
        np.testing.assert_array_equal(got.values, expected)
    assert len(enc.encode_documents(["", "the"])[1]) == 0
    assert enc.encode_documents([]) == []


def test_sparse_indices_must_be_unique() -> None:
    """The duplicate check keeps working for unsorted and sorted input (the sorted,
    strictly increasing case skips the sort)."""
    from trawl import SparseVector
    from trawl_qdrant.index import _sparse_plain

    ok = _sparse_plain("i", "bm25", SparseVector(indices=np.array([9, 2, 5]),
                                                 values=np.ones(3, dtype=np.float32)))
    assert ok == ([9, 2, 5], [1.0, 1.0, 1.0])
    for dup in ([2, 2, 5], [5, 2, 5], [1, 3, 3]):
        with pytest.raises(InputError, match="unique"):
            _sparse_plain("i", "bm25", SparseVector(indices=np.array(dup),
                                                    values=np.ones(3, dtype=np.float32)))


def test_sparse_encoder_indexes_the_terms_the_bm25_index_does() -> None:
    """Same analyzer, same fields: a title in the metadata counts as the bm25 index counts it
    (twice by default), and not again when the text already starts with it."""
    from collections import Counter

    from trawl_bm25.index import BM25Index

    enc, bm25 = BM25SparseEncoder(), BM25Index()
    for chunk in (Chunk(id="a", doc_id="a", text="Wings stall at high angles.",
                        metadata={"title": "Aerofoil wings"}),
                  Chunk(id="b", doc_id="b", text="Aerofoil wings stall at high angles.",
                        metadata={"title": "Aerofoil wings"}),
                  Chunk(id="c", doc_id="c", text="No title here.")):
        expected = Counter(term_id(t) for t in bm25._analyze(chunk))
        (sv,) = enc.encode_documents([enc.document_text(chunk)])
        got = dict(zip(sv.indices.tolist(), sv.values.tolist(), strict=True))
        assert set(got) == set(expected)
        length = sum(expected.values())
        norm = 1.5 * (1 - 0.75 + 0.75 * length / enc.avgdl)
        assert got == pytest.approx({i: tf * 2.5 / (tf + norm) for i, tf in expected.items()})
    assert Counter(bm25._analyze(Chunk(id="a", doc_id="a", text="Wings stall.", metadata={
        "title": "Aerofoil"})))["aerofoil"] == 2


@pytest.mark.parametrize("mode", MODES)
def test_sparse_scores_are_engine_idf_times_bm25_weights(mode: str, collection: str) -> None:
    """Score = Σ query count · doc weight · ln(1 + (N − n + 0.5)/(n + 0.5)), IDF from the
    engine over the points stored now (checked after growth too)."""
    enc = BM25SparseEncoder()
    ctx = ComponentContext(name="bm25", kind="sparse")
    index = QdrantIndex(QdrantConfig.model_validate(_config(mode, collection)), ctx)
    try:
        for size in (3, len(DOCS)):
            chunks = _chunks()[:size]
            index.upsert(chunks, enc.encode_documents([c.text for c in chunks]))
            docs = enc.encode_documents([c.text for c in chunks])
            df: dict[int, int] = {}
            for d in docs:
                for i in d.indices.tolist():
                    df[i] = df.get(i, 0) + 1
            (q,) = enc.encode_queries(["cats purring all day"])
            expected = {}
            for chunk, d in zip(chunks, docs, strict=True):
                w = dict(zip(d.indices.tolist(), d.values.tolist(), strict=True))
                s = sum(qv * w[qi] * math.log(1 + (size - df[qi] + 0.5) / (df[qi] + 0.5))
                        for qi, qv in zip(q.indices.tolist(), q.values.tolist(), strict=True)
                        if qi in w)
                if s:
                    expected[chunk.id] = s
            hits = index.search(IndexQuery(text="", sparse=q), 10)
            assert {h.chunk_id: h.score for h in hits} == pytest.approx(expected, rel=1e-5)
            assert [h.chunk_id for h in hits] == sorted(expected, key=lambda c: -expected[c])
        # no known term, or no term at all: no hits, not an error
        assert index.search(IndexQuery(text="", sparse=enc.encode_queries(["zebra"])[0]), 5) == []
        assert index.search(IndexQuery(text="", sparse=enc.encode_queries(["the"])[0]), 5) == []
        with pytest.raises(InputError, match="sparse query"):
            index.search(IndexQuery(text="", vector=np.ones(3)), 5)
    finally:
        index.close()


# -- native multi-vector -------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_multivector_field_scores_maxsim(mode: str, collection: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    sets = [rng.standard_normal((int(rng.integers(1, 7)), 6)).astype(np.float32)
            for _ in range(12)]
    sets = [s / np.linalg.norm(s, axis=1, keepdims=True) for s in sets]
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text=f"t{i}") for i in range(len(sets))]
    ctx = ComponentContext(name="tokens", kind="multivector", dim=6, storage_dir=tmp_path / "i")
    index = QdrantIndex(QdrantConfig.model_validate(_config(mode, collection)), ctx)
    try:
        index.upsert(chunks, sets)
        qset = rng.standard_normal((3, 6)).astype(np.float32)
        qset /= np.linalg.norm(qset, axis=1, keepdims=True)
        exact = maxsim_scores(qset, sets)
        hits = index.search(IndexQuery(text="", tokens=qset), 5)
        order = np.argsort(-exact)[:5]
        assert [h.chunk_id for h in hits] == [f"c{i}" for i in order]
        assert [h.score for h in hits] == pytest.approx(exact[order].tolist(), rel=1e-4)
        with pytest.raises(DimensionMismatchError, match="6-d token vectors"):
            index.search(IndexQuery(text="", tokens=np.ones((2, 4), np.float32)), 3)
    finally:
        index.close()


@pytest.mark.parametrize("mode", ["local", "edge"])
def test_multivector_retriever_without_a_local_token_store(mode: str, tmp_path: Path) -> None:
    """Token vectors as a native MaxSim field, alone and next to sparse + dense in one
    collection: no tokens.sqlite, the ranking is exact MaxSim."""
    from tests.plugins.test_muvera import HashTokens, _TestEncoders

    host = trawl.PluginHost(entry_points=False, plugins=[
        ("hashing-test", HashingPlugin), ("qdrant", trawl_qdrant), ("bm25", trawl_bm25),
        ("tokens-test", _TestEncoders())])
    docs = [Document(id=d, text=t, metadata={"lang": lang}) for d, t, lang in DOCS]
    enc = HashTokens()
    query = "cats purr all day"
    exact = maxsim_scores(enc.encode_queries([query])[0], enc.encode_documents(
        [t for _, t, _ in DOCS]))
    expected = [DOCS[i][0] for i in np.argsort(-exact)]
    alone = {"name": "mv", "retrievers": [{"name": "tokens", "index": "qdrant",
                                           "encoder": "hash-tokens",
                                           "index_config": {"mode": mode}}]}
    three = _pipeline(mode, "x", fusion="rrf")
    three["retrievers"].append({"name": "tokens", "index": "qdrant", "encoder": "hash-tokens",
                                "store": "qdrant"})
    for name, pipeline in (("alone", alone), ("three", three)):
        with Trawl.open(tmp_path / name, pipeline=pipeline, host=host,
                        show_progress=False) as t:
            t.add(docs)
            hits = t.search(query, 5, retrievers=["tokens"])
            assert [h.doc_id for h in hits] == expected
            assert [h.score for h in hits] == pytest.approx(sorted(exact, reverse=True),
                                                            rel=1e-4)
            assert len(t.search(query, 3)) == 3  # the three fused by the engine
        assert not list((tmp_path / name).rglob("tokens.sqlite"))


# -- one collection, several retrievers ----------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_shared_collection_through_trawl(mode: str, collection: str, tmp_path: Path) -> None:
    host = _host()
    docs = [Document(id=d, text=t, metadata={"lang": lang}) for d, t, lang in DOCS]
    with Trawl.open(tmp_path / "i", pipeline=_pipeline(mode, collection), host=host,
                    show_progress=False) as t:
        t.add(docs)
        index = t.pipeline.retrievers["bm25"].index
        assert index is t.pipeline.retrievers["dense"].index  # one index, one collection
        assert index.count() == len(DOCS)  # one point per chunk, holding both vectors
        # each retriever fetches its 'candidates' (100) before fusion
        runs = {n: t.search("cats purr", 100, retrievers=[n]) for n in ("bm25", "dense")}
        assert runs["bm25"][0].doc_id == "cats"
        for method in ("rrf", "dbsf", "weighted"):
            # the top 3 (no ties in either run there; tied scores may be ranked in
            # another order by the engine) agree with core's fusion of the same runs
            fused = t.search("cats purr", 3, fusion=FusionConfig(method=method))
            reference = fuse(runs, method, k=60, top_k=3)
            assert [h.chunk_id for h in fused] == [h.chunk_id for h in reference], method
            if method == "rrf":  # Qdrant's k is trawl's k + 1: the same scores
                assert [h.score for h in fused] == pytest.approx(
                    [h.score for h in reference], rel=1e-6)
        # the engine fuses rrf/dbsf itself (one prefetch request): only its fused score
        assert list(t.search("cats", 3, fusion=FusionConfig(method="rrf"))[0]
                    .scores_by_source) == ["qdrant"]
        assert set(t.search("cats", 3)[0].scores_by_source) >= {"bm25", "dense"}  # weighted
        assert {h.doc_id for h in t.search("cats sleep", 5, {"lang": "de"})} <= {"katzen"}
        assert t.search("zebra quagga", 5, retrievers=["bm25"]) == []
        assert t.delete(["cats"]) == 1
        assert index.count() == len(DOCS) - 1
    with Trawl.open(tmp_path / "i", pipeline=_pipeline(mode, collection), host=host,
                    show_progress=False) as t:
        assert "cats" not in {h.doc_id for h in t.search("cats purr", 5)}


@pytest.mark.parametrize("mode", MODES)
def test_existing_collection_with_other_vectors_names_both(mode: str, collection: str,
                                                           tmp_path: Path) -> None:
    fields = (VectorField("bm25", "sparse", None), VectorField("dense", "dense", 8))
    cfg = QdrantConfig.model_validate(_config(mode, collection))
    QdrantIndex(cfg, ComponentContext(name="qdrant", storage_dir=tmp_path / "i",
                                      fields=fields)).close()
    other = (VectorField("bm25", "sparse", None), VectorField("dense", "dense", 16))
    with pytest.raises(ConfigError, match=r"has vectors \[bm25 \(sparse, idf\), dense \(8-d "
                       r"cosine\)\]; the pipeline expects \[bm25 \(sparse, idf\), dense "
                       r"\(16-d cosine\)\]"):
        QdrantIndex(cfg, ComponentContext(name="qdrant", storage_dir=tmp_path / "i",
                                          fields=other))
    with pytest.raises(ConfigError, match=r"has vectors \[bm25.*dense.*\]; the pipeline "
                       r"expects \[tokens \(8-d multi-vector cosine\)\]"):
        QdrantIndex(cfg, ComponentContext(name="qdrant", storage_dir=tmp_path / "i",
                                          kind="multivector", dim=8))


def test_pipeline_config_errors() -> None:
    host = _host()
    bad = _pipeline("local", "x")
    bad["retrievers"][1]["index_config"] = {"mode": "edge"}
    with pytest.raises(ConfigError, match="share store 'qdrant'"):
        trawl.load_pipeline(bad)
    wrong = {"name": "x", "retrievers": [{"name": "bm25", "index": "exact",
                                          "encoder": "bm25-sparse"}]}
    with pytest.raises(ConfigError, match=r"bm25-sparse.*is sparse; index 'exact' stores"):
        Trawl.open(None, pipeline=wrong, host=host, show_progress=False)
    shared_exact = {"name": "x", "retrievers": [
        {"name": "a", "index": "exact", "encoder": "hashing", "store": "s"},
        {"name": "b", "index": "exact", "encoder": "hashing", "store": "s"}]}
    with pytest.raises(ConfigError, match="cannot be shared"):
        Trawl.open(None, pipeline=shared_exact, host=host, show_progress=False)


def test_qdrant_hybrid_preset_chunks_like_hybrid() -> None:
    preset = trawl.load_pipeline("qdrant-hybrid")
    assert [(r.name, r.index, r.encoder, r.store) for r in preset.retrievers] == [
        ("bm25", "qdrant", "bm25-sparse", "qdrant"), ("dense", "qdrant", "onnx-dense", "qdrant")]
    assert preset.fusion == trawl.load_pipeline("hybrid").fusion


# -- servers that fail ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_line_naming(exc: BaseException, url: str) -> str:
    text = str(exc)
    assert "\n" not in text and url in text, text
    return text


def test_unreachable_server_is_one_line_naming_the_url() -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    cfg = QdrantConfig.model_validate({"url": url, "collection": "c", "timeout": 2})
    with pytest.raises(TrawlError) as err:
        QdrantIndex(cfg, ComponentContext(name="dense", dim=4))
    assert "is unreachable" in _one_line_naming(err.value, url)


def test_refused_api_key_is_one_line_naming_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real HTTP server on 127.0.0.1 that refuses every request with 403."""

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"status": {"error": "Invalid api-key"}}'
            self.send_response(403)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    monkeypatch.setenv("TRAWL_QDRANT_API_KEY", "not-the-key")
    try:
        cfg = QdrantConfig.model_validate({"url": url, "collection": "c", "timeout": 2})
        with pytest.raises(TrawlError) as err:
            QdrantIndex(cfg, ComponentContext(name="dense", dim=4))
        text = _one_line_naming(err.value, url)
        assert "refused the API key (HTTP 403)" in text and "not-the-key" not in text
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def test_indexes_on_disk_answers_the_same_after_reopen(tmp_path: Path) -> None:
    """``indexes_on_disk`` maps the sparse index and the payload indexes of optimized
    segments instead of loading them: the engine gets the setting, and a reopened folder
    answers exactly like one with the indexes in RAM (sparse, dense, fused, filtered)."""
    import json

    from trawl.filters import parse_filter

    docs = [Document(id=f"{d}{i}", text=f"{t} {i}", metadata={"lang": lang, "n": i})
            for i in range(20) for d, t, lang in DOCS]
    answers = {}
    for mapped in (False, True):
        pipeline = _pipeline("edge", "c")
        for r in pipeline["retrievers"]:
            r["index_config"] = {"mode": "edge", "indexes_on_disk": mapped,
                                 "payload_indexes": {"lang": "keyword", "n": "integer"},
                                 "hnsw": {"indexing_threshold_kb": 1}}
        folder = tmp_path / str(mapped)
        with Trawl.open(folder, pipeline=pipeline, host=_host(), show_progress=False) as t:
            t.add(docs)
            t.pipeline.retrievers["bm25"].index.optimize()  # type: ignore[attr-defined]
        segments = [json.loads(p.read_text()) for p in folder.rglob("segment.json")]
        sparse = {s["config"]["sparse_vector_data"]["bm25"]["index"]["index_type"]
                  for s in segments}
        assert ("Mmap" in sparse) is mapped, sparse
        for p in folder.rglob("payload_index/config.json"):
            fields = json.loads(p.read_text())["indexed_fields"]
            assert {k: isinstance(v, dict) and v.get("on_disk") is True
                    for k, v in fields.items()} == dict.fromkeys(
                        ("doc_id", "metadata.lang", "metadata.n"), mapped)
        with Trawl.open(folder, host=_host(), show_progress=False) as t:
            answers[mapped] = [
                [(h.chunk_id, round(h.score, 5)) for h in t.search(q, 7, retrievers=r,
                                                                    filters=f)]
                for q in ("cats purr", "fish tank", "schlafen")
                for r in (["bm25"], ["dense"], None)
                for f in (None, parse_filter({"lang": "en"}),
                          parse_filter({"field": "n", "op": "<", "value": 3}))]
    assert answers[True] == answers[False]
    assert sum(map(bool, answers[True])) == 26  # all but schlafen in English
