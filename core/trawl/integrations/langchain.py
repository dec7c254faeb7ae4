# mypy: ignore-errors
# (langchain-core is an optional extra: CI type-checks core without it installed)
"""LangChain adapter: ``TrawlRetriever(trawl=t, top_k=4)`` is a ``BaseRetriever``.

    from trawl import Trawl
    from trawl.integrations.langchain import TrawlRetriever

    retriever = TrawlRetriever(trawl=Trawl.open("notes"), top_k=5, filters={"lang": "en"})
    docs = retriever.invoke("what is late interaction?")      # list[langchain Document]

Each LangChain ``Document`` has the chunk text as ``page_content``, the chunk id as
``id`` and the hit's metadata plus ``doc_id``, ``chunk_id``, ``score``, ``rank`` and
``scores_by_source``. ``ainvoke`` uses ``Trawl.asearch`` (never blocks the event loop).
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

from pydantic import ConfigDict, Field


def to_langchain(hit: Hit) -> LCDocument:
    return LCDocument(id=hit.chunk_id, page_content=hit.text, metadata=hit_metadata(hit))


class TrawlRetriever(BaseRetriever):
    """A LangChain retriever backed by a ``trawl.Trawl`` (thread-safe, async-capable)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    trawl: Any = Field(description="an open trawl.Trawl")
    top_k: int = Field(4, ge=1, le=10_000, description="documents returned per query")
    filters: Any = Field(None, description="a trawl filter (dict) applied to every search")
    search_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="extra Trawl.search options: retrievers, rerank")

    def _get_relevant_documents(self, query: str, *,
                                run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        hits = self.trawl.search(query, top_k=self.top_k, filters=self.filters,
                                 **self.search_kwargs)
        return [to_langchain(h) for h in hits]

    async def _aget_relevant_documents(
            self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        hits = await self.trawl.asearch(query, self.top_k, self.filters, **self.search_kwargs)
        return [to_langchain(h) for h in hits]
