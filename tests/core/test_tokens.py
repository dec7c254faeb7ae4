"""The token store: memory-mapped float16 rows, crash safety, repair, sharing with rerankers."""

from __future__ import annotations

import re
import sqlite3
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import trawl
from trawl import PluginHost, Trawl
from trawl.components import Encoder, Reranker
from trawl.errors import DimensionMismatchError, IndexCorruptError
from trawl.models import Hit, SourceScore
from trawl.tokens import TokenStore
from trawl.vectors import maxsim_scores


def _sets(rng: np.random.Generator, n: int, dim: int = 8) -> list[np.ndarray]:
    out = []
    for _ in range(n):
        m = rng.standard_normal((int(rng.integers(0, 7)), dim)).astype(np.float32)
        out.append(m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9))
    return out


def _close(a: np.ndarray | None, b: np.ndarray) -> bool:
    """Equal up to the store's rounding (int8 per-token scale, or float16)."""
    return a is not None and a.shape == b.shape and bool(np.allclose(a, b, atol=5e-3))


@pytest.mark.parametrize(("on_disk", "row_format"),
                         [(True, "int8"), (False, "int8"), (True, "f16")])
def test_put_get_maxsim_delete_compact(tmp_path: Path, on_disk: bool, row_format: str) -> None:
    rng = np.random.default_rng(0)
    store = TokenStore(tmp_path / "tokens" if on_disk else None, row_format=row_format)
    sets = _sets(rng, 40)
    ids = [f"d{i // 2}#{i % 2}" for i in range(40)]
    store.put(ids[:25], [c.split("#")[0] for c in ids[:25]], sets[:25])
    store.put(ids[25:], [c.split("#")[0] for c in ids[25:]], sets[25:])
    got = store.get([*ids, "nope"])
    assert got[-1] is None
    for g, m in zip(got, sets, strict=False):
        assert _close(g, m)
    q = _sets(rng, 1)[0]
    q = q if len(q) else np.ones((1, 8), np.float32)
    want = ["d3#1", "nope", "d0#0", "d19#1", "d7#0"]
    scores, found = store.maxsim(q, want)
    ref = maxsim_scores(q, [sets[ids.index(c)] if c in ids else np.zeros((0, 8), np.float32)
                            for c in want])
    np.testing.assert_allclose(scores, ref, atol=2e-2)
    stored = maxsim_scores(q, [m if m is not None else np.zeros((0, 8), np.float32)
                               for m in store.get(want)])
    np.testing.assert_allclose(scores, stored, rtol=1e-5, atol=1e-5)  # same numbers as get()
    assert found.tolist() == [True, False, True, True, True]
    # replace one chunk, delete documents, compact: the rest reads back unchanged
    new = np.eye(8, dtype=np.float32)[:3]
    store.put(["d0#0"], ["d0"], [new])
    store.delete_docs([f"d{i}" for i in range(1, 15)])
    assert store.doc_ids() == {"d0"} | {f"d{i}" for i in range(15, 20)}
    store.compact()
    assert np.array_equal(store.get(["d0#0"])[0], new)  # 0 and 1 are exact in both formats
    assert _close(store.get(["d17#1"])[0], sets[35])
    row_bytes = 8 + 4 if row_format == "int8" else 8 * 2
    assert store.nbytes() == sum(len(s) for s in [new, sets[1], *sets[30:]]) * row_bytes
    if on_disk:
        store.close()
        again = TokenStore(tmp_path / "tokens")  # the format is the store's, not the default
        assert again.format == row_format and _close(again.get(["d17#1"])[0], sets[35])
        again.put(["more#0"], ["more"], [np.eye(8, dtype=np.float32)])
        assert np.array_equal(again.get(["more#0"])[0], np.eye(8))
        suffix = ".i8s" if row_format == "int8" else ".f16"
        assert [p.name for p in (tmp_path / "tokens").glob("rows-*")] == [f"rows-1{suffix}"]
        again.close()


@pytest.mark.parametrize("row_format", ["int8", "f16"])
def test_maxsim_over_many_blocks_matches_get_and_brute_force(tmp_path: Path,
                                                              row_format: str) -> None:
    """Candidates spanning several conversion blocks, in any order, with gaps and repeats:
    the blocked scoring gives the numbers ``get()`` + plain MaxSim give, chunk by chunk."""
    import trawl.tokens as tokens

    rng = np.random.default_rng(7)
    dim = 16
    sets = [rng.standard_normal((int(rng.integers(1, 90)), dim)).astype(np.float32)
            for _ in range(120)]
    ids = [f"c{i}" for i in range(120)]
    store = TokenStore(tmp_path / "tokens", row_format=row_format)
    store.put(ids, [f"d{i}" for i in range(120)], sets)
    assert sum(len(m) for m in sets) > 3 * tokens._BLOCK_ROWS // 2  # > 1 block at 2048
    q = rng.standard_normal((7, dim)).astype(np.float32)
    want = [ids[i] for i in rng.permutation(120)[:100]] + ["missing", ids[3], ids[3]]
    scores, found = store.maxsim(q, want)
    stored = maxsim_scores(q, [m if m is not None else np.zeros((0, dim), np.float32)
                               for m in store.get(want)])
    np.testing.assert_allclose(scores, stored, rtol=1e-5, atol=1e-4)
    ref = maxsim_scores(q, [sets[ids.index(c)] if c in ids else np.zeros((0, dim), np.float32)
                            for c in want])
    np.testing.assert_allclose(scores, ref, atol=0.05 * np.abs(ref).max())
    assert found.tolist() == [True] * 100 + [False, True, True]
    assert scores[100] == 0 and scores[101] == scores[102]
    # the block size is not part of the answer: one row per block scores the same
    small = tokens._BLOCK_ROWS
    try:
        tokens._BLOCK_ROWS = 1
        tokens._scratch.__dict__.clear()
        tiny, _ = store.maxsim(q, want)
    finally:
        tokens._BLOCK_ROWS = small
        tokens._scratch.__dict__.clear()
    np.testing.assert_allclose(tiny, scores, rtol=1e-5, atol=1e-5)
    assert store.chunk_ids() == sorted(ids)


def test_wrong_width_is_rejected(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t")
    store.put(["a"], ["a"], [np.ones((2, 4), np.float32)])
    with pytest.raises(DimensionMismatchError, match="4-d"):
        store.put(["b"], ["b"], [np.ones((2, 5), np.float32)])
    assert store.count() == 1


def test_crash_leftovers_are_cut_and_short_files_reported(tmp_path: Path) -> None:
    folder = tmp_path / "tokens"
    store = TokenStore(folder)
    store.put(["a"], ["a"], [np.ones((3, 4), np.float32)])
    store.close()
    data = folder / "rows-0.i8s"
    with open(data, "ab") as fh:  # an append whose SQLite commit never happened
        fh.write(b"\x01" * 24)
    (folder / "rows-7.i8s").write_bytes(b"stale generation")
    store = TokenStore(folder)
    assert data.stat().st_size == 3 * (4 + 4) and not (folder / "rows-7.i8s").exists()
    store.put(["b"], ["b"], [np.full((1, 4), 2, np.float32)])
    assert store.get(["b"])[0].tolist() == [[2, 2, 2, 2]]  # type: ignore[union-attr]
    store.close()
    data.write_bytes(data.read_bytes()[:8])  # lost rows the table points at
    with pytest.raises(IndexCorruptError, match=r"delete .*tokens"):
        TokenStore(folder)


def test_float16_store_without_a_recorded_format_still_opens(tmp_path: Path) -> None:
    folder = tmp_path / "tokens"
    store = TokenStore(folder, row_format="f16")
    a = np.eye(4, dtype=np.float32)[:3] * 0.5
    store.put(["a#0"], ["a"], [a])
    store.close()
    conn = sqlite3.connect(folder / "tokens.sqlite")  # as the first version wrote it
    conn.execute("DELETE FROM meta WHERE key='format'")
    conn.commit()
    conn.close()
    again = TokenStore(folder)
    assert again.format == "f16" and np.array_equal(again.get(["a#0"])[0], a)
    again.close()


def test_legacy_sqlite_store_of_either_precision_is_imported(tmp_path: Path) -> None:
    old = tmp_path / "tokens.sqlite"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE tokens (chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL,"
                 " rows INTEGER NOT NULL, dim INTEGER NOT NULL, data BLOB NOT NULL)")
    a = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    conn.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)",
                 ("x#0", "x", 2, 4, a.astype(np.float16).tobytes()))
    conn.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)", ("y#0", "y", 2, 4, a.tobytes()))
    conn.commit()
    conn.close()
    store = TokenStore(tmp_path / "new")
    assert store.import_legacy(old) == 2
    for m in store.get(["x#0", "y#0"]):
        assert _close(m, a)


# -- in a pipeline ----------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


class WordVectors(Encoder):
    """Multi-vector test encoder: each word a fixed unit vector; counts document calls."""

    kind = "multivector"
    document_calls = 0

    @property
    def dim(self) -> int:
        return 16

    def _encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        out = []
        for t in texts:
            rows = [np.random.default_rng(zlib.crc32(w.encode())).standard_normal(16)
                    for w in _WORD.findall(t.lower())]
            m = np.array(rows, dtype=np.float32).reshape(-1, 16)
            out.append(m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-9))
        return out

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Any:
        WordVectors.document_calls += 1
        return self._encode(texts)

    def encode_queries(self, texts: Sequence[str]) -> Any:
        return self._encode(texts)


class StoredMaxSim(Reranker):
    """Scores only from the token store (fails loudly if it is not there)."""

    def __init__(self, config: Any = None, context: Any = None) -> None:
        super().__init__(config, context)
        self.encoder = WordVectors()

    def token_encoder(self) -> Encoder:
        return self.encoder

    def rerank(self, query: str, hits: Sequence[Hit], top_k: int | None = None) -> list[Hit]:
        assert self.token_store is not None, "the pipeline did not hand over its token store"
        q = self.encoder.encode_queries([query])[0]
        scores, found = self.token_store.maxsim(q, [h.chunk_id for h in hits])
        assert found.all()
        order = sorted(range(len(hits)), key=lambda i: (-float(scores[i]), hits[i].chunk_id))
        return [hits[i].model_copy(update={
            "score": float(scores[i]), "rank": r,
            "scores_by_source": {**hits[i].scores_by_source,
                                 "stored": SourceScore(score=float(scores[i]), rank=r)}})
            for r, i in enumerate(order[:top_k], start=1)]


class _Plugin:
    @trawl.hookimpl
    def register_encoders(self, register: Any) -> None:
        register(WordVectors, name="word-vectors")

    @trawl.hookimpl
    def register_rerankers(self, register: Any) -> None:
        register(StoredMaxSim, name="stored-maxsim")


DOCS = [{"id": f"d{i}", "text": f"{w} wing flutter number {i} " * 2}
        for i, w in enumerate(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"])]
EXACT = {"name": "exact", "retrievers": [
    {"name": "words", "index": "exact", "encoder": "word-vectors-dense"}]}


class _Dense(Encoder):
    """A dense stand-in: the mean of the word vectors."""

    @property
    def dim(self) -> int:
        return 16

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Any:
        return np.stack([m.mean(axis=0) if len(m) else np.zeros(16, np.float32)
                         for m in WordVectors()._encode(texts)])

    def encode_queries(self, texts: Sequence[str]) -> Any:
        return self.encode_documents(texts)


class _DensePlugin:
    @trawl.hookimpl
    def register_encoders(self, register: Any) -> None:
        register(_Dense, name="word-vectors-dense")


def _host() -> PluginHost:
    return PluginHost(plugins=[("tokens-test", _Plugin()), ("tokens-dense", _DensePlugin())])


def _with_rerank() -> dict[str, Any]:
    return {**EXACT, "name": "exact-rerank", "reranker": {"name": "stored-maxsim", "depth": 8}}


def test_reranker_reads_stored_vectors_and_encodes_no_passage_at_query_time(
        tmp_path: Path) -> None:
    host = _host()
    with Trawl.open(tmp_path / "idx", pipeline=_with_rerank(), host=host) as t:
        t.add(DOCS)
        calls = WordVectors.document_calls
        hits = t.search("gamma wing", top_k=3)
        assert WordVectors.document_calls == calls  # nothing encoded for the passages
        assert hits[0].doc_id == "d2" and "stored" in hits[0].scores_by_source
        assert t.pipeline.tokens is not None and t.pipeline.tokens.doc_ids() == {
            d["id"] for d in DOCS}
        t.delete(["d2"])
        assert "d2" not in t.pipeline.tokens.doc_ids()
        t.add([{"id": "d1", "text": "replaced gamma text"}])
        assert t.search("replaced", top_k=1)[0].doc_id == "d1"


def test_store_missing_or_behind_is_rebuilt_on_open_with_a_warning(tmp_path: Path) -> None:
    host = _host()
    path = tmp_path / "idx"
    with Trawl.open(path, pipeline=EXACT, host=host) as t:  # an index that keeps no tokens
        t.add(DOCS)
    assert not (path / "tokens.d").exists()
    with pytest.warns(RuntimeWarning, match="lacks 8 documents"), \
            Trawl.open(path, pipeline=_with_rerank(), host=host) as t:
        assert t.pipeline.tokens is not None and t.pipeline.tokens.count() == 8
        assert t.search("delta", top_k=1)[0].doc_id == "d3"
        t.add([{"id": "new", "text": "kappa"}])
    # opened without the reranker, writes still keep the store in step (deletes) ...
    with Trawl.open(path, pipeline=EXACT, host=host) as t:
        t.delete(["d0"])
        t.add([{"id": "late", "text": "lambda"}])
    # ... and what was added meanwhile is encoded on the next open that reads it
    with pytest.warns(RuntimeWarning, match="lacks 1 documents"), \
            Trawl.open(path, pipeline=_with_rerank(), host=host) as t:
        assert t.pipeline.tokens is not None
        assert "d0" not in t.pipeline.tokens.doc_ids() and "late" in t.pipeline.tokens.doc_ids()
    # a deleted store folder is rebuilt the same way
    import shutil

    shutil.rmtree(path / "tokens.d")
    with pytest.warns(RuntimeWarning, match="re-encoding"), \
            Trawl.open(path, pipeline=_with_rerank(), host=host) as t:
        assert t.pipeline.tokens is not None and t.pipeline.tokens.count() == 9
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in step now: opening says nothing
        Trawl.open(path, pipeline=_with_rerank(), host=host).close()


def test_multivector_retriever_and_reranker_share_one_store(tmp_path: Path) -> None:
    mv = {"name": "mv", "retrievers": [{
        "name": "mv", "index": "exact", "encoder": "word-vectors", "transform": "muvera",
        "transform_config": {"r_reps": 4, "k_sim": 2, "d_proj": 8}, "candidates": 8}],
        "reranker": {"name": "stored-maxsim", "depth": 8}}
    host = _host()
    if "muvera" not in host.registry.names("transform"):
        pytest.skip("trawl_muvera not installed")
    with Trawl.open(tmp_path / "idx", pipeline=mv, host=host) as t:
        calls = WordVectors.document_calls
        t.add(DOCS)
        assert WordVectors.document_calls == calls + 1  # one encoding feeds index and store
        store = t.pipeline.tokens
        assert store is not None and t.pipeline.retrievers["mv"].tokens is store
        assert t.pipeline.reranker is not None and t.pipeline.reranker.token_store is store
        hit = t.search("theta flutter", top_k=1)[0]
    assert hit.doc_id == "d7"
    assert sorted(p.name for p in (tmp_path / "idx").rglob("tokens*")) == [
        "tokens.d", "tokens.sqlite"]
    # an index of an earlier version kept one SQLite store per retriever: migrated on open
    import shutil

    idx = tmp_path / "idx"
    current = TokenStore(idx / "tokens.d")
    rows = [(cid, cid.split("#")[0], m) for cid, m in zip(
        sorted(current._spans), current.get(sorted(current._spans)), strict=True)]
    current.close()
    shutil.rmtree(idx / "tokens.d")
    conn = sqlite3.connect(idx / "mv" / "tokens.sqlite")
    conn.execute("CREATE TABLE tokens (chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL,"
                 " rows INTEGER NOT NULL, dim INTEGER NOT NULL, data BLOB NOT NULL)")
    conn.executemany("INSERT INTO tokens VALUES (?, ?, ?, ?, ?)", [
        (cid, did, len(m), 16, m.astype(np.float16).tobytes()) for cid, did, m in rows])
    conn.commit()
    conn.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # migrated, nothing to re-encode
        with Trawl.open(idx, pipeline=mv, host=host) as t:
            assert t.pipeline.tokens is not None and t.pipeline.tokens.count() == len(rows)
            assert t.search("theta flutter", top_k=1)[0].doc_id == "d7"
    assert not (idx / "mv" / "tokens.sqlite").exists()


def test_store_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    """Token rows spell out the documents: the folder is 0700, every file 0600."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        store = TokenStore(tmp_path / "tokens")
        sets = _sets(np.random.default_rng(1), 6)
        store.put([f"d{i}#0" for i in range(6)], [f"d{i}" for i in range(6)], sets)
        store.delete_docs(["d1"])
        store.compact()
        store.close()
    finally:
        os.umask(old)
    folder = tmp_path / "tokens"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.iterdir()]}
    assert modes.pop("tokens") == 0o700
    assert modes and set(modes.values()) == {0o600}, modes
