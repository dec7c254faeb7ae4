# mypy: ignore-errors
# (llama-index-core is an optional extra: CI type-checks core without it installed)
"""LlamaIndex adapter: ``TrawlLlamaIndexRetriever(t, similarity_top_k=4)`` is a
``BaseRetriever``.

    from trawl.integrations.llama_index import TrawlLlamaIndexRetriever

    retriever = TrawlLlamaIndexRetriever(Trawl.open("notes"), similarity_top_k=5)
    nodes = retriever.retrieve("what is late interaction?")   # list[NodeWithScore]

``similarity_top_k`` is the number of nodes, as LlamaIndex's own retrievers spell it
(``top_k`` is an alias). Each node is a ``TextNode`` with the chunk id as ``id_``, the
chunk's character offsets as ``start_char_idx``/``end_char_idx``, the document id as its
source (``node.ref_doc_id``) and the hit's metadata plus ids, score and rank.
``aretrieve`` uses ``Trawl.asearch``.
"""

from __future__ import annotations

from typing import Any

from ..errors import InputError, MissingDependencyError
from ..models import Hit
from . import hit_metadata

try:
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import (
        NodeRelationship,
        NodeWithScore,
        QueryBundle,
        RelatedNodeInfo,
        TextNode,
    )
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("llama-index-core", "integrations",
                                 purpose="the LlamaIndex retriever") from exc


def to_node(hit: Hit) -> NodeWithScore:
    start = hit.metadata.get("chunk_start")
    end = hit.metadata.get("chunk_end")
    node = TextNode(
        id_=hit.chunk_id, text=hit.text, metadata=hit_metadata(hit),
        start_char_idx=start if isinstance(start, int) else None,
        end_char_idx=end if isinstance(end, int) else None,
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.doc_id)},
    )
    return NodeWithScore(node=node, score=hit.score)


class TrawlLlamaIndexRetriever(BaseRetriever):
    """A LlamaIndex retriever backed by a ``trawl.Trawl`` (or any trawl IndexClient)."""

    def __init__(self, trawl: Any, similarity_top_k: int | None = None, filters: Any = None,
                 search_kwargs: dict[str, Any] | None = None, *, top_k: int | None = None,
                 **kwargs: Any) -> None:
        if similarity_top_k is not None and top_k is not None:
            raise InputError("pass similarity_top_k or top_k, not both")
        k = similarity_top_k if similarity_top_k is not None else (
            top_k if top_k is not None else 4)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 10_000:
            raise InputError(f"similarity_top_k must be an integer from 1 to 10000, got {k!r}")
        self._trawl = trawl
        self.similarity_top_k = k
        self._filters = filters
        self._search_kwargs = dict(search_kwargs or {})
        super().__init__(**kwargs)

    @property
    def top_k(self) -> int:
        """``similarity_top_k`` under trawl's name."""
        return self.similarity_top_k

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._trawl.search(query_bundle.query_str, top_k=self.similarity_top_k,
                                  filters=self._filters, **self._search_kwargs)
        return [to_node(h) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self._trawl.asearch(query_bundle.query_str, self.similarity_top_k,
                                         self._filters, **self._search_kwargs)
        return [to_node(h) for h in hits]
