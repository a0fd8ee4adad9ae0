"""`archdsl verify`: exit codes, the comparison rule, and naming the first diverging layer
of a deliberately broken target."""
from __future__ import annotations

import sys
import types

import numpy as np
import pytest
from conftest import SPECS
from typer.testing import CliRunner

from archdsl import backends
from archdsl.backends import numpy_target
from archdsl.cli import app
from archdsl.commands.verify import compare

V1 = str(SPECS / "mobilenet_v1.arch")
SMALL = ["--set", "alpha=0.25", "--set", "rho=0.25"]
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def fake_target(monkeypatch, name: str, *, edit=None, layers=True, unavailable=None, crash=None):
    """A target registered under `name`: the NumPy target with its generated source edited by `edit`."""
    mod = types.ModuleType(f"fake_{name}")
    mod.NAME, mod.EXTRA = name, None
    mod.unavailable = lambda: unavailable

    def compile(graph, weights, outdir, stem):
        paths = numpy_target.compile(graph, weights, outdir, stem)
        if edit is not None:
            src = paths[0].read_text()
            changed = edit(src)
            assert changed != src, "the edit did not apply"
            paths[0].write_text(changed)
        return paths

    def run(outdir, stem, x):
        if crash:
            raise crash
        return numpy_target.run(outdir, stem, x)

    mod.compile, mod.run = compile, run
    if layers:
        mod.run_layers = numpy_target.run_layers
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(backends.TARGETS, name, mod.__name__)


def max_instead_of_mean(src: str) -> str:
    """Break the global average pool: it takes the max."""
    return src.replace("return x.mean(axis=(2, 3), keepdims=True, dtype=np.float32)",
                       "return x.max(axis=(2, 3), keepdims=True)")


# ---------------------------------------------------------------- the comparison rule


def test_compare_is_scale_aware():
    ref = np.array([1000.0, 1.0, 0.0])
    atol = 1e-4 * 1000 + 1e-5
    assert compare(ref + [0.0, 0.09, 0.09], ref).ok  # within atol = 0.1 everywhere
    c = compare(ref + [0.0, 0.0, 0.2], ref)
    assert not c.ok and c.where == (2,) and c.max_abs == pytest.approx(0.2) and c.atol == pytest.approx(atol)
    assert compare(ref * (1 + 9e-4), ref).ok  # the relative part: 1e-3 * |ref|
    small = np.array([1e-7, -2e-7])
    assert compare(small + 9e-6, small).ok and not compare(small + 2e-5, small).ok  # the absolute floor


def test_layer_scale_includes_the_inputs():
    from archdsl.commands.verify import layer_scale
    from conftest import parse_text

    g = parse_text("network t()\ninput 2x2x1\nrelu6\nsoftmax\n")
    ref = {"input": np.array([-50.0, 3.0]), "relu61": np.array([0.0, 3.0]), "softmax1": np.array([0.1, 0.9])}
    assert layer_scale(g, ref, "relu61") == 50.0  # the input's scale: relu6 clipped the -50
    assert layer_scale(g, ref, "softmax1") == 3.0
    assert compare([0.0, 3.004], ref["relu61"], 50.0).ok and not compare([0.0, 3.004], ref["relu61"]).ok


def test_compare_rejects_nan_and_reshapes():
    ref = np.ones((2, 5, 1, 1))
    assert compare(ref.reshape(2, 5), ref).ok
    bad = ref.copy()
    bad[1, 3] = np.nan
    assert not compare(bad, ref).ok
    with pytest.raises(ValueError, match="does not match"):
        compare(np.ones((2, 4)), ref)


# ---------------------------------------------------------------- the command


def test_verify_numpy_passes():
    res = invoke("verify", V1, *SMALL, "--targets", "numpy", "--batch", "2")
    assert res.exit_code == 0, res.output
    row = next(line for line in res.stdout.splitlines() if "│ numpy" in line)
    assert "ok" in row and "/84" in row
    assert "ok: numpy within tolerance" in res.stdout


def test_a_broken_target_fails_and_names_the_first_diverging_layer(monkeypatch):
    fake_target(monkeypatch, "broken", edit=max_instead_of_mean)
    res = invoke("verify", V1, *SMALL, "--targets", "numpy,broken")
    assert res.exit_code == 1, res.output
    out = res.stdout
    assert next(line for line in out.splitlines() if "│ numpy" in line).rstrip(" │").endswith("ok")
    assert "FAIL" in next(line for line in out.splitlines() if "│ broken" in line)
    assert "broken: first diverging layer: pool1 (avg pool, line 32: avg pool / s1 7x7 @ 7x7x1024 global)" in out
    assert "verify: broken out of tolerance or failed" in res.stderr


def test_divergence_hidden_by_softmax_is_still_found(monkeypatch):
    """A small error in the logits barely moves 1000-way softmax outputs; the layer check catches it."""
    fake_target(monkeypatch, "logits", edit=lambda s: s.replace(
        "    return bias_act(y, b, act).reshape(n, -1, 1, 1)",
        "    y[:, 0] += 0.01 * np.abs(y).max()\n    return bias_act(y, b, act).reshape(n, -1, 1, 1)"))
    res = invoke("verify", V1, *SMALL, "--targets", "logits")
    assert res.exit_code == 1, res.output
    assert "logits: first diverging layer: fc1 (fc, line 33" in res.stdout


LOGIT_NUDGE = ("    return bias_act(y, b, act).reshape(n, -1, 1, 1)",
               "    y[:, 0] += 0.01 * np.abs(y).max()\n    return bias_act(y, b, act).reshape(n, -1, 1, 1)")


def test_logits_are_compared_even_without_run_layers(monkeypatch):
    """The final softmax hides a 1% error in one logit; verify builds the network up to its
    logits and compares them (before, the output check passed and nothing else was compared)."""
    fake_target(monkeypatch, "opaquelogits", edit=lambda s: s.replace(*LOGIT_NUDGE), layers=False)
    res = invoke("verify", V1, *SMALL, "--targets", "numpy,opaquelogits")
    assert res.exit_code == 1, res.output
    text = " ".join(res.stdout.split())
    assert "opaquelogits: the logits (fc1, the softmax's input) are out of tolerance: max abs diff" in text
    assert "logits: fc1, the softmax's input" in text
    assert "verify: opaquelogits out of tolerance or failed" in res.stderr


def test_verify_reports_the_logits_difference():
    res = invoke("verify", V1, *SMALL, "--targets", "numpy")
    assert res.exit_code == 0, res.output
    assert "logits max" in res.stdout
    row = next(line for line in res.stdout.splitlines() if line.startswith("│ numpy"))
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[4] != "-" and float(cells[4]) < float(cells[5])  # logits diff within the logits atol


def test_without_run_layers_the_layer_cannot_be_named(monkeypatch):
    fake_target(monkeypatch, "opaque", edit=max_instead_of_mean, layers=False)
    res = invoke("verify", V1, *SMALL, "--targets", "opaque")
    assert res.exit_code == 1
    assert "opaque: the opaque target does not expose run_layers(), so the first diverging layer cannot be named" \
        in " ".join(res.stdout.split())


def test_unavailable_targets_are_skipped_with_the_reason(monkeypatch):
    fake_target(monkeypatch, "nocc", unavailable="no C compiler (gcc) on PATH")
    monkeypatch.setitem(backends.TARGETS, "future", "archdsl.backends.future_target")
    res = invoke("verify", V1, *SMALL, "--targets", "numpy,nocc,future")
    assert res.exit_code == 0, res.output
    text = " ".join(res.stdout.split())
    assert "nocc: skipped: the nocc target is unavailable: no C compiler (gcc) on PATH" in text
    assert "future: skipped: the future target is not part of this installation" in text


def test_a_crashing_target_is_an_error_not_a_traceback(monkeypatch):
    fake_target(monkeypatch, "crashy", crash=RuntimeError("segfault in generated code"))
    res = invoke("verify", V1, *SMALL, "--targets", "crashy")
    assert res.exit_code == 1
    assert "crashy: error: RuntimeError: segfault in generated code" in " ".join(res.stdout.split())
    assert "Traceback" not in res.output


def test_bad_arguments_are_diagnostics():
    res = invoke("verify", V1, "--targets", "numpy,tflte")
    assert res.exit_code == 1 and "error: unknown target 'tflte'" in res.stderr
    res = invoke("verify", V1, "--targets", ",")
    assert res.exit_code == 1 and "error: --targets is empty" in res.stderr
    res = invoke("verify", V1, "--batch", "0")
    assert res.exit_code == 2  # typer's range check


def test_seed_changes_the_weights_and_input():
    from archdsl.commands.verify import run_verify
    from conftest import load_graph

    graph = load_graph("mobilenet_v1.arch", alpha=0.25, rho=0.25)
    a = run_verify(graph, ["numpy"], seed=1, batch=1)[0]
    b = run_verify(graph, ["numpy"], seed=2, batch=1)[0]
    assert a.status == b.status == "ok"
    assert a.cmp.atol != b.cmp.atol  # other weights and input, other output scale


def test_verify_c_on_a_network_without_parameters(tmp_path):
    """Before, the C column said only 'compiling t_weights.c failed (exit 1)'."""
    spec = tmp_path / "pools.arch"
    spec.write_text("network pools()\ninput 8x8x3\nmax pool 2x2\nrelu\nglobal avg pool\n")
    res = invoke("verify", spec, "--targets", "numpy,c")
    assert res.exit_code == 0, res.output


def test_verify_shows_the_compilers_message(monkeypatch):
    from archdsl.backends import c_target

    mod = types.ModuleType("fake_brokenc")
    mod.NAME, mod.EXTRA, mod.unavailable = "brokenc", None, lambda: None

    def compile(graph, weights, outdir, stem):
        paths = c_target.compile(graph, weights, outdir, stem)
        src = outdir / f"{stem}.c"
        src.write_text(src.read_text() + "\nstatic int broken = ;\n")
        return paths

    mod.compile, mod.run = compile, c_target.run
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(backends.TARGETS, "brokenc", mod.__name__)
    res = invoke("verify", V1, *SMALL, "--targets", "brokenc")
    assert res.exit_code == 1
    text = " ".join(res.stdout.split())
    assert "brokenc: error: compiling mobilenet_v1.c failed (exit 1): mobilenet_v1.c:" in text
    assert "brokenc: the compiler said:" in text and "static int broken = ;" in text
