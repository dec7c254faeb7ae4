"""trawl built-in plugin: bm25 (filled by its issue)."""
