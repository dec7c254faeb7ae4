"""The HTTP API on a real uvicorn server (in a thread, 127.0.0.1, ephemeral port):
round trips through ``RemoteTrawl``, limits, malformed input, auth, errors as JSON."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import trawl
from tests.serve.support import app_in_thread, bm25_docs
from trawl import FilterError, InputError, Trawl, UnknownDocumentError
from trawl.client import RemoteTrawl
from trawl.config import FusionConfig
from trawl.errors import ServerError, ServerUnavailableError
from trawl.wire import MAX_BODY_BYTES

pytest.importorskip("fastapi")
from trawl_serve.app import create_app


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trawl]:
    t = Trawl.open(tmp_path_factory.mktemp("http") / "idx", pipeline="bm25",
                   show_progress=False, attach=False)
    t.add(bm25_docs(20, word="common"))
    yield t
    t.close()


@pytest.fixture(scope="module")
def url(index: Trawl) -> Iterator[str]:
    with app_in_thread(create_app(index)) as u:
        yield u


@pytest.fixture
def client(url: str) -> Iterator[RemoteTrawl]:
    with trawl.connect(url) as c:
        yield c


def test_remote_matches_in_process(index: Trawl, client: RemoteTrawl) -> None:
    assert isinstance(client, trawl.IndexClient) and isinstance(index, trawl.IndexClient)
    local = index.search("tokd3 common", top_k=5)
    remote = client.search("tokd3 common", top_k=5)
    assert [h.model_dump() for h in remote] == [h.model_dump() for h in local]
    assert remote[0].doc_id == "d3" and "bm25" in remote[0].scores_by_source
    assert client.config == index.config
    assert client.stats()["documents"] == index.stats()["documents"]
    ctx = client.context("tokd3", max_tokens=40)
    assert ctx.hits[0].doc_id == "d3" and ctx.text.startswith("[1]") and ctx.tokens <= 40
    local_ctx = index.context("tokd3", max_tokens=40)
    assert ctx.text == local_ctx.text and ctx.citations == local_ctx.citations
    trace = trawl.SearchTrace()
    client.search("common", trace=trace)
    assert trace.total_ms > 0


def test_filters_fusion_and_async(client: RemoteTrawl) -> None:
    hits = client.search("common", top_k=50, filters={"title": "Doc d7"})
    assert [h.doc_id for h in hits] == ["d7"]
    assert client.search("common", top_k=3, fusion=FusionConfig(method="dbsf"))

    async def run() -> tuple[list[trawl.Hit], trawl.Context]:
        hits = await client.asearch("tokd5")
        ctx = await client.acontext("tokd5", max_tokens=30)
        await client.aclose()
        return hits, ctx

    hits, ctx = asyncio.run(run())
    assert hits[0].doc_id == "d5" and ctx.hits[0].doc_id == "d5"


def test_in_filter_over_the_cap_is_422_naming_the_field(url: str) -> None:
    from trawl.filters import MAX_IN_VALUES
    ids = [f"d{i}" for i in range(MAX_IN_VALUES + 1)]
    r = httpx.post(f"{url}/search", json={"query": "common",
                                          "filters": {"doc_id": ids}}, timeout=30)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["type"] == "FilterTooLargeError" and error["field"] == "filters"
    assert "doc_id" in error["message"] and str(MAX_IN_VALUES) in error["message"].replace(",", "")
    ok = httpx.post(f"{url}/search", json={"query": "common",
                                           "filters": {"doc_id": ids[:10_000]}},
                    timeout=30)
    assert ok.status_code == 200 and {h["doc_id"] for h in ok.json()["hits"]} <= set(ids)


def test_add_update_delete_round_trip(client: RemoteTrawl) -> None:
    r = client.add([{"id": "new1", "text": "okapi zebra"}, "plain string doc okapi"])
    assert (r.added, r.updated, r.unchanged) == (2, 0, 0)
    assert client.add([{"id": "new1", "text": "okapi zebra"}]).unchanged == 1
    assert client.add([{"id": "new1", "text": "okapi giraffe"}]).updated == 1
    assert client.search("giraffe")[0].doc_id == "new1"
    assert client.delete(["new1"]) >= 1
    assert all(h.doc_id != "new1" for h in client.search("okapi giraffe zebra", top_k=50))


def test_batch_get_documents_and_metadata(index: Trawl, client: RemoteTrawl, url: str) -> None:
    queries = ["tokd1", "tokd2 common", "   "]
    remote = client.search_batch(queries, top_k=3)
    local = index.search_batch(queries, top_k=3)
    assert [[h.doc_id for h in r] for r in remote] == [[h.doc_id for h in r] for r in local]
    assert remote[2] == []
    assert client.get(["d4", "d2"]) == index.get(["d4", "d2"])
    with pytest.raises(UnknownDocumentError) as info:
        client.get(["d1", "nope", "nada"])
    assert info.value.ids == ["nope", "nada"]
    listed = list(client.documents(page_size=7))  # three pages and a bit
    assert [d.id for d in listed] == [d.id for d in index.documents()]
    assert [d.id for d in client.documents(after="d3")] == [
        d.id for d in index.documents() if d.id > "d3"]
    doc = client.update_metadata("d9", {"lang": "de"})
    assert doc.metadata["lang"] == "de"
    assert [h.doc_id for h in client.search("common", top_k=50, filters={"lang": "de"})] == ["d9"]
    client.update_metadata("d9", {"lang": None})
    assert "lang" not in index.get(["d9"])[0].metadata
    r = httpx.post(f"{url}/search/batch", json={"queries": ["ok", "x" * 10_001]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "queries"
    with pytest.raises(InputError, match="queries"):
        client.search_batch([])


def test_reads_a_terminal_ui_needs(index: Trawl, client: RemoteTrawl) -> None:
    assert client.info() == index.info()
    hit = client.search("tokd2")[0]
    assert client.chunks([hit.chunk_id, "nope#0"]) == index.chunks([hit.chunk_id, "nope#0"])
    assert client.neighbours(hit.chunk_id, hit.doc_id, window=2) == index.neighbours(
        hit.chunk_id, hit.doc_id, window=2)
    assert client.metadata_fields() == index.metadata_fields()
    assert "title" in client.metadata_fields()


def test_large_add_is_split_under_the_body_limit(client: RemoteTrawl) -> None:
    big = [{"id": f"big{i}", "text": ("bulky " * 350_000) + f"tokbig{i}"} for i in range(4)]
    progress: list[tuple[int, int]] = []
    result = client.add(big, batch_size=8,  # ~8.4 MB in all: more than one request
                        on_progress=lambda done, total: progress.append((done, total)))
    assert result.added == 4
    assert len(progress) >= 2 and progress[-1] == (4, 4)
    assert client.search("tokbig3")[0].doc_id == "big3"
    client.delete([d["id"] for d in big])


@pytest.mark.parametrize(("body", "field"), [
    ({"query": "x", "top_k": 0}, "top_k"),
    ({"query": "x", "top_k": 1001}, "top_k"),
    ({"query": "x" * 10_001}, "query"),
    ({"query": 5}, "query"),
    ({"top_k": 3}, "query"),
    ({"query": "x", "colour": "red"}, "colour"),
    ({"query": "x", "fusion": "borda"}, "fusion"),
])
def test_bad_search_requests_name_the_field(url: str, body: dict[str, object],
                                            field: str) -> None:
    r = httpx.post(f"{url}/search", json=body)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["type"] == "validation" and err["field"].startswith(field)
    assert field in err["message"]


def test_malformed_and_oversize_bodies(url: str) -> None:
    r = httpx.post(f"{url}/search", content=b'{"query": ', headers={
        "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    huge = b'{"query": "' + b"a" * (MAX_BODY_BYTES + 10) + b'"}'
    r = httpx.post(f"{url}/documents", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit must still hold
        yield b'{"documents": [{"text": "'
        for _ in range(11):
            yield b"b" * (1024 * 1024)
        yield b'"}]}'

    r = httpx.post(f"{url}/documents", content=chunks(), headers={
        "content-type": "application/json"})
    assert r.status_code == 413 and "limit" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/documents", json={"documents": [{"id": "x"}]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "documents.0.text"


def test_trawl_errors_are_typed_json(url: str, client: RemoteTrawl) -> None:
    r = httpx.post(f"{url}/search", json={"query": "x", "filters": {"field": "y", "op": "~",
                                                                    "value": 1}})
    assert r.status_code == 400 and r.json()["error"]["type"] == "FilterError"
    r = httpx.post(f"{url}/search", json={"query": "x", "retrievers": ["nope"]})
    assert r.status_code == 400 and "nope" in r.json()["error"]["message"]
    with pytest.raises(InputError):
        client.search("x", retrievers=["nope"])
    with pytest.raises(FilterError):
        client.search("x", filters={"field": "y", "op": "~", "value": 1})
    with pytest.raises(InputError, match="top_k"):
        client.search("x", top_k=5000)
    r = httpx.get(f"{url}/nowhere")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
    r = httpx.put(f"{url}/search")
    assert r.status_code == 405 and "error" in r.json()


def test_openapi_schema_uses_core_models(url: str) -> None:
    schema = httpx.get(f"{url}/openapi.json").json()
    assert {"/search", "/context", "/documents", "/stats", "/healthz"} <= set(schema["paths"])
    comps = schema["components"]["schemas"]
    assert "Hit" in comps and "scores_by_source" in comps["Hit"]["properties"]
    assert comps["SearchRequest"]["properties"]["top_k"]["maximum"] == 1000


def test_internal_errors_are_json_without_traceback(tmp_path: Path) -> None:
    t = Trawl.open(tmp_path / "idx", pipeline="bm25", show_progress=False, attach=False)
    with app_in_thread(create_app(t, mcp=False)) as u:
        t.manifest.close()  # a real failure below the API: sqlite on a closed connection
        r = httpx.get(f"{u}/stats")
        assert r.status_code == 500
        assert r.json()["error"]["type"] == "internal"
        assert "Traceback" not in r.text and "File " not in r.text
        with trawl.connect(u) as c, pytest.raises(ServerError) as info:
            c.stats()
        assert info.value.status == 500
    t.pipeline.close()
    t._release()


def test_index_paths_only_for_loopback_servers(tmp_path: Path) -> None:
    (tmp_path / "n.txt").write_text("a numbat note")
    t = Trawl.open(tmp_path / "idx", pipeline="bm25", show_progress=False, attach=False)
    try:
        with app_in_thread(create_app(t, mcp=False, allow_paths=[tmp_path])) as u, \
                trawl.connect(u) as c:
            report = c.index_paths([tmp_path])
            assert report.added == 1 and c.search("numbat")[0].doc_id.endswith("n.txt")
        # an app told it listens on all interfaces (the socket here is still loopback)
        with app_in_thread(create_app(t, host="0.0.0.0", api_key="k", mcp=False,
                                      allow_paths=[tmp_path])) as u, \
                trawl.connect(u, api_key="k") as c, pytest.raises(ServerError) as info:
            c.index_paths([tmp_path])
        assert info.value.status == 403
    finally:
        t.close()


def test_auth(tmp_path: Path) -> None:
    t = Trawl.open(tmp_path / "idx", pipeline="bm25", show_progress=False, attach=False)
    t.add(bm25_docs(3))
    try:
        with app_in_thread(create_app(t, api_key="s3cret")) as u:
            assert httpx.post(f"{u}/search", json={"query": "tokd1"}).status_code == 401
            bad = httpx.post(f"{u}/search", json={"query": "tokd1"},
                             headers={"authorization": "Bearer wrong"})
            assert bad.status_code == 401 and bad.json()["error"]["type"] == "auth"
            assert httpx.post(f"{u}/mcp", json={}).status_code == 401  # MCP too
            with pytest.raises(ServerError, match="TRAWL_API_KEY"):
                trawl.connect(u, api_key="wrong")
            with trawl.connect(u, api_key="s3cret") as c:
                assert c.search("tokd1")[0].doc_id == "d1"
    finally:
        t.close()


def test_unreachable_server_is_a_typed_error(url: str) -> None:
    from trawl_serve.runner import bind, client_url

    sock = bind("127.0.0.1", 0)
    dead = client_url(sock)
    sock.close()  # nothing listens there now
    with pytest.raises(ServerUnavailableError, match=dead):
        trawl.connect(dead)


def _nested(depth: int) -> dict[str, object]:
    root: dict[str, object] = {}
    node = root
    for _ in range(depth):
        child: dict[str, object] = {}
        node["a"] = child
        node = child
    return root


@pytest.mark.parametrize(("raw", "field"), [
    ('{"id": "n1", "text": "t", "metadata": {"score": NaN}}', "documents.1.metadata.score"),
    ('{"id": "n1", "text": "t", "metadata": {"score": -Infinity}}',
     "documents.1.metadata.score"),
    ('{"id": "n1", "text": "\\udc80"}', "documents.1.text"),
    ('{"id": "\\udc80x", "text": "t"}', "documents.1.id"),
    ('{"id": "n1", "text": "t", "metadata": {"k\\udc80": 1}}', "documents.1.metadata"),
    ('{"id": "n1", "text": "t", "metadata": ' + json.dumps(_nested(100)) + "}",
     "documents.1.metadata.a"),
])
def test_bad_documents_are_4xx_naming_id_and_field(url: str, index: Trawl, raw: str,
                                                   field: str) -> None:
    before = index.stats()["documents"]
    body = '{"documents": [{"id": "good1", "text": "fine"}, ' + raw + "]}"
    r = httpx.post(f"{url}/documents", content=body, headers={
        "content-type": "application/json"})
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["type"] == "DocumentError" and err["field"].startswith(field)
    assert err["ids"] == ["\udc80x" if field.endswith(".id") else "n1"]
    assert repr(err["ids"][0]) in err["message"]  # the message names the document too
    assert index.stats()["documents"] == before  # refused at the door: nothing stored


def test_metadata_update_and_index_options_are_checked(url: str) -> None:
    r = httpx.post(f"{url}/documents/metadata", content='{"id": "d1", "metadata": {"s": NaN}}',
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "metadata.s"
    r = httpx.post(f"{url}/index", json={"paths": ["/nowhere"], "encodings": ["nosuchcodec"]})
    assert r.status_code == 422 and r.json()["error"]["field"] == "encodings"
    assert "nosuchcodec" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/search", content='{"query": "x", "filters": {"field": "s", '
                   '"op": ">", "value": Infinity}}', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "filters"


def test_remote_add_returns_the_committed_ids(index: Trawl, client: RemoteTrawl) -> None:
    docs: list[object] = ["a generated-id wombat", {"id": "", "text": "another quokka"},
                          {"id": "given7", "text": "named numbat"}]
    result = client.add(docs)
    assert len(result.committed_ids) == 3 and result.committed_ids[2] == "given7"
    assert all(result.committed_ids)
    assert [d.id for d in index.get(result.committed_ids)] == result.committed_ids
    assert client.search("quokka")[0].doc_id == result.committed_ids[1]
    assert client.add(docs).committed_ids == []  # unchanged: nothing written
    client.delete(result.committed_ids)


def test_duplicate_ids_in_one_add_are_reported_as_locally(client: RemoteTrawl) -> None:
    docs = [{"id": "dup1", "text": "first okapi"}, {"id": "dup1", "text": "second okapi"}]
    with pytest.raises(trawl.AddError) as info:
        client.add(docs)
    assert [f.id for f in info.value.failures] == ["dup1"]
    assert "duplicate" in info.value.failures[0].reason
    result = client.add(docs, on_error="skip")  # the first copy was kept: now unchanged
    assert result.unchanged == 1 and [f.id for f in result.failed] == ["dup1"]
    assert client.get(["dup1"])[0].text == "first okapi"
    client.delete(["dup1"])
