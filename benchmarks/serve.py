"""Serving cost: search latency in-process vs over HTTP vs over MCP, and throughput with
1, 4 and 8 concurrent HTTP clients, through a real ``trawl serve`` process.

    python benchmarks/serve.py [--quick] [--chunks 10000] [--queries 200] [--seconds 10]
                               [--only example,bm25,hybrid] [--dense onnx|hash]

Indexes (built once, kept under ``$TRAWL_CACHE_DIR/bench/serve``):
- ``example``: ``examples/corpus`` with the default ``hybrid`` preset (BM25 + MiniLM on
  embedded Qdrant, weighted fusion): what a new user serves;
- ``bm25``: SciFact abstracts chunked at 128 tokens until ``--chunks`` chunks;
- ``hybrid``: the same chunks, ``hybrid`` preset (``--dense onnx``: real MiniLM, the
  default; ``--dense hash`` swaps in core's test hashing encoder on ``exact`` when
  MiniLM cannot run, and the table says so).

Per index, side by side in one run and on the same queries (SciFact test queries; the
example corpus's own titles for ``example``), top 10:
- in-process: ``Trawl.search`` in this process;
- HTTP: ``RemoteTrawl.search`` (httpx, keep-alive) against ``trawl serve`` in a child
  process; the server's own search time comes back in each answer, so "HTTP overhead" is
  the p50 of (client wall time − server search time) per request, paired;
- MCP: the SDK's ``Client`` calling tool ``search`` over streamable HTTP;
- throughput: 1, 4, 8 client threads (each its own connection) searching for
  ``--seconds`` each; requests/s and p50/p95 latency per client.

Goals (issue 13): HTTP adds ≤ 2 ms p50 over in-process; with 8 clients p95 ≤ 3× the
single-client p95.

``--bounded`` (issue 22, on the ``hybrid`` index) adds a second table, through the server:
- searches carrying a 10k- and a 100k-value ``in`` filter (an access list over ``title``:
  every stored title plus made-up ones), beside the same searches unfiltered (goal: p50 ≤
  100 ms);
- ``POST /context`` with ``max_tokens=50000, top_k=500`` (goal: well under 1 s);
- 8 clients searching for ``--seconds`` idle, then again while one ``--big-mb`` (9) MB
  document ingests, plus the latency of one small add made meanwhile (goals: search p95
  during the ingest ≤ 3× idle; the small add ≤ 2 s). The machine has 2 cores shared with other jobs: the load average is
printed with every table, and ratios are the figures to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
DATASETS = Path(os.environ.get("TRAWL_DATASETS", ROOT.parent / "shared" / "datasets"))


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


# -- indexes -------------------------------------------------------------------------------
def cache_dir() -> Path:
    from trawl import TrawlSettings

    return TrawlSettings().cache_dir / "bench" / "serve"


def pipeline_for(kind: str, dense: str) -> Any:
    from trawl import load_pipeline

    if kind == "bm25":
        cfg = load_pipeline("bm25")
    else:
        cfg = load_pipeline("hybrid")
        if dense == "hash":
            cfg = load_pipeline({
                "name": "hybrid-hash", "fusion": cfg.fusion.model_dump(),
                "retrievers": [cfg.retrievers[0].model_dump(),
                               {"name": "dense", "index": "exact", "encoder": "hashing"}]})
    return cfg.model_copy(update={"chunking": cfg.chunking.model_copy(
        update={"max_tokens": 128, "overlap": 16})})


def host_for(dense: str) -> Any:
    import trawl

    if dense != "hash":
        return trawl.PluginHost()
    sys.path.insert(0, str(ROOT))
    from tests.conftest import HashingPlugin

    return trawl.PluginHost(plugins=[("hashing-bench", HashingPlugin)])


def build_scifact(folder: Path, kind: str, dense: str, target: int) -> int:
    from trawl import Document, Trawl

    with Trawl.open(folder, pipeline=pipeline_for(kind, dense), host=host_for(dense),
                    show_progress=False, attach=False) as t:
        if t.manifest.count():
            return sum(t.stats()["chunks"].values()) // len(t.stats()["chunks"])
        docs, total = [], 0
        for d in read_jsonl(DATASETS / "scifact" / "corpus.jsonl"):
            doc = Document(id=str(d["_id"]), text=f"{d.get('title', '')}\n\n{d['text']}",
                           metadata={"title": d.get("title", "")})
            total += len(t.chunk(doc))
            docs.append(doc)
            if total >= target:
                break
        started = time.perf_counter()
        t.add(docs, batch_size=128, show_progress=True)
        print(f"  built {folder.name}: {len(docs)} docs, {total} chunks in "
              f"{time.perf_counter() - started:.0f}s", file=sys.stderr)
        return total


def build_example(folder: Path) -> int:
    from trawl import Trawl
    from trawl.ingest import index_paths

    with Trawl.open(folder, pipeline="hybrid", show_progress=False, attach=False) as t:
        index_paths(t, [ROOT / "examples" / "corpus"], show_progress=False)
        return int(t.stats()["chunks"]["bm25"])


def scifact_queries(n: int) -> list[str]:
    return [q["text"] for q in read_jsonl(DATASETS / "scifact" / "queries.jsonl")][:n]


def example_queries() -> list[str]:
    files = sorted((ROOT / "examples" / "corpus").rglob("*.md"))
    return [f.stem.replace("-", " ") for f in files] or ["hybrid search"]


# -- measuring -----------------------------------------------------------------------------
def timed(fn: Any, queries: list[str]) -> list[float]:
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        out.append((time.perf_counter() - t0) * 1000)
    return out


class Server:
    """``trawl serve FOLDER --port 0`` in a child process (127.0.0.1, stopped on exit)."""

    def __init__(self, folder: Path, dense: str, *extra: str) -> None:
        env = dict(os.environ)
        code = "from trawl.cli import main; main()"
        if dense == "hash":  # the child needs the hashing encoder registered too
            code = ("import sys; sys.path.insert(0, %r); import trawl.plugins as p; "
                    "from tests.conftest import HashingPlugin; orig = p.PluginHost.__init__\n"
                    "def init(self, *a, **k):\n"
                    "    k.setdefault('plugins', []); k['plugins'] = [*k['plugins'], "
                    "('hashing-bench', HashingPlugin)]; orig(self, *a, **k)\n"
                    "p.PluginHost.__init__ = init\n"
                    "from trawl.cli import main; main()").replace("%r", repr(str(ROOT)))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, "serve", str(folder), "--port", "0", *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        assert self.proc.stdout is not None
        self.url = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("trawl serve: "):
                self.url = line.split()[2]
                break
            if not line:
                break
        if not self.url:
            self.stop()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"server did not start: {err}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def mcp_latencies(url: str, queries: list[str]) -> list[float]:
    from mcp import Client

    async def run() -> list[float]:
        out = []
        async with Client(f"{url}/mcp") as c:
            await c.call_tool("search", {"query": queries[0], "top_k": 10})  # warm-up
            for q in queries:
                t0 = time.perf_counter()
                r = await c.call_tool("search", {"query": q, "top_k": 10})
                out.append((time.perf_counter() - t0) * 1000)
                if r.is_error:
                    raise RuntimeError(r.content[0].text)
        return out

    return asyncio.run(run())


def throughput(url: str, queries: list[str], clients: int, seconds: float) -> dict[str, Any]:
    import trawl

    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def worker(n: int) -> None:
        mine: list[float] = []
        with trawl.connect(url) as c:
            c.search(queries[n % len(queries)])
            start.wait()
            i = n
            while time.perf_counter() < stop_at[0]:
                q = queries[i % len(queries)]
                i += clients
                t0 = time.perf_counter()
                try:
                    c.search(q, top_k=10)
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                mine.append((time.perf_counter() - t0) * 1000)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for th in threads:
        th.start()
    stop_at[0] = time.perf_counter() + seconds + 0.05
    start.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join(seconds + 60)
    elapsed = time.perf_counter() - t0
    return {"clients": clients, "requests": len(lat), "errors": len(errors),
            "rps": len(lat) / elapsed, "p50": pct(lat, 0.5), "p95": pct(lat, 0.95)}


def measure(name: str, folder: Path, queries: list[str], dense: str, seconds: float,
            clients: list[int]) -> dict[str, Any]:
    import trawl

    res: dict[str, Any] = {"index": name, "load_start": loadavg()}
    with trawl.Trawl.open(folder, host=host_for(dense), show_progress=False,
                          attach=False) as t:
        res["chunks"] = max(t.stats()["chunks"].values())
        res["pipeline"] = t.config.name
        has_encoder = any(r.encoder for r in t.config.retrievers)
        timed(lambda q: t.search(q, 10), queries[:10])
        local = timed(lambda q: t.search(q, 10), queries)
    server = Server(folder, dense)
    try:
        with trawl.connect(server.url) as c:
            timed(lambda q: c.search(q, 10), queries[:10])
            overhead: list[float] = []
            http: list[float] = []
            for q in queries:
                trace = trawl.SearchTrace()
                t0 = time.perf_counter()
                c.search(q, 10, trace=trace)
                wall = (time.perf_counter() - t0) * 1000
                http.append(wall)
                overhead.append(wall - trace.total_ms)
        mcp = mcp_latencies(server.url, queries)
        res["throughput"] = [throughput(server.url, queries, n, seconds) for n in clients]
    finally:
        server.stop()
    if has_encoder:  # the same rows with batching, side by side
        server = Server(folder, dense, "--batch")
        try:
            res["throughput_batch"] = [throughput(server.url, queries, n, seconds)
                                       for n in clients]
        finally:
            server.stop()
    res.update(local_p50=pct(local, .5), local_p95=pct(local, .95),
               http_p50=pct(http, .5), http_p95=pct(http, .95),
               overhead_p50=pct(overhead, .5), overhead_mean=statistics.fmean(overhead),
               mcp_p50=pct(mcp, .5), mcp_p95=pct(mcp, .95), queries=len(queries),
               load_end=loadavg())
    return res


def big_document(mb: float) -> str:
    """SciFact abstracts joined until ``mb`` megabytes: real prose, one document."""
    parts, size = [], 0
    corpus = read_jsonl(DATASETS / "scifact" / "corpus.jsonl")
    while size < mb * 1_000_000:
        for d in corpus:
            parts.append(d["text"])
            size += len(d["text"]) + 2
            if size >= mb * 1_000_000:
                break
    return "\n\n".join(parts)


def bounded(folder: Path, queries: list[str], dense: str, seconds: float,
            big_mb: float, ingest_seconds: float) -> dict[str, Any]:
    """Issue 22's heavy requests against one ``trawl serve`` of ``folder``."""
    import trawl

    res: dict[str, Any] = {"load_start": loadavg()}
    with trawl.Trawl.open(folder, host=host_for(dense), show_progress=False,
                          attach=False) as t:
        titles = sorted({str(d.metadata.get("title", "")) for d in t.documents()})
    access = (titles + [f"no such title {i}" for i in range(100_000)])[:100_000]
    acl = {"field": "title", "op": "in", "value": access[:10_000]}
    acl_100k = {"field": "title", "op": "in", "value": access}
    server = Server(folder, dense)
    try:
        with trawl.connect(server.url, timeout=3600) as c:
            c.search(queries[0], 10, filters=acl)
            res["plain"] = timed(lambda q: c.search(q, 10), queries[:30])
            res["acl"] = timed(lambda q: c.search(q, 10, filters=acl), queries[:30])
            res["acl_100k"] = timed(lambda q: c.search(q, 10, filters=acl_100k), queries[:10])
            res["acl_hits"] = len(c.search(queries[0], 10, filters=acl))
            c.context(queries[0], max_tokens=50_000, top_k=500)
            res["context"] = timed(lambda q: c.context(q, max_tokens=50_000, top_k=500),
                                   queries[:5])
            res["context_tokens"] = c.context(queries[0], max_tokens=50_000, top_k=500).tokens
        res["idle"] = throughput(server.url, queries, 8, seconds)
        big = big_document(big_mb)
        res["big_chars"] = len(big)
        ingest_error: list[str] = []

        def ingest() -> None:
            try:
                with trawl.connect(server.url, timeout=3600) as c:
                    c.add([{"id": "big-document", "text": big}])
            except Exception as exc:  # the server is stopped before it ends: expected
                ingest_error.append(f"{type(exc).__name__}: {str(exc)[:200]}")

        worker = threading.Thread(target=ingest, daemon=True)
        worker.start()
        adds: list[float] = []  # each small add's latency; one still waiting counts as open
        waiting: list[float] = []
        stop_adds = threading.Event()

        def small_adds() -> None:
            with trawl.connect(server.url, timeout=3600) as c:
                n = 0
                while not stop_adds.wait(ingest_seconds / 6):
                    t0 = time.perf_counter()
                    waiting.append(t0)
                    c.add([{"id": f"small-note-{n}", "text": f"a small note {n}"}])
                    waiting.remove(t0)
                    adds.append((time.perf_counter() - t0) * 1000)
                    n += 1

        adder = threading.Thread(target=small_adds, daemon=True)
        adder.start()
        # searches over the whole window: request parsing, chunking, encoding and writing
        res["during"] = throughput(server.url, queries, 8, ingest_seconds)
        stop_adds.set()
        now = time.perf_counter()
        res["small_adds"] = adds
        res["small_add_open_ms"] = [(now - t0) * 1000 for t0 in waiting]
        res["ingest_still_running"] = worker.is_alive()
        res["ingest_error"] = ingest_error[0] if ingest_error else ""
    finally:
        server.stop()
    res["load_end"] = loadavg()
    return res


def bounded_table(r: dict[str, Any], args: argparse.Namespace) -> str:
    idle, during = r["idle"], r["during"]
    return "\n".join([
        f"Heavy requests on the hybrid index (`python benchmarks/serve.py --only hybrid "
        f"--bounded --dense {args.dense} --seconds {args.seconds:g} --big-mb {args.big_mb:g} "
        f"--ingest-seconds {args.ingest_seconds:g}`"
        f"); load avg {r['load_start']} → {r['load_end']}.", "",
        "| request | p50 ms | p95 ms | note |", "|---|---:|---:|---|",
        f"| search, no filter (same queries) | {pct(r['plain'], .5):.1f} | "
        f"{pct(r['plain'], .95):.1f} | one client |",
        f"| search, 10k-value `in` filter | {pct(r['acl'], .5):.1f} | {pct(r['acl'], .95):.1f}"
        f" | {r['acl_hits']} hits |",
        f"| search, 100k-value `in` filter | {pct(r['acl_100k'], .5):.1f} | "
        f"{pct(r['acl_100k'], .95):.1f} | the cap (MAX_IN_VALUES) |",
        f"| context 50,000 tokens / top_k 500 | {pct(r['context'], .5):.0f} | "
        f"{pct(r['context'], .95):.0f} | {r['context_tokens']} tokens |",
        f"| search, 8 clients, idle | {idle['p50']:.1f} | {idle['p95']:.1f} | "
        f"{idle['rps']:.0f} req/s, {idle['errors']} errors |",
        f"| search, 8 clients, {args.ingest_seconds:g} s from the start of a "
        f"{r['big_chars'] / 1e6:.1f} MB ingest | "
        f"{during['p50']:.1f} | {during['p95']:.1f} | {during['rps']:.0f} req/s, "
        f"{during['errors']} errors; p95 ratio {during['p95'] / idle['p95']:.2f} (goal ≤ 3) |",
        small_add_row(r)])


def small_add_row(r: dict[str, Any]) -> str:
    """The small adds made during the ingest: done ones, and any still waiting at the end."""
    done, open_ms = r["small_adds"], r["small_add_open_ms"]
    waiting = f", {len(open_ms)} still waiting" if open_ms else ""
    worst = max(done + open_ms, default=float("nan"))
    state = "still running" if r["ingest_still_running"] else "finished"
    return (f"| small adds during the ingest ({len(done)} done{waiting}) | "
            f"{pct(done, .5):.0f} | max {worst:.0f} | goal ≤ 2000; the large ingest "
            f"{state} at the end of the window {r['ingest_error']} |")


def table(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "Serving latency, top 10 "
        f"(`python benchmarks/serve.py{' --quick' if args.quick else ''}"
        f" --dense {args.dense}`); ms.", "",
        "| index | pipeline | chunks | queries | in-process p50 / p95 | HTTP p50 / p95 | "
        "HTTP overhead p50 "
        "(paired) | MCP p50 / p95 | load avg (start → end) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        lines.append(
            f"| {r['index']} | {r['pipeline']} | {r['chunks']} | {r['queries']} | "
            f"{r['local_p50']:.2f} / "
            f"{r['local_p95']:.2f} | {r['http_p50']:.2f} / {r['http_p95']:.2f} | "
            f"{r['overhead_p50']:.2f} | {r['mcp_p50']:.2f} / {r['mcp_p95']:.2f} | "
            f"{r['load_start']} → {r['load_end']} |")
    lines += ["", f"Throughput over HTTP, {args.seconds:g} s per row, each client its own "
                  "connection; p95 ratio = p95 / single-client p95 (goal ≤ 3). Rows of "
                  "pipelines with an encoder are repeated with `trawl serve --batch` "
                  "(concurrent searches share one search_batch).", "",
              "| index | clients | requests/s | p50 ms | p95 ms | p95 ratio | errors |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        base = r["throughput"][0]["p95"]
        rows = [("", row) for row in r["throughput"]] + [
            (" (--batch)", row) for row in r.get("throughput_batch", [])]
        for label, row in rows:
            lines.append(f"| {r['index']}{label} | {row['clients']} | {row['rps']:.0f} | "
                         f"{row['p50']:.2f} | {row['p95']:.2f} | {row['p95'] / base:.2f} | "
                         f"{row['errors']} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="2k chunks, 50 queries, 3 s per throughput row")
    ap.add_argument("--chunks", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--only", default="example,bm25,hybrid")
    ap.add_argument("--dense", choices=["onnx", "hash"], default="onnx")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the cached indexes")
    ap.add_argument("--bounded", action="store_true",
                    help="only issue 22's heavy requests (10k in filter, 50k-token context, "
                         "searches during a large ingest) on the hybrid index")
    ap.add_argument("--big-mb", type=float, default=9.0,
                    help="size of the document ingested during --bounded")
    ap.add_argument("--ingest-seconds", type=float, default=40.0,
                    help="--bounded: how long to search (and add small documents, six "
                         "times) while the large document ingests")
    args = ap.parse_args()
    if args.quick:
        args.chunks, args.queries, args.seconds = 2000, 50, 3.0
    clients = [int(c) for c in args.clients.split(",")]
    base = cache_dir()
    if args.rebuild and base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    if args.bounded:
        folder = base / f"scifact-hybrid-{args.dense}-{args.chunks}"
        build_scifact(folder, "hybrid", args.dense, args.chunks)
        heavy = bounded(folder, scifact_queries(args.queries), args.dense, args.seconds,
                        args.big_mb, args.ingest_seconds)
        text = bounded_table(heavy, args)
        print(text)
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "serve-bounded.md").write_text(text + "\n")
        return
    results = []
    for name in args.only.split(","):
        if name == "example":
            folder = base / "example-hybrid"
            build_example(folder)
            results.append(measure(name, folder, example_queries() * 4, "onnx", args.seconds,
                                   clients))
        else:
            kind = args.dense if name == "hybrid" else "lex"
            folder = base / f"scifact-{name}-{kind}-{args.chunks}"
            build_scifact(folder, name, args.dense, args.chunks)
            results.append(measure(name, folder, scifact_queries(args.queries),
                                   args.dense if name == "hybrid" else "onnx", args.seconds,
                                   clients))
        print(f"  {name}: done (load {loadavg()})", file=sys.stderr)
    text = table(results, args)
    print(text)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "serve.md").write_text(text + "\n")  # run_all.py collects out/<script>.md
    (OUT / "serve.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
