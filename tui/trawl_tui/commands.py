"""Command palette (ctrl+p) entries for the main actions and quick pipeline switches."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .session import FUSION_METHODS

if TYPE_CHECKING:
    from .app import TrawlApp


class TrawlCommands(Provider):
    def _commands(self) -> list[tuple[str, str, Callable[[], object]]]:
        app: TrawlApp = self.app  # type: ignore[assignment]
        cmds: list[tuple[str, str, Callable[[], object]]] = [
            ("Pipeline: switch…", "Retrievers, fusion, reranker, top_k", app.action_pipeline),
            ("Index: stats and add folder", "Counts, disk size, ingest a folder",
             app.action_index_screen),
            ("Plugins: list", "Installed plugins and load errors", app.action_plugins_screen),
            ("Session: save", "Write history and pipeline choice as JSON",
             app.action_save_session),
            ("Session: load", "Read a saved session", app.action_load_session),
            ("History: show", "Earlier queries on this index", app.action_history),
            ("Index: open another…", "Pick from the index list", app.action_pick_index),
            ("Group by document: toggle", "One row per document",
             app.main.action_toggle_group),
            ("Help: keys", "Every key binding and its id", app.action_help),
        ]
        retrievers = app.retriever_names()
        if len(retrievers) > 1:
            cmds.append(("Retrievers: all (hybrid)", "Search with every retriever",
                         partial(app.set_retrievers, ())))
        for name in retrievers if len(retrievers) > 1 else []:
            cmds.append((f"Retrievers: only {name}", f"Search with {name} alone",
                         partial(app.set_retrievers, (name,))))
        if len(retrievers) > 1:
            own = app.info.fusion.method if app.info is not None else ""
            cmds.append((f"Fusion: pipeline's own ({own})", "Rank exactly like `trawl search`",
                         partial(app.set_fusion, None)))
            for method in FUSION_METHODS:
                cmds.append((f"Fusion: {method}", f"Fuse runs with {method}",
                             partial(app.set_fusion, method)))
        if app.has_reranker():
            cmds.append(("Reranker: on", "", partial(app.set_rerank, True)))
            cmds.append(("Reranker: off", "", partial(app.set_rerank, False)))
        for k in (5, 10, 20, 50):
            cmds.append((f"top_k: {k}", f"Show {k} hits", partial(app.set_top_k, k)))
        return cmds

    async def discover(self) -> Hits:
        for name, help_text, callback in self._commands():
            yield DiscoveryHit(name, callback, help=help_text or None)

    async def search(self, query: str) -> AsyncIterator[Hit]:
        matcher = self.matcher(query)
        for name, help_text, callback in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text or None)
