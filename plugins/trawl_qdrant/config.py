"""Configuration of the ``qdrant`` index (pydantic only: importing this module is cheap).

One switch, ``mode``, picks where the vectors live:

* ``edge``: the Qdrant engine (Rust) in-process via ``qdrant-edge-py``, persisted in the
  index folder. Real payload indexes, HNSW, quantization; no server.
* ``local``: ``qdrant-client``'s embedded mode (``QdrantClient(path=...)``): a pure-Python
  brute-force reimplementation; fine for tests and a few thousand chunks.
* ``server``: a Qdrant server or cluster at ``url`` (``api_key`` from the config or the
  environment). Sharding and replication are Qdrant's; trawl only talks to it.
* ``auto`` (default): ``server`` when ``url`` is set, else whatever engine an existing
  index folder was built with, else ``edge`` when ``qdrant-edge-py`` is installed, else
  ``local``. The reasons and numbers are in ``docs/design/qdrant.md``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from trawl.components import ComponentConfig

API_KEY_ENV = ("TRAWL_QDRANT_API_KEY", "QDRANT_API_KEY")
_COLLECTION_RE = re.compile(r"^[A-Za-z0-9_\-.]{1,255}$")

Mode = Literal["auto", "local", "edge", "server"]
QuantizationKind = Literal["none", "scalar", "binary"]


class HnswConfig(ComponentConfig):
    """HNSW graph parameters (edge and server; ``local`` mode always searches exactly)."""

    m: int = Field(16, ge=4, le=128, description="edges per node; more = better recall, "
                   "more memory and slower builds")
    ef_construct: int = Field(100, ge=4, le=4096, description="candidate list size while "
                              "building the graph")
    ef: int | None = Field(None, ge=1, description="candidate list size while searching "
                           "(None: the engine's default, >= top_k)")
    full_scan_threshold: int = Field(10_000, ge=0, description="segments smaller than this "
                                     "(in KB of vectors) are scanned exactly instead")
    indexing_threshold_kb: int | None = Field(
        None, ge=0, description="segments above this size (KB of vectors) get an HNSW graph "
        "when optimized (None: the engine's default, 10 MB ~ 6.5k 384-d vectors; 0: never)")


class QdrantConfig(ComponentConfig):
    """Config of the ``qdrant`` index. Field docs are what ``trawl`` shows users."""

    # validation errors must not echo the input: it may hold the API key
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    mode: Mode = Field("auto", description="auto | edge | local | server (see module doc)")
    url: str | None = Field(None, description="Qdrant server URL, e.g. http://localhost:6333 "
                            "(implies mode=server under auto)")
    api_key: SecretStr | None = Field(
        None, description="server API key; when unset, read from $api_key_env, else "
        "$TRAWL_QDRANT_API_KEY or $QDRANT_API_KEY. Never printed, never saved in "
        "pipeline.json (prefer api_key_env)")
    api_key_env: str | None = Field(
        None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="name of the environment variable holding the API key: saved in "
        "pipeline.json instead of the key")
    allow_insecure_api_key: bool = Field(
        False, description="send the API key over plain http:// to a host that is not this "
        "machine (refused by default: anyone on the path can read it)")
    prefer_grpc: bool = Field(False, description="talk gRPC (port 6334) instead of REST")
    https: bool | None = Field(None, description="force TLS on/off (None: from the URL scheme)")
    timeout: int | None = Field(None, ge=1, description="server request timeout in seconds")
    collection: str | None = Field(
        None, description="collection name (default: the retriever name). Set it explicitly "
        "when several trawl indexes share one server.")
    on_disk: bool = Field(False, description="keep original vectors on disk (mmap) instead "
                          "of RAM (edge/server)")
    indexes_on_disk: bool = Field(
        False, description="keep the sparse (BM25) inverted index and the payload indexes of "
        "optimized segments memory-mapped instead of loading them into the heap when the "
        "folder opens (edge; a server keeps its own collection settings). At 100k "
        "qdrant-hybrid chunks: reopen to first answer 1.1 -> 0.1 s, heap 60 -> 9 MB; the "
        "first searches read their pages from disk")
    vector_datatype: Literal["float32", "float16"] = Field(
        "float32", description="how dense vectors are stored (edge/server; local mode keeps "
        "float32): float16 halves their memory and the time of an exact scan (a 10240-d "
        "MUVERA FDE search over 9.6k chunks: 16.5 -> 12.2 ms CPU) for ~1e-3 relative "
        "rounding of scores")
    hnsw: HnswConfig = Field(default_factory=HnswConfig, description="HNSW parameters")
    exact: bool = Field(False, description="always search exactly (no HNSW); edge/server")
    quantization: QuantizationKind = Field(
        "none", description="none | scalar (int8, 4x smaller) | binary (32x smaller, needs "
        "rescoring; good for >=768-d models); edge/server")
    quantization_rescore: bool = Field(True, description="rescore quantized candidates "
                                       "with the original vectors")
    quantization_oversampling: float | None = Field(
        None, ge=1.0, description="fetch this many times top_k quantized candidates before "
        "rescoring (None: the engine's default, 1.0); binary codes want 2-4")
    batch_size: int = Field(256, ge=1, le=65_536, description="points per upsert request")
    show_progress: bool = Field(False, description="progress bar for upserts of more than "
                                "one batch")
    payload_indexes: dict[str, Literal["keyword", "integer", "float", "bool", "datetime"]] = (
        Field(default_factory=dict, description="metadata fields to index for fast filtering, "
              "e.g. {lang: keyword, year: integer}; edge/server (local mode ignores them)"))
    optimize_after: int = Field(
        100_000, ge=0, description="edge: build HNSW/payload-index segments (optimize, "
        "blocking, minutes per 100k vectors on 2 cores) once this many points were written "
        "since the last optimize; 0 = never automatically (call index.optimize()). Below "
        "~100k chunks exact search takes milliseconds to tens of milliseconds")
    wal: bool = Field(True, description="edge: write-ahead log (updates survive a crash "
                      "before the flush that ends every upsert)")

    @field_validator("collection")
    @classmethod
    def _check_collection(cls, value: str | None) -> str | None:
        if value is not None and not _COLLECTION_RE.match(value):
            raise ValueError("collection names use letters, digits, '_', '-', '.' "
                             f"(1-255 chars), got {value!r}")
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(https?|grpcs?)://[^\s]+$|^[\w.\-]+(:\d+)?$",
                                              value):
            raise ValueError(f"url must look like http(s)://host:port, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check_mode(self) -> QdrantConfig:
        if self.mode == "server" and not self.url:
            raise ValueError("mode 'server' needs a 'url' (e.g. http://localhost:6333)")
        if self.mode in ("local", "edge") and self.url:
            raise ValueError(f"mode {self.mode!r} is embedded and takes no 'url'; use "
                             "mode 'server' (or 'auto')")
        return self

    def resolved_api_key(self) -> str | None:
        """The API key from the config, else from the environment; ``None`` if neither."""
        if self.api_key is not None:
            return self.api_key.get_secret_value() or None
        for name in (self.api_key_env, *API_KEY_ENV):
            if name is None:
                continue
            value = os.environ.get(name)
            if value:
                return value
        return None

    def plaintext_to_remote(self) -> str | None:
        """The host when requests would go unencrypted to another machine, else ``None``."""
        if not self.url:
            return None
        parsed = urlsplit(self.url if "://" in self.url else f"http://{self.url}")
        tls = self.https if self.https is not None else parsed.scheme in ("https", "grpcs")
        host = (parsed.hostname or "").strip("[]")
        if tls or host == "localhost" or host.endswith(".localhost"):
            return None
        try:
            if ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return host
