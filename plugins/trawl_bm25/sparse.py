"""``bm25-sparse``: BM25 term weights as sparse vectors, for an index that keeps the IDF.

The ``bm25`` index scores in-process from its own files. To put lexical retrieval on a
vector engine (Qdrant, where sharding and replication are the engine's), the text side
of BM25 moves into an encoder and the collection side into the engine:

* terms come from the same :class:`~trawl_bm25.analysis.Analyzer` (tokeniser, stopwords,
  Snowball stemmer), the same config fields and the same chunk fields (a title counted
  ``field_weights`` times) as the ``bm25`` index;
* a term's id is the first 4 bytes of its BLAKE2b hash: stable across processes and
  machines with no vocabulary to share (a 32-bit space: two of 50k distinct terms
  collide with probability ~0.3, so collisions are rare and merge two terms' weights);
* a document's weight for a term is Okapi's saturated, length-normalised term frequency
  ``tf·(k1+1) / (tf + k1·(1 − b + b·dl/avgdl))``, with ``avgdl`` fixed in the config
  (the engine cannot recompute it, and a weight must not change once stored);
* a query's weight is its term count (a repeated query term counts again, as in
  rank-bm25); the engine multiplies by its IDF (Qdrant's IDF modifier:
  ``ln(1 + (N − n + 0.5)/(n + 0.5))``, always positive, kept current as the collection
  grows). Okapi's ``ln((N − n + 0.5)/(n + 0.5))`` differs only for terms in a large share
  of the documents.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from pydantic import Field, create_model

from trawl.components import ComponentConfig, Encoder, SparseVector
from trawl.models import Chunk

from .analysis import Analyzer, learn_word_ids
from .index import BM25Config, chunk_words

ID_SPACE = 2**32
#: texts counted together by ``encode_documents`` (bounds its temporary arrays)
DOCUMENT_BLOCK = 4096
#: words whose term id the block encoder remembers
WORD_CACHE = 1_000_000
#: the analyzer and saturation settings, shared with the ``bm25`` index so both agree
SHARED_FIELDS = ("k1", "b", "stemmer", "stopwords", "lowercase", "min_token_length", "fields",
                 "field_weights")

BM25SparseConfig: type[ComponentConfig] = create_model(  # type: ignore[call-overload]
    "BM25SparseConfig",
    __base__=ComponentConfig,
    __doc__="Config of ``bm25-sparse``: the ``bm25`` index's analyzer fields plus avgdl.",
    avgdl=(float, Field(128.0, gt=0, description=(
        "average document length in terms used for length normalisation; fixed, because "
        "stored weights cannot follow a changing average. 128 sits between SciFact's (~164 "
        "per abstract) and Cranfield's (~103) chunk lengths"))),
    **{name: (BM25Config.model_fields[name].annotation, BM25Config.model_fields[name])
       for name in SHARED_FIELDS},
)


def term_id(term: str) -> int:
    """Stable 32-bit id of a term (the same on every machine, no vocabulary needed)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(),
                          "little")


class BM25SparseEncoder(Encoder):
    """Texts → ``SparseVector`` of BM25 document weights (or query term counts)."""

    kind = "sparse"
    Config = BM25SparseConfig

    def __init__(self, config: ComponentConfig | None = None, context: Any = None) -> None:
        super().__init__(config, context)
        cfg = cast(Any, self.config)
        stop = None if cfg.stopwords in (None, "none") else cfg.stopwords
        self.analyzer = Analyzer(lowercase=cfg.lowercase, stemmer=cfg.stemmer, stopwords=stop,
                                 min_token_length=cfg.min_token_length)
        self.k1 = float(cfg.k1)
        self.b = float(cfg.b)
        self.avgdl = float(cfg.avgdl)
        self.fields = list(cfg.fields)
        self.field_weights = dict(cfg.field_weights)
        self._ids: dict[str, int] = {}
        #: word -> term id (-1: dropped), the block encoder's cache
        self._word_id: dict[str, int] = {}

    def document_text(self, chunk: Chunk) -> str:
        """The chunk's words as the ``bm25`` index counts them (title fields repeated by
        their weight), joined by spaces: the analyzer splits them back into the same words."""
        return " ".join(chunk_words(self.analyzer, chunk, self.fields, self.field_weights))

    @property
    def dim(self) -> int:
        return ID_SPACE

    @property
    def max_length(self) -> int:
        return 10**9  # no model window: only chunking by another encoder limits text

    def _counts(self, text: str) -> tuple[Counter[int], int]:
        terms = self.analyzer(text)
        ids = self._ids
        if len(ids) > 1_000_000:
            ids.clear()
        counts: Counter[int] = Counter()
        for t in terms:
            i = ids.get(t)
            if i is None:
                i = ids[t] = term_id(t)
            counts[i] += 1
        return counts, len(terms)

    def _term_id(self, term: str) -> int:
        i = self._ids.get(term)
        if i is None:
            i = self._ids[term] = term_id(term)
        return i

    def _word_ids(self, words: set[str]) -> None:
        """Learn the term id of every word of a block not seen yet (``learn_word_ids``)."""
        if len(self._ids) > 1_000_000:
            self._ids.clear()
        learn_word_ids(self._word_id, words, self.analyzer.term, self._term_id, WORD_CACHE)

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False
                         ) -> list[SparseVector]:
        """Documents are encoded in blocks: every block's term ids go into one flat array,
        counted per document by one sort (``np.unique`` over document·2³² + id), and
        weighted in numpy. The weights are the same float32 arithmetic as one text at a
        time (``_counts``), so they are equal bit for bit."""
        out: list[SparseVector] = []
        for start in range(0, len(texts), DOCUMENT_BLOCK):
            out.extend(self._encode_block(texts[start:start + DOCUMENT_BLOCK]))
        return out

    def _encode_block(self, texts: Sequence[str]) -> list[SparseVector]:
        words_of = [self.analyzer.words(text) for text in texts]
        self._word_ids(set().union(*words_of))
        lookup = self._word_id.__getitem__
        flat = np.fromiter((i for ws in words_of for i in map(lookup, ws)), dtype=np.int64,
                           count=sum(map(len, words_of)))
        doc = np.repeat(np.arange(len(texts), dtype=np.int64), [len(ws) for ws in words_of])
        kept = flat >= 0
        flat, doc = flat[kept], doc[kept]
        length = np.bincount(doc, minlength=len(texts))
        keys, tf_counts = np.unique((doc << 32) | flat, return_counts=True)
        ids = (keys & 0xFFFFFFFF).astype(np.uint32)
        bounds = np.searchsorted(keys >> 32, np.arange(len(texts) + 1))
        k1, b = self.k1, self.b
        # the norm of each document in float64, then float32 as one text at a time gets it
        norm = (k1 * (1.0 - b + b * length.astype(np.float64) / self.avgdl)
                ).astype(np.float32)
        tf = tf_counts.astype(np.float32)
        values = (tf * np.float32(k1 + 1.0) / (tf + np.repeat(norm, np.diff(bounds)))
                  ).astype(np.float32)
        return [SparseVector(indices=ids[lo:hi], values=values[lo:hi])
                for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)]

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        out = []
        for text in texts:
            counts, _ = self._counts(text)
            ids = np.fromiter(sorted(counts), dtype=np.uint32, count=len(counts))
            out.append(SparseVector(indices=ids, values=np.fromiter(
                (counts[int(i)] for i in ids), dtype=np.float32, count=len(ids))))
        return out
