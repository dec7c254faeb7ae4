"""trawl built-in plugin: qdrant (filled by its issue)."""
