"""`archdsl check` and `archdsl stats` from the command line."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from archdsl.cli import app
from conftest import SPECS

V1 = str(SPECS / "mobilenet_v1.arch")
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, list(args))


def test_stats_json_schema_and_values():
    res = invoke("stats", V1, "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["network"] == "mobilenet_v1"
    assert d["params"] == {"alpha": 1.0, "rho": 1.0, "classes": 1000}
    assert d["input"] == [224, 224, 3]
    assert set(d["totals"]) == {"macs", "params", "params_with_bias", "params_with_bn", "params_keras",
                                "params_folded", "peak_activation_bytes"}
    assert d["totals"]["macs"] == 568_740_352 and d["totals"]["params"] == 4_209_088
    assert "convention" in d
    assert {r["type"] for r in d["by_type"]} == {"Conv 1x1", "Conv DW 3x3", "Conv 3x3", "Fully Connected"}
    assert set(d["by_type"][0]) == {"type", "macs", "macs_pct", "params", "params_pct"}
    layer = d["layers"][0]
    assert set(layer) == {"name", "line", "op", "in", "out", "macs", "params", "activation_bytes"}
    assert layer["in"] == [224, 224, 3] and layer["out"] == [112, 112, 32]
    assert sum(r["macs"] for r in d["layers"]) == d["totals"]["macs"]
    assert sum(r["params"] for r in d["layers"]) == d["totals"]["params"]
    # the spec line of every layer points at a row of the spec file
    lines = (SPECS / "mobilenet_v1.arch").read_text().splitlines()
    for r in d["layers"]:
        assert r["op"].split("+")[0] in lines[r["line"] - 1].lower(), r


def test_stats_set_with_arithmetic():
    res = invoke("stats", V1, "--set", "alpha=0.5", "--set", "rho=192/224", "--format", "json")
    d = json.loads(res.stdout)
    assert d["input"] == [192, 192, 3]
    assert d["params"]["rho"] == pytest.approx(192 / 224)


def test_stats_sweep_json_is_the_cross_product():
    res = invoke("stats", V1, "--sweep", "alpha=1,0.5", "--sweep", "rho=1,128/224", "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["network"] == "mobilenet_v1"
    assert [r["set"] for r in d["sweep"]] == [{"alpha": 1, "rho": 1}, {"alpha": 1, "rho": 128 / 224},
                                              {"alpha": 0.5, "rho": 1}, {"alpha": 0.5, "rho": 128 / 224}]
    assert d["sweep"][1]["input"] == [128, 128, 3]
    assert d["sweep"][0]["macs"] == 568_740_352
    assert set(d["sweep"][0]) == {"set", "input", "macs", "params"}


def test_stats_csv_by_type_and_layers():
    res = invoke("stats", V1, "--format", "csv", "--by", "type")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert [r["type"] for r in rows][0] == "Conv 1x1"
    assert int(rows[0]["mult-adds"]) == 539_492_352
    res = invoke("stats", V1, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(res.stdout)))
    assert len(rows) == 30 and rows[0]["layer"] == "conv1"


def test_stats_markdown_and_table():
    md = invoke("stats", V1, "--format", "markdown").stdout
    assert "| Conv 1x1 | 539,492,352 | 94.86% | 3,139,584 | 74.59% |" in md
    table = invoke("stats", V1).stdout
    assert "568,740,352" in table and "Conv DW 3x3" in table and "conv14" in table
    assert "round floor" in table  # the width rule is printed


def test_stats_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "fig.png"
    res = invoke("stats", V1, "--sweep", "alpha=1,0.75,0.5,0.25", "--plot", str(out), "--format", "json")
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


SWEEP_16 = ["--sweep", "alpha=1,0.75,0.5,0.25", "--sweep", "rho=1,0.857143,0.714286,0.571429"]


def _sweep_results():
    from archdsl import report
    from archdsl.cli import parse_assignment
    from archdsl.elaborate import elaborate
    from archdsl.syntax import parse

    spec = parse(open(V1).read(), V1)
    axes = [[parse_assignment(f"{k}={v}", "--sweep") for v in vals.split(",")]
            for k, vals in (a.split("=", 1) for a in SWEEP_16[1::2])]
    return report.run_sweep(spec, {}, axes, elaborate)


def test_plot_series_are_the_papers_figures():
    """MobileNet's Figures 4-5: one series per α joined across the four resolutions, the points
    named by their input size in pixels (192, not ρ = 0.857143), in resolution order."""
    from archdsl.report import plot_series

    series = plot_series(_sweep_results())
    assert [label for label, _ in series] == ["α = 1", "α = 0.75", "α = 0.5", "α = 0.25"]
    for _, points in series:
        assert [p[0] for p in points] == ["128", "160", "192", "224"]
        assert len({p[2] for p in points}) == 1  # the parameters do not depend on the resolution
    assert series[0][1][-1][1:] == (568_740_352, 4_209_088)  # Table 6 / Table 7: 1.0 MobileNet-224


def test_plot_labels_are_plain_and_do_not_overlap():
    pytest.importorskip("matplotlib")
    from matplotlib.lines import Line2D

    from archdsl.report import figure

    fig = figure(_sweep_results(), "mobilenet_v1")
    ax = fig.axes[0]
    lines = [ln for ln in ax.get_lines() if isinstance(ln, Line2D) and len(ln.get_xdata()) > 1]
    assert len(lines) == 4 and all(len(ln.get_xdata()) == 4 for ln in lines)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ticks = []
    for axis in (ax.xaxis, ax.yaxis):  # the labels drawn: those of ticks inside the view
        lo, hi = sorted(axis.get_view_interval())
        ticks += [t for t, v in zip(axis.get_majorticklabels(), axis.get_majorticklocs()) if lo <= v <= hi]
    assert len(ticks) >= 6
    for t in ticks:
        assert not any(ch in t.get_text() for ch in "×^$\\"), t.get_text()  # not 3x10^0
        float(t.get_text())
    texts = [t for t in ax.texts] + ax.get_legend().get_texts() + ticks
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i, a in enumerate(boxes):
        for j in range(i + 1, len(boxes)):
            assert not a.overlaps(boxes[j]), f"{texts[i].get_text()!r} overlaps {texts[j].get_text()!r}"
    assert sorted(t.get_text() for t in ax.texts) == sorted(["128", "160", "192", "224"] * 4)


def test_plot_without_matplotlib_is_a_clear_error(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    res = invoke("stats", V1, "--plot", str(tmp_path / "x.png"), "--format", "json")
    assert res.exit_code == 1
    assert "--plot needs matplotlib" in res.stderr and "archdsl[plot]" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["--format", "xml"], "--format 'xml'"),
    (["--by", "row"], "--by 'row'"),
    (["--set", "alpha"], "expected NAME=VALUE"),
    (["--set", "alpha=0.5)"], "cannot read the value"),
    (["--sweep", "alpha"], "expected NAME=V1,V2"),
    (["--set", "beta=1"], "has no parameter 'beta'"),
])
def test_stats_argument_errors(args, message):
    res = invoke("stats", V1, *args)
    assert res.exit_code == 1
    assert message in res.stderr and "Traceback" not in res.stderr


def test_check_prints_shapes():
    res = invoke("check", V1)
    assert res.exit_code == 0
    assert "7x7x1024" in res.stdout and "ok: 84 nodes, output 1x1x1000" in res.stdout


def test_missing_file_is_a_diagnostic():
    res = invoke("stats", "no/such.arch")
    assert res.exit_code == 1 and res.stderr.startswith("error: no such spec file")


def test_python_dash_m_and_no_torch_or_onnx_on_the_stats_path():
    code = ("import sys, runpy; sys.argv=['archdsl','stats',%r,'--format','json'];\n"
            "try:\n    runpy.run_module('archdsl', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "bad=[m for m in ('torch','onnx','onnxruntime','matplotlib') if m in sys.modules]\n"
            "print('LOADED', bad)") % V1
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("LOADED []"), out[-300:]
    assert '"macs": 568740352' in out
