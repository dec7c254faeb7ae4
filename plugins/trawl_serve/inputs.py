"""Checks at the server's door that need more than the request schema: the document
contract (``trawl.validation``) per document, so a bad document is a 4xx naming its id
and field before anything is stored; and the request field a core error is about."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel

from trawl import Document, FilterError, TrawlError, UnknownDocumentError, wire
from trawl.errors import DocumentError
from trawl.validation import check_text, normalize_metadata

_DOCUMENT_FIELDS = {"id", "text", "metadata"}
# every field name a request body may have: a core error message that starts with one
# ("top_k must be ...", "queries[3] ...") is about that field
_REQUEST_FIELDS = frozenset(
    name for model in vars(wire).values()
    if isinstance(model, type) and issubclass(model, BaseModel) and model.__name__.endswith(
        "Request") for name in model.model_fields)
_LEADING_NAME = re.compile(r"^(\w+)(\[\d+\])?\b")


class DocumentFieldError(TrawlError):
    """A document of a request breaks the document contract: ``field`` is the request
    path (``documents.2.metadata.score``), ``doc_id`` the document."""

    title = "invalid document"

    def __init__(self, field: str, doc_id: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.doc_id = doc_id


def document_field(prefix: str, exc: DocumentError) -> str:
    """The request path of the field a ``DocumentError`` names."""
    where = exc.field if exc.field in _DOCUMENT_FIELDS else f"metadata.{exc.field}"
    return f"{prefix}.{where}" if prefix else where


def check_document(doc: Document, where: str = "") -> Document:
    """``doc`` checked against the contract (valid Unicode, finite JSON metadata at most
    64 deep), metadata normalised; else a ``DocumentFieldError`` with the field's path
    under ``where`` (``documents.2``; empty: the document's own fields)."""
    try:
        check_text(doc.id, "id", doc.id)
        check_text(doc.id, "text", doc.text)
        meta = normalize_metadata(doc.id, doc.metadata)
    except DocumentError as exc:
        raise DocumentFieldError(document_field(where, exc), exc.doc_id,
                                 f"{where}: {exc}" if where else str(exc)) from exc
    return doc if meta == doc.metadata else doc.model_copy(update={"metadata": meta})


def check_documents(documents: Sequence[Document]) -> list[Document]:
    """Every document of an add request checked (``check_document``), in order."""
    return [check_document(doc, f"documents.{i}") for i, doc in enumerate(documents)]


def error_field(exc: TrawlError) -> str | None:
    """The request field a core error is about, where its type or message says so."""
    if isinstance(exc, DocumentFieldError):
        return exc.field
    if isinstance(exc, DocumentError):
        return document_field("", exc)
    if isinstance(exc, FilterError):
        return "filters"
    if isinstance(exc, UnknownDocumentError):
        return "ids"
    if str(exc).startswith("unknown retriever"):
        return "retrievers"
    match = _LEADING_NAME.match(str(exc))
    if match and match.group(1) in _REQUEST_FIELDS:
        return match.group(1) + (f".{match.group(2)[1:-1]}" if match.group(2) else "")
    return None
