"""The conformance test mixins (see ``trawl.testing``)."""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from ..chunking import MARKS, PAGE_OFFSETS, SECTIONS, chunk_document
from ..components import (
    ComponentContext,
    Encoder,
    Index,
    IndexQuery,
    MultiVectorTransform,
    Reader,
    Reranker,
    SourceFile,
    word_spans,
)
from ..errors import InputError, TrawlError, UnreadableFileError
from ..filters import matches, parse_filter
from ..ingest.readers import read_with
from ..models import Chunk, Document, Hit, SourceScore
from ..validation import normalize_metadata

_WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron "
          "pi rho sigma tau upsilon phi chi psi omega").split()


def sample_chunks(n: int = 40, seed: int = 0) -> list[Chunk]:
    """Deterministic chunks with varied metadata (str, int, list, missing) for filter tests."""
    rng = np.random.default_rng(seed)
    chunks = []
    for i in range(n):
        words = rng.choice(_WORDS, size=int(rng.integers(3, 12)))
        meta: dict[str, Any] = {"lang": ["en", "de", "fr"][i % 3], "year": 2000 + i % 7,
                                "tags": [str(t) for t in rng.choice(["a", "b", "c"], size=2)]}
        if i % 5 == 0:
            meta.pop("lang")
        doc = f"doc{i // 2}"
        chunks.append(Chunk(id=f"{doc}#{i % 2}", doc_id=doc, text=" ".join(words),
                            index=i % 2, metadata=meta))
    return chunks


def _vectors(chunks: list[Chunk], dim: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(len(chunks), dim)).astype(np.float32)
    out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


FILTER_CASES: list[Any] = [
    {"lang": "en"},
    {"field": "year", "op": ">=", "value": 2003},
    {"and": [{"lang": "de"}, {"field": "year", "op": "<", "value": 2004}]},
    {"or": [{"lang": "fr"}, {"field": "year", "op": "==", "value": 2001}]},
    {"not": {"lang": "en"}},
    {"field": "lang", "op": "in", "value": ["en", "fr"]},
    {"field": "tags", "op": "==", "value": "a"},
]


#: Filters naming a field that no chunk of ``sample_chunks`` has.
MISSING_FIELD_CASES: list[Any] = [
    {"tenant": "acme"},
    {"field": "tenant", "op": "in", "value": ["acme", "globex"]},
    {"field": "tenant", "op": ">=", "value": 3},
    {"field": "tenant", "op": "!=", "value": "acme"},
    {"not": {"tenant": "acme"}},
    {"or": [{"lang": "en"}, {"tenant": "acme"}]},
    {"and": [{"lang": "en"}, {"field": "tenant", "op": "not in", "value": ["acme"]}]},
]


class IndexContract:
    """Behaviour every ``Index`` must show. Provide a ``make_index`` fixture:
    ``make_index(dim=8, metric="cosine", storage=True) -> Index`` (a fresh index; with
    ``storage=True`` it persists under a folder that a second call reopens)."""

    dim = 8

    @pytest.fixture
    def make_index(self) -> Callable[..., Index]:
        raise NotImplementedError("subclass IndexContract and provide a make_index fixture")

    def _fill(self, index: Index, chunks: list[Chunk]) -> np.ndarray | None:
        if index.input == "text":
            index.upsert(chunks)
            return None
        vecs = _vectors(chunks, self.dim)
        index.upsert(chunks, vecs)
        return vecs

    def _query(self, index: Index, chunk: Chunk, vecs: np.ndarray | None, i: int) -> IndexQuery:
        return IndexQuery(text=chunk.text, vector=None if vecs is None else vecs[i])

    def test_empty_index(self, make_index: Callable[..., Index]) -> None:
        index = make_index(dim=self.dim)
        assert index.count() == 0
        assert index.doc_ids() == set()
        q = IndexQuery(text="alpha", vector=np.ones(self.dim, dtype=np.float32))
        assert index.search(q, 5) == []
        index.close()

    def test_upsert_count_and_self_retrieval(self, make_index: Callable[..., Index]) -> None:
        index = make_index(dim=self.dim)
        chunks = sample_chunks()
        vecs = self._fill(index, chunks)
        assert index.count() == len(chunks)
        assert index.doc_ids() == {c.doc_id for c in chunks}
        hits = index.search(self._query(index, chunks[3], vecs, 3), 5)
        assert hits and hits[0].chunk_id == chunks[3].id
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert all(a.score >= b.score for a, b in itertools.pairwise(hits))
        assert hits[0].text == chunks[3].text and hits[0].doc_id == chunks[3].doc_id
        index.close()

    def test_upsert_is_idempotent(self, make_index: Callable[..., Index]) -> None:
        index = make_index(dim=self.dim)
        chunks = sample_chunks(10)
        self._fill(index, chunks)
        self._fill(index, chunks)
        assert index.count() == 10
        index.close()

    def test_delete_removes_every_chunk_of_a_document(
            self, make_index: Callable[..., Index]) -> None:
        index = make_index(dim=self.dim)
        chunks = sample_chunks()
        vecs = self._fill(index, chunks)
        removed = index.delete(["doc1"])
        assert removed == 2
        assert "doc1" not in index.doc_ids()
        assert index.count() == len(chunks) - 2
        hits = index.search(self._query(index, chunks[2], vecs, 2), len(chunks))
        assert all(h.doc_id != "doc1" for h in hits)
        assert index.delete(["no-such-doc"]) == 0
        index.close()

    @pytest.mark.parametrize("raw_filter", FILTER_CASES)
    def test_filters_applied_inside_search(self, make_index: Callable[..., Index],
                                           raw_filter: Any) -> None:
        index = make_index(dim=self.dim)
        chunks = sample_chunks()
        vecs = self._fill(index, chunks)
        f = parse_filter(raw_filter)
        allowed = {c.id for c in chunks if matches(f, c.metadata)}
        # top_k smaller than the collection: a post-filtering index would return fewer
        k = min(5, len(allowed))
        q = self._query(index, chunks[0], vecs, 0)
        hits = index.search(q, k, f)
        assert {h.chunk_id for h in hits} <= allowed
        if index.input == "dense":
            assert len(hits) == k
        index.close()

    @pytest.mark.parametrize("raw_filter", MISSING_FIELD_CASES)
    def test_filter_on_a_field_no_chunk_has(self, make_index: Callable[..., Index],
                                            raw_filter: Any) -> None:
        """Qdrant's semantics on every index: a condition on a field that no chunk has is
        false (``!=``/``not in`` true), never an error, so a tenant filter behaves the
        same whichever index a pipeline uses."""
        index = make_index(dim=self.dim)
        chunks = sample_chunks()
        vecs = self._fill(index, chunks)
        f = parse_filter(raw_filter)
        allowed = {c.id for c in chunks if matches(f, c.metadata)}
        hits = index.search(self._query(index, chunks[0], vecs, 0), len(chunks), f)
        assert {h.chunk_id for h in hits} <= allowed
        if not allowed:
            assert hits == []
        elif index.input == "dense":
            assert len(hits) == len(allowed)
        index.close()

    def test_update_metadata_in_place(self, make_index: Callable[..., Index]) -> None:
        """``update_metadata`` changes what filters see and what hits carry, not the
        vectors or texts (indexes that cannot do it in place are skipped)."""
        index = make_index(dim=self.dim)
        chunks = sample_chunks()
        vecs = self._fill(index, chunks)
        q = self._query(index, chunks[2], vecs, 2)
        before = [(h.chunk_id, round(h.score, 5)) for h in index.search(q, 5)]
        changed = [c.model_copy(update={"metadata": {**c.metadata, "lang": "xx", "v": 2}})
                   for c in chunks if c.doc_id == "doc1"]
        try:
            index.update_metadata(changed)
        except NotImplementedError:
            index.close()
            pytest.skip("index does not update metadata in place")
        assert index.count() == len(chunks)
        hits = index.search(q, len(chunks), parse_filter({"lang": "xx"}))
        assert {h.chunk_id for h in hits} == {c.id for c in changed}
        texts = {c.id: c.text for c in chunks}
        assert all(h.metadata["v"] == 2 and h.text == texts[h.chunk_id] for h in hits)
        assert [(h.chunk_id, round(h.score, 5)) for h in index.search(q, 5)] == before
        index.close()

    def test_top_k_must_be_positive(self, make_index: Callable[..., Index]) -> None:
        index = make_index(dim=self.dim)
        self._fill(index, sample_chunks(4))
        with pytest.raises(InputError):
            index.search(IndexQuery(text="alpha", vector=np.ones(self.dim, np.float32)), 0)
        index.close()

    def test_persists_across_reopen(self, make_index: Callable[..., Index]) -> None:
        index = make_index(dim=self.dim, storage=True)
        if index.context.storage_dir is None:
            pytest.skip("index has no storage")
        chunks = sample_chunks(12)
        vecs = self._fill(index, chunks)
        before = index.search(self._query(index, chunks[5], vecs, 5), 3)
        index.close()
        again = make_index(dim=self.dim, storage=True)
        assert again.count() == 12
        after = again.search(self._query(again, chunks[5], vecs, 5), 3)
        assert [h.chunk_id for h in after] == [h.chunk_id for h in before]
        again.close()

    def test_storage_is_private(self, make_index: Callable[..., Index]) -> None:
        """Index files hold document text: folders 0700 and files 0600, whatever the umask
        (use ``trawl.storage.atomic_write_bytes``/``private_dir``/``secure_tree``)."""
        old_umask = os.umask(0o022)
        try:
            index = make_index(dim=self.dim, storage=True)
            folder = index.context.storage_dir
            if folder is None:
                index.close()
                pytest.skip("index has no storage")
            self._fill(index, sample_chunks(12))
            index.delete(["doc1"])
            index.close()
        finally:
            os.umask(old_umask)
        wrong = []
        for p in [folder, *folder.rglob("*")] if folder.exists() else []:
            if p.is_symlink():
                continue
            mode = stat.S_IMODE(p.stat().st_mode)
            want = 0o700 if p.is_dir() else 0o600
            if mode != want:
                wrong.append(f"{p.relative_to(folder.parent)} is {mode:o}, want {want:o}")
        assert not wrong, f"index {index.name!r} storage is not private: {wrong}"

    def test_matches_exact_reference(self, make_index: Callable[..., Index]) -> None:
        """Dense indexes return the same top-k as brute force (ties aside)."""
        index = make_index(dim=self.dim)
        if index.input != "dense":
            pytest.skip("lexical index")
        from ..builtin import ExactIndex

        ref = ExactIndex(ExactIndex.Config(), ComponentContext(
            name=index.name, dim=self.dim, metric=index.context.metric))
        chunks = sample_chunks()
        vecs = self._fill(index, chunks)
        ref.upsert(chunks, vecs)
        rng = np.random.default_rng(7)
        for _ in range(5):
            q = rng.normal(size=self.dim).astype(np.float32)
            got = [h.chunk_id for h in index.search(IndexQuery(text="", vector=q), 5)]
            want = [h.chunk_id for h in ref.search(IndexQuery(text="", vector=q), 5)]
            assert got == want
        index.close()


class EncoderContract:
    """Provide an ``encoder`` fixture returning a ready ``Encoder``."""

    @pytest.fixture
    def encoder(self) -> Encoder:
        raise NotImplementedError("subclass EncoderContract and provide an encoder fixture")

    def test_shapes_and_dtype(self, encoder: Encoder) -> None:
        texts = ["a short text", "another, somewhat longer text about retrieval"]
        out = encoder.encode_documents(texts)
        q = encoder.encode_queries(["a query"])
        if encoder.kind == "dense":
            assert isinstance(out, np.ndarray) and out.dtype == np.float32
            assert out.shape == (2, encoder.dim)
            assert q.shape == (1, encoder.dim)
            assert np.isfinite(out).all()
        else:
            assert len(out) == 2 and len(q) == 1
            for m in (*out, *q):
                assert m.dtype == np.float32 and m.ndim == 2 and m.shape[1] == encoder.dim
                assert len(m) > 0

    def test_vectors_are_finite_nonzero_and_dim_wide(self, encoder: Encoder) -> None:
        """Zero or NaN vectors poison cosine scores and indexes silently; a vector of the
        wrong width fails only at upsert, far from the encoder. Both sides are checked."""
        texts = ["a short text", "another, somewhat longer text about retrieval " * 20]
        for side, out in (("encode_documents", encoder.encode_documents(texts)),
                          ("encode_queries", encoder.encode_queries(texts))):
            assert len(out) == len(texts), f"{side}: {len(out)} outputs for {len(texts)} texts"
            mats = [np.asarray(out, dtype=np.float64)] if encoder.kind == "dense" else [
                np.asarray(m, dtype=np.float64) for m in out]
            for m in mats:
                assert m.ndim == 2 and m.shape[1] == encoder.dim, (
                    f"{side}: shape {m.shape}, encoder.dim is {encoder.dim}")
                assert np.isfinite(m).all(), f"{side}: NaN or infinite values"
                norms = np.linalg.norm(m, axis=1)
                assert (norms > 1e-6).all(), f"{side}: zero vectors"

    def test_deterministic(self, encoder: Encoder) -> None:
        a = encoder.encode_documents(["the same text"])
        b = encoder.encode_documents(["the same text"])
        if encoder.kind == "dense":
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)
        else:
            np.testing.assert_allclose(a[0], b[0], rtol=0, atol=1e-6)

    def test_batch_independent(self, encoder: Encoder) -> None:
        texts = ["short", "a much longer text " * 10, "medium length text here"]
        together = encoder.encode_documents(texts)
        alone = [encoder.encode_documents([t]) for t in texts]
        for i in range(len(texts)):
            x = together[i]
            y = alone[i][0]
            np.testing.assert_allclose(x, y, atol=1e-4)

    def test_empty_input_list(self, encoder: Encoder) -> None:
        out = encoder.encode_documents([])
        assert len(out) == 0

    def test_token_spans_are_valid(self, encoder: Encoder) -> None:
        text = "Retrieval-augmented generation, über alles!"
        spans = encoder.token_spans(text)
        assert spans and all(0 <= s < e <= len(text) for s, e in spans)
        assert encoder.count_tokens(text) == len(spans)


class RerankerContract:
    """Provide a ``reranker`` fixture returning a ready ``Reranker``."""

    @pytest.fixture
    def reranker(self) -> Reranker:
        raise NotImplementedError("subclass RerankerContract and provide a reranker fixture")

    def _hits(self) -> list[Hit]:
        texts = ["cats sit on mats", "dogs bark at night", "the stock market fell",
                 "a cat is a small feline", "weather forecast for tomorrow"]
        return [Hit(doc_id=f"d{i}", chunk_id=f"d{i}#0", score=1.0 / (i + 1), rank=i + 1, text=t,
                    scores_by_source={"first": SourceScore(score=1.0 / (i + 1), rank=i + 1)})
                for i, t in enumerate(texts)]

    def test_returns_subset_reranked(self, reranker: Reranker) -> None:
        hits = self._hits()
        out = reranker.rerank("cat", hits, top_k=3)
        assert len(out) == 3
        assert {h.chunk_id for h in out} <= {h.chunk_id for h in hits}
        assert [h.rank for h in out] == [1, 2, 3]
        assert all(a.score >= b.score for a, b in itertools.pairwise(out))
        assert all("first" in h.scores_by_source for h in out)

    def test_each_candidate_once_and_only_candidates(self, reranker: Reranker) -> None:
        """Without ``top_k`` a reranker returns a permutation of its input: no hit twice, no
        hit it was not given, each hit's document, text and metadata unchanged."""
        hits = self._hits()
        given = {h.chunk_id: h for h in hits}
        out = reranker.rerank("cat", hits)
        ids = [h.chunk_id for h in out]
        assert len(ids) == len(set(ids)), f"duplicate hits: {ids}"
        assert set(ids) <= set(given), f"hits that were not candidates: {set(ids) - set(given)}"
        assert len(out) == len(hits), f"{len(out)} hits back from {len(hits)} without top_k"
        for h in out:
            src = given[h.chunk_id]
            assert (h.doc_id, h.text, h.metadata) == (src.doc_id, src.text, src.metadata)
            assert np.isfinite(h.score)
        assert [h.rank for h in out] == list(range(1, len(out) + 1))

    def test_does_not_mutate_input(self, reranker: Reranker) -> None:
        hits = self._hits()
        snapshot = [h.model_dump() for h in hits]
        reranker.rerank("cat", hits)
        assert [h.model_dump() for h in hits] == snapshot

    def test_empty(self, reranker: Reranker) -> None:
        assert reranker.rerank("anything", []) == []


class MultiVectorTransformContract:
    """Provide a ``transform`` fixture returning a ``MultiVectorTransform`` for ``token_dim``."""

    token_dim = 16

    @pytest.fixture
    def transform(self) -> MultiVectorTransform:
        raise NotImplementedError("subclass and provide a transform fixture")

    def _sets(self, n: int, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        out = []
        for _ in range(n):
            m = rng.normal(size=(int(rng.integers(3, 20)), self.token_dim)).astype(np.float32)
            out.append(m / np.linalg.norm(m, axis=1, keepdims=True))
        return out

    def test_shapes(self, transform: MultiVectorTransform) -> None:
        d = transform.encode_document_set(self._sets(5))
        q = transform.encode_query_set(self._sets(3, seed=1))
        assert d.shape == (5, transform.dim) and q.shape == (3, transform.dim)
        assert d.dtype == np.float32 and q.dtype == np.float32

    def test_deterministic(self, transform: MultiVectorTransform) -> None:
        sets = self._sets(4)
        np.testing.assert_array_equal(transform.encode_document_set(sets),
                                      transform.encode_document_set(sets))

    def test_state_is_json(self, transform: MultiVectorTransform) -> None:
        import json

        json.dumps(transform.state())

    def test_rejects_wrong_token_dim(self, transform: MultiVectorTransform) -> None:
        bad = [np.ones((3, self.token_dim + 1), dtype=np.float32)]
        with pytest.raises(TrawlError):
            transform.encode_document_set(bad)


class ReaderContract:
    """Behaviour every ``Reader`` must show. Provide two fixtures: ``reader`` (an instance)
    and ``sample_files``: ``[(file name, bytes), ...]`` of good files it claims, made with
    the format's real library. ``bad_files`` defaults to binary garbage under each
    sample's name; add truncated or corrupt files of your format to it."""

    @pytest.fixture
    def reader(self) -> Reader:
        raise NotImplementedError("subclass ReaderContract and provide a reader fixture")

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        raise NotImplementedError("subclass ReaderContract and provide sample_files")

    @pytest.fixture
    def bad_files(self, sample_files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
        garbage = bytes(range(256)) * 8 + b"\x00\xff\xfe" * 100
        return [(f"garbage-{name}", garbage) for name, _ in sample_files[:1]]

    @staticmethod
    def source(name: str, data: bytes) -> SourceFile:
        return SourceFile(path=f"/data/folder/{name}", data=data, doc_id=f"folder/{name}")

    def _read_all(self, reader: Reader, files: list[tuple[str, bytes]]) -> list[Document]:
        docs: list[Document] = []
        for name, data in files:
            out = read_with(reader, self.source(name, data))
            assert out.documents, f"{reader.name}: no documents from {name}"
            assert len(out.weights) == len(out.documents)
            docs.extend(out.documents)
        return docs

    def test_claims_its_samples(self, reader: Reader,
                                sample_files: list[tuple[str, bytes]]) -> None:
        for name, _ in sample_files:
            assert type(reader).claim(name) > 0 or type(reader).priority < 0, (
                f"{reader.name} does not claim {name}")

    def test_reads_samples_into_documents(self, reader: Reader,
                                          sample_files: list[tuple[str, bytes]]) -> None:
        for name, data in sample_files:
            src = self.source(name, data)
            out = read_with(reader, src)
            ids = [d.id for d in out.documents]
            assert len(ids) == len(set(ids)), f"{reader.name}: repeated ids from {name}"
            for doc in out.documents:
                assert doc.text.strip(), f"{reader.name}: empty text from {name}"
                normalize_metadata(doc.id, doc.metadata)  # JSON values only
                assert doc.metadata.get("path") == src.path
            again = read_with(reader, src)
            assert [(d.id, d.text, d.metadata) for d in again.documents] == [
                (d.id, d.text, d.metadata) for d in out.documents], "reading is not repeatable"

    def test_offsets_point_into_the_text(self, reader: Reader,
                                         sample_files: list[tuple[str, bytes]]) -> None:
        for doc in self._read_all(reader, sample_files):
            n = len(doc.text)
            meta = doc.metadata
            pages = meta.get(PAGE_OFFSETS, [])
            assert all(isinstance(p, int) and 0 <= p <= n for p in pages)
            assert pages == sorted(pages)
            for sec in meta.get(SECTIONS, []):
                assert isinstance(sec["start"], int) and isinstance(sec["end"], int)
                assert 0 <= sec["start"] < sec["end"] <= n, f"section {sec} outside the text"
            for name, points in (meta.get(MARKS) or {}).items():
                offsets = [p[0] for p in points]
                assert offsets == sorted(offsets), f"marks {name!r} out of order"
                assert all(0 <= o < max(n, 1) for o in offsets), f"mark {name!r} outside"
            chunks = chunk_document(doc, word_spans, 24, 4)
            assert chunks[0].start == 0 and chunks[-1].end == n
            for prev, chunk in itertools.pairwise(chunks):
                assert chunk.start <= prev.end
            for chunk in chunks:
                assert chunk.text == doc.text[chunk.start:chunk.end]
                assert not any(k in chunk.metadata for k in (SECTIONS, MARKS, PAGE_OFFSETS))

    def test_bad_bytes_raise_a_typed_error_naming_the_file(
            self, reader: Reader, bad_files: list[tuple[str, bytes]]) -> None:
        for name, data in bad_files:
            src = self.source(name, data)
            with pytest.raises(UnreadableFileError) as raw:
                reader.read(src)  # the reader's own error, not a library's
            assert raw.value.reason
            with pytest.raises(UnreadableFileError) as named:
                read_with(reader, src)
            assert src.path in str(named.value)

    def test_leaves_no_open_handle(self, reader: Reader, sample_files: list[tuple[str, bytes]],
                                   bad_files: list[tuple[str, bytes]]) -> None:
        import gc
        import warnings

        fd_dir = "/proc/self/fd"
        if not os.path.isdir(fd_dir):
            pytest.skip("needs /proc to count open files")

        def open_files() -> set[str]:
            # files only: sockets, pipes and event fds come and go with other threads of
            # the test process (a server, a watcher), which would make a plain count flaky
            targets = set()
            for fd in os.listdir(fd_dir):
                try:
                    target = os.readlink(os.path.join(fd_dir, fd))
                except OSError:
                    continue  # closed while listing
                if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
                    targets.add(target)
            return targets

        gc.collect()
        before = open_files()
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            for name, data in [*sample_files, *bad_files]:
                try:
                    read_with(reader, self.source(name, data))
                except UnreadableFileError:
                    pass
            gc.collect()
        left = open_files() - before
        assert not left, f"{reader.name} left files open: {sorted(left)}"
