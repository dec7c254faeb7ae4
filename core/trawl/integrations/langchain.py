# mypy: ignore-errors
# (langchain-core is an optional extra: CI type-checks core without it installed)
"""LangChain adapter: ``TrawlRetriever(trawl=t, k=4)`` is a ``BaseRetriever``.

    from trawl import Trawl
    from trawl.integrations.langchain import TrawlRetriever

    retriever = TrawlRetriever(trawl=Trawl.open("notes"), k=5, filters={"lang": "en"})
    docs = retriever.invoke("what is late interaction?")      # list[langchain Document]
    docs = retriever.invoke("what is late interaction?", k=2, filters={"lang": "de"})

``k`` is the number of documents, as LangChain spells it (``top_k`` is an alias), in the
constructor and per call; ``filters``, ``retrievers``, ``fusion`` and ``rerank`` may also
be given per call. Each LangChain ``Document`` has the chunk text as ``page_content``,
the chunk id as ``id`` and the hit's metadata plus ``doc_id``, ``chunk_id``, ``score``,
``rank`` and ``scores_by_source``. ``ainvoke`` uses ``Trawl.asearch`` (never blocks the
event loop). Passes ``langchain-tests``' ``RetrieversIntegrationTests``.
"""

from __future__ import annotations

from typing import Any

from ..errors import MissingDependencyError
from ..models import Hit
from . import hit_metadata

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document as LCDocument
    from langchain_core.retrievers import BaseRetriever
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("langchain-core", "integrations",
                                 purpose="the LangChain retriever") from exc

from pydantic import AliasChoices, ConfigDict, Field

from ..errors import InputError

#: ``Trawl.search`` options a call may pass besides ``k``/``top_k`` and ``filters``.
SEARCH_OPTIONS = ("retrievers", "fusion", "rerank")


def to_langchain(hit: Hit) -> LCDocument:
    return LCDocument(id=hit.chunk_id, page_content=hit.text, metadata=hit_metadata(hit))


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
        raise InputError(f"{name} must be an integer from 1 to 10000, got {value!r}")
    return value


class TrawlRetriever(BaseRetriever):
    """A LangChain retriever backed by a ``trawl.Trawl`` (thread-safe, async-capable)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    trawl: Any = Field(description="an open trawl.Trawl (or any trawl IndexClient)")
    k: int = Field(4, ge=1, le=10_000, validation_alias=AliasChoices("k", "top_k"),
                   description="documents returned per query (alias: top_k)")
    filters: Any = Field(None, description="a trawl filter (dict) applied to every search")
    search_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra Trawl.search options: retrievers, fusion, rerank")

    @property
    def top_k(self) -> int:
        """``k`` under trawl's name."""
        return self.k

    def _search_args(self, kwargs: dict[str, Any]) -> tuple[int, Any, dict[str, Any]]:
        """``(k, filters, options)`` for one call: per-call values override the retriever's."""
        if "k" in kwargs and "top_k" in kwargs:
            raise InputError("pass k or top_k, not both")
        k = _count(kwargs.pop("k", kwargs.pop("top_k", self.k)), "k")
        filters = kwargs.pop("filters", self.filters)
        unknown = sorted(set(kwargs) - set(SEARCH_OPTIONS))
        if unknown:
            raise InputError(f"unknown TrawlRetriever option(s) {unknown}; known: k (top_k), "
                             f"filters, {', '.join(SEARCH_OPTIONS)}")
        return k, filters, {**self.search_kwargs, **kwargs}

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun,
                                **kwargs: Any) -> list[LCDocument]:
        k, filters, options = self._search_args(kwargs)
        hits = self.trawl.search(query, top_k=k, filters=filters, **options)
        return [to_langchain(h) for h in hits]

    async def _aget_relevant_documents(
            self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun,
            **kwargs: Any) -> list[LCDocument]:
        k, filters, options = self._search_args(kwargs)
        hits = await self.trawl.asearch(query, k, filters, **options)
        return [to_langchain(h) for h in hits]
