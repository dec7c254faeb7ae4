"""Office files written by python-docx, python-pptx and openpyxl in the test, read back
by plugins/trawl_office with their sections, slides, sheets and rows checked; and a folder
with a corrupt .docx, a binary .py and an over-limit spreadsheet still indexes the rest."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import trawl_office
from tests.conftest import HASHING_PIPELINE, HashingPlugin
from trawl import Document, PluginHost, Reader, SourceFile, Trawl
from trawl.chunking import chunk_document
from trawl.components import word_spans
from trawl.ingest import index_paths, read_with
from trawl.testing import ReaderContract

docx = pytest.importorskip("docx")
pptx = pytest.importorskip("pptx")
openpyxl = pytest.importorskip("openpyxl")
from trawl_office.readers import DocxReader, PptxReader, XlsxReader  # noqa: E402


def docx_bytes() -> bytes:
    d = docx.Document()
    d.core_properties.title = "Owl report"
    d.add_heading("Owl report", level=0)
    d.add_paragraph("A survey of owls.")
    d.add_heading("Barn owls", level=1)
    d.add_paragraph("Barn owls nest in barns.")
    d.add_heading("Diet", level=2)
    d.add_paragraph("They eat voles.")
    table = d.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "prey", "share"
    table.cell(1, 0).text, table.cell(1, 1).text = "vole", "60%"
    d.add_heading("Snowy owls", level=1)
    d.add_paragraph("Snowy owls hunt by day.")
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


def pptx_bytes() -> bytes:
    deck = pptx.Presentation()
    for title, body, notes in [("Owls", "Night hunters", "say hello"),
                               ("Gulls", "Sea birds", ""), ("Fish", "Gills", "last slide")]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    buf = io.BytesIO()
    deck.save(buf)
    return buf.getvalue()


def xlsx_bytes(rows: int = 40) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Birds"
    sheet.append(["name", "count"])
    for i in range(rows):
        sheet.append([f"bird {i}", i])
    other = book.create_sheet("Fish")
    other.append([1.5, "cod"])
    other.append([2, "ling"])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def _read(reader: Reader, name: str, data: bytes) -> Document:
    (doc,) = read_with(reader, SourceFile(path=f"/d/{name}", data=data,
                                          doc_id=f"d/{name}")).documents
    return doc


class TestDocxReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return DocxReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("report.docx", docx_bytes())]

    @pytest.fixture
    def bad_files(self) -> list[tuple[str, bytes]]:
        good = docx_bytes()
        return [("cut.docx", good[: len(good) // 2]), ("noise.docx", bytes(range(256)) * 4)]


class TestPptxReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return PptxReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("deck.pptx", pptx_bytes())]

    @pytest.fixture
    def bad_files(self) -> list[tuple[str, bytes]]:
        return [("docx-named.pptx", docx_bytes()), ("cut.pptx", pptx_bytes()[:3000])]


class TestXlsxReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return XlsxReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("birds.xlsx", xlsx_bytes())]

    @pytest.fixture
    def bad_files(self) -> list[tuple[str, bytes]]:
        return [("cut.xlsx", xlsx_bytes()[:2000]), ("text.xlsx", b"name,count\nowl,3\n")]


def test_docx_headings_become_sections() -> None:
    doc = _read(DocxReader(), "r.docx", docx_bytes())
    assert doc.metadata["title"] == "Owl report"
    chunks = {c.metadata.get("section"): c for c in chunk_document(doc, word_spans, 200, 0)}
    assert set(chunks) == {None, "Barn owls", "Barn owls > Diet", "Snowy owls"}
    diet = chunks["Barn owls > Diet"]
    assert diet.text.startswith("Diet\n\nThey eat voles.") and "vole | 60%" in diet.text
    assert diet.metadata["context"] == "Owl report > Barn owls"
    assert doc.text[diet.start:diet.end] == diet.text


def test_pptx_one_section_per_slide_with_notes() -> None:
    doc = _read(PptxReader(), "d.pptx", pptx_bytes())
    assert doc.metadata["slides"] == 3 and doc.metadata["title"] == "Owls"
    chunks = chunk_document(doc, word_spans, 200, 0)
    assert [c.metadata["slide"] for c in chunks] == [1, 2, 3]
    assert chunks[0].text.strip() == "Owls\nNight hunters\nNotes: say hello"
    assert chunks[1].metadata["section"] == "Slide 2: Gulls"
    assert chunks[1].metadata["context"] == "Owls > Slide 2"  # its title opens the text


def test_xlsx_sheets_rows_and_columns() -> None:
    doc = _read(XlsxReader(), "b.xlsx", xlsx_bytes())
    assert doc.metadata["sheets"] == ["Birds", "Fish"]
    chunks = chunk_document(doc, word_spans, 60, 0)
    birds = [c for c in chunks if c.metadata["sheet"] == "Birds"]
    fish = [c for c in chunks if c.metadata["sheet"] == "Fish"]
    assert len(birds) > 2 and len(fish) == 1
    assert birds[0].text.startswith("Sheet: Birds\nname: bird 0; count: 0")
    for c in birds:
        first_row = next(ln for ln in c.text.split("\n") if ln.startswith("name: "))
        assert first_row.startswith(f"name: bird {c.metadata['row_start'] - 2};")
    assert birds[-1].metadata["row_end"] == 41
    assert "A: 1.5; B: cod" in fish[0].text and fish[0].metadata["row_start"] == 1


def test_xlsx_rows_past_the_limit_are_reported() -> None:
    reader = XlsxReader(XlsxReader.Config(max_rows=10))
    out = read_with(reader, SourceFile(path="/d/b.xlsx", data=xlsx_bytes(), doc_id="d/b.xlsx"))
    assert "bird 8" in out.documents[0].text and "bird 9;" not in out.documents[0].text
    assert out.problems == [("/d/b.xlsx:Birds", "rows after 10 not indexed (max_rows)")]


def test_a_folder_with_bad_files_indexes_everything_else(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "report.docx").write_bytes(docx_bytes())
    (folder / "corrupt.docx").write_bytes(docx_bytes()[:1500])
    (folder / "deck.pptx").write_bytes(pptx_bytes())
    (folder / "tool.py").write_bytes(b"\x00\x01\x02ELF" * 100)
    (folder / "huge.xlsx").write_bytes(xlsx_bytes(rows=3000))
    (folder / "notes.md").write_text("# Notes\n\nOwls.\n")
    host = PluginHost(entry_points=False, plugins=[("hashing-test", HashingPlugin),
                                                   ("office", trawl_office)])
    with Trawl.open(tmp_path / "idx", pipeline=HASHING_PIPELINE, host=host,
                    show_progress=False) as t:
        report = index_paths(t, [folder], show_progress=False, max_bytes=40_000)
        reasons = {Path(s.path).name: s.reason for s in report.skipped}
        assert len(report.skipped) == 3 and report.added == 3
        assert reasons["corrupt.docx"].startswith("not a valid Word (.docx) file")
        assert reasons["tool.py"].startswith("binary file")
        assert reasons["huge.xlsx"].startswith("file too large")
        assert {d.id for d in t.documents()} == {"docs/report.docx", "docs/deck.pptx",
                                                  "docs/notes.md"}
        again = index_paths(t, [folder], show_progress=False, max_bytes=40_000)
        assert again.unchanged == 3 and len(again.skipped) == 3
