"""In-place depthwise and patch-based first stages in the C runtime: the same outputs as the untiled
NumPy reference (within the tolerance of `archdsl verify`, see test_c_target), on the host (also
under -fsanitize=address,undefined) and on Cortex-M4 under QEMU; the arena the build allocates is
the one `stats` reports for that plan."""
from __future__ import annotations

import re

import numpy as np
import pytest

from archdsl.analysis import patch
from archdsl.analysis.memory import plan_memory
from archdsl.analysis.schedule import schedule
from archdsl.backends import c_target
from archdsl.backends.numpy_target import reference_forward
from archdsl.commands.verify import compare
from archdsl.weights import init_weights
from conftest import all_specs, load_graph, parse_text
from test_c_target import batch, reduced
from test_patches import GEOMETRIES

needs_cc = pytest.mark.skipif(c_target.unavailable() is not None, reason="no C compiler")


def _check(graph, plan, tmp_path, *, sanitize=False, what=""):
    w = init_weights(graph, 0)
    x = batch(graph)
    ref, ref_layers = reference_forward(graph, w, x, keep=True)
    c_target.compile(graph, w, tmp_path, "net", memory=plan)
    header = (tmp_path / "net.h").read_text()
    assert int(re.search(r"#define NET_ARENA_BYTES (\d+)", header).group(1)) == plan.arena_bytes
    c = compare(c_target.run(tmp_path, "net", x, sanitize=sanitize), ref)
    assert c.ok, f"{what}: output max abs diff {c.max_abs:.3g} (tolerance {c.atol:.3g} + 1e-3*|ref|)"
    if plan.patches is not None:  # the assembled prefix output, value by value
        layers = c_target.run_layers(tmp_path, "net", x)
        want = ref_layers[plan.patches.output]
        got = layers[plan.patches.output].reshape(want.shape)
        scale = float(np.abs(want).max())
        assert np.all(np.abs(got - want) <= 1e-4 * scale + 1e-5 + 1e-3 * np.abs(want)), what


def _lowered_by_a_plan(spec) -> bool:
    """Whether in-place depthwise or patches lower the spec's fp32 arena (at test_c_target's widths)."""
    rep = patch.memory_report(load_graph(spec, **reduced(spec)))
    return rep.patch is not None or rep.inplace.arena_bytes < rep.plain.arena_bytes


PLANNED = [s for s in all_specs() if _lowered_by_a_plan(s)]
# docs/memory.md: the zoo's specs whose peak no plan lowers (small inputs, or the peak past any
# tileable prefix); every other spec runs with its plan below
UNPLANNED = {"mobilenet_v1_cifar10", "mobilenet_v1_table3_conv", "mobilenet_v1_table3_separable", "resnet20_cifar"}


def test_the_specs_no_plan_lowers_are_the_documented_ones():
    assert {s.stem for s in all_specs()} - {s.stem for s in PLANNED} == UNPLANNED


@needs_cc
@pytest.mark.parametrize("spec", PLANNED, ids=lambda p: p.stem)
def test_every_spec_with_its_chosen_plan(spec, tmp_path):
    """fp32, on the host and, where the weights fit the QEMU board, on Cortex-M4."""
    graph = load_graph(spec, **reduced(spec))
    steps = schedule(graph)
    rep = patch.memory_report(graph)
    assert rep.patched.arena_bytes <= rep.plain.arena_bytes
    _check(graph, rep.patched, tmp_path, what=spec.stem)
    w = init_weights(graph, 0)
    fits = 4 * sum(v.size for v in w.values()) < 3 << 20  # the QEMU board's flash: 4 MiB
    if fits and c_target.mcu_unavailable() is None:  # and on Cortex-M4 under QEMU, with the arena as .bss
        x = batch(graph, n=1)
        b = c_target.build_mcu(tmp_path, "net", "cortex-m4")
        assert b.arena_bytes == rep.patched.arena_bytes
        c = compare(c_target.run_mcu(b, x, graph.output_shape.numel).output,
                    reference_forward(graph, w, x)[0].reshape(1, -1))
        assert c.ok, f"{spec.stem} on cortex-m4: max abs diff {c.max_abs:.3g}"
    assert rep.patched is plan_memory(graph, steps, inplace_dw=True, patches=rep.patch) or (
        rep.patched.arena_bytes == plan_memory(graph, steps, inplace_dw=True, patches=rep.patch).arena_bytes)


@needs_cc
@pytest.mark.parametrize("body", GEOMETRIES, ids=range(len(GEOMETRIES)))
def test_padding_modes_and_strides_sanitized(body, tmp_path):
    """The longest tileable prefix of each geometry on an uneven 3x2 grid, in-place depthwise on."""
    graph = parse_text("network t(a = 1)\ninput 23x19x3\nafter conv: bn relu\n" + body + "global avg pool\n")
    steps = schedule(graph)
    p = patch.prefixes(graph, steps)[-1]
    plan = plan_memory(graph, steps, inplace_dw=True, patches=patch.make(graph, steps, p, (3, 2)))
    _check(graph, plan, tmp_path, sanitize=True, what=body.splitlines()[0])


@needs_cc
def test_in_place_depthwise_alone(tmp_path):
    """MobileNetV2's stride-2 depthwise layers are its peaks: in place, without patches."""
    graph = load_graph("mobilenet_v2.arch", alpha=0.35, rho=96 / 224, classes=10)
    plan = plan_memory(graph, inplace_dw=True)
    assert plan.scratch_of and plan.arena_bytes < plan_memory(graph).arena_bytes
    _check(graph, plan, tmp_path, sanitize=True, what="mobilenet_v2 in place")
    assert "arch_conv_dw_inplace(" in (tmp_path / "net.c").read_text()


@pytest.mark.skipif(c_target.mcu_unavailable() is not None, reason=str(c_target.mcu_unavailable()))
def test_vww_patched_on_cortex_m4(tmp_path):
    graph = load_graph("vww_mobilenet_v1.arch")
    rep = patch.memory_report(graph)
    w = init_weights(graph, 0)
    c_target.compile(graph, w, tmp_path, "net", memory=rep.patched)
    x = np.random.default_rng(7).standard_normal((1, *graph.input_shape.chw)).astype(np.float32)
    ref, _ = reference_forward(graph, w, x)
    b = c_target.build_mcu(tmp_path, "net", "cortex-m4")
    assert b.arena_bytes == rep.patched.arena_bytes  # .bss is the arena `stats` reports
    r = c_target.run_mcu(b, x, graph.output_shape.numel)
    c = compare(r.output, ref.reshape(1, -1))
    assert c.ok, f"VWW patched on cortex-m4: max abs diff {c.max_abs:.3g}"


def test_compile_memory_options(tmp_path):
    from typer.testing import CliRunner

    from archdsl.cli import app
    from conftest import SPECS

    spec = str(SPECS / "vww_mobilenet_v1.arch")
    res = CliRunner().invoke(app, ["compile", spec, "-t", "c", "-o", str(tmp_path / "c"),
                                   "--patch-prefix", "dw2", "--patch-grid", "4x4"])
    assert res.exit_code == 0, res.output
    graph = load_graph("vww_mobilenet_v1.arch")
    steps = schedule(graph)
    plan = plan_memory(graph, steps, inplace_dw=True, patches=patch.make(graph, steps, 4, (4, 4)))
    assert f"arena: {plan.arena_bytes:,} B (plain 221,184 B; 4x4 tiles up to dw2.relu" in res.stdout
    assert f"#define VWW_MOBILENET_V1_ARENA_BYTES {plan.arena_bytes} " in (
        tmp_path / "c" / "vww_mobilenet_v1.h").read_text()
    res = CliRunner().invoke(app, ["compile", spec, "-t", "numpy", "-o", str(tmp_path / "np"), "--patch-grid", "auto"])
    assert res.exit_code != 0 and "C target only" in res.output
    res = CliRunner().invoke(app, ["compile", spec, "-t", "c", "-o", str(tmp_path / "bad"), "--patch-grid", "0x0",
                                   "--patch-prefix", "dw2"])
    assert res.exit_code != 0 and "does not fit" in res.output and "Traceback" not in res.output


@needs_cc
def test_mobilenet_v2_input_outside_the_arena(tmp_path):
    """MobileNetV2 0.35 at 96x96 (fp32) with its chosen plan and the input read from the caller's
    buffer: the arena `stats` reports, the untiled reference's output."""
    graph = load_graph("mobilenet_v2.arch", alpha=0.35, rho=96 / 224, classes=10)
    rep = patch.memory_report(graph, input_in_arena=False)
    assert rep.patch is not None and rep.patched.arena_bytes < patch.memory_report(graph).patched.arena_bytes
    _check(graph, rep.patched, tmp_path, what="mobilenet_v2 input outside")
    assert "int net_invoke_on(const float *in);" in (tmp_path / "net.h").read_text()
