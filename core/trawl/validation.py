"""Checks at the door: one metadata contract for every index, and API argument types.

Every index plugin stores metadata differently (JSON files, Qdrant payloads, numpy
columns), and each used to accept a different subset. Core checks documents once,
before anything is written, so a value one index would reject can never leave the
indexes out of step, and the error names the document and the field.

The contract: JSON types only (``str``, ``int``, finite ``float``, ``bool``, ``None``,
lists, objects with string keys), valid Unicode everywhere (no lone surrogates), at
most ``MAX_DEPTH`` levels of nesting.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import DocumentError, InputError

MAX_DEPTH = 64


def is_valid_unicode(text: str) -> bool:
    """False for strings holding lone surrogates (they cannot be stored as UTF-8)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _describe_bad_text(text: str) -> str:
    for i, ch in enumerate(text):
        if 0xD800 <= ord(ch) <= 0xDFFF:
            return f"is not valid Unicode (lone surrogate U+{ord(ch):04X} at character {i})"
    return "is not valid Unicode"


def check_text(doc_id: str, field: str, text: str) -> None:
    if not is_valid_unicode(text):
        raise DocumentError(doc_id, field, _describe_bad_text(text))


def normalize_metadata(doc_id: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata as plain JSON values (tuples become lists), or ``DocumentError``.

    Iterative rather than recursive, so a hostile nesting depth is reported as an error
    instead of exhausting the interpreter's stack.
    """
    if not isinstance(metadata, Mapping):
        raise DocumentError(doc_id, "metadata", f"must be an object, got "
                            f"{type(metadata).__name__}")
    root: dict[str, Any] = {}
    # (source container, destination container, path, depth)
    stack: list[tuple[Any, Any, str, int]] = [(metadata, root, "", 1)]
    while stack:
        src, dst, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise DocumentError(doc_id, path or "metadata",
                                f"nested deeper than {MAX_DEPTH} levels")
        items: Any = src.items() if isinstance(src, Mapping) else enumerate(src)
        for key, value in items:
            if isinstance(src, Mapping):
                if not isinstance(key, str):
                    raise DocumentError(doc_id, path or "metadata", f"keys must be strings, "
                                        f"got {type(key).__name__} {key!r}")
                if not is_valid_unicode(key):
                    raise DocumentError(doc_id, path or "metadata",
                                        f"key {key!a} " + _describe_bad_text(key))
                where = f"{path}.{key}" if path else key
            else:
                where = f"{path}[{key}]"
            out = _scalar(doc_id, where, value)
            if out is _CONTAINER:
                child: Any = {} if isinstance(value, Mapping) else []
                stack.append((value, child, where, depth + 1))
                out = child
            if isinstance(dst, dict):
                dst[key] = out
            else:
                dst.append(out)
    return root


_CONTAINER = object()


def _scalar(doc_id: str, where: str, value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        value = float(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DocumentError(doc_id, where, f"numbers must be finite, got {value!r}")
        return float(value)
    if isinstance(value, str):
        if not is_valid_unicode(value):
            raise DocumentError(doc_id, where, _describe_bad_text(value))
        return value
    if isinstance(value, Mapping | list | tuple):
        return _CONTAINER
    raise DocumentError(doc_id, where, f"{type(value).__name__} is not a JSON type (use str, "
                        "int, float, bool, null, list or object)")


def check_top_k(top_k: Any, name: str = "top_k") -> int:
    """An ``int`` >= 1; ``"5"``, ``5.0`` and ``True`` are refused, not coerced."""
    if isinstance(top_k, np.integer):
        top_k = int(top_k)
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise InputError(f"{name} must be an integer >= 1, got {type(top_k).__name__} "
                         f"{top_k!r}")
    if top_k < 1:
        raise InputError(f"{name} must be >= 1, got {top_k}")
    return top_k


def check_ids(doc_ids: Any, what: str = "doc_ids") -> list[str]:
    """A string or a sequence of strings, as a list; anything else is an ``InputError``."""
    if isinstance(doc_ids, str):
        return [doc_ids]
    if doc_ids is None or isinstance(doc_ids, bytes | Mapping) or not isinstance(
            doc_ids, Sequence | set | frozenset):
        raise InputError(f"{what} must be a string or a list of strings, got "
                         f"{type(doc_ids).__name__}")
    ids = list(doc_ids)
    for i, d in enumerate(ids):
        if not isinstance(d, str):
            raise InputError(f"{what}[{i}] must be a string, got {type(d).__name__} {d!r}")
    return ids
