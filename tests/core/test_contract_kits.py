"""The conformance kits catch deliberately broken components, and pass working ones.

Each contract's test methods are called directly on a component (as pytest would call
them with the fixture), so a broken component must make the named test fail.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import HashingEncoder
from trawl import ComponentContext, Hit, Index, Reranker
from trawl.errors import FilterError
from trawl.filters import Filter, filter_fields
from trawl.testing import EncoderContract, ExactIndex, IndexContract, RerankerContract


def kit_failures(contract: type, **fixtures: Callable[[], Any]) -> dict[str, str]:
    """Run every ``test_*`` of ``contract`` (each parametrization) with fresh fixture
    values from ``fixtures``; return ``{test name: why}`` for those that failed."""
    inst = contract()
    failed: dict[str, str] = {}
    for name in sorted(n for n in dir(contract) if n.startswith("test_")):
        method = getattr(inst, name)
        wanted = inspect.signature(method).parameters
        cases: list[dict[str, Any]] = [{}]
        for mark in getattr(method, "pytestmark", []):
            if mark.name == "parametrize":
                cases = [{mark.args[0]: v} for v in mark.args[1]]
        for case in cases:
            kwargs = {k: make() for k, make in fixtures.items() if k in wanted}
            try:
                method(**kwargs, **case)
            except pytest.skip.Exception:
                continue
            except (AssertionError, pytest.fail.Exception, Exception) as exc:
                failed[name] = f"{type(exc).__name__}: {exc}"
    return failed


# -- encoders -----------------------------------------------------------------------------
class ZeroQueries(HashingEncoder):
    def encode_queries(self, texts: Sequence[str]) -> Any:
        return np.zeros((len(texts), self.dim), dtype=np.float32)


class NaNDocuments(HashingEncoder):
    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Any:
        out = self._encode(texts)
        if len(out):
            out[-1, 0] = np.nan
        return out


class WideQueries(HashingEncoder):
    def encode_queries(self, texts: Sequence[str]) -> Any:
        return np.ones((len(texts), self.dim + 1), dtype=np.float32)


def test_encoder_kit_passes_a_working_encoder() -> None:
    assert kit_failures(EncoderContract, encoder=HashingEncoder) == {}


@pytest.mark.parametrize(("broken", "why"), [
    (ZeroQueries, "zero vectors"), (NaNDocuments, "NaN"), (WideQueries, "shape")])
def test_encoder_kit_catches(broken: type[HashingEncoder], why: str) -> None:
    failed = kit_failures(EncoderContract, encoder=broken)
    assert why in failed.get("test_vectors_are_finite_nonzero_and_dim_wide", ""), failed


# -- rerankers ----------------------------------------------------------------------------
class Overlap(Reranker):
    """Scores a hit by how many query words it shares: a small real reranker."""

    def rerank(self, query: str, hits: Sequence[Hit], top_k: int | None = None) -> list[Hit]:
        words = set(query.lower().split())
        scored = sorted(hits, key=lambda h: (-len(words & set(h.text.lower().split())),
                                             h.rank))
        out = [h.model_copy(update={"rank": r, "score": float(len(words & set(
            h.text.lower().split())))}) for r, h in enumerate(scored, start=1)]
        return self._finish(out[:top_k] if top_k is not None else out)

    def _finish(self, hits: list[Hit]) -> list[Hit]:
        return hits


class Duplicates(Overlap):
    def _finish(self, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return hits
        twice = [hits[0], *hits[:-1]]
        return [h.model_copy(update={"rank": r}) for r, h in enumerate(twice, start=1)]


class Foreign(Overlap):
    def _finish(self, hits: list[Hit]) -> list[Hit]:
        if not hits:
            return hits
        stranger = hits[-1].model_copy(update={"chunk_id": "elsewhere#0",
                                               "doc_id": "elsewhere"})
        return [*hits[:-1], stranger]


def test_reranker_kit_passes_a_working_reranker() -> None:
    assert kit_failures(RerankerContract, reranker=Overlap) == {}


@pytest.mark.parametrize(("broken", "why"), [
    (Duplicates, "duplicate hits"), (Foreign, "not candidates")])
def test_reranker_kit_catches(broken: type[Overlap], why: str) -> None:
    failed = kit_failures(RerankerContract, reranker=broken)
    assert why in failed.get("test_each_candidate_once_and_only_candidates", ""), failed


# -- indexes ------------------------------------------------------------------------------
class StrictFields(ExactIndex):
    """Rejects filters on fields no chunk has (what the bm25 index used to do)."""

    def search(self, query: Any, top_k: int, filters: Filter | None = None) -> list[Hit]:
        known = {k for m in self._rows.metadata() for k in m}
        unknown = filter_fields(filters) - known
        if unknown:
            raise FilterError(f"unknown filter field(s) {sorted(unknown)}")
        return super().search(query, top_k, filters)


def _factory(cls: type[ExactIndex], tmp_path: Path) -> Callable[[], Callable[..., Index]]:
    """A fresh ``make_index`` (own folder) per kit test, as pytest's ``tmp_path`` gives."""
    folders = iter(range(10**6))

    def fixture() -> Callable[..., Index]:
        folder = tmp_path / str(next(folders))

        def make(dim: int = 8, metric: str = "cosine", storage: bool = True) -> Index:
            ctx = ComponentContext(name="exact", dim=dim,
                                   metric=metric,  # type: ignore[arg-type]
                                   storage_dir=folder if storage else None)
            return cls(cls.Config(), ctx)

        return make

    return fixture


def test_index_kit_holds_every_index_to_missing_field_semantics(tmp_path: Path) -> None:
    assert kit_failures(IndexContract, make_index=_factory(ExactIndex, tmp_path / "a")) == {}
    failed = kit_failures(IndexContract, make_index=_factory(StrictFields, tmp_path / "b"))
    assert set(failed) == {"test_filter_on_a_field_no_chunk_has"}, failed
