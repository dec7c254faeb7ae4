"""The five component contracts plugins implement, plus the context the host builds them with.

Each contract is a small abstract class: implement the abstract methods, declare a
pydantic ``Config`` (validated by the host so errors name the plugin and the field),
and register the class from a ``register_*`` hook. Construction must be cheap: load
models and open files lazily or in ``__init__`` of the component, never at import.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from .chunking import CONTEXT
from .errors import PluginRuntimeError, TrawlError
from .filters import Filter
from .models import Chunk, Document, Hit

if TYPE_CHECKING:
    from .plugins import ComponentRegistry
    from .tokens import TokenStore

FloatArray = npt.NDArray[np.float32]
EncoderKind = Literal["dense", "multivector", "sparse"]
IndexInput = Literal["text", "dense"]
FusionMethodName = Literal["rrf", "weighted", "dbsf"]


@dataclass(frozen=True)
class SparseVector:
    """Term id → weight: what a sparse (lexical) encoder gives per text.

    ``indices`` are unique non-negative ids below 2**32 (term hashes, so two processes or
    two machines give a term the same id without sharing a vocabulary); ``values`` their
    weights. An index that stores sparse vectors scores ``Σ q_i · d_i`` over shared ids,
    optionally times an IDF it keeps itself.
    """

    indices: npt.NDArray[np.uint32]
    values: FloatArray

    def __len__(self) -> int:
        return int(self.indices.shape[0])


@dataclass(frozen=True)
class VectorField:
    """One named vector of an index shared by several retrievers (one per retriever).

    ``dim`` is ``None`` for sparse fields; ``metric`` compares dense and multi-vector
    fields (multi-vector fields score by MaxSim over that metric).
    """

    name: str
    kind: EncoderKind
    dim: int | None
    metric: Literal["cosine", "dot"] = "cosine"


@dataclass(frozen=True)
class FusionRequest:
    """How a shared index may fuse its fields' runs itself (see ``Index.search_fields``)."""

    method: FusionMethodName
    k: float = 60.0
    weights: dict[str, float] = field(default_factory=dict)


class ComponentConfig(BaseModel):
    """Base for component configs: unknown keys are errors (a typo must not pass silently).

    A field that changes only how queries run, not what is stored, says so with
    ``Field(..., json_schema_extra=QUERY_TIME)``: an existing index then opens with a new
    value for it (like fusion or the reranker) instead of refusing a different pipeline.
    """

    model_config = ConfigDict(extra="forbid")


QUERY_TIME: dict[str, Any] = {"query_time": True}


def query_time_fields(config_cls: type[BaseModel]) -> set[str]:
    """Names of a component config's fields marked ``QUERY_TIME``."""
    return {name for name, f in config_cls.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("query_time")}


@dataclass
class ComponentContext:
    """What the host tells a component when it builds it.

    ``storage_dir`` is where an index persists itself (``None``: in memory only).
    ``dim`` is the vector dimension an index will receive and ``metric`` how to compare
    them (``dot`` for MUVERA encodings, which are not normalised). ``registry`` lets a
    component build others by name (e.g. a wrapper index). ``kind`` is what the encoder
    feeding an index produces. ``fields`` is set only for an index that several
    retrievers share (``store`` in their config): one named vector per retriever.
    """

    name: str
    storage_dir: Path | None = None
    dim: int | None = None
    metric: Literal["cosine", "dot"] = "cosine"
    registry: ComponentRegistry | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    kind: EncoderKind = "dense"
    fields: tuple[VectorField, ...] = ()


class Component(ABC):
    """Shared shape: a ``name`` set at registration and a validated ``config``."""

    Config: ClassVar[type[ComponentConfig]] = ComponentConfig
    #: ``(plugin, distribution)``, set by ``ComponentRegistry.build``.
    plugin_origin: tuple[str, str] | None = None

    def __init__(self, config: ComponentConfig | None = None,
                 context: ComponentContext | None = None) -> None:
        self.config = config if config is not None else self.Config()
        self.context = context or ComponentContext(name=type(self).__name__)

    @property
    def name(self) -> str:
        return self.context.name

    @property
    def origin(self) -> tuple[str, str]:
        """``(plugin, distribution)`` that provided this component, for error messages.

        Set by ``ComponentRegistry.build``; a component constructed directly reports its
        module instead.
        """
        if self.plugin_origin is not None:
            return self.plugin_origin
        module = type(self).__module__
        return module.split(".")[0], module

    def close(self) -> None:
        """Release files, sessions and locks. Safe to call twice."""


@contextmanager
def plugin_call(component: Component, kind: str, operation: str) -> Iterator[None]:
    """Turn an untyped exception from ``component`` into ``PluginRuntimeError``.

    ``TrawlError`` subclasses pass through unchanged: a plugin that raises
    ``InputError`` or ``DimensionMismatchError`` has already said what is wrong.
    """
    try:
        yield
    except TrawlError:
        raise
    except Exception as exc:
        plugin, distribution = component.origin
        raise PluginRuntimeError(kind=kind, component=component.name, plugin=plugin,
                                 distribution=distribution, operation=operation,
                                 cause=exc) from exc


def word_spans(text: str) -> list[tuple[int, int]]:
    """Words and punctuation marks: the token count used when no encoder tokenizer exists."""
    return [m.span() for m in _WORD_RE.finditer(text)]


def count_words(text: str) -> int:
    """``len(word_spans(text))`` without building the spans (about 3x faster)."""
    return len(_WORD_RE.findall(text))


_WORD_RE = re.compile(r"\w+|[^\w\s]")


class Encoder(Component):
    """Texts → vectors. Dense: ``(n, dim)`` float32. Multi-vector: list of ``(t_i, dim)``.
    Sparse: list of ``SparseVector`` (``dim`` is then the id space, 2**32).

    Queries and documents are encoded separately because many models are asymmetric
    (instruction prefixes, query markers, different lengths).
    """

    kind: ClassVar[EncoderKind] = "dense"
    #: how an index compares these vectors. For sparse encoders ``"dot"`` says the weights
    #: are final (learned sparse models), ``"cosine"`` that the index should multiply in an
    #: IDF it keeps (lexical weights such as BM25's); dense indexes take the pipeline's.
    metric: ClassVar[Literal["cosine", "dot"]] = "cosine"

    @property
    @abstractmethod
    def dim(self) -> int:
        """Output vector dimension."""

    @property
    def max_length(self) -> int:
        """Longest input in tokens the model sees; chunking keeps chunks below it."""
        return 512

    def document_text(self, chunk: Chunk) -> str:
        """The text this encoder encodes for a chunk: its ``context`` header (file path and
        symbol, title and heading path, set by chunking from the reader's sections) on
        its own line, then its text; a lexical encoder may add metadata fields (a title)
        the way its lexical index does."""
        header = chunk.metadata.get(CONTEXT)
        if isinstance(header, str) and header:
            return f"{header}\n{chunk.text}"
        return chunk.text

    @abstractmethod
    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Any:
        """Encode passages: ``FloatArray (n, dim)`` or ``list[FloatArray (t_i, dim)]``."""

    @abstractmethod
    def encode_queries(self, texts: Sequence[str]) -> Any:
        """Encode queries: same shapes as ``encode_documents``."""

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model's tokens (without special tokens).

        Chunking and context budgets count tokens with it. The default splits on
        words; ONNX encoders override it with their real tokenizer.
        """
        return word_spans(text)

    def count_tokens(self, text: str) -> int:
        return len(self.token_spans(text))


class Index(Component):
    """Stores chunks (and their vectors) and answers top-k queries under a filter.

    ``input`` says what the index consumes: ``"text"`` (lexical, e.g. BM25) or
    ``"dense"`` (one vector per chunk, ``context.dim`` wide). Indexes persist
    themselves under ``context.storage_dir`` and must survive a crash between calls:
    after ``upsert`` returns, the chunks are durable.
    """

    input: ClassVar[IndexInput] = "dense"
    #: encoder kinds a vector index stores (``context.kind`` says which one it gets)
    vector_kinds: ClassVar[frozenset[EncoderKind]] = frozenset({"dense"})
    #: True when several retrievers may share one instance (``context.fields``): one stored
    #: record per chunk with a named vector per retriever, written by ``upsert_fields``
    shareable: ClassVar[bool] = False
    #: fusion methods ``search_fields`` can compute inside the index (one request)
    native_fusion: ClassVar[frozenset[FusionMethodName]] = frozenset()

    @abstractmethod
    def upsert(self, chunks: Sequence[Chunk], vectors: FloatArray | None = None) -> int:
        """Insert or replace chunks by id; ``vectors`` is ``(len(chunks), dim)`` for dense
        indexes, a list of ``SparseVector`` or of ``(t_i, dim)`` token arrays for sparse and
        multi-vector ones."""

    @abstractmethod
    def delete(self, doc_ids: Sequence[str]) -> int:
        """Remove every chunk of these documents; returns how many chunks went."""

    @abstractmethod
    def search(self, query: IndexQuery, top_k: int, filters: Filter | None = None) -> list[Hit]:
        """Best ``top_k`` chunks, best first, ``rank`` from 1, ``filters`` applied inside."""

    @abstractmethod
    def count(self) -> int:
        """Number of chunks stored."""

    @abstractmethod
    def doc_ids(self) -> set[str]:
        """Ids of every document with at least one chunk (used to keep indexes in step)."""

    def get_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        """Stored chunks by id (``None`` where missing); optional capability."""
        raise NotImplementedError(f"index {self.name!r} cannot fetch chunks by id")

    # -- shared indexes (``shareable``): several retrievers, one record per chunk ----------
    def upsert_fields(self, chunks: Sequence[Chunk], encoded: Mapping[str, Any]) -> int:
        """Write chunks with every field's encodings at once (``encoded[field]`` as for
        ``upsert``); every field of ``context.fields`` must be present."""
        raise NotImplementedError(f"index {self.name!r} cannot be shared by retrievers")

    def search_fields(self, queries: Mapping[str, IndexQuery], top_k: int,
                      filters: Filter | None = None, fusion: FusionRequest | None = None
                      ) -> dict[str, list[Hit]] | list[Hit]:
        """One request for several fields: each field's top ``top_k`` run, or, when
        ``fusion`` is given (a method in ``native_fusion``), the fused top ``top_k``."""
        raise NotImplementedError(f"index {self.name!r} cannot be shared by retrievers")

    @contextmanager
    def write_batch(self) -> Iterator[None]:
        """Writes inside this block belong to one batch that core commits (or rolls back)
        after it: an index may make them durable once, when the block ends, instead of at
        every call (after a crash core's repair removes an uncommitted batch anyway).
        Optional; by default each write is durable when it returns."""
        yield

    def update_metadata(self, chunks: Sequence[Chunk]) -> None:
        """Replace the stored metadata of ``chunks`` (ids and texts unchanged), keeping
        their vectors: ``Trawl.update_metadata`` calls it so nothing is re-encoded.

        Optional. The default serves lexical indexes by upserting the chunks again (they
        need no vectors); a vector index that does not override it raises
        ``NotImplementedError`` and ``Trawl`` falls back to encoding the chunks again and
        upserting them, which is correct but costs the encoder's time.
        """
        if self.input == "text":
            self.upsert(chunks)
            return
        raise NotImplementedError(f"index {self.name!r} cannot replace metadata in place")

    @classmethod
    def updates_metadata_in_place(cls) -> bool:
        """Whether ``update_metadata`` works without vectors (overridden, or a text index)."""
        return cls.input == "text" or cls.update_metadata is not Index.update_metadata


@dataclass
class IndexQuery:
    """What an index gets at search time: the text and, for vector indexes, the encoding
    (``vector`` dense, ``sparse`` for sparse fields, ``tokens`` ``(t, dim)`` for
    multi-vector fields)."""

    text: str
    vector: FloatArray | None = None
    sparse: SparseVector | None = None
    tokens: FloatArray | None = None


class Reranker(Component):
    """Reorders candidate hits; returns new ``Hit`` objects with its score in ``scores_by_source``.

    A reranker that scores from per-chunk token vectors (late interaction) returns its
    multi-vector encoder from ``token_encoder``: the host then encodes every chunk with it
    at index time, keeps the vectors in the index's token store and hands the store over
    with ``use_token_store``, so no stored passage is encoded at query time.
    """

    #: Set by ``use_token_store``: where stored chunks' token vectors are read from.
    token_store: TokenStore | None = None

    @abstractmethod
    def rerank(self, query: str, hits: Sequence[Hit], top_k: int | None = None) -> list[Hit]:
        """Best ``top_k`` of ``hits`` by this reranker's score, rank from 1."""

    def token_encoder(self) -> Encoder | None:
        """The multi-vector encoder whose document vectors should be stored (default: none)."""
        return None

    def use_token_store(self, store: TokenStore) -> None:
        """Read candidates' token vectors (made by ``token_encoder``) from ``store``."""
        self.token_store = store


class MultiVectorTransform(Component):
    """A set of vectors → one fixed-dimensional vector (MUVERA's FDE).

    Asymmetric: ``<encode_query_set(Q), encode_document_set(D)>`` approximates the
    Chamfer / MaxSim similarity ``Σ_q max_d <q, d>``.
    """

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of the encoded vector."""

    @abstractmethod
    def encode_document_set(self, sets: Sequence[FloatArray]) -> FloatArray:
        """``(n, dim)`` from n document token sets."""

    @abstractmethod
    def encode_query_set(self, sets: Sequence[FloatArray]) -> FloatArray:
        """``(n, dim)`` from n query token sets."""

    def state(self) -> dict[str, Any]:
        """What must be stored with an index so queries are encoded the same way (seed, dims)."""
        return self.config.model_dump()


@dataclass(frozen=True)
class SourceFile:
    """One file handed to a ``Reader``: its bytes, never an open handle.

    ``path`` is the file as valid Unicode text (stored as the documents' ``path`` and named
    in errors); ``doc_id`` is the stable id of its document (a reader that makes several
    documents from one file derives theirs from it); ``encodings`` are the user's fallbacks
    for text that is not UTF-8.
    """

    path: str
    data: bytes
    doc_id: str
    encodings: tuple[str, ...] = ()
    mtime: float | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        dot = self.name.rfind(".")
        return self.name[dot:].lower() if dot > 0 else ""


@dataclass
class ReadOutput:
    """What a reader made of one file: documents, each with a progress weight (the bytes it
    stands for), and records it could not read as ``(where, why)`` next to the ones it could."""

    documents: list[Document] = field(default_factory=list)
    weights: list[int] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)

    def add(self, doc: Document, weight: int) -> None:
        self.documents.append(doc)
        self.weights.append(max(1, weight))


class Reader(Component):
    """File bytes → documents: text plus metadata (``trawl.chunking`` names the keys a
    reader may set for pages, sections, slides, sheets, rows, cells and lines).

    A reader claims files by ``suffixes`` (``".docx"``), exact lower-case ``filenames``
    (``"corpus.jsonl"``) or ``mime_types``; when several claim a file the most specific
    claim wins (file name, then suffix, then MIME type), then the higher ``priority``.
    ``read`` gets bytes, so it can leave no handle open; bad bytes raise
    ``UnreadableFileError`` with the reason (the host adds the file's path), never a
    library's own exception. Bump ``version`` when the output changes, so files read
    by an older version are read again.
    """

    suffixes: ClassVar[frozenset[str]] = frozenset()
    filenames: ClassVar[frozenset[str]] = frozenset()
    mime_types: ClassVar[frozenset[str]] = frozenset()
    priority: ClassVar[int] = 0
    version: ClassVar[int] = 1

    @abstractmethod
    def read(self, source: SourceFile) -> ReadOutput:
        """Documents from one file's bytes; ``UnreadableFileError`` when none can be made."""

    @classmethod
    def claim(cls, name: str, mime_type: str | None = None) -> int:
        """How specifically this reader claims a file: 3 by file name, 2 by suffix,
        1 by MIME type, 0 not at all."""
        lower = name.lower()
        if lower in cls.filenames:
            return 3
        dot = lower.rfind(".")
        if dot > 0 and lower[dot:] in cls.suffixes:
            return 2
        if mime_type is not None and mime_type in cls.mime_types:
            return 1
        return 0


ComponentFactory = Callable[[ComponentConfig, ComponentContext], Component]


def make_hit(chunk: Chunk, score: float, rank: int, source: str) -> Hit:
    """Build a ``Hit`` for a stored chunk, recording the source's raw score and rank.

    The chunk was validated when it was made, so the hit is assembled without validating
    it again (``Hit.of_chunk``): this runs ~100 times per retriever per query."""
    return Hit.of_chunk(chunk, score, rank, source)
