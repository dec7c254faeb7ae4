"""Minimal retrieval-augmented generation with trawl.

Index a folder, retrieve cited passages for a question within a token budget, build a
prompt and hand it to any callable LLM (``str -> str``). With no LLM configured the
prompt is printed, so this runs anywhere without keys or network.

    python examples/rag_minimal.py                                   # examples/corpus, bm25
    python examples/rag_minimal.py ~/notes -q "what did we decide about caching?"
    python examples/rag_minimal.py --pipeline hybrid --index ./.trawl/notes
    TRAWL_LLM=mypackage.llm:complete python examples/rag_minimal.py  # your own callable

``TRAWL_LLM`` names ``module:function``; the function receives the prompt and returns the
answer (wrap the OpenAI/Anthropic/llama.cpp client of your choice in three lines).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from trawl import Trawl
from trawl.ingest import index_paths

HERE = Path(__file__).resolve().parent

PROMPT = """Answer the question using only the numbered sources below. Cite them like [1].
If the sources do not contain the answer, say so.

Sources:
{context}

Question: {question}
Answer:"""


def build_prompt(t: Trawl, question: str, *, max_tokens: int = 1200, top_k: int = 6) -> str:
    """The prompt for ``question``: numbered, cited passages within ``max_tokens``."""
    ctx = t.context(question, max_tokens=max_tokens, top_k=top_k)
    return PROMPT.format(context=ctx.text or "(no matching sources)", question=question)


def answer(t: Trawl, question: str, llm: Callable[[str], str] | None = None, **kw: int) -> str:
    """Ask ``llm`` with retrieved context; without an LLM, return the prompt itself."""
    prompt = build_prompt(t, question, **kw)
    return prompt if llm is None else llm(prompt)


def llm_from_env() -> Callable[[str], str] | None:
    spec = os.environ.get("TRAWL_LLM")
    if not spec:
        return None
    module, _, attr = spec.partition(":")
    fn = getattr(importlib.import_module(module), attr or "complete")
    if not callable(fn):
        raise SystemExit(f"TRAWL_LLM={spec!r} is not callable")
    return fn  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", nargs="?", default=str(HERE / "corpus"),
                    help="files or folder to index (default: examples/corpus)")
    ap.add_argument("-q", "--question", default="How does reciprocal rank fusion combine "
                    "BM25 and dense retrieval results?")
    ap.add_argument("--pipeline", default="bm25",
                    help="pipeline preset or TOML (bm25 needs no model; try hybrid)")
    ap.add_argument("--index", default=None,
                    help="index folder to keep between runs (default: in memory)")
    ap.add_argument("--max-tokens", type=int, default=1200, help="context budget in tokens")
    args = ap.parse_args(argv)

    t = (Trawl.open(args.index, pipeline=args.pipeline, show_progress=False) if args.index
         else Trawl.memory(args.pipeline))
    with t:
        report = index_paths(t, [args.folder], show_progress=sys.stderr.isatty())
        print(f"# {report.summary().splitlines()[0]}", file=sys.stderr)
        llm = llm_from_env()
        if llm is None:
            print("# no LLM configured (set TRAWL_LLM=module:function); the prompt is:\n",
                  file=sys.stderr)
        print(answer(t, args.question, llm, max_tokens=args.max_tokens))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
