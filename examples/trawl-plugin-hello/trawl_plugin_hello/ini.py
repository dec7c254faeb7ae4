"""``ini``: a reader for INI/``.cfg`` files (stdlib ``configparser``): one document per
file, each ``[section]`` a section of it, so chunks keep to a section and carry its name."""

from __future__ import annotations

import configparser

from trawl import Document, Reader, ReadOutput, SourceFile, UnreadableFileError
from trawl.chunking import CONTEXT, SECTIONS


class IniReader(Reader):
    """``key = value`` lines under ``[section]`` headings."""

    suffixes = frozenset({".ini", ".cfg"})

    def read(self, source: SourceFile) -> ReadOutput:
        try:
            text = source.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnreadableFileError(f"not UTF-8 text (byte {exc.start})") from exc
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            parser.read_string(text, source=source.path)
        except configparser.Error as exc:
            raise UnreadableFileError(f"not an INI file: {exc.message}") from exc
        lines: list[str] = []
        sections = []
        pos = 0
        for name in parser.sections():
            block = [f"[{name}]"] + [f"{k} = {v}" for k, v in parser.items(name, raw=True)]
            body = "\n".join(block)
            sections.append({"start": pos, "end": pos + len(body),
                             "labels": {"section": name, CONTEXT: f"{source.name} [{name}]"}})
            lines.append(body)
            pos += len(body) + 2
        if not lines:
            raise UnreadableFileError("no [sections]")
        out = ReadOutput()
        out.add(Document(id=source.doc_id, text="\n\n".join(lines),
                         metadata={"path": source.path, "title": source.name,
                                   "source_type": "ini", SECTIONS: sections}),
                len(source.data))
        return out
