"""The filter bar: the CLI's ``--where`` syntax, completing the index's metadata fields."""

from __future__ import annotations

import re
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.suggester import Suggester

from .safe_input import SafeInput

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


class FilterBar(SafeInput):
    """``year>=2020 lang=en``; enter applies what is shown (the completion too), right arrow
    or tab accepts a completion. Text that differs from the applied filter is *pending*:
    drawn differently (``-pending``) and named in the status bar until enter or escape."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "accept_or_next", "Complete", show=False, id="filter-complete"),
    ]
    DEFAULT_CSS = """
    FilterBar, FilterBar:focus { height: 1; padding: 0 1; background: $boost; }
    FilterBar.-invalid { color: $error; }
    FilterBar.-pending { background: $warning 30%; text-style: italic; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        self.field_suggester = FieldSuggester()
        super().__init__(placeholder="filter (ctrl+l): year>=2020 lang=en · tab completes",
                         id=id, suggester=self.field_suggester, select_on_focus=False,
                         compact=True)

    def set_fields(self, fields: dict[str, list[str]]) -> None:
        self.field_suggester.fields = dict(fields)

    def accept_suggestion(self) -> bool:
        suggestion = self._suggestion
        if suggestion and suggestion != self.value and suggestion.startswith(self.value):
            self.value = suggestion
            self.cursor_position = len(suggestion)
            return True
        return False

    def action_accept_or_next(self) -> None:
        if not self.accept_suggestion():
            self.screen.focus_next()

    async def action_submit(self) -> None:
        """Enter applies what the bar shows, the greyed completion included."""
        self.accept_suggestion()
        await super().action_submit()

    def known_field(self, name: str) -> bool:
        """Whether the sampled metadata has ``name`` (or, for ``a.b``, its top key ``a``)."""
        fields = self.field_suggester.fields
        return name in fields or name.split(".", 1)[0] in fields
