"""trawl built-in plugin: the ``qdrant`` index (embedded edge/local engine or a server).

Registered lazily by string, so listing plugins never imports qdrant-client or
qdrant-edge; they load when a pipeline builds a ``qdrant`` index.
"""

from __future__ import annotations

from typing import Any

import trawl


@trawl.hookimpl
def register_indexes(register: Any) -> None:
    register("trawl_qdrant.index:QdrantIndex", name="qdrant")
