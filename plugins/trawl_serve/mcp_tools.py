"""The MCP face of an index: tools ``search`` and ``context`` for LLM agents.

Built on any ``trawl.IndexClient``: the served ``Trawl`` inside ``trawl serve``, or a
``RemoteTrawl`` when ``trawl mcp`` attaches to a running server. Each tool returns the
passages as text the model can read and cite, plus the hits as structured content.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from trawl import Hit, IndexClient, TrawlError
from trawl.wire import MAX_CONTEXT_TOKENS, MAX_QUERY_CHARS, MAX_TOP_K

INSTRUCTIONS = (
    "Search a local document index (trawl). Use `search` to find passages and see where "
    "they come from; use `context` to get a ready-to-quote block of numbered passages "
    "within a token budget. Cite passages by their [n] number and source.")

SEARCH_DESCRIPTION = """Find passages in the indexed documents that answer a question.

Write the query as a natural-language question or a few keywords; exact names, codes
and rare words are matched literally, paraphrases by meaning. Returns the best passages,
numbered [1], [2], ... with their title, source (file path or URL) and score, most
relevant first. Quote and cite passages by number and source; say so when nothing
relevant is found rather than guessing. `filters` narrows by metadata, e.g.
{"lang": "en"} or {"field": "year", "op": ">=", "value": 2020}."""

CONTEXT_DESCRIPTION = """Get a prompt-ready block of numbered, cited passages for a question,
trimmed to `max_tokens` tokens.

Use it when you want to answer from the documents directly: read the block, answer from
it, and cite passages as [n] with their source. Prefer `search` to explore or compare
sources; prefer `context` to gather evidence for one answer."""


class SearchOutput(BaseModel):
    hits: list[Hit] = Field(description="passages, best first; text, metadata, scores")


class ContextOutput(BaseModel):
    text: str = Field(description="numbered passages, each headed [n] title — source")
    hits: list[Hit] = Field(description="the cited passages, in citation order")
    tokens: int = Field(description="tokens used by text")


def format_hits(hits: list[Hit]) -> str:
    """Numbered passages with title, source and score: what an LLM reads and cites."""
    if not hits:
        return "No matching passages."
    blocks = []
    for n, hit in enumerate(hits, 1):
        where = hit.source or hit.doc_id
        title = f"{hit.title} — " if hit.title else ""
        blocks.append(f"[{n}] {title}{where} (score {hit.score:.3f})\n{hit.text.strip()}")
    return "\n\n".join(blocks)


def build_mcp(index: IndexClient, *, name: str = "trawl") -> MCPServer[Any]:
    """An ``MCPServer`` whose tools search ``index``."""
    server: MCPServer[Any] = MCPServer(name, instructions=INSTRUCTIONS, log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(name="search", title="Search the documents", description=SEARCH_DESCRIPTION,
                 annotations=read_only)
    async def search(
        query: Annotated[str, Field(max_length=MAX_QUERY_CHARS,
                                    description="the question or keywords")],
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K,
                                    description="how many passages to return")] = 5,
        filters: Annotated[dict[str, Any] | None,
                           Field(description="optional metadata filter")] = None,
    ) -> Annotated[CallToolResult, SearchOutput]:
        try:
            hits = await index.asearch(query, top_k, filters)
        except TrawlError as exc:
            raise ToolError(f"{exc.title}: {exc}") from exc
        return CallToolResult(content=[TextContent(type="text", text=format_hits(hits))],
                              structured_content=SearchOutput(hits=hits).model_dump(mode="json"))

    @server.tool(name="context", title="Cited context for a question",
                 description=CONTEXT_DESCRIPTION, annotations=read_only)
    async def context(
        query: Annotated[str, Field(max_length=MAX_QUERY_CHARS,
                                    description="the question to gather evidence for")],
        max_tokens: Annotated[int, Field(ge=1, le=MAX_CONTEXT_TOKENS,
                                         description="token budget of the block")] = 1500,
        top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K,
                                    description="passages to consider")] = 8,
        filters: Annotated[dict[str, Any] | None,
                           Field(description="optional metadata filter")] = None,
    ) -> Annotated[CallToolResult, ContextOutput]:
        try:
            ctx = await index.acontext(query, max_tokens=max_tokens, top_k=top_k,
                                       filters=filters)
        except TrawlError as exc:
            raise ToolError(f"{exc.title}: {exc}") from exc
        text = ctx.text or "No matching passages."
        out = ContextOutput(text=ctx.text, hits=ctx.hits, tokens=ctx.tokens)
        return CallToolResult(content=[TextContent(type="text", text=text)],
                              structured_content=out.model_dump(mode="json"))

    return server
