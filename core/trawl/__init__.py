"""trawl: a plugin-based retrieval framework for RAG.

``import trawl`` is cheap: it imports no backend (onnxruntime, qdrant-client, rank-bm25)
and no textual. Backends load when a pipeline that names them is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .api import AddResult, FailedDocument, Trawl
from .components import (
    ComponentConfig,
    ComponentContext,
    Encoder,
    FusionRequest,
    Index,
    IndexQuery,
    MultiVectorTransform,
    Reader,
    ReadOutput,
    Reranker,
    SourceFile,
    SparseVector,
    VectorField,
    make_hit,
)
from .config import PipelineConfig, TrawlSettings, load_pipeline
from .context import Citation, Context
from .display import escape_markup, safe_text
from .documents import DocumentInfo
from .errors import (
    AddError,
    Cancelled,
    ConfigError,
    DimensionMismatchError,
    DocumentError,
    DuplicateIdError,
    FilterError,
    FilterTooLargeError,
    IndexCorruptError,
    IndexLockedError,
    IndexReadOnlyError,
    InputError,
    MissingDependencyError,
    ModelSourceError,
    PluginConflictError,
    PluginLoadError,
    PluginRuntimeError,
    ServerError,
    ServerUnavailableError,
    TrawlError,
    UnknownComponentError,
    UnknownDocumentError,
    UnreadableFileError,
)
from .filters import parse_filter
from .hookspecs import hookimpl
from .models import Chunk, Document, Hit, Query, SourceScore
from .pipeline import SearchTrace
from .plugins import PluginHost, default_host
from .protocol import IndexClient

if TYPE_CHECKING:
    from .client import RemoteTrawl

__version__ = "0.2.0"


def connect(url: str, *, api_key: str | None = None, timeout: float = 120.0) -> RemoteTrawl:
    """A client of a running ``trawl serve`` at ``url``, with the methods of ``Trawl``
    (see ``trawl.IndexClient``); ``api_key`` defaults to ``$TRAWL_API_KEY``. httpx is
    imported only here, so ``import trawl`` stays cheap."""
    from .client import connect as _connect

    return _connect(url, api_key=api_key, timeout=timeout)


__all__ = [
    "AddError",
    "AddResult",
    "Cancelled",
    "Chunk",
    "Citation",
    "ComponentConfig",
    "ComponentContext",
    "ConfigError",
    "Context",
    "DimensionMismatchError",
    "Document",
    "DocumentError",
    "DocumentInfo",
    "DuplicateIdError",
    "Encoder",
    "FailedDocument",
    "FilterError",
    "FilterTooLargeError",
    "FusionRequest",
    "Hit",
    "Index",
    "IndexClient",
    "IndexCorruptError",
    "IndexLockedError",
    "IndexQuery",
    "IndexReadOnlyError",
    "InputError",
    "MissingDependencyError",
    "ModelSourceError",
    "MultiVectorTransform",
    "PipelineConfig",
    "PluginConflictError",
    "PluginHost",
    "PluginLoadError",
    "PluginRuntimeError",
    "Query",
    "ReadOutput",
    "Reader",
    "Reranker",
    "SearchTrace",
    "ServerError",
    "ServerUnavailableError",
    "SourceFile",
    "SourceScore",
    "SparseVector",
    "Trawl",
    "TrawlError",
    "TrawlSettings",
    "UnknownComponentError",
    "UnknownDocumentError",
    "UnreadableFileError",
    "VectorField",
    "connect",
    "default_host",
    "escape_markup",
    "hookimpl",
    "load_pipeline",
    "make_hit",
    "parse_filter",
    "safe_text",
]
