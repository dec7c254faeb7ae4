"""``Trawl``: the library API that the CLI, the TUI and LLM applications all use.

Thread safety: any number of threads may call ``search``/``context`` while one thread
calls ``add``/``delete``. Query encoding runs without locks; index reads take a shared
lock and index writes an exclusive one, so a search never sees half of a write, and no
hit points to a document after ``delete`` has returned.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import sqlite3
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO, TypeVar, cast, overload

import numpy as np
from pydantic import ValidationError

from .catalog import IndexInfo, RetrieverInfo
from .chunking import chunk_document, segmented
from .components import Index, count_words, plugin_call, word_spans
from .config import FusionConfig, PipelineConfig, TrawlSettings, load_pipeline
from .context import Context, checked_counter, pack_context
from .documents import (
    DocumentInfo,
    assemble_text,
    check_metadata_patch,
    document_metadata,
    patched,
)
from .errors import (
    AddError,
    Cancelled,
    ConfigError,
    DuplicateIdError,
    IndexCorruptError,
    IndexLockedError,
    IndexReadOnlyError,
    InputError,
    MissingDependencyError,
    PluginRuntimeError,
    TrawlError,
    UnknownDocumentError,
    raise_if_cancelled,
)
from .filters import Filter, expand_dates, parse_filter
from .lockfile import LOCK_FILE, LockInfo, live_server, read_lock
from .models import Chunk, Document, Hit, text_hash
from .pipeline import Pipeline, Retriever, SearchTrace
from .plugins import PluginHost
from .secrets import with_component_settings, without_query_time, without_secrets
from .storage import (
    FORMAT_VERSION,
    PRIVATE_FILE,
    Manifest,
    atomic_write_json,
    folder_sizes,
    private_dir,
    read_json,
    remove_created_folder,
)
from .tokens_repair import repair_token_store
from .validation import check_ids, check_text, check_top_k, normalize_metadata

T = TypeVar("T")
PIPELINE_FILE = "pipeline.json"
MANIFEST_FILE = "manifest.sqlite"
#: manifest meta key a clean close writes: what every index held (``Trawl._repair_on_open``)
CLEAN_CLOSE = "clean_close"
#: Documents whose chunks ``Trawl.add`` encodes in one call per encoder before writing
#: them batch by batch. Encoders sort what they get by length and pad each run to its
#: longest text, so encoding a window instead of one batch pads far less: SciFact
#: abstracts as files pad 7.8 % of their tokens in 64-document batches and 2.1 % in
#: 256-document windows (docs/design/speed.md, section 5). Commits stay per batch.
ENCODE_WINDOW_DOCS = 256
#: ... and at most this much text (characters) per window, so that long documents (books,
#: manuals) do not multiply the memory of a window's tokenised chunks by 256: a window
#: closes before the document that would pass it (a longer document is a window alone).
ENCODE_WINDOW_CHARS = 4_000_000
#: A batch with more chunks than this (one large document: a 9 MB text is ~15k chunks) is
#: encoded and written a slice at a time, the write lock taken and released per slice, so
#: other writers and searches get in between (issue 22: a small add waited 100 s).
WRITE_SLICE_CHUNKS = 256

if TYPE_CHECKING:
    from .client import RemoteTrawl


class _RWLock:
    """Many readers or one writer; writers wait for readers to drain and block new ones."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


OnError = Literal["raise", "skip"]


@dataclass
class FailedDocument:
    """A document ``Trawl.add`` did not store: its id (or ``#position`` when it has none),
    why, and the original error."""

    id: str
    reason: str
    error: BaseException | None = None

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "reason": self.reason}


@dataclass
class AddResult:
    """What ``Trawl.add`` did; ``trawl index --json`` prints it."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    committed_ids: list[str] = field(default_factory=list)
    failed: list[FailedDocument] = field(default_factory=list)
    cancelled: bool = False  # ``cancel`` was set: the batches after the last commit were not

    def to_json(self) -> dict[str, Any]:
        return {"added": self.added, "updated": self.updated, "unchanged": self.unchanged,
                "chunks": self.chunks, "failed": [f.to_json() for f in self.failed]}


@dataclass
class _Encoded:
    """One batch's chunks and encodings, computed with the rest of its window."""

    chunks_by_doc: dict[str, list[Chunk]]
    encoded: dict[str, Any]
    token_sets: list[Any] | None


def _rows(value: Any, start: int, stop: int, total: int) -> Any:
    """Rows ``start:stop`` of one encoder's output for ``total`` chunks (``None`` stays
    ``None``); an output of another shape is a ``TypeError``: the window is not used."""
    if value is None:
        return None
    if isinstance(value, np.ndarray | list) and len(value) == total:
        return value[start:stop]
    raise TypeError(f"cannot split encoder output of type {type(value).__name__}")


@dataclass
class _Snapshot:
    """Stored chunks and manifest rows of documents an update is replacing."""

    rows: list[tuple[str, str, str | None, list[str]]]
    chunks: list[Chunk]


def _raw_id(item: Any, position: int) -> str:
    if isinstance(item, Document):
        return item.id
    if isinstance(item, dict):
        raw = item.get("id", item.get("_id"))
        if isinstance(raw, str) and raw:
            return raw
    return f"#{position}"


def _signature(exc: BaseException) -> tuple[Any, ...]:
    """What failed, without the details that name a document."""
    if isinstance(exc, PluginRuntimeError):
        return (exc.kind, exc.component, exc.operation, type(exc.cause))
    return (type(exc),)


def _systemic(exc: BaseException) -> bool:
    """Failures of the index or the machine, not of one document: retrying each document
    would fail the same way, so they are raised at once."""
    if isinstance(exc, PluginRuntimeError):
        exc = exc.cause
    return isinstance(exc, OSError | sqlite3.Error | IndexCorruptError | IndexLockedError |
                      ConfigError | MissingDependencyError | MemoryError)


async def _cancellable_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, cancel=event, **kwargs)`` in a worker thread; when the awaiting task is
    cancelled, the event is set, so the thread stops at its next safe point instead of
    running on unseen (``asyncio.to_thread`` alone cannot stop it)."""
    cancel = kwargs.pop("cancel", None) or threading.Event()
    try:
        return await asyncio.to_thread(fn, *args, cancel=cancel, **kwargs)
    except asyncio.CancelledError:
        cancel.set()
        raise


def _as_document(item: Document | str | dict[str, Any]) -> Document:
    """Accept a Document, a plain string, or a dict (``id``/``_id``, ``text``, ``metadata``,
    any other key becomes metadata), checked against the document contract (valid Unicode,
    JSON metadata); anything else is an ``InputError`` naming the document and field."""
    if isinstance(item, Document):
        return _checked(item)
    try:
        if isinstance(item, str):
            return _checked(Document(text=item))
        if isinstance(item, dict):
            data = dict(item)
            if "_id" in data and "id" not in data:
                data["id"] = data.pop("_id")
            raw_id = data.get("id")
            if isinstance(raw_id, bool) or (
                    raw_id is not None and not isinstance(raw_id, str | int)):
                raise InputError(f"document id must be a string, got {type(raw_id).__name__} "
                                 f"{raw_id!r}")
            doc_id = str(raw_id or "")
            check_text(doc_id, "id", doc_id)
            raw_meta = data.pop("metadata", None) or {}
            if not isinstance(raw_meta, dict):
                raise InputError(f"document {doc_id!r}: 'metadata' must be an object, "
                                 f"got {type(raw_meta).__name__}")
            meta = dict(raw_meta)
            for key in list(data):
                if key not in ("id", "text"):
                    meta[key] = data.pop(key)
            text = data.get("text")
            if not isinstance(text, str):
                raise InputError(f"document {doc_id!r}: 'text' must be a string, got "
                                 f"{type(text).__name__}")
            check_text(doc_id, "text", text)
            meta = normalize_metadata(doc_id, meta)
            return Document(id=doc_id, text=text, metadata=meta)
    except ValidationError as exc:
        raise InputError(f"invalid document: {exc.errors()[0]['msg']}") from exc
    raise InputError(f"cannot make a Document from {type(item).__name__}")


def _checked(doc: Document) -> Document:
    check_text(doc.id, "id", doc.id)
    check_text(doc.id, "text", doc.text)
    meta = normalize_metadata(doc.id, doc.metadata)
    return doc if meta == doc.metadata else doc.model_copy(update={"metadata": meta})


class Trawl:
    """An index folder (or an in-memory index) plus the pipeline that searches it."""

    def __init__(self, path: Path | None, pipeline: PipelineConfig, *,
                 host: PluginHost | None = None, settings: TrawlSettings | None = None,
                 show_progress: bool | None = None,
                 component_settings: Mapping[str, Any] | None = None) -> None:
        """``component_settings`` (e.g. ``{"device": "cuda"}``) go to every component whose
        config has that query-time field, for this process only: ``pipeline.json`` keeps
        the pipeline as given (``trawl.secrets.with_component_settings``)."""
        self.settings = settings or TrawlSettings()
        self.host = host or PluginHost()
        self.path = path
        self.show_progress = self.settings.progress if show_progress is None else show_progress
        self._lock = _RWLock()
        self._write_mutex = threading.RLock()
        #: ids a write is working on (``_claim``); a second write of one waits for the first
        self._claims = threading.Condition()
        self._claimed: set[str] = set()
        #: documents written slice by slice and not yet committed: searches skip them
        self._partial: frozenset[str] = frozenset()
        self._lock_fh: TextIO | None = None
        self.last_trace = SearchTrace()
        #: how the last writable open checked the indexes against the manifest: ``"full"``
        #: (``repair()``), ``"clean close"`` (skipped, see ``_repair_on_open``), or ``None``
        #: (in memory or read-only: nothing was checked)
        self.open_check: str | None = None
        state: dict[str, Any] = {}
        saved: Any = None
        created = path is not None and not path.exists()
        #: True when the folder or its manifest cannot be written: searches work, writes
        #: raise ``IndexReadOnlyError``, and nothing in the folder is touched.
        self.read_only = path is not None and not created and not _writable_index(path)
        if path is not None:
            if self.read_only:
                self._share_folder_lock(path)
            else:
                private_dir(path)
                self._acquire_folder_lock(path)
            saved_file = path / PIPELINE_FILE
            if saved_file.exists():
                saved = read_json(saved_file, "pipeline file")
                state = saved.get("state", {})
            elif self.read_only:
                self._release()
                raise IndexReadOnlyError(f"no trawl index at {path} (no {PIPELINE_FILE}), and "
                                         "the folder is read-only so none can be created")
        try:
            built = pipeline if not component_settings else with_component_settings(
                pipeline, component_settings, self.host.registry)
            self.pipeline = Pipeline(built, self.host.registry, path, state)
            self.manifest = Manifest(path / MANIFEST_FILE if path else Path(":memory:"),
                                     read_only=self.read_only)
            if path is not None and not self.read_only:
                record = {"format": FORMAT_VERSION,
                          "pipeline": without_secrets(pipeline, self.host.registry, warn=True),
                          "state": self.pipeline.state}
                if saved != json.loads(json.dumps(record)):  # no rewrite when nothing changed
                    atomic_write_json(path / PIPELINE_FILE, record)
                self._repair_on_open()
        except BaseException:
            self._release()
            if created and path is not None:
                remove_created_folder(path)  # a failed create leaves no half index behind
            raise

    # -- opening -------------------------------------------------------------------------
    @overload
    @classmethod
    def open(cls, path_or_config: str | Path | None = None, *,
             pipeline: str | Path | dict[str, Any] | PipelineConfig | None = None,
             host: PluginHost | None = None, settings: TrawlSettings | None = None,
             show_progress: bool | None = None, create: bool = True,
             attach: Literal[False],
             component_settings: Mapping[str, Any] | None = None) -> Trawl: ...

    @overload
    @classmethod
    def open(cls, path_or_config: str | Path | None = None, *,
             pipeline: str | Path | dict[str, Any] | PipelineConfig | None = None,
             host: PluginHost | None = None, settings: TrawlSettings | None = None,
             show_progress: bool | None = None, create: bool = True,
             attach: bool = True,
             component_settings: Mapping[str, Any] | None = None) -> Trawl | RemoteTrawl: ...

    @classmethod
    def open(cls, path_or_config: str | Path | None = None, *,
             pipeline: str | Path | dict[str, Any] | PipelineConfig | None = None,
             host: PluginHost | None = None, settings: TrawlSettings | None = None,
             show_progress: bool | None = None, create: bool = True,
             attach: bool = True,
             component_settings: Mapping[str, Any] | None = None) -> Trawl | RemoteTrawl:
        """Open (or, with ``create``, create) an index folder.

        ``path_or_config`` is an index folder, a bare index name (under
        ``$TRAWL_HOME/indexes``), or a TOML file with ``path = ...`` and a ``[pipeline]``
        table. An existing index keeps the pipeline it was built with; passing a
        different one is an error rather than a silent rebuild.

        When another process serves the folder (``trawl serve``, recorded in its lock
        file) and ``attach`` is true, this returns a ``trawl.client.RemoteTrawl`` talking
        to that server instead of raising ``IndexLockedError``: the same search, context,
        add, delete and stats (the ``trawl.IndexClient`` Protocol), but no in-process
        ``pipeline`` or ``manifest``. Pass ``attach=False`` to always get a ``Trawl``.
        Query-time fusion/reranker overrides in ``pipeline`` are not sent to a server:
        pass them per call.

        ``component_settings`` (e.g. ``{"device": "cuda"}``, the CLI's ``--device``) set
        a query-time field on every component that has it, for this process; a served
        folder's components run in its server, so there they are a ``ConfigError``.
        """
        settings = settings or TrawlSettings()
        if path_or_config is not None and str(path_or_config).endswith(".toml"):
            import tomllib

            cfg_path = Path(path_or_config)
            try:
                data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read config file {cfg_path}: {exc}") from exc
            index_path = cfg_path.parent / str(data.get("path", cfg_path.stem))
            if pipeline is None and "pipeline" in data:
                pipeline = load_pipeline(cfg_path)
            path = index_path
        else:
            path = settings.index_path(path_or_config)
        saved_file = path / PIPELINE_FILE
        if saved_file.exists():
            saved = load_pipeline(read_json(saved_file, "pipeline file")["pipeline"])
            if pipeline is not None:
                wanted = load_pipeline(pipeline)
                host = host or PluginHost()
                if _build_shape(wanted, host) != _build_shape(saved, host):
                    raise ConfigError(
                        f"index {path} was built with pipeline {saved.name!r}; it cannot be "
                        f"opened with a different one ({wanted.name!r}). Use another folder.")
                # fusion and reranker are query-time choices: they may change freely; the
                # wanted retrievers equal the saved ones but may carry secrets the file lacks
                saved = saved.model_copy(update={"fusion": wanted.fusion,
                                                 "reranker": wanted.reranker,
                                                 "name": wanted.name,
                                                 "retrievers": wanted.retrievers})
            config = saved
        elif not create:
            raise ConfigError(f"no trawl index at {path} (no {PIPELINE_FILE}); "
                              "create one with `trawl index PATH`")
        else:
            config = load_pipeline(pipeline or settings.default_pipeline)
        try:
            return cls(path, config, host=host, settings=settings, show_progress=show_progress,
                       component_settings=component_settings)
        except IndexLockedError:
            server = live_server(path) if attach else None
            if server is None or server.url is None:
                raise
            if component_settings:
                raise ConfigError(
                    f"index {path} is served at {server.url}: its components run in that "
                    f"server, so {', '.join(component_settings)} cannot be set here; give "
                    "them to `trawl serve`") from None
            from .client import RemoteTrawl

            return RemoteTrawl(server.url, index_path=path)

    @classmethod
    def memory(cls, pipeline: str | dict[str, Any] | PipelineConfig = "bm25", *,
               host: PluginHost | None = None) -> Trawl:
        """An index that lives only in this process (tests, notebooks)."""
        return cls(None, load_pipeline(pipeline), host=host, show_progress=False)

    def _acquire_folder_lock(self, path: Path) -> None:
        fh = open(os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_APPEND, PRIVATE_FILE),
                  "a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            raise _locked_error(path) from exc
        self._lock_fh = fh
        self._write_lock_record(LockInfo(pid=os.getpid()))

    def _share_folder_lock(self, path: Path) -> None:
        """A read-only open takes the lock file shared: it keeps a writer (one that can
        write the folder after all, e.g. root) out while it reads, and other readers in."""
        try:
            fh = open(path / LOCK_FILE, encoding="utf-8")
        except OSError:  # no lock file, and none can be made: no writer can hold it either
            return
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            fh.close()
            raise _locked_error(path) from exc
        self._lock_fh = fh

    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise IndexReadOnlyError(
                f"cannot {what}: index {self.path} is open read-only (its folder or "
                f"{MANIFEST_FILE} is not writable); searches work, writes need a writable "
                "copy")

    def _write_lock_record(self, info: LockInfo) -> None:
        fh = self._lock_fh
        if self.read_only:  # readers share the lock; a record is for the folder's writer
            return
        if fh is None:
            raise InputError("this Trawl holds no index folder (an in-memory index)")
        fh.seek(0)
        fh.truncate()
        fh.write(info.to_text())
        fh.flush()

    def advertise(self, url: str | None, *, auth: bool = False) -> None:
        """Record in the folder's lock file that this process serves the index at ``url``
        (``None`` withdraws it), so ``Trawl.open`` elsewhere attaches instead of failing.
        ``auth`` tells clients that the server wants ``TRAWL_API_KEY``."""
        self._write_lock_record(LockInfo(pid=os.getpid(), url=url, auth=auth))

    def _release(self) -> None:
        if self._lock_fh is not None:
            try:
                fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_UN)
            finally:
                self._lock_fh.close()
                self._lock_fh = None

    # -- consistency -----------------------------------------------------------------------
    def _held_counts(self) -> dict[str, int]:
        """What each index and the token store hold: the fingerprint a clean close
        records and the next open compares."""
        counts = {f"index:{name}": r.count() for name, r in self.pipeline.retrievers.items()}
        if self.pipeline.tokens is not None:
            counts["tokens"] = self.pipeline.tokens.count()
        return counts

    def _clean_close_record(self) -> dict[str, int] | None:
        """The record of a clean close, or ``None`` when the next open must check in full:
        no pending document, and every index and the token store hold exactly the
        manifest's committed chunks. Run before the indexes close (they must answer)."""
        if (self.path is None or self.read_only or self._lock_fh is None  # closed already
                or self.manifest.pending()):
            return None
        total = self.manifest.chunk_total()
        try:
            counts = self._held_counts()
        except TrawlError:
            return None  # an index that cannot count: the next open compares in full
        if total is None or any(n != total for n in counts.values()):
            return None
        return counts

    def _repair_on_open(self) -> None:
        """``repair()`` on a writable open, skipped after a clean close.

        The full comparison reads every document id of the manifest and of every index
        (about 1.8 s at a million chunks). It is skipped only when the last session closed
        cleanly (a record written by ``close``) and every index and the token store still
        hold what they held then. The record is cleared first, so a crash in this session
        means a full check on the next open. ``open_check`` says which happened.
        """
        record = self.manifest.get_meta(CLEAN_CLOSE)
        if record is not None:
            self.manifest.set_meta(CLEAN_CLOSE, None)  # this session may crash
            if record == self._held_counts():
                self.open_check = "clean close"
                return
        self.open_check = "full"
        self.repair()

    def repair(self) -> dict[str, int]:
        """Bring every index in step with the manifest after a crash.

        Pending documents (a write that never finished) are removed everywhere; documents
        an index holds but the manifest does not are removed from that index; committed
        documents an index lacks are dropped from the manifest so the next ingest re-adds
        them. Returns counts of each repair.
        """
        self._check_writable("repair it")
        with self._write_mutex, self._lock.write():
            pending = self.manifest.pending()
            if pending:
                self._delete_everywhere(pending)
                self.manifest.remove(pending)
            committed = self.manifest.doc_ids()
            stray = 0
            missing: set[str] = set()
            for r in self.pipeline.retrievers.values():
                held = r.doc_ids()
                extra = sorted(held - committed)
                if extra:
                    r.delete(extra)
                    stray += len(extra)
                missing |= committed - held
            if missing:
                self._delete_everywhere(sorted(missing))
                self.manifest.remove(sorted(missing))
            tokens = repair_token_store(self, committed - missing)
        return {"pending": len(pending), "stray": stray, "missing": len(missing),
                "tokens_rebuilt": tokens}

    def _delete_everywhere(self, doc_ids: Sequence[str]) -> int:
        removed = 0
        for r in self.pipeline.retrievers.values():
            removed = max(removed, r.delete(doc_ids))
        self.pipeline.delete_tokens(doc_ids)
        return removed

    # -- writing ---------------------------------------------------------------------------
    @contextmanager
    def _claim(self, ids: Iterable[str]) -> Iterator[None]:
        """Hold these document ids for one write: a write (add, delete, metadata update) of
        an id another write holds waits until that one ends, so a large document written
        slice by slice is never interleaved with another change to it. Taken before
        ``_write_mutex``, never while holding it."""
        wanted = set(ids)
        with self._claims:
            while wanted & self._claimed:
                self._claims.wait()
            self._claimed |= wanted
        try:
            yield
        finally:
            with self._claims:
                self._claimed -= wanted
                self._claims.notify_all()

    def chunk(self, doc: Document) -> list[Chunk]:
        cfg = self.pipeline.config.chunking
        encoder = self.pipeline.primary_encoder()
        if not cfg.enabled:
            return [Chunk.whole(doc)]
        if encoder is not None:
            max_tokens = cfg.max_tokens or max(8, encoder.max_length - 2)
            return chunk_document(doc, segmented(encoder.token_spans), max_tokens,
                                  cfg.overlap)
        return chunk_document(doc, word_spans, cfg.max_tokens or 256, cfg.overlap,
                              count=count_words)

    def add(self, documents: Iterable[Document | str | dict[str, Any]], *,
            batch_size: int = 64, show_progress: bool | None = None,
            source_key: str = "path", on_batch: Any = None,
            on_progress: Callable[[int, int], None] | None = None,
            on_error: OnError = "raise",
            cancel: threading.Event | None = None) -> AddResult:
        """Add or update documents; unchanged ones (same content hash) are skipped.

        Each document is checked at the door (text and metadata contract, see
        ``trawl.validation``), then written in batches to every index and committed in the
        manifest. Chunks of up to ``ENCODE_WINDOW_DOCS`` documents are encoded together
        (encoders pad less); writes, commits and progress stay per batch. A batch that
        fails is retried document by document, so one bad document never costs another
        anything: every good one is stored, and an updated document keeps its old version
        unless the new one reached every index. After a crash,
        ``repair`` (run on open) rolls back the unfinished batch.

        An id given more than once in one call is written once, from its first copy; each
        later copy is a failure (``DuplicateIdError``), never a silent replacement.
        ``on_error="skip"`` reports the failed documents in ``AddResult.failed``;
        ``"raise"`` (the default) stores the good ones too, then raises ``AddError`` naming
        the failed ids. Failures that are not about a document (a read-only or corrupt
        index, a full disk) are raised as they are, and so is a plugin's error when every
        document written failed with it and none landed (a broken component: the call
        stored nothing, so nothing is lost).
        ``on_batch(result)`` is called after each committed batch. ``on_progress(done,
        total)`` counts documents of this call (distinct ids, failed ones included): it is
        called once before the first batch (unchanged and refused documents already count
        as done) and after each batch, ending with ``done == total``; it runs in the
        calling thread. ``cancel`` (set from another thread, e.g. a UI's cancel key) stops
        the call after the batch being written (or, while a window of up to
        ``ENCODE_WINDOW_DOCS`` documents is being encoded, after its first batch): every
        committed batch stays, no later one starts, and ``result.cancelled`` is true.
        """
        self._check_writable("add documents")
        if on_error not in ("raise", "skip"):
            raise InputError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if isinstance(documents, str | bytes | Document | dict):
            raise InputError("add takes an iterable of documents; wrap a single one in a list")
        progress = self.show_progress if show_progress is None else show_progress
        result = AddResult()
        latest: dict[str, Document | FailedDocument] = {}
        first_at: dict[str, int] = {}
        duplicates: list[FailedDocument] = []
        for position, item in enumerate(documents):
            try:
                entry: Document | FailedDocument = _as_document(item)
            except TrawlError as exc:
                entry = FailedDocument(_raw_id(item, position), str(exc), exc)
            doc_id = entry.id
            if doc_id in first_at:  # the first copy of an id wins; later ones are reported
                dup = DuplicateIdError(doc_id, position, first_at[doc_id])
                duplicates.append(FailedDocument(doc_id, str(dup), dup))
                continue
            first_at[doc_id] = position
            latest[doc_id] = entry
        seen = {k: d for k, d in latest.items() if isinstance(d, Document)}
        result.failed.extend(f for f in latest.values() if isinstance(f, FailedDocument))
        result.failed.extend(duplicates)
        refused_at_door = len(result.failed)
        docs = list(seen.values())
        known = self.manifest.hashes(seen)
        todo: list[tuple[Document, str, bool]] = []
        for d in docs:
            h = text_hash(d.text + "\x00" + repr(sorted(d.metadata.items())))
            if known.get(d.id) == h:
                result.unchanged += 1
            else:
                todo.append((d, h, d.id in known))
        bar = _progress(progress, len(todo), "indexing")
        total = len(docs) + len(result.failed)

        def done() -> int:
            return result.unchanged + result.added + result.updated + len(result.failed)

        if on_progress is not None:
            on_progress(done(), total)
        window = self._encode_window(batch_size)
        try:
            for part in _windows(todo, window):
                if cancel is not None and cancel.is_set():  # before encoding a window
                    result.cancelled = True
                    break
                batches = [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
                for batch, ready in zip(batches, self._encode_together(batches), strict=True):
                    try:
                        self._add_isolated(batch, result, source_key, ready, cancel)
                    except Cancelled:  # between the slices of a large batch: rolled back
                        result.cancelled = True
                        break
                    if bar is not None:
                        bar.update(len(batch))
                    if on_batch is not None:
                        on_batch(result)
                    if on_progress is not None:
                        on_progress(done(), total)
                    if cancel is not None and cancel.is_set():
                        result.cancelled = True
                        break
                if result.cancelled:
                    break
        finally:
            if bar is not None:
                bar.close()
        written = result.failed[refused_at_door:]
        if not result.added + result.updated and len(written) > 1 and \
                len({_signature(f.error) for f in written if f.error is not None}) == 1:
            # every document written failed the same way and none landed: a broken
            # component rather than bad documents (nothing was stored, so none is lost)
            raise cast(Exception, written[0].error)
        if result.failed and on_error == "raise":
            raise AddError(result)
        return result

    def _encode_window(self, batch_size: int) -> int:
        """Documents encoded together (``ENCODE_WINDOW_DOCS``), or one batch when an encoder
        makes token vectors: a window of those would hold hundreds of MB at once."""
        p = self.pipeline
        tokens = p.token_encoder is not None or any(
            r.encoder is not None and r.encoder.kind == "multivector"
            for r in p.retrievers.values())
        return batch_size if tokens else max(batch_size, ENCODE_WINDOW_DOCS)

    def _encode_together(self, batches: list[list[tuple[Document, str, bool]]]
                         ) -> list[_Encoded | None]:
        """Chunk and encode several batches in one call per encoder (less padding), split
        back per batch. Nothing is written here. If anything fails, every batch gets
        ``None`` and encodes itself in ``_add_batch``, so a bad document is isolated
        exactly as without a window."""
        if len(batches) < 2:
            return [None] * len(batches)
        try:
            per_batch = [{d.id: self.chunk(d) for d, _, _ in b} for b in batches]
            flat = [c for by_doc in per_batch for cs in by_doc.values() for c in cs]
            encoded = {n: r.encode_chunks(flat) for n, r in self.pipeline.retrievers.items()}
            token_sets = self.pipeline.encode_tokens(flat, encoded)
            out: list[_Encoded | None] = []
            start = 0
            for by_doc in per_batch:
                stop = start + sum(len(cs) for cs in by_doc.values())
                out.append(_Encoded(
                    by_doc, {n: _rows(v, start, stop, len(flat)) for n, v in encoded.items()},
                    _rows(token_sets, start, stop, len(flat))))
                start = stop
            return out
        except Exception:
            return [None] * len(batches)

    def _add_isolated(self, batch: list[tuple[Document, str, bool]], result: AddResult,
                      source_key: str, ready: _Encoded | None = None,
                      cancel: threading.Event | None = None) -> None:
        """Write a batch; if it fails, write its documents one by one and record the bad
        ones, so the good ones land whatever their neighbours hold."""
        try:
            self._add_batch(batch, result, source_key, ready, cancel)
            return
        except Cancelled:
            raise
        except Exception as exc:
            if _systemic(exc):
                raise
            if len(batch) == 1:
                result.failed.append(FailedDocument(batch[0][0].id, str(exc), exc))
                return
        for item in batch:
            try:
                self._add_batch([item], result, source_key)
            except Exception as exc:
                if _systemic(exc):
                    raise
                result.failed.append(FailedDocument(item[0].id, str(exc), exc))

    def _add_batch(self, batch: list[tuple[Document, str, bool]], result: AddResult,
                   source_key: str, ready: _Encoded | None = None,
                   cancel: threading.Event | None = None) -> None:
        """Write one batch to every index, or leave everything as it was (old versions of
        updated documents included) and raise. ``ready``: its chunks and encodings, made
        with its window (``_encode_together``); otherwise they are made here."""
        chunks_by_doc = ready.chunks_by_doc if ready is not None else {
            d.id: self.chunk(d) for d, _, _ in batch}
        chunks = [c for cs in chunks_by_doc.values() for c in cs]
        entries = [(d.id, h, str(d.metadata.get(source_key) or "") or None,
                    [c.id for c in chunks_by_doc[d.id]]) for d, h, _ in batch]
        with self._claim(d.id for d, _, _ in batch):
            if len(chunks) > WRITE_SLICE_CHUNKS:
                self._write_in_slices(batch, chunks, entries, ready, cancel)
            else:
                self._write_at_once(batch, chunks, entries, ready)
        for _, _, was_known in batch:
            if was_known:
                result.updated += 1
            else:
                result.added += 1
        result.chunks += len(chunks)
        result.committed_ids.extend(d.id for d, _, _ in batch)

    def _write_at_once(self, batch: list[tuple[Document, str, bool]], chunks: list[Chunk],
                       entries: list[tuple[str, str, str | None, list[str]]],
                       ready: _Encoded | None) -> None:
        """Encode (unless ``ready``) and write a batch under one hold of the write lock."""
        with self._write_mutex:
            # CPU-heavy encoding happens here (or for the whole window before), outside the
            # exclusive lock, and before anything is marked: an encoder that fails leaves
            # the index and manifest untouched.
            if ready is not None:
                encoded, token_sets = ready.encoded, ready.token_sets
            else:
                encoded = {n: r.encode_chunks(chunks)
                           for n, r in self.pipeline.retrievers.items()}
                token_sets = self.pipeline.encode_tokens(chunks, encoded)
            ids = [d.id for d, _, _ in batch]
            updated = [d.id for d, _, was_known in batch if was_known]
            old = self._snapshot(updated)
            self.manifest.mark(entries, "pending")
            with self._lock.write():
                try:
                    if updated:
                        self._delete_everywhere(updated)
                    self.pipeline.write(chunks, encoded)
                    self.pipeline.write_tokens(chunks, token_sets)
                except Exception:
                    self._roll_back(ids, old)
                    raise
            self.manifest.mark(entries, "committed")

    def _write_in_slices(self, batch: list[tuple[Document, str, bool]], chunks: list[Chunk],
                         entries: list[tuple[str, str, str | None, list[str]]],
                         ready: _Encoded | None, cancel: threading.Event | None) -> None:
        """A batch too large for one hold of the write lock (a large document): marked
        pending first, then each slice of ``WRITE_SLICE_CHUNKS`` chunks is encoded outside
        every lock and written under its own short hold of the write lock; committed after
        the last. Until then searches skip the batch's documents (``_partial``); after a
        crash, ``repair`` removes the pending batch, as for any batch. A failure rolls
        everything back (old versions of updated documents included), and so does
        ``cancel``, checked before each slice (``Cancelled``)."""
        ids = [d.id for d, _, _ in batch]
        updated = [d.id for d, _, was_known in batch if was_known]
        with self._write_mutex:
            old = self._snapshot(updated)
            self.manifest.mark(entries, "pending")
            self._partial = self._partial | set(ids)  # replaced, never changed in place
        try:
            try:
                with self.pipeline.write_batch():
                    self._write_slices(chunks, updated, ready, cancel)
            except Exception:
                with self._write_mutex, self._lock.write():
                    self._roll_back(ids, old)
                raise
            with self._write_mutex:
                self.manifest.mark(entries, "committed")
        finally:
            with self._write_mutex:
                self._partial = self._partial - set(ids)

    def _write_slices(self, chunks: list[Chunk], updated: list[str],
                      ready: _Encoded | None, cancel: threading.Event | None) -> None:
        """The writes of ``_write_in_slices``: one slice at a time, each under its own
        short hold of the write lock; ``cancel`` is checked before each."""
        for start in range(0, len(chunks), WRITE_SLICE_CHUNKS):
            raise_if_cancelled(cancel, "add")
            stop = min(start + WRITE_SLICE_CHUNKS, len(chunks))
            part = chunks[start:stop]
            if ready is not None:
                encoded = {n: _rows(v, start, stop, len(chunks))
                           for n, v in ready.encoded.items()}
                token_sets = _rows(ready.token_sets, start, stop, len(chunks))
            else:
                encoded = {n: r.encode_chunks(part)
                           for n, r in self.pipeline.retrievers.items()}
                token_sets = self.pipeline.encode_tokens(part, encoded)
            with self._write_mutex, self._lock.write():
                if start == 0 and updated:
                    self._delete_everywhere(updated)
                self.pipeline.write(part, encoded)
                self.pipeline.write_tokens(part, token_sets)

    def _snapshot(self, doc_ids: list[str]) -> _Snapshot | None:
        """The stored chunks and manifest rows of documents about to be replaced, read from
        the first index that can return chunks by id, so a failed update can be undone."""
        if not doc_ids:
            return None
        rows = self.manifest.entries(doc_ids)
        chunk_ids = [c for _, _, _, cs in rows for c in cs]
        for r in self.pipeline.retrievers.values():
            try:
                with plugin_call(r.index, "index", "get_chunks"):
                    found = r.index.get_chunks(chunk_ids)
            except (NotImplementedError, TrawlError):
                continue
            if all(c is not None for c in found):
                return _Snapshot(rows=rows, chunks=[c for c in found if c is not None])
        return None

    def _roll_back(self, ids: list[str], old: _Snapshot | None) -> None:
        """Undo a batch whose index writes failed part-way, so no index holds what the
        others lack, and put back the old versions of updated documents. If the undo fails
        too, the batch stays pending and ``repair`` (run on the next open) removes it; an
        updated document is then missing until it is added again."""
        try:
            self._delete_everywhere(ids)
            if old is not None:
                self.pipeline.write(old.chunks, {n: r.encode_chunks(old.chunks)
                                                 for n, r in self.pipeline.retrievers.items()})
                restored = {row[0] for row in old.rows}
                self.manifest.mark(old.rows, "committed")
                self.manifest.remove([i for i in ids if i not in restored])
            else:
                self.manifest.remove(ids)
        except Exception:  # the original error is the one to report
            pass

    def delete(self, doc_ids: Sequence[str] | str) -> int:
        """Remove documents (all their chunks) from every index; returns chunks removed."""
        self._check_writable("delete documents")
        ids = check_ids(doc_ids)
        if not ids:
            return 0
        with self._claim(ids), self._write_mutex, self._lock.write():
            removed = self._delete_everywhere(ids)
            self.manifest.remove(ids)
        return removed

    # -- reading ---------------------------------------------------------------------------
    def search(self, query: str, top_k: int = 10, filters: Any = None, *,
               retrievers: Sequence[str] | None = None, fusion: FusionConfig | None = None,
               rerank: bool | None = None, trace: SearchTrace | None = None,
               cancel: threading.Event | None = None) -> list[Hit]:
        """Run the pipeline. ``retrievers``/``fusion``/``rerank`` override it for this call.

        Pass a ``SearchTrace`` to get this call's timings; ``last_trace`` holds the most
        recent search of any thread, which is only meaningful without concurrent searches.
        A query over ``MAX_QUERY_CHARS`` (20,000) characters is cut there with a warning:
        encoders read a few hundred tokens anyway, and it bounds what BM25 scores.
        ``cancel`` (a ``threading.Event`` set from another thread: a client went away, a
        deadline passed) stops the search between its stages with ``Cancelled``.
        """
        if not isinstance(query, str):
            raise InputError(f"query must be a string, got {type(query).__name__}")
        top_k = check_top_k(top_k)
        # checked even for a blank query; date ranges also match epoch-number fields
        parsed: Filter | None = expand_dates(parse_filter(filters))
        if not query.strip():
            return []
        query = _capped_query(query)
        trace = trace if trace is not None else SearchTrace()
        partial = self._partial
        hits = self.pipeline.search(query, _room(top_k, partial), parsed,
                                    retrievers=retrievers, fusion=fusion, rerank=rerank,
                                    trace=trace, index_lock=self._lock.read(), cancel=cancel)
        self.last_trace = trace
        return _without(hits, partial | self._partial, top_k)

    async def asearch(self, query: str, top_k: int = 10, filters: Any = None,
                      **kwargs: Any) -> list[Hit]:
        """``search`` for async apps: runs in a worker thread, never blocks the event loop;
        cancelling the awaiting task stops that thread's search at its next stage."""
        return await _cancellable_thread(self.search, query, top_k, filters, **kwargs)

    async def acontext(self, query: str, *, max_tokens: int = 1500, top_k: int = 8,
                       filters: Any = None, **kwargs: Any) -> Context:
        """``context`` for async apps, in a worker thread (cancelled with the task)."""
        return await _cancellable_thread(self.context, query, max_tokens=max_tokens,
                                         top_k=top_k, filters=filters, **kwargs)

    def context(self, query: str, *, max_tokens: int = 1500, top_k: int = 8,
                filters: Any = None, count_tokens: Callable[[str], int] | None = None,
                per_doc_limit: int | None = None, **kwargs: Any) -> Context:
        """Numbered, cited passages for a prompt, within ``max_tokens``.

        ``count_tokens`` is the LLM's tokenizer (``str -> int``); by default the pipeline
        encoder's tokenizer (words without an encoder). The budget is measured on the
        whole block, so ``result.tokens == count_tokens(result.text) <= max_tokens``.
        Each document is cited once with the character spans included; adjacent chunks
        are merged; ``per_doc_limit`` caps the hits taken from one document; a passage
        that does not fit is skipped and smaller later ones are still packed. Other
        keyword arguments go to ``search``. See ``trawl.context`` for the rules.
        """
        if count_tokens is None:
            encoder = self.pipeline.primary_encoder()
            count_tokens = encoder.count_tokens if encoder is not None else (
                count_words)
        count = checked_counter(count_tokens)
        hits = self.search(query, top_k=top_k, filters=filters, **kwargs)
        raise_if_cancelled(kwargs.get("cancel"), "context")
        return pack_context(hits, max_tokens, count, per_doc_limit=per_doc_limit)

    @property
    def config(self) -> PipelineConfig:
        """The pipeline this index was built with (the ``IndexClient`` view of it)."""
        return self.pipeline.config

    def search_batch(self, queries: Sequence[str], top_k: int = 10, filters: Any = None, *,
                     retrievers: Sequence[str] | None = None,
                     fusion: FusionConfig | None = None,
                     rerank: bool | None = None,
                     traces: Sequence[SearchTrace] | None = None,
                     cancel: threading.Event | None = None) -> list[list[Hit]]:
        """``search`` for many queries at once: each encoder encodes them all in one batch
        (the expensive part), then each query is retrieved, fused and reranked. Returns
        one hit list per query, in order; a blank query gets ``[]``. ``traces`` (one per
        query) receive each query's timings, the batch's encoding time shared out."""
        if isinstance(queries, str) or not isinstance(queries, Sequence):
            raise InputError(f"queries must be a list of strings, got {type(queries).__name__}")
        if not queries:
            raise InputError("search_batch needs at least one query (got an empty batch)")
        for i, q in enumerate(queries):
            if not isinstance(q, str):
                raise InputError(f"queries[{i}] must be a string, got {type(q).__name__}")
        parsed: Filter | None = expand_dates(parse_filter(filters))
        live = [i for i, q in enumerate(queries) if q.strip()]
        out: list[list[Hit]] = [[] for _ in queries]
        if not live:
            return out
        if traces is not None and len(traces) != len(queries):
            raise InputError(f"traces must have one SearchTrace per query ({len(queries)}), "
                             f"got {len(traces)}")
        partial = self._partial
        results = self.pipeline.search_batch(
            [_capped_query(queries[i]) for i in live], _room(top_k, partial), parsed,
            retrievers=retrievers,
            fusion=fusion, rerank=rerank, index_lock=self._lock.read(),
            traces=[traces[i] for i in live] if traces is not None else None, cancel=cancel)
        partial = partial | self._partial
        for i, hits in zip(live, results, strict=True):
            out[i] = _without(hits, partial, top_k)
        return out

    # -- stored documents ------------------------------------------------------------------
    def _chunk_source(self) -> Retriever:
        """The first retriever whose index returns stored chunks (``get_chunks``)."""
        for r in self.pipeline.retrievers.values():
            if type(r.index).get_chunks is not Index.get_chunks:
                return r
        raise ConfigError(f"no index of pipeline {self.pipeline.config.name!r} can return "
                          "stored chunks (Index.get_chunks), so documents cannot be read back")

    def _stored_chunks(self, entries: Sequence[tuple[str, list[str]]]) -> dict[str, list[Chunk]]:
        """Chunks of ``(doc_id, chunk_ids)`` entries, read under the shared lock."""
        source = self._chunk_source()
        wanted = [cid for _, ids in entries for cid in ids]
        with self._lock.read(), plugin_call(source.index, "index", "get_chunks"):
            found = source.index.get_chunks(wanted)
        by_id = {c.id: c for c in found if c is not None}
        out: dict[str, list[Chunk]] = {}
        for doc_id, ids in entries:
            missing = [cid for cid in ids if cid not in by_id]
            if missing:
                raise IndexCorruptError(
                    f"document {doc_id!r}: index {source.name!r} lacks chunk(s) {missing[:5]} "
                    "the manifest lists; reopen the index (repair) or re-add the document")
            out[doc_id] = [by_id[cid] for cid in ids]
        return out

    def _entries(self, ids: Sequence[str]) -> dict[str, tuple[str, str | None, list[str]]]:
        """``{doc_id: (hash, source, chunk_ids)}``; unknown ids are an ``UnknownDocumentError``."""
        found = {d: (h, src, cids) for d, h, src, cids in self.manifest.entries(list(ids))}
        unknown = [i for i in ids if i not in found]
        if unknown:
            raise UnknownDocumentError(unknown)
        return found

    def get(self, ids: Sequence[str] | str) -> list[Document]:
        """Stored documents by id, in the order asked: the text rebuilt exactly from the
        chunks, the metadata as stored with them (see ``trawl.documents``). Unknown ids
        raise ``UnknownDocumentError`` listing every one of them."""
        wanted = [ids] if isinstance(ids, str) else list(ids)
        for i in wanted:
            if not isinstance(i, str):
                raise InputError(f"document ids must be strings, got {type(i).__name__}")
        if not wanted:
            return []
        entries = self._entries(wanted)
        chunks = self._stored_chunks([(d, entries[d][2]) for d in dict.fromkeys(wanted)])
        return [Document(id=d, text=assemble_text(d, chunks[d]),
                         metadata=document_metadata(chunks[d])) for d in wanted]

    def documents(self, *, page_size: int = 256,
                  after: str | None = None) -> Iterator[DocumentInfo]:
        """Every stored document (id, metadata, chunk count, source), in id order; with
        ``after``, only those whose id sorts after it (a cursor, as ``trawl serve`` pages).

        Reads the manifest and each document's first chunk a page at a time, so it is
        safe on large indexes; documents added or deleted while iterating may or may
        not be seen."""
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise InputError(f"page_size must be an integer >= 1, got {page_size!r}")
        if after is not None and not isinstance(after, str):
            raise InputError(f"after must be a document id (a string), got {type(after).__name__}")
        while True:
            rows = self.manifest.page(after, page_size)
            if not rows:
                return
            after = rows[-1][0]
            firsts = self._stored_chunks([(d, cids[:1]) for d, _, cids in rows if cids])
            for doc_id, source, cids in rows:
                yield DocumentInfo(id=doc_id, metadata=document_metadata(firsts.get(doc_id, [])),
                                   chunks=len(cids), source=source, chunk_ids=cids)

    def update_metadata(self, doc_id: str, metadata: Mapping[str, Any]) -> Document:
        """Change a document's metadata in every index without encoding it again.

        ``metadata`` is merged into what is stored; a key set to ``None`` is removed.
        Indexes that implement ``Index.update_metadata`` (every built-in one) replace
        their payloads in place; any other vector index gets the chunks encoded again
        and upserted (correct, slower). If an index fails, the ones already changed are
        put back and the error is raised: nothing stored is lost. A later ``add`` of the
        document with different metadata (e.g. re-indexing its file) overrides this.
        Returns the updated document.
        """
        if not isinstance(doc_id, str):
            raise InputError(f"document id must be a string, got {type(doc_id).__name__}")
        patch = check_metadata_patch(doc_id, metadata)
        self._check_writable("update metadata")
        with self._claim([doc_id]), self._write_mutex:
            _, source, chunk_ids = self._entries([doc_id])[doc_id]
            old = self._stored_chunks([(doc_id, chunk_ids)])[doc_id]
            new = [c.model_copy(update={"metadata": patched(c.metadata, patch)}) for c in old]
            text = assemble_text(doc_id, new)
            meta = document_metadata(new)
            digest = text_hash(text + "\x00" + repr(sorted(meta.items())))
            # one group per index object: retrievers sharing a store share one index
            groups: dict[int, list[Retriever]] = {}
            for r in self.pipeline.retrievers.values():
                groups.setdefault(id(r.index), []).append(r)
            # indexes that cannot update in place get the (same) vectors again: encoded
            # here, outside the exclusive lock, like ``add`` does
            encoded = {r.name: r.encode_chunks(new) for g in groups.values()
                       if not type(g[0].index).updates_metadata_in_place() for r in g}
            done: list[list[Retriever]] = []
            with self._lock.write():
                try:
                    for group in groups.values():
                        _write_metadata(group, new, encoded)
                        done.append(group)
                except Exception:
                    for group in done:  # put back what was changed; report the original error
                        try:
                            _write_metadata(group, old, encoded)
                        except Exception:
                            pass
                    raise
                self.manifest.mark([(doc_id, digest, source, chunk_ids)], "committed")
        return Document(id=doc_id, text=text, metadata=meta)

    # -- async -----------------------------------------------------------------------------
    async def aadd(self, documents: Iterable[Document | str | dict[str, Any]],
                   **kwargs: Any) -> AddResult:
        """``add`` in a worker thread (``on_progress`` is then called from that thread)."""
        return await asyncio.to_thread(self.add, documents, **kwargs)

    async def adelete(self, doc_ids: Sequence[str] | str) -> int:
        """``delete`` in a worker thread."""
        return await asyncio.to_thread(self.delete, doc_ids)

    async def asearch_batch(self, queries: Sequence[str], top_k: int = 10,
                            filters: Any = None, **kwargs: Any) -> list[list[Hit]]:
        """``search_batch`` in a worker thread (cancelled with the task)."""
        return await _cancellable_thread(self.search_batch, queries, top_k, filters, **kwargs)

    async def aget(self, ids: Sequence[str] | str) -> list[Document]:
        """``get`` in a worker thread."""
        return await asyncio.to_thread(self.get, ids)

    async def aupdate_metadata(self, doc_id: str, metadata: Mapping[str, Any]) -> Document:
        """``update_metadata`` in a worker thread."""
        return await asyncio.to_thread(self.update_metadata, doc_id, metadata)

    def info(self) -> IndexInfo:
        """The pipeline's shape for a client: retrievers, fusion, reranker, document count."""
        cfg = self.pipeline.config
        retrievers = tuple(RetrieverInfo(r.name, r.index, r.encoder) for r in cfg.retrievers)
        reranker = cfg.reranker.name if cfg.reranker is not None else None
        return IndexInfo(str(self.path) if self.path else None, cfg.name, retrievers,
                         cfg.fusion, reranker,
                         bool(cfg.reranker is not None and cfg.reranker.enabled
                              and self.pipeline.reranker is not None),
                         self.manifest.count())

    def chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        """Stored chunks by id (``None`` where unknown), from the first index that keeps text."""
        source = self._chunk_source()
        with self._lock.read(), plugin_call(source.index, "index", "get_chunks"):
            return list(source.index.get_chunks(list(chunk_ids)))

    def neighbours(self, chunk_id: str, doc_id: str, *,
                   window: int = 1) -> tuple[list[Chunk], list[Chunk]]:
        """Up to ``window`` chunks before and after ``chunk_id`` in its document, in order."""
        entries = self.manifest.entries([doc_id])
        order = entries[0][3] if entries else []
        if chunk_id not in order:
            return [], []
        at = order.index(chunk_id)
        before_ids = order[max(0, at - window):at]
        after_ids = order[at + 1:at + 1 + window]
        found = self.chunks(before_ids + after_ids) if before_ids or after_ids else []
        before = [c for c in found[:len(before_ids)] if c is not None]
        after = [c for c in found[len(before_ids):] if c is not None]
        return before, after

    def metadata_fields(self, sample: int = 200) -> dict[str, list[str]]:
        """Metadata field names seen on a sample of documents, each with a few example values
        (what a filter bar completes)."""
        ids = self.manifest.first_chunk_ids(sample)
        try:
            chunks = self.chunks(ids) if ids else []
        except ConfigError:  # no index keeps stored chunks
            return {}
        seen: dict[str, set[str]] = {}
        for chunk in chunks:
            if chunk is None:
                continue
            for key, value in chunk.metadata.items():
                values = seen.setdefault(key, set())
                if isinstance(value, (str, int, float, bool)) and len(values) < 20:
                    text = str(value)
                    if len(text) <= 40:
                        values.add(text)
        return {k: sorted(v) for k, v in sorted(seen.items())}

    def stats(self) -> dict[str, Any]:
        """Counts and sizes for ``trawl stats`` and the TUI index screen."""
        allocated, apparent = folder_sizes(self.path) if self.path is not None else (0, 0)
        return {
            "path": str(self.path) if self.path else ":memory:",
            "pipeline": self.pipeline.config.name,
            "documents": self.manifest.count(),
            "chunks": {n: r.count() for n, r in self.pipeline.retrievers.items()},
            "encoders": [type(e).__name__ for e in self.pipeline.encoders],
            "disk_bytes": allocated,  # what the index takes on disk (st_blocks)
            "apparent_bytes": apparent,  # sum of file sizes (sparse files count in full)
        }

    def close(self) -> None:
        try:
            record = self._clean_close_record()
            self.pipeline.close()
            if record is not None:  # written last: every index closed without an error
                self.manifest.set_meta(CLEAN_CLOSE, record)
            self.manifest.close()
        finally:
            self._release()

    def __enter__(self) -> Trawl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_metadata(group: list[Retriever], chunks: list[Chunk],
                    encoded: dict[str, Any]) -> None:
    """New metadata into one index (``group``: the retrievers using it): in place, or by
    upserting the chunks with their ``encoded`` vectors again."""
    index = group[0].index
    if not any(r.name in encoded for r in group):
        with plugin_call(index, "index", "update_metadata"):
            index.update_metadata(chunks)
    elif group[0].field is not None:  # a shared store: every member's vector at once
        with plugin_call(index, "index", "upsert_fields"):
            index.upsert_fields(chunks, {cast(str, r.field): r.as_index_input(encoded[r.name])
                                         for r in group})
    else:
        group[0].write(chunks, encoded[group[0].name])


def _windows(todo: list[tuple[Document, str, bool]], docs: int
             ) -> Iterator[list[tuple[Document, str, bool]]]:
    """``todo`` in runs of at most ``docs`` documents and ``ENCODE_WINDOW_CHARS`` of text."""
    part: list[tuple[Document, str, bool]] = []
    chars = 0
    for item in todo:
        size = len(item[0].text)
        if part and (len(part) >= docs or chars + size > ENCODE_WINDOW_CHARS):
            yield part
            part, chars = [], 0
        part.append(item)
        chars += size
    if part:
        yield part


def _room(top_k: int, partial: frozenset[str]) -> int:
    """Hits to ask for while documents are half written: twice ``top_k``, so that hits of
    those documents, skipped by ``_without``, rarely leave fewer than ``top_k``."""
    return top_k * 2 if partial else top_k


def _without(hits: list[Hit], partial: frozenset[str], top_k: int) -> list[Hit]:
    """``hits`` less those of half-written documents, ranked again from 1."""
    if not partial:
        return hits
    kept = [h for h in hits if h.doc_id not in partial][:top_k]
    return [h if h.rank == r else h.model_copy(update={"rank": r})
            for r, h in enumerate(kept, 1)]


MAX_QUERY_CHARS = 20_000


def _capped_query(query: str) -> str:
    """The query cut at ``MAX_QUERY_CHARS``, with a warning when it was longer."""
    if len(query) <= MAX_QUERY_CHARS:
        return query
    warnings.warn(f"query of {len(query)} characters cut to the first {MAX_QUERY_CHARS}",
                  RuntimeWarning, stacklevel=3)
    return query[:MAX_QUERY_CHARS]


def _build_shape(config: PipelineConfig, host: PluginHost) -> dict[str, Any]:
    """What must match for a saved index to open with ``config``: everything but the
    query-time choices (name, fusion, reranker, fields marked ``QUERY_TIME``) and secrets
    (never saved)."""
    shape = without_query_time(without_secrets(config, host.registry), host.registry)
    for key in ("name", "reranker", "fusion"):
        shape.pop(key, None)
    return shape


def _writable_index(path: Path) -> bool:
    """Whether this process may write the index folder and its manifest (``os.access``
    sees read-only mounts and modes alike)."""
    manifest = path / MANIFEST_FILE
    return os.access(path, os.W_OK | os.X_OK) and (
        not manifest.exists() or os.access(manifest, os.W_OK))


def _locked_error(path: Path) -> IndexLockedError:
    """Why the folder's lock is taken: this process (a second ``Trawl`` on one folder) or
    another one, named by the pid its lock record holds."""
    owner = read_lock(path)
    if owner is not None and owner.pid == os.getpid():
        return IndexLockedError(
            f"index {path} is already open in this process (another Trawl object holds it); "
            "use that object, or close it before opening the folder again")
    who = f"process {owner.pid}" if owner is not None else "another process"
    return IndexLockedError(
        f"index {path} is open in {who} (lock file {path / LOCK_FILE}); close it there "
        "first, or serve it with `trawl serve` so that others can attach")


class _Bar:
    def __init__(self, total: int, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[rate]}"),
                                  TimeElapsedColumn(), TimeRemainingColumn(), transient=False)
        self._task = self._progress.add_task(label, total=total, rate="")
        self._progress.start()

    def update(self, n: int) -> None:
        self._progress.advance(self._task, n)
        speed = self._progress.tasks[0].speed
        if speed:
            self._progress.update(self._task, rate=f"{speed:.1f} docs/s")

    def close(self) -> None:
        self._progress.stop()


def _progress(enabled: bool, total: int, label: str) -> _Bar | None:
    if not enabled or total < 2:
        return None
    return _Bar(total, label)
