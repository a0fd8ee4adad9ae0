"""`archdsl compile --target c --mcu …` reports flash and RAM of a Cortex-M build."""
from __future__ import annotations

import re
import shutil

import pytest
from typer.testing import CliRunner

from archdsl.analysis.costs import totals
from archdsl.cli import app
from conftest import load_graph

SPEC = "mobilenet_v1.arch"
SETS = ["alpha=0.25", "rho=64/224", "classes=2"]


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None,
                    reason="needs gcc-arm-none-eabi and qemu-system-arm (.ci/run installs them)")
def test_compile_mcu_reports_flash_and_ram(tmp_path):
    args = ["compile", f"specs/{SPEC}", "--target", "c", "-o", str(tmp_path / "c"), "--mcu", "cortex-m4"]
    for s in SETS:
        args += ["--set", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    out = res.stdout

    def value(label):
        m = re.search(rf"{label}\s*│\s*([\d,]+)", out)
        assert m, f"no '{label}' row in:\n{out}"
        return int(m.group(1).replace(",", ""))

    graph = load_graph(SPEC, alpha=0.25, rho=64 / 224, classes=2)
    assert value("arena") == totals(graph)["peak_activation_bytes"]  # stats and the C arena agree
    weights = value("weights")
    # BN-folded float32 parameters are the bulk of the weights' flash
    assert 4 * totals(graph)["params_folded"] <= weights < 4 * totals(graph)["params_folded"] + 4096
    assert value("flash total") == weights + value("code")
    assert value("RAM total") == value("arena") + value(r"stack \(measured\)")
    assert "instructions" in out


def test_mcu_option_is_for_the_c_target_only(tmp_path):
    res = CliRunner().invoke(app, ["compile", f"specs/{SPEC}", "--target", "numpy", "-o", str(tmp_path),
                                   "--mcu", "cortex-m4"])
    assert res.exit_code == 1 and "--mcu applies to the C target only" in res.stderr
