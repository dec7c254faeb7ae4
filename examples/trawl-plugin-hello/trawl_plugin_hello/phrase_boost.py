"""``phrase-boost``: a reranker that moves hits containing the query's phrases up."""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

from pydantic import Field

from trawl import ComponentConfig, Hit, Reranker, SourceScore

_QUOTED = re.compile(r'"([^"]+)"')
_WORD = re.compile(r"\w+")


def _norm(text: str) -> str:
    return " " + " ".join(w.lower() for w in _WORD.findall(text)) + " "


class PhraseBoostConfig(ComponentConfig):
    boost: float = Field(1.0, gt=0, description="score added per phrase found in a hit")
    min_words: int = Field(2, ge=1, le=10,
                           description="shortest phrase (in words) taken from an unquoted query")
    pairs: bool = Field(True, description="with no quotes, also boost each pair of adjacent "
                                          "query words, not just the whole query")


class PhraseBoostReranker(Reranker):
    """Phrases are the query's ``"quoted"`` parts, or else the whole query and (``pairs``)
    each pair of adjacent words. A hit scores ``boost`` per phrase its text contains
    (the whole query counts twice) plus ``1 / (1 + original rank)``, so hits without any
    phrase keep their original order below those with one. Matching ignores case and
    punctuation."""

    Config = PhraseBoostConfig

    def phrases(self, query: str) -> list[tuple[str, float]]:
        cfg = self.config
        assert isinstance(cfg, PhraseBoostConfig)
        quoted = [_norm(q) for q in _QUOTED.findall(query)]
        quoted = [q for q in quoted if q.strip()]
        if quoted:
            return [(q, cfg.boost) for q in quoted]
        words = _norm(query).split()
        out: list[tuple[str, float]] = []
        if len(words) >= cfg.min_words:
            out.append((" " + " ".join(words) + " ", 2 * cfg.boost))
        if cfg.pairs and len(words) > 2 and cfg.min_words <= 2:
            out += [(f" {a} {b} ", cfg.boost) for a, b in itertools.pairwise(words)]
        return out

    def rerank(self, query: str, hits: Sequence[Hit], top_k: int | None = None) -> list[Hit]:
        phrases = self.phrases(query)
        scored = []
        for position, hit in enumerate(hits):
            text = _norm(hit.text)
            gain = sum(weight for phrase, weight in phrases if phrase in text)
            scored.append((gain + 1.0 / (2 + position), position, hit))
        scored.sort(key=lambda x: (-x[0], x[1]))
        out = []
        for rank, (score, _, hit) in enumerate(scored[:top_k or len(scored)], start=1):
            sources = {**hit.scores_by_source, self.name: SourceScore(score=score, rank=rank)}
            out.append(hit.model_copy(update={"score": score, "rank": rank,
                                              "scores_by_source": sources}))
        return out
