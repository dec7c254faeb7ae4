"""The API LLM apps need besides search: progress, get/documents, batches, async, metadata."""

from __future__ import annotations

from pathlib import Path

import trawl
from tests.conftest import HASHING_PIPELINE
from trawl import Document, Trawl

DOCS = [
    Document(id=f"d{i}", text=f"document number {i} about topic {i % 3}",
             metadata={"lang": ["en", "de"][i % 2], "n": i})
    for i in range(10)
]


def test_add_reports_progress_done_total(host: trawl.PluginHost) -> None:
    t = Trawl.memory(HASHING_PIPELINE, host=host)
    t.add(DOCS[:4])
    calls: list[tuple[int, int]] = []
    t.add(DOCS, batch_size=3, on_progress=lambda done, total: calls.append((done, total)))
    # 4 unchanged count as done at once; 6 new ones in batches of 3
    assert calls == [(4, 10), (7, 10), (10, 10)]
    calls.clear()
    t.add(DOCS, on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(10, 10)]


def test_index_paths_reports_byte_progress(host: trawl.PluginHost, tmp_path: Path) -> None:
    from trawl.ingest import index_paths

    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(5):
        (folder / f"f{i}.md").write_text(f"# File {i}\n\nsome words about file {i}\n" * (i + 1))
    total = sum(p.stat().st_size for p in folder.iterdir())
    calls: list[tuple[int, int]] = []
    with Trawl.open(tmp_path / "idx", pipeline=HASHING_PIPELINE, host=host,
                    show_progress=False) as t:
        index_paths(t, folder, show_progress=False,
                    on_progress=lambda d, n: calls.append((d, n)))
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    assert all(n == total for _, n in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
