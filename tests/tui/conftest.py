"""Fixtures for the TUI tests: a small real corpus indexed with a real (hashing) hybrid pipeline."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import tui_hashing

import trawl

TIDES = (
    "# Tides\n\n"
    "Tides are the rise and fall of sea levels caused by the gravity of the moon and the sun. "
    "Most coasts see two high tides and two low tides every lunar day.\n\n"
    "Spring tides happen when the sun, the moon and the earth line up at new and full moon; "
    "the tidal range is then largest. Neap tides happen at the quarter moons, when the sun and "
    "the moon pull at right angles and the range is smallest.\n\n"
    "Tide tables predict the times and heights of high and low water for harbours. Sailors "
    "read them before crossing a bar, because a falling tide can leave a keel on the sand.\n\n"
    "The Bay of Fundy has the largest tidal range on earth, more than fifteen metres, because "
    "the shape of the bay resonates with the period of the ocean tide.\n"
)

CORPUS: dict[str, tuple[str, str]] = {
    "tides.md": ("Tides", TIDES),
    "volcano.md": ("Volcanoes", "# Volcanoes\n\nA volcano is a rupture in the crust where "
                   "magma, ash and gases escape. Shield volcanoes erupt runny basalt lava."),
    "bread.md": ("Sourdough bread", "# Sourdough bread\n\nSourdough bread rises with wild yeast "
                 "and lactic bacteria from a starter; a long proof gives the sour flavour."),
    "comets.md": ("Comets", "# Comets\n\nComets are icy bodies; near the sun the ice "
                  "sublimates and forms a coma and a tail that points away from the sun."),
    "bees.md": ("Honey bees", "# Honey bees\n\nHoney bees dance to tell nest mates where "
                "flowers are; the waggle dance encodes direction relative to the sun."),
    "rust.md": ("Rust", "# Rust\n\nIron rusts when water and oxygen react with it; salt water "
                "from the sea speeds up corrosion of ships and piers."),
    "glaciers.md": ("Glaciers", "# Glaciers\n\nGlaciers are rivers of ice that carve valleys; "
                    "melting glaciers raise the sea level slowly."),
    "chess.md": ("Chess openings", "# Chess openings\n\nThe Sicilian defence answers e4 with "
                 "c5; the Queen's gambit offers a pawn to control the centre."),
}


def corpus_documents(prefix: str = "docs") -> list[trawl.Document]:
    return [trawl.Document(id=name.removesuffix(".md"), text=text,
                           metadata={"title": title, "path": f"{prefix}/{name}"})
            for name, (title, text) in sorted(CORPUS.items())]


# The functional tests run BM25 (plugins/trawl_bm25, through its entry point) fused with
# the trigram-hashing stand-in for a dense encoder; the snapshots use word hashing instead
# of BM25 so that their figures depend on nothing outside this folder.
LEX = "bm25"


@pytest.fixture
def host() -> trawl.PluginHost:
    return tui_hashing.host(entry_points=True)


@pytest.fixture
def mem_trawl(host: trawl.PluginHost) -> Iterator[trawl.Trawl]:
    """In-memory hybrid index: bm25 + grams."""
    t = trawl.Trawl.memory(tui_hashing.hybrid_pipeline(lexical=LEX), host=host)
    t.add(corpus_documents(), show_progress=False)
    yield t
    t.close()


@pytest.fixture
def disk_trawl(tmp_path: Path, host: trawl.PluginHost) -> Iterator[trawl.Trawl]:
    """An empty index folder with the hybrid pipeline over ``exact-checked`` indexes."""
    t = trawl.Trawl.open(tmp_path / "index",
                         pipeline=tui_hashing.hybrid_pipeline("exact-checked", lexical=LEX),
                         host=host, show_progress=False)
    yield t
    t.close()


@pytest.fixture
def corpus_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, (_, text) in CORPUS.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "skip.md").write_text("hidden file", encoding="utf-8")
    (folder / "image.png").write_bytes(b"\x89PNG")
    return folder
