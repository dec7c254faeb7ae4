"""``.docx`` (headings become sections), ``.pptx`` (a section per slide, speaker notes
included) and ``.xlsx`` (a section per sheet, rows as ``column: value``; read-only mode,
so a large workbook streams row by row)."""

from __future__ import annotations

import io
import re
from typing import Any

from pydantic import Field

from trawl import ComponentConfig, Reader, ReadOutput, SourceFile
from trawl.chunking import CONTEXT, CONTEXT_HEAD, CUT_AT_LINES, MARKS, SECTIONS
from trawl.errors import MissingDependencyError
from trawl.ingest.formats import check_archive, render_rows
from trawl.ingest.readers import SkipFile, file_metadata, heading_sections, one_document

_HEADING_STYLE = re.compile(r"^heading\s*(\d)$", re.I)


def _need(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, "office", purpose=f"reading {module} files"
                                     ) from exc


def _broken(kind: str, exc: Exception) -> SkipFile:
    return SkipFile(f"not a valid {kind} file: {type(exc).__name__}: {exc}")


# -- Word ------------------------------------------------------------------------------------
class DocxReader(Reader):
    """Word documents: paragraphs and tables in order; ``Heading N`` paragraphs become
    sections, the ``Title`` paragraph (or the document's title property) the title."""

    suffixes = frozenset({".docx", ".docm"})
    mime_types = frozenset({
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document"})

    def read(self, source: SourceFile) -> ReadOutput:
        docx = _need("docx", "python-docx")
        check_archive(source.data, "Word (.docx)")
        try:
            document = docx.Document(io.BytesIO(source.data))
            parts, headings, title = _docx_parts(document)
            prop_title = (document.core_properties.title or "").strip()
        except SkipFile:
            raise
        except Exception as exc:  # python-docx raises KeyError/ValueError/lxml errors
            raise _broken("Word (.docx)", exc) from exc
        text = "".join(parts).strip("\n")
        if not text.strip():
            raise SkipFile("no text in this document")
        meta = file_metadata(source, "docx", prop_title or title)
        sections = heading_sections(headings, len(text), meta["title"])
        if sections:
            meta[SECTIONS] = sections
        return one_document(source, text, meta)


def _docx_parts(document: Any) -> tuple[list[str], list[tuple[int, int, str]], str]:
    from docx.table import Table

    parts: list[str] = []
    headings: list[tuple[int, int, str]] = []
    title = ""
    pos = 0
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            rows = [" | ".join(" ".join(c.text.split()) for c in row.cells)
                    for row in block.rows]
            body = "\n".join(r for r in rows if r.strip(" |"))
        else:
            body = block.text.strip()
            style = (block.style.name if block.style is not None else "") or ""
            m = _HEADING_STYLE.match(style)
            if body and style.lower() == "title" and not title:
                title = " ".join(body.split())
            elif body and m:
                headings.append((pos, int(m.group(1)), " ".join(body.split())))
        if not body:
            continue
        parts.append(body + "\n\n")
        pos += len(body) + 2
    return parts, headings, title


# -- PowerPoint ------------------------------------------------------------------------------
class PptxReader(Reader):
    """PowerPoint decks: one section per slide (its title, its text frames and tables,
    then its speaker notes)."""

    suffixes = frozenset({".pptx", ".pptm"})
    mime_types = frozenset({
        "application/vnd.openxmlformats-officedocument.presentationml.presentation"})

    def read(self, source: SourceFile) -> ReadOutput:
        pptx = _need("pptx", "python-pptx")
        check_archive(source.data, "PowerPoint (.pptx)")
        try:
            deck = pptx.Presentation(io.BytesIO(source.data))
            slides = [_slide(slide) for slide in deck.slides]
            prop_title = (deck.core_properties.title or "").strip()
        except Exception as exc:
            raise _broken("PowerPoint (.pptx)", exc) from exc
        doc_title = prop_title or next((t for t, _ in slides if t), "")
        parts: list[str] = []
        sections: list[dict[str, Any]] = []
        pos = 0
        for number, (slide_title, body) in enumerate(slides, start=1):
            if not body.strip():
                continue
            name = f"Slide {number}" + (f": {slide_title}" if slide_title else "")
            sections.append({"start": pos, "end": pos + len(body), "labels": {
                "slide": number, "section": name,
                CONTEXT: f"{doc_title} > {name}" if doc_title else name,
                CONTEXT_HEAD: f"{doc_title} > Slide {number}" if doc_title else ""}})
            parts.append(body)
            pos += len(body) + 2
        text = "\n\n".join(parts)
        if not text.strip():
            raise SkipFile(f"no text on {len(slides)} slide(s)")
        meta = file_metadata(source, "pptx", doc_title)
        meta.update({"slides": len(slides), SECTIONS: sections})
        return one_document(source, text, meta)


def _slide(slide: Any) -> tuple[str, str]:
    title_shape = slide.shapes.title
    title = " ".join(title_shape.text_frame.text.split()) if (
        title_shape is not None and title_shape.has_text_frame) else ""
    lines: list[str] = [title] if title else []
    for shape in _shapes(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue  # python-pptx hands out a new proxy per access: compare ids
        if getattr(shape, "has_text_frame", False) and shape.text_frame.text.strip():
            lines.append(shape.text_frame.text.strip())
        if getattr(shape, "has_table", False):
            for row in shape.table.rows:
                cells = [" ".join(c.text.split()) for c in row.cells]
                if any(cells):
                    lines.append(" | ".join(cells))
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None and notes.text.strip():
            lines.append("Notes: " + notes.text.strip())
    return title, "\n".join(lines)


def _shapes(shapes: Any) -> Any:
    for shape in shapes:
        if getattr(shape, "shape_type", None) == 6:  # MSO_SHAPE_TYPE.GROUP
            yield from _shapes(shape.shapes)
        else:
            yield shape


# -- Excel -----------------------------------------------------------------------------------
class XlsxConfig(ComponentConfig):
    max_rows: int = Field(100_000, ge=1, description=(
        "rows read per sheet; the rest is reported, not indexed"))


class XlsxReader(Reader):
    """Excel workbooks (openpyxl, read-only, cached values): one section per sheet; the
    first row names the columns when it is all text; rows as ``row_start``/``row_end``."""

    suffixes = frozenset({".xlsx", ".xlsm"})
    mime_types = frozenset({
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"})
    Config = XlsxConfig

    def read(self, source: SourceFile) -> ReadOutput:
        openpyxl = _need("openpyxl", "openpyxl")
        check_archive(source.data, "Excel (.xlsx)")
        max_rows: int = getattr(self.config, "max_rows", 100_000)
        problems: list[tuple[str, str]] = []
        try:
            book = openpyxl.load_workbook(io.BytesIO(source.data), read_only=True,
                                          data_only=True)
        except Exception as exc:
            raise _broken("Excel (.xlsx)", exc) from exc
        try:
            title = (book.properties.title or "").strip() if book.properties else ""
            sheets = []
            for sheet in book.worksheets:
                rows = []
                for n, row in enumerate(sheet.iter_rows(values_only=True), start=1):
                    if n > max_rows:
                        problems.append((f"{source.path}:{sheet.title}",
                                         f"rows after {max_rows:,} not indexed (max_rows)"))
                        break
                    rows.append(row)
                sheets.append((sheet.title, rows))
        except Exception as exc:
            raise _broken("Excel (.xlsx)", exc) from exc
        finally:
            book.close()
        parts: list[str] = []
        sections: list[dict[str, Any]] = []
        marks: list[list[int]] = []
        pos = 0
        for name, rows in sheets:
            header_row = next((i for i, r in enumerate(rows) if any(
                v is not None and str(v).strip() for v in r)), None)
            if header_row is None:
                continue
            first = rows[header_row]
            if all(isinstance(v, str) and v.strip() for v in first if v is not None):
                header = [str(v).strip() if v is not None else f"column {i + 1}"
                          for i, v in enumerate(first)]
                body, sheet_marks = render_rows(header, rows[header_row + 1:],
                                                first_row=header_row + 2)
            else:
                header = [_column_letter(i) for i in range(max(len(r) for r in rows))]
                body, sheet_marks = render_rows(header, rows, first_row=1)
            if not body:
                continue
            body = f"Sheet: {name}\n{body}"
            shift = pos + len(f"Sheet: {name}\n")
            if sheet_marks:
                marks.append([pos, sheet_marks[0][1]])
            marks.extend([[o + shift, row] for o, row in sheet_marks])
            sections.append({"start": pos, "end": pos + len(body), "labels": {
                "sheet": name, "section": name,
                CONTEXT: f"{title} > {name}" if title else f"{source.name} > {name}"}})
            parts.append(body)
            pos += len(body) + 2
        text = "\n\n".join(parts)
        if not text.strip():
            raise SkipFile(f"no values in {len(sheets)} sheet(s)")
        meta = file_metadata(source, "xlsx", title)
        meta.update({"sheets": [n for n, _ in sheets], SECTIONS: sections,
                     MARKS: {"row": marks}, CUT_AT_LINES: True})
        out = one_document(source, text, meta)
        out.problems.extend(problems)
        return out


def _column_letter(i: int) -> str:
    name = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        name = chr(65 + r) + name
    return name
