"""Core's file formats, registered through the ``register_readers`` hook like any
plugin's: the readers in ``readers.py`` and the ones below, which need only the standard
library (and selectolax from the ``ingest`` extra for HTML inside e-books and mail).

- ``.csv``/``.tsv``: one line per row as ``column: value; ...`` (every chunk keeps the
  header's meaning), rows as ``row_start``/``row_end``.
- ``.ipynb``: read as JSON (nbformat 4 is a stable JSON schema; nbformat itself would
  add jsonschema and traitlets to the install), markdown and code cells, outputs
  optional, cells as ``cell_start``/``cell_end``.
- ``.epub``: a zip of XHTML; chapters in spine order become sections (the HTML reader
  does the XHTML; ebooklib would add lxml for the same result).
- ``.eml``/``.mbox``: the ``email`` package; headers as metadata, the body, and text
  attachments as sections.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from posixpath import dirname, normpath
from posixpath import join as urljoin
from typing import Any
from urllib.parse import unquote
from xml.etree import ElementTree

from pydantic import Field

from ..chunking import CONTEXT, CONTEXT_HEAD, CUT_AT_LINES, MARKS, SECTIONS
from ..components import ComponentConfig, Reader, ReadOutput, SourceFile
from ..hookspecs import hookimpl
from ..models import Document
from .readers import (
    BeirReader,
    HtmlReader,
    JsonlReader,
    MarkdownReader,
    PdfReader,
    SkipFile,
    TextReader,
    decode,
    file_metadata,
    heading_sections,
    html_document,
    one_document,
)

#: An archive (e-book) whose members unpack to more than this is refused: a zip bomb.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024


def check_archive(data: bytes, kind: str) -> None:
    """Refuse what is not a zip (EPUB and Office files are zips) or unpacks to more than
    ``MAX_UNPACKED_BYTES`` (a zip bomb), before a library opens it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(i.file_size for i in archive.infolist())
    except (zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise SkipFile(f"not a valid {kind} file (not a zip archive: {exc})") from exc
    if unpacked > MAX_UNPACKED_BYTES:
        raise SkipFile(f"unpacks to {unpacked:,} bytes (over {MAX_UNPACKED_BYTES:,}: "
                       "a zip bomb?)")


class CsvReader(Reader):
    """Comma- or tab-separated tables (stdlib ``csv``); the first row names the columns."""

    suffixes = frozenset({".csv", ".tsv"})
    mime_types = frozenset({"text/csv", "text/tab-separated-values"})

    def read(self, source: SourceFile) -> ReadOutput:
        text = decode(source.data, encodings=source.encodings)
        if not text.strip():
            raise SkipFile("only whitespace")
        delimiter = "\t" if source.suffix == ".tsv" else ","
        if source.suffix != ".tsv":
            try:
                delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
            except csv.Error:
                delimiter = ","
        try:
            rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        except csv.Error as exc:
            raise SkipFile(f"not valid CSV: {exc}") from exc
        rows = [r for r in rows if any(cell.strip() for cell in r)]
        if not rows:
            raise SkipFile("no rows")
        header = [h.strip() or f"column {i + 1}" for i, h in enumerate(rows[0])]
        body, marks = render_rows(header, rows[1:], first_row=2)
        if not body:
            body, marks = render_rows([f"column {i + 1}" for i in range(len(rows[0]))], rows,
                                      first_row=1)
        meta = file_metadata(source, "csv", "")
        meta.update({"columns": header, "rows": len(rows) - 1, MARKS: {"row": marks},
                     CUT_AT_LINES: True})
        return one_document(source, body, meta)


def render_rows(header: list[str], rows: Any, first_row: int
                ) -> tuple[str, list[list[int]]]:
    """``column: value; ...`` per row (empty cells left out) and ``[offset, row]`` marks."""
    lines: list[str] = []
    marks: list[list[int]] = []
    pos = 0
    for number, row in enumerate(rows, start=first_row):
        cells = [f"{header[i] if i < len(header) else f'column {i + 1}'}: {v}"
                 for i, v in enumerate(row) if v is not None and str(v).strip()]
        if not cells:
            continue
        line = "; ".join(" ".join(str(c).split()) for c in cells)
        marks.append([pos, number])
        lines.append(line)
        pos += len(line) + 1
    return "\n".join(lines), marks


class NotebookConfig(ComponentConfig):
    outputs: bool = Field(False, description="also index code cells' text outputs")


class NotebookReader(Reader):
    """Jupyter notebooks (nbformat 4 JSON): markdown and code cells in order."""

    suffixes = frozenset({".ipynb"})
    mime_types = frozenset({"application/x-ipynb+json"})
    Config = NotebookConfig

    def read(self, source: SourceFile) -> ReadOutput:
        try:
            nb = json.loads(decode(source.data, encodings=source.encodings))
        except json.JSONDecodeError as exc:
            raise SkipFile(f"not a notebook: invalid JSON at line {exc.lineno}: "
                           f"{exc.msg}") from exc
        if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
            raise SkipFile("not a notebook: no 'cells' list (nbformat 4 expected)")
        show_outputs = bool(getattr(self.config, "outputs", False))
        parts: list[str] = []
        marks: list[list[Any]] = []
        headings: list[tuple[int, int, str]] = []
        pos = 0
        for number, cell in enumerate(nb["cells"], start=1):
            if not isinstance(cell, dict):
                continue
            kind = cell.get("cell_type")
            body = _joined(cell.get("source"))
            if kind == "code" and show_outputs:
                outs = [_joined(o.get("text") or (o.get("data") or {}).get("text/plain"))
                        for o in cell.get("outputs") or [] if isinstance(o, dict)]
                body = "\n".join([body, *[o for o in outs if o.strip()]])
            if kind not in ("markdown", "code", "raw") or not body.strip():
                continue
            if kind == "markdown":
                for m in re.finditer(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", body, re.M):
                    headings.append((pos + m.start(), len(m.group(1)), m.group(2).strip()))
            marks.append([pos, number])
            parts.append(body)
            pos += len(body) + 2
        text = "\n\n".join(parts)
        if not text.strip():
            raise SkipFile("no cells with text")
        meta_nb: dict[str, Any] = nb["metadata"] if isinstance(nb.get("metadata"), dict) else {}
        lang = ((meta_nb.get("kernelspec") or {}).get("language")
                or (meta_nb.get("language_info") or {}).get("name") or "")
        title = next((h for _, level, h in headings if level == 1), "")
        meta = file_metadata(source, "notebook", title)
        meta.update({"cells": len(nb["cells"]), MARKS: {"cell": marks}})
        if isinstance(lang, str) and lang:
            meta["language"] = lang
        sections = heading_sections(headings, len(text), meta["title"])
        if sections:
            meta[SECTIONS] = sections
        return one_document(source, text, meta)


def _joined(value: Any) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    return value if isinstance(value, str) else ""


class EpubReader(Reader):
    """EPUB e-books: the chapters in reading (spine) order; each is a section."""

    suffixes = frozenset({".epub"})
    mime_types = frozenset({"application/epub+zip"})

    def read(self, source: SourceFile) -> ReadOutput:
        check_archive(source.data, "EPUB")
        try:
            with zipfile.ZipFile(io.BytesIO(source.data)) as book:
                title, chapters = _epub_chapters(book)
        except (zipfile.BadZipFile, KeyError, ElementTree.ParseError, EOFError) as exc:
            raise SkipFile(f"not a valid EPUB: {type(exc).__name__}: {exc}") from exc
        parts: list[str] = []
        sections: list[dict[str, Any]] = []
        pos = 0
        for number, (chapter_title, text, headings) in enumerate(chapters, start=1):
            if not text.strip():
                continue
            name = chapter_title or next((h for _, _, h in headings), "") or f"Chapter {number}"
            labels = {"chapter": name, "section": name,
                      CONTEXT: f"{title} > {name}" if title else name, CONTEXT_HEAD: title}
            sections.append({"start": pos, "end": pos + len(text), "labels": labels})
            for sub in heading_sections([(o, lv, h) for o, lv, h in headings if o > 0],
                                        len(text), ""):
                sub["start"] += pos
                sub["end"] += pos
                lab = sub["labels"]
                lab["section"] = f"{name} > {lab['section']}"
                lab[CONTEXT] = " > ".join(p for p in (title, lab["section"]) if p)
                lab[CONTEXT_HEAD] = " > ".join(p for p in (title, name, lab[CONTEXT_HEAD]) if p)
                lab["chapter"] = name
                sections.append(sub)
            parts.append(text)
            pos += len(text) + 2
        full = "\n\n".join(parts)
        if not full.strip():
            raise SkipFile("no chapters with text")
        meta = file_metadata(source, "epub", title)
        meta.update({"chapters": len(sections), SECTIONS: sections})
        return one_document(source, full, meta)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _epub_chapters(book: zipfile.ZipFile) -> tuple[str, list[tuple[str, str, Any]]]:
    container = ElementTree.fromstring(book.read("META-INF/container.xml"))
    rootfile = next((e.get("full-path") for e in container.iter()
                     if _local(e.tag) == "rootfile" and e.get("full-path")), None)
    if not rootfile:
        raise SkipFile("not a valid EPUB: META-INF/container.xml names no rootfile")
    opf = ElementTree.fromstring(book.read(rootfile))
    base = dirname(rootfile)
    title = ""
    manifest: dict[str, str] = {}
    spine: list[str] = []
    for e in opf.iter():
        tag = _local(e.tag)
        if tag == "title" and not title and e.text:
            title = " ".join(e.text.split())
        elif tag == "item" and e.get("id") and e.get("href"):
            manifest[str(e.get("id"))] = str(e.get("href"))
        elif tag == "itemref" and e.get("idref"):
            spine.append(str(e.get("idref")))
    chapters = []
    for idref in spine:
        href = manifest.get(idref)
        if href is None:
            continue
        member = normpath(urljoin(base, unquote(href.split("#", 1)[0])))
        try:
            raw = book.read(member)
        except KeyError:
            continue
        text, chapter_title, headings = html_document(decode(raw))
        chapters.append((chapter_title, text, headings))
    return title, chapters


# -- mail ------------------------------------------------------------------------------
_HEADERS = (("from", "from"), ("to", "to"), ("cc", "cc"), ("date", "date"),
            ("message-id", "message_id"), ("subject", "subject"))


def message_document(msg: EmailMessage, source: SourceFile, doc_id: str, kind: str,
                     extra: dict[str, Any] | None = None) -> Document | None:
    """One message: headers as metadata, the body (plain, else HTML as text), then its
    text attachments, each a section."""
    meta = file_metadata(source, kind, str(msg.get("subject") or "").strip())
    for header, key in _HEADERS:
        value = msg.get(header)
        if value is not None and str(value).strip():
            meta[key] = " ".join(str(value).split())
    parts: list[str] = []
    sections: list[dict[str, Any]] = []
    pos = 0
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is not None:
        text = _part_text(body)
        if text.strip():
            parts.append(text)
            sections.append({"start": 0, "end": len(text), "labels": {"part": "body"}})
            pos = len(text) + 2
    for att in msg.iter_attachments():
        if att.get_content_maintype() != "text":
            continue
        text = _part_text(att)
        if not text.strip():
            continue
        name = att.get_filename() or att.get_content_type()
        header = f"Attachment: {name}\n"
        labels = {"part": name, CONTEXT: f"{meta['title']} > {name}"}
        sections.append({"start": pos, "end": pos + len(header) + len(text), "labels": labels})
        parts.append(header + text)
        pos += len(header) + len(text) + 2
    full = "\n\n".join(parts)
    if not full.strip():
        return None
    meta["attachments"] = sum(1 for _ in msg.iter_attachments())
    meta.update(extra or {})
    if len(sections) > 1:
        meta[SECTIONS] = sections
    return Document(id=doc_id, text=full, metadata=meta)


def _part_text(part: Any) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        return html_document(content)[0]
    return content.replace("\r\n", "\n").strip()


def _parse(data: bytes) -> EmailMessage:
    msg = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


class EmailReader(Reader):
    """One ``.eml`` message (the ``email`` package)."""

    suffixes = frozenset({".eml"})
    mime_types = frozenset({"message/rfc822"})

    def read(self, source: SourceFile) -> ReadOutput:
        if b"\x00" in source.data[:8192]:
            raise SkipFile("binary file (NUL byte), not a mail message")
        msg = _parse(source.data)
        if not msg.keys():
            raise SkipFile("not a mail message: no headers")
        doc = message_document(msg, source, source.doc_id, "email")
        if doc is None:
            raise SkipFile("no text in the message body or attachments")
        out = ReadOutput()
        out.add(doc, len(source.data))
        return out


_FROM_LINE = re.compile(rb"^From [^\r\n]*\r?\n", re.M)


class MboxReader(Reader):
    """An mbox mailbox: one document per message, ``<file id>:<n>``."""

    suffixes = frozenset({".mbox"})
    mime_types = frozenset({"application/mbox"})

    def read(self, source: SourceFile) -> ReadOutput:
        if not source.data.startswith(b"From "):
            raise SkipFile("not an mbox file (it must start with a 'From ' line)")
        starts = [m.start() for m in _FROM_LINE.finditer(source.data)]
        out = ReadOutput()
        for n, (a, b) in enumerate(zip(starts, [*starts[1:], len(source.data)],
                                       strict=True), start=1):
            chunk = source.data[a:b]
            body = chunk[chunk.find(b"\n") + 1:]
            body = re.sub(rb"^>(>*From )", rb"\1", body, flags=re.M)  # mboxrd unquoting
            doc = message_document(_parse(body), source, f"{source.doc_id}:{n}", "mbox",
                                   {"message": n})
            if doc is None:
                out.problems.append((f"{source.path}:message {n}", "no text"))
                continue
            out.add(doc, b - a)
        if not out.documents and not out.problems:
            raise SkipFile("no messages")
        return out


@hookimpl
def register_readers(register: Any) -> None:
    for name, cls in (("text", TextReader), ("markdown", MarkdownReader),
                      ("html", HtmlReader), ("pdf", PdfReader), ("jsonl", JsonlReader),
                      ("beir", BeirReader), ("csv", CsvReader), ("notebook", NotebookReader),
                      ("epub", EpubReader), ("email", EmailReader), ("mbox", MboxReader)):
        register(cls, name=name)
