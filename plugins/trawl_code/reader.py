"""``code``: source files as documents whose sections follow the syntax tree.

Every definition (function, method, class, struct, impl...) is a labelled section, so
chunking gives it chunks of its own; a definition longer than ``split_chars`` also marks
its statements (and theirs, a few levels down) as places to split, so an oversized one
is cut between statements, never inside one that fits. Code outside any definition
belongs to the module.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from trawl import ComponentConfig, Reader, ReadOutput, SourceFile
from trawl.chunking import CONTEXT, CUT_AT_LINES, LINE_NUMBERS, SECTIONS
from trawl.ingest.readers import SkipFile, decode, file_metadata, one_document

from .languages import FILENAMES, GRAMMARS, SUFFIXES, Grammar, parser_for

_BLOCKISH = ("block", "body", "suite", "compound_statement", "statement_block",
             "declaration_list", "field_declaration_list", "do_group", "consequence",
             "alternative")
_CLAUSES = ("clause", "_case", "case", "default", "else", "elif", "handler")
_COMMENTS = frozenset({"comment", "line_comment", "block_comment"})
_NAME_NODES = frozenset({"identifier", "field_identifier", "type_identifier",
                         "qualified_identifier", "destructor_name", "operator_name",
                         "property_identifier", "constant", "scoped_identifier"})


class CodeConfig(ComponentConfig):
    max_parse_bytes: int = Field(4_000_000, ge=0, description=(
        "files larger than this are read in line windows without parsing"))
    split_chars: int = Field(300, ge=0, description=(
        "definitions (and statements) longer than this mark their statements as places to "
        "split; chunking uses them only when the whole does not fit one chunk"))


class CodeReader(Reader):
    """Source code in 40-odd languages; 11 parsed by tree-sitter (the ``code`` extra)."""

    suffixes = frozenset(SUFFIXES)
    filenames = frozenset(FILENAMES)
    mime_types = frozenset({"text/x-python", "text/javascript", "application/javascript",
                            "text/x-c", "text/x-java-source", "text/x-go", "text/x-rust",
                            "application/x-sh", "text/x-shellscript"})
    priority = 10
    Config = CodeConfig

    def read(self, source: SourceFile) -> ReadOutput:
        text = decode(source.data, encodings=source.encodings)
        if not text.strip():
            raise SkipFile("only whitespace")
        language = language_of(source.name)
        module = module_name(source.path)
        meta = file_metadata(source, "code", source.doc_id)
        meta["language"] = language
        meta[LINE_NUMBERS] = meta[CUT_AT_LINES] = True
        sections: list[dict[str, Any]] = [{"start": 0, "end": len(text), "labels": {
            "symbol": module, "kind": "module", CONTEXT: source.doc_id}}]
        cfg: Any = self.config
        parser = parser_for(language) if len(source.data) <= cfg.max_parse_bytes else None
        if parser is not None:
            sections += syntax_sections(parser, GRAMMARS[language], text, module,
                                        source.doc_id, cfg.split_chars)
        meta[SECTIONS] = sections
        return one_document(source, text, meta)


def language_of(name: str) -> str:
    lower = name.lower()
    if lower in FILENAMES:
        return FILENAMES[lower]
    dot = lower.rfind(".")
    return SUFFIXES.get(lower[dot:], "text") if dot > 0 else "text"


def module_name(path: str) -> str:
    """``pkg/mod.py`` -> ``mod``; a package's ``__init__``/``index``/``mod`` -> the folder."""
    parts = path.rsplit("/", 2)
    stem = parts[-1].split(".", 1)[0] or parts[-1]
    if stem in ("__init__", "index", "mod") and len(parts) > 1 and parts[-2]:
        return parts[-2]
    return stem


_queries: dict[int, Any] = {}


def _query(grammar: Grammar, language: Any) -> Any:
    key = id(grammar)
    if key not in _queries:
        from tree_sitter import Query

        patterns = []
        for node_type in grammar.definitions:
            if node_type == "variable_declarator":
                patterns.append("(variable_declarator value: [(arrow_function) "
                                "(function_expression)]) @d")
            else:
                patterns.append(f"({node_type}) @d")
        _queries[key] = Query(language, " ".join(patterns))
    return _queries[key]


def syntax_sections(parser: Any, grammar: Grammar, text: str, module: str, doc_id: str,
                    split_chars: int) -> list[dict[str, Any]]:
    """One labelled section per definition (symbol path, kind, header), plus unlabelled
    statement sections inside long ones."""
    from tree_sitter import QueryCursor

    data = text.encode("utf-8", "surrogatepass")
    tree = parser.parse(data)
    if len(data) == len(text):
        def char(b: int) -> int:
            return b
    else:  # byte offset -> character offset: count UTF-8 lead bytes before it
        arr = np.frombuffer(data, dtype=np.uint8)
        leads = np.concatenate(([0], np.cumsum((arr & 0xC0) != 0x80)))

        def char(b: int) -> int:
            return int(leads[b])

    found = QueryCursor(_query(grammar, parser.language)).captures(tree.root_node).get("d", [])
    defs = sorted(found, key=lambda n: (n.start_byte, -n.end_byte))
    out: list[dict[str, Any]] = []
    stack: list[tuple[int, str, str]] = []  # (end byte, name, kind) of open definitions
    for node in defs:
        while stack and node.start_byte >= stack[-1][0]:
            stack.pop()
        name = definition_name(node)
        if not name:
            continue
        kind = grammar.definitions[node.type]
        outer_kind = stack[-1][2] if stack else ""
        if kind == "function" and outer_kind in ("class", "impl", "trait", "interface"):
            kind = "method"
        prefix = [n for _, n, _ in stack]
        if node.type == "method_declaration" and grammar.module == "tree_sitter_go":
            receiver = _go_receiver(node)
            prefix = prefix + ([receiver] if receiver else [])
        symbol = ".".join([module, *prefix, name])
        span = node.parent if (node.parent is not None
                                and node.parent.type in grammar.wrappers) else node
        start, end = _with_comments(span, text, char), _to_line_end(text, char(span.end_byte))
        out.append({"start": start, "end": end, "labels": {
            "symbol": symbol, "kind": kind, CONTEXT: f"{doc_id} {symbol}"}})
        stack.append((node.end_byte, name, kind))
        if end - start > split_chars:
            skip = set(grammar.definitions) | grammar.wrappers | _COMMENTS
            out.extend(_statements(node, text, char, split_chars, skip, 0))
    return out


def definition_name(node: Any) -> str:
    """The name a definition declares (C declarators and Rust impls dug out)."""
    named = node.child_by_field_name("name")
    if named is None and node.type == "impl_item":
        named = node.child_by_field_name("type")
        trait = node.child_by_field_name("trait")
        if named is not None and trait is not None:
            return f"{_text(named)}<{_text(trait)}>"
    if named is None:
        decl = node.child_by_field_name("declarator")
        while decl is not None and decl.type not in _NAME_NODES:
            decl = decl.child_by_field_name("declarator") or decl.child_by_field_name("name")
        named = decl
    return " ".join(_text(named).split())[:200] if named is not None else ""


def _text(node: Any) -> str:
    raw = node.text
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")


def _go_receiver(node: Any) -> str:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return ""
    words = _text(receiver).strip("()").replace("*", " ").split()
    return words[-1].split("[", 1)[0] if words else ""


def _with_comments(node: Any, text: str, char: Any) -> int:
    """Where a definition starts: its line's start, taking in comments right above it."""
    first = node
    prev = node.prev_named_sibling
    while (prev is not None and prev.type in _COMMENTS
           and prev.end_point.row >= first.start_point.row - 1):
        first = prev
        prev = prev.prev_named_sibling
    return _line_start(text, char(first.start_byte))


def _line_start(text: str, start: int) -> int:
    """``start``, or its line's start when only indentation comes before it there."""
    line = text.rfind("\n", 0, start) + 1
    return line if not text[line:start].strip() else start


def _to_line_end(text: str, end: int) -> int:
    """A section ends with its line when only a comment or blanks follow on it."""
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    rest = text[end:line_end].strip()
    return line_end if not rest or rest.startswith(_COMMENT_MARKS) else end


_COMMENT_MARKS = ("#", "//", "/*", "--", ";")


def _statements(node: Any, text: str, char: Any, split_chars: int, skip: set[str],
                depth: int) -> list[dict[str, Any]]:
    """Unlabelled sections for the statements of a long definition's body, and for the
    clauses (``except``, ``else``, ``case``...) and inner statements of long statements,
    a few levels deep: where chunking may cut it. Definitions are labelled on their own
    and comments go with what follows them, so neither is one."""
    if depth > 6:
        return []
    out: list[dict[str, Any]] = []

    def add(stmt: Any) -> None:
        if stmt.type in skip:
            return
        start, end = _line_start(text, char(stmt.start_byte)), _to_line_end(
            text, char(stmt.end_byte))
        if end <= start:
            return
        out.append({"start": start, "end": end, "labels": None})
        if end - start > split_chars:
            out.extend(_statements(stmt, text, char, split_chars, skip, depth + 1))

    for child in node.named_children:
        if any(child.type.endswith(b) for b in _BLOCKISH):
            for stmt in child.named_children:
                add(stmt)
        elif child.type.endswith(_CLAUSES):
            add(child)
    return out
