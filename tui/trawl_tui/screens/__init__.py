"""Screens of the trawl TUI."""

from .detail import DetailScreen
from .dialogs import (
    ChoiceScreen,
    ConfirmScreen,
    CopyMenu,
    HistoryScreen,
    OpenFailedScreen,
    PathPrompt,
)
from .help import HelpScreen
from .index import IndexScreen
from .main import MainScreen
from .picker import IndexPicker
from .pipeline import PipelineScreen
from .plugins import PluginsScreen

__all__ = ["ChoiceScreen", "ConfirmScreen", "CopyMenu", "DetailScreen", "HelpScreen", "HistoryScreen",
           "IndexPicker", "IndexScreen", "MainScreen", "OpenFailedScreen", "PathPrompt",
           "PipelineScreen", "PluginsScreen"]
