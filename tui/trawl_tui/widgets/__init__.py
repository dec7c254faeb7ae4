"""Widgets of the trawl TUI."""

from .results import ResultsList
from .search_input import SearchInput
from .status import StatusBar

__all__ = ["ResultsList", "SearchInput", "StatusBar"]
