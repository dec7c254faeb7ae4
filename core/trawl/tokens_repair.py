"""Keeping the token store in step with the manifest (run by ``Trawl.repair`` on open).

A store can lag behind the index: an index built by an earlier version (or with a
pipeline that kept no token vectors) opened by one that reads them, a crash, a store
deleted by hand, or an encoder whose configuration changed. Documents the store lacks are
re-encoded from the chunk texts the indexes hold, with a warning saying so; documents the
store holds but the manifest does not are dropped. Nothing is silently left out of step.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from .components import plugin_call
from .models import Chunk

if TYPE_CHECKING:
    from .api import Trawl

REBUILD_BATCH = 256


def repair_token_store(trawl: Trawl, committed: set[str]) -> int:
    """Make the store hold exactly the committed documents; returns chunks re-encoded.

    Documents whose chunk texts no index can return are dropped from the manifest (and
    every index), so the next ``trawl index`` adds them again; the warning says so.
    """
    pipeline = trawl.pipeline
    store = pipeline.tokens
    if store is None:
        return 0
    held = store.doc_ids()
    stray = sorted(held - committed)
    if stray:
        store.delete_docs(stray)
    encoder = pipeline.token_encoder
    lacking = sorted(committed - held)
    if encoder is None or not lacking:
        return 0
    by_doc = {d: c for d, c in trawl.manifest.chunk_ids(lacking).items() if c}
    chunk_ids = [c for d in sorted(by_doc) for c in by_doc[d]]
    if not chunk_ids:
        return 0
    where = trawl.path or ":memory:"
    warnings.warn(
        f"index {where}: the token store lacks {len(by_doc)} documents (an index from an "
        f"earlier version, a crash, or a new reranker); re-encoding their {len(chunk_ids)} "
        "chunks now, once", RuntimeWarning, stacklevel=4)
    chunk_of = dict(zip(chunk_ids, pipeline.stored_chunks(chunk_ids), strict=True))
    lost_docs = sorted(d for d, cids in by_doc.items() if any(chunk_of[c] is None for c in cids))
    lost = set(lost_docs)
    found = [c for c in chunk_of.values() if c is not None and c.doc_id not in lost]
    from .api import _progress  # the same bar as ingestion

    bar = _progress(trawl.show_progress, len(found), "token vectors")
    try:
        for start in range(0, len(found), REBUILD_BATCH):
            part: list[Chunk] = found[start:start + REBUILD_BATCH]
            with plugin_call(encoder, "encoder", "encode_documents"):
                sets = encoder.encode_documents([encoder.document_text(c) for c in part])
            pipeline.write_tokens(part, sets)
            if bar is not None:
                bar.update(len(part))
    finally:
        if bar is not None:
            bar.close()
    if lost_docs:
        trawl._delete_everywhere(lost_docs)
        trawl.manifest.remove(lost_docs)
        warnings.warn(
            f"index {where}: no index could return the text of {len(lost_docs)} documents to "
            f"re-encode (e.g. {lost_docs[0]!r}); they were removed so that the next "
            "`trawl index PATH...` adds them again", RuntimeWarning, stacklevel=4)
    return len(found)
