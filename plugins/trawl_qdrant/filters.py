"""trawl's filter grammar → Qdrant ``Filter`` (qdrant-client models or qdrant-edge classes).

The translation must agree with :func:`trawl.filters.matches`, the reference semantics,
and it runs *inside* the search (Qdrant evaluates it while scoring), never after top-k.
Both Qdrant APIs have the same vocabulary (``Filter(must/should/must_not)``,
``FieldCondition``, ``MatchValue``, ``MatchAny``, range, ``IsNull``, ``IsEmpty``), so one
translator builds either through a small :class:`Dialect`.

How trawl's semantics map (``key`` is ``metadata.<field>``):

* ``== s`` (string) → ``MatchValue(s)``. ``== n`` (number) → a closed range ``[n, n]``:
  Python says ``1 == 1.0`` and ``MatchValue`` would not match an integer against a float.
  Python also says ``True == 1``, so ``== 0/1`` also matches ``False/True`` and ``== True``
  also matches the number 1 (trawl's reference is Python's ``==``).
* ``!= v`` → ``must_not[== v]``: a missing field passes, a list passes when no element
  equals ``v`` (Qdrant matches a list condition when any element does — the same rule).
* ``in [..]`` → ``should`` of the equalities (strings grouped in one ``MatchAny``);
  ``not in`` → ``must_not`` of that. A list of more than ``SHORT_NUMBER_LIST`` numbers (an
  access list of numeric ids) is one ``MatchAny`` of its integers instead of a clause per
  value: Qdrant has no set lookup for floats, so there an integer in the list does not
  match a float payload equal to it (``3`` vs ``3.0``); booleans and non-integer floats
  still match as ``==`` does.
* ``> >= < <=`` with a number → ``Range``; with a string → ``DatetimeRange`` when the
  value is an ISO-8601 date/time (the only string ordering Qdrant has); any other string
  comparison raises :class:`~trawl.errors.FilterError` instead of silently differing.
* ``== null`` → ``IsNull`` (null, or a list holding null) or ``IsEmpty`` (missing, null or
  ``[]``). The one difference from the reference: Qdrant cannot tell an empty list from a
  missing field, so ``[]`` counts as null here (``matches`` says ``[] == null`` is false).
  ``!= null`` is the ``must_not`` of that.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trawl.errors import FilterError
from trawl.filters import And, Condition, Filter, Not, Or

PAYLOAD_METADATA = "metadata"
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def payload_key(field: str) -> str:
    """Qdrant JSON path of a metadata field: ``metadata.year``, ``metadata."my-field"``."""
    parts = field.split(".")
    quoted = [p if _PLAIN_KEY.match(p) else f'"{p}"' for p in parts]
    return ".".join([PAYLOAD_METADATA, *quoted])


def _iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return bool(re.match(r"^\d{4}-\d{2}-\d{2}", value))


@dataclass(frozen=True)
class Dialect:
    """Constructors of one Qdrant API's filter classes."""

    filter: Callable[..., Any]           # Filter(must=, should=, must_not=)
    match_value: Callable[[str, Any], Any]
    match_any: Callable[[str, list[Any]], Any]
    range: Callable[[str, dict[str, float]], Any]
    datetime_range: Callable[[str, dict[str, str]], Any]
    is_empty: Callable[[str], Any]
    is_null: Callable[[str], Any]


def client_dialect() -> Dialect:
    """qdrant-client ``models`` (local and server modes)."""
    from qdrant_client import models as m

    return Dialect(
        filter=lambda **kw: m.Filter(**kw),
        match_value=lambda k, v: m.FieldCondition(key=k, match=m.MatchValue(value=v)),
        match_any=lambda k, vs: m.FieldCondition(key=k, match=m.MatchAny(any=vs)),
        range=lambda k, r: m.FieldCondition(key=k, range=m.Range(**r)),
        datetime_range=lambda k, r: m.FieldCondition(key=k, range=m.DatetimeRange(**r)),
        is_empty=lambda k: m.IsEmptyCondition(is_empty=m.PayloadField(key=k)),
        is_null=lambda k: m.IsNullCondition(is_null=m.PayloadField(key=k)),
    )


def edge_dialect() -> Dialect:
    """qdrant-edge-py classes (edge mode)."""
    import numpy as np
    import qdrant_edge as e

    def match_value(key: str, value: Any) -> Any:
        # qdrant-edge-py 0.9.0 reads a Python bool as the integer 0/1 (so MatchValue(True)
        # would match the number 1, not true); numpy.bool_ reaches the engine as a bool.
        if isinstance(value, bool):
            value = np.bool_(value)
        return e.FieldCondition(key=key, match=e.MatchValue(value))

    return Dialect(
        filter=lambda **kw: e.Filter(**kw),
        match_value=match_value,
        match_any=lambda k, vs: e.FieldCondition(key=k, match=e.MatchAny(vs)),
        range=lambda k, r: e.FieldCondition(key=k, range=e.RangeFloat(**r)),
        datetime_range=lambda k, r: e.FieldCondition(key=k, range=e.RangeDateTime(**r)),
        is_empty=lambda k: e.IsEmptyCondition(k),
        is_null=lambda k: e.IsNullCondition(k),
    )


_RANGE_KEY = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}
#: ``in`` lists with more numbers than this are matched as a set (``_many_numbers``)
SHORT_NUMBER_LIST = 16


class Translator:
    """Builds a native filter from a parsed trawl filter."""

    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect

    def __call__(self, f: Filter | None) -> Any:
        if f is None:
            return None
        node = self._node(f)
        return node if _is_filter(node) else self.d.filter(must=[node])

    # -- tree ----------------------------------------------------------------------
    def _node(self, f: Filter) -> Any:
        if isinstance(f, And):
            return self.d.filter(must=[self._node(x) for x in f.all])
        if isinstance(f, Or):
            return self.d.filter(should=[self._node(x) for x in f.any])
        if isinstance(f, Not):
            return self.d.filter(must_not=[self._node(f.inner)])
        return self._condition(f)

    def _condition(self, c: Condition) -> Any:
        key = payload_key(c.field)
        if c.op == "==":
            return self._equals(key, c.value)
        if c.op == "!=":
            return self.d.filter(must_not=[self._equals(key, c.value)])
        if c.op == "in":
            return self._one_of(key, list(c.value))
        if c.op == "not in":
            return self.d.filter(must_not=[self._one_of(key, list(c.value))])
        bound = _RANGE_KEY[c.op]
        if isinstance(c.value, str):
            if not _iso_datetime(c.value):
                raise FilterError(
                    f"filter on {c.field!r}: the qdrant index compares strings with {c.op!r} "
                    f"only as ISO-8601 dates/times (e.g. 2024-05-01), got {c.value!r}")
            return self.d.datetime_range(key, {bound: c.value})
        return self.d.range(key, {bound: float(c.value)})

    def _equals(self, key: str, value: Any) -> Any:
        if value is None:  # null, a list holding null, or missing (IsEmpty: also [])
            return self.d.filter(should=[self.d.is_null(key), self.d.is_empty(key)])
        if isinstance(value, str):
            return self.d.match_value(key, value)
        if isinstance(value, bool):
            return self.d.filter(should=[self.d.match_value(key, value),
                                         self.d.range(key, {"gte": float(value),
                                                            "lte": float(value)})])
        number = float(value)
        point = self.d.range(key, {"gte": number, "lte": number})
        if number in (0.0, 1.0):
            return self.d.filter(should=[point, self.d.match_value(key, bool(number))])
        return point

    def _one_of(self, key: str, values: list[Any]) -> Any:
        strings = [v for v in values if isinstance(v, str)]
        others = [v for v in values if not isinstance(v, str)]
        parts = [self.d.match_any(key, strings)] if strings else []
        if len(others) > SHORT_NUMBER_LIST:
            parts += self._many_numbers(key, others)
        else:
            parts += [self._equals(key, v) for v in others]
        return parts[0] if len(parts) == 1 else self.d.filter(should=parts)

    def _many_numbers(self, key: str, values: list[Any]) -> list[Any]:
        """A long list of numbers (an access list of numeric ids) as set lookups: one
        ``MatchAny`` of the integers, a ``MatchValue`` per boolean that ``True == 1``
        brings in, and a point range only for non-integer floats. One clause per value
        made a 10k-value list take minutes on qdrant-edge."""
        integers: set[int] = set()
        flags: set[bool] = set()
        ranges: list[Any] = []
        for v in values:
            if isinstance(v, bool) or v in (0, 1):
                flags.add(bool(v))
                integers.add(int(v))
            elif isinstance(v, int) or float(v).is_integer():
                integers.add(int(v))
            else:
                ranges.append(self.d.range(key, {"gte": float(v), "lte": float(v)}))
        parts = [self.d.match_any(key, sorted(integers))] if integers else []
        parts += [self.d.match_value(key, flag) for flag in sorted(flags)]
        return parts + ranges


def _is_filter(node: Any) -> bool:
    return type(node).__name__ == "Filter"
