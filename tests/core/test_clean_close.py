"""A clean close lets the next open skip the full index/manifest comparison; anything
else (a crash, an index folder changed behind trawl's back, a stray write) still gets it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from trawl import Document, Trawl

DOCS = [Document(id=f"d{i}", text=f"document {i} about cats and dogs number {i}")
        for i in range(6)]


def _hits(t: Trawl) -> list[tuple[str, float]]:
    return [(h.chunk_id, h.score) for h in t.search("cats number 3", 5)]


def test_a_clean_close_skips_the_full_check_and_answers_the_same(tmp_path: Path) -> None:
    with Trawl.open(tmp_path / "i", pipeline="bm25", show_progress=False) as t:
        assert t.open_check == "full"  # a new folder has no record
        t.add(DOCS)
        before = _hits(t)
    with Trawl.open(tmp_path / "i", show_progress=False) as t:
        assert t.open_check == "clean close"
        assert t.manifest.get_meta("clean_close") is None  # cleared while the session runs
        assert _hits(t) == before
        t.delete(["d0"])
    with Trawl.open(tmp_path / "i", show_progress=False) as t:
        assert t.open_check == "clean close"
        assert t.manifest.doc_ids() == {d.id for d in DOCS[1:]}
        assert t.pipeline.retrievers["bm25"].doc_ids() == {d.id for d in DOCS[1:]}


def test_a_session_that_never_closed_gets_the_full_check(tmp_path: Path) -> None:
    with Trawl.open(tmp_path / "i", pipeline="bm25", show_progress=False) as t:
        t.add(DOCS[:3])
    child = ("import os, sys, trawl\n"
             "t = trawl.Trawl.open(sys.argv[1], show_progress=False)\n"
             "assert t.open_check == 'clean close'\n"
             "t.add([trawl.Document(id='late', text='a late document about cats')])\n"
             "os._exit(0)  # no close: as after a crash\n")
    subprocess.run([sys.executable, "-c", child, str(tmp_path / "i")], check=True, timeout=120)
    with Trawl.open(tmp_path / "i", show_progress=False) as t:
        assert t.open_check == "full"
        assert "late" in t.manifest.doc_ids()
        assert t.search("late document", 1)[0].doc_id == "late"


def test_an_index_folder_removed_after_a_clean_close_is_noticed(tmp_path: Path) -> None:
    with Trawl.open(tmp_path / "i", pipeline="bm25", show_progress=False) as t:
        t.add(DOCS)
    shutil.rmtree(tmp_path / "i" / "bm25")
    with Trawl.open(tmp_path / "i", show_progress=False) as t:
        assert t.open_check == "full"
        # the manifest forgets what no index holds, so the next ingest adds it again
        assert t.manifest.doc_ids() == set()
        t.add(DOCS)
        assert t.search("cats number 3", 1)[0].doc_id == "d3"


def test_a_write_behind_the_manifest_leaves_no_record(tmp_path: Path) -> None:
    with Trawl.open(tmp_path / "i", pipeline="bm25", show_progress=False) as t:
        t.add(DOCS[:2])
        stray = t.chunk(Document(id="stray", text="written to the index only"))
        r = t.pipeline.retrievers["bm25"]
        r.write(stray, r.encode_chunks(stray))
    with Trawl.open(tmp_path / "i", show_progress=False) as t:
        assert t.open_check == "full"
        assert t.pipeline.retrievers["bm25"].doc_ids() == {"d0", "d1"}  # repaired
