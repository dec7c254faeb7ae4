"""trawl-code: source files as chunks along the syntax tree (tree-sitter).

Functions, methods and classes become chunks carrying ``language``, ``symbol``
(``module.Class.method``) and their line range; the file path and symbol path are the
header encoders see. Without the ``code`` extra, or for a language it has no grammar
for, source files are still read: as line windows, with the file path as the header.
"""

from __future__ import annotations

from typing import Any

import trawl


@trawl.hookimpl
def register_readers(register: Any) -> None:
    register("trawl_code.reader:CodeReader", name="code", aliases=("source",))
