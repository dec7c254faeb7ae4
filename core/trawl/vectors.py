"""Vector helpers shared by plugins: normalisation and exact late-interaction scoring."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
P = ParamSpec("P")
R = TypeVar("R")
_controller: list[Any] = []


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the enclosed numpy GEMMs on one BLAS thread.

    Why: a query's GEMMs are small (a MUVERA query FDE, MaxSim over a few thousand stored
    tokens). Measured on 2 shared cores, OpenBLAS spreading them over its thread pool
    sometimes waits a scheduler slice for the second thread: the same query FDE took
    0.11 ms or 200-300 ms, and never more than 0.13 ms on one thread. (onnxruntime has its
    own pool and is not affected.) Without threadpoolctl this does nothing.
    """
    if not _controller:
        try:
            from threadpoolctl import ThreadpoolController  # type: ignore[import-untyped]
        except ImportError:  # pragma: no cover - threadpoolctl is a core dependency
            _controller.append(None)
        else:
            _controller.append(ThreadpoolController())
    controller = _controller[0]
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


def with_one_blas_thread(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of ``one_blas_thread``."""
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with one_blas_thread():
            return fn(*args, **kwargs)
    return wrapper


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
