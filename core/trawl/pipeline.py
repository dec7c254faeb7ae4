"""The search pipeline: encode → retrieve (per retriever) → fuse → rerank.

One direction of data flow. A ``Pipeline`` is built from a ``PipelineConfig`` and a
component registry; it owns the component instances and nothing about persistence
of documents (``Trawl`` does that).
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from .components import (
    ComponentContext,
    Encoder,
    FloatArray,
    FusionRequest,
    Index,
    IndexQuery,
    MultiVectorTransform,
    Reranker,
    VectorField,
    plugin_call,
)
from .config import FusionConfig, PipelineConfig, RetrieverConfig
from .errors import ConfigError, InputError, raise_if_cancelled
from .filters import Filter
from .fusion import fuse
from .models import Chunk, Hit, SourceScore
from .plugins import ComponentRegistry
from .tokens import LEGACY_FILE, TokenStore
from .vectors import with_one_blas_thread

# Retriever folders cannot hold a dot, so no retriever (even one named "tokens") clashes.
TOKENS_DIR = "tokens.d"


@dataclass
class Retriever:
    """One configured first stage: encoder (optional) → transform (optional) → index."""

    config: RetrieverConfig
    index: Index
    encoder: Encoder | None = None
    transform: MultiVectorTransform | None = None
    tokens: TokenStore | None = None
    #: this retriever's named vector when it shares its index with others (``store``)
    field: str | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def as_index_input(self, encoded: Any) -> Any:
        """Encoder output as the index takes it: a float32 matrix for dense encoders."""
        if self.encoder is not None and self.encoder.kind == "dense":
            return np.asarray(encoded, dtype=np.float32)
        return encoded

    def index_query(self, text: str, encoded: Any) -> IndexQuery:
        """The query for this retriever's index (or its field of a shared index)."""
        kind = self.encoder.kind if self.encoder is not None else None
        if kind == "sparse":
            return IndexQuery(text=text, sparse=encoded)
        if kind == "multivector" and self.transform is None:
            return IndexQuery(text=text, tokens=encoded)
        return IndexQuery(text=text, vector=encoded)

    def encode_chunks(self, chunks: Sequence[Chunk], *, show_progress: bool = False) -> Any:
        """Encode chunk texts (CPU-bound, no locks needed); ``None`` for lexical indexes."""
        if self.encoder is None or not chunks:
            return None
        with plugin_call(self.encoder, "encoder", "encode_documents"):
            return self.encoder.encode_documents([self.encoder.document_text(c) for c in chunks],
                                                 show_progress=show_progress)

    def write(self, chunks: Sequence[Chunk], encoded: Any) -> None:
        """Store chunks (and their encodings from ``encode_chunks``) in the index.

        Token vectors go to the pipeline's token store (``Pipeline.write_tokens``)."""
        if not chunks:
            return
        if self.index.input == "text":
            with plugin_call(self.index, "index", "upsert"):
                self.index.upsert(chunks)
        elif self.transform is not None:
            sets = cast(list[FloatArray], encoded)
            with plugin_call(self.transform, "transform", "encode_document_set"):
                vectors = self.transform.encode_document_set(sets)
            with plugin_call(self.index, "index", "upsert"):
                self.index.upsert(chunks, vectors)
        elif self.field is not None:
            with plugin_call(self.index, "index", "upsert_fields"):
                self.index.upsert_fields(chunks, {self.field: self.as_index_input(encoded)})
        else:
            with plugin_call(self.index, "index", "upsert"):
                self.index.upsert(chunks, self.as_index_input(encoded))

    def encode_query(self, text: str) -> Any:
        """Everything CPU-bound about a query, done before any index lock is taken."""
        return self.encode_queries([text])[0]

    def encode_queries(self, texts: Sequence[str]) -> list[Any]:
        """``encode_query`` for many queries in one encoder (and transform) call."""
        if self.encoder is None:
            return [None] * len(texts)
        with plugin_call(self.encoder, "encoder", "encode_queries"):
            encoded = self.encoder.encode_queries(list(texts))
        if self.transform is not None:
            qsets = cast(list[FloatArray], encoded)
            with plugin_call(self.transform, "transform", "encode_query_set"):
                qvecs = self.transform.encode_query_set(qsets)
            return [(qsets[i], qvecs[i]) for i in range(len(texts))]
        if self.encoder.kind == "dense":
            matrix = np.asarray(encoded, dtype=np.float32)
            return [matrix[i] for i in range(len(texts))]
        return list(encoded)  # SparseVectors, or (t, dim) token arrays

    def search(self, text: str, encoded: Any, top_k: int, filters: Filter | None,
               keep: int | None = None) -> list[Hit]:
        """The index's top ``max(top_k, candidates)``; a multi-vector retriever reranks them
        by exact MaxSim and returns the first ``keep`` (default: all candidates; a caller
        that reads only its top ``keep`` saves building the rest)."""
        depth = max(top_k, self.config.candidates)
        if self.field is not None:
            with plugin_call(self.index, "index", "search_fields"):
                found = self.index.search_fields({self.field: self.index_query(text, encoded)},
                                                 depth, filters)
            return cast(dict[str, list[Hit]], found)[self.field]
        if self.transform is None:
            with plugin_call(self.index, "index", "search"):
                return self.index.search(self.index_query(text, encoded), depth, filters)
        qset, qvec = encoded
        with plugin_call(self.index, "index", "search"):
            hits = self.index.search(IndexQuery(text=text, vector=qvec), depth, filters)
        if not self.config.exact_rerank or self.tokens is None or not hits:
            return hits
        exact, stored = self.tokens.maxsim(qset, [h.chunk_id for h in hits])
        if not stored.all():
            warnings.warn(f"retriever {self.name!r}: {int((~stored).sum())} candidates have no "
                          "stored token vectors (scored 0); reopen the index to rebuild the "
                          "token store", RuntimeWarning, stacklevel=2)
        order = sorted(range(len(hits)), key=lambda i: (-float(exact[i]), hits[i].chunk_id))
        if keep is not None:
            order = order[:max(keep, 0)]
        out = []
        for rank, i in enumerate(order, start=1):
            h = hits[i]
            score = float(exact[i])
            sources = {**h.scores_by_source,
                       f"{self.name}:fde": SourceScore.of(h.score, h.rank),
                       self.name: SourceScore.of(score, rank)}
            out.append(h.ranked(score, rank, sources))
        return out

    def doc_ids(self) -> set[str]:
        with plugin_call(self.index, "index", "doc_ids"):
            return self.index.doc_ids()

    def delete(self, doc_ids: Sequence[str]) -> int:
        with plugin_call(self.index, "index", "delete"):
            return self.index.delete(doc_ids)

    def count(self) -> int:
        with plugin_call(self.index, "index", "count"):
            return self.index.count()

    def close(self) -> None:
        self.index.close()


@dataclass
class SearchTrace:
    """Timings of the last search, for the TUI footer and benchmarks."""

    encode_ms: float = 0.0
    retrieve_ms: float = 0.0
    rerank_ms: float = 0.0
    per_source: dict[str, int] = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return self.encode_ms + self.retrieve_ms + self.rerank_ms


class Pipeline:
    """Builds and owns the components a ``PipelineConfig`` names."""

    def __init__(self, config: PipelineConfig, registry: ComponentRegistry,
                 storage_dir: Path | None, state: dict[str, Any] | None = None) -> None:
        self.config = config
        self.registry = registry
        self.storage_dir = storage_dir
        self._encoders: dict[str, Encoder] = {}
        self.retrievers: dict[str, Retriever] = {}
        self.reranker: Reranker | None = None
        self.state: dict[str, Any] = dict(state or {})
        self._stores: dict[str, Index] = {}
        #: The index's token store (one per index) and the encoder that fills it; the
        #: producer is a multi-vector retriever (its encodings are stored as they are
        #: written) or else a reranker that scores from stored token vectors.
        self.tokens: TokenStore | None = None
        self.token_encoder: Encoder | None = None
        self._token_retriever: str | None = None
        try:
            for rc in config.retrievers:
                if rc.store is None:
                    self.retrievers[rc.name] = self._build_retriever(rc)
                else:
                    self.retrievers[rc.name] = self._build_store_member(rc)
            if config.reranker is not None:
                self.reranker = cast(Reranker, registry.build(
                    "reranker", config.reranker.name, config.reranker.config,
                    ComponentContext(name=config.reranker.name)))
            self._open_token_store()
        except BaseException:
            self.close()
            raise

    # -- token store ----------------------------------------------------------------------
    def _open_token_store(self) -> None:
        for r in self.retrievers.values():
            if r.transform is not None and r.encoder is not None:
                self.token_encoder, self._token_retriever = r.encoder, r.name
                break
        if self.reranker is not None:
            wanted = self.reranker.token_encoder()
            if wanted is not None and self.token_encoder is None:
                self.token_encoder = wanted
        folder = self.storage_dir / TOKENS_DIR if self.storage_dir else None
        legacy = [self.storage_dir / r.name / LEGACY_FILE for r in self.retrievers.values()
                  if self.storage_dir is not None
                  and (self.storage_dir / r.name / LEGACY_FILE).exists()]
        exists = folder is not None and folder.exists()
        if self.token_encoder is None and not exists:
            return  # nothing here reads or writes token vectors
        # Opened even when nothing in this pipeline reads it, so deletes keep it in step.
        self.tokens = TokenStore(folder)
        for path in legacy:  # an index from an earlier version: one SQLite store per retriever
            self.tokens.import_legacy(path)
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        for r in self.retrievers.values():
            if r.transform is not None:
                r.tokens = self.tokens
        fingerprint = self.token_fingerprint()
        if fingerprint is not None:
            stored = self.tokens.producer
            if stored is not None and stored != fingerprint:
                warnings.warn(f"token store {folder or ':memory:'}: made by another encoder "
                              f"configuration ({stored}); its vectors are re-encoded",
                              RuntimeWarning, stacklevel=2)
                self.tokens.clear()
            self.tokens.set_producer(fingerprint)
        wanted = self.reranker.token_encoder() if self.reranker is not None else None
        if self.reranker is not None and wanted is not None and \
                _fingerprint(wanted) == fingerprint:
            self.reranker.use_token_store(self.tokens)

    def token_fingerprint(self) -> dict[str, Any] | None:
        return _fingerprint(self.token_encoder) if self.token_encoder is not None else None

    def encode_tokens(self, chunks: Sequence[Chunk], encoded: dict[str, Any], *,
                      show_progress: bool = False) -> list[FloatArray] | None:
        """Token vectors to store for ``chunks`` (``None``: this pipeline keeps none).

        A multi-vector retriever's encodings are reused; otherwise the reranker's token
        encoder runs here, at index time, so queries never encode a stored passage."""
        if self.tokens is None or self.token_encoder is None or not chunks:
            return None
        if self._token_retriever is not None and encoded.get(self._token_retriever) is not None:
            return cast(list[FloatArray], encoded[self._token_retriever])
        encoder = self.token_encoder
        with plugin_call(encoder, "encoder", "encode_documents"):
            return cast(list[FloatArray], encoder.encode_documents(
                [encoder.document_text(c) for c in chunks], show_progress=show_progress))

    def write_tokens(self, chunks: Sequence[Chunk], sets: list[FloatArray] | None) -> None:
        if self.tokens is not None and sets is not None and chunks:
            self.tokens.put([c.id for c in chunks], [c.doc_id for c in chunks], sets)

    def delete_tokens(self, doc_ids: Sequence[str]) -> None:
        if self.tokens is not None:
            self.tokens.delete_docs(doc_ids)

    def stored_chunks(self, chunk_ids: Sequence[str]) -> list[Chunk | None]:
        """Chunks by id from the first index that can return them (for rebuilding)."""
        out: list[Chunk | None] = [None] * len(chunk_ids)
        for r in self.retrievers.values():
            todo = [i for i, c in enumerate(out) if c is None]
            if not todo:
                break
            try:
                with plugin_call(r.index, "index", "get_chunks"):
                    got = r.index.get_chunks([chunk_ids[i] for i in todo])
            except NotImplementedError:
                continue
            for i, chunk in zip(todo, got, strict=True):
                out[i] = chunk
        return out

    def _encoder(self, name: str, cfg: dict[str, Any]) -> Encoder:
        import json

        key = f"{name}:{json.dumps(cfg, sort_keys=True)}"
        if key not in self._encoders:
            self._encoders[key] = cast(Encoder, self.registry.build(
                "encoder", name, cfg, ComponentContext(name=name)))
        return self._encoders[key]

    def _build_retriever(self, rc: RetrieverConfig) -> Retriever:
        sub = self.storage_dir / rc.name if self.storage_dir else None
        index_cls = cast(type[Index], self.registry.get("index", rc.index).load())
        encoder = transform = None
        dim: int | None = None
        metric = "cosine"
        kind = "dense"
        if index_cls.input == "dense":
            if rc.encoder is None:
                raise ConfigError(f"retriever {rc.name!r}: index {rc.index!r} needs vectors, "
                                  "so the retriever needs an 'encoder'")
            encoder = self._encoder(rc.encoder, rc.encoder_config)
            dim = encoder.dim
            if rc.transform is not None:
                if encoder.kind != "multivector":
                    raise ConfigError(
                        f"retriever {rc.name!r}: transform {rc.transform!r} needs a multi-vector "
                        f"encoder, {rc.encoder!r} is {encoder.kind}")
                tcfg = dict(rc.transform_config)
                saved = self.state.get(f"transform:{rc.name}")
                if saved is not None:
                    # The same seed and sizes on both sides, always: stored with the index.
                    tcfg = saved
                transform = cast(MultiVectorTransform, self.registry.build(
                    "transform", rc.transform, tcfg,
                    ComponentContext(name=rc.transform, dim=encoder.dim)))
                self.state[f"transform:{rc.name}"] = transform.state()
                dim, metric = transform.dim, "dot"
            elif encoder.kind not in index_cls.vector_kinds:
                hint = (" add a 'transform' (e.g. muvera) or use a dense encoder"
                        if encoder.kind == "multivector" else "")
                raise ConfigError(f"retriever {rc.name!r}: encoder {rc.encoder!r} is "
                                  f"{encoder.kind}; index {rc.index!r} stores "
                                  f"{sorted(index_cls.vector_kinds)};{hint}")
            else:
                kind = encoder.kind
                dim = None if kind == "sparse" else dim
                if kind == "sparse":
                    metric = encoder.metric
        elif rc.encoder is not None:
            raise ConfigError(f"retriever {rc.name!r}: index {rc.index!r} is lexical and takes "
                              "no encoder")
        index = cast(Index, self.registry.build(
            "index", rc.index, rc.index_config,
            ComponentContext(name=rc.name, storage_dir=sub, dim=dim,
                             metric=metric, kind=kind)))  # type: ignore[arg-type]
        return Retriever(config=rc, index=index, encoder=encoder, transform=transform)

    def _build_store_member(self, rc: RetrieverConfig) -> Retriever:
        """A retriever whose index it shares with the others naming the same ``store``.

        The index is built once, when the store's first retriever is, with one field
        (named vector) per member, so it knows every field before its first write.
        """
        store = cast(str, rc.store)
        members = [m for m in self.config.retrievers if m.store == store]
        index_cls = cast(type[Index], self.registry.get("index", rc.index).load())
        if not index_cls.shareable:
            raise ConfigError(f"retriever {rc.name!r}: index {rc.index!r} cannot be shared "
                              f"by several retrievers (store {store!r})")
        for m in members:
            if m.transform is not None or m.encoder is None:
                raise ConfigError(f"retriever {m.name!r} in store {store!r}: a shared index "
                                  "takes retrievers with an encoder and no transform")
        if store not in self._stores:
            fields = []
            for m in members:
                enc = self._encoder(cast(str, m.encoder), m.encoder_config)
                if enc.kind not in index_cls.vector_kinds:
                    raise ConfigError(f"retriever {m.name!r}: encoder {m.encoder!r} is "
                                      f"{enc.kind}; index {m.index!r} stores "
                                      f"{sorted(index_cls.vector_kinds)}")
                sparse = enc.kind == "sparse"
                fields.append(VectorField(name=m.name, kind=enc.kind,
                                          dim=None if sparse else enc.dim,
                                          metric=enc.metric if sparse else "cosine"))
            config = next((m.index_config for m in members if m.index_config), {})
            sub = self.storage_dir / store if self.storage_dir else None
            self._stores[store] = cast(Index, self.registry.build(
                "index", rc.index, config,
                ComponentContext(name=store, storage_dir=sub, fields=tuple(fields))))
        encoder = self._encoder(cast(str, rc.encoder), rc.encoder_config)
        return Retriever(config=rc, index=self._stores[store], encoder=encoder, field=rc.name)

    @property
    def encoders(self) -> list[Encoder]:
        return list(self._encoders.values())

    def primary_encoder(self) -> Encoder | None:
        """The encoder whose tokenizer measures chunks and context budgets: the first
        model encoder (a sparse one only when there is no other), so adding a sparse
        retriever does not change how a pipeline chunks."""
        found = [r.encoder for r in self.retrievers.values() if r.encoder is not None]
        for encoder in found:
            if encoder.kind != "sparse":
                return encoder
        return found[0] if found else None

    @contextmanager
    def write_batch(self) -> Iterator[None]:
        """Every index's ``write_batch`` block around the writes of one batch."""
        with ExitStack() as stack:
            seen: set[int] = set()
            for index in [*(r.index for r in self.retrievers.values()), *self._stores.values()]:
                if id(index) not in seen:
                    seen.add(id(index))
                    with plugin_call(index, "index", "write_batch"):
                        stack.enter_context(index.write_batch())
            yield

    def write(self, chunks: Sequence[Chunk], encoded: dict[str, Any]) -> None:
        """Store chunks (with ``encode_chunks`` output per retriever) in every index.

        Retrievers sharing a store write once, together: one record per chunk holding
        every member's vector, in one request per batch.
        """
        shared_done: set[str] = set()
        for name, r in self.retrievers.items():
            store = r.config.store
            if store is None:
                r.write(chunks, encoded[name])
                continue
            if store in shared_done or not chunks:
                continue
            shared_done.add(store)
            members = [m for m in self.retrievers.values() if m.config.store == store]
            with plugin_call(r.index, "index", "upsert_fields"):
                r.index.upsert_fields(chunks, {cast(str, m.field): m.as_index_input(
                    encoded[m.name]) for m in members})

    def search(self, query: str, top_k: int = 10, filters: Filter | None = None, *,
               retrievers: Sequence[str] | None = None, fusion: FusionConfig | None = None,
               rerank: bool | None = None, trace: SearchTrace | None = None,
               index_lock: Any = None, cancel: threading.Event | None = None) -> list[Hit]:
        return self.search_batch([query], top_k, filters, retrievers=retrievers, fusion=fusion,
                                 rerank=rerank, traces=[trace or SearchTrace()],
                                 index_lock=index_lock, cancel=cancel)[0]

    @with_one_blas_thread
    def search_batch(self, queries: Sequence[str], top_k: int = 10,
                     filters: Filter | None = None, *, retrievers: Sequence[str] | None = None,
                     fusion: FusionConfig | None = None, rerank: bool | None = None,
                     traces: Sequence[SearchTrace] | None = None,
                     index_lock: Any = None,
                     cancel: threading.Event | None = None) -> list[list[Hit]]:
        """Search many queries: each encoder sees all of them in one call, then every
        query is retrieved (under one ``index_lock`` hold), fused and reranked as
        ``search`` would. ``traces`` (one per query) get the encoding time shared out.
        ``cancel``, once set, stops the call at the next stage (``Cancelled``)."""
        if top_k <= 0:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        if top_k > 10_000:
            raise InputError(f"top_k must be <= 10000, got {top_k}")
        names = list(retrievers) if retrievers else list(self.retrievers)
        unknown = [n for n in names if n not in self.retrievers]
        if unknown:
            raise InputError(f"unknown retriever(s) {unknown}; this pipeline has "
                             f"{list(self.retrievers)}")
        traces = list(traces) if traces is not None else [SearchTrace() for _ in queries]
        use_rerank = self.reranker is not None and (
            rerank if rerank is not None else bool(self.config.reranker and
                                                   self.config.reranker.enabled))
        depth = max(top_k, self.config.reranker.depth) if (
            use_rerank and self.config.reranker) else top_k
        fcfg = fusion or self.config.fusion
        weights = {n: self.retrievers[n].config.weight for n in names}
        t0 = time.perf_counter()
        encoded = {}
        for n in names:
            raise_if_cancelled(cancel, "search")
            encoded[n] = self.retrievers[n].encode_queries(queries)
        encode_ms = (time.perf_counter() - t0) * 1000 / max(1, len(queries))
        found: list[tuple[dict[str, list[Hit]], list[Hit] | None]] = []
        from contextlib import nullcontext

        with index_lock if index_lock is not None else nullcontext():
            for i, query in enumerate(queries):
                t1 = time.perf_counter()
                found.append(self._retrieve(query, {n: e[i] for n, e in encoded.items()},
                                            names, depth, filters, fcfg, weights, cancel))
                traces[i].encode_ms = encode_ms
                traces[i].retrieve_ms = (time.perf_counter() - t1) * 1000
        out = []
        for query, (runs, fused_natively), trace in zip(queries, found, traces, strict=True):
            raise_if_cancelled(cancel, "search")
            trace.per_source = {n: len(h) for n, h in runs.items()}
            if fused_natively is not None:
                trace.per_source = {n: len(fused_natively) for n in names}
                fused = fused_natively[:depth]
            elif len(runs) == 1:
                (name, hits), = runs.items()
                fused = [h if _ranked_by(h, name, r) else h.ranked(h.score, r, {
                    **h.scores_by_source, name: SourceScore.of(h.score, r)})
                    for r, h in enumerate(hits[:depth], start=1)]
            else:
                fused = fuse(runs, fcfg.method, k=fcfg.k, weights=weights, top_k=depth)
            if use_rerank and self.reranker is not None:
                raise_if_cancelled(cancel, "search")
                t3 = time.perf_counter()
                with plugin_call(self.reranker, "reranker", "rerank"):
                    fused = self.reranker.rerank(query, fused, top_k)
                trace.rerank_ms = (time.perf_counter() - t3) * 1000
            out.append(fused[:top_k])
        return out

    def _retrieve(self, query: str, encoded: dict[str, Any], names: list[str], depth: int,
                  filters: Filter | None, fcfg: FusionConfig, weights: dict[str, float],
                  cancel: threading.Event | None = None
                  ) -> tuple[dict[str, list[Hit]], list[Hit] | None]:
        """Every selected retriever's run for one query, or a shared index's fused list."""
        runs: dict[str, list[Hit]] = {}
        fused_natively: list[Hit] | None = None
        for store, members in self._store_groups(names).items():
            raise_if_cancelled(cancel, "search")
            found = self._search_store(store, members, query, encoded, depth, filters,
                                       fcfg if len(members) == len(names) else None,
                                       weights)
            if isinstance(found, list):
                fused_natively = found
            else:
                runs.update(found)
        # a lone retriever's list is cut to ``depth`` anyway; fused runs stay whole
        keep = depth if len(names) == 1 else None
        for n in names:
            if n not in runs and self.retrievers[n].field is None:
                raise_if_cancelled(cancel, "search")
                runs[n] = self.retrievers[n].search(query, encoded[n], depth, filters, keep)
        return runs, fused_natively

    def _store_groups(self, names: Sequence[str]) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for n in names:
            store = self.retrievers[n].config.store
            if store is not None:
                groups.setdefault(store, []).append(n)
        return groups

    def _search_store(self, store: str, members: list[str], query: str,
                      encoded: dict[str, Any], depth: int, filters: Filter | None,
                      fusion: FusionConfig | None, weights: dict[str, float]
                      ) -> dict[str, list[Hit]] | list[Hit]:
        """One request to a shared index for all its selected retrievers: their runs, or
        (when ``fusion`` is given and the index computes that method) the fused list."""
        index = self._stores[store]
        rs = [self.retrievers[n] for n in members]
        queries = {cast(str, r.field): r.index_query(query, encoded[r.name]) for r in rs}
        limit = max([depth] + [r.config.candidates for r in rs])
        request = None
        if fusion is not None and len(members) > 1 and fusion.method in index.native_fusion:
            request = FusionRequest(method=fusion.method, k=fusion.k,
                                    weights={cast(str, r.field): weights[r.name] for r in rs})
        with plugin_call(index, "index", "search_fields"):
            found = index.search_fields(queries, limit, filters, request)
        if isinstance(found, list):
            return found
        by_field = {cast(str, r.field): r.name for r in rs}
        return {by_field[f]: hits for f, hits in found.items()}

    def close(self) -> None:
        for r in self.retrievers.values():
            r.close()
        if self.tokens is not None:
            self.tokens.close()
        for e in self._encoders.values():
            e.close()
        if self.reranker is not None:
            self.reranker.close()


def _ranked_by(hit: Hit, source: str, rank: int) -> bool:
    """Whether ``hit`` already records ``source`` at this rank with its own score (a lone
    retriever's hit then goes out as it is: hits are frozen, so no copy is needed)."""
    mine = hit.scores_by_source.get(source)
    return mine is not None and mine.rank == rank == hit.rank and mine.score == hit.score


def _fingerprint(encoder: Encoder) -> dict[str, Any]:
    """What decides an encoder's token vectors: its class and its full config."""
    cls = type(encoder)
    return {"encoder": f"{cls.__module__}.{cls.__qualname__}",
            "config": encoder.config.model_dump(mode="json")}
