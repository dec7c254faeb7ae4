"""One exception hierarchy for everything trawl reports to users.

Every message says what failed, names the thing (file, field, plugin) and, where
possible, what exists instead and how to fix it.
"""

from __future__ import annotations

import re
import threading
import traceback as _traceback
from typing import Any

from .distribution import DISTRIBUTION


class PluginHardExit(BaseException):
    """Raised in place of ending the process when plugin code calls ``os._exit`` while the
    CLI loads it (see ``plugins._running_plugin_code``); never seen outside the host."""

    def __init__(self, status: object) -> None:
        self.status = status
        super().__init__(status)


def describe_exception(exc: BaseException) -> str:
    """One line for any exception, including the ones a plugin should never raise."""
    if isinstance(exc, PluginHardExit):
        return f"called os._exit({exc.status!r})"
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "raised KeyboardInterrupt (or was interrupted with Ctrl-C)"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _dist_key(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def missing_module_fix(distribution: str, module: str | None) -> str:
    """The pip command that brings ``module`` back: the extra of ``distribution`` whose
    requirements provide it (``pip install 'trawl-rag[bm25]'`` for scipy), else ``""``.

    Matches import names to requirement names loosely (``Stemmer`` ~ ``PyStemmer``,
    ``qdrant_edge`` ~ ``qdrant-edge-py``); reads only installed metadata.
    """
    if not module:
        return ""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires(distribution) or []
    except PackageNotFoundError:
        return ""
    key = _dist_key(module.split(".")[0])
    sizes: dict[str, int] = {}
    providing: set[str] = set()
    for line in requirements:
        spec, _, marker = line.partition(";")
        name = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if name is None or extra is None:
            continue
        sizes[extra.group(1)] = sizes.get(extra.group(1), 0) + 1
        candidate = _dist_key(name.group(1))
        if key in {candidate, candidate.removeprefix("py"), candidate.removesuffix("_py")}:
            providing.add(extra.group(1))
    if not providing:
        return ""
    # The smallest extra that has it: `bm25` rather than `all`, which repeats it.
    best = min(sorted(providing), key=lambda extra: sizes[extra])
    return f"pip install '{distribution}[{best}]'"


class TrawlError(Exception):
    """Base class: catch this to handle any trawl failure."""

    title: str = "trawl error"

    def __init__(self, message: str, *, title: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if title is not None:
            self.title = title

    def __str__(self) -> str:
        return self.message


class ConfigError(TrawlError, ValueError):
    """A configuration value is invalid; the message names the component and field."""

    title = "configuration error"


class PluginLoadError(TrawlError):
    """A plugin failed to import or raised inside a hook."""

    title = "plugin failed to load"

    def __init__(self, *, distribution: str, entry_point: str, cause: BaseException,
                 during: str = "") -> None:
        self.distribution = distribution
        self.entry_point = entry_point
        self.cause = cause
        self.during = during
        where = f" in {during}" if during else ""
        fix = missing_module_fix(distribution, cause.name) \
            if isinstance(cause, ModuleNotFoundError) else ""
        super().__init__(
            f"plugin {entry_point!r} from distribution {distribution!r} failed{where}: "
            f"{describe_exception(cause)}" + (f"; install it: {fix}" if fix else "")
        )

    @property
    def traceback(self) -> str:
        """The plugin's original traceback (``trawl --traceback`` / ``TRAWL_DEBUG=1``)."""
        return "".join(_traceback.format_exception(self.cause))


class PluginRuntimeError(TrawlError):
    """A plugin's component raised an untyped exception while working (encode, search, ...).

    Carries who it was (``kind``, ``component``, ``plugin``, ``distribution``), what it was
    doing (``operation``) and the original exception (``cause``, also ``__cause__``), so an
    application can tell a broken plugin from bad input and report it to the right people.
    """

    title = "plugin failed"

    def __init__(self, *, kind: str, component: str, plugin: str, distribution: str,
                 operation: str, cause: BaseException) -> None:
        self.kind = kind
        self.component = component
        self.plugin = plugin
        self.distribution = distribution
        self.operation = operation
        self.cause = cause
        super().__init__(
            f"{kind} {component!r} (plugin {plugin!r} from distribution {distribution!r}) "
            f"failed in {operation}: {type(cause).__name__}: {cause}"
        )


class PluginConflictError(TrawlError):
    """Two plugins registered a component under the same name."""

    title = "plugin conflict"


class UnknownComponentError(TrawlError, KeyError):
    """A pipeline names a component that no loaded plugin registered.

    ``plugin_errors`` holds the plugins that failed to load (one of them may be the one
    that provides it); the message names them and why.
    """

    title = "unknown component"

    def __init__(self, message: str, *, plugin_errors: list[PluginLoadError] | None = None
                 ) -> None:
        self.plugin_errors = list(plugin_errors or [])
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class MissingDependencyError(TrawlError, ImportError):
    """An optional extra is not installed."""

    title = "missing dependency"

    def __init__(self, package: str, extra: str, *, purpose: str = "") -> None:
        self.package = package
        self.extra = extra
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package!r} is not installed{what}: pip install '{DISTRIBUTION}[{extra}]'"
        )


class FilterError(TrawlError, ValueError):
    """A filter expression is malformed or uses an unknown field/operator."""

    title = "invalid filter"


class FilterTooLargeError(FilterError):
    """An ``in``/``not in`` list longer than ``trawl.filters.MAX_IN_VALUES`` (100,000):
    refused before any index sees it, so one request cannot hold the index for long.
    ``field`` names the condition's field, ``count`` the values it had."""

    title = "filter too large"

    def __init__(self, field: str, count: int, limit: int) -> None:
        self.field = field
        self.count = count
        self.limit = limit
        super().__init__(f"filter on {field!r}: {count} values in one 'in'/'not in' list, "
                         f"more than the {limit} allowed; split the list into several "
                         "searches, or filter on a coarser field (a group or tenant)")


class InputError(TrawlError, ValueError):
    """Bad user input (query, document, top_k, ...)."""

    title = "invalid input"


class DocumentError(InputError):
    """A document breaks the document contract (valid Unicode, JSON metadata);
    ``doc_id`` and ``field`` say where."""

    def __init__(self, doc_id: str, field: str, problem: str) -> None:
        self.doc_id = doc_id
        self.field = field
        self.problem = problem
        super().__init__(f"document {doc_id!r}, field {field!r}: {problem}")


class DuplicateIdError(DocumentError):
    """One ``add`` call got the same document id more than once. The first copy is the
    one written (as trawl's JSONL reader does); each later copy is refused with this
    error, so no copy silently replaces another."""

    def __init__(self, doc_id: str, position: int, first: int) -> None:
        self.position = position
        self.first = first
        super().__init__(doc_id, "id", f"duplicate id in one add call (document #{position}; "
                                       f"the first, #{first}, is the one kept)")


class AddError(TrawlError):
    """``Trawl.add(on_error="raise")`` stored the good documents but not these.

    ``failures`` lists each failed document (``id``, ``reason``, original ``error``);
    ``result`` is the ``AddResult`` of what was stored.
    """

    title = "documents not added"

    def __init__(self, result: Any) -> None:
        self.result = result
        self.failures = list(result.failed)
        shown = "; ".join(f"{f.id}: {f.reason}" for f in self.failures[:5])
        more = f"; and {len(self.failures) - 5} more" if len(self.failures) > 5 else ""
        super().__init__(f"{len(self.failures)} document(s) not added ({shown}{more}); "
                         f"{result.added + result.updated} stored")
        first = self.failures[0].error if self.failures else None
        if first is not None:
            self.__cause__ = first


class Cancelled(TrawlError):
    """A read stopped because its ``cancel`` event was set (a client went away, a
    deadline passed); nothing was written."""

    title = "cancelled"


def raise_if_cancelled(cancel: threading.Event | None, what: str) -> None:
    """The cooperative-cancel check core runs between the stages of a read."""
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"{what} cancelled")


class DimensionMismatchError(TrawlError, ValueError):
    """Vectors do not match the dimension an index was created with."""

    title = "dimension mismatch"


class IndexCorruptError(TrawlError):
    """Files on disk are unreadable, truncated or from an incompatible version."""

    title = "index corrupt"


class IndexLockedError(TrawlError):
    """Another process holds the index."""

    title = "index locked"


class IndexReadOnlyError(TrawlError):
    """A write was asked of an index opened read-only (its folder or manifest is not
    writable), or a read-only index cannot be opened as it stands."""

    title = "index read-only"


class ModelSourceError(TrawlError):
    """A model name could not be resolved to local files, or its files are inconsistent."""

    title = "model not available"


class ServerUnavailableError(TrawlError, ConnectionError):
    """A served index (``trawl serve``) could not be reached, or went away mid-call.

    Whatever an earlier call stored is durable: the server answers only after a write
    is committed. A call that failed this way may or may not have been applied.
    """

    title = "server unavailable"


class ServerError(TrawlError):
    """A served index answered with an error that has no matching local class (a 5xx,
    an authentication failure); ``status`` is the HTTP status, ``kind`` the error type."""

    title = "server error"

    def __init__(self, message: str, *, status: int = 500, kind: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class UnknownDocumentError(InputError, KeyError):
    """Document ids that the index does not hold; ``ids`` lists them."""

    title = "unknown document"

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        shown = ", ".join(repr(i) for i in ids[:10]) + (" ..." if len(ids) > 10 else "")
        super().__init__(f"no document with id {shown} in this index")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.message


class UnreadableFileError(TrawlError):
    """A reader could not turn a file's bytes into documents (corrupt, binary, encrypted,
    wrong format). ``path`` names the file and ``reason`` says why; ingestion reports it
    once per file and goes on with the others."""

    title = "unreadable file"

    def __init__(self, reason: str, *, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)

    def naming(self, path: str) -> UnreadableFileError:
        """The same error naming ``path`` (readers may raise it before they know one)."""
        return self if self.path else UnreadableFileError(self.reason, path=path)
