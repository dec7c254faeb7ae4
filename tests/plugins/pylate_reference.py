"""PyLate's side of the ColBERT parity test, run in a child interpreter.

PyLate pins the sentence-transformers and transformers it runs with, so it may live in
another environment than trawl's tests (``TRAWL_PYLATE_PYTHON``); this script builds the
checkpoints with PyLate there and writes PyLate's vectors as ``.npy`` files.

    python pylate_reference.py OUT_DIR TEXTS_JSON

Exit status 3: PyLate cannot run in this interpreter (the test then skips, saying why).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # checkpoints are local folders


def main() -> int:
    out, texts_file = Path(sys.argv[1]), Path(sys.argv[2])
    texts = json.loads(texts_file.read_text(encoding="utf-8"))
    try:
        import numpy as np
        from pylate import models
    except Exception as exc:
        print(f"pylate unusable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    import tiny_checkpoints as tiny

    base = tiny.tiny_bert(out / "base")
    cases = {
        # PyLate's defaults: [Q] / [D] markers added to the vocabulary, expansion to 12
        "pylate": dict(embedding_size=16, query_length=12, document_length=20),
        # no expansion, attention on the markers only, a custom skiplist
        "pylate-noexp": dict(embedding_size=8, query_length=10, document_length=16,
                             do_query_expansion=False, skiplist_words=[",", ".", "the"]),
        # expansion tokens attended to (ColBERTv2's attend_to_mask_tokens)
        "pylate-attend": dict(embedding_size=8, query_length=14, document_length=24,
                              attend_to_expansion_tokens=True),
    }
    try:
        for name, kwargs in cases.items():
            model = models.ColBERT(str(base), device="cpu", **kwargs)
            model.save(str(out / name))
        stanford = tiny.stanford_colbert(out / "stanford")
        cases["stanford"] = {}
        for name in cases:
            model = models.ColBERT(str(out / name if name != "stanford" else stanford),
                                   device="cpu")
            for is_query, side in ((True, "queries"), (False, "documents")):
                vecs = model.encode(texts, is_query=is_query, batch_size=4,
                                    convert_to_numpy=True)
                np.savez(out / f"{name}-{side}.npz", *[np.asarray(v, np.float32) for v in vecs])
    except Exception as exc:
        import traceback

        traceback.print_exc()
        print(f"pylate unusable: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
