"""The MCP face of an index: tools ``search`` and ``context`` for LLM agents, and, when
the operator allows writes (``--mcp-write``), ``store`` and ``forget`` for agents that use
the index as memory.

Built on any ``trawl.IndexClient``: the served ``Trawl`` inside ``trawl serve``, or a
``RemoteTrawl`` when ``trawl mcp`` attaches to a running server. Each tool returns the
passages as text the model can read and cite, plus the hits as structured content.

An LLM reads every character a tool returns, so results are sized for it: ``top_k`` is
capped lower than over HTTP, passages share a character budget (``max_chars``), and
whatever is cut says so. Text from documents is shown with control and bidi characters
escaped, as the CLI shows it (``trawl.safe_text``). Every call has the server's deadline,
and a cancelled call stops its search (``Trawl.asearch`` passes the cancellation on).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from trawl import AddError, Document, Hit, IndexClient, TrawlError, safe_text
from trawl.wire import MAX_BODY_BYTES, MAX_CONTEXT_TOKENS, MAX_QUERY_CHARS

from .bounds import until_done_or_gone
from .inputs import DocumentFieldError, check_document

T = TypeVar("T")
MCP_MAX_TOP_K = 50
MCP_DEFAULT_CHARS = 8_000
MCP_MAX_CHARS = 40_000
MCP_MAX_CONTEXT_TOKENS = min(MAX_CONTEXT_TOKENS, 16_000)
MIN_PASSAGE_CHARS = 200  # a passage cut shorter than this is left out instead

INSTRUCTIONS = (
    "Search a local document index (trawl). Use `search` to find passages and see where "
    "they come from; use `context` to get a ready-to-quote block of numbered passages "
    "within a token budget. Cite passages by their [n] number and source.")
WRITE_INSTRUCTIONS = (
    " `store` saves a note or document (with optional metadata) and returns its id; "
    "`forget` deletes documents by id.")

SEARCH_DESCRIPTION = """Find passages in the indexed documents that answer a question.

Write the query as a natural-language question or a few keywords; exact names, codes
and rare words are matched literally, paraphrases by meaning. Returns the best passages,
numbered [1], [2], ... with their title, source (file path or URL) and score, most
relevant first, within `max_chars` characters (a cut passage or a left-out one is
marked). Quote and cite passages by number and source; say so when nothing relevant is
found rather than guessing. `filters` narrows by metadata, e.g. {"lang": "en"} or
{"field": "year", "op": ">=", "value": 2020}."""

CONTEXT_DESCRIPTION = """Get a prompt-ready block of numbered, cited passages for a question,
trimmed to `max_tokens` tokens.

Use it when you want to answer from the documents directly: read the block, answer from
it, and cite passages as [n] with their source. Prefer `search` to explore or compare
sources; prefer `context` to gather evidence for one answer."""

STORE_DESCRIPTION = """Save a document (a note, a fact, a summary) in the index, so later
`search` and `context` calls find it. Returns its id. Give `id` to replace an earlier
document with the same id; without one, the id is derived from the text and metadata
(the same text stored twice is one document). `metadata` is a JSON object, e.g.
{"title": "...", "topic": "...", "year": 2024}, usable in `filters`."""

FORGET_DESCRIPTION = """Delete documents from the index by id (as `store` returned them or as
`search` shows them in `doc_id`). Once this returns, no search finds them."""


class SearchOutput(BaseModel):
    hits: list[Hit] = Field(description="passages, best first; text, metadata, scores")
    truncated: bool = Field(False, description="passages were cut or left out (max_chars)")


class ContextOutput(BaseModel):
    text: str = Field(description="numbered passages, each headed [n] title — source")
    hits: list[Hit] = Field(description="the cited passages, in citation order")
    tokens: int = Field(description="tokens used by text")


class StoreOutput(BaseModel):
    id: str = Field(description="the stored document's id")
    status: str = Field(description="added, updated or unchanged")


class ForgetOutput(BaseModel):
    removed_chunks: int = Field(description="chunks removed from every index")


def format_hits(hits: list[Hit], max_chars: int = MCP_MAX_CHARS) -> tuple[str, list[Hit], bool]:
    """Numbered passages with title, source and score, control characters escaped: what
    an LLM reads and cites. Passages share ``max_chars`` of text; returns the text, the
    hits as shown (texts cut to match) and whether anything was cut or left out."""
    if not hits:
        return "No matching passages.", [], False
    blocks: list[str] = []
    shown: list[Hit] = []
    budget = max_chars
    for n, hit in enumerate(hits, 1):
        note = ""
        if len(hit.text) > budget:
            if budget < MIN_PASSAGE_CHARS:
                break
            note = f" … [passage cut: {len(hit.text) - budget:,} more characters]"
            hit = hit.model_copy(update={"text": hit.text[:budget]})
        budget -= len(hit.text)
        text = safe_text(hit.text.strip(), multiline=True) + note
        where = safe_text(hit.source or hit.doc_id)
        title = f"{safe_text(hit.title)} — " if hit.title else ""
        blocks.append(f"[{n}] {title}{where} (score {hit.score:.3f})\n{text}")
        shown.append(hit)
    left_out = len(hits) - len(shown)
    truncated = left_out > 0 or any(a.text != b.text for a, b in zip(shown, hits, strict=False))
    if left_out:
        blocks.append(f"[{left_out} more passage(s) not shown: over the max_chars budget of "
                      f"{max_chars:,} characters; ask for fewer or narrow the query]")
    return "\n\n".join(blocks), shown, truncated


class TrawlMCP(MCPServer[Any]):
    """``MCPServer`` that refuses arguments a tool does not take, naming them (the SDK
    ignores them, so a misspelt ``top-k`` would silently search with the default)."""

    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Any = None) -> Any:
        for tool in await self.list_tools():
            if tool.name == name:
                known = set((tool.input_schema or {}).get("properties", {}))
                unknown = sorted(set(arguments) - known)
                if unknown:
                    raise ToolError(f"tool {name!r} does not take argument(s) "
                                    f"{', '.join(map(safe_text, unknown))}; it takes "
                                    f"{', '.join(sorted(known))}")
        return await super().call_tool(name, arguments, context)


async def _bounded(call: Awaitable[T], timeout: float | None) -> T:
    """``call`` within the deadline; core errors and timeouts as tool errors (the model
    reads them and can correct its call)."""
    try:
        return await until_done_or_gone(call, timeout)
    except TimeoutError as exc:
        raise ToolError(f"the call ran past the server's deadline of {timeout:g} s and was "
                        "stopped; ask for fewer passages or a narrower query") from exc
    except TrawlError as exc:
        raise ToolError(f"{exc.title}: {safe_text(exc)}") from exc


def build_mcp(index: IndexClient, *, name: str = "trawl", write: bool = False,
              request_timeout: float | None = 30.0) -> MCPServer[Any]:
    """An ``MCPServer`` whose tools search ``index`` (and, with ``write``, store into it
    and delete from it); every call is stopped after ``request_timeout`` seconds."""
    server = TrawlMCP(name, instructions=INSTRUCTIONS + (WRITE_INSTRUCTIONS if write else ""),
                      log_level="WARNING")
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(name="search", title="Search the documents", description=SEARCH_DESCRIPTION,
                 annotations=read_only)
    async def search(
        query: Annotated[str, Field(max_length=MAX_QUERY_CHARS,
                                    description="the question or keywords")],
        top_k: Annotated[int, Field(ge=1, le=MCP_MAX_TOP_K,
                                    description="how many passages to return")] = 5,
        filters: Annotated[dict[str, Any] | None,
                           Field(description="optional metadata filter")] = None,
        max_chars: Annotated[int, Field(ge=MIN_PASSAGE_CHARS, le=MCP_MAX_CHARS,
                                        description="characters of passage text in all")
                             ] = MCP_DEFAULT_CHARS,
    ) -> Annotated[CallToolResult, SearchOutput]:
        hits = await _bounded(index.asearch(query, top_k, filters), request_timeout)
        text, shown, truncated = format_hits(hits, max_chars)
        out = SearchOutput(hits=shown, truncated=truncated)
        return CallToolResult(content=[TextContent(type="text", text=text)],
                              structured_content=out.model_dump(mode="json"))

    @server.tool(name="context", title="Cited context for a question",
                 description=CONTEXT_DESCRIPTION, annotations=read_only)
    async def context(
        query: Annotated[str, Field(max_length=MAX_QUERY_CHARS,
                                    description="the question to gather evidence for")],
        max_tokens: Annotated[int, Field(ge=1, le=MCP_MAX_CONTEXT_TOKENS,
                                         description="token budget of the block")] = 1500,
        top_k: Annotated[int, Field(ge=1, le=MCP_MAX_TOP_K,
                                    description="passages to consider")] = 8,
        filters: Annotated[dict[str, Any] | None,
                           Field(description="optional metadata filter")] = None,
    ) -> Annotated[CallToolResult, ContextOutput]:
        ctx = await _bounded(index.acontext(query, max_tokens=max_tokens, top_k=top_k,
                                            filters=filters), request_timeout)
        text = safe_text(ctx.text, multiline=True) if ctx.text else "No matching passages."
        out = ContextOutput(text=ctx.text, hits=ctx.hits, tokens=ctx.tokens)
        return CallToolResult(content=[TextContent(type="text", text=text)],
                              structured_content=out.model_dump(mode="json"))

    if write:
        _add_write_tools(server, index, request_timeout)
    return server


def _add_write_tools(server: MCPServer[Any], index: IndexClient,
                     request_timeout: float | None) -> None:
    """``store`` and ``forget``: the checks of ``POST /documents`` (the document contract,
    the body limit) and of ``DELETE /documents``."""

    @server.tool(name="store", title="Store a document", description=STORE_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                             idempotent_hint=True, open_world_hint=False))
    async def store(
        text: Annotated[str, Field(min_length=1, description="the document's text")],
        id: Annotated[str | None, Field(max_length=1000, description=(
            "optional id; an existing document with it is replaced"))] = None,
        metadata: Annotated[dict[str, Any] | None,
                            Field(description="optional JSON metadata")] = None,
    ) -> Annotated[CallToolResult, StoreOutput]:
        try:
            doc = check_document(Document(id=id or "", text=text, metadata=metadata or {}))
        except DocumentFieldError as exc:
            raise ToolError(f"invalid document, field {safe_text(exc.field)}: "
                            f"{safe_text(exc)}") from exc
        size = len(doc.model_dump_json())
        if size > MAX_BODY_BYTES // 2:
            raise ToolError(f"the document is {size:,} bytes as JSON; a served index takes "
                            f"at most {MAX_BODY_BYTES // 2:,} per document")
        try:
            result = await _bounded(index.aadd([doc]), None)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, AddError) and cause.failures:
                raise ToolError(f"not stored: {safe_text(cause.failures[0].reason)}") from cause
            raise
        status = ("added" if result.added else "updated" if result.updated else "unchanged")
        out = StoreOutput(id=doc.id, status=status)
        return CallToolResult(
            content=[TextContent(type="text", text=f"{status}: id {safe_text(doc.id)}")],
            structured_content=out.model_dump(mode="json"))

    @server.tool(name="forget", title="Delete documents", description=FORGET_DESCRIPTION,
                 annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                             idempotent_hint=True, open_world_hint=False))
    async def forget(
        ids: Annotated[list[str], Field(min_length=1, max_length=1000,
                                        description="document ids to delete")],
    ) -> Annotated[CallToolResult, ForgetOutput]:
        removed = await _bounded(index.adelete(ids), request_timeout)
        shown = ", ".join(safe_text(i) for i in ids[:10]) + (" …" if len(ids) > 10 else "")
        text = (f"deleted {shown} ({removed} chunks)" if removed else
                f"nothing deleted: no stored document has id(s) {shown}")
        return CallToolResult(content=[TextContent(type="text", text=text)],
                              structured_content=ForgetOutput(
                                  removed_chunks=removed).model_dump(mode="json"))
