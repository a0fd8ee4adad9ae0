"""`archdsl run` (default target c) and `archdsl compile --target c` from the command line."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from archdsl.backends import c_target
from archdsl.backends.numpy_target import reference_forward
from archdsl.cli import app
from archdsl.commands.verify import compare
from archdsl.weights import init_weights, save_npz

from conftest import SPECS, load_graph

needs_cc = pytest.mark.skipif(c_target.unavailable() is not None, reason="no C compiler")
SPEC = str(SPECS / "mobilenet_v1.arch")
SMALL = ["--set", "alpha=0.25", "--set", "rho=96/224", "--set", "classes=2"]


def small_graph():
    return load_graph("mobilenet_v1.arch", alpha=0.25, rho=96 / 224, classes=2)


def invoke(*args):
    return CliRunner().invoke(app, list(args))


@needs_cc
def test_run_writes_the_output(tmp_path):
    g = small_graph()
    w = init_weights(g, 5)
    save_npz(w, tmp_path / "w.npz")
    x = np.random.default_rng(1).standard_normal((2, *g.input_shape.chw)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = invoke("run", SPEC, *SMALL, "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy"),
               "--weights", str(tmp_path / "w.npz"))
    assert r.exit_code == 0, r.output
    y = np.load(tmp_path / "y.npy")
    ref, _ = reference_forward(g, w, x)
    assert y.shape == ref.shape == (2, 2, 1, 1)
    assert compare(y, ref).ok
    assert "output[1]:" in r.output


@needs_cc
def test_run_accepts_one_chw_image(tmp_path):
    g = small_graph()
    np.save(tmp_path / "x.npy", np.zeros(g.input_shape.chw, np.float32))
    r = invoke("run", SPEC, *SMALL, "--input", str(tmp_path / "x.npy"))
    assert r.exit_code == 0, r.output
    assert "output[0]:" in r.output and "output[1]" not in r.output


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "no such input file"),
    (lambda p: np.save(p, np.zeros((96, 96, 3), np.float32)), "NCHW"),
    (lambda p: p.write_text("not an array"), "not a plain .npy"),
    (lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True), "not a plain .npy"),
])
def test_run_input_errors_are_diagnostics(tmp_path, make, message):
    path = tmp_path / "x.npy"
    make(path)
    r = invoke("run", SPEC, *SMALL, "--input", str(path))
    assert r.exit_code == 1
    assert "error:" in r.output and message in r.output
    assert "Traceback" not in r.output


def test_run_option_errors(tmp_path):
    r = invoke("run", SPEC, *SMALL, "--target", "numpy", "--mcu", "cortex-m4")
    assert r.exit_code == 1 and "--mcu applies to the C target only" in r.output
    r = invoke("run", SPEC, *SMALL, "-o", str(tmp_path / "y.txt"))
    assert r.exit_code == 1 and ".npy" in r.output


@pytest.mark.skipif(c_target.mcu_unavailable() is not None, reason=str(c_target.mcu_unavailable()))
def test_run_on_cortex_m4_prints_sizes_and_instructions(tmp_path):
    g = small_graph()
    x = np.random.default_rng(2).standard_normal((1, *g.input_shape.chw)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = invoke("run", SPEC, *SMALL, "--mcu", "cortex-m4", "--input", str(tmp_path / "x.npy"),
               "-o", str(tmp_path / "y.npy"))
    assert r.exit_code == 0, r.output
    for word in ("weights", "flash total", "arena", "stack (measured)", "RAM total", "instructions", "per mult-add"):
        assert word in r.output
    ref, _ = reference_forward(g, init_weights(g, 0), x)
    assert compare(np.load(tmp_path / "y.npy"), ref).ok


def test_run_unknown_mcu():
    if c_target.mcu_unavailable() is not None:
        pytest.skip(str(c_target.mcu_unavailable()))
    r = invoke("run", SPEC, *SMALL, "--mcu", "cortex-m0")
    assert r.exit_code == 1 and "unknown MCU" in r.output


@needs_cc
def test_compile_and_run_c_never_import_torch_or_onnx(tmp_path):
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from archdsl.cli import app\n"
        f"r = CliRunner().invoke(app, ['compile', {SPEC!r}, '--target', 'c', '-o', {str(tmp_path / 'c')!r}, "
        "'--set', 'alpha=0.25', '--set', 'rho=96/224'])\n"
        "assert r.exit_code == 0, r.output\n"
        f"r = CliRunner().invoke(app, ['run', {SPEC!r}, '--set', 'alpha=0.25', '--set', 'rho=96/224'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx', 'onnxruntime'))\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "c" / "mobilenet_v1.c").exists()
