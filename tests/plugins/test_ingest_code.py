"""Source code along the syntax tree (plugins/trawl_code): checked against Python's own
``ast`` on a sample of the standard library on this machine, plus small files in other
languages, the fallback, filters, and incremental re-indexing."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

import trawl
from tests.conftest import HASHING_PIPELINE, HashingPlugin
from trawl import Document, PluginHost, Reader, SourceFile, Trawl
from trawl.chunking import chunk_document
from trawl.components import word_spans
from trawl.ingest import index_paths, read_with
from trawl.testing import ReaderContract

trawl_code = pytest.importorskip("trawl_code")
pytest.importorskip("tree_sitter_python")
from trawl_code.reader import CodeReader  # noqa: E402

STDLIB = Path(os.__file__).parent
BUDGET = 96


def code_host() -> PluginHost:
    return PluginHost(entry_points=False, plugins=[("hashing-test", HashingPlugin),
                                                   ("code", trawl_code)])


def _read(name: str, text: str, reader: Reader | None = None) -> Document:
    src = SourceFile(path=f"/src/pkg/{name}", data=text.encode(), doc_id=f"pkg/{name}")
    (doc,) = read_with(reader or CodeReader(), src).documents
    return doc


def stdlib_sample(n: int = 24) -> list[Path]:
    files = sorted(p for p in STDLIB.glob("*.py") if p.stat().st_size > 2000)
    step = max(1, len(files) // n)
    return files[::step][:n]


def ast_definitions(tree: ast.Module, module: str) -> list[tuple[str, ast.AST]]:
    out: list[tuple[str, ast.AST]] = []

    def visit(node: ast.AST, path: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                out.append((".".join([module, *path, child.name]), child))
                visit(child, [*path, child.name])
            else:
                visit(child, path)

    visit(tree, [])
    return out


def _inside_a_statement_that_fits(fn: ast.AST, line: int, source: str) -> bool:
    """Whether ``line`` is strictly inside a statement of ``fn`` (decorators included)
    or inside its header, where that statement or header would fit one chunk."""
    src_lines = source.splitlines(keepends=True)
    body = getattr(fn, "body", [])
    spans = [(min([fn.lineno, *[d.lineno for d in getattr(fn, "decorator_list", [])]]),  # type: ignore[attr-defined]
              body[0].lineno - 1 if body else fn.end_lineno)]  # type: ignore[attr-defined]
    for n in ast.walk(fn):
        if isinstance(n, ast.stmt) and n is not fn:
            first = min([n.lineno, *[d.lineno for d in getattr(n, "decorator_list", [])]])
            spans.append((first, n.end_lineno or n.lineno))
    for a, b in spans:
        if a < line <= b and len(word_spans("".join(src_lines[a - 1:b]))) <= BUDGET // 2:
            return True
    return False


@pytest.mark.parametrize("path", stdlib_sample(), ids=lambda p: p.name)
def test_stdlib_functions_are_whole_or_split_between_statements(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    doc = _read(path.name, source)
    chunks = chunk_document(doc, word_spans, BUDGET, 0)
    module = path.stem
    defs = ast_definitions(ast.parse(source), module)
    by_symbol: dict[str, list[trawl.Chunk]] = {}
    for c in chunks:
        by_symbol.setdefault(c.metadata["symbol"], []).append(c)
        assert c.metadata["language"] == "python"
        first_char = c.start + len(c.text) - len(c.text.lstrip())
        assert c.metadata["line_start"] == source.count("\n", 0, first_char) + 1
    # symbol paths: exactly the definitions ast finds, plus the module itself
    assert set(by_symbol) == {q for q, _ in defs} | {module}
    for qualname, node in defs:
        if [q for q, _ in defs].count(qualname) > 1:
            continue  # redefined (if/else branches, property setters): both share a symbol
        own = by_symbol[qualname]
        def_line = node.lineno  # type: ignore[attr-defined]
        assert any(c.metadata["line_start"] <= def_line <= c.metadata["line_end"] for c in own)
        if len(own) == 1:
            assert own[0].metadata["line_end"] >= node.end_lineno or any(  # type: ignore[attr-defined]
                c.metadata["symbol"].startswith(qualname + ".") for c in chunks)
            continue
        for c in own[1:]:
            line = source[source.rfind("\n", 0, c.start) + 1:source.find("\n", c.start)]
            assert (source[c.start - 1] == "\n" or len(word_spans(line)) > BUDGET // 2
                    or not source[source.rfind("\n", 0, c.start) + 1:c.start].strip()), (
                f"{qualname}: a chunk starts mid-line at line {c.metadata['line_start']}")
            assert not _inside_a_statement_that_fits(node, c.metadata["line_start"], source), (
                f"{qualname}: cut at line {c.metadata['line_start']}, not between statements")


def test_symbols_in_other_languages() -> None:
    js = _read("app.js", "// greet someone\nfunction greet(name) {\n  return 'hi ' + name;\n}\n"
               "class Owl {\n  hoot() { return 1; }\n}\nconst fly = (x) => x * 2;\n")
    go = _read("owl.go", "package owl\n\ntype Owl struct{ n int }\n\n"
               "// Hoot makes a sound.\nfunc (o *Owl) Hoot() int { return o.n }\n\n"
               "func New() *Owl { return &Owl{} }\n")
    rs = _read("lib.rs", "struct Owl;\nimpl Owl {\n    fn hoot(&self) -> u8 { 1 }\n}\n"
               "fn main() {}\n")
    c = _read("owl.c", "struct owl { int n; };\nstatic int hoot(struct owl *o) {\n"
              "  return o->n;\n}\n")

    def symbols(doc: Document) -> dict[str, str]:
        return {ch.metadata["symbol"]: ch.metadata["kind"]
                for ch in chunk_document(doc, word_spans, 200, 0)}

    assert symbols(js) == {"app": "module", "app.greet": "function", "app.Owl": "class",
                           "app.Owl.hoot": "method", "app.fly": "function"}
    assert symbols(go) == {"owl": "module", "owl.Owl": "type", "owl.Owl.Hoot": "method",
                           "owl.New": "function"}
    assert symbols(rs) == {"lib.Owl": "impl", "lib.Owl.hoot": "method",
                           "lib.main": "function"}
    assert {"owl.owl", "owl.hoot"} <= set(symbols(c))
    greet = next(ch for ch in chunk_document(js, word_spans, 200, 0)
                 if ch.metadata["symbol"] == "app.greet")
    assert greet.text.startswith("// greet someone\nfunction greet")  # its comment too
    assert greet.metadata["context"] == "pkg/app.js app.greet"
    hoot = next(ch for ch in chunk_document(go, word_spans, 200, 0)
                if ch.metadata["symbol"] == "owl.Owl.Hoot")
    assert hoot.text.startswith("// Hoot makes a sound.") and hoot.metadata["line_start"] == 5


def test_unknown_language_falls_back_to_line_windows() -> None:
    text = "\n".join(f"fun f{i}() = println(\"owl {i}\")" for i in range(200)) + "\n"
    doc = _read("Main.kt", text)
    chunks = chunk_document(doc, word_spans, 64, 0)
    assert len(chunks) > 5 and {c.metadata["language"] for c in chunks} == {"kotlin"}
    assert {c.metadata["symbol"] for c in chunks} == {"Main"}
    for c in chunks:  # whole lines
        assert c.start == 0 or text[c.start - 1] == "\n"
        assert c.metadata["context"] == "pkg/Main.kt"


def test_encoders_see_path_and_symbol_apart_from_the_text() -> None:
    doc = _read("m.py", "def owl():\n    return 1\n")
    (chunk,) = [c for c in chunk_document(doc, word_spans, 100, 0)
                if c.metadata["symbol"] == "m.owl"]
    assert chunk.text == "def owl():\n    return 1\n"
    assert trawl.Encoder.document_text(None, chunk) == (  # type: ignore[arg-type]
        "pkg/m.py m.owl\ndef owl():\n    return 1\n")


def _tree(root: Path, owl_body: str = "return 1") -> None:
    (root / "pkg").mkdir(parents=True, exist_ok=True)
    (root / "pkg" / "birds.py").write_text(
        f'"""Birds."""\n\n\ndef owl():\n    """Hoot at night."""\n    {owl_body}\n\n\n'
        'def gull():\n    """Screech by the sea."""\n    return 2\n')
    (root / "pkg" / "fish.py").write_text("class Cod:\n    def swim(self):\n        return 3\n")
    (root / "pkg" / "notes.md").write_text("# Notes\n\nOwls and gulls.\n")
    (root / ".gitignore").write_text("build/\n")
    (root / "build").mkdir(exist_ok=True)
    (root / "build" / "gen.py").write_text("def generated():\n    pass\n")


def test_index_filter_and_reindex_only_the_changed_file(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _tree(root)
    with Trawl.open(tmp_path / "idx", pipeline=HASHING_PIPELINE, host=code_host(),
                    show_progress=False) as t:
        first = index_paths(t, [root], show_progress=False)
        assert first.added == 3 and first.ignored == 1 and not first.skipped
        hits = t.search("hoot at night", 5, filters={"symbol": "birds.owl"})
        assert [h.metadata["symbol"] for h in hits] == ["birds.owl"]
        assert hits[0].metadata["line_start"] == 4 and hits[0].metadata["line_end"] == 6
        assert hits[0].metadata["language"] == "python"
        py = t.search("swim", 10, filters={"language": "python"})
        assert py and all(h.metadata["path"].endswith(".py") for h in py)
        assert "build/gen.py" not in {h.doc_id for h in t.search("generated", 10)}
        _tree(root, owl_body="return 42  # changed")
        second = index_paths(t, [root], show_progress=False)
        assert (second.updated, second.unchanged, second.added) == (1, 2, 0)
        birds = [c for c in t.search("owl gull birds", 50) if c.doc_id.endswith("birds.py")]
        assert second.chunks == len({h.chunk_id for h in birds})  # only that file's chunks
        (hit,) = t.search("changed", 1, filters={"symbol": "birds.owl"})
        assert "return 42" in hit.text


def test_a_binary_file_named_py_is_skipped_once_and_the_rest_indexed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _tree(root)
    (root / "pkg" / "blob.py").write_bytes(b"\x7fELF\x00\x01" + bytes(range(256)) * 4)
    with Trawl.open(tmp_path / "idx", pipeline=HASHING_PIPELINE, host=code_host(),
                    show_progress=False) as t:
        report = index_paths(t, [root], show_progress=False)
    assert report.added == 3
    assert [(Path(s.path).name, s.reason) for s in report.skipped] == [
        ("blob.py", "binary file (NUL byte at offset 4)")]


class TestCodeReader(ReaderContract):
    @pytest.fixture
    def reader(self) -> Reader:
        return CodeReader()

    @pytest.fixture
    def sample_files(self) -> list[tuple[str, bytes]]:
        return [("fnmatch.py", (STDLIB / "fnmatch.py").read_bytes()),
                ("app.ts", b"export function hoot(n: number): string {\n  return 'h';\n}\n"),
                ("Makefile", b"all:\n\techo owl\n")]
