"""``Trawl.info/chunks/neighbours/metadata_fields`` and ``trawl.catalog.list_indexes``: what a
front end uses instead of reaching into pipelines and manifests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import trawl
from trawl.catalog import list_indexes

LONG = " ".join(f"word{i}" for i in range(120))


def _docs() -> list[trawl.Document]:
    return [trawl.Document(id="long", text=LONG, metadata={"title": "Long", "year": 2020}),
            trawl.Document(id="short", text="a short one", metadata={"lang": "en"})]


def _pipeline() -> dict[str, object]:
    return {"name": "lex", "retrievers": [{"name": "bm25", "index": "bm25"}],
            "chunking": {"max_tokens": 30, "overlap": 0},
            "fusion": {"method": "weighted"}}


def test_info_neighbours_chunks_and_fields() -> None:
    with trawl.Trawl.memory(_pipeline()) as t:
        t.add(_docs(), show_progress=False)
        info = t.info()
        assert info.pipeline == "lex" and info.retriever_names == ["bm25"]
        assert info.fusion.method == "weighted" and info.reranker is None
        assert not info.has_encoder and info.documents == 2
        ids = [f"long#{i}" for i in range(4)]
        chunks = t.chunks([*ids, "nope#0"])
        assert [c.id if c else None for c in chunks] == [*ids, None]
        before, after = t.neighbours("long#2", "long", window=1)
        assert [c.id for c in before] == ["long#1"] and [c.id for c in after] == ["long#3"]
        before, after = t.neighbours("long#0", "long", window=2)
        assert before == [] and [c.id for c in after] == ["long#1", "long#2"]
        assert t.neighbours("long#0", "unknown") == ([], [])
        fields = t.metadata_fields()
        assert fields["year"] == ["2020"] and fields["lang"] == ["en"]


def test_list_indexes_reads_without_locking(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAWL_HOME", str(tmp_path))
    assert list_indexes() == []
    with trawl.Trawl.open("alpha", pipeline=_pipeline(), show_progress=False) as held:
        held.add(_docs(), show_progress=False)
        (tmp_path / "indexes" / "not-an-index").mkdir()
        broken = tmp_path / "indexes" / "broken"
        broken.mkdir()
        (broken / "pipeline.json").write_text("{not json")
        rows = {r.name: r for r in list_indexes()}  # while "alpha" is open (locked)
    assert set(rows) == {"alpha", "broken"}
    alpha = rows["alpha"]
    assert alpha.pipeline == "lex" and alpha.documents == 2 and alpha.error is None
    assert alpha.size_bytes > 0 and alpha.updated is not None and alpha.retrievers == ["bm25"]
    assert rows["broken"].error is not None
    assert os.listdir(tmp_path / "indexes" / "alpha")  # nothing was removed
