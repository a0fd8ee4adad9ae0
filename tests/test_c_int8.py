"""`compile --target c` with int8 weights: the int8 C runtime, bit-exact on every tensor.

Oracle: TensorFlow Lite Micro (`tflite-micro` 0.dev20261023182759, pinned in archdsl.quant.oracles
and the dev extra; reference kernels, FC requantized in fixed point: the deployment reference on
MCUs), run on the MLPerf Tiny int8 models with every tensor kept. The host C program is built with
-DARCHDSL_TRACE and its every step output is compared with TFLM's tensor (and with the NumPy int8
runtime's) for 20 random int8 images and the README's two images. Then the same C, cross-compiled
for Cortex-M4 (mps2-an386) and Cortex-M7 (mps2-an500) (the DSP kernels) and Cortex-M3 (mps2-an385, the
portable path) must give the host's values on every tensor under QEMU,
and the VWW M4 build must fit the flash/RAM budget of issue 12 (constants <= 245,000 B, arena
<= 55,296 B, the layer-by-layer floor).
"""
from __future__ import annotations

import numpy as np
import pytest

from archdsl.analysis.memory import plan_memory
from archdsl.backends import c_target
from archdsl.quant import oracles as O
from archdsl.quant.runtime import run_int8

from conftest import ROOT
from test_quant_models import CASES, imported, inputs  # the imported models and the 22 images

pytestmark = pytest.mark.skipif(c_target.unavailable() is not None, reason="no C compiler")

_CACHE: dict = {}


def compiled(case: str, tmp_path_factory):
    key = ("c", case)
    if key not in _CACHE:
        graph, net, _, _ = imported(case)
        out = tmp_path_factory.mktemp(f"c_int8_{case}")
        c_target.compile(graph, net, out, case)
        _CACHE[key] = out
    return _CACHE[key]


@pytest.mark.parametrize("case", sorted(CASES))
def test_host_c_equals_tflm_on_every_tensor(case, tmp_path_factory):
    graph, net, tensor_map, path = imported(case)
    pinned = O.ORACLES["tflm"]
    pytest.importorskip("tflite_micro")
    assert O.installed_version(pinned.package) == pinned.version, "the bit-exact claim is for the pinned version"
    out = compiled(case, tmp_path_factory)
    x = inputs(graph)
    layers = c_target.run_layers(out, case, x)
    assert set(layers) == {s.output for s in net.steps if s.kind != "reshape"}  # every step traced
    wanted = [t for k, t in tensor_map.items() if k != graph.input_name]
    theirs = O.oracle_tensors("tflm", path, O.to_nhwc(x), wanted)
    diffs = O.compare(tensor_map, layers, theirs, [s.output for s in net.steps])
    assert len(diffs) == len(wanted) >= len(net.steps) - 1  # every op of the model but the RESHAPE view
    bad = [(d.tensor, d.model_tensor, d.total - d.equal, d.max_lsb) for d in diffs if not d.exact]
    assert not bad, f"{case}: C vs {pinned.title}: (tensor, model tensor, values differing, max LSB): {bad}"
    # and the NumPy int8 runtime, on the tensors the model does not have under the same name
    _, ref = run_int8(net, x, "tflm", keep=True)
    for t, v in layers.items():
        np.testing.assert_array_equal(v, ref[t], err_msg=t)
    # the plain run (no trace) gives the traced output
    np.testing.assert_array_equal(c_target.run(out, case, x[:3]), ref[net.steps[-1].output][:3])


def test_host_c_sanitized(tmp_path_factory):
    """ResNet-8 (ADD, signed zero points) and VWW (20 flushed multipliers, shifts down to -31)
    under AddressSanitizer and UndefinedBehaviorSanitizer."""
    for case in ("resnet8", "vww"):
        graph, net, _, _ = imported(case)
        x = inputs(graph)[-3:]
        y = c_target.run(compiled(case, tmp_path_factory), case, x, sanitize=True)
        np.testing.assert_array_equal(y, run_int8(net, x)[0])
    # odd map widths and channel counts through the fast kernels' pixel and channel pairs
    graph, net, out, x = all_rules_net(tmp_path_factory)
    np.testing.assert_array_equal(c_target.run(out, "all_rules", x, sanitize=True), run_int8(net, x)[0])


def test_int8_build_quantizes_float_input(tmp_path_factory):
    """run() of an int8 build takes int8, or float quantized with the header's input parameters
    (as TFLite's QUANTIZE: round half away from zero, then the zero point)."""
    from archdsl.quant.arithmetic import dequantize

    graph, net, _, _ = imported("resnet8")
    out = compiled("resnet8", tmp_path_factory)
    q = inputs(graph)[:2]
    x = dequantize(q, net.input.scale, net.input.zero_point) + np.float32(0.3)  # ResNet: scale 1.0, 0.3 rounds away
    np.testing.assert_array_equal(c_target.run(out, "resnet8", x), c_target.run(out, "resnet8", q))
    assert c_target.run(out, "resnet8", q).dtype == np.int8


def all_rules_net(tmp_path_factory):
    """ALL_RULES (tests/test_quant_ptq.py: every int8 kernel kind, with leftover channels and pixels)
    quantized by `archdsl quantize`'s code, compiled once."""
    key = ("c", "all_rules")
    if key not in _CACHE:
        from archdsl.quant.network import QuantizedNetwork
        from archdsl.quant.ptq import quantize
        from archdsl.weights import init_weights

        from conftest import parse_text
        from test_quant_ptq import ALL_RULES

        graph = parse_text(ALL_RULES)
        calib = np.random.default_rng(0).uniform(-1, 1, (16, *graph.input_shape.chw)).astype(np.float32)
        q, _ = quantize(graph, init_weights(graph, seed=3), calib)
        net = QuantizedNetwork.build(graph, q)
        out = tmp_path_factory.mktemp("c_int8_all_rules")
        c_target.compile(graph, net, out, "all_rules")
        x = np.random.default_rng(1).integers(-128, 128, (2, *graph.input_shape.chw)).astype(np.int8)
        _CACHE[key] = (graph, net, out, x)
    return _CACHE[key]


@pytest.mark.parametrize("case", ["vww", "resnet8", "all_rules"])
def test_cortex_m_equals_host_on_every_tensor(case, tmp_path_factory):
    """The same C cross-compiled for Cortex-M4 and M7 (the DSP kernels: SMLAD, SXTB16, SMMULR) and
    for Cortex-M3 (no DSP extension: the portable path) gives the host build's values (the portable
    path, which test_host_c_equals_tflm ties to TFLM) on every tensor: one traced QEMU run per MCU."""
    if c_target.mcu_unavailable():
        pytest.skip(c_target.mcu_unavailable())
    if case == "all_rules":
        graph, net, out, x = all_rules_net(tmp_path_factory)
    else:
        graph, net, _, _ = imported(case)
        out = compiled(case, tmp_path_factory)
        x = inputs(graph)[[0, -1]]  # a random image and the README's pattern
    host = c_target.run_layers(out, case, x)
    assert set(host) >= {s.output for s in net.steps if s.kind != "reshape"}  # every kernel's output
    for mcu in ("cortex-m3", "cortex-m4", "cortex-m7"):
        b = c_target.build_mcu(out, case, mcu, trace=True)
        r = c_target.run_mcu(b, x, graph.output_shape.numel, layers=True)
        assert set(r.layers) == set(host), mcu
        bad = [(t, int((r.layers[t] != v).sum())) for t, v in host.items() if not np.array_equal(r.layers[t], v)]
        assert not bad, f"{case} on {mcu}: (tensor, values differing from the host): {bad}"
        assert len(r.ticks) == len(x) and all(t > 0 for t in r.ticks)
        assert b.arena_bytes == plan_memory(graph, elem_bytes=1).arena_bytes  # the int8 arena, nothing else in RAM
        if case == "vww" and mcu == "cortex-m4":
            assert b.weights_bytes <= 245_000, b.weights_bytes  # CMSIS-NN driven by hand: 244,052 B
            assert b.arena_bytes <= 55_296, b.arena_bytes  # the layer-by-layer floor (TFLM: 103,684 B)
            assert b.weights_bytes + b.code_bytes <= 260_000, (b.weights_bytes, b.code_bytes)  # issue 13's flash


def test_generated_int8_files(tmp_path_factory):
    """The int8 build's files: int8 arena and API, const int8/int32 arrays, the I/O parameters."""
    graph, net, _, _ = imported("vww")
    out = compiled("vww", tmp_path_factory)
    h = (out / "vww.h").read_text()
    c = (out / "vww.c").read_text()
    wc = (out / "vww_weights.c").read_text()
    assert "#define VWW_INT8 1" in h and "int8_t *vww_input(void);" in h
    assert "#define VWW_INPUT_ZERO_POINT -128" in h and "#define VWW_OUTPUT_SCALE 0.00390625f" in h
    assert "static int8_t arena[55296]" in c and "float" not in c
    assert "const int8_t vww_conv1_conv_w[216]" in wc and "const struct arch_qout vww_conv1_conv_q" in wc
    assert "float" not in wc
    assert not (out / "archdsl_rt.h").exists() and (out / "archdsl_qrt.h").exists()
    assert sorted(p.name for p in out.glob("rt_*.c")) == ["rt_qconv.c", "rt_qdwconv.c", "rt_qgemm.c",
                                                         "rt_qpool.c", "rt_qsoftmax.c"]


def test_stats_int8_figures_are_the_c_builds(tmp_path_factory):
    """`stats --int8` (from the shapes alone) against the C build of the imported VWW: the same
    arena, and the same constants but for the FC, which the model quantizes per tensor (one
    (multiplier, shift) pair instead of two: 8 B)."""
    import json
    import re

    from typer.testing import CliRunner

    from archdsl.cli import app

    graph, net, _, _ = imported("vww")
    res = CliRunner().invoke(app, ["stats", str(ROOT / "specs" / "vww_mobilenet_v1.arch"), "--int8", "--format", "json"])
    assert res.exit_code == 0, res.output
    f = json.loads(res.output)["int8"]
    h = (compiled("vww", tmp_path_factory) / "vww.h").read_text()
    assert f["arena_bytes"] == int(re.search(r"VWW_ARENA_BYTES (\d+)", h).group(1)) == 55_296
    assert f["constant_bytes"] - 8 == int(re.search(r"VWW_CONSTANT_BYTES (\d+)", h).group(1))
    # independent count: 208,112 int8 weights (the .tflite's), 2,738 output channels x (4 + 8) B
    assert f["constant_bytes"] == 208_112 + 2_738 * 12
    assert [r["name"] for r in f["layers"]] == [s.main.name for s in net.steps if "weight" in s.arrays]
