"""trawl built-in plugin: ``bm25``, a lexical index with rank-bm25 (BM25Okapi) scores.

Registered lazily: listing plugins imports neither scipy nor PyStemmer; they load when
a pipeline builds the index.
"""

from __future__ import annotations

from typing import Any

import trawl


@trawl.hookimpl
def register_indexes(register: Any) -> None:
    register("trawl_bm25.index:BM25Index", name="bm25")


@trawl.hookimpl
def register_encoders(register: Any) -> None:
    # BM25 weights as sparse vectors, for indexes that keep IDF themselves (qdrant)
    register("trawl_bm25.sparse:BM25SparseEncoder", name="bm25-sparse")
