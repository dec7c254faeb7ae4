"""MUVERA fixed dimensional encodings (Dhulipala et al., NeurIPS 2024, arXiv 2405.19504).

A set of token vectors becomes one vector whose inner products approximate Chamfer /
MaxSim similarity ``Σ_q max_d <q, d>``. For each of ``r_reps`` repetitions:

1. SimHash: ``k_sim`` Gaussian hyperplanes split space into ``2^k_sim`` buckets; a token's
   bucket comes from the signs of its projections. Bucket numbering follows Google's
   reference implementation (graph-mining ``sketching/point_cloud``): sign bits are read
   as a Gray code, so the bucket index is the prefix-XOR of the sign bits, first hyperplane
   most significant. The order only permutes blocks, but it fixes where each coordinate
   lands before the final count-sketch.
2. Per bucket a query block is the **sum** of its tokens, a document block the **average**.
   With ``fill_empty_partitions`` an empty document bucket takes the token whose sign
   pattern is nearest to the bucket's in Hamming distance (lowest token index on ties).
3. Each block is projected to ``d_proj`` dims with a dense ±1 matrix scaled by
   ``1/sqrt(d_proj)`` (the paper's AMS sketch; identity when ``d_proj == dim``).
4. Blocks are concatenated (repetition-major, then bucket, then coordinate) and, with
   ``d_final`` set, reduced by a count-sketch (one random ±1 target per coordinate).

Everything random is drawn from numpy ``SeedSequence(seed, spawn_key=(purpose, rep))``, so
the encoding is a pure function of the config: the pipeline stores ``state()`` with the
index and rebuilds the same transform for queries. Work is vectorised over all tokens of
a batch (no per-token Python loop); batches are cut by token count to bound memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationError, model_validator

from trawl.components import (
    ComponentConfig,
    ComponentContext,
    FloatArray,
    MultiVectorTransform,
)
from trawl.errors import ConfigError, DimensionMismatchError, InputError

MAX_K_SIM = 12
MAX_FDE_DIM = 1 << 22  # 4M floats (16 MiB) per vector before the final projection
SCHEME = "trawl-fde-v1"
_PURPOSE_SIMHASH, _PURPOSE_AMS, _PURPOSE_FINAL = 1, 2, 3


class MuveraConfig(ComponentConfig):
    """MUVERA FDE settings. Stored with the index: queries must use the same values."""

    r_reps: int = Field(20, ge=1, le=1024, description="independent repetitions (R_reps)")
    k_sim: int = Field(5, ge=0, le=MAX_K_SIM,
                       description="SimHash hyperplanes per repetition; 2^k_sim buckets")
    d_proj: int = Field(16, ge=1, description="dims per bucket block after the ±1 projection; "
                        "equal to the token dim means no projection")
    d_final: int | None = Field(None, ge=1, description="optional count-sketch output size")
    fill_empty_partitions: bool = Field(True, description="documents: an empty bucket takes "
                                        "the token nearest to it by SimHash Hamming distance")
    seed: int = Field(42, ge=0, lt=2**63, description="seed of every random matrix")
    dim: int | None = Field(None, ge=1, description="token vector dim; taken from the encoder "
                            "when left out, stored with the index")
    scheme: Literal["trawl-fde-v1"] = Field(
        SCHEME, description="random-number and layout scheme; guards stored indexes")

    @model_validator(mode="after")
    def _sizes(self) -> MuveraConfig:
        if self.dim is not None and self.d_proj > self.dim:
            raise ValueError(f"d_proj={self.d_proj} is larger than the token dim {self.dim}; "
                             f"use d_proj <= {self.dim} (d_proj == dim means no projection)")
        width = self.r_reps * (1 << self.k_sim) * self.d_proj
        if width > MAX_FDE_DIM:
            raise ValueError(f"r_reps*2^k_sim*d_proj = {width} exceeds {MAX_FDE_DIM}; "
                             "lower r_reps, k_sim or d_proj")
        if self.d_final is not None and self.d_final > width:
            raise ValueError(f"d_final={self.d_final} is larger than the FDE it compresses "
                             f"({width} = r_reps*2^k_sim*d_proj); leave it out instead")
        return self


def _rng(seed: int, purpose: int, rep: int = 0) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(purpose, rep)))


def sign_code(bits: np.ndarray) -> np.ndarray:
    """Sign bits ``(..., k)`` as an integer, first hyperplane most significant."""
    code = np.zeros(bits.shape[:-1], dtype=np.int32)
    for j in range(bits.shape[-1]):
        code = (code << 1) | bits[..., j]
    return code


def gray_bucket(bits: np.ndarray) -> np.ndarray:
    """Bucket index of sign bits ``(..., k)`` as in the reference implementation.

    The reference appends each sign bit to a Gray code, i.e. the bucket index is the
    binary number whose bit j is the XOR of sign bits 0..j (first hyperplane most
    significant). Decoding the sign pattern from Gray code does exactly that.
    """
    code = sign_code(bits)
    shift = 1
    while shift < bits.shape[-1]:
        code ^= code >> shift
        shift <<= 1
    return code


def bucket_sign_pattern(buckets: np.ndarray) -> np.ndarray:
    """Sign pattern (as an integer, first hyperplane most significant) of bucket indexes."""
    return buckets ^ (buckets >> 1)


_POPCOUNT = np.array([bin(i).count("1") for i in range(1 << MAX_K_SIM)], dtype=np.int32)


class MuveraTransform(MultiVectorTransform):
    """Token sets → MUVERA FDEs; registered as ``muvera``."""

    Config = MuveraConfig
    config: MuveraConfig
    #: floats per internal work array (sets x tokens x r_reps x (d_proj + 2^k_sim)); bounds memory
    batch_floats: int = 1 << 22

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        super().__init__(config, context)
        cfg = self.config
        ctx_dim = self.context.dim
        if cfg.dim is not None and ctx_dim is not None and cfg.dim != ctx_dim:
            raise DimensionMismatchError(
                f"transform {self.name!r}: config dim={cfg.dim} (stored with the index) but the "
                f"encoder gives {ctx_dim}-d token vectors; re-index with this encoder")
        dim = cfg.dim if cfg.dim is not None else ctx_dim
        if dim is None:
            raise ConfigError(f"transform {self.name!r}: the token dim is unknown; set 'dim' or "
                              "build it from a pipeline with a multi-vector encoder")
        try:
            self.config = MuveraConfig.model_validate({**cfg.model_dump(), "dim": dim})
        except ValidationError as exc:
            problems = "; ".join(
                f"field {'.'.join(str(p) for p in e['loc']) or '(root)'!r}: {e['msg']}"
                for e in exc.errors())
            raise ConfigError(f"transform {self.name!r} (plugin 'muvera'): {problems}") from exc
        cfg = self.config
        self._tdim = dim
        self._nb = 1 << cfg.k_sim
        self._identity = cfg.d_proj == dim
        self._dp = dim if self._identity else cfg.d_proj
        r, k = cfg.r_reps, cfg.k_sim
        # SimHash hyperplanes for every repetition side by side: (dim, r * k)
        self._simhash = np.concatenate(
            [_rng(cfg.seed, _PURPOSE_SIMHASH, i).standard_normal((dim, k)) for i in range(r)],
            axis=1).astype(np.float32) if k else np.zeros((dim, 0), np.float32)
        # dense ±1 AMS projections, scaled: (dim, r * d_proj)
        self._ams: FloatArray | None = None
        if not self._identity:
            signs = [_rng(cfg.seed, _PURPOSE_AMS, i).integers(0, 2, (dim, self._dp)) * 2 - 1
                     for i in range(r)]
            self._ams = (np.concatenate(signs, axis=1) / np.sqrt(self._dp)).astype(np.float32)
        self._width = r * self._nb * self._dp
        self._final: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        if cfg.d_final is not None:
            g = _rng(cfg.seed, _PURPOSE_FINAL)
            target = g.integers(0, cfg.d_final, self._width)
            sign = (g.integers(0, 2, self._width) * 2 - 1).astype(np.float32)
            perm = np.argsort(target, kind="stable")
            cols, starts = np.unique(target[perm], return_index=True)
            self._final = (perm, sign[perm], cols, starts)

    # -- contract --------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self.config.d_final if self.config.d_final is not None else self._width

    @property
    def token_dim(self) -> int:
        return self._tdim

    def hyperplanes(self, rep: int) -> FloatArray:
        """SimHash normals of repetition ``rep``: ``(token_dim, k_sim)``."""
        k = self.config.k_sim
        return self._simhash[:, rep * k:(rep + 1) * k]

    def projection(self, rep: int) -> FloatArray:
        """Inner projection of repetition ``rep``: ``(token_dim, d_proj)`` (identity if none)."""
        if self._ams is None:
            return np.eye(self._tdim, dtype=np.float32)
        return self._ams[:, rep * self._dp:(rep + 1) * self._dp]

    def state(self) -> dict[str, Any]:
        """The full config, token ``dim`` included: enough to rebuild the same transform."""
        return self.config.model_dump()

    def encode_document_set(self, sets: Sequence[FloatArray]) -> FloatArray:
        return self._encode(sets, document=True)

    def encode_query_set(self, sets: Sequence[FloatArray]) -> FloatArray:
        return self._encode(sets, document=False)

    # -- work ------------------------------------------------------------------------
    def _check(self, sets: Sequence[FloatArray]) -> list[np.ndarray]:
        out = []
        for i, s in enumerate(sets):
            a = np.asarray(s, dtype=np.float32)
            if a.ndim == 1 and a.size == 0:
                a = a.reshape(0, self._tdim)
            if a.ndim != 2:
                raise InputError(f"transform {self.name!r}: set {i} must be a (tokens, dim) "
                                 f"matrix, got shape {a.shape}")
            if len(a) >= 1 << 20:
                raise InputError(f"transform {self.name!r}: set {i} has {len(a)} tokens; "
                                 "at most 1048575 per set")
            if a.shape[1] != self._tdim:
                raise DimensionMismatchError(
                    f"transform {self.name!r}: set {i} has {a.shape[1]}-d tokens, the transform "
                    f"was built for {self._tdim}-d")
            out.append(a)
        return out

    def _encode(self, sets: Sequence[FloatArray], *, document: bool) -> FloatArray:
        arrays = self._check(sets)
        n = len(arrays)
        out = np.zeros((n, self.dim), dtype=np.float32)
        lengths = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=n)
        # sets sorted by length, cut into batches of similar length so padding stays small
        order = np.argsort(lengths, kind="stable")
        per_token = self.config.r_reps * (self._dp + (self._nb if self._onehot else self._dp))
        start = 0
        while start < n:
            stop = start + 1
            while stop < n and (stop - start + 1) * lengths[order[stop]] * per_token \
                    <= self.batch_floats:
                stop += 1
            idx = order[start:stop]
            fde = self._encode_batch([arrays[i] for i in idx], lengths[idx], document=document)
            out[idx] = self._compress(fde)
            start = stop
        return out

    @property
    def _onehot(self) -> bool:
        """Sum buckets with a one-hot matmul (few buckets) or a scatter-add (many)."""
        return self._nb <= 64

    def _encode_batch(self, arrays: list[np.ndarray], lengths: np.ndarray, *,
                      document: bool) -> np.ndarray:
        cfg = self.config
        n, r, nb, dp, k = len(arrays), cfg.r_reps, self._nb, self._dp, cfg.k_sim
        fde = np.zeros((n, r, nb, dp), dtype=np.float32)
        width = int(lengths.max()) if n else 0
        if width == 0:
            return fde.reshape(n, -1)
        # padded (n, L, dim) tokens; padding rows are masked out of every sum below
        valid = np.arange(width)[None, :] < lengths[:, None]
        x = np.zeros((n * width, self._tdim), dtype=np.float32)
        x[valid.reshape(-1)] = np.concatenate(arrays)
        bits = (x @ self._simhash).reshape(n, width, r, k) > 0
        bucket = gray_bucket(bits)  # (n, L, r)
        proj = (x.reshape(n, width, 1, self._tdim) if self._identity
                else (x @ self._ams).reshape(n, width, r, dp))
        # slot = (set, repetition, bucket) of every real token and repetition: (T, r)
        slot = ((np.arange(n)[:, None, None] * r + np.arange(r)) * nb + bucket)[valid]
        pos = np.nonzero(valid)[1]  # token position inside its set: (T,)
        size = n * r * nb
        if self._onehot:
            onehot = np.zeros(size * width, dtype=np.float32)
            onehot[(slot * width + pos[:, None]).reshape(-1)] = 1.0
            fde[:] = onehot.reshape(n, r, nb, width) @ proj.transpose(0, 2, 1, 3)
        else:
            cells = (slot[:, :, None] * dp + np.arange(dp)).reshape(-1)
            weights = np.broadcast_to(proj[valid], (len(pos), r, dp)).reshape(-1)
            fde.reshape(-1)[:] = np.bincount(cells, weights=weights, minlength=size * dp)
        if not document:
            return fde.reshape(n, -1)
        counts = np.bincount(slot.reshape(-1), minlength=size).reshape(n, r, nb)
        filled = counts > 0
        fde *= (1.0 / np.maximum(counts, 1)).astype(np.float32)[..., None]
        if cfg.fill_empty_partitions and k > 0:
            self._fill_empty(fde, slot, pos, filled, proj)
        return fde.reshape(n, -1)

    def _fill_empty(self, fde: np.ndarray, slot: np.ndarray, pos: np.ndarray,
                    filled: np.ndarray, proj: np.ndarray) -> None:
        """Empty (set, rep, bucket) slots take the set's token nearest by Hamming distance.

        A token's sign pattern is its bucket's, so the nearest token is the first token of
        the nearest non-empty bucket; ties go to the lowest token index, as in the reference.
        """
        n, r, nb = filled.shape
        empty = ~filled & filled.any(axis=2, keepdims=True)  # empty sets stay zero
        if not empty.any():
            return
        # key = (Hamming distance << shift) + token position; an empty bucket's key is
        # `none` (above every real key), and `none` + any distance must still fit the dtype
        k = self.config.k_sim
        width = int(pos.max()) + 1
        shift, dtype = ((11, np.int16) if width <= 1 << 11 and (2 * k + 2) << 11 < 1 << 15
                        else (20, np.int32))
        none = dtype((k + 1) << shift)
        first = np.full(n * r * nb, none, dtype=dtype)
        np.minimum.at(first, slot.reshape(-1), np.repeat(pos.astype(dtype), r))
        first = first.reshape(n, r, nb)
        pattern = bucket_sign_pattern(np.arange(nb, dtype=np.int32))
        hamming = (_POPCOUNT[pattern[:, None] ^ pattern[None, :]] << shift).astype(dtype)
        s, rep, b = np.nonzero(empty)
        if self._onehot:  # all (bucket, bucket) pairs at once: n*r*nb*nb small ints
            best = (first[:, :, None, :] + hamming).min(axis=3)[s, rep, b]
        else:
            best = (first[s, rep] + hamming[b]).min(axis=1)
        tok = best & ((1 << shift) - 1)
        fde[s, rep, b] = proj[s, tok, 0 if self._identity else rep]

    def _compress(self, fde: np.ndarray) -> np.ndarray:
        if self._final is None:
            return fde
        perm, sign, cols, starts = self._final
        out = np.zeros((len(fde), self.dim), dtype=np.float32)
        if len(fde):
            out[:, cols] = np.add.reduceat(fde[:, perm] * sign, starts, axis=1)
        return out
