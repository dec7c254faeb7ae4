from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from trawl import ComponentContext, Index
from trawl.testing import ExactIndex, IndexContract


class TestExactIndex(IndexContract):
    @pytest.fixture
    def make_index(self, tmp_path: Path) -> Callable[..., Index]:
        def make(dim: int = 8, metric: str = "cosine", storage: bool = True) -> Index:
            ctx = ComponentContext(name="exact", dim=dim, metric=metric,  # type: ignore[arg-type]
                                   storage_dir=tmp_path / "idx" if storage else None)
            return ExactIndex(ExactIndex.Config(), ctx)

        return make
