"""The TUI's plain-Python parts: highlighting, history, sessions, keymaps, ingestion, hygiene."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import trawl
from trawl.errors import InputError
from trawl_tui.app import parse_keymap
from trawl_tui.highlight import bar, citation, highlight, query_terms, snippet
from trawl_tui.ingest import IngestCount, ingest_folder
from trawl_tui.messages import IngestFinished, IngestProgress
from trawl_tui.session import History, SearchOptions, Session


def test_query_terms_and_prefix_highlight() -> None:
    assert query_terms("The moon, the MOON and a tide") == ["moon", "tide"]  # no stopwords
    text = highlight("Tides follow the moon; tidal ranges vary.", "tid moon")
    marked = [text.plain[s.start:s.end] for s in text.spans]
    assert marked == ["Tides", "moon", "tidal"]


def test_snippet_windows_on_the_matches() -> None:
    text = "filler " * 100 + "the golden lighthouse keeper " + "filler " * 100
    snip = snippet(text, "lighthouse keeper", width=60)
    assert "lighthouse keeper" in snip.plain
    assert snip.plain.startswith("…") and snip.plain.endswith("…")
    assert len(snip.plain) <= 62


def test_citation_and_bar() -> None:
    hit = trawl.Hit(doc_id="d", chunk_id="d#2", score=1.0, text="x",
                    metadata={"title": "T", "path": "a/b.md", "chunk_start": 10, "chunk_end": 20})
    assert citation(hit) == "T — a/b.md (chars 10–20) [d#2]"
    assert citation(trawl.Hit(doc_id="d", chunk_id="d#0", score=0.0)) == "d [d#0]"
    assert bar(1.0, 4) == "████" and bar(0.0, 4) == "    " and bar(0.5, 2) == "█ "


def test_history_navigation() -> None:
    h = History()
    assert h.previous() is None
    for q in ("a", "b", "c", "b"):
        h.add(q)
    assert h.entries == ["a", "c", "b"]
    assert [h.previous(), h.previous(), h.previous(), h.previous()] == ["b", "c", "a", "a"]
    assert [h.next(), h.next(), h.next()] == ["c", "b", ""]
    assert h.next() is None


def test_session_round_trip_and_validation(tmp_path: Path) -> None:
    s = Session(options=SearchOptions(retrievers=("bm25",), fusion="dbsf", rerank=False,
                                      top_k=7))
    s.history.add("query one")
    path = s.save(tmp_path / "s" / "session.json")
    loaded = Session.load(path)
    assert loaded.options == s.options and loaded.history.entries == ["query one"]
    from trawl.config import FusionConfig

    kwargs = loaded.options.search_kwargs(FusionConfig(method="rrf", k=7))
    assert kwargs["retrievers"] == ["bm25"] and kwargs["fusion"].method == "dbsf"
    assert kwargs["fusion"].k == 7  # an override keeps the pipeline's other settings
    # a fresh session leaves fusion and reranking to the pipeline
    fresh = SearchOptions().search_kwargs()
    assert fresh["fusion"] is None and fresh["rerank"] is None and fresh["filters"] is None
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": 1, "options": {"fusion": "max"}}))
    with pytest.raises(InputError, match="fusion"):
        Session.load(bad)
    bad.write_text("{not json")
    with pytest.raises(InputError, match="cannot read session"):
        Session.load(bad)
    bad.write_text(json.dumps({"format": 99}))
    with pytest.raises(InputError, match="not a trawl session"):
        Session.load(bad)


def test_parse_keymap() -> None:
    assert parse_keymap("help=f12, pipeline=ctrl+k;bad;=x") == {"help": "f12",
                                                                 "pipeline": "ctrl+k"}


def test_progress_messages_coalesce() -> None:
    older = IngestProgress(IngestCount("indexing", 1, 1, 10))
    newer = IngestProgress(IngestCount("indexing", 5, 5, 10))
    assert older.can_replace(newer)
    assert not older.can_replace(IngestFinished("x", None))


@pytest.mark.parametrize("use_library", [True, False])
def test_ingest_folder_reports_progress(corpus_dir: Path, disk_trawl: trawl.Trawl,
                                        use_library: bool) -> None:
    seen: list[IngestCount] = []
    summary = ingest_folder(disk_trawl, corpus_dir, seen.append, use_library=use_library)
    assert summary.added == 8 and disk_trawl.manifest.count() == 8
    assert seen[-1].final and seen[-1].documents == 8 and seen[-1].fraction == 1.0
    assert [c.documents for c in seen] == sorted(c.documents for c in seen)
    again = ingest_folder(disk_trawl, corpus_dir, use_library=use_library)
    assert again.added == 0 and again.unchanged == 8
    with pytest.raises(InputError, match="not a folder"):
        ingest_folder(disk_trawl, corpus_dir / "missing")


def test_import_trawl_does_not_import_textual() -> None:
    code = ("import sys, trawl; trawl.PluginHost().registry; "
            "assert 'textual' not in sys.modules, 'textual imported'; "
            "assert 'trawl_tui.app' not in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0, out.stderr
