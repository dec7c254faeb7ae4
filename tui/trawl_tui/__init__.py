"""trawl terminal UI (Textual)."""
