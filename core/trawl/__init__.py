"""trawl: a plugin-based retrieval framework for RAG.

``import trawl`` is cheap: it imports no backend (onnxruntime, qdrant-client, rank-bm25)
and no textual. Backends load when a pipeline that names them is built.
"""

from __future__ import annotations

from .api import AddResult, Trawl
from .components import (
    ComponentConfig,
    ComponentContext,
    Encoder,
    FusionRequest,
    Index,
    IndexQuery,
    MultiVectorTransform,
    Reranker,
    SparseVector,
    VectorField,
    make_hit,
)
from .config import PipelineConfig, TrawlSettings, load_pipeline
from .context import Citation, Context
from .display import escape_markup, safe_text
from .errors import (
    ConfigError,
    DimensionMismatchError,
    FilterError,
    IndexCorruptError,
    IndexLockedError,
    InputError,
    MissingDependencyError,
    ModelSourceError,
    PluginConflictError,
    PluginLoadError,
    PluginRuntimeError,
    TrawlError,
    UnknownComponentError,
)
from .filters import parse_filter
from .hookspecs import hookimpl
from .models import Chunk, Document, Hit, Query, SourceScore
from .pipeline import SearchTrace
from .plugins import PluginHost, default_host

__version__ = "0.1.0"

__all__ = [
    "AddResult",
    "Chunk",
    "Citation",
    "ComponentConfig",
    "ComponentContext",
    "ConfigError",
    "Context",
    "DimensionMismatchError",
    "Document",
    "Encoder",
    "FilterError",
    "FusionRequest",
    "Hit",
    "Index",
    "IndexCorruptError",
    "IndexLockedError",
    "IndexQuery",
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
    "Reranker",
    "SearchTrace",
    "SourceScore",
    "SparseVector",
    "Trawl",
    "TrawlError",
    "TrawlSettings",
    "UnknownComponentError",
    "VectorField",
    "default_host",
    "escape_markup",
    "hookimpl",
    "load_pipeline",
    "make_hit",
    "parse_filter",
    "safe_text",
]
