"""The two Qdrant APIs behind one small interface.

``ClientEngine`` speaks ``qdrant-client`` (embedded ``local`` mode and ``server`` mode:
the same code, only the ``QdrantClient`` constructor differs). ``EdgeEngine`` speaks
``qdrant-edge-py``, the Qdrant engine in-process, whose API is its own. Both import their
library inside ``__init__``, so nothing heavy loads before a pipeline builds the index.

A collection holds one or more named vectors (``VectorField``): dense (HNSW), sparse
(inverted index, IDF modifier) and multi-vector (MaxSim). Query vectors reach an engine
as plain Python: ``list[float]`` (dense), ``(indices, values)`` (sparse) or
``list[list[float]]`` (multi-vector).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trawl.components import VectorField
from trawl.errors import (
    ConfigError,
    IndexCorruptError,
    IndexLockedError,
    IndexReadOnlyError,
    MissingDependencyError,
    TrawlError,
)
from trawl.filters import And, Condition, Filter, Not, Or, compile_filter

from .config import QdrantConfig
from .filters import Translator, client_dialect, edge_dialect, payload_key

SCROLL_PAGE = 10_000
#: local mode decides filters with longer ``in`` lists itself (``ClientEngine.translate``)
LONG_LIST = 64


@dataclass
class EngineSpec:
    mode: str
    config: QdrantConfig
    folder: Path | None
    collection: str
    name: str
    expect_existing: bool = False


Scored = list[tuple[float, dict[str, Any]]]
#: (vector name, query vector as plain Python) for one search of a batch
FieldQuery = tuple[str, Any]


def describe_fields(fields: dict[str, VectorField] | list[VectorField]) -> str:
    """``bm25 (sparse, idf), dense (384-d cosine)``: for errors that name both sides."""
    items = sorted(fields.values() if isinstance(fields, dict) else fields,
                   key=lambda f: f.name)
    parts = []
    for f in items:
        if f.kind == "sparse":
            parts.append(f"{f.name} (sparse, idf)" if f.metric != "dot"
                         else f"{f.name} (sparse, no idf)")
        else:
            multi = " multi-vector" if f.kind == "multivector" else ""
            parts.append(f"{f.name} ({f.dim}-d{multi} {f.metric})")
    return ", ".join(parts) or "(none)"


class Engine:
    """What ``QdrantIndex`` needs from a Qdrant API.

    ``fields`` is the collection's named vectors as found (``None`` while there is no
    collection); a sparse field without the IDF modifier is reported with metric ``dot``.
    """

    fields: dict[str, VectorField] | None = None

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.cfg = spec.config
        self._translator: Translator | None = None

    def translate(self, f: Filter | None) -> Any:
        assert self._translator is not None
        return self._translator(f)

    def create(self, fields: list[VectorField]) -> None: raise NotImplementedError
    def upsert(self, ids: list[str], vectors: dict[str, list[Any]],
               payloads: list[dict[str, Any]]) -> None:
        """Write points; ``vectors[name][i]`` is point i's vector (``None``: it has none)."""
        raise NotImplementedError
    def commit(self) -> None: """Make the writes so far durable."""
    def count_docs(self, doc_ids: list[str]) -> int: raise NotImplementedError
    def delete_docs(self, doc_ids: list[str]) -> None: raise NotImplementedError
    def overwrite_payloads(self, ids: list[str], payloads: list[dict[str, Any]]) -> None:
        raise NotImplementedError
    def count(self) -> int: raise NotImplementedError
    def scroll(self, fields: list[str]) -> Iterator[dict[str, Any]]: raise NotImplementedError
    def retrieve(self, ids: list[str]) -> list[dict[str, Any]]: raise NotImplementedError
    def query_many(self, queries: list[FieldQuery], k: int, native_filter: Any
                   ) -> list[Scored]:
        """One batched request: the top ``k`` of each query."""
        raise NotImplementedError
    def query_fused(self, queries: list[FieldQuery], k: int, native_filter: Any,
                    method: str, rrf_k: int) -> Scored:
        """One request: a prefetch of ``k`` per query, fused by the engine (rrf | dbsf)."""
        raise NotImplementedError
    def optimize(self) -> None: """Build indexes now (edge); others do it themselves."""
    def close(self) -> None: raise NotImplementedError

    def query(self, name: str, q: Any, k: int, native_filter: Any) -> Scored:
        return self.query_many([(name, q)], k, native_filter)[0]

    def _kind(self, name: str) -> str:
        assert self.fields is not None
        return self.fields[name].kind

    def _index_fields(self) -> list[tuple[str, str]]:
        # doc_id: deletes and counts filter on it. No chunk_id index: a chunk is reached by
        # its point id (uuid5 of the chunk id) and filters address metadata only, and the
        # index cost ~300 bytes of heap a chunk when a folder opens (Issue 27)
        fields = [("doc_id", "keyword")]
        return fields + [(payload_key(f), t) for f, t in self.cfg.payload_indexes.items()]


def _has_long_list(f: Filter | None) -> bool:
    """Whether ``f`` holds an ``in``/``not in`` list of more than ``LONG_LIST`` values."""
    stack = [f] if f is not None else []
    while stack:
        node = stack.pop()
        if isinstance(node, Condition):
            if node.op in ("in", "not in") and len(node.value) > LONG_LIST:
                return True
        elif isinstance(node, And):
            stack.extend(node.all)
        elif isinstance(node, Or):
            stack.extend(node.any)
        elif isinstance(node, Not):
            stack.append(node.inner)
    return False


def open_engine(spec: EngineSpec) -> Engine:
    if spec.mode == "edge":
        return EdgeEngine(spec)
    return ClientEngine(spec)


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def server_error_line(url: str, what: str, collection: str, exc: BaseException,
                      secret: str | None) -> str:
    """One line naming the server URL and what failed: unreachable, API key refused,
    or the server's own message (never the key, never a traceback)."""
    status = getattr(exc, "status_code", None)
    where = f"qdrant server {url} ({what}, collection {collection!r})"
    if status in (401, 403):
        return (f"{where} refused the API key (HTTP {status}); check $TRAWL_QDRANT_API_KEY "
                "or the index config's api_key")
    text = " ".join(_scrub(str(exc), secret).split())[:300]
    chain = [e for e in (exc, exc.__cause__, exc.__context__) if e is not None]
    if status is None and (any(type(e).__name__ in _UNREACHABLE for e in chain)
                           or "connection refused" in text.lower()):
        return f"{where} is unreachable: {type(exc).__name__}: {text}"
    code = f"HTTP {status}: " if status is not None else f"{type(exc).__name__}: "
    return f"{where}: {code}{text}"


_UNREACHABLE = {"ConnectError", "ConnectTimeout", "ResponseHandlingException",
                "ConnectionRefusedError", "_InactiveRpcError", "ReadTimeout"}


# -- qdrant-client: local and server ---------------------------------------------------
class ClientEngine(Engine):
    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        try:
            import qdrant_client  # noqa: F401
            from qdrant_client import models
        except ImportError as exc:
            raise MissingDependencyError("qdrant-client", "qdrant",
                                         purpose="the qdrant index") from exc
        self.m = models
        self._translator = Translator(client_dialect())
        self._secret: str | None = None
        self.client = self._connect()
        try:
            self.fields = self._existing_fields()
        except BaseException:
            self.client.close()
            raise

    def translate(self, f: Filter | None) -> Any:
        """Local mode evaluates filters in Python, ``MatchAny`` by scanning its list for
        every point (a 10k-value access list over 10k points: ~1 minute). There, a filter
        with a long ``in``/``not in`` list is decided here instead, once per point with
        hashed sets (``trawl.filters.compile_filter``), and handed over as the ids that
        pass (``HasIdCondition``, which local mode looks up in a set)."""
        if self.spec.mode == "server" or not _has_long_list(f):
            return super().translate(f)
        passes = compile_filter(f)
        m, offset, allowed = self.m, None, []
        while True:
            records, offset = self._call("scroll", self.client.scroll, self.spec.collection,
                                         limit=SCROLL_PAGE, offset=offset,
                                         with_payload=["metadata"], with_vectors=False)
            allowed += [r.id for r in records if passes((r.payload or {}).get("metadata") or {})]
            if offset is None:
                break
        return m.Filter(must=[m.HasIdCondition(has_id=allowed)])

    # connection --------------------------------------------------------------------
    def _connect(self) -> Any:
        from qdrant_client import QdrantClient

        spec, cfg = self.spec, self.cfg
        if spec.mode == "server":
            self._secret = cfg.resolved_api_key()
            remote = cfg.plaintext_to_remote()
            if self._secret and remote and not cfg.allow_insecure_api_key:
                raise ConfigError(
                    f"qdrant index {spec.name!r}: refusing to send the API key unencrypted to "
                    f"{remote} ({cfg.url}); use an https:// URL, or set "
                    "allow_insecure_api_key = true in the index config if the network is "
                    "trusted")
            try:
                return QdrantClient(url=cfg.url, api_key=self._secret,
                                    prefer_grpc=cfg.prefer_grpc, https=cfg.https,
                                    timeout=cfg.timeout)
            except Exception as exc:
                raise ConfigError(f"qdrant index {spec.name!r}: cannot configure a client for "
                                  f"{cfg.url}: {_scrub(str(exc), self._secret)}") from None
        if spec.folder is None:
            return QdrantClient(location=":memory:")
        path = spec.folder / "local"
        if spec.expect_existing and not (path / "meta.json").exists():
            raise IndexCorruptError(
                f"qdrant index folder {spec.folder}: {path}/meta.json is missing although "
                f"trawl-qdrant.json says the index was built there; restore the folder or "
                "delete it and re-index")
        try:
            return QdrantClient(path=str(path))
        except PermissionError as exc:
            raise IndexReadOnlyError(
                f"qdrant index folder {path} is read-only here, and qdrant-client's local "
                "mode writes a lock file even to search; copy the index to a writable place, "
                "or serve it from a Qdrant server") from exc
        except RuntimeError as exc:
            if "already accessed" in str(exc):
                raise IndexLockedError(
                    f"qdrant index folder {path} is open in another process (qdrant-client "
                    "local mode allows one process per folder); close it, or use a Qdrant "
                    "server for concurrent access") from None
            raise IndexCorruptError(f"qdrant index folder {path} cannot be opened: "
                                    f"{exc}") from exc
        except Exception as exc:
            raise IndexCorruptError(
                f"qdrant index folder {path} is corrupted ({type(exc).__name__}: "
                f"{str(exc)[:200]}); nothing was changed. Restore it from a backup or delete "
                "the folder and re-index") from exc

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run a client call; server failures become one-line TrawlErrors naming the URL
        (never the API key)."""
        if self.spec.mode != "server":
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except TrawlError:
            raise
        except Exception as exc:
            raise TrawlError(server_error_line(self.cfg.url or "", what, self.spec.collection,
                                               exc, self._secret),
                             title="qdrant server error") from None

    def _existing_fields(self) -> dict[str, VectorField] | None:
        c = self.spec.collection
        if not self._call("collection_exists", self.client.collection_exists, c):
            if self.spec.expect_existing and self.spec.mode == "local":
                raise IndexCorruptError(
                    f"qdrant index folder {self.spec.folder}: collection {c!r} is missing "
                    "although trawl-qdrant.json says it was built there")
            return None
        info = self._call("get_collection", self.client.get_collection, c)
        params = info.config.params
        fields: dict[str, VectorField] = {}
        vectors = params.vectors
        if vectors is not None and not isinstance(vectors, dict):
            vectors = {"(unnamed)": vectors}
        for name, v in (vectors or {}).items():
            fields[name] = VectorField(
                name=name, kind="multivector" if v.multivector_config else "dense",
                dim=int(v.size), metric="dot" if v.distance == self.m.Distance.DOT else "cosine")
        for name, sv in (params.sparse_vectors or {}).items():
            idf = sv.modifier == self.m.Modifier.IDF
            fields[name] = VectorField(name=name, kind="sparse", dim=None,
                                       metric="cosine" if idf else "dot")
        self.ensure_indexes(set(info.payload_schema or {}))
        return fields

    # writes -------------------------------------------------------------------------
    def create(self, fields: list[VectorField]) -> None:
        m, cfg = self.m, self.cfg
        quant: Any = None
        if cfg.quantization == "scalar":
            quant = m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(
                type=m.ScalarType.INT8, quantile=0.99, always_ram=True))
        elif cfg.quantization == "binary":
            quant = m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True))
        dense = {f.name: m.VectorParams(
            size=f.dim, distance=m.Distance.DOT if f.metric == "dot" else m.Distance.COSINE,
            on_disk=cfg.on_disk or None,
            datatype=m.Datatype.FLOAT16 if cfg.vector_datatype == "float16" else None,
            multivector_config=m.MultiVectorConfig(comparator=m.MultiVectorComparator.MAX_SIM)
            if f.kind == "multivector" else None)
            for f in fields if f.kind != "sparse"}
        sparse = {f.name: m.SparseVectorParams(
            modifier=m.Modifier.NONE if f.metric == "dot" else m.Modifier.IDF)
            for f in fields if f.kind == "sparse"}
        self._call("create_collection", self.client.create_collection,
                   self.spec.collection, vectors_config=dense, sparse_vectors_config=sparse,
                   hnsw_config=m.HnswConfigDiff(m=cfg.hnsw.m, ef_construct=cfg.hnsw.ef_construct,
                                                full_scan_threshold=cfg.hnsw.full_scan_threshold),
                   quantization_config=quant,
                   optimizers_config=m.OptimizersConfigDiff(
                       indexing_threshold=cfg.hnsw.indexing_threshold_kb))
        self.ensure_indexes(set())
        self.fields = {f.name: f for f in fields}

    def ensure_indexes(self, existing: set[str]) -> None:
        """Create the payload indexes the config lists that the collection lacks."""
        if self.spec.mode != "server":  # local mode has no payload indexes to build
            return
        m = self.m
        kinds = {"keyword": m.PayloadSchemaType.KEYWORD, "integer": m.PayloadSchemaType.INTEGER,
                 "float": m.PayloadSchemaType.FLOAT, "bool": m.PayloadSchemaType.BOOL,
                 "datetime": m.PayloadSchemaType.DATETIME}
        for key, kind in self._index_fields():
            if key not in existing:
                self._call("create_payload_index", self.client.create_payload_index,
                           self.spec.collection, field_name=key, field_schema=kinds[kind],
                           wait=True)

    def _vector(self, name: str, value: Any) -> Any:
        if self._kind(name) == "sparse":
            return self.m.SparseVector(indices=value[0], values=value[1])
        return value

    def upsert(self, ids: list[str], vectors: dict[str, list[Any]],
               payloads: list[dict[str, Any]]) -> None:
        points = [self.m.PointStruct(id=pid, payload=payload, vector={
            name: self._vector(name, vs[i]) for name, vs in vectors.items() if vs[i] is not None})
            for i, (pid, payload) in enumerate(zip(ids, payloads, strict=True))]
        self._call("upsert", self.client.upsert, self.spec.collection, points=points, wait=True)

    def overwrite_payloads(self, ids: list[str], payloads: list[dict[str, Any]]) -> None:
        for pid, payload in zip(ids, payloads, strict=True):
            self._call("overwrite_payload", self.client.overwrite_payload, self.spec.collection,
                       payload=payload, points=[pid], wait=True)

    def _doc_filter(self, doc_ids: list[str]) -> Any:
        m = self.m
        return m.Filter(must=[m.FieldCondition(key="doc_id", match=m.MatchAny(any=doc_ids))])

    def count_docs(self, doc_ids: list[str]) -> int:
        res = self._call("count", self.client.count, self.spec.collection,
                         count_filter=self._doc_filter(doc_ids), exact=True)
        return int(res.count)

    def delete_docs(self, doc_ids: list[str]) -> None:
        self._call("delete", self.client.delete, self.spec.collection,
                   points_selector=self.m.FilterSelector(filter=self._doc_filter(doc_ids)),
                   wait=True)

    # reads --------------------------------------------------------------------------
    def count(self) -> int:
        return int(self._call("count", self.client.count, self.spec.collection,
                              exact=True).count)

    def scroll(self, fields: list[str]) -> Iterator[dict[str, Any]]:
        offset = None
        while True:
            records, offset = self._call("scroll", self.client.scroll, self.spec.collection,
                                         limit=SCROLL_PAGE, offset=offset,
                                         with_payload=fields, with_vectors=False)
            for r in records:
                yield r.payload or {}
            if offset is None:
                return

    def retrieve(self, ids: list[str]) -> list[dict[str, Any]]:
        records = self._call("retrieve", self.client.retrieve, self.spec.collection, ids=ids,
                             with_payload=True, with_vectors=False)
        return [r.payload or {} for r in records]

    def _params(self, name: str) -> Any:
        m, cfg = self.m, self.cfg
        if self._kind(name) == "sparse":
            return None
        quant = None
        if cfg.quantization != "none":
            quant = m.QuantizationSearchParams(rescore=cfg.quantization_rescore,
                                               oversampling=cfg.quantization_oversampling)
        return m.SearchParams(hnsw_ef=cfg.hnsw.ef, exact=cfg.exact, quantization=quant)

    def query_many(self, queries: list[FieldQuery], k: int, native_filter: Any
                   ) -> list[Scored]:
        requests = [self.m.QueryRequest(query=self._vector(name, q), using=name, limit=k,
                                        filter=native_filter, params=self._params(name),
                                        with_payload=True, with_vector=False)
                    for name, q in queries]
        res = self._call("query", self.client.query_batch_points, self.spec.collection,
                         requests=requests)
        return [[(float(p.score), p.payload or {}) for p in r.points] for r in res]

    def query_fused(self, queries: list[FieldQuery], k: int, native_filter: Any,
                    method: str, rrf_k: int) -> Scored:
        m = self.m
        prefetch = [m.Prefetch(query=self._vector(name, q), using=name, limit=k,
                               filter=native_filter, params=self._params(name))
                    for name, q in queries]
        fusion: Any = (m.RrfQuery(rrf=m.Rrf(k=rrf_k)) if method == "rrf"
                       else m.FusionQuery(fusion=m.Fusion.DBSF))
        res = self._call("query", self.client.query_points, self.spec.collection,
                         prefetch=prefetch, query=fusion, limit=k, query_filter=native_filter,
                         with_payload=True, with_vectors=False)
        return [(float(p.score), p.payload or {}) for p in res.points]

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing twice or a dropped connection: nothing left to release
            pass


# -- qdrant-edge: the engine in-process -----------------------------------------------
class EdgeEngine(Engine):
    def __init__(self, spec: EngineSpec) -> None:
        super().__init__(spec)
        try:
            import qdrant_edge
        except ImportError as exc:
            raise MissingDependencyError("qdrant-edge-py", "qdrant",
                                         purpose="qdrant index mode 'edge'") from exc
        self.e = qdrant_edge
        self._translator = Translator(edge_dialect())
        self._tmp: Path | None = None
        if spec.folder is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="trawl-qdrant-edge-"))
            self.path = self._tmp / "edge"
        else:
            self.path = spec.folder / "edge"
        self.shard: Any = None
        self._since_optimize = 0
        if (self.path / "edge_config.json").exists():
            self._load()
        elif spec.expect_existing:
            raise IndexCorruptError(
                f"qdrant index folder {spec.folder}: {self.path}/edge_config.json is missing "
                "although trawl-qdrant.json says the index was built there; restore the folder "
                "or delete it and re-index")
        elif self.path.exists() and any(self.path.iterdir()):
            raise IndexCorruptError(
                f"qdrant edge folder {self.path} holds files but no edge_config.json; "
                "nothing was changed. Delete it and re-index")

    def _load(self) -> None:
        cfg_path = self.path / "edge_config.json"
        try:
            saved = json.loads(cfg_path.read_text(encoding="utf-8"))
            fields: dict[str, VectorField] = {}
            for name, v in (saved.get("vectors") or {}).items():
                fields[name] = VectorField(
                    name=name, kind="multivector" if v.get("multivector_config") else "dense",
                    dim=int(v["size"]), metric="dot" if v["distance"] == "Dot" else "cosine")
            for name, v in (saved.get("sparse_vectors") or {}).items():
                idf = (v or {}).get("modifier") == "idf"
                fields[name] = VectorField(name=name, kind="sparse", dim=None,
                                           metric="cosine" if idf else "dot")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IndexCorruptError(f"qdrant edge config {cfg_path} is unreadable ({exc}); "
                                    "nothing was changed. Restore it or delete the folder "
                                    "and re-index") from exc
        try:
            self.shard = self.e.EdgeShard.load(str(self.path))
        except Exception as exc:
            text = str(exc)
            if not os.access(self.path, os.W_OK) or "Read-only file system" in text:
                raise IndexReadOnlyError(
                    f"qdrant edge shard {self.path} is read-only here, and Qdrant's engine maps "
                    "its segments for writing even to search; copy the index to a writable "
                    "place, or serve it from a Qdrant server") from None
            if "WouldBlock" in text or "lock" in text.lower():
                raise IndexLockedError(
                    f"qdrant index folder {self.path} is open in another process or index "
                    "instance (its write-ahead log is locked); close that one first, or use "
                    "a Qdrant server for concurrent access") from None
            raise IndexCorruptError(
                f"qdrant edge shard {self.path} cannot be loaded ({text[:300]}); nothing "
                "was changed. Restore it from a backup or delete the folder and "
                "re-index") from exc
        self.fields = fields
        self.ensure_indexes(set(self.shard.info().payload_schema))

    def create(self, fields: list[VectorField]) -> None:
        e, cfg = self.e, self.cfg
        quant: Any = None
        if cfg.quantization == "scalar":
            quant = e.ScalarQuantizationConfig(type=e.ScalarType.Int8, quantile=0.99,
                                               always_ram=True)
        elif cfg.quantization == "binary":
            quant = e.BinaryQuantizationConfig(always_ram=True)
        dense = {f.name: e.EdgeVectorParams(
            size=f.dim, distance=e.Distance.Dot if f.metric == "dot" else e.Distance.Cosine,
            on_disk=cfg.on_disk or None,
            datatype=e.VectorStorageDatatype.Float16 if cfg.vector_datatype == "float16"
            else None,
            multivector_config=e.MultiVectorConfig(e.MultiVectorComparator.MaxSim)
            if f.kind == "multivector" else None)
            for f in fields if f.kind != "sparse"}
        sparse = {f.name: e.EdgeSparseVectorParams(
            modifier=None if f.metric == "dot" else e.Modifier.Idf,
            on_disk=cfg.indexes_on_disk or None)
            for f in fields if f.kind == "sparse"}
        config = e.EdgeConfig(
            vectors=dense, sparse_vectors=sparse or None,
            hnsw_config=e.HnswIndexConfig(m=cfg.hnsw.m, ef_construct=cfg.hnsw.ef_construct,
                                          full_scan_threshold=cfg.hnsw.full_scan_threshold),
            quantization_config=quant, wal_enabled=cfg.wal,
            optimizers=e.EdgeOptimizersConfig(indexing_threshold=cfg.hnsw.indexing_threshold_kb))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shard = e.EdgeShard.create(str(self.path), config)
        self.ensure_indexes(set())
        self.fields = {f.name: f for f in fields}

    def ensure_indexes(self, existing: set[str]) -> None:
        """Create the payload indexes the config lists that the shard lacks."""
        e = self.e
        missing = [(k, t) for k, t in self._index_fields() if k not in existing]
        for key, kind in missing:
            self.shard.update(e.UpdateOperation.create_field_index(key, self._schema(kind)))
        if missing:
            self.shard.flush()

    def _schema(self, kind: str) -> Any:
        """A payload index's schema: the plain type, or its params with ``on_disk``."""
        e = self.e
        if not self.cfg.indexes_on_disk:
            return {"keyword": e.PayloadSchemaType.Keyword,
                    "integer": e.PayloadSchemaType.Integer, "float": e.PayloadSchemaType.Float,
                    "bool": e.PayloadSchemaType.Bool,
                    "datetime": e.PayloadSchemaType.Datetime}[kind]
        params = {"keyword": e.KeywordIndexParams, "integer": e.IntegerIndexParams,
                  "float": e.FloatIndexParams, "bool": e.BoolIndexParams,
                  "datetime": e.DatetimeIndexParams}[kind]
        return params(on_disk=True)

    def _vector(self, name: str, value: Any) -> Any:
        if self._kind(name) == "sparse":
            return self.e.SparseVector(value[0], value[1])
        return value

    def upsert(self, ids: list[str], vectors: dict[str, list[Any]],
               payloads: list[dict[str, Any]]) -> None:
        e = self.e
        points = [e.Point(pid, {name: self._vector(name, vs[i]) for name, vs in vectors.items()
                                if vs[i] is not None}, payload)
                  for i, (pid, payload) in enumerate(zip(ids, payloads, strict=True))]
        self.shard.update(e.UpdateOperation.upsert_points(points))
        self._since_optimize += len(points)

    def overwrite_payloads(self, ids: list[str], payloads: list[dict[str, Any]]) -> None:
        for pid, payload in zip(ids, payloads, strict=True):
            self.shard.update(self.e.UpdateOperation.overwrite_payload([pid], payload))

    def commit(self) -> None:
        self.shard.flush()
        if self.cfg.optimize_after and self._since_optimize >= self.cfg.optimize_after:
            self.optimize()

    def optimize(self) -> None:
        if self.shard is not None:
            self.shard.optimize()
            self.shard.flush()
        self._since_optimize = 0

    def _doc_filter(self, doc_ids: list[str]) -> Any:
        e = self.e
        return e.Filter(must=[e.FieldCondition(key="doc_id", match=e.MatchAny(doc_ids))])

    def count_docs(self, doc_ids: list[str]) -> int:
        return int(self.shard.count(self.e.CountRequest(exact=True,
                                                        filter=self._doc_filter(doc_ids))))

    def delete_docs(self, doc_ids: list[str]) -> None:
        self.shard.update(self.e.UpdateOperation.delete_points_by_filter(
            self._doc_filter(doc_ids)))

    def count(self) -> int:
        return int(self.shard.count(self.e.CountRequest(exact=True)))

    def scroll(self, fields: list[str]) -> Iterator[dict[str, Any]]:
        offset = None
        while True:
            records, offset = self.shard.scroll(self.e.ScrollRequest(
                offset=offset, limit=SCROLL_PAGE, with_payload=fields, with_vector=False))
            for r in records:
                yield r.payload or {}
            if offset is None:
                return

    def retrieve(self, ids: list[str]) -> list[dict[str, Any]]:
        records = self.shard.retrieve(ids, with_payload=True, with_vector=False)
        return [r.payload or {} for r in records]

    def _params(self, name: str) -> Any:
        e, cfg = self.e, self.cfg
        if self._kind(name) == "sparse":
            return None
        quant = None
        if cfg.quantization != "none":
            quant = e.QuantizationSearchParams(rescore=cfg.quantization_rescore,
                                               oversampling=cfg.quantization_oversampling)
        return e.SearchParams(hnsw_ef=cfg.hnsw.ef, exact=cfg.exact, quantization=quant)

    def query_many(self, queries: list[FieldQuery], k: int, native_filter: Any
                   ) -> list[Scored]:
        e = self.e
        requests = [e.QueryRequest(limit=k, query=e.Query.Nearest(self._vector(name, q),
                                                                  using=name),
                                   filter=native_filter, params=self._params(name),
                                   with_payload=True, with_vector=False)
                    for name, q in queries]
        if len(requests) == 1:
            found = [self.shard.query(requests[0])]
        else:
            found = self.shard.query_batch(e.QueryBatchRequest(requests))
        return [[(float(p.score), p.payload or {}) for p in res] for res in found]

    def query_fused(self, queries: list[FieldQuery], k: int, native_filter: Any,
                    method: str, rrf_k: int) -> Scored:
        e = self.e
        prefetch = [e.Prefetch(limit=k, query=e.Query.Nearest(self._vector(name, q),
                                                               using=name),
                               filter=native_filter, params=self._params(name))
                    for name, q in queries]
        fusion: Any = e.Fusion.Rrf(k=rrf_k) if method == "rrf" else e.Fusion.Dbsf()
        res = self.shard.query(e.QueryRequest(limit=k, prefetches=prefetch, query=fusion,
                                              filter=native_filter, with_payload=True,
                                              with_vector=False))
        return [(float(p.score), p.payload or {}) for p in res]

    def close(self) -> None:
        if self.shard is not None:
            try:
                self.shard.flush()
            finally:
                self.shard.close()
                self.shard = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
