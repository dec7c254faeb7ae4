"""The ``bm25`` index: rank-bm25's BM25Okapi scores from a sparse matrix.

Scores are exactly ``rank_bm25.BM25Okapi(corpus, k1, b, epsilon).get_scores(query)``
over the live chunks (tests check it to 1e-6), computed the fast way:

* per chunk we keep term frequencies (CSR rows: term ids + counts) and its length;
* at the first search after a change, the global statistics (N, avgdl, df → IDF with
  rank-bm25's ``epsilon * average_idf`` floor for negative IDF) are recomputed and every
  stored (term, chunk) pair gets its final weight
  ``idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` in scipy CSC columns
  (one per term). The CSC layout of the rows present at the last full build (the base)
  is kept: after a small write the weights are recomputed elementwise over it and only the
  appended rows (the tail) get a new small CSC matrix; a tail over 25% of the base's
  postings is merged into it;
* a query adds the columns of its terms (a term repeated in the query counts that many
  times, as in rank-bm25), masks deleted rows and the filter, and picks the top k with
  ``argpartition``. Only chunks containing at least one query term are returned.
* optional pseudo-relevance feedback (RM3, ``feedback_docs > 0``): the query is scored,
  its top chunks (within the filter) lend their most likely terms, and the expanded,
  weighted query is scored again. Off by default: it lifts long descriptive queries
  (Cranfield) and hurts short precise ones (SciFact claims); see the config fields.

Upserts and deletes touch only the affected rows plus one delta file on disk; the
weights are rebuilt lazily (its cost is measured in ``benchmarks/bm25.py``).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, field_validator
from scipy import sparse

from trawl.components import (
    QUERY_TIME,
    ComponentConfig,
    ComponentContext,
    FloatArray,
    Index,
    IndexQuery,
)
from trawl.errors import IndexCorruptError, InputError
from trawl.filters import Filter
from trawl.models import Chunk, Hit
from trawl.storage import private_dir

from .analysis import Analyzer, learn_word_ids
from .filtering import FilterColumns
from .rows import RowMetadata, Rows
from .store import PostingsCheck, Snapshot, Store

IntArray = npt.NDArray[np.int32]
_WORD_CACHE = 500_000  # distinct words remembered by ``_frequencies`` (bounded)
_ANALYZE_BLOCK = 1000  # chunks whose words exist at once while counting (bounded heap)


#: deltas ``close`` folds into the snapshot at most, whatever the index size: their replay
#: on the next open stays ~0.35 s (see ``BM25Index.close``)
_CLOSE_FOLD_CHUNKS = 5000


class BM25Config(ComponentConfig):
    """BM25Okapi parameters (rank-bm25's defaults) and how text becomes terms."""

    k1: float = Field(1.5, ge=0, description=(
        "term-frequency saturation: 0 ignores repeats, larger lets them count longer "
        "(rank-bm25 default 1.5)"))
    b: float = Field(0.75, ge=0, le=1, description=(
        "length normalisation: 0 none, 1 full (rank-bm25 default 0.75)"))
    epsilon: float = Field(0.25, ge=0, description=(
        "terms in more than half the chunks have negative Okapi IDF; they get "
        "epsilon * average IDF instead (rank-bm25 default 0.25)"))
    stemmer: str | None = Field("english", description=(
        "Snowball language for PyStemmer ('english', 'german', ...); null: no stemming"))
    stopwords: Literal["english", "none"] | list[str] | None = Field("english", description=(
        "'english' (Lucene's 33-word list), 'none'/null, or your own list of words"))
    lowercase: bool = Field(True, description="lowercase text and queries before splitting")
    min_token_length: int = Field(1, ge=1, description="drop shorter words (in characters)")
    fields: list[str] = Field(default_factory=lambda: ["title", "text"], description=(
        "what is indexed, in order: 'text' is the chunk text, any other name a metadata "
        "field (e.g. 'title'), skipped when missing or when the text already starts with it"))
    field_weights: dict[str, int] = Field(default_factory=lambda: {"title": 2}, description=(
        "how many times each field's words count (a whole-number BM25F-style boost); fields "
        "not named count once. The title counts twice by default: measured on Cranfield "
        "(+0.010 nDCG@10) and SciFact (benchmarks/quality.py, docs/design/speed.md)"))
    idf: Literal["okapi", "lucene"] = Field("okapi", description=(
        "'okapi': rank-bm25's log((N-df+0.5)/(df+0.5)) with the epsilon floor; 'lucene': "
        "log(1+(N-df+0.5)/(df+0.5)), never negative (Lucene, bm25s' default)"))
    feedback_docs: int = Field(0, ge=0, le=1000, description=(
        "pseudo-relevance feedback (RM3, Lavrenko & Croft 2001; Abdul-Jaleel et al. 2004): "
        "expand each query with terms from its top N chunks, 0 = off. Helps long, "
        "descriptive queries (Cranfield hybrid nDCG@10 +0.01), hurts short precise ones "
        "(SciFact bm25 -0.04): measured in docs/design/speed.md. Anserini uses 10"),
        json_schema_extra=QUERY_TIME)
    feedback_terms: int = Field(10, ge=1, le=1000, description=(
        "RM3: how many expansion terms (the most likely under the feedback chunks)"),
        json_schema_extra=QUERY_TIME)
    feedback_query_weight: float = Field(0.5, ge=0, le=1, description=(
        "RM3: weight of the original query against the expansion terms (Anserini's 0.5)"),
        json_schema_extra=QUERY_TIME)
    compact_ratio: float = Field(0.5, gt=0, description=(
        "write a new snapshot when the delta files hold this fraction of the snapshot's chunks"))
    compact_min_chunks: int = Field(2000, ge=0, description=(
        "... but not before the deltas hold this many chunks"))
    max_delta_files: int = Field(2000, ge=1, description="snapshot when this many deltas exist")

    @field_validator("fields")
    @classmethod
    def _fields(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one field, e.g. ['title', 'text']")
        return v

    @field_validator("field_weights")
    @classmethod
    def _field_weights(cls, v: dict[str, int]) -> dict[str, int]:
        bad = {k: w for k, w in v.items() if not 1 <= w <= 16}
        if bad:
            raise ValueError(f"field weights are whole numbers from 1 to 16, got {bad}")
        return v


def chunk_words(an: Analyzer, chunk: Chunk, fields: Sequence[str],
                boost: Mapping[str, int]) -> list[str]:
    """The words BM25 indexes for a chunk: each field's words, repeated by its weight
    (also used by the ``bm25-sparse`` encoder, so both index the same terms)."""
    words: list[str] = []
    text_words: list[str] | None = None
    for name in fields:
        if name == "text":
            text_words = an.words(chunk.text) if text_words is None else text_words
            words.extend(text_words * boost.get("text", 1))
            continue
        value = chunk.metadata.get(name)
        if value is None or value == "":
            continue
        field_words = an.words(value if isinstance(value, str) else str(value))
        if not field_words:
            continue
        times = boost.get(name, 1)
        if "text" in fields:
            text_words = an.words(chunk.text) if text_words is None else text_words
            if text_words[:len(field_words)] == field_words:
                # the text already starts with it (Cranfield texts, BEIR "title text"):
                # those words count once already
                times -= 1
        words.extend(field_words * times)
    return words


class _Base:
    """Term frequencies of rows ``[0, rows_end)`` in CSC order, fixed until the next merge.

    Weights depend on N, avgdl and df, which every write changes, but this layout does
    not: a rebuild after a small write recomputes the weights elementwise over it (no
    sort) and builds a CSC matrix only for the rows appended since (the tail).
    """

    def __init__(self, indptr: Any, rows: Any, tf: Any, n_terms: int, rows_end: int,
                 check: PostingsCheck | None = None) -> None:
        # may be read-only memory maps of a snapshot: never written in place
        self.check = check  # a mapped snapshot's postings are checked as they are read
        self.indptr = indptr
        self.rows = rows
        self.tf = tf  # int32: 4 bytes a posting (the weights are the float64 copy)
        self.n_terms = n_terms
        self.rows_end = rows_end
        self.nnz = len(self.rows)

    @classmethod
    def of(cls, csc: sparse.csc_matrix, rows_end: int) -> _Base:
        return cls(csc.indptr, csc.indices, csc.data, csc.shape[1], rows_end)

    def checked(self, start: int | None = None, stop: int | None = None) -> None:
        """Check postings ``[start, stop)`` (all when not given) before reading them."""
        if self.check is not None:
            if start is None or stop is None:
                self.check.all()
            else:
                self.check(start, stop)

    def cols(self, start: int, stop: int) -> Any:
        """The term id of postings ``[start, stop)`` (not kept: 4 bytes a posting)."""
        return _cols(self.indptr, start, stop)


def _cols(indptr: Any, start: int, stop: int) -> Any:
    """The column of each of postings ``[start, stop)`` of a CSC layout."""
    first = int(np.searchsorted(indptr, start, side="right")) - 1
    last = int(np.searchsorted(indptr, stop, side="left"))
    span = np.diff(np.clip(indptr[first:last + 1], start, stop))
    return np.repeat(np.arange(first, first + len(span), dtype=np.int32), span)


_MERGE_BLOCK = 1 << 20  # postings moved at a time while merging base and tail


def _merge_csc(segments: list[tuple[Any, Any, Any, int]], n_terms: int, alive: Any,
               drop_dead: bool) -> tuple[Any, Any, Any]:
    """One CSC (indptr, row indices, tf) from CSC segments of consecutive rows (each
    ``(indptr, rows, tf, first row)``): per column, each segment's postings in order.

    Postings are moved a block at a time into the two output arrays, so the peak is the
    output (8 bytes a posting) plus a block; going through CSR and back with scipy (as
    before) held about four copies at once (+32 bytes a posting). ``drop_dead`` leaves
    out deleted rows and renumbers the rest (a snapshot)."""
    new_row = np.cumsum(alive, dtype=np.int64) - 1 if drop_dead else None

    def kept(indptr: Any, rows: Any, first: int) -> Any:
        """Per column, how many of the segment's postings are written."""
        counts = np.zeros(n_terms, dtype=np.int64)
        if new_row is None:
            d = np.diff(indptr)
            counts[:len(d)] = d
            return counts
        for s in range(0, len(rows), _MERGE_BLOCK):
            e = min(s + _MERGE_BLOCK, len(rows))
            keep = alive[np.asarray(rows[s:e], dtype=np.int64) + first]
            counts += np.bincount(_cols(indptr, s, e)[keep], minlength=n_terms)
        return counts

    counts = [kept(indptr, rows, first) for indptr, rows, _, first in segments]
    out_indptr = np.zeros(n_terms + 1, dtype=np.int64)
    np.cumsum(np.sum(counts, axis=0), out=out_indptr[1:])
    out_rows = np.empty(int(out_indptr[-1]), dtype=np.int32)
    out_tf = np.empty(int(out_indptr[-1]), dtype=np.int32)
    before = np.zeros(n_terms, dtype=np.int64)  # postings of earlier segments, per column
    for (indptr, rows, tf, first), count in zip(segments, counts, strict=True):
        filled = np.zeros(n_terms, dtype=np.int64)
        for s in range(0, len(rows), _MERGE_BLOCK):
            e = min(s + _MERGE_BLOCK, len(rows))
            cols = _cols(indptr, s, e)
            block_rows = np.asarray(rows[s:e], dtype=np.int64) + first
            block_tf = tf[s:e]
            if new_row is not None:
                keep = alive[block_rows]
                cols, block_rows, block_tf = cols[keep], new_row[block_rows[keep]], block_tf[keep]
            rank = np.arange(len(cols)) - np.searchsorted(cols, cols, side="left")
            dest = out_indptr[cols] + before[cols] + filled[cols] + rank
            out_rows[dest] = block_rows
            out_tf[dest] = block_tf
            filled += np.bincount(cols, minlength=n_terms)
        before += count
    return out_indptr, out_rows, out_tf


_CACHED_POSTINGS = 1 << 22  # base weights kept between queries (32 MB of float64)
Segment = tuple[Any, Any, Any, int]  # CSC indptr, row indices, weights, number of terms


class _ColumnWeights:
    """The base segment's weights, computed for the column a query slices out.

    The same elementwise formula as a full rebuild, so scores are bit-identical; a query
    pays a few vector operations over its own columns instead of every open paying the
    whole index and keeping 8 bytes a posting in the heap. Computed columns are kept (up
    to ``_CACHED_POSTINGS`` postings, then the cache starts over): frequent query terms
    cost what they did with a full weight array."""

    def __init__(self, base: _Base, weights: Any, alive: Any) -> None:
        self._base = base
        self._weights = weights
        self._alive = alive  # per posting, None when no row is deleted
        self._cache: dict[int, Any] = {}
        self._cached = 0

    def __getitem__(self, span: slice) -> Any:
        start, stop = int(span.start), int(span.stop)
        w = self._cache.get(start)
        if w is not None and len(w) == stop - start:
            return w
        base = self._base
        base.checked(start, stop)
        w = self._weights(base.cols(start, stop), base.rows[start:stop], base.tf[start:stop])
        if self._alive is not None:
            w[~self._alive[start:stop]] = 0.0  # deleted rows stay in the layout, weight 0
        if self._cached + len(w) > _CACHED_POSTINGS:
            self._cache, self._cached = {}, 0
        w.flags.writeable = False  # shared between queries
        self._cache[start] = w
        self._cached += len(w)
        return w


class _Weights:
    """An immutable, searchable view of the index at one moment (rebuilt after changes)."""

    def __init__(self, segments: list[Segment], n_terms: int, rows: int, idf: Any,
                 average_idf: float, avgdl: float, build_ms: float) -> None:
        self.positive = (idf > 0).tolist()  # every weight of a term has its IDF's sign
        self.segments = segments
        self.n_terms = n_terms
        self.rows = rows
        self.idf = idf
        self.average_idf = average_idf
        self.avgdl = avgdl
        self.build_ms = build_ms


class BM25Index(Index):
    """Lexical index with rank-bm25 (BM25Okapi) semantics; see the module docstring."""

    input = "text"
    Config = BM25Config

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        cfg: BM25Config = self.config  # type: ignore[assignment]
        self.cfg = cfg
        stop = None if cfg.stopwords in (None, "none") else cfg.stopwords
        self.analyzer = Analyzer(lowercase=cfg.lowercase, stemmer=cfg.stemmer, stopwords=stop,
                                 min_token_length=cfg.min_token_length)
        self._lock = threading.RLock()
        self._reset_memory()
        self._store = Store(self.context.storage_dir) if self.context.storage_dir else None
        self._seq = 0
        self._base_seq = 0
        self._base_rows = 0
        self._delta_chunks = 0
        self._wrote = False  # this session wrote a delta (the folder is writable)
        self._batch_threads: dict[int, int] = {}  # thread id -> depth of its write_batch
        self._buffered: list[Chunk] = []  # their upserts, not yet in a delta file
        self._delta_files = 0
        self.last_rebuild_ms = 0.0
        if self._store is not None:
            self._load()

    @property
    def fingerprint(self) -> dict[str, Any]:
        out = {**self.analyzer.fingerprint, "fields": list(self.cfg.fields)}
        weights = {k: w for k, w in sorted(self.cfg.field_weights.items()) if w != 1}
        if weights:  # absent when every field counts once (indexes of earlier versions)
            out["field_weights"] = weights
        return out

    # -- in-memory state -----------------------------------------------------------------
    def _reset_memory(self) -> None:
        self._vocab: dict[str, int] = {}
        self._word_ids: dict[str, int] = {}  # word -> term id, -1: dropped (stopword)
        self._terms: list[str] = []
        self._rows = Rows()  # every row's chunk: the mapped snapshot's, then a list
        # term frequencies, appended per batch: [(nnz per row, term ids, tfs)]
        # ``None`` first: the base segment's rows, kept only in its CSC form (see _base_rows_csr)
        self._parts: list[tuple[IntArray, IntArray, IntArray] | None] = []
        self._doc_len = np.zeros(0, dtype=np.int32)
        self._weights: _Weights | None = None
        self._base: _Base | None = None  # while set, _parts[0] holds exactly its rows
        self._columns = FilterColumns()

    def _analyze(self, chunk: Chunk) -> list[str]:
        return self.analyzer.terms_of_words(chunk_words(self.analyzer, chunk, self.cfg.fields,
                                                        self.cfg.field_weights))

    def _words(self, chunk: Chunk) -> list[str]:
        """The chunk's words before stopwords and stemming (``_frequencies`` maps them)."""
        return chunk_words(self.analyzer, chunk, self.cfg.fields, self.cfg.field_weights)

    def _term_id(self, term: str) -> int:
        """The vocabulary id of ``term``, added at the end when new."""
        tid = self._vocab.get(term)
        if tid is None:
            tid = self._vocab[term] = len(self._terms)
            self._terms.append(term)
        return tid

    def _frequencies(self, word_lists: Sequence[list[str]]) -> tuple[IntArray, IntArray,
                                                                    IntArray, IntArray]:
        """Per-row (nnz, term ids, tfs) and lengths of rows given as words, growing the
        vocabulary. Each distinct word goes through the analyzer once (word → term id,
        cached), and the counting is one scipy COO → CSR conversion (it sums duplicates
        in linear time; ``np.unique`` sorted every token, ~4x slower at 100k documents)."""
        n = len(word_lists)
        flat = [w for words in word_lists for w in words]
        cache = self._word_ids
        learn_word_ids(cache, set(flat), self.analyzer.term, self._term_id, _WORD_CACHE)
        ids = np.fromiter(map(cache.__getitem__, flat), dtype=np.int32, count=len(flat))
        rows = np.repeat(np.arange(n, dtype=np.int32),
                         np.fromiter(map(len, word_lists), dtype=np.int64, count=n))
        kept = ids >= 0
        if not kept.all():
            rows, ids = rows[kept], ids[kept]
        lengths = np.bincount(rows, minlength=n).astype(np.int32)
        csr = sparse.csr_matrix((np.ones(len(ids), dtype=np.int32), (rows, ids)),
                                shape=(n, max(len(self._terms), 1)))
        csr.sum_duplicates()
        return (np.diff(csr.indptr).astype(np.int32), csr.indices.astype(np.int32, copy=False),
                csr.data.astype(np.int32, copy=False), lengths)

    def _count(self, chunks: Sequence[Chunk]) -> tuple[IntArray, IntArray, IntArray, IntArray]:
        """``_frequencies`` of chunks, ``_ANALYZE_BLOCK`` at a time: the words of a whole
        10k-chunk batch (~1.5M small strings) freed at once left that much heap behind
        (fragmented arenas), so only one block's words exist at a time. The analyzer runs
        outside the lock; only the word → term id mapping (which grows the vocabulary)
        takes it."""
        out = []
        for start in range(0, len(chunks), _ANALYZE_BLOCK):
            word_lists = [self._words(c) for c in chunks[start:start + _ANALYZE_BLOCK]]
            with self._lock:
                out.append(self._frequencies(word_lists))
            del word_lists
        if len(out) == 1:
            return out[0]
        if not out:
            empty = np.zeros(0, dtype=np.int32)
            return empty, empty, empty, empty
        nnz, tids, tfs, lengths = (np.concatenate([o[i] for o in out]) for i in range(4))
        return nnz, tids, tfs, lengths

    def _append(self, chunks: Sequence[Chunk],
                counted: tuple[IntArray, IntArray, IntArray, IntArray]) -> None:
        """Add rows (replacing chunks with the same id) with their ``_count``; memory only."""
        for old in self._rows.rows_of([chunk.id for chunk in chunks]):
            if old is not None:
                self._kill(old)
        nnz, tids, tfs, lengths = counted
        self._parts.append((nnz, tids, tfs))
        self._doc_len = np.concatenate([self._doc_len, lengths])
        self._rows.append(chunks)
        self._weights = None
        self._maybe_compact_rows()  # replaced chunks left tombstones

    def _maybe_compact_rows(self) -> None:
        if self._dead > 1000 and self._dead * 4 > len(self._rows):
            self._compact_rows()

    @property
    def _alive(self) -> npt.NDArray[np.bool_]:
        return self._rows.alive

    @property
    def _dead(self) -> int:
        return self._rows.dead

    def _kill(self, row: int) -> None:
        if self._rows.kill(row):
            self._weights = None

    def _remove_docs(self, doc_ids: Sequence[str]) -> int:
        removed = 0
        for doc_id in doc_ids:
            for row in self._rows.rows_of_doc(doc_id):
                self._kill(row)
                removed += 1
        self._maybe_compact_rows()
        return removed

    def _part(self, i: int) -> tuple[IntArray, IntArray, IntArray]:
        part = self._parts[i]
        if part is not None:
            return part
        base = self._base  # the rows the base segment holds, back in CSR form
        assert base is not None and i == 0
        base.checked()
        csr = sparse.csc_matrix((base.tf, base.rows, base.indptr),
                                shape=(base.rows_end, base.n_terms)).tocsr()
        return (np.diff(csr.indptr).astype(np.int32), csr.indices.astype(np.int32, copy=False),
                csr.data.astype(np.int32, copy=False))

    def _all_parts(self) -> tuple[IntArray, IntArray, IntArray]:
        """All rows' term frequencies as one (nnz, terms, tfs) triple (a new array)."""
        if not self._parts:
            return (np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int32),
                    np.zeros(0, dtype=np.int32))
        parts = [self._part(i) for i in range(len(self._parts))]
        if len(parts) == 1:
            return parts[0]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                np.concatenate([p[2] for p in parts]))

    def _snapshot(self) -> Snapshot:
        """Live rows only, renumbered in order (the on-disk form)."""
        base = self._base
        if self._parts == [None] and base is not None and not self._dead:
            # every row is in the base's CSC already: written as it is (no CSR round trip)
            base.checked()  # never carry a corrupt posting into a new snapshot
            indptr = base.indptr
            if len(indptr) < len(self._terms) + 1:  # terms counted after the last merge
                indptr = np.concatenate([indptr, np.full(len(self._terms) + 1 - len(indptr),
                                                         indptr[-1], dtype=indptr.dtype)])
            return Snapshot(vocab=list(self._terms), rows=self._rows.live,
                            doc_len=self._doc_len, csc=(indptr, base.rows, base.tf),
                            **self._snapshot_chunks())
        if self._parts and self._parts[0] is None and base is not None:
            return Snapshot(vocab=list(self._terms), rows=self._rows.live,
                            doc_len=self._doc_len[self._alive],
                            csc=self._base_and_tail(drop_dead=True),
                            **self._snapshot_chunks())
        nnz, tids, tfs = self._all_parts()
        alive = self._alive
        entry_alive = np.repeat(alive, nnz)
        return Snapshot(
            vocab=list(self._terms), rows=self._rows.live, **self._snapshot_chunks(),
            doc_len=self._doc_len[alive], nnz=nnz[alive], terms=tids[entry_alive],
            tfs=tfs[entry_alive])

    def _base_and_tail(self, drop_dead: bool) -> tuple[Any, Any, Any]:
        """The base's CSC and the tail's rows as one CSC, without a CSR round trip."""
        base = self._base
        assert base is not None and self._parts and self._parts[0] is None
        base.checked()  # never carry a corrupt posting into a new layout or snapshot
        n_terms = len(self._terms)
        segments = [(base.indptr, base.rows, base.tf, 0)]
        if len(self._parts) > 1:
            nnz_t, tids_t, tfs_t = (np.concatenate([self._part(j)[i]
                                                    for j in range(1, len(self._parts))])
                                    for i in range(3))
            indptr_t = np.zeros(len(nnz_t) + 1, dtype=np.int64)
            np.cumsum(nnz_t, out=indptr_t[1:])
            tail = sparse.csr_matrix((tfs_t, tids_t, indptr_t),
                                     shape=(len(nnz_t), n_terms)).tocsc()
            del nnz_t, tids_t, tfs_t, indptr_t
            tail.sort_indices()
            segments.append((tail.indptr, tail.indices, tail.data, base.rows_end))
        return _merge_csc(segments, n_terms, self._alive, drop_dead)

    def _snapshot_chunks(self) -> dict[str, Any]:
        """A snapshot's chunks: the live rows of the mapped base table (copied as bytes),
        then the live tail."""
        rows = self._rows
        if rows.table is None:
            return {"chunks": rows.tail_live()}
        return {"chunks": rows.tail_live(), "table": rows.table, "table_rows": rows.base_live()}

    def _compact_rows(self) -> None:
        """Drop deleted rows from memory (renumbers rows). The live chunks of a mapped
        snapshot are decoded into the heap until the next snapshot maps them again."""
        nnz, tids, tfs = self._all_parts()
        alive = self._alive
        entry_alive = np.repeat(alive, nnz)
        self._parts = [(nnz[alive], tids[entry_alive], tfs[entry_alive])]
        self._doc_len = self._doc_len[alive]
        self._rows = Rows(chunks=list(self._rows.live_chunks()))
        self._columns.reset()
        self._weights = None
        self._base = None

    # -- weights ---------------------------------------------------------------------------
    def _ensure_weights(self) -> _Weights:
        """Recompute N, avgdl, df, IDF and every posting's weight (lazily, after writes)."""
        if self._weights is not None:
            return self._weights
        t0 = time.perf_counter()
        cfg = self.cfg
        rows = len(self._rows)
        n_terms = len(self._terms)
        alive = self._alive
        base = self._base
        tail_nnz = sum(len(p[1]) for p in self._parts[1:] if p is not None)
        if base is not None and self._parts[0] is None and tail_nnz > 0.25 * max(base.nnz, 1):
            # the tail joins the base's CSC directly (no CSR round trip of the base)
            indptr_m, rows_m, tf_m = self._base_and_tail(drop_dead=False)
            base = self._base = _Base(indptr_m, rows_m, tf_m, n_terms, rows)
            del indptr_m, rows_m, tf_m
            self._parts = [None]
            tail = None
        elif base is None or tail_nnz > 0.25 * max(base.nnz, 1):
            # merge everything into one base segment: the rows' CSR turned into CSC by
            # scipy in O(postings), without a per-posting row array or a float copy
            nnz, tids, tfs = self._all_parts()
            self._parts = []
            indptr = np.zeros(rows + 1, dtype=np.int64)
            np.cumsum(nnz, out=indptr[1:])
            del nnz
            csc = sparse.csr_matrix((tfs, tids, indptr), shape=(rows, n_terms)).tocsc()
            del tids, tfs, indptr
            csc.sort_indices()
            base = self._base = _Base.of(csc, rows)
            del csc
            # the rows stay only in the base's CSC (8 bytes a posting, not 16)
            self._parts = [None]
            tail = None
        else:
            nnz_t, tids_t, tfs_t = (np.concatenate([self._part(j)[i]
                                                    for j in range(1, len(self._parts))])
                                    for i in range(3)) if len(self._parts) > 1 else (
                np.zeros(0, dtype=np.int32) for _ in range(3))
            row_t = base.rows_end + np.repeat(np.arange(rows - base.rows_end, dtype=np.int32),
                                              nnz_t)
            if self._dead:
                keep = alive[row_t]
                row_t, tids_t, tfs_t = row_t[keep], tids_t[keep], tfs_t[keep]
            tail = (row_t, tids_t, tfs_t)
        live_n = rows - self._dead
        if self._dead:
            base.checked()
        base_alive = alive[base.rows] if self._dead else None
        if base_alive is None:
            df = np.diff(base.indptr).astype(np.int64)
        else:  # live postings per column: differences of the running count at the bounds
            running = np.zeros(base.nnz + 1, dtype=np.int64)
            np.cumsum(base_alive, out=running[1:])
            df = running[base.indptr[1:]] - running[base.indptr[:-1]]
        if len(df) < n_terms:
            df = np.concatenate([df, np.zeros(n_terms - len(df), dtype=np.int64)])
        if tail is not None and len(tail[1]):
            df += np.bincount(tail[1], minlength=n_terms)
        total_len = float(self._doc_len[alive].sum(dtype=np.int64))
        avgdl = total_len / live_n if live_n else 0.0
        present = df > 0
        idf = np.zeros(n_terms, dtype=np.float64)
        d = df[present].astype(np.float64)
        if cfg.idf == "lucene":
            idf[present] = np.log1p((live_n - d + 0.5) / (d + 0.5))
        else:
            idf[present] = np.log(live_n - d + 0.5) - np.log(d + 0.5)
        average_idf = float(idf[present].sum() / present.sum()) if present.any() else 0.0
        idf[present & (idf < 0)] = cfg.epsilon * average_idf
        k1, b = cfg.k1, cfg.b
        # per row: k1 * (1 - b + b * dl / avgdl), the length part of the denominator
        norm = k1 * (1 - b + b * self._doc_len.astype(np.float64) / avgdl) if avgdl > 0 else None

        def weights(cols: Any, rows_of: Any, tf: Any, out: Any = None) -> Any:
            if norm is None:  # every live chunk is empty: nothing can match
                return np.zeros(len(cols))
            tf = tf.astype(np.float64)
            w = np.multiply(tf, k1 + 1, out=out)
            tf += norm[rows_of]
            w /= tf
            w *= idf[cols]
            return w

        # the base's weights are computed per column when a query reads it (no float64
        # copy of every posting in the heap; the postings may be a memory-mapped snapshot)
        w_base = _ColumnWeights(base, weights, base_alive)
        segments: list[Segment] = [(base.indptr, base.rows, w_base, base.n_terms)]
        if tail is not None and len(tail[0]):
            csc = sparse.csc_matrix((weights(tail[1], tail[0], tail[2]), (tail[0], tail[1])),
                                    shape=(rows, n_terms))
            csc.sort_indices()
            segments.append((csc.indptr, csc.indices, csc.data, n_terms))
        self._weights = _Weights(segments, n_terms, rows, idf, average_idf, avgdl,
                                 (time.perf_counter() - t0) * 1000)
        self.last_rebuild_ms = self._weights.build_ms
        return self._weights

    # -- persistence -------------------------------------------------------------------------
    def _load(self) -> None:
        store = self._store
        assert store is not None
        if not store.exists():
            return
        manifest = store.read_manifest()
        snap = store.read_base(manifest)
        same_analyzer = manifest.get("analyzer") == self.fingerprint
        if snap is not None and snap.rows:
            if same_analyzer:
                self._terms = list(snap.vocab)
                self._vocab = {t: i for i, t in enumerate(self._terms)}
                self._adopt(snap)
            else:  # tokenisation settings changed: re-analyse the stored texts
                chunks = list(snap.table if snap.table is not None else snap.chunks)
                self._append(chunks, self._count(chunks))
        self._base_seq = self._seq = int(manifest.get("base_seq", 0))
        self._base_rows = len(self._rows)
        for seq, path in store.deltas(self._base_seq):
            delta = store.read_delta(seq, path)
            try:
                if delta["op"] == "upsert":
                    chunks = [Chunk.model_validate(c) for c in delta["chunks"]]
                    self._append(chunks, self._count(chunks))
                    self._delta_chunks += len(chunks)
                else:
                    self._remove_docs([str(d) for d in delta["doc_ids"]])
            except (KeyError, TypeError, ValueError) as exc:
                raise IndexCorruptError(f"bm25 index file {path} is not a valid delta ({exc})"
                                        ) from exc
            self._seq = seq
            self._delta_files += 1
        if not same_analyzer and len(self._rows):
            self._compact()

    def _adopt(self, snap: Snapshot) -> None:
        """Make a snapshot (just read, or just written) the whole state: its vocabulary
        is ``self._terms`` already. A version-3 snapshot stays mapped: chunks, postings
        and doc lengths cost page cache, not heap."""
        if snap.table is not None:
            self._rows = Rows(snap.table)
        else:
            self._rows = Rows(chunks=list(snap.chunks))
        if snap.csc is not None:  # mapped: the base segment as it is on disk
            self._base = _Base(*snap.csc, n_terms=len(self._terms), rows_end=snap.rows,
                               check=snap.check)
            self._parts = [None]
        else:
            assert snap.nnz is not None and snap.terms is not None and snap.tfs is not None
            self._base = None
            self._parts = [(snap.nnz, snap.terms, snap.tfs)]
        self._doc_len = snap.doc_len
        self._columns.reset()
        self._weights = None

    def _persist(self, op: str, payload: dict[str, Any], n_chunks: int) -> None:
        if self._store is None:
            return
        if op == "upsert" and self._in_batch():  # written once, when the batch ends
            self._buffered.extend(payload["chunks"])
            self._delta_chunks += n_chunks
            self._wrote = True
            return
        self._flush_buffered()  # the log keeps the order of the writes
        self._write_delta(op, payload)
        self._delta_chunks += n_chunks

    def _write_delta(self, op: str, payload: dict[str, Any]) -> None:
        assert self._store is not None
        if not self._store.exists():
            private_dir(self._store.folder)
            self._store.write_manifest(0, self.fingerprint, None)
        self._store.write_delta(self._seq + 1, op, payload)
        self._seq += 1  # only once the file is durable: a failed write leaves no gap
        self._delta_files += 1
        self._wrote = True

    def _flush_buffered(self) -> None:
        """The upserts of a ``write_batch`` block so far, as one durable delta file."""
        if self._buffered:
            self._write_delta("upsert", {"chunks": self._buffered})
            self._buffered = []

    @contextmanager
    def write_batch(self) -> Iterator[None]:
        """Upserts inside the block go to one delta file (one fsync) when it ends, not one
        per call: core writes a large batch in 256-chunk slices and commits it only after
        the last, so a crash before the end loses nothing committed (core's repair removes
        the uncommitted batch from every index). The block's rows are searchable at once."""
        me = threading.get_ident()
        with self._lock:
            self._batch_threads[me] = self._batch_threads.get(me, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                depth = self._batch_threads.pop(me) - 1
                if depth:
                    self._batch_threads[me] = depth
                else:
                    self._flush_buffered()
                    self._maybe_compact()

    def _in_batch(self) -> bool:
        """Whether this thread is inside a ``write_batch`` block. Only its own writes are
        deferred: a write from another thread (a small add that core commits at once) is
        durable when it returns, and flushes the buffer first so the log keeps the order."""
        return threading.get_ident() in self._batch_threads

    def _maybe_compact(self) -> None:
        if (self._store is None or self._in_batch()  # a batch compacts once, at its end
                or (self._seq == self._base_seq and not self._buffered)):
            return
        cfg = self.cfg
        if (self._delta_chunks >= max(cfg.compact_min_chunks, cfg.compact_ratio * self._base_rows)
                or self._delta_files >= cfg.max_delta_files):
            self._compact()

    def _compact(self) -> None:
        """Write the live rows as the new snapshot (the log is folded into it)."""
        if self._store is None:
            return
        # never overwrite the snapshot the manifest points at
        seq = self._seq + 1 if self._seq == self._base_seq else self._seq
        written = self._store.write_base(seq, self._snapshot(), self.fingerprint)
        self._buffered = []  # the snapshot holds them
        self._base_seq = self._seq = seq
        # from now on the index reads the files it wrote, as a reopen would: the rows
        # renumbered without deleted ones, chunks and postings mapped, not in the heap
        self._adopt(written)
        self._base_rows = len(self._rows)
        self._delta_chunks = self._delta_files = 0

    def flush(self) -> None:
        """Fold the delta files into a new snapshot now (faster next open)."""
        with self._lock:
            self._flush_buffered()
            if self._store is not None and self._seq != self._base_seq:
                self._compact()

    # -- the Index contract ----------------------------------------------------------------
    def upsert(self, chunks: Sequence[Chunk], vectors: FloatArray | None = None) -> int:
        if not chunks:
            return 0
        latest: dict[str, Chunk] = {}
        for c in chunks:
            if not isinstance(c, Chunk):
                raise InputError(f"index {self.name!r}: upsert takes Chunk objects, got "
                                 f"{type(c).__name__}")
            latest.pop(c.id, None)
            latest[c.id] = c  # the last one of an id wins, at its last position
        batch = list(latest.values())
        counted = self._count(batch)
        payload = {"chunks": batch} if self._store is not None else None
        with self._lock:
            if payload is not None:
                self._persist("upsert", payload, len(batch))
            self._append(batch, counted)
            self._maybe_compact()
        return len(chunks)

    def delete(self, doc_ids: Sequence[str]) -> int:
        if isinstance(doc_ids, str):
            doc_ids = [doc_ids]
        with self._lock:
            rows = {d: len(self._rows.rows_of_doc(d)) for d in dict.fromkeys(doc_ids)}
            present = [d for d, n in rows.items() if n]
            if not present:
                return 0
            self._persist("delete", {"doc_ids": present}, sum(rows[d] for d in present))
            removed = self._remove_docs(present)
            self._maybe_compact()
        return removed

    def _filter_mask(self, filters: Filter, rows: int) -> npt.NDArray[np.bool_]:
        mask = self._columns.mask(filters, RowMetadata(self._rows))
        return mask[:rows]

    def query_terms(self, text: str) -> list[str]:
        """The terms a query text becomes (repeats kept)."""
        return self.analyzer(text)

    def scores(self, text: str) -> npt.NDArray[np.float64]:
        """Scores of every row for a query (deleted rows 0): rank-bm25's ``get_scores``
        (no feedback)."""
        with self._lock:
            w = self._ensure_weights()
            scores: npt.NDArray[np.float64] = self._score(w, _counts(self.analyzer(text)))[0]
            return scores

    def _score(self, w: _Weights, query: Mapping[str, float]) -> tuple[Any, Any]:
        """Summed weights of the query's columns (each times the term's query weight), and
        which rows hold a query term.

        ``matched`` is ``None`` when every weight involved is positive (IDF > 0, the usual
        case thanks to the epsilon floor): then a row matched exactly when its score is > 0
        and the second scatter is skipped.
        """
        counts: dict[int, float] = {}
        for t, weight in query.items():
            tid = self._vocab.get(t)
            if tid is not None and tid < w.n_terms and weight > 0:
                counts[tid] = counts.get(tid, 0.0) + weight
        scores = np.zeros(w.rows, dtype=np.float64)
        spans = []  # (row indices, weights, query count) of each non-empty column
        for indptr, indices, data, n_terms in w.segments:
            for tid, count in counts.items():
                if tid < n_terms and indptr[tid] != indptr[tid + 1]:
                    s, e = indptr[tid], indptr[tid + 1]
                    spans.append((indices[s:e], data[s:e], count))
        for idx, weights, count in spans:  # a term repeated in the query counts that often
            # a CSC column holds each row once, so buffered fancy-index addition is exact
            # (and several times faster than np.add.at)
            scores[idx] += weights if count == 1 else weights * count
        if all(w.positive[tid] for tid in counts):
            return scores, None
        matched = np.zeros(w.rows, dtype=bool)
        for idx, _, _ in spans:
            matched[idx] = True
        if self._dead:
            matched &= self._alive[:w.rows]  # deleted rows keep weight-0 postings
        return scores, matched

    def search(self, query: IndexQuery, top_k: int, filters: Filter | None = None) -> list[Hit]:
        if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k <= 0:
            raise InputError(f"top_k must be an integer >= 1, got {top_k!r}")
        text = query.text if isinstance(query, IndexQuery) else query
        if not isinstance(text, str):
            raise InputError(f"index {self.name!r}: query text must be a string, got "
                             f"{type(text).__name__}")
        terms = self.analyzer(text)
        k = int(top_k)
        with self._lock:
            if self._rows.live == 0:
                return []
            mask = self._filter_mask(filters, len(self._rows)) if filters is not None else None
            if not terms:
                return []
            w = self._ensure_weights()
            scores, matched = self._score(w, _counts(terms))
            if self.cfg.feedback_docs > 0:
                expanded = self._feedback_query(terms, scores, matched, mask)
                if expanded is not None:
                    scores, matched = self._score(w, expanded)
            if matched is None:
                if mask is not None:
                    np.putmask(scores, ~mask, 0.0)
                top = self._top_positive(scores, k)
            else:
                if mask is not None:
                    matched &= mask
                cand = np.flatnonzero(matched)
                top = self._top(cand, scores[cand], k)
            hits = list(zip(self._rows.chunks(top), scores[top].tolist(), strict=True))
        name = self.name
        return [Hit.of_chunk(c, s, r, name) for r, (c, s) in enumerate(hits, start=1)
                if c is not None]

    def _feedback_query(self, terms: list[str], scores: Any, matched: Any, mask: Any
                        ) -> dict[str, float] | None:
        """RM3: the original query (L1-normalised, weight ``feedback_query_weight``) plus the
        ``feedback_terms`` most likely terms of the top ``feedback_docs`` chunks, each chunk's
        term distribution weighted by its first-pass score. Only rows the filter allows lend
        terms, so feedback never leaks text from outside it. ``None``: nothing matched.

        Hand-written (a dozen lines over the index's own analyzer and postings) because
        no maintained Python BM25 library exposes RM3 over an external index.
        """
        cfg = self.cfg
        allowed = scores > 0 if matched is None else matched.copy()
        if mask is not None:
            allowed &= mask
        cand = np.flatnonzero(allowed)
        if len(cand) == 0:
            return None
        top = self._top(cand, scores[cand], cfg.feedback_docs)
        model: dict[str, float] = {}
        for row in top:
            chunk, weight = self._rows.chunk(row), float(scores[row])
            if chunk is None or weight <= 0:
                continue
            chunk_terms = self._analyze(chunk)
            share = weight / max(1, len(chunk_terms))
            for t, n in _counts(chunk_terms).items():
                model[t] = model.get(t, 0.0) + n * share
        best = heapq.nlargest(cfg.feedback_terms, model.items(), key=lambda kv: (kv[1], kv[0]))
        total = sum(v for _, v in best)
        if total <= 0:
            return None
        original = _counts(terms)
        n_query = sum(original.values())
        alpha = cfg.feedback_query_weight
        expanded = {t: alpha * n / n_query for t, n in original.items()}
        for t, v in best:
            expanded[t] = expanded.get(t, 0.0) + (1 - alpha) * v / total
        return expanded

    def _top_positive(self, scores: Any, k: int) -> list[int]:
        """``_top`` over the rows with a positive score, without listing them all first."""
        if k < len(scores):
            part = np.argpartition(-scores, k - 1)[:k]
            kth = scores[part].min()
            if kth > 0:
                if np.count_nonzero(scores >= kth) == k:  # no tie beyond the partition
                    return self._top(part, scores[part], k)
                cand = np.flatnonzero(scores >= kth)
                return self._top(cand, scores[cand], k)
        cand = np.flatnonzero(scores > 0)
        return self._top(cand, scores[cand], k)

    def _top(self, cand: Any, s: Any, k: int) -> list[int]:
        """Rows of the best ``k`` by score, ties broken by chunk id (as the exact index)."""
        chunk_ids = self._rows.chunk_ids
        if k < len(cand):
            kth = s[np.argpartition(-s, k - 1)[k - 1]]
            above = s > kth
            rows, values = cand[above], s[above]
            tied = cand[s == kth].tolist()
        else:
            rows, values, tied = cand, s, []
        order = np.argsort(-values, kind="stable")
        ranked = values[order]
        if len(ranked) > 1 and not (ranked[1:] != ranked[:-1]).all():
            # equal scores: order those by chunk id (rare, so done in Python only then)
            rows_l, values_l = rows.tolist(), values.tolist()
            ids = chunk_ids(rows_l)
            best = [rows_l[i] for i in sorted(range(len(rows_l)),
                                              key=lambda i: (-values_l[i], ids[i]))]
        else:
            best = rows[order].tolist()
        need = k - len(best)
        if need > 0 and tied:
            tied_ids = chunk_ids(tied)  # decoded in one pass: ties can be thousands of rows
            best.extend(tied[i] for i in heapq.nsmallest(need, range(len(tied)),
                                                         key=tied_ids.__getitem__))
        return best[:k]

    def count(self) -> int:
        with self._lock:
            return self._rows.live

    def doc_ids(self) -> set[str]:
        with self._lock:
            return self._rows.doc_ids()

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        with self._lock:
            rows = self._rows
            return [None if (row := rows.row_of(c)) is None else rows.chunk(row)
                    for c in chunk_ids]

    def close(self) -> None:
        """Every write is already durable; when this session wrote, fold the deltas into
        the snapshot now if an open would spend more re-analysing them than a snapshot is
        worth: from a tenth of the index, but never more than ``_CLOSE_FOLD_CHUNKS``.

        An open re-analyses every delta chunk (~70 us each: the 70k chunks a 1M bulk load
        left under the tenth rule alone cost 5 s of its reopen), while a snapshot rewrites
        the whole index (~19 s at 1M chunks here), so a small session's deltas stay."""
        with self._lock:
            self._flush_buffered()
            fold_at = max(self.cfg.compact_min_chunks,
                          min(0.1 * self._base_rows, _CLOSE_FOLD_CHUNKS))
            if (self._store is not None and self._wrote and self._seq != self._base_seq
                    and self._delta_chunks >= fold_at):
                self._compact()
            self._wrote = False

    def stats(self) -> dict[str, Any]:
        """Sizes and the last weight rebuild time (for benchmarks and ``trawl info``)."""
        with self._lock:
            nnz = sum(len(p[1]) for p in self._parts if p is not None)
            if self._parts and self._parts[0] is None and self._base is not None:
                nnz += self._base.nnz
            return {"chunks": self.count(), "rows": len(self._rows), "terms": len(self._terms),
                    "postings": nnz, "delta_files": self._delta_files,
                    "last_rebuild_ms": round(self.last_rebuild_ms, 2)}


def _counts(terms: Sequence[str]) -> dict[str, float]:
    """Term → how often it occurs (a query term repeated counts that many times)."""
    out: dict[str, float] = {}
    for t in terms:
        out[t] = out.get(t, 0.0) + 1.0
    return out
