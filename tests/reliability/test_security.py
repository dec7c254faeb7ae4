"""No code path deserialises untrusted files with pickle/eval/yaml.load."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = [p for root in ("core", "plugins", "tui") for p in (REPO / root).rglob("*.py")]
FORBIDDEN = [
    # patterns assembled from parts so this file does not match the repo-wide grep itself
    (re.compile(r"\b" + "pickle" + r"\.loads?\("), "pickle load"),
    (re.compile(r"\b" + "cloudpickle" + r"\.loads?\("), "cloudpickle load"),
    (re.compile(r"(?<![\w.])eval\("), "eval("),
    (re.compile(r"(?<![\w.])exec\("), "exec("),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only"),
]


def test_sources_exist() -> None:
    assert len(SOURCES) > 20


def test_no_unsafe_deserialisation() -> None:
    problems = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for pattern, name in FORBIDDEN:
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"{path.relative_to(REPO)}:{line}: {name}")
        for m in re.finditer(r"\byaml\.load\(([^)]*)\)", text):
            if "SafeLoader" not in m.group(1):
                problems.append(f"{path.relative_to(REPO)}: yaml.load without SafeLoader")
    assert problems == []
