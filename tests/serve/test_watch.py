"""``trawl serve --watch``: files created, modified and deleted show up in search within
2 s of the write, bursts are coalesced, unchanged files are skipped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import trawl
from tests.serve.support import serving
from trawl.client import RemoteTrawl

pytest.importorskip("watchfiles")
DEADLINE_S = 2.0


def _wait(client: RemoteTrawl, query: str, want: str | None, since: float) -> float:
    """Seconds from ``since`` until the top hit for ``query`` is ``want`` (None: no hit)."""
    while True:
        hits = client.search(query)
        top = hits[0].doc_id if hits else None
        elapsed = time.monotonic() - since
        if top == want:
            return elapsed
        if elapsed > DEADLINE_S + 3:
            raise AssertionError(f"{query!r}: top hit {top!r}, wanted {want!r} "
                                 f"after {elapsed:.1f}s")
        time.sleep(0.05)


def _ready(client: RemoteTrawl) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        watch = client.health()["watch"]
        if watch["ready"]:
            return watch
        time.sleep(0.1)
    raise AssertionError("watcher never finished its first sync")


def test_watch_create_modify_delete(tmp_path: Path) -> None:
    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "old.md").write_text("# Old\n\nan ancient aardvark note\n")
    idx = tmp_path / "idx"
    with serving(idx, "--pipeline", "bm25", "--watch", str(docs)) as server, \
            trawl.connect(server.url) as c:
        first = _ready(c)
        assert first["last"]["added"] == 1  # the initial sync indexed what was there
        assert c.search("aardvark")[0].doc_id == "notes/old.md"

        t0 = time.monotonic()
        (docs / "new.md").write_text("# New\n\na brand new bandicoot note\n")
        assert _wait(c, "bandicoot", "notes/new.md", t0) <= DEADLINE_S

        t0 = time.monotonic()
        (docs / "new.md").write_text("# New\n\nthe bandicoot became a capybara\n")
        assert _wait(c, "capybara", "notes/new.md", t0) <= DEADLINE_S

        t0 = time.monotonic()
        (docs / "new.md").unlink()
        assert _wait(c, "capybara", None, t0) <= DEADLINE_S

        # a burst of 30 writes is coalesced into few syncs; old.md is never re-read
        syncs_before = c.health()["watch"]["syncs"]
        t0 = time.monotonic()
        for i in range(30):
            (docs / f"burst{i}.txt").write_text(f"burst file tokburst{i}\n")
        assert _wait(c, "tokburst29", "notes/burst29.txt", t0) <= DEADLINE_S
        time.sleep(0.8)
        watch = c.health()["watch"]
        assert watch["syncs"] - syncs_before <= 5
        assert c.stats()["documents"] == 31
        assert c.search("aardvark")[0].doc_id == "notes/old.md"


def test_watch_survives_a_removed_and_recreated_root(tmp_path: Path) -> None:
    import shutil

    docs = tmp_path / "notes"
    docs.mkdir()
    (docs / "old.md").write_text("an ancient aardvark note\n")
    with serving(tmp_path / "idx", "--pipeline", "bm25", "--watch", str(docs)) as server, \
            trawl.connect(server.url) as c:
        _ready(c)
        assert c.health()["ready"] is True
        assert c.search("aardvark")[0].doc_id == "notes/old.md"

        shutil.rmtree(docs)  # the folder goes: its documents go, and health says why
        t0 = time.monotonic()
        assert _wait(c, "aardvark", None, t0) <= DEADLINE_S
        health = c.health()
        assert health["ready"] is False and health["watch"]["missing"] == [str(docs)]
        assert "removed" in health["watch"]["last_error"]

        docs.mkdir()  # it comes back with new files: they are indexed and watched
        (docs / "new.md").write_text("a brand new bandicoot note\n")
        t0 = time.monotonic()
        assert _wait(c, "bandicoot", "notes/new.md", t0) <= DEADLINE_S
        (docs / "later.md").write_text("a later lemur note\n")
        t0 = time.monotonic()
        assert _wait(c, "lemur", "notes/later.md", t0) <= DEADLINE_S
        health = c.health()
        assert health["ready"] is True and health["watch"]["last_error"] is None
        assert health["watch"]["missing"] == [] and c.stats()["documents"] == 2

        # replaced in one go (removed and made again within one debounce window)
        shutil.rmtree(docs)
        docs.mkdir()
        (docs / "swift.md").write_text("a swift swordfish note\n")
        t0 = time.monotonic()
        assert _wait(c, "swordfish", "notes/swift.md", t0) <= DEADLINE_S
        assert _wait(c, "lemur", None, t0) <= DEADLINE_S
        (docs / "after.md").write_text("an after axolotl note\n")
        t0 = time.monotonic()
        assert _wait(c, "axolotl", "notes/after.md", t0) <= DEADLINE_S
