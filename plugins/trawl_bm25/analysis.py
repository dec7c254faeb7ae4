"""Text → tokens for BM25: lowercase, Unicode word split, stopwords, Snowball stemming.

The same ``Analyzer`` runs on documents and queries, so both sides always agree. Its
``fingerprint`` is stored with a persisted index: stored term frequencies are only valid
for the analyzer that produced them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from trawl.errors import ConfigError, MissingDependencyError

# Lucene's / Elasticsearch's English stop set (the one bm25s ships as STOPWORDS_EN). Short
# on purpose: BM25's IDF already discounts frequent words; the list only removes the
# function words that carry no topic at all.
ENGLISH_STOPWORDS: frozenset[str] = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
))
BUILTIN_STOPWORDS: dict[str, frozenset[str]] = {"english": ENGLISH_STOPWORDS}

_WORD = re.compile(r"\w+", re.UNICODE)


def learn_word_ids(cache: dict[str, int], words: set[str], term: Callable[[str], str | None],
                   id_of_term: Callable[[str], int], limit: int) -> None:
    """Give every word of ``words`` its term id in ``cache`` (``-1``: ``term`` drops it), so
    a block of text costs one dict lookup per word and no per-term object. Bounded: when the
    new words would pass ``limit`` the cache starts over and learns all of ``words``, so every
    word asked for has its id. Words are learnt in sorted order, so ids handed out in order
    are the same in every run."""
    missing = words.difference(cache)
    if len(cache) + len(missing) > limit:
        cache.clear()
        missing = words
    for w in sorted(missing):
        t = term(w)
        cache[w] = -1 if t is None else id_of_term(t)


class Analyzer:
    """Tokenise text the way one BM25 index was configured to.

    ``stemmer`` is a Snowball language known to PyStemmer (``"english"``, ``"german"``, ...)
    or ``None``. ``stopwords`` is ``"english"``, ``None`` or an explicit list; stopwords are
    matched after lowercasing and before stemming. ``min_token_length`` drops shorter tokens.
    """

    def __init__(self, *, lowercase: bool = True, stemmer: str | None = "english",
                 stopwords: str | Sequence[str] | None = "english",
                 min_token_length: int = 1, cache_size: int = 500_000) -> None:
        self.lowercase = lowercase
        self.stemmer_name = stemmer
        self.min_token_length = min_token_length
        if stopwords is None:
            self.stopwords: frozenset[str] = frozenset()
        elif isinstance(stopwords, str):
            if stopwords not in BUILTIN_STOPWORDS:
                raise ConfigError(f"bm25: unknown stopword list {stopwords!r}; built in: "
                                  f"{', '.join(BUILTIN_STOPWORDS)}, or pass a list of words")
            self.stopwords = BUILTIN_STOPWORDS[stopwords]
        else:
            self.stopwords = frozenset(w.lower() if lowercase else w for w in stopwords)
        self._stem_word: Any = None
        if stemmer is not None:
            try:
                import Stemmer  # PyStemmer: Snowball stemmers in C
            except ImportError as exc:  # pragma: no cover - PyStemmer is in the bm25 extra
                raise MissingDependencyError("PyStemmer", "bm25", purpose="BM25 stemming") from exc
            try:
                self._stem_word = Stemmer.Stemmer(stemmer).stemWord
            except KeyError as exc:
                raise ConfigError(
                    f"bm25: unknown stemmer language {stemmer!r}; PyStemmer knows "
                    f"{', '.join(sorted(Stemmer.algorithms()))} (or null for no stemming)"
                ) from exc
        # word -> its term (or None for a dropped word); bounded so a stream of unique
        # tokens (ids, numbers) cannot grow it without limit
        self._cache: dict[str, str | None] = {}
        self._cache_size = cache_size

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes which terms a text produces."""
        return {"lowercase": self.lowercase, "stemmer": self.stemmer_name,
                "stopwords": sorted(self.stopwords), "min_token_length": self.min_token_length,
                "pattern": _WORD.pattern}

    def term(self, word: str) -> str | None:
        """The term of one word from ``words`` (``None``: dropped)."""
        if len(word) < self.min_token_length or word in self.stopwords:
            return None
        return self._stem_word(word) if self._stem_word is not None else word

    def words(self, text: str) -> list[str]:
        """Lowercased words before stopwords and stemming (used to compare title and text)."""
        return _WORD.findall(text.lower() if self.lowercase else text)

    def terms_of_words(self, words: Sequence[str]) -> list[str]:
        cache = self._cache
        missing = set(words).difference(cache)
        if missing:
            if len(cache) + len(missing) > self._cache_size:
                cache.clear()
            term = self.term
            for w in missing:
                cache[w] = term(w)
        return [t for t in map(cache.__getitem__, words) if t is not None]

    def __call__(self, text: str) -> list[str]:
        """The BM25 terms of a text, in order, repeats kept (they are term frequencies)."""
        return self.terms_of_words(self.words(text))
