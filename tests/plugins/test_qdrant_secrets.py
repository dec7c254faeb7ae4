"""Secrets stay out of pipeline.json, and an API key never travels unencrypted to another
machine unless the config says so."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import HashingPlugin
from trawl import ComponentContext, ConfigError, PluginHost, Trawl, TrawlError
from trawl.secrets import secret_fields, without_secrets
from trawl_qdrant.config import QdrantConfig
from trawl_qdrant.index import QdrantIndex

SECRET = "s3cr3t-key-that-must-not-leak"


def _host() -> PluginHost:
    return PluginHost(plugins=[("hashing-test", HashingPlugin)])


def _pipeline(**index_config: object) -> dict[str, object]:
    return {"name": "vault", "retrievers": [{
        "name": "dense", "index": "qdrant", "encoder": "hashing",
        "index_config": {"mode": "edge", **index_config}}]}


def test_qdrant_config_marks_its_key_secret() -> None:
    assert secret_fields(QdrantConfig) == {"api_key"}


def test_literal_key_is_used_but_never_saved(tmp_path: Path) -> None:
    wanted = _pipeline(api_key=SECRET, api_key_env="VAULT_QDRANT_KEY")
    with pytest.warns(UserWarning, match="api_key of retriever 'dense'.*not saved"), \
            Trawl.open(tmp_path / "idx", pipeline=wanted, host=_host(), attach=False) as t:
        t.add([{"id": "a", "text": "alpha beta"}])
        assert t.pipeline.config.retrievers[0].index_config["api_key"] == SECRET  # in use
    saved = (tmp_path / "idx" / "pipeline.json").read_text(encoding="utf-8")
    assert SECRET not in saved
    index_config = json.loads(saved)["pipeline"]["retrievers"][0]["index_config"]
    assert index_config["api_key_env"] == "VAULT_QDRANT_KEY" and "api_key" not in index_config
    # the same TOML opens the index again (secrets are not part of what must match) ...
    with pytest.warns(UserWarning), Trawl.open(tmp_path / "idx", pipeline=wanted,
                                               host=_host(), attach=False) as t:
        assert t.search("alpha", top_k=1)[0].doc_id == "a"
        assert t.pipeline.config.retrievers[0].index_config["api_key"] == SECRET
    # ... and so does the folder alone, reading nothing secret from it
    with Trawl.open(tmp_path / "idx", host=_host(), attach=False) as t:
        assert "api_key" not in t.pipeline.config.retrievers[0].index_config
    assert SECRET not in (tmp_path / "idx" / "pipeline.json").read_text(encoding="utf-8")


def test_without_secrets_leaves_other_fields(tmp_path: Path) -> None:
    from trawl.config import load_pipeline

    data = without_secrets(load_pipeline(_pipeline(api_key=SECRET, collection="c")),
                           _host().registry)
    assert data["retrievers"][0]["index_config"] == {"mode": "edge", "collection": "c"}


def test_key_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULT_QDRANT_KEY", "from-my-var")
    monkeypatch.setenv("TRAWL_QDRANT_API_KEY", "generic")
    cfg = QdrantConfig(mode="server", url="https://q.example:6333",
                       api_key_env="VAULT_QDRANT_KEY")
    assert cfg.resolved_api_key() == "from-my-var"
    monkeypatch.delenv("VAULT_QDRANT_KEY")
    assert cfg.resolved_api_key() == "generic"
    with pytest.raises(ValueError):
        QdrantConfig(api_key_env="not a name")


@pytest.mark.parametrize(("url", "https", "remote"), [
    ("http://10.1.2.3:6333", None, "10.1.2.3"),
    ("qdrant.internal:6333", None, "qdrant.internal"),
    ("grpc://q.example:6334", None, "q.example"),
    ("http://[fd00::1]:6333", None, "fd00::1"),
    ("https://q.example:6333", None, None),
    ("http://q.example:6333", True, None),
    ("http://127.0.0.1:6333", None, None),
    ("http://127.8.9.1:6333", None, None),
    ("http://localhost:6333", None, None),
    ("http://[::1]:6333", None, None),
])
def test_plaintext_to_remote(url: str, https: bool | None, remote: str | None) -> None:
    assert QdrantConfig(url=url, https=https).plaintext_to_remote() == remote


def test_key_over_http_to_another_host_is_refused(tmp_path: Path) -> None:
    cfg = QdrantConfig(mode="server", url="http://10.1.2.3:6333", api_key=SECRET, timeout=1)
    started = time.monotonic()
    with pytest.raises(ConfigError, match="allow_insecure_api_key") as info:
        QdrantIndex(cfg, ComponentContext(name="dense", dim=4, storage_dir=tmp_path / "s"))
    assert time.monotonic() - started < 5  # refused before any connection
    assert "10.1.2.3" in str(info.value) and SECRET not in str(info.value)


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
@pytest.mark.filterwarnings("ignore:Failed to obtain server version")
def test_allowed_or_loopback_key_over_http_is_sent(tmp_path: Path) -> None:
    """Not refused: the client tries the server (none there) and reports it unreachable."""
    for cfg in (QdrantConfig(mode="server", url="http://127.0.0.1:9", api_key=SECRET, timeout=1),
                QdrantConfig(mode="server", url="http://unreachable.invalid:9", api_key=SECRET,
                             timeout=1, allow_insecure_api_key=True)):
        with pytest.raises(TrawlError) as info:
            QdrantIndex(cfg, ComponentContext(name="dense", dim=4, storage_dir=tmp_path / "s"))
        assert "refusing" not in str(info.value) and SECRET not in str(info.value)
