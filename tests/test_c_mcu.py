"""The C target on Cortex-M4 (QEMU mps2-an386) and Cortex-M7 (mps2-an500): the generated model plus
the harness in codegen_templates/c/mcu are cross-compiled with arm-none-eabi-gcc (-std=c99 -Wall
-Wextra -Werror -pedantic), run under qemu-system-arm with semihosting and -icount shift=0, and the
outputs are compared with the NumPy reference (the tolerance of `archdsl verify`, see test_c_target).

These tests run whenever the toolchain is installed (.ci/run installs it), and are skipped with the
reason otherwise.
"""
from __future__ import annotations

import numpy as np
import pytest

from archdsl.backends import c_target
from archdsl.backends.numpy_target import reference_forward
from archdsl.commands.verify import compare
from archdsl.weights import init_weights

from conftest import load_graph, parse_text
from test_c_target import ALL_OPS

pytestmark = pytest.mark.skipif(c_target.mcu_unavailable() is not None,
                                reason=str(c_target.mcu_unavailable()))

MODELS = {
    # the MobileNetV1 of the MCU benchmarks: α = 0.25, 96x96 input (ρ = 96/224), 2 classes
    "mobilenet_v1_025_96": lambda: load_graph("mobilenet_v1.arch", alpha=0.25, rho=96 / 224, classes=2),
    "allops": lambda: parse_text(ALL_OPS),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request, tmp_path_factory):
    g = MODELS[request.param]()
    w = init_weights(g, 0)
    outdir = tmp_path_factory.mktemp(request.param)
    c_target.compile(g, w, outdir, "net")
    x = np.random.default_rng(7).standard_normal((2, *g.input_shape.chw)).astype(np.float32)
    ref, _ = reference_forward(g, w, x)
    return g, outdir, x, ref


@pytest.mark.parametrize("mcu", ["cortex-m4", "cortex-m7"])
def test_runs_under_qemu_and_matches_reference(model, mcu):
    g, outdir, x, ref = model
    b = c_target.build_mcu(outdir, "net", mcu)
    r = c_target.run_mcu(b, x, g.output_shape.numel)
    c = compare(r.output, ref.reshape(len(x), -1))
    assert c.ok, f"{g.name} on {mcu}: max abs diff {c.max_abs:.3g} (tolerance {c.atol:.3g} + 1e-3*|ref|)"
    assert len(r.ticks) == len(x) and all(t > 0 for t in r.ticks)
    again = c_target.run_mcu(b, x[:1], g.output_shape.numel)
    assert again.ticks[0] == r.ticks[0], "-icount shift=0 makes the count of a given input deterministic"
    assert np.array_equal(again.output[0], r.output[0])
    assert 0 < r.stack_bytes < 16384


@pytest.mark.parametrize("mcu", ["cortex-m4", "cortex-m7"])
def test_sizes(model, mcu):
    """The weights object holds exactly the folded weights; .bss of the model is exactly the arena."""
    g, outdir, _, _ = model
    b = c_target.build_mcu(outdir, "net", mcu)
    header = (outdir / "net.h").read_text()
    n_weights = int(header.split("#define NET_WEIGHT_FLOATS ")[1].split()[0])
    block = int(header.split("#define NET_WEIGHT_BYTES ")[1].split()[0])
    arena = int(header.split("#define NET_ARENA_BYTES ")[1].split()[0])
    assert b.weights_bytes == block and 4 * n_weights <= block < 4 * n_weights + 16 * 64  # 16-byte padding
    assert b.arena_bytes == arena
    assert 0 < b.code_bytes < 32768, "the kernels and the call sequence are a few KB"
    rows = dict((what, value) for what, value, _ in c_target.size_table(b, arena, 512))
    assert rows["flash total"] == f"{b.weights_bytes + b.code_bytes:,}"
    assert rows["RAM total"] == f"{arena + 512:,}"


def test_makefile_cortex_m_targets(tmp_path):
    """The generated Makefile's own Cortex-M rules build warning-free and report sizes."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("no make")
    g = parse_text(ALL_OPS)
    c_target.compile(g, init_weights(g, 0), tmp_path, "net")
    for goal in ("cortex-m4", "cortex-m7", "size-m4"):
        proc = subprocess.run(["make", "-s", goal], cwd=tmp_path, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert "warning" not in proc.stderr
    assert (tmp_path / "net_cortex-m4.elf").exists() and (tmp_path / "net_cortex-m7.elf").exists()
    assert "net_weights.o" in proc.stdout and "net_cortex-m4.elf" in proc.stdout
