"""The filter bar: the CLI's ``--where`` syntax, completing the index's metadata fields."""

from __future__ import annotations

import re
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.suggester import Suggester
from textual.widgets import Input

_OPERATOR = re.compile(r"(==|!=|>=|<=|=|>|<)")


class FieldSuggester(Suggester):
    """Completes the last expression: a field name, then one of the values seen for it."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)
        self.fields: dict[str, list[str]] = {}

    async def get_suggestion(self, value: str) -> str | None:
        if not value or value.endswith(" "):
            return None
        head, _, last = value.rpartition(" ")
        prefix = f"{head} " if head else ""
        match = _OPERATOR.search(last)
        if match is None:
            for name in self.fields:
                if name.startswith(last) and name != last:
                    return prefix + name
            return None
        name, typed = last[:match.start()], last[match.end():]
        for candidate in self.fields.get(name, []):
            if candidate.startswith(typed) and candidate != typed and " " not in candidate:
                return prefix + last[:match.end()] + candidate
        return None


class FilterBar(Input):
    """``year>=2020 lang=en``; enter applies, right arrow or tab accepts a completion."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "accept_or_next", "Complete", show=False, id="filter-complete"),
    ]
    DEFAULT_CSS = """
    FilterBar, FilterBar:focus { height: 1; padding: 0 1; background: $boost; }
    FilterBar.-invalid { color: $error; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        self.field_suggester = FieldSuggester()
        super().__init__(placeholder="filter (ctrl+l): year>=2020 lang=en · tab completes fields",
                         id=id, suggester=self.field_suggester, select_on_focus=False,
                         compact=True)

    def set_fields(self, fields: dict[str, list[str]]) -> None:
        self.field_suggester.fields = dict(fields)

    def action_accept_or_next(self) -> None:
        suggestion = getattr(self, "_suggestion", "")
        if suggestion and suggestion != self.value:
            self.value = suggestion
            self.cursor_position = len(suggestion)
        else:
            self.screen.focus_next()
