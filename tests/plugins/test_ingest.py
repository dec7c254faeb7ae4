"""Ingestion: formats, metadata, ignore rules, bad input, incremental runs and --prune."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import trawl
from tests.conftest import HASHING_PIPELINE
from tests.plugins.ingest_support import make_pdf
from trawl import Trawl
from trawl.ingest import IngestReport, decode, index_paths, load_documents, scan
from trawl.ingest.readers import SkipFile, html_to_text, markdown_title


@pytest.fixture
def t(host: trawl.PluginHost, tmp_path: Path) -> Trawl:
    with Trawl.open(tmp_path / "index", pipeline=HASHING_PIPELINE, host=host,
                    show_progress=False) as tr:
        yield tr


def _write(path: Path, data: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def _docs(root: Path, **kw: object) -> dict[str, trawl.Document]:
    return {d.id: d for d in load_documents([root], **kw)  # type: ignore[arg-type]
            if isinstance(d, trawl.Document)}


def _reasons(report: IngestReport) -> dict[str, str]:
    return {Path(s.path).name: s.reason for s in report.skipped}


# -- formats -----------------------------------------------------------------------------
def test_every_format_with_metadata(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    _write(root / "plain.txt", "Plain title line\n\nSome plain text about inverted indexes.")
    _write(root / "guide.md", "---\ntitle: \"Front Matter Title\"\n---\n# Heading\n\nBody.")
    _write(root / "notes.md", "Intro line\n\n## Second\n\n# Main Heading\n\ntext")
    _write(root / "page.html", """<html><head><title> The  Page </title>
        <style>.x{color:red}</style><script>var secret = 1;</script></head>
        <body><nav>Home | About</nav><h1>Big</h1><p>First <b>bold</b> para.</p>
        <p>Second para.</p><ul><li>one</li><li>two</li></ul></body></html>""")
    _write(root / "h1only.htm", "<body><h1>Only H1</h1><p>text</p></body>")
    _write(root / "report.pdf", make_pdf(["Alpha page about tokens.", "Beta page about BM25."],
                                         title="Quarterly Report"))
    docs = _docs(root)
    assert set(docs) == {"kb/plain.txt", "kb/guide.md", "kb/notes.md", "kb/page.html",
                         "kb/h1only.htm", "kb/report.pdf"}
    md = docs["kb/guide.md"].metadata
    assert md["title"] == "Front Matter Title" and md["source_type"] == "markdown"
    assert md["path"] == str(root / "guide.md")
    assert md["size"] == (root / "guide.md").stat().st_size
    assert md["mtime"] == pytest.approx((root / "guide.md").stat().st_mtime)
    import hashlib

    assert md["content_hash"] == hashlib.sha256((root / "guide.md").read_bytes()).hexdigest()
    assert docs["kb/notes.md"].title == "Main Heading"
    assert docs["kb/plain.txt"].title == "Plain title line"
    html = docs["kb/page.html"]
    assert html.title == "The Page" and html.metadata["source_type"] == "html"
    assert "secret" not in html.text and "color" not in html.text and "Home" not in html.text
    assert "First bold para.\n\nSecond para." in html.text and "one\ntwo" in html.text
    assert docs["kb/h1only.htm"].title == "Only H1"
    pdf = docs["kb/report.pdf"]
    assert pdf.title == "Quarterly Report" and pdf.metadata["pages"] == 2
    assert "Alpha page" in pdf.text and "Beta page" in pdf.text


def test_pdf_chunks_carry_page_numbers(host: trawl.PluginHost, tmp_path: Path) -> None:
    pages = [f"Page {i} " + " ".join(f"word{i}x{j}" for j in range(60)) for i in range(1, 5)]
    _write(tmp_path / "d" / "book.pdf", make_pdf(pages))
    cfg = {**HASHING_PIPELINE, "chunking": {"max_tokens": 40, "overlap": 0}}
    with Trawl.open(tmp_path / "i", pipeline=cfg, host=host, show_progress=False) as tr:
        index_paths(tr, [tmp_path / "d"], show_progress=False)
        hit = tr.search("word3x30", 1)[0]
        assert hit.metadata["page_start"] == hit.metadata["page_end"] == 3
        assert "page_offsets" not in hit.metadata
        hit = tr.search("word1x5", 1)[0]
        assert hit.metadata["page_start"] == 1


def test_jsonl_and_beir(tmp_path: Path) -> None:
    rows = [
        {"id": "a1", "text": "first", "title": "A", "lang": "en", "metadata": {"year": 2020}},
        {"_id": 7, "text": "second"},
        {"text": "no id here"},
        {"id": "bad"},
        {"id": "a1", "text": "duplicate"},
    ]
    lines = [json.dumps(r) for r in rows] + ["{not json", "[1, 2]", ""]
    _write(tmp_path / "d" / "data.jsonl", "\n".join(lines))
    _write(tmp_path / "d" / "beir" / "corpus.jsonl", "\n".join([
        json.dumps({"_id": "c1", "title": "Wing flutter", "text": "Flutter of wings."}),
        json.dumps({"_id": "471", "title": "", "text": ""}),  # cranfield has these
    ]))
    out = list(load_documents([tmp_path / "d"]))
    docs = {d.id: d for d in out if isinstance(d, trawl.Document)}
    skipped = {s.path.rsplit(":", 1)[1]: s.reason for s in out
               if isinstance(s, trawl.ingest.SkippedFile)}
    assert docs["a1"].text == "first" and docs["a1"].metadata["lang"] == "en"
    assert docs["a1"].metadata["year"] == 2020 and docs["a1"].title == "A"
    assert docs["7"].text == "second"
    assert docs["d/data.jsonl:3"].text == "no id here"
    assert skipped["4"] == "no 'text' field"
    assert "duplicate id 'a1'" in skipped["5"]
    assert "invalid JSON" in skipped["6"] and "JSON object" in skipped["7"]
    assert docs["c1"].text == "Wing flutter Flutter of wings."
    assert docs["c1"].metadata["source_type"] == "beir" and docs["c1"].title == "Wing flutter"
    assert docs["471"].text == ""  # empty BEIR documents are accepted


def test_beir_corpus_ids_match_the_dataset(host: trawl.PluginHost, tmp_path: Path) -> None:
    from tests.conftest import dataset

    corpus = dataset("limit-small") / "corpus.jsonl"
    with Trawl.open(tmp_path / "i", pipeline=HASHING_PIPELINE, host=host,
                    show_progress=False) as tr:
        report = index_paths(tr, [corpus], show_progress=False)
        assert report.added == 46 and not report.skipped
        assert "Geneva Durben" in tr.manifest.doc_ids()


def test_html_and_markdown_helpers() -> None:
    text, title = html_to_text("<p>a</p><script>x</script><p>b  c</p>")
    assert (text, title) == ("a\n\nb c", "")
    assert markdown_title("Title\n=====\n\ntext") == "Title"
    assert markdown_title("no heading") == ""
    assert markdown_title("Intro\n\n## Second\n\n# Main\n") == "Main"
    assert markdown_title("Setext\n===\n\n# Later") == "Setext"
    assert markdown_title("## a\n\nb\n---\n") == "a"


# -- bad input ------------------------------------------------------------------------
def test_bad_files_are_skipped_with_reasons(t: Trawl, tmp_path: Path) -> None:
    root = tmp_path / "bad"
    _write(root / "good.md", "# Good\n\nA fine document about retrieval.")
    _write(root / "empty.txt", "")
    _write(root / "blank.txt", "   \n\n  ")
    _write(root / "binary.dat", b"\x7fELF\x00\x01\x02" + bytes(range(256)))
    _write(root / "latin1.txt", "café crème brûlée".encode("cp1252"))
    _write(root / "huge.txt", "x" * 5000)
    _write(root / "broken.pdf", b"%PDF-1.4\nthis is not really a pdf")
    _write(root / "empty.html", "<html><script>only()</script></html>")
    os.mkfifo(root / "pipe.txt")
    os.symlink(tmp_path / "nowhere", root / "dangling.md")
    report = index_paths(t, [root, tmp_path / "missing"], max_bytes=4096, show_progress=False)
    reasons = _reasons(report)
    assert report.added == 1 and t.manifest.doc_ids() == {"bad/good.md"}
    assert reasons["empty.txt"] == "empty file"
    assert reasons["blank.txt"] == "only whitespace"
    assert reasons["binary.dat"].startswith("binary file (NUL byte")
    assert reasons["latin1.txt"].startswith("not valid UTF-8 at byte 3")
    assert "file too large" in reasons["huge.txt"]
    assert reasons["broken.pdf"].startswith("unreadable PDF")
    assert reasons["empty.html"] == "no visible text in this HTML page"
    assert "fifo" in reasons["pipe.txt"]
    assert "broken symlink" in reasons["dangling.md"]
    assert reasons["missing"] == "no such file or directory"
    # a declared fallback encoding reads the Latin-1 file
    again = index_paths(t, [root], encodings=["cp1252"], max_bytes=4096, show_progress=False)
    assert again.added == 1 and again.unchanged == 1
    assert "café crème" in t.search("crème brûlée", 1)[0].text


def test_unreadable_file(t: Trawl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "perm"
    _write(root / "ok.txt", "readable text")
    secret = _write(root / "secret.txt", "nobody may read this")
    secret.chmod(0)
    if os.access(secret, os.R_OK):  # running as root: permissions do not stop us
        from trawl.ingest import runner

        real = runner._read_bytes

        def deny(entry: object, max_bytes: int) -> bytes:
            if entry.path.name == "secret.txt":  # type: ignore[attr-defined]
                raise PermissionError(13, "Permission denied")
            return real(entry, max_bytes)  # type: ignore[arg-type]

        monkeypatch.setattr(runner, "_read_bytes", deny)
    report = index_paths(t, [root], show_progress=False)
    assert _reasons(report) == {"secret.txt": "permission denied"}
    assert report.added == 1


def test_decode() -> None:
    assert decode("\ufeffhé".encode()) == "hé"
    assert decode("hé".encode("utf-16")) == "hé"
    with pytest.raises(SkipFile, match="binary"):
        decode(b"abc\x00def")
    assert decode("hé".encode("latin-1"), declared="latin-1") == "hé"


def test_symlinks(t: Trawl, tmp_path: Path) -> None:
    outside = _write(tmp_path / "outside" / "secret.md", "# Outside\n\noutside text")
    root = tmp_path / "root"
    _write(root / "real" / "a.md", "# A\n\nalpha text")
    os.symlink(outside, root / "out-link.md")
    os.symlink(tmp_path / "outside", root / "out-dir")
    os.symlink(root / "real" / "a.md", root / "dup-link.md")       # same file again
    os.symlink(root / "real", root / "real-again")                 # same folder again
    os.symlink(root, root / "real" / "loop")                       # back to an ancestor
    os.symlink(root / "l1", root / "l2")
    os.symlink(root / "l2", root / "l1")                           # a -> b -> a
    report = index_paths(t, [root], show_progress=False)
    reasons = _reasons(report)
    assert t.manifest.doc_ids() == {"root/real/a.md"}
    assert "points outside" in reasons["out-link.md"] and "points outside" in reasons["out-dir"]
    assert "same file as" in reasons["dup-link.md"]
    assert "same folder as" in reasons["real-again"]
    assert "symlink loop" in reasons["loop"]
    assert "symlink loop" in reasons["l1"] and "symlink loop" in reasons["l2"]
    followed = index_paths(t, [root], follow_symlinks=True, show_progress=False)
    assert (followed.added, followed.unchanged) == (1, 1)
    assert t.manifest.doc_ids() == {"root/real/a.md", "root/out-dir/secret.md"}
    assert "same file as" in _reasons(followed)["out-link.md"]


# -- selection ------------------------------------------------------------------------
def test_gitignore_globs_and_hidden(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    _write(root / ".gitignore", "*.log\n!keep.log\nbuild/\n")
    _write(root / "a.md", "a")
    _write(root / "debug.log", "noise")
    _write(root / "keep.log", "kept")
    _write(root / "build" / "out.txt", "generated")
    _write(root / "docs" / ".trawlignore", "drafts/\n")
    _write(root / "docs" / "guide.md", "guide")
    _write(root / "docs" / "drafts" / "wip.md", "wip")
    _write(root / "docs" / "api.html", "<p>api</p>")
    _write(root / ".hidden.md", "hidden")
    _write(root / ".git" / "config", "[core]")
    _write(root / "node_modules" / "x.md", "dependency")

    def ids(**kw: object) -> set[str]:
        entries, _, _ = scan([root], **kw)  # type: ignore[arg-type]
        return {e.rel for e in entries}

    assert ids() == {"a.md", "keep.log", "docs/guide.md", "docs/api.html", "node_modules/x.md"}
    assert ids(include=["*.md"]) == {"a.md", "docs/guide.md", "node_modules/x.md"}
    assert ids(include=["docs/**"]) == {"docs/guide.md", "docs/api.html"}
    assert ids(exclude=["node_modules/", "*.html"]) == {"a.md", "keep.log", "docs/guide.md"}
    assert "build/out.txt" in ids(use_ignore_files=False)
    assert ".hidden.md" in ids(include_hidden=True)
    assert not any(r.startswith(".git/") for r in ids(include_hidden=True))


def test_index_folder_inside_the_root_is_not_indexed(host: trawl.PluginHost,
                                                     tmp_path: Path) -> None:
    _write(tmp_path / "notes" / "a.md", "# A\n\nsome text")
    with Trawl.open(tmp_path / "notes" / "myindex", pipeline=HASHING_PIPELINE, host=host,
                    show_progress=False) as tr:
        index_paths(tr, [tmp_path / "notes"], show_progress=False)
        again = index_paths(tr, [tmp_path / "notes"], show_progress=False)
        assert tr.manifest.doc_ids() == {"notes/a.md"}
        assert (again.added, again.updated, again.unchanged) == (0, 0, 1)


# -- incremental ------------------------------------------------------------------------
def test_incremental_update_touch_and_prune(t: Trawl, tmp_path: Path) -> None:
    root = tmp_path / "kb"
    a = _write(root / "a.md", "# A\n\nthe first document about posting lists")
    b = _write(root / "b.md", "# B\n\nthe second document about stemming")
    c = _write(root / "sub" / "c.txt", "third document about fusion")
    rows = _write(root / "rows.jsonl", "\n".join(json.dumps({"id": f"r{i}", "text": f"row {i}"})
                                                 for i in range(3)))
    first = index_paths(t, [root], show_progress=False)
    assert (first.added, first.updated, first.unchanged, first.scanned) == (6, 0, 0, 4)
    again = index_paths(t, [root], show_progress=False)
    assert (again.added, again.updated, again.unchanged) == (0, 0, 6)

    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 10**9))  # touched only
    b.write_text("# B\n\nthe second document, now about lemmatisation", encoding="utf-8")
    report = index_paths(t, [root], show_progress=False)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 5)
    assert t.search("lemmatisation", 1)[0].doc_id == "kb/b.md"
    assert t.search("stemming", 3)[0].doc_id != "kb/b.md"

    # nothing already indexed is lost when a file turns bad
    c.write_bytes(b"\x00\x01binary now")
    a.unlink()
    rows.write_text(json.dumps({"id": "r0", "text": "row 0"}) + "\n", encoding="utf-8")
    no_prune = index_paths(t, [root], show_progress=False)
    assert no_prune.pruned == 0 and "kb/a.md" in t.manifest.doc_ids()
    pruned = index_paths(t, [root], prune=True, show_progress=False)
    assert pruned.pruned == 3  # a.md (gone) and r1, r2 (left rows.jsonl)
    assert t.manifest.doc_ids() == {"kb/b.md", "kb/sub/c.txt", "r0"}
    assert "binary" in _reasons(pruned)["c.txt"]
    for r in t.pipeline.retrievers.values():
        assert r.index.doc_ids() == t.manifest.doc_ids()


def test_prune_only_touches_the_given_roots(t: Trawl, tmp_path: Path) -> None:
    one = _write(tmp_path / "one" / "x.md", "one")
    _write(tmp_path / "two" / "y.md", "two")
    index_paths(t, [tmp_path / "one", tmp_path / "two"], show_progress=False)
    one.unlink()
    (tmp_path / "two" / "y.md").unlink()
    report = index_paths(t, [tmp_path / "one"], prune=True, show_progress=False)
    assert report.pruned == 1 and t.manifest.doc_ids() == {"two/y.md"}


def test_same_ids_from_two_roots_are_reported(t: Trawl, tmp_path: Path) -> None:
    _write(tmp_path / "p" / "docs" / "a.md", "first")
    _write(tmp_path / "q" / "docs" / "a.md", "second")
    report = index_paths(t, [tmp_path / "p" / "docs", tmp_path / "q" / "docs"],
                         show_progress=False)
    assert report.added == 1
    assert "already used by" in report.skipped[0].reason


def test_document_hash_matches_the_manifest(t: Trawl, tmp_path: Path) -> None:
    from trawl.ingest import document_hash

    _write(tmp_path / "kb" / "a.md", "# A\n\ntext")
    index_paths(t, [tmp_path / "kb"], show_progress=False)
    doc = next(d for d in load_documents([tmp_path / "kb"]) if isinstance(d, trawl.Document))
    assert t.manifest.hashes()[doc.id] == document_hash(doc)


def test_one_progress_bar_on_stderr(host: trawl.PluginHost, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    for i in range(5):
        _write(tmp_path / "kb" / f"{i}.md", f"# Doc {i}\n\ncontent {i}")
    with Trawl.open(tmp_path / "i", pipeline=HASHING_PIPELINE, host=host,
                    show_progress=True) as tr:
        report = index_paths(tr, [tmp_path / "kb"], show_progress=True)
    out, err = capsys.readouterr()
    assert report.added == 5
    assert "indexing" not in out  # Trawl.add's own bar stayed off; stdout is for --json
    assert err.count("indexing 5 files") == 1 and "docs/s" in err
    assert "5 added" in report.summary()
