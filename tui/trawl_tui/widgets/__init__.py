"""Widgets of the trawl TUI."""

from .filter_bar import FilterBar
from .preview import PreviewPane
from .results import ResultsList
from .search_input import SearchInput
from .status import StatusBar

__all__ = ["FilterBar", "PreviewPane", "ResultsList", "SearchInput", "StatusBar"]
