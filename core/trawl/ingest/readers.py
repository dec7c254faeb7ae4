"""Turn one file's bytes into documents: plain text, Markdown, HTML, PDF, JSONL, BEIR.

Readers never raise on bad input: they raise ``SkipFile`` with a reason the ingest
summary shows, or report per-record problems (JSONL) next to the documents they could
read. ``pypdf`` and ``selectolax`` are imported only when a PDF or HTML file turns up.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..chunking import PAGE_OFFSETS
from ..errors import MissingDependencyError
from ..models import Document, text_hash
from .walk import FileEntry, SkipEntry, display_path

#: Bump when a reader's output changes, so unchanged files are read again once.
READER_VERSION = 1

TEXT_SUFFIXES = frozenset({".txt", ".text", ".rst", ".adoc", ".org", ".log", ".csv", ".tsv"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mdx"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
BEIR_CORPUS_NAME = "corpus.jsonl"
SNIFF_BYTES = 8192
TITLE_MAX = 120


class SkipFile(Exception):
    """This file cannot be ingested; ``reason`` says why (shown per file in the summary)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class ReadResult:
    """Documents read from one file, each with a progress weight (bytes it stands for)."""

    docs: list[Document] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)
    problems: list[SkipEntry] = field(default_factory=list)


def source_type(path: Path) -> str:
    """``text``, ``markdown``, ``html``, ``pdf``, ``jsonl`` or ``beir`` (by name)."""
    suffix = path.suffix.lower()
    if path.name.lower() == BEIR_CORPUS_NAME:
        return "beir"
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in HTML_SUFFIXES:
        return "html"
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    return "text"  # anything else is read as text if it decodes (binary files are skipped)


# -- decoding --------------------------------------------------------------------------
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_HTML_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]{0,100}?encoding\s*=\s*["']([A-Za-z0-9_.:-]+)""")


def _guess_encoding(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:
        return None
    try:
        best = from_bytes(data[:65536]).best()
    except Exception:  # a guess is a courtesy; never fail the file over it
        return None
    return None if best is None else str(best.encoding)


def decode(data: bytes, *, declared: str | None = None, encodings: Sequence[str] = ()) -> str:
    """UTF-8 (BOMs honoured), else a declared encoding, else the caller's fallbacks.

    Binary data (a NUL byte in the first 8 KiB, without a UTF-16/32 BOM) and text in an
    unknown encoding raise ``SkipFile``; the reason names a guessed encoding when
    ``charset_normalizer`` is installed.
    """
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec)
            except UnicodeDecodeError as exc:
                raise SkipFile(f"has a {codec} byte-order mark but does not decode: {exc.reason}"
                               ) from exc
    nul = data.find(b"\x00", 0, SNIFF_BYTES)
    if nul >= 0:
        raise SkipFile(f"binary file (NUL byte at offset {nul})")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first = exc
    tried = []
    for enc in (declared, *encodings):
        if not enc or enc.lower().replace("_", "-") in ("utf-8", "utf8"):
            continue
        tried.append(enc)
        try:
            return data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
    guess = _guess_encoding(data)
    hint = f"; it looks like {guess}" if guess and guess.lower() not in ("utf_8", "utf-8") else ""
    also = f" (also tried {', '.join(tried)})" if tried else ""
    raise SkipFile(f"not valid UTF-8 at byte {first.start}{also}{hint}; convert it to UTF-8 "
                   "or pass encodings=[...] / --encoding")


# -- titles ----------------------------------------------------------------------------
_FRONT_MATTER = re.compile(r"\A---[^\S\n]*\n(.*?)\n(?:---|\.\.\.)[^\S\n]*(?:\n|\Z)", re.S)
_FM_TITLE = re.compile(r"^title\s*:\s*(.+?)\s*$", re.M)
_ATX = re.compile(r"^ {0,3}(#{1,6})[^\S\n]+(.+?)[^\S\n]*#*[^\S\n]*$", re.M)
_SETEXT = re.compile(r"^(?! {4})(\S[^\n]*)\n {0,3}(=+|-+)[^\S\n]*$", re.M)


def _first_line_title(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= TITLE_MAX else ""
    return ""


def markdown_title(text: str) -> str:
    fm = _FRONT_MATTER.match(text)
    if fm:
        m = _FM_TITLE.search(fm.group(1))
        if m:
            return m.group(1).strip().strip("\"'")
    body = text[fm.end():] if fm else text
    best: tuple[int, int, str] | None = None  # (level, position, title)
    for m in _ATX.finditer(body):
        cand = (len(m.group(1)), m.start(), m.group(2).strip())
        if best is None or cand < best:
            best = cand
        if best[0] == 1:
            break  # the first level-1 heading: nothing can beat it
    # a setext heading ("Title" over "===") counts only if it comes first or ranks higher
    m = _SETEXT.search(body, 0, len(body) if best is None or best[0] > 1 else best[1] + 1)
    if m is not None:
        cand = (1 if m.group(2)[0] == "=" else 2, m.start(), m.group(1).strip())
        if best is None or cand < best:
            best = cand
    return best[2][:TITLE_MAX] if best else ""


# -- HTML ------------------------------------------------------------------------------
_DROP = "script, style, nav, noscript, template, svg, iframe, object, head"
_BLOCKS = ("p, div, section, article, main, aside, header, footer, h1, h2, h3, h4, h5, h6, "
           "ul, ol, dl, table, pre, blockquote, figure, figcaption, form, fieldset, hr, "
           "address, details, summary")
_LINES = "li, br, tr, dt, dd, caption, option"
_SPACES = re.compile(r"[^\S\n]+")
_MANY_BREAKS = re.compile(r"\n{3,}")


def _selectolax() -> Any:
    try:
        from selectolax.lexbor import LexborHTMLParser
    except ImportError as exc:
        raise MissingDependencyError("selectolax", "ingest", purpose="reading HTML") from exc
    return LexborHTMLParser


def tidy(text: str) -> str:
    """Collapse runs of spaces, strip each line, keep at most one blank line in a row."""
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_BREAKS.sub("\n\n", "\n".join(lines)).strip()


def html_to_text(html: str) -> tuple[str, str]:
    """``(text, title)``: visible text with paragraph breaks; title from <title> or <h1>."""
    tree = _selectolax()(html)
    title = ""
    node = tree.css_first("title")
    if node is not None:
        title = " ".join(node.text().split())
    if not title:
        node = tree.css_first("h1")
        if node is not None:
            title = " ".join(node.text().split())
    for node in tree.css(_DROP):
        node.decompose()
    for node in tree.css(_BLOCKS):
        node.insert_after("\n\n")
    for node in tree.css(_LINES):
        node.insert_after("\n")
    root = tree.body if tree.body is not None else tree.root
    text = root.text(separator="", strip=False) if root is not None else ""
    return tidy(text), title[:TITLE_MAX]


# -- PDF -------------------------------------------------------------------------------
def _pypdf() -> Any:
    try:
        import pypdf
    except ImportError as exc:
        raise MissingDependencyError("pypdf", "ingest", purpose="reading PDF files") from exc
    return pypdf


def pdf_pages(data: bytes) -> tuple[list[str], str]:
    """Text of each page and the document-info title (may be empty)."""
    pypdf = _pypdf()
    import logging

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # malformed-PDF chatter
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception as exc:
                raise SkipFile(f"encrypted PDF ({exc})") from exc
            if not ok:
                raise SkipFile("encrypted PDF (needs a password)")
        pages = []
        for page in reader.pages:
            try:
                pages.append(page.extract_text() or "")
            except Exception:  # one broken page must not lose the others
                pages.append("")
        info_title = ""
        try:
            meta = reader.metadata
            if meta is not None and meta.title:
                info_title = str(meta.title).strip()
        except Exception:
            info_title = ""
    except SkipFile:
        raise
    except Exception as exc:
        raise SkipFile(f"unreadable PDF: {type(exc).__name__}: {exc}") from exc
    return pages, info_title


# -- the dispatcher --------------------------------------------------------------------
def _file_metadata(entry: FileEntry, kind: str, digest: str, title: str) -> dict[str, Any]:
    return {
        "path": entry.display,
        "title": title or display_path(entry.path.stem),
        "mtime": entry.mtime_ns / 1e9,
        "size": entry.size,
        "content_hash": digest,
        "source_type": kind,
    }


def read_file(entry: FileEntry, data: bytes, *, encodings: Sequence[str] = ()) -> ReadResult:
    """Documents from one file's bytes; raises ``SkipFile`` when nothing can be used."""
    kind = source_type(entry.path)
    digest = hashlib.sha256(data).hexdigest()
    if kind == "pdf":
        return _read_pdf(entry, data, digest)
    if kind in ("jsonl", "beir"):
        return _read_jsonl(entry, decode(data, encodings=encodings), kind)
    declared = None
    if kind == "html":
        head = data[:4096]
        m = _HTML_CHARSET.search(head) or _XML_ENCODING.search(head)
        declared = m.group(1).decode("ascii", "replace") if m else None
    text = decode(data, declared=declared, encodings=encodings)
    if kind == "html":
        text, title = html_to_text(text)
        if not text:
            raise SkipFile("no visible text in this HTML page")
    elif kind == "markdown":
        title = markdown_title(text)
    else:
        title = _first_line_title(text)
    if not text.strip():
        raise SkipFile("only whitespace")
    doc = Document(id=entry.doc_key, text=text,
                   metadata=_file_metadata(entry, kind, digest, title))
    return ReadResult(docs=[doc], weights=[entry.size])


def _read_pdf(entry: FileEntry, data: bytes, digest: str) -> ReadResult:
    pages, info_title = pdf_pages(data)
    offsets, pos = [], 0
    for text in pages:
        offsets.append(pos)
        pos += len(text) + 2
    full = "\n\n".join(pages)
    if not full.strip():
        raise SkipFile(f"no extractable text in {len(pages)} page(s) (scanned images? OCR first)")
    title = info_title or _first_line_title(full)
    meta = _file_metadata(entry, "pdf", digest, title)
    meta["pages"] = len(pages)
    meta[PAGE_OFFSETS] = offsets
    return ReadResult(docs=[Document(id=entry.doc_key, text=full, metadata=meta)],
                      weights=[entry.size])


def _read_jsonl(entry: FileEntry, text: str, kind: str) -> ReadResult:
    """One document per line: ``{"id"|"_id", "text", "title", ...metadata}``.

    BEIR corpora (``corpus.jsonl``) index ``title + text`` exactly as ``trawl eval`` does. A line without an id gets
    ``<file id>:<line>``; bad lines are reported and the rest of the file is kept.
    Records carry the file's path (for ``--prune``) but not its mtime or size, so
    editing one record does not re-index the others.
    """
    out = ReadResult()
    first_line: dict[str, int] = {}
    where = entry.display
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            out.problems.append(SkipEntry(f"{where}:{lineno}", f"invalid JSON: {exc.msg}"))
            continue
        if not isinstance(obj, dict):
            out.problems.append(SkipEntry(f"{where}:{lineno}",
                                          f"expected a JSON object, got {type(obj).__name__}"))
            continue
        raw_id = obj.pop("id", None)
        alt_id = obj.pop("_id", None)
        raw_id = alt_id if raw_id in (None, "") else raw_id
        if isinstance(raw_id, dict | list):
            out.problems.append(SkipEntry(f"{where}:{lineno}", "'id' must be a string or number"))
            continue
        doc_id = str(raw_id) if raw_id not in (None, "") else f"{entry.doc_key}:{lineno}"
        body = obj.pop("text", None)
        if not isinstance(body, str):
            why = "no 'text' field" if body is None else (
                f"'text' must be a string, got {type(body).__name__}")
            out.problems.append(SkipEntry(f"{where}:{lineno}", why))
            continue
        if doc_id in first_line:
            out.problems.append(SkipEntry(
                f"{where}:{lineno}", f"duplicate id {doc_id!r} (first on line "
                                     f"{first_line[doc_id]}); kept the first"))
            continue
        first_line[doc_id] = lineno
        title = obj.pop("title", "")
        title = "" if title is None else str(title)
        nested = obj.pop("metadata", None)
        meta: dict[str, Any] = dict(nested) if isinstance(nested, dict) else {}
        meta.update(obj)
        if kind == "beir":
            # the same text `trawl eval` indexes, so both give the same rankings
            from ..evaluation import beir_document

            body = beir_document({"_id": doc_id, "title": title, "text": body}).text
        meta.update({"path": where, "source_type": kind, "line": lineno,
                     "content_hash": text_hash(body)})
        if title:
            meta["title"] = title
        out.docs.append(Document(id=doc_id, text=body, metadata=meta))
        out.weights.append(len(line) + 1)
    if not out.docs and not out.problems:
        raise SkipFile("no records (only blank lines)")
    return out
