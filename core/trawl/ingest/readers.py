"""Core's readers (plain text, Markdown, HTML, PDF, JSONL, BEIR) and ``ReaderSet``,
which picks a registered reader for each file and names the file in every error.

Readers never raise library errors on bad input: they raise ``SkipFile`` (an
``UnreadableFileError``) with a reason the ingest summary shows, or report per-record
problems (JSONL) next to the documents they could read. ``pypdf`` and ``selectolax``
are imported only when a PDF or HTML file turns up.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..chunking import CONTEXT, CONTEXT_HEAD, LINE_NUMBERS, PAGE_OFFSETS, SECTIONS
from ..components import ComponentConfig, ComponentContext, Reader, ReadOutput, SourceFile
from ..errors import InputError, MissingDependencyError, PluginLoadError, UnreadableFileError
from ..models import Document, text_hash
from .walk import FileEntry, display_path

if TYPE_CHECKING:
    from ..plugins import ComponentRegistry

#: Bump when the way files are read changes for every reader (each reader also has its
#: own ``version``), so unchanged files are read again once.
READER_VERSION = 2

TEXT_SUFFIXES = frozenset({".txt", ".text", ".rst", ".adoc", ".org", ".log", ".csv", ".tsv"})
MARKDOWN_SUFFIXES = frozenset({".md", ".markdown", ".mdown", ".mkd", ".mdx"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
PDF_SUFFIXES = frozenset({".pdf"})
JSONL_SUFFIXES = frozenset({".jsonl", ".ndjson"})
BEIR_CORPUS_NAME = "corpus.jsonl"
SNIFF_BYTES = 8192
TITLE_MAX = 120


#: What readers raise for a file they cannot use (the name ingestion code has used).
SkipFile = UnreadableFileError


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


def check_encodings(names: Sequence[str]) -> None:
    """``InputError`` for a name that is not a Python text codec (what ``--encoding`` and
    ``POST /index`` take), before any file is read."""
    for name in names:
        try:
            info = codecs.lookup(name)
        except (LookupError, TypeError, ValueError) as exc:
            raise InputError(f"unknown encoding {name!r} (Python codec names such as "
                             "cp1252, latin-1, shift_jis)") from exc
        if not getattr(info, "_is_text_encoding", True):
            raise InputError(f"{name!r} is not a text encoding")


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


_MARK = "\ue000"  # private-use: marks where a heading starts in the extracted text
_MARK_RE = re.compile("\ue000([1-6])")


def html_to_text(html: str) -> tuple[str, str]:
    """``(text, title)``: visible text with paragraph breaks; title from <title> or <h1>."""
    text, title, _ = html_document(html)
    return text, title


def html_document(html: str) -> tuple[str, str, list[tuple[int, int, str]]]:
    """``(text, title, headings)``: visible text with paragraph breaks, title from <title>
    or <h1>, and ``(offset, level, heading)`` for each ``<h1>``-``<h6>`` in the text."""
    tree = _selectolax()(html.replace(_MARK, " "))
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
    for node in tree.css("h1, h2, h3, h4, h5, h6"):
        node.insert_before(f"\n\n{_MARK}{node.tag[1]}")
    for node in tree.css(_BLOCKS):
        node.insert_after("\n\n")
    for node in tree.css(_LINES):
        node.insert_after("\n")
    root = tree.body if tree.body is not None else tree.root
    marked = tidy(root.text(separator="", strip=False) if root is not None else "")
    parts: list[str] = []
    found: list[tuple[int, int]] = []
    pos = length = 0
    for m in _MARK_RE.finditer(marked):
        parts.append(marked[pos:m.start()])
        length += m.start() - pos
        found.append((length, int(m.group(1))))
        pos = m.end()
    parts.append(marked[pos:])
    text = "".join(parts)
    lead = len(text) - len(text.lstrip())
    text = text.strip()
    headings = []
    for offset, level in found:
        offset = max(0, offset - lead)
        while offset < len(text) and text[offset] in " \n":
            offset += 1
        line_end = text.find("\n", offset)
        heading = " ".join(text[offset:line_end if line_end >= 0 else len(text)].split())
        if heading:
            headings.append((offset, level, heading[:TITLE_MAX]))
    return text, title[:TITLE_MAX], headings


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


# -- helpers for readers ---------------------------------------------------------------
def file_metadata(source: SourceFile, kind: str, title: str) -> dict[str, Any]:
    """The metadata every file's document carries: path, title, mtime, size, hash, type."""
    meta: dict[str, Any] = {
        "path": source.path,
        "title": title or display_path(source.name.rsplit(".", 1)[0] or source.name),
        "size": len(source.data),
        "content_hash": hashlib.sha256(source.data).hexdigest(),
        "source_type": kind,
    }
    if source.mtime is not None:
        meta["mtime"] = source.mtime
    return meta


def one_document(source: SourceFile, text: str, meta: dict[str, Any]) -> ReadOutput:
    """The output of a reader that makes one document of the whole file."""
    out = ReadOutput()
    out.add(Document(id=source.doc_id, text=text, metadata=meta), len(source.data))
    return out


def text_file(source: SourceFile, kind: str, title_of: Any) -> tuple[str, dict[str, Any]]:
    """A decoded text file (not blank) and its metadata, with line numbers on chunks."""
    text = decode(source.data, encodings=source.encodings)
    if not text.strip():
        raise SkipFile("only whitespace")
    meta = file_metadata(source, kind, title_of(text))
    meta[LINE_NUMBERS] = True
    return text, meta


def heading_sections(headings: Sequence[tuple[int, int, str]], length: int, title: str,
                     context: bool = True) -> list[dict[str, Any]]:
    """Sections from ``(offset, level, heading)`` in text order: each runs to the next
    heading of the same or a higher level and is labelled with its heading path
    (``section``) and, with ``context``, the header encoders see (the title, then the
    path; the chunk that opens the section gets the path above its own heading)."""
    out: list[dict[str, Any]] = []
    open_: list[tuple[int, str, dict[str, Any]]] = []  # (level, heading, section)
    for offset, level, heading in headings:
        while open_ and open_[-1][0] >= level:
            open_.pop()[2]["end"] = offset
        path = [h for _, h, _ in open_] + [heading]
        lead = [title] if title and title != path[0] else []
        labels: dict[str, Any] = {"section": " > ".join(path), "heading_level": level}
        if context:
            labels.update({CONTEXT: " > ".join(lead + path),
                           CONTEXT_HEAD: " > ".join(lead + path[:-1])})
        sec = {"start": offset, "end": length, "labels": labels}
        out.append(sec)
        open_.append((level, heading, sec))
    return [s for s in out if s["end"] > s["start"]]


_MAYBE_HEADING = re.compile(r"^ {0,3}(?:#|=+[ \t]*$|-+[ \t]*$)", re.M)
_md_parser: list[Any] = []


def _markdown_parser() -> Any:
    """One CommonMark parser for the process (building one costs milliseconds)."""
    if not _md_parser:
        try:
            from markdown_it import MarkdownIt
        except ImportError:
            return None
        parser = MarkdownIt("commonmark")
        parser.core.ruler.disable(["inline", "text_join"])  # block structure is enough: 5x
        _md_parser.append(parser)
    return _md_parser[0]


def _markdown_headings(text: str) -> list[tuple[int, int, str]]:
    """``(offset, level, heading)`` of every ATX and setext heading (not in code blocks),
    by markdown-it-py (CommonMark; installed with rich)."""
    fm = _FRONT_MATTER.match(text)
    base = fm.end() if fm else 0  # front matter's "---" is not a setext underline
    if not _MAYBE_HEADING.search(text, base):
        return []  # no '#' line and no setext underline: nothing to parse
    parser = _markdown_parser()
    if parser is None:  # pragma: no cover - rich depends on markdown-it-py
        return []
    try:
        tokens = parser.parse(text[base:])
    except Exception:  # a parser bug must not cost the file: it is still read as text
        return []
    line_starts = [base]
    for m in re.finditer("\n", text[base:]):
        line_starts.append(base + m.end())
    out = []
    for i, tok in enumerate(tokens):
        if tok.type != "heading_open" or not tok.map or i + 1 >= len(tokens):
            continue
        heading = " ".join(tokens[i + 1].content.replace("*", "").replace("`", "").split())
        if heading and tok.map[0] < len(line_starts):
            out.append((line_starts[tok.map[0]], int(tok.tag[1]), heading[:TITLE_MAX]))
    return out


# -- core's readers ----------------------------------------------------------------------
class TextReader(Reader):
    """Plain text, and every file no other reader claims, when it decodes as text."""

    suffixes = frozenset({".txt", ".text", ".rst", ".adoc", ".org", ".log"})
    mime_types = frozenset({"text/plain"})
    priority = -100

    def read(self, source: SourceFile) -> ReadOutput:
        text, meta = text_file(source, "text", _first_line_title)
        return one_document(source, text, meta)


class StructuredTextConfig(ComponentConfig):
    context_header: bool = Field(True, description=(
        "encoders see each chunk's title and heading path before its text (stored apart)"))


class MarkdownReader(Reader):
    """Markdown: title from front matter or the top heading; headings become sections."""

    suffixes = frozenset(MARKDOWN_SUFFIXES)
    mime_types = frozenset({"text/markdown"})
    Config = StructuredTextConfig

    def read(self, source: SourceFile) -> ReadOutput:
        text, meta = text_file(source, "markdown", markdown_title)
        sections = heading_sections(_markdown_headings(text), len(text), meta["title"],
                                    getattr(self.config, "context_header", True))
        if sections:
            meta[SECTIONS] = sections
        return one_document(source, text, meta)


class HtmlReader(Reader):
    """HTML: visible text (selectolax); ``<h1>``-``<h6>`` become sections."""

    suffixes = frozenset(HTML_SUFFIXES)
    mime_types = frozenset({"text/html", "application/xhtml+xml"})
    Config = StructuredTextConfig

    def read(self, source: SourceFile) -> ReadOutput:
        head = source.data[:4096]
        m = _HTML_CHARSET.search(head) or _XML_ENCODING.search(head)
        declared = m.group(1).decode("ascii", "replace") if m else None
        text, title, headings = html_document(
            decode(source.data, declared=declared, encodings=source.encodings))
        if not text.strip():
            raise SkipFile("no visible text in this HTML page")
        meta = file_metadata(source, "html", title)
        sections = heading_sections(headings, len(text), meta["title"],
                                    getattr(self.config, "context_header", True))
        if sections:
            meta[SECTIONS] = sections
        return one_document(source, text, meta)


class PdfReader(Reader):
    """PDF (pypdf): one document, pages as ``page_start``/``page_end`` on its chunks."""

    suffixes = frozenset(PDF_SUFFIXES)
    mime_types = frozenset({"application/pdf"})

    def read(self, source: SourceFile) -> ReadOutput:
        pages, info_title = pdf_pages(source.data)
        offsets, pos = [], 0
        for text in pages:
            offsets.append(pos)
            pos += len(text) + 2
        full = "\n\n".join(pages)
        if not full.strip():
            raise SkipFile(f"no extractable text in {len(pages)} page(s) "
                           "(scanned images? OCR first)")
        meta = file_metadata(source, "pdf", info_title or _first_line_title(full))
        meta["pages"] = len(pages)
        meta[PAGE_OFFSETS] = offsets
        return one_document(source, full, meta)


class JsonlReader(Reader):
    """One document per line: ``{"id"|"_id", "text", "title", ...metadata}``.

    A line without an id gets ``<file id>:<line>``; bad lines are reported and the rest
    of the file is kept. Records carry the file's path (for ``--prune``) but not its
    mtime or size, so editing one record does not re-index the others.
    """

    suffixes = frozenset(JSONL_SUFFIXES)
    mime_types = frozenset({"application/jsonl", "application/x-ndjson"})
    kind = "jsonl"

    def read(self, source: SourceFile) -> ReadOutput:
        return _read_jsonl(source, decode(source.data, encodings=source.encodings), self.kind)


class BeirReader(JsonlReader):
    """A BEIR ``corpus.jsonl``: ``title + text`` indexed exactly as ``trawl eval`` does."""

    suffixes = frozenset()
    mime_types = frozenset()
    filenames = frozenset({BEIR_CORPUS_NAME})
    kind = "beir"


def _read_jsonl(source: SourceFile, text: str, kind: str) -> ReadOutput:
    out = ReadOutput()
    first_line: dict[str, int] = {}
    where = source.path
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            out.problems.append((f"{where}:{lineno}", f"invalid JSON: {exc.msg}"))
            continue
        if not isinstance(obj, dict):
            out.problems.append((f"{where}:{lineno}",
                                 f"expected a JSON object, got {type(obj).__name__}"))
            continue
        raw_id = obj.pop("id", None)
        alt_id = obj.pop("_id", None)
        raw_id = alt_id if raw_id in (None, "") else raw_id
        if isinstance(raw_id, dict | list):
            out.problems.append((f"{where}:{lineno}", "'id' must be a string or number"))
            continue
        doc_id = str(raw_id) if raw_id not in (None, "") else f"{source.doc_id}:{lineno}"
        body = obj.pop("text", None)
        if not isinstance(body, str):
            why = "no 'text' field" if body is None else (
                f"'text' must be a string, got {type(body).__name__}")
            out.problems.append((f"{where}:{lineno}", why))
            continue
        if doc_id in first_line:
            out.problems.append((f"{where}:{lineno}", f"duplicate id {doc_id!r} (first on "
                                                      f"line {first_line[doc_id]}); kept the first"))
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
        out.add(Document(id=doc_id, text=body, metadata=meta), len(line) + 1)
    if not out.documents and not out.problems:
        raise SkipFile("no records (only blank lines)")
    return out


# -- picking a reader ----------------------------------------------------------------------
FALLBACK_READER = "text"


class ReaderSet:
    """Every registered reader, built once; picks one per file and names the file in
    every error it lets out.

    The most specific claim wins (file name, then suffix, then MIME type guessed from the
    name), then the higher ``priority``, then the name; a file nobody claims goes to the
    ``text`` reader, which keeps it when it decodes as text.
    """

    def __init__(self, registry: ComponentRegistry,
                 options: dict[str, dict[str, Any]] | None = None) -> None:
        options = options or {}
        self.readers: list[Reader] = []
        self.errors: list[PluginLoadError] = []
        self._picked: dict[str, Reader | None] = {}
        for entry in registry.entries("reader"):
            try:
                reader = registry.build("reader", entry.name, options.get(entry.name),
                                        ComponentContext(name=entry.name))
            except PluginLoadError as exc:
                self.errors.append(exc)
                continue
            if isinstance(reader, Reader):
                self.readers.append(reader)
        self.readers.sort(key=lambda r: (-type(r).priority, r.name))
        self._filenames = {f for r in self.readers for f in type(r).filenames}
        self._fallback = next((r for r in self.readers if r.name == FALLBACK_READER), None)

    def pick(self, name: str) -> Reader | None:
        """The reader for a file named ``name`` (``None``: no reader at all)."""
        name = name.rsplit("/", 1)[-1]
        lower = name.lower()
        key = lower if lower in self._filenames or lower.rfind(".") <= 0 else (
            lower[lower.rfind("."):])
        if key in self._picked:
            return self._picked[key]
        import mimetypes

        mime = mimetypes.guess_type(name, strict=False)[0]
        best: tuple[int, int] = (0, 0)
        chosen: Reader | None = None
        for reader in self.readers:
            claim = type(reader).claim(name, mime)
            if claim and (claim, type(reader).priority) > best:
                best, chosen = (claim, type(reader).priority), reader
        chosen = chosen or self._fallback
        self._picked[key] = chosen
        return chosen

    def version(self, name: str) -> str:
        """What a file's record stores, so a new reader (or version) reads it again."""
        reader = self.pick(name)
        return f"{READER_VERSION}:{reader.name}:{type(reader).version}" if reader else ""

    def read(self, source: SourceFile) -> ReadOutput:
        """The picked reader's output; every failure is an ``UnreadableFileError`` naming
        the file (``MissingDependencyError`` passes through: it names what to install)."""
        reader = self.pick(source.name)
        if reader is None:
            raise UnreadableFileError("no reader for this kind of file", path=source.path)
        return read_with(reader, source)


def read_with(reader: Reader, source: SourceFile) -> ReadOutput:
    """``reader.read(source)`` with its failures as ``UnreadableFileError`` naming the
    file: a reader bug or a library's own exception must not end an ingest run."""
    try:
        out = reader.read(source)
    except UnreadableFileError as exc:
        raise exc.naming(source.path) from exc
    except MissingDependencyError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise UnreadableFileError(f"too large or too deeply nested to read "
                                  f"({type(exc).__name__})", path=source.path) from exc
    except Exception as exc:
        raise UnreadableFileError(f"reader {reader.name!r} failed: {type(exc).__name__}: "
                                  f"{exc}", path=source.path) from exc
    if not isinstance(out, ReadOutput) or len(out.documents) != len(out.weights):
        raise UnreadableFileError(f"reader {reader.name!r} returned {type(out).__name__}, "
                                  "not a ReadOutput with one weight per document",
                                  path=source.path)
    return out


def source_file(entry: FileEntry, data: bytes, encodings: Sequence[str] = ()) -> SourceFile:
    return SourceFile(path=entry.display, data=data, doc_id=entry.doc_key,
                      encodings=tuple(encodings), mtime=entry.mtime_ns / 1e9)
