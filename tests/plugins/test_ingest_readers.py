"""Core's readers: the conformance kit on each, real files written by the real libraries
(csv, nbformat, ebooklib, the email package, mailbox) and read back with offsets checked,
and the reader hook itself (selection, ``trawl plugins``, a plugin's reader)."""

from __future__ import annotations

import csv
import io
import json
import mailbox
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

import trawl
from tests.plugins.ingest_support import make_pdf
from trawl import Document, PluginHost, Reader, ReadOutput, SourceFile, UnreadableFileError
from trawl.chunking import chunk_document
from trawl.components import word_spans
from trawl.ingest import ReaderSet, read_with
from trawl.ingest.formats import (
    CsvReader,
    EmailReader,
    EpubReader,
    MboxReader,
    NotebookReader,
)
from trawl.ingest.readers import (
    BeirReader,
    HtmlReader,
    JsonlReader,
    MarkdownReader,
    PdfReader,
    TextReader,
)
from trawl.testing import ReaderContract

MARKDOWN = """---
title: Field guide
---
Intro paragraph before any heading.

# Birds

Birds have feathers.

## Owls

Owls hunt at night. ``# not a heading``

```python
# also not a heading
```

## Gulls

Gulls live by the sea.

# Fish

Fish have gills.
"""

HTML = """<html><head><title>Guide</title><script>var x;</script></head><body>
<h1>Birds</h1><p>Birds have feathers.</p><h2>Owls</h2><p>Owls hunt at night.</p>
<h1>Fish</h1><p>Fish have <b>gills</b>.</p></body></html>"""


def csv_bytes() -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["name", "city", "age"])
    for i in range(30):
        w.writerow([f"person {i}", "Oslo" if i % 2 else "Lima", str(20 + i)])
    return buf.getvalue().encode()


def notebook_bytes() -> bytes:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    code = nbformat.v4.new_code_cell("print('hello owls')")
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello owls\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Owl analysis\n\nWe count owls."), code,
                nbformat.v4.new_markdown_cell("## Results\n\nMany owls.")]
    return nbformat.writes(nb).encode()


def epub_bytes(tmp_path: Path) -> bytes:
    epub = pytest.importorskip("ebooklib.epub")
    book = epub.EpubBook()
    book.set_identifier("id-1")
    book.set_title("Sea Stories")
    book.set_language("en")
    chapters = []
    for i, (head, body) in enumerate([("The Harbour", "Boats rest in the harbour."),
                                      ("The Storm", "Waves hit the lighthouse.")], start=1):
        c = epub.EpubHtml(title=head, file_name=f"chap_{i}.xhtml", lang="en")
        c.content = f"<html><body><h1>{head}</h1><p>{body}</p><h2>Later</h2><p>Calm.</p></body></html>"
        book.add_item(c)
        chapters.append(c)
    book.toc = chapters
    book.spine = ["nav", *chapters]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    path = tmp_path / "book.epub"
    epub.write_epub(str(path), book)
    return path.read_bytes()


def email_message(n: int = 0) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ada <ada@example.org>"
    msg["To"] = "bob@example.org"
    msg["Subject"] = f"Owl census {n}"
    msg["Date"] = "Tue, 01 Dec 2026 10:00:00 +0000"
    msg["Message-ID"] = f"<m{n}@example.org>"
    msg.set_content(f"We counted {n + 12} owls this week.\n")
    msg.add_attachment("species,count\nbarn owl,7\n", subtype="csv", filename="counts.csv")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + bytes(64), maintype="image", subtype="png",
                       filename="owl.png")
    return msg


def mbox_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "mail.mbox"
    box = mailbox.mbox(str(path))
    try:
        for n in range(3):
            box.add(email_message(n))
        box.flush()
    finally:
        box.close()
    return path.read_bytes()


# -- the kit on every core reader --------------------------------------------------------
class TestTextReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return TextReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("notes.txt", b"first line\n\nsecond paragraph here\n"),
                ("README", b"no suffix at all\n")]


class TestMarkdownReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return MarkdownReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("guide.md", MARKDOWN.encode())]


class TestHtmlReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return HtmlReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("guide.html", HTML.encode())]


class TestPdfReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return PdfReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("book.pdf", make_pdf(["Page one about owls", "Page two about gulls"]))]

    @pytest.fixture
    def bad_files(self) -> list[tuple[str, bytes]]:
        good = make_pdf(["Page one about owls"])
        return [("broken.pdf", good[: len(good) // 3]), ("noise.pdf", bytes(range(256)))]


class TestJsonlReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return JsonlReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        lines = [json.dumps({"id": f"r{i}", "text": f"record {i}", "lang": "en"})
                 for i in range(3)]
        return [("records.jsonl", "\n".join(lines).encode())]


class TestBeirReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return BeirReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("corpus.jsonl", json.dumps({"_id": "d1", "title": "T",
                                             "text": "body"}).encode())]


class TestCsvReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return CsvReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("people.csv", csv_bytes()),
                ("people.tsv", csv_bytes().replace(b",", b"\t"))]


class TestNotebookReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return NotebookReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("owls.ipynb", notebook_bytes())]

    @pytest.fixture
    def bad_files(self) -> list[tuple[str, bytes]]:
        return [("cut.ipynb", notebook_bytes()[:50]), ("list.ipynb", b"[1, 2]")]


class TestEpubReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return EpubReader()

    @pytest.fixture
    def sample_files(self, tmp_path: Path) -> list[tuple[str, bytes]]:
        return [("book.epub", epub_bytes(tmp_path))]

    @pytest.fixture
    def bad_files(self, tmp_path: Path) -> list[tuple[str, bytes]]:
        good = epub_bytes(tmp_path)
        return [("cut.epub", good[: len(good) // 2]), ("noise.epub", bytes(range(256)) * 4)]


class TestEmailReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return EmailReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("census.eml", email_message().as_bytes())]


class TestMboxReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return MboxReader()

    @pytest.fixture
    def sample_files(self, tmp_path: Path) -> list[tuple[str, bytes]]:
        return [("mail.mbox", mbox_bytes(tmp_path))]


# -- what each format's documents say --------------------------------------------------
def _read(reader: Reader, name: str, data: bytes) -> ReadOutput:
    return read_with(reader, SourceFile(path=f"/d/{name}", data=data, doc_id=f"d/{name}"))


def _chunks(doc: Document, max_tokens: int = 200) -> list[trawl.Chunk]:
    return chunk_document(doc, word_spans, max_tokens, 0)


def test_markdown_headings_become_sections_with_their_path() -> None:
    (doc,) = _read(MarkdownReader(), "guide.md", MARKDOWN.encode()).documents
    chunks = _chunks(doc)
    by_section = {c.metadata.get("section"): c for c in chunks}
    assert set(by_section) == {None, "Birds", "Birds > Owls", "Birds > Gulls", "Fish"}
    owls = by_section["Birds > Owls"]
    assert owls.text.startswith("## Owls") and "also not a heading" in owls.text
    # the heading is in the text already: its header is the path above it
    assert owls.metadata["context"] == "Field guide > Birds"
    assert owls.metadata["line_start"] == MARKDOWN[:owls.start].count("\n") + 1
    assert "Intro paragraph" in by_section[None].text and "context" not in by_section[None].metadata


def test_a_long_section_keeps_its_path_on_every_chunk() -> None:
    text = "# Big\n\n" + "\n\n".join(f"Paragraph {i} " + "word " * 30 for i in range(8))
    (doc,) = _read(MarkdownReader(), "big.md", text.encode()).documents
    chunks = _chunks(doc, 50)
    assert len(chunks) > 3 and all(c.metadata["section"] == "Big" for c in chunks)
    assert chunks[0].metadata.get("context") is None  # opens with "# Big" itself
    assert all(c.metadata["context"] == "Big" for c in chunks[1:])
    enc_text = trawl.components.Encoder.document_text
    assert all(enc_text(None, c).startswith("Big\n") for c in chunks[1:])  # type: ignore[arg-type]


def test_html_headings_become_sections() -> None:
    (doc,) = _read(HtmlReader(), "g.html", HTML.encode()).documents
    assert "var x" not in doc.text
    sections = {c.metadata.get("section"): c.text for c in _chunks(doc)}
    assert sections["Birds > Owls"].startswith("Owls") and "night" in sections["Birds > Owls"]
    assert "gills" in sections["Fish"]


def test_csv_rows_keep_their_columns_and_numbers() -> None:
    (doc,) = _read(CsvReader(), "p.csv", csv_bytes()).documents
    assert doc.metadata["columns"] == ["name", "city", "age"]
    lines = doc.text.split("\n")
    assert lines[0] == "name: person 0; city: Lima; age: 20" and len(lines) == 30
    chunks = _chunks(doc, 60)
    assert len(chunks) > 2
    for c in chunks:
        first = doc.text[c.start:c.end].lstrip("\n").split("\n")[0]
        assert first == lines[c.metadata["row_start"] - 2]  # row 1 is the header
        assert c.metadata["row_end"] >= c.metadata["row_start"]
    assert chunks[-1].metadata["row_end"] == 31


def test_notebook_cells_and_optional_outputs() -> None:
    data = notebook_bytes()
    (doc,) = _read(NotebookReader(), "n.ipynb", data).documents
    assert doc.metadata["language"] == "python" and doc.metadata["title"] == "Owl analysis"
    assert "print('hello owls')" in doc.text and "hello owls\n" not in doc.text
    (c,) = [c for c in _chunks(doc) if c.metadata.get("section") == "Owl analysis > Results"]
    assert c.metadata["cell_start"] == 3 and c.text.startswith("## Results")
    with_outputs = NotebookReader(NotebookReader.Config(outputs=True))
    (doc2,) = _read(with_outputs, "n.ipynb", data).documents
    assert "print('hello owls')\nhello owls" in doc2.text


def test_epub_chapters_in_reading_order(tmp_path: Path) -> None:
    (doc,) = _read(EpubReader(), "b.epub", epub_bytes(tmp_path)).documents
    assert doc.metadata["title"] == "Sea Stories"
    assert doc.text.index("harbour") < doc.text.index("lighthouse")
    chapters = [c.metadata.get("chapter") for c in _chunks(doc)]
    assert "The Harbour" in chapters and "The Storm" in chapters
    later = [c for c in _chunks(doc) if c.metadata.get("section") == "The Storm > Later"]
    assert later and later[0].metadata["context"] == "Sea Stories > The Storm"


def test_email_headers_body_and_text_attachments() -> None:
    (doc,) = _read(EmailReader(), "m.eml", email_message().as_bytes()).documents
    m = doc.metadata
    assert m["subject"] == m["title"] == "Owl census 0" and m["from"] == "Ada <ada@example.org>"
    assert m["message_id"] == "<m0@example.org>" and m["attachments"] == 2
    assert doc.text.startswith("We counted 12 owls")
    assert "Attachment: counts.csv\nspecies,count" in doc.text and "PNG" not in doc.text
    parts = {c.metadata.get("part") for c in _chunks(doc)}
    assert parts == {"body", "counts.csv"}


def test_mbox_one_document_per_message(tmp_path: Path) -> None:
    out = _read(MboxReader(), "mail.mbox", mbox_bytes(tmp_path))
    assert [d.id for d in out.documents] == ["d/mail.mbox:1", "d/mail.mbox:2", "d/mail.mbox:3"]
    assert [d.metadata["subject"] for d in out.documents] == [f"Owl census {n}" for n in range(3)]


# -- the hook ------------------------------------------------------------------------------
class ShoutReader(Reader):
    """A plugin's reader for ``.shout`` files (and, more specifically, ``notes.txt``)."""

    suffixes = frozenset({".shout"})
    filenames = frozenset({"notes.txt"})

    def read(self, source: SourceFile) -> ReadOutput:
        if not source.data.isupper():
            raise UnreadableFileError("a .shout file is all capitals")
        out = ReadOutput()
        out.add(Document(id=source.doc_id, text=source.data.decode(),
                         metadata={"path": source.path}), len(source.data))
        return out


class ShoutPlugin:
    @trawl.hookimpl
    def register_readers(self, register: Any) -> None:
        register(ShoutReader, name="shout")


def test_core_readers_are_registered_and_picked_by_name() -> None:
    host = PluginHost(entry_points=False)
    names = set(host.registry.names("reader"))
    assert {"text", "markdown", "html", "pdf", "jsonl", "beir", "csv", "notebook", "epub",
            "email", "mbox"} <= names
    readers = ReaderSet(host.registry)
    picks = {n: readers.pick(n).name for n in (  # type: ignore[union-attr]
        "a.md", "A.MD", "x/corpus.jsonl", "b.jsonl", "c.pdf", "d.csv", "e.ipynb", "f.epub",
        "g.eml", "h.mbox", "i.htm", "Makefile", "j.unknown")}
    assert picks == {"a.md": "markdown", "A.MD": "markdown", "x/corpus.jsonl": "beir",
                     "b.jsonl": "jsonl", "c.pdf": "pdf", "d.csv": "csv", "e.ipynb": "notebook",
                     "f.epub": "epub", "g.eml": "email", "h.mbox": "mbox", "i.htm": "html",
                     "Makefile": "text", "j.unknown": "text"}


def test_a_plugin_reader_claims_files_and_is_listed(tmp_path: Path) -> None:
    host = PluginHost(entry_points=False, plugins=[("shout", ShoutPlugin())])
    (info,) = [i for i in host.plugin_infos() if i.name == "shout"]
    assert {"kind": "reader", "name": "shout"}.items() <= info.components[0].items()
    readers = ReaderSet(host.registry)
    assert readers.pick("x.shout").name == "shout"  # type: ignore[union-attr]
    assert readers.pick("notes.txt").name == "shout"  # type: ignore[union-attr]
    assert readers.pick("other.txt").name == "text"  # type: ignore[union-attr]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.shout").write_bytes(b"HELLO OWLS")
    (tmp_path / "d" / "b.shout").write_bytes(b"quiet owls")
    from trawl.ingest import load_documents

    got = list(load_documents([tmp_path / "d"], host=host))
    docs = [g for g in got if isinstance(g, Document)]
    skipped = [g for g in got if not isinstance(g, Document)]
    assert [d.text for d in docs] == ["HELLO OWLS"]
    assert [(Path(s.path).name, s.reason) for s in skipped] == [
        ("b.shout", "a .shout file is all capitals")]


class TestShoutReader(ReaderContract):
    """The kit on a plugin's reader (the example plugin runs it too)."""

    @pytest.fixture
    def reader(self) -> Reader:
        return ShoutReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("a.shout", b"HELLO OWLS")]


def test_the_context_header_can_be_switched_off() -> None:
    reader = MarkdownReader(MarkdownReader.Config(context_header=False))
    (doc,) = _read(reader, "guide.md", MARKDOWN.encode()).documents
    chunks = _chunks(doc)
    assert {c.metadata.get("section") for c in chunks} >= {"Birds > Owls", "Fish"}
    assert not any("context" in c.metadata for c in chunks)
