"""Bad specs: one mistake per file in tests/diagnostics/, the expected diagnostic beside it.

Each NAME.arch is checked with `archdsl check` (plus the --set values in NAME.sets, if any);
stderr must equal NAME.expected and the exit code must be 1, with no traceback.
Regenerate after a deliberate wording change with UPDATE_SNAPSHOTS=1 and review the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archdsl.cli import app

HERE = Path(__file__).parent / "diagnostics"
CASES = sorted(p.stem for p in HERE.glob("*.arch"))


def run_check(name: str):
    args = ["check", f"{name}.arch"]
    sets = HERE / f"{name}.sets"
    if sets.exists():
        for line in sets.read_text().split():
            args += ["--set", line]
    cwd = os.getcwd()
    os.chdir(HERE)
    try:
        return CliRunner().invoke(app, args)
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("name", CASES)
def test_diagnostic_snapshot(name):
    result = run_check(name)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    expected_path = HERE / f"{name}.expected"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        expected_path.write_text(result.stderr)
    assert result.stderr == expected_path.read_text(), result.stderr


def test_every_case_has_a_snapshot():
    missing = [n for n in CASES if not (HERE / f"{n}.expected").exists()]
    assert not missing, f"diagnostic cases without an expected file: {missing}"


def test_table1_typo_is_reported_on_the_right_rows():
    """The paper's Table 1 pasted verbatim: the s2 typo on the last depthwise row (line 26)
    is caught at the next row's declared input (line 27), and the note points at the stride."""
    err = run_check("table1_verbatim").stderr
    assert "table1_verbatim.arch:27:" in err and "declared input 7x7x1024, inferred 4x4x1024" in err
    assert "table1_verbatim.arch:26:" in err and "stride 2 on line 26" in err


def test_table1_verbatim_without_the_typo_is_mobilenet_v1():
    from archdsl.analysis.costs import totals
    from conftest import parse_text

    text = (HERE / "table1_verbatim.arch").read_text()
    fixed = text.replace("Conv dw / s2\t3 × 3 × 1024", "Conv dw / s1\t3 × 3 × 1024")
    assert fixed != text
    t = totals(parse_text(fixed))
    assert (t["macs"], t["params"]) == (568_740_352, 4_209_088)
