"""The documentation's examples are real: every ```arch block in docs/ elaborates, and the README's
test command is the one CI runs."""
from __future__ import annotations

import re

import pytest

from conftest import ROOT, parse_text

BLOCKS = []
for doc in sorted((ROOT / "docs").glob("*.md")):
    for i, m in enumerate(re.finditer(r"```arch\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)):
        BLOCKS.append(pytest.param(m.group(1), id=f"{doc.stem}-{i + 1}"))


@pytest.mark.parametrize("text", BLOCKS)
def test_doc_example_elaborates(text):
    graph = parse_text(text)
    assert graph.nodes


def test_language_doc_has_examples():
    assert sum(1 for b in BLOCKS if "language" in b.id) >= 10


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = "pip install -e '.[dev]' && python -m pytest"
    assert command in readme
    assert ci.strip().splitlines()[-1] == command
    # ... the way a newcomer runs it: in a fresh venv that sees none of the machine's packages
    before = ci[:ci.index(command)]
    assert re.search(r"^python3? -m venv ", before, re.M) and "--system-site-packages" not in before
    assert re.search(r"^\. \S*/bin/activate", before, re.M)
