"""Hits assembled without validation (``trusted``) are the same objects validation makes."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from trawl.components import make_hit
from trawl.fusion import fuse
from trawl.models import Chunk, Hit, SourceScore


def _chunk(i: int) -> Chunk:
    return Chunk(id=f"d{i}#0", doc_id=f"d{i}", text=f"text {i}", index=0, start=0, end=6,
                 metadata={"title": f"t{i}", "year": 2000 + i})


def test_make_hit_equals_a_validated_hit() -> None:
    c = _chunk(1)
    fast = make_hit(c, np.float32(0.5), np.int64(3), "bm25")
    slow = Hit(doc_id="d1", chunk_id="d1#0", score=0.5, rank=3, text="text 1",
               metadata={"title": "t1", "year": 2001, "chunk_index": 0, "chunk_start": 0,
                         "chunk_end": 6},
               scores_by_source={"bm25": SourceScore(score=0.5, rank=3)})
    assert fast == slow
    assert fast.model_dump() == slow.model_dump()
    assert fast.model_dump_json() == slow.model_dump_json()
    assert type(fast.score) is float and type(fast.rank) is int  # numpy scalars converted
    assert Hit.model_validate_json(fast.model_dump_json()) == fast
    c.metadata["title"] = "changed"  # the hit's metadata is its own dict
    assert fast.metadata["title"] == "t1"


def test_trusted_hits_stay_frozen_and_copyable() -> None:
    h = make_hit(_chunk(2), 1.0, 1, "bm25")
    with pytest.raises(ValidationError):
        h.score = 2.0  # type: ignore[misc]
    moved = h.model_copy(update={"rank": 5})
    assert moved.rank == 5 and h.rank == 1 and moved.model_fields_set >= {"rank"}
    ranked = h.ranked(0.25, 2, {"x": SourceScore.of(0.25, 2)})
    assert (ranked.score, ranked.rank, ranked.chunk_id) == (0.25, 2, h.chunk_id)
    assert h.scores_by_source == {"bm25": SourceScore(score=1.0, rank=1)}


def test_fused_hits_equal_validated_ones() -> None:
    a = [make_hit(_chunk(i), 1.0 / (i + 1), i + 1, "a") for i in range(3)]
    b = [make_hit(_chunk(i), 0.1 * i, 3 - i, "b") for i in reversed(range(3))]
    for method in ("rrf", "weighted", "dbsf"):
        for h in fuse({"a": a, "b": b}, method):
            assert Hit.model_validate(h.model_dump()) == h
