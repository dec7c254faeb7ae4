"""Which files are source code, their language, and how each grammar names definitions.

Grammars are the tree-sitter organisation's own per-language wheels (``tree-sitter-python``
and so on, the ``code`` extra): each is a small prebuilt abi3 wheel, kept in step with the
grammar's repository, and needs nothing at run time.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

#: suffix -> language, for every file this plugin claims
SUFFIXES: dict[str, str] = {
    ".py": "python", ".pyi": "python", ".pyw": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx",
    ".go": "go", ".rs": "rust", ".java": "java",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp",
    ".hh": "cpp", ".hxx": "cpp",
    ".sh": "bash", ".bash": "bash", ".rb": "ruby",
    # no grammar installed for these: line windows
    ".kt": "kotlin", ".kts": "kotlin", ".swift": "swift", ".scala": "scala", ".cs": "csharp",
    ".php": "php", ".lua": "lua", ".pl": "perl", ".pm": "perl", ".r": "r", ".jl": "julia",
    ".sql": "sql", ".m": "objective-c", ".mm": "objective-c", ".dart": "dart",
    ".ex": "elixir", ".exs": "elixir", ".erl": "erlang", ".hs": "haskell", ".ml": "ocaml",
    ".clj": "clojure", ".zig": "zig", ".nim": "nim", ".ps1": "powershell", ".vue": "vue",
    ".svelte": "svelte", ".groovy": "groovy", ".gradle": "groovy", ".tf": "terraform",
    ".proto": "protobuf", ".cmake": "cmake", ".mk": "make", ".zsh": "bash", ".fish": "fish",
}
#: exact file names that are source code
FILENAMES: dict[str, str] = {"makefile": "make", "dockerfile": "dockerfile",
                             "cmakelists.txt": "cmake", "rakefile": "ruby",
                             "gemfile": "ruby", "justfile": "make"}


@dataclass(frozen=True)
class Grammar:
    """How to load a language and which of its nodes are definitions (node type -> kind)."""

    module: str
    definitions: dict[str, str]
    function: str = "language"
    #: definitions wrapped by another node that should own the span (decorators)
    wrappers: frozenset[str] = frozenset()
    #: node types whose definitions are methods of the enclosing one (impl blocks)
    containers: dict[str, str] = field(default_factory=dict)


_C_LIKE = {"function_definition": "function", "struct_specifier": "struct",
           "enum_specifier": "enum", "union_specifier": "union"}
_JS = {"function_declaration": "function", "generator_function_declaration": "function",
       "class_declaration": "class", "method_definition": "method",
       "variable_declarator": "function"}
_TS = {**_JS, "abstract_class_declaration": "class", "interface_declaration": "interface",
       "type_alias_declaration": "type", "enum_declaration": "enum",
       "function_signature": "function", "module": "module",
       "internal_module": "namespace"}

GRAMMARS: dict[str, Grammar] = {
    "python": Grammar("tree_sitter_python", {"function_definition": "function",
                                             "class_definition": "class"},
                      wrappers=frozenset({"decorated_definition"})),
    "javascript": Grammar("tree_sitter_javascript", _JS),
    "typescript": Grammar("tree_sitter_typescript", _TS, function="language_typescript"),
    "tsx": Grammar("tree_sitter_typescript", _TS, function="language_tsx"),
    "go": Grammar("tree_sitter_go", {"function_declaration": "function",
                                     "method_declaration": "method", "type_spec": "type"}),
    "rust": Grammar("tree_sitter_rust", {"function_item": "function", "struct_item": "struct",
                                         "enum_item": "enum", "trait_item": "trait",
                                         "impl_item": "impl", "mod_item": "module",
                                         "macro_definition": "macro",
                                         "function_signature_item": "function"}),
    "java": Grammar("tree_sitter_java", {"class_declaration": "class",
                                         "interface_declaration": "interface",
                                         "enum_declaration": "enum",
                                         "record_declaration": "record",
                                         "method_declaration": "method",
                                         "constructor_declaration": "constructor"}),
    "c": Grammar("tree_sitter_c", _C_LIKE),
    "cpp": Grammar("tree_sitter_cpp", {**_C_LIKE, "class_specifier": "class",
                                       "namespace_definition": "namespace"},
                   wrappers=frozenset({"template_declaration"})),
    "bash": Grammar("tree_sitter_bash", {"function_definition": "function"}),
    "ruby": Grammar("tree_sitter_ruby", {"method": "method", "singleton_method": "method",
                                         "class": "class", "module": "module"}),
}

_loaded: dict[str, Any] = {}


def parser_for(language: str) -> Any | None:
    """A tree-sitter parser for ``language``, or ``None`` when tree-sitter or the grammar
    is not installed (the file is then read in line windows)."""
    if language in _loaded:
        return _loaded[language]
    grammar = GRAMMARS.get(language)
    parser = None
    if grammar is not None:
        try:
            from tree_sitter import Language, Parser

            module = importlib.import_module(grammar.module)
            parser = Parser(Language(getattr(module, grammar.function)()))
        except (ImportError, AttributeError, ValueError):
            parser = None
    _loaded[language] = parser
    return parser
