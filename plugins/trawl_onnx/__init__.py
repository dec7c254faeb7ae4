"""trawl built-in plugin: onnx (filled by its issue)."""
