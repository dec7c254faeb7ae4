from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import trawl
from trawl.errors import PluginConflictError, PluginLoadError, UnknownComponentError
from trawl.testing import ExactIndex, write_fake_plugin


@pytest.fixture
def fake_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_temporary_plugin_shows_up_with_its_components(host: trawl.PluginHost) -> None:
    class Extra:
        @staticmethod
        @trawl.hookimpl
        def register_indexes(register: Any) -> None:
            register(ExactIndex, name="exact-copy")

    host.register(Extra, name="extra")
    assert "exact-copy" in host.registry.names("index")
    info = next(i for i in host.plugin_infos() if i.name == "extra")
    assert info.hooks == ["register_indexes"]
    assert info.components[0]["name"] == "exact-copy"
    host.unregister("extra")
    assert "exact-copy" not in host.registry.names("index")


def test_typo_in_hookimpl_fails_loudly(host: trawl.PluginHost) -> None:
    class Typo:
        @staticmethod
        @trawl.hookimpl
        def register_indexs(register: Any) -> None:  # misspelled on purpose
            pass

    with pytest.raises(PluginLoadError, match="register_indexs"):
        host.register(Typo, name="typo")
    assert any("typo" in str(e) for e in host.load_errors)
    assert "typo" not in [n for n, _ in host.pm.list_name_plugin()]


def test_plugin_raising_at_import_is_reported_and_others_keep_working(fake_site: Path) -> None:
    write_fake_plugin(fake_site, "trawl-broken", "broken", "trawl_broken_mod",
                       "raise RuntimeError('boom at import')\n")
    write_fake_plugin(fake_site, "trawl-good", "good", "trawl_good_mod", """
        import trawl
        from trawl.testing import ExactIndex, write_fake_plugin

        @trawl.hookimpl
        def register_indexes(register):
            register(ExactIndex, name="good-index")
    """)
    host = trawl.PluginHost(load={"broken", "good"})
    errors = [e for e in host.errors if e.entry_point == "broken"]
    assert errors and errors[0].distribution == "trawl-broken"
    assert "boom at import" in str(errors[0])
    assert "good-index" in host.registry.names("index")
    infos = {i.name: i for i in host.plugin_infos()}
    assert infos["broken"].error and infos["broken"].version == "0.3.1"
    assert infos["good"].error is None and infos["good"].distribution == "trawl-good"


def test_plugin_raising_inside_a_hook_is_reported(host: trawl.PluginHost) -> None:
    class Raises:
        @staticmethod
        @trawl.hookimpl
        def register_rerankers(register: Any) -> None:
            raise ValueError("bad registration")

    host.register(Raises, name="raises")
    assert any(e.entry_point == "raises" and "bad registration" in str(e) for e in host.errors)
    assert "exact" in host.registry.names("index")


def test_duplicate_component_names_name_both_distributions(fake_site: Path) -> None:
    for dist, ep in (("trawl-one", "one"), ("trawl-two", "two")):
        write_fake_plugin(fake_site, dist, ep, f"trawl_{ep}_mod", """
            import trawl
            from trawl.testing import ExactIndex, write_fake_plugin

            @trawl.hookimpl
            def register_indexes(register):
                register(ExactIndex, name="same-name")
        """)
    host = trawl.PluginHost(load={"one", "two"})
    with pytest.raises(PluginConflictError) as info:
        host.registry.get("index", "same-name")
    assert "trawl-one" in str(info.value) and "trawl-two" in str(info.value)


def test_disable_and_load_switches(fake_site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_plugin(fake_site, "trawl-good", "good", "trawl_good2_mod", """
        import trawl
        from trawl.testing import ExactIndex, write_fake_plugin

        @trawl.hookimpl
        def register_indexes(register):
            register(ExactIndex, name="good2")
    """)
    monkeypatch.setenv("TRAWL_DISABLE_PLUGINS", "good")
    assert "good2" not in trawl.PluginHost().registry.names("index")
    monkeypatch.delenv("TRAWL_DISABLE_PLUGINS")
    monkeypatch.setenv("TRAWL_LOAD_PLUGINS", "trawl-good")
    host = trawl.PluginHost()
    assert "good2" in host.registry.names("index")
    assert {i.name for i in host.plugin_infos()} == {"good"}


def test_unknown_component_lists_registered_names(host: trawl.PluginHost) -> None:
    with pytest.raises(UnknownComponentError, match=r"registered indexs?: exact"):
        host.registry.get("index", "nope")


def test_config_errors_name_plugin_and_field(host: trawl.PluginHost) -> None:
    with pytest.raises(trawl.ConfigError) as info:
        host.registry.validate_config("encoder", "hashing", {"dim": "wide"})
    msg = str(info.value)
    assert "hashing" in msg and "hashing-test" in msg and "'dim'" in msg
    with pytest.raises(trawl.ConfigError, match="'dimm'"):
        host.registry.validate_config("encoder", "hashing", {"dimm": 3})


def test_import_trawl_and_listing_import_no_backend() -> None:
    code = textwrap.dedent("""
        import sys, json
        import trawl
        host = trawl.PluginHost()
        infos = host.plugin_infos()
        heavy = [m for m in ("onnxruntime", "qdrant_client", "qdrant_edge", "textual", "torch",
                             "rank_bm25", "transformers", "scipy", "tokenizers")
                 if m in sys.modules]
        print(json.dumps(heavy))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_cli_plugins_json_lists_builtins() -> None:
    out = subprocess.run([sys.executable, "-m", "trawl.cli", "plugins", "--json"],
                         capture_output=True, text=True, check=True)
    names = {p["name"] for p in json.loads(out.stdout)}
    assert {"onnx", "qdrant", "bm25", "muvera"} <= names
