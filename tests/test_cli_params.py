"""archdsl.commands.plain_params converts plain command-line values without pydantic: the same
values and messages as typer's own (pydantic) coercion, which is the oracle here."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

pytest.importorskip("typer._coercion", reason="this typer has no pydantic coercion layer to stand in for")

from typer import _coercion  # noqa: E402
from typer._click.exceptions import BadParameter  # noqa: E402
from typer.models import OptionInfo  # noqa: E402

from archdsl.commands import plain_params  # noqa: E402

CASES = [
    (int, "3"), (int, " 7 "), (int, "-2"), (int, "+4"), (int, "1.5"), (int, "abc"), (int, ""), (int, 5),
    (float, "0.1"), (float, "1e3"), (float, " 2 "), (float, "-0.25"), (float, "abc"), (float, ""), (float, 0.1),
    (float, 3),
    (str, "x y"), (str, ""), (Path, "a/b.arch"), (Path, "/tmp/x"),
    (bool, "yes"), (bool, "off"), (bool, "TRUE"), (bool, "0"), (bool, "maybe"), (bool, True), (bool, False),
    (List[str], ("alpha=0.5", "rho=1")), (List[str], ()), (List[str], "one"), (List[Path], ("x", "y/z")),
]


def _outcome(runtime, value):
    try:
        out = runtime._coerce_value(value, param=None, ctx=None)
    except BadParameter as e:
        return "error", e.message
    return type(out).__name__, out


@pytest.mark.parametrize("annotation, value", CASES, ids=[f"{getattr(a, '__name__', a)}-{v!r}" for a, v in CASES])
def test_plain_values_convert_as_typers_adapters_do(annotation, value):
    descriptor = _coercion.resolve_type_descriptor(annotation, OptionInfo())
    ours = plain_params.plain_runtime_param(descriptor)
    assert ours is not None, f"{annotation} should be converted without pydantic"
    theirs = _coercion.build_runtime_param(descriptor)
    assert not isinstance(theirs, type(ours))
    assert _outcome(ours, value) == _outcome(theirs, value)


def test_other_parameters_are_left_to_typer():
    assert plain_params.plain_runtime_param(_coercion.resolve_type_descriptor(int, OptionInfo(min=1))) is None


def test_stats_does_not_import_pydantic():
    code = ("import sys, runpy; sys.argv=['archdsl','stats','specs/digits_cnn.arch','--recompute-budget','0.2'];\n"
            "try:\n    runpy.run_module('archdsl', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] == 'pydantic'))")
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip().endswith("LOADED []"), out[-300:]
