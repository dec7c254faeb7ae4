"""Session state for the TUI: the live pipeline choice and the query history.

Plain data, no textual import: the session is what ``ctrl+s`` writes as JSON and what
``trawl tui --session FILE`` (or ``make_app(session=...)``) reads back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from trawl.config import FusionConfig
from trawl.errors import InputError
from trawl.filters import Filter, parse_where

SESSION_FORMAT = 1
FusionMethod = Literal["rrf", "weighted", "dbsf"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("rrf", "weighted", "dbsf")


@dataclass(frozen=True)
class SearchOptions:
    """How the next search runs: a subset of the pipeline's retrievers, fusion, rerank, top_k,
    a filter in the CLI's ``--where`` syntax, and whether hits are grouped by document.

    ``retrievers=()`` means "every retriever the pipeline has"; ``fusion=None`` and
    ``rerank=None`` mean "what the pipeline config says", so a fresh session ranks exactly
    like ``trawl search``.
    """

    retrievers: tuple[str, ...] = ()
    fusion: FusionMethod | None = None
    rerank: bool | None = None
    top_k: int = 10
    where: str = ""
    group_by_document: bool = False

    def search_kwargs(self, pipeline_fusion: FusionConfig | None = None) -> dict[str, Any]:
        """Keyword arguments for ``Trawl.search``; an overridden fusion keeps the pipeline's
        other fusion settings (``k``)."""
        fusion = None
        if self.fusion is not None:
            base = pipeline_fusion or FusionConfig()
            fusion = base.model_copy(update={"method": self.fusion})
        return {
            "top_k": self.top_k,
            "filters": parse_where_text(self.where),
            "retrievers": list(self.retrievers) or None,
            "fusion": fusion,
            "rerank": self.rerank,
        }

    def with_(self, **changes: Any) -> SearchOptions:
        return replace(self, **changes)

    def describe(self, all_retrievers: list[str], pipeline_fusion: str = "rrf",
                 reranker: str | None = None) -> str:
        """``bm25+dense · weighted · pipeline · top 10``: what the status bar shows."""
        names = list(self.retrievers) or all_retrievers
        parts = ["+".join(names) or "-"]
        if len(names) > 1:
            if self.fusion is None or self.fusion == pipeline_fusion:
                parts.append(f"{pipeline_fusion} · pipeline")
            else:
                parts.append(f"{self.fusion} · override")
        if reranker is not None:
            parts.append(f"rerank {reranker} " + {None: "(pipeline)", True: "on",
                                                  False: "off"}[self.rerank])
        parts.append(f"top {self.top_k}")
        if self.group_by_document:
            parts.append("by document")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"retrievers": list(self.retrievers), "fusion": self.fusion,
                "rerank": self.rerank, "top_k": self.top_k, "where": self.where,
                "group_by_document": self.group_by_document}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchOptions:
        fusion = data.get("fusion")
        if fusion is not None and fusion not in FUSION_METHODS:
            raise InputError(f"session: fusion must be one of {FUSION_METHODS} or null, "
                             f"got {fusion!r}")
        top_k = data.get("top_k", 10)
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= 10_000:
            raise InputError(f"session: top_k must be an integer from 1 to 10000, got {top_k!r}")
        rerank = data.get("rerank")
        if rerank is not None and not isinstance(rerank, bool):
            raise InputError(f"session: rerank must be true, false or null, got {rerank!r}")
        where = data.get("where", "")
        if not isinstance(where, str):
            raise InputError(f"session: where must be a string, got {type(where).__name__}")
        parse_where_text(where)  # an invalid saved filter is reported now, naming the file
        return cls(retrievers=tuple(str(r) for r in data.get("retrievers", ())),
                   fusion=fusion, rerank=rerank, top_k=top_k, where=where,
                   group_by_document=bool(data.get("group_by_document", False)))


@dataclass(frozen=True)
class QueryState:
    """Everything that decides what the list shows, read from one place and drawn in the
    status bar: the query text, the applied options (retrievers, fusion, rerank, top_k,
    filter, grouping), the filter bar's draft when it differs (pending: not applied), and
    where the index lives (``local``/``memory`` or ``remote http://...``, lost or not)."""

    text: str = ""
    options: SearchOptions = field(default_factory=SearchOptions)
    draft_where: str = ""
    target: str = ""
    server_lost: bool = False

    @property
    def filter_pending(self) -> bool:
        return self.draft_where.strip() != self.options.where.strip()

    def filter_label(self) -> tuple[str, str]:
        """``(text, kind)`` for the status bar; kind is ``applied``, ``pending`` or ``""``."""
        if self.filter_pending:
            draft = self.draft_where.strip() or "(none)"
            return f"pending filter {draft} (enter/esc)", "pending"
        if self.options.where.strip():
            return f"filter: {self.options.where.strip()}", "applied"
        return "", ""


def count_label(n: int, unit: str) -> str:
    """``1 hit``, ``2 hits``, ``1 document``."""
    return f"{n} {unit}" if n == 1 else f"{n} {unit}s"


def parse_where_text(text: str) -> Filter | None:
    """``year>=2020 lang=en`` (the CLI's ``--where`` expressions, AND-ed) → a filter.

    Shell-like quoting keeps spaces inside a value: ``title="tide tables"``. Errors are
    ``FilterError``/``InputError`` naming the expression.
    """
    if not text.strip():
        return None
    try:
        parts = shlex.split(text)
    except ValueError as exc:
        raise InputError(f"filter {text!r}: {exc}") from exc
    return parse_where(parts)


@dataclass
class History:
    """Queries of this session, oldest first, with an up/down cursor like a shell."""

    entries: list[str] = field(default_factory=list)
    limit: int = 500
    _cursor: int | None = None

    def add(self, query: str) -> None:
        query = query.strip()
        self._cursor = None
        if not query:
            return
        if query in self.entries:
            self.entries.remove(query)
        self.entries.append(query)
        del self.entries[:-self.limit]

    def previous(self) -> str | None:
        """One step back (up arrow); ``None`` when there is nothing older."""
        if not self.entries:
            return None
        if self._cursor is None:
            self._cursor = len(self.entries) - 1
        elif self._cursor > 0:
            self._cursor -= 1
        else:
            return self.entries[0]
        return self.entries[self._cursor]

    def next(self) -> str | None:
        """One step forward (down arrow); ``""`` past the newest entry."""
        if self._cursor is None:
            return None
        if self._cursor >= len(self.entries) - 1:
            self._cursor = None
            return ""
        self._cursor += 1
        return self.entries[self._cursor]

    def reset_cursor(self) -> None:
        self._cursor = None


HISTORY_ENV = "TRAWL_TUI_HISTORY"  # "0" turns the per-index history file off


def history_file(index_path: str | Path | None, home: Path | None = None) -> Path | None:
    """Where an index's query history persists: ``$TRAWL_HOME/tui/history/<name>-<hash>.json``
    (outside the index folder, which may be read-only); ``None`` for in-memory indexes."""
    if index_path is None:
        return None
    if home is None:
        from trawl.config import TrawlSettings

        home = TrawlSettings().home
    resolved = str(Path(index_path).expanduser().resolve())
    digest = hashlib.sha256(resolved.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(resolved).name)[:40] or "index"
    return home / "tui" / "history" / f"{name}-{digest}.json"


def load_history(path: Path, limit: int = 500) -> History:
    """A saved history, or an empty one when the file is missing or unreadable (history is a
    convenience: a damaged file must not stop the app)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return History(limit=limit)
    entries = [q for q in data if isinstance(q, str)] if isinstance(data, list) else []
    return History(entries=entries[-limit:], limit=limit)


def save_history(path: Path, history: History) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(history.entries, ensure_ascii=False), encoding="utf-8")
    os.chmod(tmp, 0o600)  # queries can be private
    os.replace(tmp, path)


@dataclass
class Session:
    """What a saved session holds."""

    options: SearchOptions = field(default_factory=SearchOptions)
    history: History = field(default_factory=History)
    index: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"format": SESSION_FORMAT, "index": self.index,
                "options": self.options.to_json(), "history": list(self.history.entries)}

    def save(self, path: str | Path) -> Path:
        target = Path(path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")
        return target

    @classmethod
    def load(cls, path: str | Path) -> Session:
        source = Path(path).expanduser()
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read session file {source}: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != SESSION_FORMAT:
            raise InputError(f"session file {source}: not a trawl session (format "
                             f"{data.get('format') if isinstance(data, dict) else None!r}, "
                             f"expected {SESSION_FORMAT})")
        history = History(entries=[str(q) for q in data.get("history", [])])
        return cls(options=SearchOptions.from_json(data.get("options") or {}), history=history,
                   index=data.get("index"))


def default_session_path() -> Path:
    """``$TRAWL_HOME/sessions/last.json``."""
    from trawl.config import TrawlSettings

    return TrawlSettings().home / "sessions" / "last.json"
