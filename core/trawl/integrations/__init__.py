"""Thin adapters that let frameworks use a ``Trawl`` as their retriever.

- ``trawl.integrations.langchain.TrawlRetriever``: a LangChain ``BaseRetriever``
  (needs ``langchain-core``).
- ``trawl.integrations.llama_index.TrawlLlamaIndexRetriever``: a LlamaIndex
  ``BaseRetriever`` (needs ``llama-index-core``).

Nothing here is imported by ``import trawl``; each module imports its framework when
it is imported itself and raises ``MissingDependencyError`` naming the package when
the framework is absent.
"""

from __future__ import annotations

from typing import Any

from ..models import Hit


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's metadata plus its ids, score, rank and each retriever's score."""
    return {
        **hit.metadata,
        "doc_id": hit.doc_id,
        "chunk_id": hit.chunk_id,
        "score": hit.score,
        "rank": hit.rank,
        "scores_by_source": {k: v.score for k, v in hit.scores_by_source.items()},
    }
