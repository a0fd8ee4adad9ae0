"""int8 in-place depthwise and patch-based first stages: bit-exact, every value, with the untiled
int8 run.

The untiled run is archdsl.quant.runtime.run_int8, which test_quant_models ties to TensorFlow Lite
Micro (`tflite-micro` 0.dev20261023182759, pinned in archdsl.quant.oracles) on every tensor of the
MLPerf Tiny models; the VWW tests below also compare the patched C build with TFLM's own tensors.
Patched in NumPy (backends.numpy_patch.patched_run_int8), in host C (also under
-fsanitize=address,undefined) and on Cortex-M4 under QEMU: the prefix's assembled output and every
later tensor must equal the untiled run's, on small specs at every padding mode and stride
(test_patches.GEOMETRIES) and on VWW with the plan `stats` chooses; the arena the C build
allocates is the plan's.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from archdsl.analysis import patch
from archdsl.analysis.memory import plan_memory
from archdsl.analysis.schedule import schedule
from archdsl.backends import c_target
from archdsl.backends.numpy_patch import patched_run_int8
from archdsl.quant.network import QuantizedNetwork
from archdsl.quant.ptq import quantize
from archdsl.quant.runtime import run_int8
from archdsl.weights import init_weights
from conftest import all_specs, load_graph, parse_text
from test_patches import GEOMETRIES

needs_cc = pytest.mark.skipif(c_target.unavailable() is not None, reason="no C compiler")
needs_mcu = pytest.mark.skipif(c_target.mcu_unavailable() is not None, reason=str(c_target.mcu_unavailable()))


def small(body: str):
    """(graph, int8 weight dict, network, int8 inputs) of a geometry, quantized by `archdsl quantize`."""
    graph = parse_text("network t(a = 1)\ninput 23x19x3\nafter conv: bn relu\n" + body + "global avg pool\n")
    rng = np.random.default_rng(0)
    calib = rng.uniform(-1, 1, (8, *graph.input_shape.chw)).astype(np.float32)
    q, _ = quantize(graph, init_weights(graph, 0), calib)
    x = rng.integers(-128, 128, (3, *graph.input_shape.chw)).astype(np.int8)
    return graph, q, QuantizedNetwork.build(graph, q), x


def assert_same(got: dict, want: dict, tensors, what: str):
    for t in tensors:
        g = np.asarray(got[t]).reshape(want[t].shape)
        assert g.dtype == np.int8 and np.array_equal(g, want[t]), (
            f"{what}: {t}: {int(np.sum(g != want[t]))} of {g.size} values differ")


@pytest.mark.parametrize("body", GEOMETRIES, ids=range(len(GEOMETRIES)))
def test_numpy_int8_patched_every_prefix_and_grid(body):
    graph, _, net, x = small(body)
    steps = schedule(graph)
    _, want = run_int8(net, x, keep=True)
    for p in patch.prefixes(graph, steps):
        shape = steps[p - 1].out_shape
        for grid in [(2, 2), (3, 2), (1, 3), (4, 4)]:
            g = (min(grid[0], shape.h), min(grid[1], shape.w))
            if g[0] * g[1] < 2:
                continue
            plan = patch.make(graph, steps, p, g)
            _, got = patched_run_int8(net, x, plan, keep=True)
            assert_same(got, want, [s.output for s in net.steps[p - 1:]], f"prefix {p}, grid {g}")


def _check_c(graph, weights, net, x, plan, outdir, *, sanitize=False, what=""):
    c_target.compile(graph, weights, outdir, "net", memory=plan)
    header = (outdir / "net.h").read_text()
    assert int(re.search(r"#define NET_ARENA_BYTES (\d+)", header).group(1)) == plan.arena_bytes
    assert f"static int8_t arena[{plan.arena_bytes}]" in (outdir / "net.c").read_text()
    y, want = run_int8(net, x, keep=True)
    layers = c_target.run_layers(outdir, "net", x)
    start = plan.patches.prefix - 1 if plan.patches is not None else 0
    traced = [s.output for s in net.steps[start:] if s.kind != "reshape"]
    assert set(traced) <= set(layers)
    assert_same(layers, want, traced, what)
    if sanitize:
        got = c_target.run(outdir, "net", x, sanitize=True)
        assert np.array_equal(got.reshape(y.shape), y), what
    return y


@needs_cc
@pytest.mark.parametrize("body", GEOMETRIES, ids=range(len(GEOMETRIES)))
def test_c_int8_patched_sanitized(body, tmp_path):
    """The longest tileable prefix of each geometry on an uneven 3x2 grid, in-place depthwise on."""
    graph, q, net, x = small(body)
    steps = schedule(graph)
    p = patch.prefixes(graph, steps)[-1]
    plan = plan_memory(graph, steps, 1, inplace_dw=True, patches=patch.make(graph, steps, p, (3, 2)))
    _check_c(graph, q, net, x, plan, tmp_path, sanitize=True, what=body.splitlines()[0])


@needs_cc
def test_c_int8_in_place_depthwise_alone(tmp_path):
    """A stride-1 depthwise layer that is the peak (8 planes in, 8 out), in place through a
    one-plane buffer, no patches."""
    graph, q, net, x = small("conv / s1 3x3x3x8 pad=same\nconv dw / s1 5x5x8 dw pad=same_tf\nconv / s1 1x1x8x2\n")
    plan = plan_memory(graph, elem_bytes=1, inplace_dw=True)
    assert plan.scratch_of and plan.arena_bytes < plan_memory(graph, elem_bytes=1).arena_bytes
    _check_c(graph, q, net, x, plan, tmp_path, sanitize=True, what="in place")
    assert "arch_qconv_dw_inplace(" in (tmp_path / "net.c").read_text()


@needs_mcu
def test_c_int8_patched_on_cortex_m4(tmp_path):
    """Strides 2 and same_tf padding (GEOMETRIES[1]) and a residual (GEOMETRIES[5]), patched, on
    Cortex-M4 under QEMU: the host's outputs, which are the untiled run's."""
    for n in (1, 5):
        graph, q, net, x = small(GEOMETRIES[n])
        steps = schedule(graph)
        p = patch.prefixes(graph, steps)[-1]
        plan = plan_memory(graph, steps, 1, inplace_dw=True, patches=patch.make(graph, steps, p, (3, 2)))
        out = tmp_path / str(n)
        y = _check_c(graph, q, net, x, plan, out, what=f"geometry {n}")
        b = c_target.build_mcu(out, "net", "cortex-m4")
        assert b.arena_bytes == plan.arena_bytes
        r = c_target.run_mcu(b, x, graph.output_shape.numel)
        np.testing.assert_array_equal(r.output, y.reshape(len(x), -1))


# ---------------------------------------------------------------- VWW int8 (the MLPerf Tiny model)

def _vww():
    from test_quant_models import imported, inputs

    graph, net, tensor_map, path = imported("vww")
    return graph, net, tensor_map, inputs(graph)


@needs_cc
def test_vww_int8_patched_equals_untiled_and_tflm(tmp_path):
    from archdsl.quant import oracles as O
    from test_quant_models import theirs

    graph, net, tensor_map, x = _vww()
    rep = patch.memory_report(graph, elem_bytes=1)
    assert rep.patch is not None and rep.patch.extra_fraction <= 0.10
    _, got = patched_run_int8(net, x, rep.patch, keep=True)
    _, want = run_int8(net, x, keep=True)
    tail = [s.output for s in net.steps[rep.patch.prefix - 1:]]
    assert_same(got, want, tail, "VWW NumPy patched")
    _check_c(graph, net, net, x, rep.patched, tmp_path, what="VWW C patched")
    layers = c_target.run_layers(tmp_path, "net", x)
    diffs = O.compare(tensor_map, layers, theirs("vww", "tflm"), [t for t in tail if t in layers])
    assert diffs and all(d.exact for d in diffs), [d for d in diffs if not d.exact]


@needs_mcu
def test_vww_int8_patched_on_cortex_m4(tmp_path):
    graph, net, _, x = _vww()
    x = x[[0, -2, -1]]
    rep = patch.memory_report(graph, elem_bytes=1)
    c_target.compile(graph, net, tmp_path, "net", memory=rep.patched)
    b = c_target.build_mcu(tmp_path, "net", "cortex-m4")
    assert b.arena_bytes == rep.patched.arena_bytes < plan_memory(graph, elem_bytes=1).arena_bytes
    r = c_target.run_mcu(b, x, graph.output_shape.numel)
    np.testing.assert_array_equal(r.output, run_int8(net, x)[0].reshape(len(x), -1))


def test_compile_int8_memory_options(tmp_path):
    """`compile --target c --weights int8.npz --patch-prefix 3 --patch-grid 3x2`: the plan is made
    in int8 bytes and the header's arena is the one printed."""
    from typer.testing import CliRunner

    from archdsl.cli import app
    from archdsl.quant.weights_file import save_int8

    body = GEOMETRIES[0]
    graph, q, _, _ = small(body)
    spec = tmp_path / "t.arch"
    spec.write_text("network t(a = 1)\ninput 23x19x3\nafter conv: bn relu\n" + body + "global avg pool\n")
    save_int8(q, tmp_path / "w.npz")
    res = CliRunner().invoke(app, ["compile", str(spec), "-t", "c", "-o", str(tmp_path / "c"), "--weights",
                                   str(tmp_path / "w.npz"), "--patch-prefix", "3", "--patch-grid", "3x2"])
    assert res.exit_code == 0, res.output
    rep = patch.memory_report(graph, elem_bytes=1, prefix="3", grid="3x2")
    assert rep.patch is not None and rep.patched.elem_bytes == 1
    assert f"arena: {rep.patched.arena_bytes:,} B (plain {rep.plain.arena_bytes:,} B;" in res.stdout
    assert f"#define T_ARENA_BYTES {rep.patched.arena_bytes} " in (tmp_path / "c" / "t.h").read_text()
    assert "arch_paste(" in (tmp_path / "c" / "t.c").read_text()


# ---------------------------------------------------------------- the input outside the arena

@needs_cc
@pytest.mark.parametrize("patched", [False, True], ids=["whole", "patched"])
def test_c_int8_input_outside_the_arena(patched, tmp_path):
    """The first step reads the caller's buffer (a `const` pointer: under -Werror no kernel can
    write it) whole or tile by tile; the arena holds no input; every value as the untiled run."""
    graph, q, net, x = small(GEOMETRIES[2])
    steps = schedule(graph)
    p = patch.prefixes(graph, steps)[-1]
    plan = plan_memory(graph, steps, 1, inplace_dw=patched, input_in_arena=False,
                       patches=patch.make(graph, steps, p, (3, 2)) if patched else None)
    inside = plan_memory(graph, steps, 1, inplace_dw=patched, patches=plan.patches)
    assert plan.arena_bytes < inside.arena_bytes
    _check_c(graph, q, net, x, plan, tmp_path, sanitize=True, what="input outside")
    h = (tmp_path / "net.h").read_text()
    assert "int net_invoke_on(const int8_t *in);" in h and "net_input(" not in h


@needs_mcu
def test_vww_int8_arena_goal_on_cortex_m4(tmp_path):
    """Issue 14's goal: VWW int8 in at most 32,768 B of arena with at most 10% more mult-adds, with
    the input read from the caller's buffer; the .bss of the Cortex-M4 build is that arena, and
    the outputs are the untiled run's (hence TensorFlow Lite Micro's) on host and M4."""
    graph, net, _, x = _vww()
    x = x[[0, 1, -2, -1]]
    rep = patch.memory_report(graph, elem_bytes=1, input_in_arena=False)
    assert rep.patched.arena_bytes <= 32_768 and rep.patch.extra_fraction <= 0.10
    c_target.compile(graph, net, tmp_path, "net", memory=rep.patched)
    want = run_int8(net, x)[0].reshape(len(x), -1)
    np.testing.assert_array_equal(c_target.run(tmp_path, "net", x, sanitize=True).reshape(want.shape), want)
    b = c_target.build_mcu(tmp_path, "net", "cortex-m4")
    assert b.arena_bytes == rep.patched.arena_bytes
    np.testing.assert_array_equal(c_target.run_mcu(b, x, graph.output_shape.numel).output, want)


def test_stats_and_compile_input_outside(tmp_path):
    """`stats --int8 --input-outside-arena` prints the arena the C build allocates and the input row."""
    import json

    from typer.testing import CliRunner

    from archdsl.cli import app
    from conftest import SPECS

    spec = str(SPECS / "vww_mobilenet_v1.arch")
    res = CliRunner().invoke(app, ["stats", spec, "--int8", "--input-outside-arena", "--format", "json"])
    assert res.exit_code == 0, res.output
    m = json.loads(res.output)["memory"]
    graph = load_graph("vww_mobilenet_v1.arch")
    rep = patch.memory_report(graph, elem_bytes=1, input_in_arena=False)
    assert m["arena_patched_bytes"] == rep.patched.arena_bytes and m["input_in_arena"] is False
    res = CliRunner().invoke(app, ["stats", spec, "--int8", "--input-outside-arena"])
    assert "input, outside the arena" in res.output and "27,648 B" in res.output
    res = CliRunner().invoke(app, ["compile", spec, "-t", "c", "-o", str(tmp_path / "c"), "--input-outside-arena"])
    assert res.exit_code == 0, res.output
    assert "the input, 110,592 B, read from the caller's buffer" in res.stdout
    h = (tmp_path / "c" / "vww_mobilenet_v1.h").read_text()
    assert "vww_mobilenet_v1_invoke_on(const float *in)" in h
    res = CliRunner().invoke(app, ["compile", spec, "-t", "numpy", "-o", str(tmp_path / "np"), "--input-outside-arena"])
    assert res.exit_code != 0 and "C target only" in res.output and "Traceback" not in res.output


def _int8_graph(spec):
    """The spec at the reduced widths of test_c_target, inputs near 64 pixels (the int8 reference
    runs in float64)."""
    from test_c_target import reduced

    sets = reduced(spec)
    if "rho" in sets:
        sets["rho"] = min(sets["rho"], 64 / load_graph(spec).input_shape.h)
    return load_graph(spec, **sets)


def _int8_refusal(graph) -> str | None:
    from archdsl.errors import ArchError
    from archdsl.quant.network import refuse_unsupported

    try:
        refuse_unsupported(graph)
    except ArchError as e:
        return str(e)
    return None


def _int8_lowered_by_a_plan(spec) -> bool:
    graph = _int8_graph(spec)
    if _int8_refusal(graph) is not None:
        return False
    rep = patch.memory_report(graph, elem_bytes=1, input_in_arena=False)
    return rep.patch is not None or rep.inplace.arena_bytes < plan_memory(graph, elem_bytes=1,
                                                                          input_in_arena=False).arena_bytes


INT8_PLANNED = [s for s in all_specs() if _int8_lowered_by_a_plan(s)]
# the specs with an op that has no int8 rule yet (docs/int8.md), and the op each is refused for
NO_INT8_BUILD = {"efficientnet_b0": "'silu'", "mobilenet_v3_large": "'hswish'", "mobilenet_v3_small": "'hswish'",
                 "shufflenet_v2": "'channel shuffle'"}


# whose int8 arena no plan lowers: test_c_patches.UNPLANNED but the separable Table 3 row, whose
# depthwise peak goes in place once the input is read from the caller's buffer
INT8_UNPLANNED = {"mobilenet_v1_cifar10", "mobilenet_v1_table3_conv", "resnet20_cifar"}


def test_the_specs_without_an_int8_plan_are_known():
    """Every spec runs below with its int8 plan, but those with an op that has no int8 rule (refused
    by name) and the few whose int8 arena no plan lowers."""
    for stem, op in NO_INT8_BUILD.items():
        why = _int8_refusal(_int8_graph(next(s for s in all_specs() if s.stem == stem)))
        assert why is not None and op in why and "has no int8 rule" in why, (stem, why)
    assert {s.stem for s in all_specs()} - {s.stem for s in INT8_PLANNED} == set(NO_INT8_BUILD) | INT8_UNPLANNED


@needs_cc
@pytest.mark.parametrize("spec", INT8_PLANNED, ids=lambda p: p.stem)
def test_every_spec_int8_with_its_chosen_plan(spec, tmp_path):
    """Every spec of the zoo (at the reduced widths of test_c_target, inputs near 64 pixels)
    quantized by `archdsl quantize`, built in int8 C with the plan the chooser makes in int8 bytes, the input read from
    the caller's buffer: the prefix output and every later tensor equal to the untiled run's, on
    the host and (the output) on Cortex-M4 under QEMU."""
    graph = _int8_graph(spec)
    rep = patch.memory_report(graph, elem_bytes=1, input_in_arena=False)
    rng = np.random.default_rng(0)
    calib = rng.uniform(-1, 1, (4, *graph.input_shape.chw)).astype(np.float32)
    q, _ = quantize(graph, init_weights(graph, 0), calib)
    net = QuantizedNetwork.build(graph, q)
    x = rng.integers(-128, 128, (1, *graph.input_shape.chw)).astype(np.int8)
    y = _check_c(graph, q, net, x, rep.patched, tmp_path, what=spec.stem)
    if c_target.mcu_unavailable() is None:  # and on Cortex-M4 under QEMU, with the arena as .bss
        b = c_target.build_mcu(tmp_path, "net", "cortex-m4")
        assert b.arena_bytes == rep.patched.arena_bytes
        np.testing.assert_array_equal(c_target.run_mcu(b, x, graph.output_shape.numel).output, y.reshape(1, -1))
