"""Messages the TUI's workers post back to the UI thread.

Search results carry the request they answer (query, options, sequence number), so
the screen paints only the answer to what is in the input *now*: a slow search that
finishes after a newer one never overwrites it. Ingestion progress messages coalesce
(``can_replace``): a burst of batches becomes one repaint.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from trawl.models import Hit
from trawl.pipeline import SearchTrace

from .ingest import IngestCount, IngestSummary
from .session import SearchOptions


@dataclass(frozen=True)
class SearchRequest:
    """One search the UI asked for; ``seq`` grows with every request."""

    seq: int
    query: str
    options: SearchOptions


class SearchDone(Message, bubble=False):
    """A search finished; ``hits`` answer ``request``."""

    def __init__(self, request: SearchRequest, hits: list[Hit], trace: SearchTrace,
                 elapsed_ms: float) -> None:
        super().__init__()
        self.request = request
        self.hits = hits
        self.trace = trace
        self.elapsed_ms = elapsed_ms


class SearchFailed(Message, bubble=False):
    """A search raised; the screen shows a notification and keeps the old results."""

    def __init__(self, request: SearchRequest, error: BaseException) -> None:
        super().__init__()
        self.request = request
        self.error = error


class IngestProgress(Message, bubble=False):
    """Where the running ingestion stands (documents, files, fraction of the bar)."""

    def __init__(self, count: IngestCount) -> None:
        super().__init__()
        self.count = count

    def can_replace(self, message: Message) -> bool:
        # a newer progress report supersedes a pending older one
        return isinstance(message, IngestProgress)


class IngestFinished(Message, bubble=False):
    def __init__(self, folder: str, summary: IngestSummary | None,
                 error: BaseException | None = None) -> None:
        super().__init__()
        self.folder = folder
        self.summary = summary
        self.error = error


class StatsLoaded(Message, bubble=False):
    def __init__(self, stats: dict[str, object]) -> None:
        super().__init__()
        self.stats = stats


@dataclass
class IndexOpened:
    """Not a message: what the opener worker returns."""

    path: str
    notes: list[str] = field(default_factory=list)
