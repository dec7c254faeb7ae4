"""trawl built-in plugin: muvera (filled by its issue)."""
