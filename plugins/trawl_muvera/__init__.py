"""trawl built-in plugin: MUVERA fixed dimensional encodings (pure numpy).

Registers the ``muvera`` multi-vector transform. The module is imported only when a
pipeline builds the transform (lazy string registration).
"""

from __future__ import annotations

from typing import Any

import trawl


@trawl.hookimpl
def register_multivector_transforms(register: Any) -> None:
    register("trawl_muvera.fde:MuveraTransform", name="muvera", aliases=("fde",))
