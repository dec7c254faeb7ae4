"""Reference searchers the FDE is measured against (benchmarks and tests; pure numpy).

- :class:`ExactMaxSim`: brute-force Chamfer / MaxSim over every document, the ground truth.
- :class:`SingleVectorHeuristic`: the paper's baseline (MUVERA §3.1, as used by ColBERTv2 /
  PLAID's first stage): every document token is a vector in one single-vector index; each
  query token retrieves its ``k_per_token`` nearest document tokens; the union of their
  documents is the candidate set, reranked by exact MaxSim. The token index here is exact
  (brute force); a real system would use an ANN index over all tokens, which is why its
  candidate count, not its latency, is the comparable number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trawl.components import FloatArray
from trawl.vectors import maxsim_scores


def _top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indexes of the ``k`` best scores, best first (ties by index)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k]
    return part[np.lexsort((part, -scores[part]))]


class TokenMatrix:
    """All document tokens stacked once, with each token's document number."""

    def __init__(self, docs: Sequence[FloatArray], dtype: type = np.float32) -> None:
        lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
        self.n_docs = len(docs)
        self.lengths = lengths
        self.starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        dim = next((d.shape[1] for d in docs if np.ndim(d) == 2), 0)
        self.tokens = (np.concatenate([np.asarray(d, dtype=dtype) for d in docs])
                       if int(lengths.sum()) else np.zeros((0, dim), dtype=dtype))
        self.doc_of = np.repeat(np.arange(len(docs)), lengths)

    @property
    def nbytes(self) -> int:
        return int(self.tokens.nbytes)

    def docs(self, ids: np.ndarray) -> list[np.ndarray]:
        return [self.tokens[self.starts[i]:self.starts[i] + self.lengths[i]] for i in ids]


class ExactMaxSim:
    """Exact MaxSim top-k over all documents: one GEMM per query, blockwise."""

    def __init__(self, matrix: TokenMatrix, block_tokens: int = 1 << 18) -> None:
        self.m = matrix
        self.block_tokens = block_tokens
        nonempty = np.flatnonzero(matrix.lengths > 0)
        self._nonempty = nonempty
        self._seg_starts = matrix.starts[nonempty]

    def scores(self, query: FloatArray) -> np.ndarray:
        m = self.m
        out = np.zeros(m.n_docs, dtype=np.float32)
        if len(query) == 0 or len(self._nonempty) == 0:
            return out
        q = np.asarray(query, dtype=m.tokens.dtype)
        # blocks of whole documents so per-document maxima never straddle a block
        docs = self._nonempty
        i = 0
        while i < len(docs):
            j = int(np.searchsorted(self._seg_starts, self._seg_starts[i] + self.block_tokens,
                                    side="left"))
            j = max(j, i + 1)
            lo = int(self._seg_starts[i])
            hi = int(self._seg_starts[j - 1] + m.lengths[docs[j - 1]])
            sims = m.tokens[lo:hi] @ q.T  # (tokens, t_q)
            per_doc = np.maximum.reduceat(sims, self._seg_starts[i:j] - lo, axis=0)
            out[docs[i:j]] = per_doc.sum(axis=1, dtype=np.float32)
            i = j
        return out

    def search(self, query: FloatArray, k: int) -> np.ndarray:
        return _top_k(self.scores(query), k)


def rerank(query: FloatArray, matrix: TokenMatrix, candidates: np.ndarray, k: int) -> np.ndarray:
    """Best ``k`` of ``candidates`` (document numbers) by exact MaxSim, best first."""
    if len(candidates) == 0:
        return candidates
    exact = maxsim_scores(np.asarray(query, dtype=np.float32),
                          [d.astype(np.float32, copy=False) for d in matrix.docs(candidates)])
    return candidates[_top_k(exact, k)]


@dataclass
class HeuristicResult:
    """What one single-vector-heuristic query did."""

    top: np.ndarray  #: best documents after exact rerank, best first
    candidates: int  #: distinct documents reranked
    token_hits: int  #: token neighbours retrieved (|query| x k_per_token)


class SingleVectorHeuristic:
    """Each query token retrieves its ``k_per_token`` nearest document tokens; rerank the union."""

    def __init__(self, matrix: TokenMatrix) -> None:
        self.m = matrix

    def candidates(self, query: FloatArray, k_per_token: int) -> tuple[np.ndarray, int]:
        """Distinct candidate documents (sorted) and the number of token hits."""
        m = self.m
        if len(query) == 0 or len(m.tokens) == 0:
            return np.zeros(0, dtype=np.int64), 0
        sims = np.asarray(query, dtype=m.tokens.dtype) @ m.tokens.T  # (t_q, total tokens)
        k = min(k_per_token, sims.shape[1])
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return np.unique(m.doc_of[nearest]), int(nearest.size)

    def search(self, query: FloatArray, k_per_token: int, k: int) -> HeuristicResult:
        cands, hits = self.candidates(query, k_per_token)
        return HeuristicResult(top=rerank(query, self.m, cands, k), candidates=len(cands),
                               token_hits=hits)


def single_vector_heuristic(query: FloatArray, docs: Sequence[FloatArray], k_per_token: int,
                            k: int = 10) -> HeuristicResult:
    """One-shot form of :class:`SingleVectorHeuristic` (builds the token matrix each call)."""
    return SingleVectorHeuristic(TokenMatrix(docs)).search(query, k_per_token, k)
