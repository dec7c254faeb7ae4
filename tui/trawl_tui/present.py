"""How a hit's source, metadata and scores read on screen (rich renderables, no textual)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.table import Table
from rich.text import Text

from trawl.models import Chunk, Hit

from .highlight import highlight, snippet
from .safe import clean, one_line

HIDDEN_META = {"chunk_start", "chunk_end", "chunk_index", "title", "path", "source"}
DATE_KEYS = {"mtime", "ctime", "created", "modified", "updated", "date_indexed"}
SIZE_KEYS = {"size", "bytes", "file_size"}
HASH_KEYS = {"content_hash", "hash", "sha256", "sha1", "md5"}


def human_bytes(n: float) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def human_time(seconds: float) -> str:
    """A Unix time as local ``YYYY-MM-DD HH:MM`` (index lists: when it changed)."""
    return dt.datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M")


def utc_time(seconds: float) -> str:
    """A Unix time as ``YYYY-MM-DD HH:MM UTC``: the form a filter compares it with
    (``mtime>=2026-12-01`` means midnight UTC; see docs/site/filters.md)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def readable_value(key: str, value: Any) -> str:
    """Dates, sizes and hashes as people read them; anything else as short plain text."""
    lowered = key.lower()
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and (lowered in DATE_KEYS or lowered.endswith("_time")) and 0 < value < 1e11:
        return utc_time(float(value))
    if number and lowered in SIZE_KEYS:
        return human_bytes(float(value))
    if lowered in HASH_KEYS and isinstance(value, str) and len(value) > 12:
        return value[:12] + "…"
    return one_line(value)[:200]


def hit_header(hit: Hit) -> Text:
    """One line above the chunk: rank, title and where it comes from."""
    out = Text(no_wrap=True, overflow="ellipsis")
    if hit.rank:
        out.append(f"#{hit.rank} ", style="bold cyan")
    out.append(one_line(hit.title or hit.doc_id), style="bold")
    if hit.source:
        out.append(f"  {one_line(hit.source)}", style="dim")
    return out


def metadata_table(hit: Hit, *, scores: bool = True) -> Table:
    """Title, source, chunk position, scores per source and readable metadata."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    table.add_row("title", Text(one_line(hit.title or "-")))
    table.add_row("source", Text(one_line(hit.source or hit.doc_id)))
    start, end = hit.metadata.get("chunk_start"), hit.metadata.get("chunk_end")
    span = f"  (chars {start}–{end})" if start is not None else ""
    table.add_row("chunk", Text(one_line(hit.chunk_id) + span))
    if scores and hit.rank:
        table.add_row("rank", f"#{hit.rank}  score {hit.score:.4f}")
        for name, src in sorted(hit.scores_by_source.items()):
            table.add_row(Text(f"  {clean(name)}"), f"#{src.rank}  {src.score:.4f}")
    for key, value in sorted(hit.metadata.items()):
        if key not in HIDDEN_META:
            table.add_row(Text(one_line(key)[:30]), Text(readable_value(key, value)))
    return table


def chunk_text(hit: Hit, query: str) -> Text:
    """The whole chunk with the query terms highlighted."""
    return highlight(clean(hit.text.rstrip()), query)


def neighbours_text(before: list[Chunk], after: list[Chunk], query: str, width: int) -> Text:
    out = Text()
    for label, chunks in (("previous", before), ("next", after)):
        out.append(f"{label}: ", style="bold")
        if not chunks:
            out.append("none\n", style="dim")
            continue
        for chunk in chunks:
            out.append(f"{one_line(chunk.id)}\n", style="dim")
            out.append("  ")
            out.append_text(snippet(clean(chunk.text), query, max(30, width)))
            out.append("\n")
    return out


def hit_from_chunk(chunk: Chunk) -> Hit:
    """A neighbouring chunk shown like a hit (no score)."""
    return Hit(doc_id=chunk.doc_id, chunk_id=chunk.id, score=0.0, rank=0, text=chunk.text,
               metadata={**chunk.metadata, "chunk_index": chunk.index,
                         "chunk_start": chunk.start, "chunk_end": chunk.end})
