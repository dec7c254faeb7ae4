"""The two Qdrant APIs behind one small interface.

``ClientEngine`` speaks ``qdrant-client`` (embedded ``local`` mode and ``server`` mode:
the same code, only the ``QdrantClient`` constructor differs). ``EdgeEngine`` speaks
``qdrant-edge-py``, the Qdrant engine in-process, whose API is its own. Both import their
library inside ``__init__``, so nothing heavy loads before a pipeline builds the index.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trawl.errors import (
    ConfigError,
    IndexCorruptError,
    IndexLockedError,
    MissingDependencyError,
    TrawlError,
)
from trawl.filters import Filter

from .config import QdrantConfig
from .filters import Translator, client_dialect, edge_dialect, payload_key

SCROLL_PAGE = 10_000


@dataclass
class EngineSpec:
    mode: str
    config: QdrantConfig
    folder: Path | None
    collection: str
    metric: str
    name: str
    expect_existing: bool = False

    @property
    def vector_name(self) -> str:
        """``dense`` for cosine encoders, ``fde`` for MUVERA's dot-product encodings."""
        return "fde" if self.metric == "dot" else "dense"


class Engine:
    """What ``QdrantIndex`` needs from a Qdrant API."""

    dim: int | None = None

    def __init__(self, spec: EngineSpec) -> None:
        self.spec = spec
        self.cfg = spec.config
        self.vname = spec.vector_name
        self._translator: Translator | None = None

    def translate(self, f: Filter | None) -> Any:
        assert self._translator is not None
        return self._translator(f)

    def create(self, dim: int) -> None: raise NotImplementedError
    def upsert(self, ids: list[str], vectors: np.ndarray,
               payloads: list[dict[str, Any]]) -> None: raise NotImplementedError
    def commit(self) -> None: """Make the writes so far durable."""
    def count_docs(self, doc_ids: list[str]) -> int: raise NotImplementedError
    def delete_docs(self, doc_ids: list[str]) -> None: raise NotImplementedError
    def count(self) -> int: raise NotImplementedError
    def scroll(self, fields: list[str]) -> Iterator[dict[str, Any]]: raise NotImplementedError
    def retrieve(self, ids: list[str]) -> list[dict[str, Any]]: raise NotImplementedError
    def query(self, q: np.ndarray, k: int,
              native_filter: Any) -> list[tuple[float, dict[str, Any]]]: raise NotImplementedError
    def optimize(self) -> None: """Build indexes now (edge); others do it themselves."""
    def close(self) -> None: raise NotImplementedError

    def _index_fields(self) -> list[tuple[str, str]]:
        fields = [("doc_id", "keyword"), ("chunk_id", "keyword")]
        return fields + [(payload_key(f), t) for f, t in self.cfg.payload_indexes.items()]


def open_engine(spec: EngineSpec) -> Engine:
    if spec.mode == "edge":
        return EdgeEngine(spec)
    return ClientEngine(spec)


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


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
            self.dim = self._existing_dim()
        except BaseException:
            self.client.close()
            raise

    # connection --------------------------------------------------------------------
    def _connect(self) -> Any:
        from qdrant_client import QdrantClient

        spec, cfg = self.spec, self.cfg
        if spec.mode == "server":
            self._secret = cfg.resolved_api_key()
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
        """Run a client call; server failures become TrawlErrors without the API key."""
        if self.spec.mode != "server":
            return fn(*args, **kwargs)
        try:
            return fn(*args, **kwargs)
        except TrawlError:
            raise
        except Exception as exc:
            raise TrawlError(
                f"qdrant server {self.cfg.url} ({what}, collection "
                f"{self.spec.collection!r}): {type(exc).__name__}: "
                f"{_scrub(str(exc), self._secret)[:300]}",
                title="qdrant server error") from None

    def _existing_dim(self) -> int | None:
        c = self.spec.collection
        if not self._call("collection_exists", self.client.collection_exists, c):
            if self.spec.expect_existing and self.spec.mode == "local":
                raise IndexCorruptError(
                    f"qdrant index folder {self.spec.folder}: collection {c!r} is missing "
                    "although trawl-qdrant.json says it was built there")
            return None
        info = self._call("get_collection", self.client.get_collection, c)
        vectors = info.config.params.vectors
        if not isinstance(vectors, dict) or self.vname not in vectors:
            names = sorted(vectors) if isinstance(vectors, dict) else ["(unnamed)"]
            raise ConfigError(
                f"qdrant collection {c!r} has vectors {names}, trawl expects a named vector "
                f"{self.vname!r}; point 'collection' at a collection trawl created")
        self.ensure_indexes(set(info.payload_schema or {}))
        return int(vectors[self.vname].size)

    # writes -------------------------------------------------------------------------
    def create(self, dim: int) -> None:
        m, cfg = self.m, self.cfg
        distance = m.Distance.DOT if self.spec.metric == "dot" else m.Distance.COSINE
        quant: Any = None
        if cfg.quantization == "scalar":
            quant = m.ScalarQuantization(scalar=m.ScalarQuantizationConfig(
                type=m.ScalarType.INT8, quantile=0.99, always_ram=True))
        elif cfg.quantization == "binary":
            quant = m.BinaryQuantization(binary=m.BinaryQuantizationConfig(always_ram=True))
        self._call("create_collection", self.client.create_collection,
                   self.spec.collection,
                   vectors_config={self.vname: m.VectorParams(size=dim, distance=distance,
                                                             on_disk=cfg.on_disk or None)},
                   hnsw_config=m.HnswConfigDiff(m=cfg.hnsw.m, ef_construct=cfg.hnsw.ef_construct,
                                                full_scan_threshold=cfg.hnsw.full_scan_threshold),
                   quantization_config=quant,
                   optimizers_config=m.OptimizersConfigDiff(
                       indexing_threshold=cfg.hnsw.indexing_threshold_kb))
        self.ensure_indexes(set())
        self.dim = dim

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

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        batch = self.m.Batch(ids=ids, vectors={self.vname: vectors.tolist()}, payloads=payloads)
        self._call("upsert", self.client.upsert, self.spec.collection, points=batch, wait=True)

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

    def query(self, q: np.ndarray, k: int, native_filter: Any) -> list[tuple[float, dict[str, Any]]]:
        m, cfg = self.m, self.cfg
        quant = None
        if cfg.quantization != "none":
            quant = m.QuantizationSearchParams(rescore=cfg.quantization_rescore)
        params = m.SearchParams(hnsw_ef=cfg.hnsw.ef, exact=cfg.exact, quantization=quant)
        res = self._call("query", self.client.query_points, self.spec.collection,
                         query=q.tolist(), using=self.vname, limit=k, query_filter=native_filter,
                         search_params=params, with_payload=True, with_vectors=False)
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
            vectors = saved["vectors"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise IndexCorruptError(f"qdrant edge config {cfg_path} is unreadable ({exc}); "
                                    "nothing was changed. Restore it or delete the folder "
                                    "and re-index") from exc
        if self.vname not in vectors:
            raise ConfigError(f"qdrant edge shard {self.path} has vectors {sorted(vectors)}, "
                              f"trawl expects {self.vname!r}")
        try:
            self.shard = self.e.EdgeShard.load(str(self.path))
        except Exception as exc:
            text = str(exc)
            if "WouldBlock" in text or "lock" in text.lower():
                raise IndexLockedError(
                    f"qdrant index folder {self.path} is open in another process or index "
                    "instance (its write-ahead log is locked); close that one first, or use "
                    "a Qdrant server for concurrent access") from None
            raise IndexCorruptError(
                f"qdrant edge shard {self.path} cannot be loaded ({text[:300]}); nothing "
                "was changed. Restore it from a backup or delete the folder and "
                "re-index") from exc
        self.dim = int(vectors[self.vname]["size"])
        self.ensure_indexes(set(self.shard.info().payload_schema))

    def create(self, dim: int) -> None:
        e, cfg = self.e, self.cfg
        distance = e.Distance.Dot if self.spec.metric == "dot" else e.Distance.Cosine
        quant: Any = None
        if cfg.quantization == "scalar":
            quant = e.ScalarQuantizationConfig(type=e.ScalarType.Int8, quantile=0.99,
                                               always_ram=True)
        elif cfg.quantization == "binary":
            quant = e.BinaryQuantizationConfig(always_ram=True)
        config = e.EdgeConfig(
            vectors={self.vname: e.EdgeVectorParams(size=dim, distance=distance,
                                                    on_disk=cfg.on_disk or None)},
            hnsw_config=e.HnswIndexConfig(m=cfg.hnsw.m, ef_construct=cfg.hnsw.ef_construct,
                                          full_scan_threshold=cfg.hnsw.full_scan_threshold),
            quantization_config=quant, wal_enabled=cfg.wal,
            optimizers=e.EdgeOptimizersConfig(indexing_threshold=cfg.hnsw.indexing_threshold_kb))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.shard = e.EdgeShard.create(str(self.path), config)
        self.ensure_indexes(set())
        self.dim = dim

    def ensure_indexes(self, existing: set[str]) -> None:
        """Create the payload indexes the config lists that the shard lacks."""
        e = self.e
        kinds = {"keyword": e.PayloadSchemaType.Keyword, "integer": e.PayloadSchemaType.Integer,
                 "float": e.PayloadSchemaType.Float, "bool": e.PayloadSchemaType.Bool,
                 "datetime": e.PayloadSchemaType.Datetime}
        missing = [(k, t) for k, t in self._index_fields() if k not in existing]
        for key, kind in missing:
            self.shard.update(e.UpdateOperation.create_field_index(key, kinds[kind]))
        if missing:
            self.shard.flush()

    def upsert(self, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]) -> None:
        e, name = self.e, self.vname
        points = [e.Point(pid, {name: vec}, payload)
                  for pid, vec, payload in zip(ids, vectors.tolist(), payloads, strict=True)]
        self.shard.update(e.UpdateOperation.upsert_points(points))
        self._since_optimize += len(points)

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

    def query(self, q: np.ndarray, k: int, native_filter: Any) -> list[tuple[float, dict[str, Any]]]:
        e, cfg = self.e, self.cfg
        quant = None
        if cfg.quantization != "none":
            quant = e.QuantizationSearchParams(rescore=cfg.quantization_rescore)
        params = e.SearchParams(hnsw_ef=cfg.hnsw.ef, exact=cfg.exact, quantization=quant)
        res = self.shard.query(e.QueryRequest(
            limit=k, query=e.Query.Nearest(q.tolist(), using=self.vname), filter=native_filter,
            params=params, with_payload=True, with_vector=False))
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
