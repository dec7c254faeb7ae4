"""trawl-office: Word, PowerPoint and Excel files (the ``office`` extra: python-docx,
python-pptx, openpyxl). Without the extra these files are skipped with a reason that
names the package to install."""

from __future__ import annotations

from typing import Any

import trawl


@trawl.hookimpl
def register_readers(register: Any) -> None:
    register("trawl_office.readers:DocxReader", name="docx")
    register("trawl_office.readers:PptxReader", name="pptx")
    register("trawl_office.readers:XlsxReader", name="xlsx")
