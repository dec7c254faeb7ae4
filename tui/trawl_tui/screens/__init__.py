"""Screens of the trawl TUI."""

from .detail import DetailScreen
from .dialogs import HistoryScreen, PathPrompt
from .help import HelpScreen
from .index import IndexScreen
from .main import MainScreen
from .pipeline import PipelineScreen
from .plugins import PluginsScreen

__all__ = ["DetailScreen", "HelpScreen", "HistoryScreen", "IndexScreen", "MainScreen",
           "PathPrompt", "PipelineScreen", "PluginsScreen"]
