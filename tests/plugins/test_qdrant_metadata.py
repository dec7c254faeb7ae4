"""``Trawl.update_metadata`` and ``get`` on Qdrant: one collection per retriever, and one
collection shared by two retrievers (a point with a named vector each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import trawl
from tests.conftest import HashingPlugin
from trawl import Document, Trawl

pytest.importorskip("qdrant_client")

DOCS = [Document(id=f"d{i}", text=f"note {i} about qdrant payloads and topic {i % 2}",
                 metadata={"tenant": ["acme", "globex"][i % 2], "n": i}) for i in range(6)]


def _pipeline(shared: bool) -> dict[str, Any]:
    store = {"store": "shared"} if shared else {}
    return {"name": "q", "retrievers": [
        {"name": "a", "index": "qdrant", "encoder": "hashing", "encoder_config": {"dim": 64},
         **store},
        {"name": "b", "index": "qdrant", "encoder": "hashing", "encoder_config": {"dim": 32},
         **store}]}


@pytest.mark.parametrize("shared", [False, True])
def test_update_metadata_on_qdrant_keeps_vectors(tmp_path: Path, shared: bool,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import trawl_qdrant

    host = trawl.PluginHost(entry_points=False, plugins=[
        ("hashing-test", HashingPlugin), ("qdrant", trawl_qdrant)])
    with Trawl.open(tmp_path / "i", pipeline=_pipeline(shared), host=host,
                    show_progress=False) as t:
        t.add(DOCS)
        before = {n: [(h.chunk_id, round(h.score, 5)) for h in
                      t.search("note 3 qdrant", 6, retrievers=[n])] for n in ("a", "b")}
        calls: list[int] = []
        for enc in t.pipeline.encoders:
            original = enc.encode_documents
            monkeypatch.setattr(enc, "encode_documents",
                                lambda texts, *a, _o=original, **k: calls.append(1) or _o(
                                    texts, *a, **k))
        t.update_metadata("d3", {"tenant": "initech"})
        assert calls == []
        for n in ("a", "b"):
            hits = t.search("note", 6, {"tenant": "initech"}, retrievers=[n])
            assert [h.doc_id for h in hits] == ["d3"] and hits[0].metadata["n"] == 3
            assert [(h.chunk_id, round(h.score, 5)) for h in
                    t.search("note 3 qdrant", 6, retrievers=[n])] == before[n]
        assert t.get("d3")[0] == Document(id="d3", text=DOCS[3].text,
                                          metadata={"tenant": "initech", "n": 3})
