"""One metadata filter grammar for every index.

A filter is JSON-shaped::

    {"field": "year", "op": ">=", "value": 2020}
    {"and": [F, F, ...]}   {"or": [F, ...]}   {"not": F}
    {"lang": "en", "year": 2020}            # shorthand: AND of equalities

Index plugins translate the parsed tree into their native filter (Qdrant ``Filter``,
a boolean mask for BM25) and apply it *inside* the search, never after top-k.
``matches`` is the reference semantics every translation must agree with.
Hand-written because it is the contract between core and every backend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict

from .errors import FilterError, FilterTooLargeError

Op = Literal["==", "!=", ">", ">=", "<", "<=", "in", "not in"]
OPERATORS: tuple[str, ...] = ("==", "!=", ">", ">=", "<", "<=", "in", "not in")
_OP_ALIASES = {
    "=": "==", "eq": "==", "ne": "!=", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
    "nin": "not in", "not_in": "not in",
}
_FIELD_RE = re.compile(r"^[A-Za-z_][\w.\-]*$")
Scalar: TypeAlias = str | int | float | bool
#: Values one ``in``/``not in`` list may hold (an access list of document ids): every index
#: answers 100k in well under a second (set membership, not one clause per value); a longer
#: list is a ``FilterTooLargeError``.
MAX_IN_VALUES = 100_000


class Condition(BaseModel):
    model_config = ConfigDict(frozen=True)
    field: str
    op: Op
    value: Any


class And(BaseModel):
    model_config = ConfigDict(frozen=True)
    all: tuple[Filter, ...]


class Or(BaseModel):
    model_config = ConfigDict(frozen=True)
    any: tuple[Filter, ...]


class Not(BaseModel):
    model_config = ConfigDict(frozen=True)
    inner: Filter


Filter: TypeAlias = Condition | And | Or | Not


def is_iso_datetime(value: str) -> bool:
    """Whether ``value`` is an ISO-8601 date or date-time (``2024-05-01``, ``...T10:00Z``)."""
    if not re.match(r"^\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


@lru_cache(maxsize=256)
def iso_to_epoch(value: str) -> float | None:
    """An ISO-8601 date or date-time as Unix epoch seconds (``None`` if ``value`` is not
    one); a value without a zone is UTC, as Qdrant reads date strings. ``mtime`` is stored
    as epoch seconds, so ``mtime>=2026-12-01`` compares with this number."""
    if not is_iso_datetime(value):
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def expand_dates(f: Filter | None) -> Filter | None:
    """The filter an index is handed: each range on an ISO date/time becomes "the string
    range OR the same range on epoch seconds", so a field stored as an ISO string and one
    stored as an epoch number (``mtime``) both filter as dates, on every index, with no date
    logic in any index plugin. ``matches`` gives the same answer for both forms."""
    if f is None:
        return None
    if isinstance(f, Condition):
        ranged = f.op in (">", ">=", "<", "<=") and isinstance(f.value, str)
        epoch = iso_to_epoch(f.value) if ranged else None
        if epoch is None:
            return f
        return Or(any=(f, Condition(field=f.field, op=f.op, value=epoch)))
    if isinstance(f, And):
        return And(all=tuple(_required(expand_dates(x)) for x in f.all))
    if isinstance(f, Or):
        return Or(any=tuple(_required(expand_dates(x)) for x in f.any))
    return Not(inner=_required(expand_dates(f.inner)))


def _check_value(field: str, op: str, value: Any) -> Any:
    for item in value if isinstance(value, list | tuple) else (value,):
        if isinstance(item, float) and not math.isfinite(item):
            raise FilterError(f"filter on {field!r}: values must be finite numbers, got {item!r}")
    if op in ("in", "not in"):
        if not isinstance(value, list | tuple) or not value:
            raise FilterError(f"filter on {field!r}: operator {op!r} needs a non-empty list value")
        if len(value) > MAX_IN_VALUES:
            raise FilterTooLargeError(field, len(value), MAX_IN_VALUES)
        for item in value:
            if not isinstance(item, Scalar):
                raise FilterError(f"filter on {field!r}: list items must be str/int/float/bool")
        return tuple(value)
    if op in (">", ">=", "<", "<="):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise FilterError(f"filter on {field!r}: operator {op!r} needs a number or string")
        if isinstance(value, str) and not is_iso_datetime(value):
            # the one string ordering every index has (Qdrant's DatetimeRange): held here so
            # that no index accepts a filter another one rejects
            raise FilterError(f"filter on {field!r}: {op!r} compares strings only as "
                              f"ISO-8601 dates/times (e.g. 2024-05-01), got {value!r}")
        return value
    if not isinstance(value, Scalar) and value is not None:
        raise FilterError(f"filter on {field!r}: value must be str/int/float/bool/null, got "
                          f"{type(value).__name__}")
    return value


MAX_DEPTH = 64


def parse_filter(obj: Any, _depth: int = 1) -> Filter | None:
    """Parse a JSON-shaped filter (or an already parsed one); ``None``/``{}`` means no filter.

    Nesting is limited to ``MAX_DEPTH`` levels of ``and``/``or``/``not``, so a hostile
    filter is a ``FilterError`` rather than a ``RecursionError``.
    """
    if _depth > MAX_DEPTH:
        raise FilterError(f"filter nested deeper than {MAX_DEPTH} levels")
    if obj is None:
        return None
    if isinstance(obj, Condition | And | Or | Not):
        if _parsed_depth(obj) > MAX_DEPTH:
            raise FilterError(f"filter nested deeper than {MAX_DEPTH} levels")
        return obj
    if not isinstance(obj, Mapping):
        raise FilterError(f"a filter must be a JSON object, got {type(obj).__name__}")
    if not obj:
        return None
    keys = set(obj)
    if keys == {"and"} or keys == {"or"}:
        (key,) = keys
        items = obj[key]
        if not isinstance(items, list | tuple) or not items:
            raise FilterError(f"{key!r} needs a non-empty list of filters")
        parsed = tuple(_required(parse_filter(item, _depth + 1)) for item in items)
        return And(all=parsed) if key == "and" else Or(any=parsed)
    if keys == {"not"}:
        return Not(inner=_required(parse_filter(obj["not"], _depth + 1)))
    if "field" in keys:
        unknown = keys - {"field", "op", "operator", "value"}
        if unknown:
            raise FilterError(f"unknown filter key(s) {sorted(unknown)}; "
                              "a condition has 'field', 'op' and 'value'")
        field = obj["field"]
        if not isinstance(field, str) or not _FIELD_RE.match(field):
            raise FilterError(f"invalid filter field name {field!r}")
        raw_op = obj.get("op", obj.get("operator", "=="))
        op = _OP_ALIASES.get(str(raw_op).lower(), str(raw_op).lower())
        if op not in OPERATORS:
            raise FilterError(f"unknown filter operator {raw_op!r} on field {field!r}; "
                              f"known: {', '.join(OPERATORS)}")
        if "value" not in obj:
            raise FilterError(f"filter on {field!r} has no 'value'")
        return Condition(field=field, op=op, value=_check_value(field, op, obj["value"]))
    if keys & {"and", "or", "not"}:
        raise FilterError(f"'and'/'or'/'not' must be the only key of their object, got {sorted(keys)}")
    conditions = []
    for field, value in obj.items():
        if not isinstance(field, str) or not _FIELD_RE.match(field):
            raise FilterError(f"invalid filter field name {field!r}")
        op = "in" if isinstance(value, list | tuple) else "=="
        conditions.append(Condition(field=field, op=op, value=_check_value(field, op, value)))
    return conditions[0] if len(conditions) == 1 else And(all=tuple(conditions))


def parse_where(expressions: list[str]) -> Filter | None:
    """Parse CLI ``--where`` expressions such as ``year>=2020`` or ``lang=en``, AND-ed together."""
    conditions: list[Filter] = []
    pattern = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(==|!=|>=|<=|=|>|<)\s*(.*?)\s*$")
    for expr in expressions:
        m = pattern.match(expr)
        if not m:
            raise FilterError(f"cannot parse filter {expr!r}; expected FIELD OP VALUE, e.g. year>=2020")
        field, op, raw = m.groups()
        if not raw:
            raise FilterError(f"filter {expr!r} has no value after {op!r}; expected FIELD OP "
                              "VALUE, e.g. year>=2020")
        value: Any = raw
        for cast in (int, float):
            try:
                value = cast(raw)
                break
            except ValueError:
                continue
        if isinstance(value, float) and not math.isfinite(value):
            raise FilterError(f"filter {expr!r}: {raw!r} is not a finite number (use --filter "
                              "JSON to compare with the string)")
        if raw in ("true", "false"):
            value = raw == "true"
        parsed = parse_filter({"field": field, "op": op, "value": value})
        assert parsed is not None
        conditions.append(parsed)
    if not conditions:
        return None
    return conditions[0] if len(conditions) == 1 else And(all=tuple(conditions))


def _parsed_depth(f: Filter) -> int:
    """Nesting depth of an already parsed filter, without recursion."""
    deepest = 0
    stack: list[tuple[Filter, int]] = [(f, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        if isinstance(node, And):
            stack.extend((x, depth + 1) for x in node.all)
        elif isinstance(node, Or):
            stack.extend((x, depth + 1) for x in node.any)
        elif isinstance(node, Not):
            stack.append((node.inner, depth + 1))
    return deepest


def _required(f: Filter | None) -> Filter:
    if f is None:
        raise FilterError("empty filter inside 'and'/'or'/'not'")
    return f


def filter_fields(f: Filter | None) -> set[str]:
    """All field names a filter mentions (indexes use it to reject unknown fields)."""
    if f is None:
        return set()
    if isinstance(f, Condition):
        return {f.field}
    if isinstance(f, And):
        return set().union(*(filter_fields(x) for x in f.all))
    if isinstance(f, Or):
        return set().union(*(filter_fields(x) for x in f.any))
    return filter_fields(f.inner)


def _lookup(metadata: Mapping[str, Any], field: str) -> Any:
    if field in metadata:
        return metadata[field]
    node: Any = metadata
    for part in field.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _compare(actual: Any, op: str, value: Any) -> bool:
    if isinstance(actual, list | tuple):  # list-valued metadata matches if any element does
        if op in ("!=", "not in"):
            return all(_compare(a, op, value) for a in actual)
        return any(_compare(a, op, value) for a in actual)
    if op == "==":
        return bool(actual == value)
    if op == "!=":
        return bool(actual != value)
    if op == "in":
        return actual in value
    if op == "not in":
        return actual not in value
    if isinstance(actual, bool) or not isinstance(actual, int | float | str):
        return False  # ranges compare numbers or strings only (not None, dicts, ...)
    if isinstance(value, str) and not isinstance(actual, str):
        epoch = iso_to_epoch(value)  # a date against an epoch number (``mtime``)
        if epoch is None:
            return False
        value = epoch
    if isinstance(value, str) != isinstance(actual, str):
        return False
    if op == ">":
        return bool(actual > value)
    if op == ">=":
        return bool(actual >= value)
    if op == "<":
        return bool(actual < value)
    return bool(actual <= value)


def matches(f: Filter | None, metadata: Mapping[str, Any]) -> bool:
    """Reference semantics: does a chunk with this metadata pass the filter?

    A missing field never satisfies ``==``, ``in`` or a range, and always satisfies ``!=``
    and ``not in``. A list-valued field matches ``==``/``in``/ranges if any element does.
    A range on an ISO date/time compares ISO strings as dates and numbers as Unix epoch
    seconds (naive = UTC).
    """
    if f is None:
        return True
    if isinstance(f, Condition):
        return _compare(_lookup(metadata, f.field), f.op, f.value)
    if isinstance(f, And):
        return all(matches(x, metadata) for x in f.all)
    if isinstance(f, Or):
        return any(matches(x, metadata) for x in f.any)
    return not matches(f.inner, metadata)


def compile_filter(f: Filter | None) -> Callable[[Mapping[str, Any]], bool]:
    """``matches`` as a function of the metadata, for filtering many rows: the tree is
    walked once, and the values of ``in``/``not in`` become a hashed set, so a 10k-value
    access list costs one lookup per row instead of 10k comparisons. Same answers as
    ``matches``: for str/int/float/bool, equal values hash alike (``1 == 1.0 == True``)."""
    if f is None:
        return lambda metadata: True
    if isinstance(f, Condition):
        field, op, value = f.field, f.op, f.value
        if op in ("in", "not in"):
            members = frozenset(value)
            wanted = op == "in"

            def test(actual: Any) -> bool:  # ``_compare(actual, op, value)``
                if isinstance(actual, list | tuple):
                    found = (test(a) for a in actual)
                    return any(found) if wanted else all(found)
                try:
                    inside = actual in members
                except TypeError:  # unhashable (a dict): equal to no scalar
                    inside = False
                return inside == wanted

            def member(metadata: Mapping[str, Any]) -> bool:
                return test(_lookup(metadata, field))

            return member
        return lambda metadata: _compare(_lookup(metadata, field), op, value)
    if isinstance(f, And):
        parts = [compile_filter(x) for x in f.all]
        return lambda metadata: all(p(metadata) for p in parts)
    if isinstance(f, Or):
        parts = [compile_filter(x) for x in f.any]
        return lambda metadata: any(p(metadata) for p in parts)
    inner = compile_filter(f.inner)
    return lambda metadata: not inner(metadata)


def to_json(f: Filter | None) -> Any:
    """The JSON-shaped form of a parsed filter (round-trips through ``parse_filter``)."""
    if f is None:
        return None
    if isinstance(f, Condition):
        value = list(f.value) if isinstance(f.value, tuple) else f.value
        return {"field": f.field, "op": f.op, "value": value}
    if isinstance(f, And):
        return {"and": [to_json(x) for x in f.all]}
    if isinstance(f, Or):
        return {"or": [to_json(x) for x in f.any]}
    return {"not": to_json(f.inner)}
