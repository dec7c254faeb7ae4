"""Session state for the TUI: the live pipeline choice and the query history.

Plain data, no textual import: the session is what ``ctrl+s`` writes as JSON and what
``trawl tui --session FILE`` (or ``make_app(session=...)``) reads back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from trawl.config import FusionConfig
from trawl.errors import InputError

SESSION_FORMAT = 1
FusionMethod = Literal["rrf", "weighted", "dbsf"]
FUSION_METHODS: tuple[FusionMethod, ...] = ("rrf", "weighted", "dbsf")


@dataclass(frozen=True)
class SearchOptions:
    """How the next search runs: a subset of the pipeline's retrievers, fusion, rerank, top_k.

    ``retrievers=()`` means "every retriever the pipeline has"; ``rerank=None`` means
    "what the pipeline config says".
    """

    retrievers: tuple[str, ...] = ()
    fusion: FusionMethod = "rrf"
    rerank: bool | None = None
    top_k: int = 10

    def search_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Trawl.search``."""
        return {
            "top_k": self.top_k,
            "retrievers": list(self.retrievers) or None,
            "fusion": FusionConfig(method=self.fusion),
            "rerank": self.rerank,
        }

    def with_(self, **changes: Any) -> SearchOptions:
        return replace(self, **changes)

    def describe(self, all_retrievers: list[str]) -> str:
        names = list(self.retrievers) or all_retrievers
        parts = ["+".join(names) or "-"]
        if len(names) > 1:
            parts.append(f"fusion {self.fusion}")
        parts.append("rerank " + {None: "default", True: "on", False: "off"}[self.rerank])
        parts.append(f"top {self.top_k}")
        return " · ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"retrievers": list(self.retrievers), "fusion": self.fusion,
                "rerank": self.rerank, "top_k": self.top_k}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchOptions:
        fusion = data.get("fusion", "rrf")
        if fusion not in FUSION_METHODS:
            raise InputError(f"session: fusion must be one of {FUSION_METHODS}, got {fusion!r}")
        top_k = int(data.get("top_k", 10))
        if not 1 <= top_k <= 10_000:
            raise InputError(f"session: top_k must be between 1 and 10000, got {top_k}")
        rerank = data.get("rerank")
        if rerank is not None and not isinstance(rerank, bool):
            raise InputError(f"session: rerank must be true, false or null, got {rerank!r}")
        return cls(retrievers=tuple(str(r) for r in data.get("retrievers", ())),
                   fusion=fusion, rerank=rerank, top_k=top_k)


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
