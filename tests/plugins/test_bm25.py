"""The bm25 index plugin: rank-bm25 parity, filters, persistence, crash safety, bad input."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trawl import ComponentContext, Index
from trawl.components import IndexQuery
from trawl.errors import ConfigError, IndexCorruptError, InputError
from trawl.filters import expand_dates, matches, parse_filter
from trawl.models import Chunk
from trawl.testing import IndexContract, sample_chunks

from ..conftest import dataset

rank_bm25 = pytest.importorskip("rank_bm25")
from trawl_bm25.index import BM25Config, BM25Index  # noqa: E402


def make(path: Path | None = None, **config: Any) -> BM25Index:
    return BM25Index(BM25Config(**config), ComponentContext(name="bm25", storage_dir=path))


def q(text: str) -> IndexQuery:
    return IndexQuery(text=text)


class TestBM25Contract(IndexContract):
    @pytest.fixture
    def make_index(self, tmp_path: Path) -> Callable[..., Index]:
        def build(dim: int = 8, metric: str = "cosine", storage: bool = True) -> Index:
            return make(tmp_path / "idx" if storage else None)

        return build


# -- corpora -------------------------------------------------------------------------------
def scifact_chunks(n: int) -> list[Chunk]:
    path = dataset("scifact") / "corpus.jsonl"
    out = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            out.append(Chunk(id=f"c{len(out):05d}", doc_id=d["_id"], text=d["text"],
                             metadata={"title": d["title"], "n": len(out) % 7}))
            if len(out) == n:
                break
    return out


TRICKY = [  # negative IDF (terms in most chunks), repeats, an empty chunk, unicode
    "apple apple banana", "apple banana cherry", "apple cherry", "apple", "",
    "banana banana banana durian", "Äpfel und Birnen: naïve café", "apple banana",
]


def tricky_chunks() -> list[Chunk]:
    return [Chunk(id=f"t{i}", doc_id=f"d{i}", text=t) for i, t in enumerate(TRICKY)]


def reference(index: BM25Index, chunks: list[Chunk], **params: float) -> Any:
    corpus = [index._analyze(c) for c in chunks]
    return rank_bm25.BM25Okapi(corpus, **params)


QUERIES = ["apple", "apple apple banana", "cherry durian", "café naïve", "banana",
           "the role of apoptosis in cancer cells", "protein protein binding",
           "vitamin D deficiency and bone density in older adults", "zzzunknown apple"]


# -- parity with rank_bm25 -------------------------------------------------------------------
@pytest.mark.parametrize("params", [{}, {"k1": 0.9, "b": 0.4}, {"k1": 1.2, "b": 1.0,
                                                                  "epsilon": 0.5},
                                    {"k1": 0.0, "b": 0.0, "epsilon": 0.0}])
def test_scores_equal_rank_bm25_tricky(params: dict[str, float]) -> None:
    chunks = tricky_chunks()
    index = make(**params)
    index.upsert(chunks)
    ref = reference(index, chunks, **params)
    assert min(ref.idf.values()) >= 0  # negative IDF floored (banana: exactly 0)
    for query in QUERIES:
        terms = index.query_terms(query)
        want = ref.get_scores(terms)
        if np.isnan(want).any():
            # rank-bm25 divides 0 by 0 for chunks without the term when k1 = 0, or for an
            # empty chunk when b = 1; such a (chunk, term) pair contributes nothing here
            want = sum((np.nan_to_num(ref.get_scores([t]), nan=0.0) for t in terms),
                       np.zeros(len(chunks)))
        np.testing.assert_allclose(index.scores(query), want, rtol=0, atol=1e-6)


def test_negative_idf_floor_is_exercised() -> None:
    chunks = tricky_chunks()
    index = make()
    index.upsert(chunks)
    ref = reference(index, chunks)
    raw = np.log(len(chunks) - 6 + 0.5) - np.log(6 + 0.5)  # 'appl' is in 6 of 8 chunks
    assert raw < 0 and ref.idf["appl"] == pytest.approx(0.25 * ref.average_idf)
    np.testing.assert_allclose(index.scores("apple"), ref.get_scores(["appl"]), atol=1e-6)


def test_scores_equal_rank_bm25_on_scifact() -> None:
    chunks = scifact_chunks(600)
    index = make()
    index.upsert(chunks)
    ref = reference(index, chunks)
    for query in QUERIES:
        terms = index.query_terms(query)
        want = ref.get_scores(terms)
        np.testing.assert_allclose(index.scores(query), want, rtol=0, atol=1e-6)
        hits = index.search(q(query), 10)
        order = sorted((i for i in range(len(chunks)) if want[i] != 0 or any(
            t in ref.doc_freqs[i] for t in terms)), key=lambda i: (-want[i], chunks[i].id))[:10]
        assert [h.chunk_id for h in hits] == [chunks[i].id for i in order]
        np.testing.assert_allclose([h.score for h in hits], want[order], atol=1e-6)


@pytest.mark.parametrize("cached_postings", [50, 1 << 22])
def test_weights_computed_per_queried_column_equal_rank_bm25(
        monkeypatch: pytest.MonkeyPatch, cached_postings: int) -> None:
    """The base segment's weights are computed per column at query time (no weight array
    in the heap) and kept in a bounded cache: the same scores as rank-bm25, asked twice
    (from the cache, or after it started over), with deleted rows (weight 0) too."""
    import trawl_bm25.index as bm25_index

    monkeypatch.setattr(bm25_index, "_CACHED_POSTINGS", cached_postings)
    chunks = scifact_chunks(300)
    index = make()
    index.upsert(chunks)
    index.delete([c.doc_id for c in chunks[:3]])  # deleted rows stay, weighted 0
    live = chunks[3:]
    ref = reference(index, live)
    for query in QUERIES[5:] * 2:
        want = ref.get_scores(index.query_terms(query))
        np.testing.assert_allclose(index.scores(query)[3:], want, rtol=0, atol=1e-6)


def test_query_term_multiplicity_counts_like_rank_bm25() -> None:
    index = make()
    index.upsert(tricky_chunks())
    one, two = index.scores("banana"), index.scores("banana banana")
    np.testing.assert_allclose(two, 2 * one, atol=1e-9)


# -- analysis ------------------------------------------------------------------------------
def test_tokenisation_lowercase_unicode_stopwords_stemming() -> None:
    index = make()
    assert index.query_terms("The Running Über-Cafés, naïve STUDIES!") == [
        "run", "über", "café", "naïv", "studi"]
    assert make(stemmer=None).query_terms("The running dogs") == ["running", "dogs"]
    assert make(stopwords="none").query_terms("the dog") == ["the", "dog"]
    assert make(stopwords=None, stemmer=None).query_terms("to be") == ["to", "be"]
    assert make(stopwords=["dog"], stemmer=None).query_terms("The dog barks") == ["the", "barks"]
    assert make(lowercase=False, stemmer=None, stopwords=None).query_terms("Dog dog") == [
        "Dog", "dog"]
    assert make(min_token_length=2, stemmer=None).query_terms("a b cd") == ["cd"]
    assert make(stemmer="german").query_terms("Häuser") == ["haus"]


def test_config_errors_name_the_field() -> None:
    with pytest.raises(ConfigError, match="stemmer"):
        make(stemmer="klingon")
    with pytest.raises(ValueError, match="k1"):
        BM25Config(k1=-1)
    with pytest.raises(ValueError, match="extra"):
        BM25Config(k=1)  # type: ignore[call-arg]


def test_title_words_count_field_weight_times() -> None:
    a = Chunk(id="a", doc_id="a", text="wing flutter . more text", metadata={"title": "Wing flutter ."})
    b = Chunk(id="b", doc_id="b", text="more text", metadata={"title": "Wing flutter"})
    c = Chunk(id="c", doc_id="c", text="more text", metadata={"title": ""})
    once = make(stemmer=None, stopwords=None, field_weights={})
    assert once._analyze(a) == ["wing", "flutter", "more", "text"]  # the text starts with it
    assert once._analyze(b) == ["wing", "flutter", "more", "text"]
    assert once._analyze(c) == ["more", "text"]
    # default: the title counts twice, whether or not the text repeats it
    twice = make(stemmer=None, stopwords=None)
    assert twice._analyze(a) == ["wing", "flutter", "wing", "flutter", "more", "text"]
    assert twice._analyze(b) == ["wing", "flutter", "wing", "flutter", "more", "text"]
    assert twice._analyze(c) == ["more", "text"]
    assert make(fields=["text"], stemmer=None)._analyze(b) == ["more", "text"]
    assert make(stemmer=None, stopwords=None, field_weights={"text": 2})._analyze(c) == [
        "more", "text", "more", "text"]
    with pytest.raises(ValueError, match="field weights"):
        BM25Config(field_weights={"title": 0})


def test_lucene_idf_is_never_negative() -> None:
    texts = ["wing wing flutter", "wing lift", "wing drag", "flutter"]
    chunks = [Chunk(id=str(i), doc_id=str(i), text=t) for i, t in enumerate(texts)]
    okapi, lucene = make(stemmer=None), make(stemmer=None, idf="lucene")
    for index in (okapi, lucene):
        index.upsert(chunks)
    n, df = 4, 3  # "wing": in 3 of 4 chunks, so Okapi's IDF is negative (floored by epsilon)
    hit = lucene.search(IndexQuery(text="wing"), 1)[0]
    idf = math.log1p((n - df + 0.5) / (df + 0.5))
    dl, avgdl = 3, 8 / 4
    expected = idf * 2 * 2.5 / (2 + 1.5 * (1 - 0.75 + 0.75 * dl / avgdl))
    assert hit.chunk_id == "0" and hit.score == pytest.approx(expected)
    assert okapi.search(IndexQuery(text="wing"), 1)[0].score != pytest.approx(expected)


# -- bad input -----------------------------------------------------------------------------
def test_bad_input() -> None:
    index = make()
    chunks = sample_chunks(20)
    index.upsert(chunks)
    assert index.search(q(""), 5) == []
    assert index.search(q("   "), 5) == []
    assert index.search(q("the and of to"), 5) == []  # only stopwords
    assert index.search(q("qwertyuiop"), 5) == []
    for bad in (0, -3):
        with pytest.raises(InputError, match="top_k"):
            index.search(q("alpha"), bad)
    everything = index.search(q("alpha beta gamma"), 10**9)
    want = {c.id for c in chunks if {"alpha", "beta", "gamma"} & set(c.text.split())}
    assert {h.chunk_id for h in everything} == want
    assert [h.rank for h in everything] == list(range(1, len(everything) + 1))
    assert index.get_chunks([chunks[2].id, "nope"]) == [chunks[2], None]
    assert index.count() == 20 and index.doc_ids() == {c.doc_id for c in chunks}


# -- filters -------------------------------------------------------------------------------
def filter_chunks() -> list[Chunk]:
    values: list[Any] = ["en", "de", 2020, 2021.5, True, False, None, 1, 0, ["en", "fr"], [],
                         2**60, "2020", float("nan"), -0.0]
    rng = np.random.default_rng(3)
    chunks = []
    for i in range(120):
        meta: dict[str, Any] = {}
        if i % 9:
            meta["v"] = values[i % len(values)]
        meta["year"] = int(rng.integers(1990, 2030))
        meta["lang"] = ["en", "de", "fr", None][i % 4]
        if i % 3 == 0:
            meta["nested"] = {"k": ["a", "b", "c"][i % 3 + (i % 2)]}
        if i % 10 == 0:
            meta["n.dotted"] = "yes"
        chunks.append(Chunk(id=f"f{i:03d}", doc_id=f"d{i // 3}",
                            text="alpha beta " * (1 + i % 4) + f"w{i}",
                            metadata=meta))
    return chunks


FILTERS: list[Any] = [
    {"v": "en"}, {"v": 2020}, {"v": True}, {"v": 1}, {"v": 0}, {"v": None}, {"v": 2**60},
    {"field": "v", "op": "!=", "value": "en"}, {"field": "v", "op": "!=", "value": None},
    {"field": "v", "op": ">", "value": 1}, {"field": "v", "op": "<=", "value": 2021.5},
    {"field": "v", "op": ">=", "value": "2020-01-01"},
    {"field": "v", "op": "<", "value": "2021-06-30T12:00:00"},
    {"field": "v", "op": "in", "value": ["en", 2020, True]},
    {"field": "v", "op": "not in", "value": ["de", 0]},
    {"field": "v", "op": ">", "value": 2**60 - 1}, {"v": -0.0},
    {"field": "year", "op": ">=", "value": 2010},
    {"and": [{"field": "year", "op": "<", "value": 2015}, {"lang": ["en", "de"]}]},
    {"or": [{"lang": "fr"}, {"not": {"field": "year", "op": ">", "value": 2000}}]},
    {"not": {"lang": None}}, {"nested.k": "b"}, {"n.dotted": "yes"},
    {"field": "nested", "op": "==", "value": "a"},
]


@pytest.mark.parametrize("epsilon", [0.25, 0.0], ids=["positive-weights", "zero-weights"])
@pytest.mark.parametrize("raw", FILTERS, ids=[json.dumps(f) for f in FILTERS])
def test_filter_mask_agrees_with_matches(raw: Any, epsilon: float) -> None:
    chunks = filter_chunks()
    index = make(epsilon=epsilon)
    index.upsert(chunks[:60])
    index.upsert(chunks[60:])  # columns grow with appended rows
    index.delete(["d1"])
    f = parse_filter(raw)
    # 'alpha' is in every chunk: its IDF is floored to epsilon * average IDF, so both
    # paths of the scorer run (all weights > 0, or zero weights that still match)
    assert (index._score(index._ensure_weights(), {"alpha": 1.0})[1] is None) == (epsilon > 0)
    live = [c for c in chunks if c.doc_id != "d1"]
    # an index is handed the filter with ISO date ranges expanded, as the pipeline does
    hits = index.search(q("alpha"), 1000, expand_dates(f))
    assert {h.chunk_id for h in hits} == {c.id for c in live if matches(f, c.metadata)}
    # a filter applied inside the search: top-3 of the allowed chunks, not of all
    allowed = [c for c in live if matches(f, c.metadata)]
    assert len(index.search(q("alpha"), 3, f)) == min(3, len(allowed))


def test_a_field_no_chunk_has_matches_nothing() -> None:
    index = make()
    chunks = filter_chunks()
    index.upsert(chunks)
    assert index.search(q("alpha"), 5, parse_filter({"lnag": "en"})) == []
    either = parse_filter({"or": [{"lang": "en"}, {"missing": 1}]})
    want = {c.id for c in chunks if matches(either, c.metadata)}
    assert want and {h.chunk_id for h in index.search(q("alpha"), 1000, either)} <= want
    negated = parse_filter({"not": {"missing": 1}})
    assert len(index.search(q("alpha"), 1000, negated)) == len(index.search(q("alpha"), 1000))


# -- incremental updates ------------------------------------------------------------------
def score_map(index: BM25Index, query: str) -> dict[str, float]:
    return {h.chunk_id: h.score for h in index.search(q(query), 10**6)}


def test_incremental_add_delete_equals_full_rebuild(tmp_path: Path) -> None:
    chunks = scifact_chunks(400)
    inc = make(tmp_path / "inc", compact_min_chunks=50, compact_ratio=0.5)
    for start in range(0, 300, 37):
        inc.upsert(chunks[start:start + 37])
        inc.search(q("cells"), 3)  # weights built between writes, then rebuilt lazily
    inc.delete([c.doc_id for c in chunks[10:60]])
    changed = [c.model_copy(update={"text": c.text + " apoptosis apoptosis"})
               for c in chunks[100:120]]
    inc.upsert(changed)  # replace by chunk id
    inc.upsert(chunks[300:])
    inc.delete([chunks[350].doc_id])
    final = {c.id: c for c in chunks if c.doc_id not in {x.doc_id for x in chunks[10:60]}
             and c.doc_id != chunks[350].doc_id}
    final.update({c.id: c for c in changed})
    full = make()
    full.upsert(list(final.values()))
    reopened = make(tmp_path / "inc", compact_min_chunks=50, compact_ratio=0.5)
    for index in (inc, reopened):
        assert index.count() == full.count() == len(final)
        for query in [*QUERIES[5:], "apoptosis"]:
            got, want = score_map(index, query), score_map(full, query)
            assert got.keys() == want.keys()
            for cid in want:
                assert got[cid] == pytest.approx(want[cid], abs=1e-9)


def test_small_writes_reuse_the_base_segment() -> None:
    """After a small write only the tail is re-laid out; scores still equal a full rebuild."""
    chunks = scifact_chunks(420)
    index = make()
    index.upsert(chunks[:400])
    index.search(q("cells"), 3)
    base = index._base
    live = {c.id: c for c in chunks[:400]}
    steps: list[tuple[str, Any]] = [
        ("add", chunks[400:410]),
        ("delete", [c.doc_id for c in chunks[5:10]] + [chunks[405].doc_id]),
        ("add", [c.model_copy(update={"text": "apoptosis " + c.text}) for c in chunks[20:23]]),
        ("add", chunks[410:]),
    ]
    for op, arg in steps:
        if op == "add":
            index.upsert(arg)
            live.update({c.id: c for c in arg})
        else:
            index.delete(arg)
            live = {k: c for k, c in live.items() if c.doc_id not in set(arg)}
        full = make()
        full.upsert(list(live.values()))
        for query in ["apoptosis in cells", "protein binding", "vitamin d"]:
            got, want = score_map(index, query), score_map(full, query)
            assert got.keys() == want.keys()
            assert all(got[c] == pytest.approx(want[c], abs=1e-9) for c in want)
        assert index._base is base and len(index._ensure_weights().segments) == 2


def test_in_memory_row_compaction_keeps_scores() -> None:
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text=f"word{i % 13} common text {i}",
                    metadata={"i": i}) for i in range(3000)]
    index = make()
    index.upsert(chunks)
    index.delete([f"d{i}" for i in range(0, 3000, 2)])  # > 25% dead: rows get renumbered
    assert index._dead == 0 and len(index._rows) == 1500
    full = make()
    full.upsert(chunks[1::2])
    assert score_map(index, "word3 common") == pytest.approx(score_map(full, "word3 common"))
    index.upsert(chunks[1:1500:2])  # replacing by id leaves tombstones too
    assert len(index._rows) == 1500 + 750 and index._dead == 750
    index.upsert(chunks[1501::2])
    assert index._dead == 0 and len(index._rows) == 1500
    assert score_map(index, "word3 common") == pytest.approx(score_map(full, "word3 common"))
    f = parse_filter({"field": "i", "op": "<", "value": 100})
    assert {h.chunk_id for h in index.search(q("common"), 3000, f)} == {
        f"c{i}" for i in range(1, 100, 2)}


# -- persistence ---------------------------------------------------------------------------
def test_persistence_round_trip_with_snapshot_and_deltas(tmp_path: Path) -> None:
    folder = tmp_path / "bm25"
    chunks = filter_chunks()
    index = make(folder, compact_min_chunks=40, compact_ratio=1.0)
    for start in range(0, 120, 10):
        index.upsert(chunks[start:start + 10])
    index.delete(["d3", "d4"])
    names = sorted(p.name for p in folder.iterdir())
    assert any(n.startswith("base-") for n in names) and any(n.startswith("delta-") for n in names)
    assert not any(n.endswith(".pkl") or n.endswith(".pickle") for n in names)
    again = make(folder, compact_min_chunks=40, compact_ratio=1.0)
    assert again.count() == index.count() and again.doc_ids() == index.doc_ids()
    assert score_map(again, "alpha beta") == score_map(index, "alpha beta")
    f = parse_filter({"field": "year", "op": ">", "value": 2005})
    assert [h.chunk_id for h in again.search(q("alpha"), 7, f)] == [
        h.chunk_id for h in index.search(q("alpha"), 7, f)]
    assert again.get_chunks(["f100"]) == index.get_chunks(["f100"])
    again.flush()
    assert not any(p.name.startswith("delta-") for p in folder.iterdir())
    third = make(folder)
    assert score_map(third, "alpha beta") == score_map(index, "alpha beta")


def test_changed_tokenisation_reanalyses_stored_text(tmp_path: Path) -> None:
    index = make(tmp_path / "x")
    index.upsert([Chunk(id="a", doc_id="a", text="running dogs")])
    plain = make(tmp_path / "x", stemmer=None)
    assert plain.query_terms("running") == ["running"]
    assert [h.chunk_id for h in plain.search(q("running"), 3)] == ["a"]
    assert plain.search(q("run"), 3) == []


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("target", ["manifest", "version", "base_json", "base_npy",
                                    "base_npy_bit", "base_npy_missing", "table_blob",
                                    "table_offsets_bit", "table_missing", "table_entry",
                                    "delta", "delta_gap"])
def test_corrupt_files_raise_and_nothing_is_overwritten(tmp_path: Path, target: str) -> None:
    folder = tmp_path / "bm25"
    index = make(folder, compact_min_chunks=0, compact_ratio=100.0, max_delta_files=10_000)
    chunks = sample_chunks(30)
    index.upsert(chunks[:20])
    index.flush()
    index.upsert(chunks[20:25])
    index.upsert(chunks[25:])
    names = {p.name for p in folder.iterdir()}
    base_json = next(n for n in names if n.startswith("base-") and n.endswith(".json"))
    base_tf = next(n for n in names if n.endswith(".tf.npy"))
    deltas = sorted(n for n in names if n.startswith("delta-"))
    if target == "manifest":
        victim = folder / "bm25.json"
        victim.write_bytes(victim.read_bytes()[:30])
    elif target == "version":
        victim = folder / "bm25.json"
        m = json.loads(victim.read_text())
        m["version"] = 999
        victim.write_text(json.dumps(m))
    elif target == "base_json":
        victim = folder / base_json
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x20  # a flipped bit that still parses is caught by sha256
        victim.write_bytes(bytes(data))
    elif target == "base_npy":
        victim = folder / base_tf
        victim.write_bytes(victim.read_bytes()[:-50])
    elif target == "base_npy_bit":  # still a valid array: caught by its sha256
        victim = folder / base_tf
        data = bytearray(victim.read_bytes())
        data[-3] ^= 0x01
        victim.write_bytes(bytes(data))
    elif target == "base_npy_missing":
        victim = folder / base_tf
        victim.unlink()
    elif target == "table_blob":  # truncated: its offsets no longer end at its size
        victim = folder / next(n for n in names if n.endswith(".chunks.texts.bin"))
        victim.write_bytes(victim.read_bytes()[:-7])
    elif target == "table_offsets_bit":  # still monotone offsets: caught by sha256
        victim = folder / next(n for n in names if n.endswith(".chunks.ids.offsets.npy"))
        data = bytearray(victim.read_bytes())
        data[-9] ^= 0x01
        victim.write_bytes(bytes(data))
    elif target == "table_missing":
        victim = folder / next(n for n in names if n.endswith(".chunks.docs.bin"))
        victim.unlink()
    elif target == "table_entry":  # a hostile manifest: a path outside the folder
        victim = folder / "bm25.json"
        m = json.loads(victim.read_text())
        m["base"]["chunks"]["texts"]["file"] = "/etc/passwd"
        victim.write_text(json.dumps(m))
    elif target == "delta":
        victim = folder / deltas[-1]
        victim.write_bytes(b'{"seq": ')
    else:
        victim = folder / deltas[0]
        victim.unlink()
    before = _files(folder)
    expected = {"version": "version 999", "table_entry": "texts"}.get(target, victim.name)
    every_term = " ".join(f"{c.metadata.get('title', '')} {c.text}" for c in chunks)
    with pytest.raises(IndexCorruptError, match=expected.replace(".", r"\.")
                       if target != "delta_gap" else "missing"):
        # postings are checked block by block as a query first reads them (version 3):
        # at the latest, the first search that reads the flipped one fails
        make(folder).search(q(every_term), 100)
    assert _files(folder) == before  # nothing rewritten or cleaned up


def _to_version_2(folder: Path) -> None:
    """Rewrite a version-3 snapshot in the version-2 layout (the chunks in the base JSON,
    the postings still .npy), as older trawl wrote it, so the test opens a real old folder."""
    import hashlib

    from trawl.chunktable import ChunkTable

    manifest = json.loads((folder / "bm25.json").read_text())
    base = manifest["base"]
    table = ChunkTable.open(folder, base["chunks"])
    vocab = json.loads((folder / base["json"]).read_text())["vocab"]
    raw = json.dumps({"vocab": vocab, "chunks": [c.model_dump() for c in table]}).encode()
    (folder / base["json"]).write_bytes(raw)
    for entry in base.pop("chunks").values():
        (folder / entry["file"]).unlink()
    for key in ("indices.digests", "tf.digests"):  # version 2 hashed whole files only
        (folder / base["npy"].pop(key)["file"]).unlink()
    base["json_sha256"] = hashlib.sha256(raw).hexdigest()
    manifest.update(version=2, base=base)
    (folder / "bm25.json").write_text(json.dumps(manifest))


def _to_version_1(folder: Path) -> None:
    """Rewrite a version-2 snapshot in the version-1 layout (one .npz of the rows' CSR)."""
    import hashlib

    from scipy import sparse

    manifest = json.loads((folder / "bm25.json").read_text())
    files = {k: folder / e["file"] for k, e in manifest["base"]["npy"].items()}
    arr = {k: np.load(p) for k, p in files.items()}
    rows = len(arr["doc_len"])
    csr = sparse.csc_matrix((arr["tf"], arr["indices"], arr["indptr"]),
                            shape=(rows, len(arr["indptr"]) - 1)).tocsr()
    csr.sort_indices()
    npz = folder / manifest["base"]["json"].replace(".json", ".npz")
    np.savez(npz, doc_len=arr["doc_len"], nnz=np.diff(csr.indptr).astype(np.int32),
             terms=csr.indices.astype(np.int32), tfs=csr.data.astype(np.int32))
    for p in files.values():
        p.unlink()
    base = {k: v for k, v in manifest["base"].items() if k != "npy"}
    base.update(npz=npz.name, npz_sha256=hashlib.sha256(npz.read_bytes()).hexdigest())
    manifest.update(version=1, base=base)
    (folder / "bm25.json").write_text(json.dumps(manifest))


def _hit_lists(ix: BM25Index, queries: Sequence[str], filters: Any = None,
               k: int = 10) -> list[list[tuple[str, float, int]]]:
    return [[(h.chunk_id, h.score, h.rank) for h in ix.search(q(t), k, filters)]
            for t in queries]


def test_reopen_maps_the_snapshot_and_old_snapshots_still_open(tmp_path: Path) -> None:
    folder = tmp_path / "bm25"
    chunks = filter_chunks()
    index = make(folder, compact_min_chunks=0)
    index.upsert(chunks[:80])
    index.flush()
    index.upsert(chunks[80:])  # a delta after the snapshot: the tail segment on reopen
    index.delete(["d3"])
    queries = ["alpha beta", "gamma", "alpha delta epsilon"]

    def hits(ix: BM25Index) -> list[list[tuple[str, float, int]]]:
        return _hit_lists(ix, queries)

    expected = hits(index)
    again = make(folder, compact_min_chunks=0)
    assert again._base is not None and isinstance(again._base.tf, np.memmap)
    assert not again._base.rows.flags.writeable  # read-only: page cache, not heap
    assert again._rows.table is not None and again._rows.base_n > 0  # chunks mapped too
    assert hits(again) == expected
    again.upsert(chunks[:5])  # writes after a mapped reopen copy, never touch the map
    again.delete(["d5"])
    after_writes = hits(again)
    again.flush()
    assert hits(make(folder)) == after_writes

    for version in (2, 1):  # version-2 and version-1 folders open, and move to version 3
        old = tmp_path / f"v{version}"
        make(old, compact_min_chunks=0).upsert(chunks)
        current = make(old)
        want = hits(current)
        _to_version_2(old)
        if version == 1:
            _to_version_1(old)
            assert not any(p.name.endswith(".npy") for p in old.iterdir())
        assert not any(".chunks." in p.name for p in old.iterdir())
        reopened = make(old)
        assert (reopened._base is None) == (version == 1)  # version 2: postings mapped
        assert reopened._rows.table is None and hits(reopened) == want
        reopened.upsert(chunks[:3])
        reopened.flush()  # the next snapshot is written in the mapped layout
        assert json.loads((old / "bm25.json").read_text())["version"] == 3
        assert any(".chunks." in p.name for p in old.iterdir())
        assert hits(make(old)) == hits(reopened)


def test_reopened_version_3_equals_a_fresh_index_with_filters_and_base_deletes(
        tmp_path: Path) -> None:
    folder = tmp_path / "bm25"
    # deltas are pydantic JSON, which writes NaN as null (the chunk table keeps NaN)
    chunks = [c.model_copy(update={"metadata": {k: v for k, v in c.metadata.items()
                                                if not (isinstance(v, float) and math.isnan(v))}})
              for c in filter_chunks()]
    odd = [Chunk(id="ü-1", doc_id="dü", text="alpha naïve 日本 café", index=2, start=3, end=9,
                 metadata={"title": "Ünïcode", "when": "2024-01-02", "x": [1, {"y": None}],
                           "f": 0.1, "big": 2**70}),
           Chunk(id="ü-2", doc_id="dü", text="beta", metadata={})]
    index = make(folder, compact_min_chunks=0)
    index.upsert(chunks[:90] + odd)
    index.flush()  # chunks 0..89 and the odd ones are the mapped base
    index.delete(["d4", "d7"])  # base rows: persisted as a delta, replayed on reopen
    index.upsert(chunks[90:])  # the delta tail
    index.upsert([chunks[5].model_copy(update={"text": "gamma replaced"})])  # replaces a base row
    live = [c for c in index._rows.live_chunks()]
    fresh = make(None)
    fresh.upsert(live)
    queries = ["alpha beta", "gamma", "alpha naïve", "beta w95"]
    reopened = make(folder, compact_min_chunks=0)
    assert reopened._rows.table is not None and reopened._rows.dead > 0
    for ix in (index, reopened):
        assert ix.count() == fresh.count() and ix.doc_ids() == fresh.doc_ids()
        assert _hit_lists(ix, queries, k=200) == _hit_lists(fresh, queries, k=200)
        for raw in FILTERS[:12] + FILTERS[17:]:
            f = expand_dates(parse_filter(raw))
            assert _hit_lists(ix, queries, f, 50) == _hit_lists(fresh, queries, f, 50), raw
    ids = ["ü-1", "ü-2", chunks[5].id, chunks[12].id, chunks[100].id, "nope"]
    want = [c.model_dump() if c else None for c in fresh.get_chunks(ids)]
    assert [c.model_dump() if c else None for c in reopened.get_chunks(ids)] == want
    assert want[0] == odd[0].model_dump() and want[3] is None  # d4 was deleted
    reopened.delete(["dü"])  # a base doc deleted after the reopen, then folded away
    reopened.flush()
    again = make(folder)
    assert again._rows.dead == 0 and again.get_chunks(["ü-1", "ü-2"]) == [None, None]
    assert _hit_lists(again, queries) == _hit_lists(reopened, queries)


def test_a_corrupt_chunk_text_is_an_error_naming_the_file_when_read(tmp_path: Path) -> None:
    folder = tmp_path / "bm25"
    index = make(folder, compact_min_chunks=0)
    index.upsert(sample_chunks(40))
    index.flush()
    texts = next(p for p in folder.iterdir() if p.name.endswith(".chunks.texts.bin"))
    data = bytearray(texts.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size, still UTF-8: only its block sha256 tells
    texts.write_bytes(bytes(data))
    reopened = make(folder)  # blobs are checked when a row is read, not at open
    with pytest.raises(IndexCorruptError, match=re.escape(texts.name)):
        reopened.search(q("alpha beta gamma delta"), 40)


def test_hostile_postings_with_forged_digests_are_caught_when_read(tmp_path: Path) -> None:
    import hashlib

    from trawl_bm25.store import block_digests

    folder = tmp_path / "bm25"
    index = make(folder, compact_min_chunks=0)
    chunks = sample_chunks(40)
    index.upsert(chunks)
    index.flush()
    manifest = json.loads((folder / "bm25.json").read_text())
    npy = manifest["base"]["npy"]
    rows = np.load(folder / npy["indices"]["file"]).copy()
    rows[-1] = 10**6  # names no row; digests and sha256 forged to match
    for key, arr in (("indices", rows), ("indices.digests", block_digests(rows))):
        path = folder / npy[key]["file"]
        np.save(path, arr)
        npy[key]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / "bm25.json").write_text(json.dumps(manifest))
    reopened = make(folder)  # not read yet: the open does not touch every posting
    every_term = " ".join(f"{c.metadata.get('title', '')} {c.text}" for c in chunks)
    with pytest.raises(IndexCorruptError, match=re.escape(npy["indices"]["file"])):
        reopened.search(q(every_term), 10)


def test_base_and_tail_merge_equals_scipy(monkeypatch: pytest.MonkeyPatch) -> None:
    from scipy import sparse

    import trawl_bm25.index as bm25_index

    monkeypatch.setattr(bm25_index, "_MERGE_BLOCK", 7)  # many blocks, columns split across
    rng = np.random.default_rng(5)
    n_terms, rows_a, rows_b = 13, 40, 25
    a = sparse.random(rows_a, n_terms, density=0.3, random_state=1, format="csc")
    b = sparse.random(rows_b, n_terms, density=0.3, random_state=2, format="csc")
    a.data = rng.integers(1, 9, a.nnz).astype(np.int32)
    b.data = rng.integers(1, 9, b.nnz).astype(np.int32)
    alive = rng.random(rows_a + rows_b) > 0.3
    for drop in (False, True):
        indptr, rows, tf = bm25_index._merge_csc(
            [(a.indptr, a.indices, a.data, 0), (b.indptr, b.indices, b.data, rows_a)],
            n_terms, alive, drop)
        want = sparse.vstack([a, b]).tocsr()
        if drop:
            want = want[np.flatnonzero(alive)]
        want = want.tocsc()
        want.sort_indices()
        assert np.array_equal(indptr, want.indptr) and np.array_equal(rows, want.indices)
        assert np.array_equal(tf, want.data)


def test_crash_mid_write_keeps_previous_state(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "bm25"
    lazy = {"compact_min_chunks": 10**6, "max_delta_files": 10**6}
    index = make(folder, **lazy)
    chunks = sample_chunks(30)
    index.upsert(chunks[:20])
    before = score_map(index, "alpha")

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("simulated power cut")

    # 1. the rename of a new delta fails: the upsert raises, the state on disk is the old one
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        index.upsert(chunks[20:])
    monkeypatch.undo()
    reopened = make(folder, **lazy)
    assert reopened.count() == 20 and score_map(reopened, "alpha") == pytest.approx(before)
    # a later write goes on from the last durable step (no gap in the log)
    reopened.upsert(chunks[20:25])
    after = score_map(reopened, "alpha")
    assert make(folder).count() == 25
    # 2. a snapshot (compaction) fails half-way: the manifest still points at the old files
    real = os.replace
    for fail_at in (1, 2, 3):  # base json, base npz, manifest
        calls = {"n": 0}

        def flaky(src: Any, dst: Any, _fail_at: int = fail_at, _calls: Any = calls) -> None:
            _calls["n"] += 1
            if _calls["n"] == _fail_at:
                raise OSError("simulated power cut")
            real(src, dst)

        monkeypatch.setattr(os, "replace", flaky)
        with pytest.raises(OSError, match="power cut"):
            reopened.flush()
        monkeypatch.undo()
        again = make(folder, **lazy)
        assert again.count() == 25 and score_map(again, "alpha") == pytest.approx(after)
        assert not any(p.name.endswith(".tmp") for p in folder.iterdir())
    reopened.flush()
    assert make(folder).count() == 25


def test_close_folds_a_bulk_load_into_the_snapshot_and_reopens_identically(
        tmp_path: Path) -> None:
    chunks = scifact_chunks(300)
    index = make(tmp_path / "i", compact_min_chunks=20, compact_ratio=2.0)
    for start in range(0, 300, 75):  # the last batch stays in a delta file until close
        index.upsert(chunks[start:start + 75])
    index.delete([chunks[7].doc_id])
    assert any(p.name.startswith("delta-") for p in (tmp_path / "i").iterdir())
    before = {query: index.search(q(query), 20) for query in QUERIES}
    index.close()
    assert not any(p.name.startswith("delta-") for p in (tmp_path / "i").iterdir())
    reopened = make(tmp_path / "i", compact_min_chunks=20, compact_ratio=2.0)
    assert reopened._delta_files == 0 and reopened.count() == 299
    for query, hits in before.items():
        assert [h.model_dump() for h in reopened.search(q(query), 20)] == [
            h.model_dump() for h in hits]
    reopened.close()  # wrote nothing: leaves the folder as it is
    assert make(tmp_path / "i").count() == 299


def test_close_folds_deltas_past_the_cap_even_under_a_tenth_of_a_large_index(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A large index's close folds deltas once they pass the cap, though they are under
    a tenth of it (each open would re-analyse them); fewer stay in delta files."""
    import trawl_bm25.index as bm25_index

    monkeypatch.setattr(bm25_index, "_CLOSE_FOLD_CHUNKS", 10)  # stands for 5000 at 1M
    chunks = scifact_chunks(400)

    def deltas() -> int:
        return sum(p.name.startswith("delta-") for p in (tmp_path / "i").iterdir())

    index = make(tmp_path / "i", compact_min_chunks=0, compact_ratio=10.0)
    index.upsert(chunks[:300])
    index.close()  # a first bulk load: the base
    index = make(tmp_path / "i", compact_min_chunks=0, compact_ratio=10.0)
    index.upsert(chunks[300:305])  # 5 < the cap of 10
    index.close()
    assert deltas() == 1
    index = make(tmp_path / "i", compact_min_chunks=0, compact_ratio=10.0)
    index.upsert(chunks[305:315])  # 15 in deltas: past the cap, under a tenth (30)
    before = {query: index.search(q(query), 20) for query in QUERIES}
    index.close()
    assert deltas() == 0
    reopened = make(tmp_path / "i")
    assert reopened.count() == 315
    for query, hits in before.items():
        assert [h.model_dump() for h in reopened.search(q(query), 20)] == [
            h.model_dump() for h in hits]


def test_upsert_is_durable_when_it_returns(tmp_path: Path) -> None:
    """A second process sees every acknowledged write (no close, no flush)."""
    folder = tmp_path / "bm25"
    index = make(folder)
    index.upsert(sample_chunks(12))
    index.delete(["doc0"])
    code = (f"from pathlib import Path\nfrom trawl import ComponentContext\n"
            f"from trawl_bm25.index import BM25Index\n"
            f"ix = BM25Index(None, ComponentContext(name='b', storage_dir=Path({str(folder)!r})))\n"
            f"print(ix.count(), sorted(ix.doc_ids())[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["10", "doc1"]


# -- plugin wiring -------------------------------------------------------------------------
def test_plugin_registration_is_lazy() -> None:
    code = ("import sys, trawl\nhost = trawl.PluginHost()\n"
            "entry = host.registry.get('index', 'bm25')\n"
            "assert isinstance(entry.factory, str), entry.factory\n"
            "bad = [m for m in ('scipy', 'Stemmer', 'rank_bm25') if m in sys.modules]\n"
            "assert not bad, bad\n"
            "assert entry.load().__name__ == 'BM25Index'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_through_trawl_api_with_filters(tmp_path: Path) -> None:
    from trawl import Trawl

    pipeline = {"name": "bm25", "retrievers": [{"name": "bm25", "index": "bm25"}],
                "chunking": {"enabled": False}}
    with_path = tmp_path / "t"
    t = Trawl.open(with_path, pipeline=pipeline)
    t.add([{"id": "a", "title": "Wing flutter", "text": "supersonic flow", "year": 1960},
           {"id": "b", "title": "Heat transfer", "text": "boundary layer flow", "year": 1970}])
    assert [h.doc_id for h in t.search("flow", filters={"year": 1970})] == ["b"]
    assert [h.doc_id for h in t.search("wing")] == ["a"]
    assert t.search("the of") == []
    t.close()
    t = Trawl.open(with_path)
    assert [h.doc_id for h in t.search("heat")] == ["b"]
    t.close()


def test_limit_small_recall(tmp_path: Path) -> None:
    root = dataset("limit-small")
    docs = [json.loads(line) for line in (root / "corpus.jsonl").open(encoding="utf-8")]
    queries = {json.loads(line)["_id"]: json.loads(line)["text"]
               for line in (root / "queries.jsonl").open(encoding="utf-8")}
    qrels: dict[str, set[str]] = {}
    for line in (root / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()[1:]:
        qid, did, score = line.split("\t")
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    index = make()
    index.upsert([Chunk(id=d["_id"], doc_id=d["_id"], text=d["text"],
                        metadata={"title": d["title"]}) for d in docs])
    recall = np.mean([len({h.doc_id for h in index.search(q(queries[qid]), 10)} & rel) / len(rel)
                      for qid, rel in qrels.items()])
    assert recall >= 0.97


# -- pseudo-relevance feedback (RM3) ---------------------------------------------------------
def rm3_reference(index: BM25Index, chunks: list[Chunk], query: str, docs: int, terms: int,
                  alpha: float) -> np.ndarray:
    """RM3 written out from rank_bm25 scores: first pass, term model of the top chunks
    (each chunk's term frequencies / length, times its score), top terms, interpolation."""
    ref = reference(index, chunks)
    q_terms = index.query_terms(query)
    first = ref.get_scores(q_terms)
    top = sorted(range(len(chunks)), key=lambda i: (-first[i], chunks[i].id))[:docs]
    model: dict[str, float] = {}
    for i in top:
        if first[i] <= 0:
            continue
        toks = index._analyze(chunks[i])
        for t in set(toks):
            model[t] = model.get(t, 0.0) + toks.count(t) / len(toks) * first[i]
    best = sorted(model.items(), key=lambda kv: (-kv[1], kv[0]))[:terms]
    total = sum(v for _, v in best)
    weights = {t: alpha * q_terms.count(t) / len(q_terms) for t in set(q_terms)}
    for t, v in best:
        weights[t] = weights.get(t, 0.0) + (1 - alpha) * v / total
    return sum((w * ref.get_scores([t]) for t, w in weights.items()), np.zeros(len(chunks)))


@pytest.mark.parametrize("query", ["the role of apoptosis in cancer cells",
                                   "vitamin D deficiency and bone density in older adults",
                                   "protein protein binding"])
def test_feedback_scores_equal_rm3_written_out(query: str) -> None:
    chunks = scifact_chunks(300)
    index = make(feedback_docs=5, feedback_terms=8, feedback_query_weight=0.6)
    index.upsert(chunks)
    want = rm3_reference(index, chunks, query, 5, 8, 0.6)
    hits = index.search(q(query), 10)
    order = sorted((i for i in range(len(chunks)) if want[i] > 0),
                   key=lambda i: (-want[i], chunks[i].id))[:10]
    assert [h.chunk_id for h in hits] == [chunks[i].id for i in order]
    np.testing.assert_allclose([h.score for h in hits], want[order], rtol=1e-9, atol=1e-9)
    assert index.scores(query).max() > 0  # `scores` stays the plain first pass


def test_feedback_finds_chunks_without_a_query_term() -> None:
    texts = ["wing flutter aeroelastic model", "flutter of a wing: aeroelastic tests",
             "aeroelastic divergence of panels", "boundary layer transition", "heat transfer"]
    chunks = [Chunk(id=f"c{i}", doc_id=f"d{i}", text=t) for i, t in enumerate(texts)]
    plain, prf = make(), make(feedback_docs=2, feedback_terms=5)
    plain.upsert(chunks)
    prf.upsert(chunks)
    assert [h.chunk_id for h in plain.search(q("flutter"), 5)] in (["c0", "c1"], ["c1", "c0"])
    found = [h.chunk_id for h in prf.search(q("flutter"), 5)]
    assert set(found[:2]) == {"c0", "c1"} and "c2" in found  # found through 'aeroelastic'
    assert "c3" not in found and "c4" not in found
    assert prf.search(q("zzzunknown"), 5) == []


def test_feedback_terms_come_only_from_chunks_the_filter_allows() -> None:
    chunks = [Chunk(id="in1", doc_id="in1", text="flutter wing", metadata={"ok": True}),
              Chunk(id="out", doc_id="out", text="flutter flutter secretterm",
                    metadata={"ok": False}),
              Chunk(id="in2", doc_id="in2", text="secretterm panels", metadata={"ok": True}),
              Chunk(id="in3", doc_id="in3", text="wing panels", metadata={"ok": True})]
    chunks += [Chunk(id=f"z{i}", doc_id=f"z{i}", text=f"filler{i} text", metadata={"ok": True})
               for i in range(8)]  # so that every term above has a positive IDF
    index = make(feedback_docs=3, feedback_terms=5)
    index.upsert(chunks)
    unfiltered = [h.chunk_id for h in index.search(q("flutter"), 5)]
    assert "in2" in unfiltered  # 'secretterm' came from the chunk outside the filter
    allowed = [h.chunk_id for h in index.search(q("flutter"), 5, parse_filter({"ok": True}))]
    assert allowed[0] == "in1" and "in2" not in allowed and "out" not in allowed
    assert "in3" in allowed  # 'wing' came from in1, inside the filter


def test_feedback_config_is_checked() -> None:
    with pytest.raises(ValueError, match="feedback_query_weight"):
        BM25Config(feedback_query_weight=1.5)
    with pytest.raises(ValueError, match="feedback_docs"):
        BM25Config(feedback_docs=-1)
    assert "feedback_docs" not in make(feedback_docs=10).fingerprint  # query time: no re-index


def test_an_index_opens_with_feedback_turned_on_later(tmp_path: Path) -> None:
    from trawl import Trawl

    texts = ["wing flutter aeroelastic model", "flutter of a wing: aeroelastic tests",
             "aeroelastic divergence of panels", "boundary layer transition", "heat transfer",
             "shock waves", "skin friction"]
    with Trawl.open(tmp_path / "ix", pipeline="bm25") as t:
        t.add([{"id": f"d{i}", "text": x} for i, x in enumerate(texts)])
        assert {h.doc_id for h in t.search("flutter")} == {"d0", "d1"}
    prf = {"name": "bm25", "retrievers": [{"name": "bm25", "index": "bm25", "index_config": {
        "feedback_docs": 2, "feedback_terms": 5}}]}
    with Trawl.open(tmp_path / "ix", pipeline=prf) as t:  # query-time: no rebuild, no error
        assert "d2" in {h.doc_id for h in t.search("flutter")}
    with Trawl.open(tmp_path / "ix") as t:  # remembered, as fusion and reranker are
        assert "d2" in {h.doc_id for h in t.search("flutter")}
    with Trawl.open(tmp_path / "ix", pipeline="bm25") as t:  # and turned off again
        assert {h.doc_id for h in t.search("flutter")} == {"d0", "d1"}
    stored = {"name": "bm25", "retrievers": [{"name": "bm25", "index": "bm25", "index_config": {
        "stemmer": None}}]}
    with pytest.raises(ConfigError, match="cannot be opened with a different one"):
        Trawl.open(tmp_path / "ix", pipeline=stored)


def test_write_batch_defers_only_its_own_threads_upserts(tmp_path: Path) -> None:
    """Inside ``write_batch`` this thread's upserts wait for the block's end (one delta
    file); another thread's upsert (core commits it at once) is durable when it returns,
    after the buffered ones, so a reopen at that moment sees both in order."""
    import threading

    chunks = scifact_chunks(30)
    index = make(tmp_path / "i")
    with index.write_batch():
        index.upsert(chunks[:10])
        index.upsert(chunks[10:20])
        assert make(tmp_path / "i").count() == 0  # nothing durable yet (not committed)
        other = threading.Thread(target=index.upsert, args=(chunks[20:],))
        other.start()
        other.join()
        seen = make(tmp_path / "i")  # as a crash now would leave it
        assert seen.count() == 30
        assert [c.id for c in seen.get_chunks([c.id for c in chunks])] == [
            c.id for c in chunks]
    deltas = [p for p in (tmp_path / "i").iterdir() if p.name.startswith("delta-")]
    assert len(deltas) == 2  # the block's 20 chunks in one file, the other thread's in one
    reopened = make(tmp_path / "i")
    for query in QUERIES[5:]:
        assert score_map(reopened, query) == pytest.approx(score_map(index, query), abs=1e-12)
