"""Real ``trawl serve`` servers for tests: a subprocess (the CLI as users run it) or
uvicorn in a thread (cheaper, for route-level checks). Both bind 127.0.0.1 on an
ephemeral port and are always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import REPO

TWO_BM25 = """name = "two-bm25"
[[retrievers]]
name = "a"
index = "bm25"
[[retrievers]]
name = "b"
index = "bm25"
index_config = { k1 = 1.5 }
"""


def trawl_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "trawl.cli", *args]


class ServerProcess:
    """``trawl serve ... --port 0`` in a child process; ``url`` once it printed it."""

    def __init__(self, index: Path | str, *args: str, env: dict[str, str] | None = None,
                 start_timeout: float = 60.0) -> None:
        self.proc = subprocess.Popen(
            trawl_cmd("serve", str(index), "--port", "0", *args), cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        self.url = ""
        deadline = time.monotonic() + start_timeout
        assert self.proc.stdout is not None
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("trawl serve: "):
                self.url = line.split()[2]
                break
            if not line and self.proc.poll() is not None:
                break
        if not self.url:
            if self.proc.poll() is None:  # ended before reading stderr: read() needs EOF
                self.proc.kill()
                self.proc.wait()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.stop()
            raise RuntimeError(f"server did not start (rc={self.proc.returncode}): {err}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (a crash)."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return int(self.proc.returncode)


@contextmanager
def serving(index: Path | str, *args: str, **kwargs: Any) -> Iterator[ServerProcess]:
    server = ServerProcess(index, *args, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def app_in_thread(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a thread on 127.0.0.1:<free port>; yields its URL."""
    import uvicorn

    from trawl_serve.runner import bind, client_url

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="error", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert server.started, "uvicorn did not start"
        yield client_url(sock)
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


def bm25_docs(n: int, prefix: str = "d", word: str = "") -> list[dict[str, Any]]:
    """Small documents, each with a unique token ``tok<prefix><i>`` and a shared ``word``."""
    return [{"id": f"{prefix}{i}", "text": f"tok{prefix}{i} {word} sample text number {i}",
             "title": f"Doc {prefix}{i}"} for i in range(n)]
