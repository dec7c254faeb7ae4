"""Untrusted text (document titles and text, paths, plugin names and errors) reaches the
terminal as plain, visible characters: never as Rich markup, never as control sequences."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import trawl
from trawl.display import escape_markup, safe_json, safe_text
from trawl.testing import write_fake_plugin

ESC_CLEAR = "\x1b[2J"
OSC_LINK = "\x1b]8;;https://evil.example/\x07click\x1b]8;;\x07"
C1_CSI = "\x9b31m"
BIDI = "\u202eevil"

needs_bm25 = pytest.mark.skipif("bm25" not in trawl.PluginHost().registry.names("index"),
                                reason="trawl_bm25 plugin not available")


def _trawl(*args: str, home: Path, extra_env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAWL_HOME": str(home), "TRAWL_CACHE_DIR": str(home / "cache")}
    env.pop("FORCE_COLOR", None)
    env.update(extra_env or {})
    return subprocess.run([sys.executable, "-m", "trawl.cli", *args], capture_output=True,
                          text=True, env=env, check=False, errors="surrogateescape")


def test_safe_text_shows_every_control_visibly() -> None:
    raw = f"a{ESC_CLEAR}b{OSC_LINK}{C1_CSI}{BIDI}\r\x00\x7f\ud800"
    out = safe_text(raw)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or c in "\u202e\ud800" for c in out)
    assert "\\x1b[2J" in out and "\\x9b31m" in out and "\\u202eevil" in out and "\\ud800" in out
    assert safe_text("line 1\n\tline 2", multiline=True) == "line 1\n\tline 2"
    assert safe_text("line 1\nline 2") == "line 1\\nline 2"
    assert safe_text("café — 東京 🙂") == "café — 東京 🙂"  # ordinary Unicode is untouched


def test_escape_markup_renders_literally_in_rich() -> None:
    from rich.console import Console

    console = Console(record=True, width=200, color_system="truecolor", force_terminal=True)
    console.print(escape_markup(f"[/cyan] x [bold red]FAKE[/bold red] [link=https://e.x]y{ESC_CLEAR}"))
    text = console.export_text(styles=False)
    assert "[/cyan] x [bold red]FAKE[/bold red] [link=https://e.x]y\\x1b[2J" in text


def test_safe_json_is_lossless_and_terminal_safe() -> None:
    obj = {"t": f"{ESC_CLEAR}{C1_CSI}{BIDI}\ud800 ok é"}
    out = safe_json(obj)
    assert not any(0x7f <= ord(c) <= 0x9f or c in "\u202e\ud800\x1b" for c in out)
    assert json.loads(out) == obj


@needs_bm25
def test_search_prints_hostile_titles_and_text_literally(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    with trawl.Trawl.open(index, pipeline="bm25", show_progress=False) as t:
        t.add([
            {"id": "a", "title": "[/cyan] x", "text": "turbine blade fatigue"},
            {"id": "b", "title": "[bold red]FAKE[/bold red] :warning:",
             "text": f"turbine {ESC_CLEAR} wear {OSC_LINK} and {C1_CSI} {BIDI}"},
            {"id": "c", "title": f"[link=https://evil.example/]turbine{ESC_CLEAR}",
             "text": "turbine noise"},
        ])
    for env in ({}, {"FORCE_COLOR": "1", "COLUMNS": "200"}):
        out = _trawl("search", "turbine", "--index", str(index), home=tmp_path, extra_env=env)
        assert out.returncode == 0, out.stderr
        assert "Traceback" not in out.stderr and "MarkupError" not in out.stderr
        assert "[/cyan] x" in out.stdout
        assert "[bold red]FAKE[/bold red] :warning:" in out.stdout
        assert "[link=https://evil.example/]turbine\\x1b[2J" in out.stdout
        assert "\\x1b]8;;https://evil.example/\\x07" in out.stdout
        for injected in (ESC_CLEAR, "\x1b]", "\x9b", "\u202e", "\x07"):
            assert injected not in out.stdout
        if not env:  # without a terminal Rich adds no styles: no ESC at all
            assert "\x1b" not in out.stdout
    raw = _trawl("search", "turbine", "--index", str(index), "--json", home=tmp_path)
    assert raw.returncode == 0 and "\x1b" not in raw.stdout and "\x9b" not in raw.stdout
    titles = {h["doc_id"]: h["metadata"]["title"] for h in json.loads(raw.stdout)["hits"]}
    assert titles["c"] == f"[link=https://evil.example/]turbine{ESC_CLEAR}"  # JSON is lossless


def test_plugins_lists_hostile_entry_point_names_and_errors(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_fake_plugin(site, "trawl-evil", "evil[/red]", "trawl_evil_mod",
                      f"raise RuntimeError({'[bold]boom[/bold]' + ESC_CLEAR + OSC_LINK!r})\n")
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = _trawl("plugins", home=tmp_path, extra_env={**env, "COLUMNS": "250"})
    assert out.returncode == 0, out.stderr
    assert "evil[/red]" in out.stdout and "[bold]boom[/bold]" in out.stdout
    assert "\x1b" not in out.stdout
    listed = _trawl("plugins", "--json", home=tmp_path, extra_env=env)
    assert listed.returncode == 0, listed.stderr
    evil = next(p for p in json.loads(listed.stdout) if p["name"] == "evil[/red]")
    assert ESC_CLEAR in evil["error"] and "\x1b" not in listed.stdout  # escaped, not lost


def test_errors_on_stderr_are_one_line_without_control_sequences(tmp_path: Path) -> None:
    out = _trawl("search", "x", "--index", str(tmp_path / f"no{ESC_CLEAR}\nwhere"),
                 home=tmp_path)
    assert out.returncode == 1
    assert "\x1b" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "no\\x1b[2J\\nwhere" in out.stderr


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)
       | st.lists(st.sampled_from(["[", "]", "\\", "/", "bold", "link=x", "red", "=", " ",
                                   "\x1b", ":", "warning", "@click", "#"]), max_size=12)
       .map("".join))
def test_escape_markup_round_trips_through_rich_for_any_text(text: str) -> None:
    from rich.text import Text

    shown = safe_text(text)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f or 0xd800 <= ord(c) <= 0xdfff
                   for c in shown)
    # escape_markup is for embedding in markup: it must survive Rich's parser exactly
    rendered = Text.from_markup(f"[bold]{escape_markup(text)}[/bold] [i]x[/i]", emoji=False)
    assert rendered.plain == f"{shown} x"
    assert [(s.start, s.end) for s in rendered.spans] == [(0, len(shown)),
                                                          (len(shown) + 1, len(shown) + 2)]
