"""trawl's filter grammar as a boolean mask over index rows, vectorised per field.

Each field a filter names gets a column, built once from the chunks' metadata and
extended as rows are appended: a kind code per row (missing/None, bool, number, string,
other), the numeric value as float64 and strings as dictionary codes. Conditions on
missing/bool/number/string rows become numpy comparisons; rows holding anything else
(lists, dicts, ints beyond 2**53, ...) are decided by ``trawl.filters.matches`` itself,
row by row. The tests check the mask against ``matches`` on every row.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from trawl.filters import And, Condition, Filter, Not, Or, matches

BoolArray = npt.NDArray[np.bool_]

MISSING, BOOL, NUMBER, STRING, OTHER = 0, 1, 2, 3, 4
_EXACT_INT = 2**53  # ints beyond this are not exact as float64: left to ``matches``

_RANGE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


_PLAIN = frozenset((str, int, float, bool, list, tuple, type(None)))


def is_mapping(value: Any) -> bool:
    """``isinstance(value, Mapping)`` without the slow ABC check for plain JSON values."""
    t = type(value)
    return t is dict or (t not in _PLAIN and isinstance(value, Mapping))


def lookup(metadata: Mapping[str, Any], field: str) -> Any:
    """A field's value: the literal key first, then a dotted path (as ``trawl.filters``)."""
    if field in metadata:
        return metadata[field]
    node: Any = metadata
    for part in field.split("."):
        if not is_mapping(node) or part not in node:
            return None
        node = node[part]
    return node


def _kind(value: Any) -> int:
    if value is None:
        return MISSING
    t = type(value)
    if t is bool:
        return BOOL
    if t is int:
        return NUMBER if -_EXACT_INT <= value <= _EXACT_INT else OTHER
    if t is float:
        return NUMBER
    if t is str:
        return STRING
    return OTHER


class Column:
    """One field's values over rows ``[0, n)``."""

    def __init__(self, field: str) -> None:
        self.field = field
        self.n = 0
        self.kind = np.zeros(0, dtype=np.int8)
        self.num = np.zeros(0, dtype=np.float64)
        self.code = np.zeros(0, dtype=np.int32)
        self.strings: list[str] = []
        self._codes: dict[str, int] = {}
        self.other_rows = np.zeros(0, dtype=np.int64)

    def extend(self, metas: Sequence[Mapping[str, Any] | None]) -> None:
        m = len(metas)
        kind = np.zeros(m, dtype=np.int8)
        num = np.full(m, np.nan)
        code = np.full(m, -1, dtype=np.int32)
        other: list[int] = []
        codes = self._codes
        for i, meta in enumerate(metas):
            if meta is None:  # a deleted row: never returned, any value will do
                continue
            value = lookup(meta, self.field)
            k = _kind(value)
            kind[i] = k
            if k == NUMBER or k == BOOL:
                num[i] = float(value)
            elif k == STRING:
                c = codes.get(value)
                if c is None:
                    c = codes[value] = len(self.strings)
                    self.strings.append(value)
                code[i] = c
            elif k == OTHER:
                other.append(self.n + i)
        self.kind = np.concatenate([self.kind, kind])
        self.num = np.concatenate([self.num, num])
        self.code = np.concatenate([self.code, code])
        if other:
            self.other_rows = np.concatenate([self.other_rows, np.asarray(other, np.int64)])
        self.n += m

    # -- one condition on the simple rows (OTHER rows are overwritten afterwards) --------
    def _equal(self, value: Any) -> BoolArray | None:
        """Rows whose value ``== value`` in Python; ``None`` where numpy cannot say exactly."""
        if value is None:
            return self.kind == MISSING
        t = type(value)
        if t is str:
            c = self._codes.get(value)
            return np.zeros(self.n, bool) if c is None else (self.code == c)
        if t is bool or t is int or t is float:
            if t is int and not -_EXACT_INT <= value <= _EXACT_INT:
                return None
            if t is float and math.isnan(value):
                return np.zeros(self.n, bool)  # nan == x is False for every x
            return ((self.kind == NUMBER) | (self.kind == BOOL)) & (self.num == float(value))
        return None

    def _one_of(self, values: Sequence[Any]) -> BoolArray | None:
        """Rows equal to any of ``values``: one ``np.isin`` over string codes and one over
        numbers (an access list of 100k ids costs two set lookups per row, not 100k
        comparisons); ``None`` where numpy cannot say exactly."""
        codes: list[int] = []
        numbers: list[float] = []
        for item in values:
            t = type(item)
            if t is str:
                c = self._codes.get(item)
                if c is not None:
                    codes.append(c)
            elif t is bool or t is int or t is float:
                if t is int and not -_EXACT_INT <= item <= _EXACT_INT:
                    return None
                if t is float and math.isnan(item):
                    continue  # nan equals nothing
                numbers.append(float(item))
            else:
                return None
        acc = np.zeros(self.n, bool)
        if codes:
            acc |= np.isin(self.code, np.asarray(codes, np.int32))
        if numbers:
            acc |= ((self.kind == NUMBER) | (self.kind == BOOL)) & np.isin(self.num, numbers)
        return acc

    def condition(self, cond: Condition, metas: Sequence[Mapping[str, Any] | None]) -> BoolArray:
        mask = self._simple(cond)
        if mask is None:  # fall back to the reference semantics on every row
            return np.fromiter((m is not None and matches(cond, m) for m in metas),
                               dtype=bool, count=self.n)
        for row in self.other_rows.tolist():
            meta = metas[row]
            mask[row] = meta is not None and matches(cond, meta)
        return mask

    def _simple(self, cond: Condition) -> BoolArray | None:
        op, value = cond.op, cond.value
        if op in ("==", "!="):
            eq = self._equal(value)
            if eq is None:
                return None
            return eq if op == "==" else ~eq
        if op in ("in", "not in"):
            acc = self._one_of(value)
            if acc is None:
                return None
            return acc if op == "in" else ~acc
        compare = _RANGE_OPS[op]
        if isinstance(value, str):
            hits = [c for c, s in enumerate(self.strings) if compare(s, value)]
            return (self.kind == STRING) & np.isin(self.code, np.asarray(hits, np.int32))
        if type(value) is int and not -_EXACT_INT <= value <= _EXACT_INT:
            return None
        with np.errstate(invalid="ignore"):
            return (self.kind == NUMBER) & compare(self.num, float(value))


class FilterColumns:
    """Columns for the fields filters use, built lazily and kept in step with appended rows."""

    def __init__(self) -> None:
        self._columns: dict[str, Column] = {}

    def reset(self) -> None:
        """Forget every column (rows were renumbered)."""
        self._columns.clear()

    def mask(self, f: Filter, metas: Sequence[Mapping[str, Any] | None]) -> BoolArray:
        """Rows (of ``metas``, ``None`` for deleted rows) that pass ``f``."""
        if isinstance(f, Condition):
            col = self._columns.get(f.field)
            if col is None:
                col = self._columns[f.field] = Column(f.field)
            if col.n < len(metas):
                col.extend(metas[col.n:])
            return col.condition(f, metas)
        if isinstance(f, And):
            out = self.mask(f.all[0], metas)
            for sub in f.all[1:]:
                out &= self.mask(sub, metas)
            return out
        if isinstance(f, Or):
            out = self.mask(f.any[0], metas)
            for sub in f.any[1:]:
                out |= self.mask(sub, metas)
            return out
        assert isinstance(f, Not)
        return ~self.mask(f.inner, metas)
