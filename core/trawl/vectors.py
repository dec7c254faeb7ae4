"""Vector helpers shared by plugins: normalisation and exact late-interaction scoring."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


def l2_normalize(x: FloatArray, axis: int = -1) -> FloatArray:
    """Unit-length rows; zero rows stay zero instead of becoming NaN."""
    norms = np.linalg.norm(x, axis=axis, keepdims=True)
    out: FloatArray = (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
    return out


def maxsim(query: FloatArray, doc: FloatArray) -> float:
    """Chamfer / MaxSim: ``Σ_q max_d <q, d>`` for one query set and one document set."""
    if len(query) == 0 or len(doc) == 0:
        return 0.0
    return float((query @ doc.T).max(axis=1).sum())


def maxsim_scores(query: FloatArray, docs: Sequence[FloatArray]) -> FloatArray:
    """MaxSim of one query against many documents, vectorised.

    All document token matrices are stacked once so the query is multiplied against
    every token in a single GEMM; per-document maxima come from ``np.maximum.reduceat``
    over the segment starts. Empty documents score 0.
    """
    n = len(docs)
    out = np.zeros(n, dtype=np.float32)
    if n == 0 or len(query) == 0:
        return out
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=n)
    nonempty = np.flatnonzero(lengths > 0)
    if len(nonempty) == 0:
        return out
    stacked = np.concatenate([docs[int(i)] for i in nonempty]).astype(np.float32, copy=False)
    sims = stacked @ query.astype(np.float32, copy=False).T  # (total_tokens, t_q)
    starts = np.concatenate(([0], np.cumsum(lengths[nonempty])[:-1]))
    per_doc_max = np.maximum.reduceat(sims, starts, axis=0)  # (n_nonempty, t_q)
    out[nonempty] = per_doc_max.sum(axis=1)
    return out
