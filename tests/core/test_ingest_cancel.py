"""Cancelling an ingestion: committed batches stay, nothing half-written remains, the next
run finishes the job; ``on_status`` counts documents and files (not bytes)."""

from __future__ import annotations

import threading
from pathlib import Path

import trawl
from tests.conftest import HASHING_PIPELINE
from trawl import Document, Trawl
from trawl.ingest import IngestStatus, index_paths

DOCS = [Document(id=f"d{i}", text=f"document number {i} about tides and moons")
        for i in range(10)]


def test_add_stops_after_the_batch_being_written(host: trawl.PluginHost) -> None:
    cancel = threading.Event()
    with Trawl.memory(HASHING_PIPELINE, host=host) as t:
        result = t.add(DOCS, batch_size=3, cancel=cancel,
                       on_batch=lambda r: cancel.set())  # pressed during the first batch
        assert result.cancelled and result.added == 3
        assert t.stats()["documents"] == 3
        assert len(t.search("tides", 10)) == 3
        again = t.add(DOCS, batch_size=3)
        assert not again.cancelled and (again.added, again.unchanged) == (7, 3)


def test_index_paths_cancel_keeps_committed_and_the_next_run_completes(
        host: trawl.PluginHost, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(12):
        (folder / f"f{i:02d}.md").write_text(f"# File {i}\n\nwords about file {i}\n")
    cancel = threading.Event()
    seen: list[IngestStatus] = []

    def on_status(status: IngestStatus) -> None:
        seen.append(status)
        if status.documents >= 4:
            cancel.set()

    with Trawl.open(tmp_path / "idx", pipeline=HASHING_PIPELINE, host=host,
                    show_progress=False) as t:
        report = index_paths(t, folder, show_progress=False, batch_size=2, prune=True,
                             on_status=on_status, cancel=cancel)
        assert report.cancelled
        assert report.added == 4 == t.stats()["documents"]
        assert seen[0].documents == 0 and seen[0].files_total == 12
        assert all(s.files_total == 12 for s in seen)
        assert [s.documents for s in seen] == sorted(s.documents for s in seen)
    # reopened (as after a quit): what was committed is there, the rest is read again
    with Trawl.open(tmp_path / "idx", host=host, show_progress=False) as t:
        assert t.stats()["documents"] == 4
        statuses: list[IngestStatus] = []
        report = index_paths(t, folder, show_progress=False, on_status=statuses.append)
        assert not report.cancelled
        assert (report.added, report.unchanged) == (8, 4)
        assert t.stats()["documents"] == 12
        last = statuses[-1]
        assert (last.documents, last.files_done, last.files_total) == (12, 12, 12)
        assert last.bytes_done == last.bytes_total


def test_cancel_before_the_first_file_writes_nothing(host: trawl.PluginHost,
                                                     tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.md").write_text("alpha")
    cancel = threading.Event()
    cancel.set()
    with Trawl.open(tmp_path / "idx", pipeline=HASHING_PIPELINE, host=host,
                    show_progress=False) as t:
        report = index_paths(t, folder, show_progress=False, cancel=cancel)
        assert report.cancelled and report.added == 0 and t.stats()["documents"] == 0
