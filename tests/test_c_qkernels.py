"""The int8 C kernels (codegen_templates/c/runtime/rt_q*.c), one op at a time, against TensorFlow
Lite Micro (PyPI `tflite-micro`, its reference kernels; the deployment reference on MCUs).

Oracle: the real MLPerf Tiny int8 models (VWW: conv 3x3/2, depthwise 3x3/1 and /2, 1x1 convs with
dead channels whose shifts reach -31 and 20 flushed multipliers, avg pool, FC, softmax; ResNet-8:
linear convs with signed zero points, 1x1/2 shortcuts, ADD, 8x8 avg pool with ties) are run in
TFLM with every tensor preserved; each op is then fed TFLM's own input tensor and the C kernel's
output must equal TFLM's output tensor on every value. The kernels are built once plain and once
with UndefinedBehaviorSanitizer (-fno-sanitize-recover: any UB aborts the run), both with the
project's warning flags and -Werror. Synthetic cases cover what the models do not (odd windows,
padding before the map, channel multiplier, max pool, REQUANTIZE, wide softmax rows).
"""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest

from archdsl.backends import c_target
from archdsl.quant.arithmetic import (activation_range, add_params, multiply_by_quantized_multiplier,
                                      quantize_multiplier, softmax_int8, softmax_params)

pytestmark = pytest.mark.skipif(c_target.unavailable() is not None, reason="no C compiler")

TFLM_VERSION = "0.dev20261023182759"


class QOut(ctypes.Structure):
    _fields_ = [("multiplier", ctypes.POINTER(ctypes.c_int32)), ("shift", ctypes.POINTER(ctypes.c_int32)),
                ("per_channel", ctypes.c_int32), ("zero_point", ctypes.c_int32),
                ("act_min", ctypes.c_int32), ("act_max", ctypes.c_int32)]


class QAdd(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in (
        "a_zp", "a_multiplier", "a_shift", "b_zp", "b_multiplier", "b_shift", "left_shift",
        "out_multiplier", "out_shift", "out_zp", "act_min", "act_max")]


def _build(tmp, extra: list[str], tag: str):
    rt = c_target.templates() / "runtime"
    out = tmp / f"libqrt-{tag}.so"
    cmd = [c_target.host_cc(), "-fPIC", "-shared", *extra, *c_target.WARN_FLAGS, f"-I{rt}",
           *map(str, sorted(rt.glob("rt_q*.c"))), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    return ctypes.CDLL(str(out))


@pytest.fixture(scope="module", params=["O2", "ubsan"])
def lib(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("qrt")
    if request.param == "O2":
        return _build(tmp, ["-O2"], "O2")
    return _build(tmp, ["-O1", "-g", "-fsanitize=undefined", "-fno-sanitize-recover=all"], "ubsan")


def i8(a):
    a = np.ascontiguousarray(a, dtype=np.int8)
    return a, a.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))


def i32(a):
    a = np.ascontiguousarray(a, dtype=np.int32)
    return a, a.ctypes.data_as(ctypes.POINTER(ctypes.c_int32))


def qout(mult, shift, zp, lo, hi):
    (m, mp), (s, sp) = i32(np.atleast_1d(mult)), i32(np.atleast_1d(shift))
    q = QOut(mp, sp, 1 if m.size > 1 else 0, int(zp), int(lo), int(hi))
    q._keep = (m, s)
    return q


def guarded(n):
    return np.full(n + 64, 77, dtype=np.int8)


def check_guard(buf, n):
    assert np.all(buf[n:] == 77), "kernel wrote past the end of its output"


# ---------------------------------------------------------------- the kernels, called like the generated code

def q_arrays(q, n):
    """The (multiplier, shift) arrays of a QOut, one per output channel."""
    k = n if q.per_channel else 1
    m, s = np.ctypeslib.as_array(q.multiplier, (k,)), np.ctypeslib.as_array(q.shift, (k,))
    return np.broadcast_to(m, (n,)).copy(), np.broadcast_to(s, (n,)).copy()


def run_conv(lib, x, w, b, in_zp, q, groups, stride, pads, out_hw, depthwise=False, reference=False):
    """x (C,H,W) int8, w (Cout, C/g, kh, kw) int8, b int32; pads (top, left). The kernel and its
    constants are the compiler's choice (lowering_int8.conv_plan: the fast kernels where their
    rules hold), or with `reference` the reference kernel on the raw constants."""
    from archdsl.backends.c_target.lowering_int8 import conv_plan

    c, h, wd = x.shape
    cout, _, kh, kw = w.shape
    oh, ow = out_hw
    kernel, wk, bk, qk = ("arch_qconv_dw" if depthwise else "arch_qconv2d"), w, b, q
    if not reference:
        plan = conv_plan(c, (h, wd), (oh, ow), c if depthwise else groups, (kh, kw), stride, pads, w, b,
                         *q_arrays(q, cout), in_zp)
        kernel, wk, bk = plan.kernel, plan.weight, plan.requant.bias
        qk = qout(plan.requant.multiplier, plan.requant.shift, q.zero_point, q.act_min, q.act_max)
    (xa, xp), (wa, wp), (ba, bp) = i8(x), i8(wk), i32(bk)
    out = guarded(cout * oh * ow)
    op = out.ctypes.data_as(ctypes.POINTER(ctypes.c_int8))
    fn = getattr(lib, kernel)
    if kernel == "arch_qconv_dw":
        fn(xp, c, h, wd, in_zp, wp, bp, cout // c, kh, kw, stride[0], stride[1], pads[0], pads[1], op, oh, ow,
           ctypes.byref(qk))
    elif kernel == "arch_qconv_dw_rows":
        fn(xp, c, h, wd, in_zp, wp, bp, kh, kw, stride[0], stride[1], pads[0], pads[1], op, oh, ow, ctypes.byref(qk))
    elif kernel == "arch_qconv_rows":
        fn(xp, c, h, wd, in_zp, wp, bp, cout, kh, kw, stride[0], stride[1], pads[0], pads[1], op, oh, ow,
           ctypes.byref(qk))
    elif kernel == "arch_qgemm":
        fn(xp, c, h * wd, wp, bp, cout, op, ctypes.byref(qk))
    else:
        fn(xp, c, h, wd, in_zp, wp, bp, cout, groups, kh, kw, stride[0], stride[1], pads[0], pads[1], op, oh, ow,
           ctypes.byref(qk))
    check_guard(out, cout * oh * ow)
    return out[:cout * oh * ow].reshape(cout, oh, ow)


def run_pool(lib, x, kind, k, s, pads, out_hw, lo=-128, hi=127):
    c, h, w = x.shape
    (xa, xp) = i8(x)
    out = guarded(c * out_hw[0] * out_hw[1])
    fn = lib.arch_qavg_pool if kind == "avg" else lib.arch_qmax_pool
    fn(xp, c, h, w, k[0], k[1], s[0], s[1], pads[0], pads[1], out.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
       out_hw[0], out_hw[1], lo, hi)
    n = c * out_hw[0] * out_hw[1]
    check_guard(out, n)
    return out[:n].reshape(c, *out_hw)


def run_gemm(lib, x, w, b, in_zp, q):
    """arch_qgemm as the generated code calls it: x (K, hw), w (O, K), the constants of
    lowering_int8.gemm_constants (packed weights, offset folded into the bias, the requantization
    made to meet the fast path's precondition) from the raw ones; (O, hw) int8."""
    from archdsl.backends.c_target.lowering_int8 import gemm_constants

    c = gemm_constants(w, b, *q_arrays(q, w.shape[0]), in_zp)
    assert c is not None, "these weights and biases meet the fast requantization's precondition"
    packed, r = c
    q2 = qout(r.multiplier, r.shift, q.zero_point, q.act_min, q.act_max)
    (xa, xp), (wa, wp), (ba, bp) = i8(x), i8(packed), i32(r.bias)
    n = w.shape[0] * x.shape[1]
    out = guarded(n)
    lib.arch_qgemm(xp, x.shape[0], x.shape[1], wp, bp, w.shape[0], out.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)),
                   ctypes.byref(q2))
    check_guard(out, n)
    return out[:n].reshape(w.shape[0], x.shape[1])


def run_fc(lib, x, w, b, in_zp, q):
    return run_gemm(lib, x.reshape(-1, 1), w, b, in_zp, q).ravel()


def run_fc_reference(lib, x, w, b, in_zp, q):
    """A fully connected layer through the reference convolution (a 1x1 map), as the compiler emits
    it when the fast path's precondition fails."""
    return run_conv(lib, x.reshape(-1, 1, 1), w.reshape(*w.shape, 1, 1), b, in_zp, q, 1, (1, 1), (0, 0),
                    (1, 1), reference=True).ravel()


def run_add(lib, a, b, p: QAdd):
    (aa, ap), (ba, bp) = i8(a.ravel()), i8(b.ravel())
    out = guarded(a.size)
    lib.arch_qadd(ap, bp, out.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)), a.size, ctypes.byref(p))
    check_guard(out, a.size)
    return out[:a.size].reshape(a.shape)


def run_softmax(lib, x, c, hw, in_scale, beta=1.0):
    m, shift, diff_min = softmax_params(in_scale, beta)
    (xa, xp) = i8(x.ravel())
    out = guarded(c * hw)
    lib.arch_qsoftmax(xp, c, hw, m, shift, diff_min, out.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
    check_guard(out, c * hw)
    return out[:c * hw]


def add_struct(s1, z1, s2, z2, so, zo, lo=-128, hi=127):
    (m1, e1), (m2, e2), (mo, eo) = add_params(s1, s2, so)
    return QAdd(z1, m1, e1, z2, m2, e2, 20, mo, eo, zo, lo, hi)


# ---------------------------------------------------------------- the models through TFLM, op by op

def _tflite_fb():
    return pytest.importorskip("tflite")


def _tflm():
    pytest.importorskip("tflite_micro")
    from importlib.metadata import version

    assert version("tflite-micro") == TFLM_VERSION, "the oracle's version is pinned (its rounding may change)"
    from tflite_micro.python.tflite_micro import runtime

    return runtime


class TfliteOps:
    """The ops of an int8 .tflite with their options, constants and quantization parameters."""

    def __init__(self, path):
        fb = _tflite_fb()
        self.fb = fb
        self.buf = path.read_bytes()
        self.model = fb.Model.GetRootAsModel(self.buf, 0)
        self.sg = self.model.Subgraphs(0)
        self.op_names = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}

    def opname(self, op):
        return self.op_names[self.model.OperatorCodes(op.OpcodeIndex()).BuiltinCode()]

    def ops(self):
        return [self.sg.Operators(i) for i in range(self.sg.OperatorsLength())]

    def quant(self, t):
        q = self.sg.Tensors(t).Quantization()
        return q.ScaleAsNumpy().astype(np.float64), q.ZeroPointAsNumpy().astype(np.int64)

    def shape(self, t):
        return tuple(int(d) for d in self.sg.Tensors(t).ShapeAsNumpy())

    def const(self, t, dtype):
        return self.model.Buffers(self.sg.Tensors(t).Buffer()).DataAsNumpy().view(dtype).reshape(self.shape(t))

    def options(self, op, cls):
        o = getattr(self.fb, cls)()
        table = op.BuiltinOptions()
        o.Init(table.Bytes, table.Pos)
        return o

    def act(self, code):
        a = self.fb.ActivationFunctionType
        return {a.NONE: None, a.RELU: "relu", a.RELU6: "relu6"}[code]


def same_pads(n, k, s):
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2


def nchw(t):
    t = np.asarray(t)
    return t[0].transpose(2, 0, 1) if t.ndim == 4 else t.reshape(-1)


def run_model_ops(lib, path, n_inputs, seed):
    """For each input and op: (op index, op name, C output, TFLM output) with TFLM's input fed to C."""
    m = TfliteOps(path)
    runtime = _tflm()
    interp = runtime.Interpreter.from_file(str(path), intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    rng = np.random.default_rng(seed)
    in_t = m.sg.Inputs(0)
    for _ in range(n_inputs):
        x = rng.integers(-128, 128, m.shape(in_t), dtype=np.int64).astype(np.int8)
        interp.set_input(x, 0)
        interp.invoke()
        tensor = {in_t: x}

        def get(t):
            if t not in tensor:
                tensor[t] = np.array(interp.GetTensor(t, 0)["tensor_data"]).reshape(m.shape(t))
            return tensor[t]

        for i, op in enumerate(m.ops()):
            name = m.opname(op)
            ins, out_t = [op.Inputs(j) for j in range(op.InputsLength())], op.Outputs(0)
            expect = get(out_t)
            got = _c_op(lib, m, op, name, ins, out_t, get)
            if got is None:
                continue
            yield i, name, got, nchw(expect) if expect.ndim == 4 else expect.reshape(got.shape)


def _c_op(lib, m, op, name, ins, out_t, get):
    (in_s, in_zp), (out_s, out_zp) = m.quant(ins[0]), m.quant(out_t)
    in_s, in_zp, out_s, out_zp = float(in_s[0]), int(in_zp[0]), float(out_s[0]), int(out_zp[0])
    x = get(ins[0])
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        dw = name == "DEPTHWISE_CONV_2D"
        o = m.options(op, "DepthwiseConv2DOptions" if dw else "Conv2DOptions")
        w = m.const(ins[1], np.int8)
        w = w.transpose(3, 0, 1, 2) if dw else w.transpose(0, 3, 1, 2)  # -> (Cout, Cin/g, kh, kw)
        b = m.const(ins[2], np.int32)
        w_s, _ = m.quant(ins[1])
        mult, shift = quantize_multiplier(in_s * w_s / out_s)
        lo, hi = activation_range(m.act(o.FusedActivationFunction()), out_s, out_zp)
        _, h, wd, _ = m.shape(ins[0])
        _, oh, ow, _ = m.shape(out_t)
        kh, kw = w.shape[2:]
        sh, sw = o.StrideH(), o.StrideW()
        pads = (same_pads(h, kh, sh), same_pads(wd, kw, sw)) if o.Padding() == m.fb.Padding.SAME else (0, 0)
        xc = nchw(x)
        return run_conv(lib, xc, w if not dw else w.reshape(-1, 1, kh, kw), b, in_zp,
                        qout(mult, shift, out_zp, lo, hi), 1, (sh, sw), pads, (oh, ow), depthwise=dw)
    if name == "AVERAGE_POOL_2D":
        o = m.options(op, "Pool2DOptions")
        _, h, wd, _ = m.shape(ins[0])
        _, oh, ow, _ = m.shape(out_t)
        k, s = (o.FilterHeight(), o.FilterWidth()), (o.StrideH(), o.StrideW())
        pads = (same_pads(h, k[0], s[0]), same_pads(wd, k[1], s[1])) if o.Padding() == m.fb.Padding.SAME else (0, 0)
        lo, hi = activation_range(m.act(o.FusedActivationFunction()), out_s, out_zp)
        return run_pool(lib, nchw(x), "avg", k, s, pads, (oh, ow), lo, hi)
    if name == "FULLY_CONNECTED":
        o = m.options(op, "FullyConnectedOptions")
        w, b = m.const(ins[1], np.int8), m.const(ins[2], np.int32)
        w_s, _ = m.quant(ins[1])
        # TFLM: per-tensor multiplier from the float32 product in_s * w_s (GetQuantizedConvolutionMultipler)
        mult, shift = quantize_multiplier(float(np.float32(in_s) * np.float32(w_s[0])) / float(np.float32(out_s)))
        lo, hi = activation_range(m.act(o.FusedActivationFunction()), out_s, out_zp)
        return run_fc(lib, x, w, b, in_zp, qout(mult, shift, out_zp, lo, hi))
    if name == "SOFTMAX":
        beta = m.options(op, "SoftmaxOptions").Beta()
        c = x.shape[-1]
        return run_softmax(lib, x, c, 1, in_s, beta)
    if name == "ADD":
        o = m.options(op, "AddOptions")
        (s2, z2) = m.quant(ins[1])
        lo, hi = activation_range(m.act(o.FusedActivationFunction()), out_s, out_zp)
        p = add_struct(in_s, in_zp, float(s2[0]), int(z2[0]), out_s, out_zp, lo, hi)
        return run_add(lib, nchw(x), nchw(get(ins[1])), p)
    if name == "RESHAPE":
        return None  # a view: no kernel
    raise AssertionError(f"no C kernel test for {name}")


MODELS = {
    "vww": ("vww/vww_96_int8.tflite", {"CONV_2D": 14, "DEPTHWISE_CONV_2D": 13, "AVERAGE_POOL_2D": 1,
                                        "FULLY_CONNECTED": 1, "SOFTMAX": 1}),
    "resnet8": ("ic/pretrainedResnet_quant.tflite", {"CONV_2D": 9, "ADD": 3, "AVERAGE_POOL_2D": 1,
                                                     "FULLY_CONNECTED": 1, "SOFTMAX": 1}),
}


@pytest.mark.parametrize("model", MODELS)
def test_kernels_equal_tflm_on_every_op(lib, models_dir, model):
    rel, expected_ops = MODELS[model]
    seen: dict[str, int] = {}
    n_values = 0
    for i, name, got, expect in run_model_ops(lib, models_dir / rel, n_inputs=2, seed=12):
        bad = np.flatnonzero(got.ravel() != expect.ravel())
        assert bad.size == 0, (f"{model} op {i} {name}: {bad.size}/{got.size} values differ from TFLM, "
                               f"max {np.abs(got.astype(int) - expect.astype(int)).max()} LSB")
        seen[name] = seen.get(name, 0) + 1
        n_values += got.size
    assert {k: v // 2 for k, v in seen.items()} == expected_ops  # every op checked, on both inputs
    assert n_values > 100_000


def test_vww_exercises_dead_channels(models_dir):
    """The VWW oracle run above covers the shifts that would be UB in a naive 64-bit requantize."""
    m = TfliteOps(models_dir / MODELS["vww"][0])
    shifts, flushed = [], 0
    for op in m.ops():
        if m.opname(op) != "CONV_2D":
            continue
        ins = [op.Inputs(j) for j in range(op.InputsLength())]
        mult, shift = quantize_multiplier(m.quant(ins[0])[0][0] * m.quant(ins[1])[0] / m.quant(op.Outputs(0))[0][0])
        shifts.append(shift.min())
        flushed += int(np.sum(mult == 0))
    assert min(shifts) == -31 and flushed == 20


# ---------------------------------------------------------------- synthetic cases (the formulas as the oracle)

def ref_qconv(x, w, b, in_zp, mult, shift, out_zp, lo, hi, groups, stride, pads, out_hw):
    """test_c_kernels' plain window sum over x - in_zp padded with zeros (= padding with in_zp), then
    MBQM. The sums are integers far below 2^53, so the float64 window sum holds them exactly."""
    from test_c_kernels import ref_conv

    cout, _, kh, kw = w.shape
    oh, ow = out_hw
    # bottom and right: as many zeros as any window can reach
    pads = (pads[0], pads[1], kh + stride[0] * oh - pads[0], kw + stride[1] * ow - pads[1])
    acc = ref_conv(x.astype(np.int64) - in_zp, w.astype(np.int64), np.asarray(b, np.int64), groups, stride, pads,
                   out_hw)
    acc = np.rint(acc).astype(np.int64)
    mult = np.broadcast_to(mult, (cout,))[:, None, None]
    shift = np.broadcast_to(shift, (cout,))[:, None, None]
    return np.clip(multiply_by_quantized_multiplier(acc, mult, shift) + out_zp, lo, hi).astype(np.int8)


CONV_CASES = [
    # cin, h, w, cout, groups, k, stride, pads(t, l), depthwise
    (3, 11, 13, 5, 1, (3, 3), (2, 2), (1, 1), False),
    (4, 9, 7, 6, 2, (3, 3), (1, 1), (1, 1), False),
    (2, 6, 5, 4, 1, (3, 2), (3, 2), (2, 0), False),
    (1, 3, 3, 2, 1, (7, 7), (1, 1), (3, 3), False),  # kernel larger than the map
    (6, 7, 9, 11, 1, (1, 1), (1, 1), (0, 0), False),  # 1x1: the GEMM kernel, leftover pixels and channels
    (5, 4, 5, 3, 1, (1, 1), (2, 2), (0, 0), False),
    (4, 8, 9, 8, 4, (3, 3), (2, 2), (1, 1), True),  # depthwise, channel multiplier 2
    (3, 7, 7, 3, 3, (5, 5), (1, 1), (2, 2), True),
    # the row kernels (arch_qconv_dw_rows, arch_qconv_rows): strides 1 and 2, padding on one side
    # only (TF SAME at stride 2), maps of width 1 and 2, odd pixel and channel counts
    (5, 8, 10, 5, 5, (3, 3), (2, 2), (0, 0), True),
    (3, 5, 1, 3, 3, (3, 3), (1, 1), (1, 1), True),
    (2, 2, 2, 2, 2, (3, 3), (1, 1), (1, 1), True),
    (4, 6, 6, 4, 4, (3, 3), (2, 1), (1, 0), True),
    (5, 6, 3, 7, 1, (3, 3), (1, 1), (1, 1), False),
    (3, 9, 8, 8, 1, (3, 3), (2, 2), (0, 0), False),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"k{c[5]}s{c[6]}p{c[7]}"
                         + ("dw" if c[8] else ""))
def test_conv_synthetic(lib, case):
    cin, h, w, cout, groups, k, s, pads, dw = case
    rng = np.random.default_rng(sum(map(hash, map(str, case))) & 0xFFFF)
    x = rng.integers(-128, 128, (cin, h, w)).astype(np.int8)
    wt = rng.integers(-127, 128, (cout, cin // groups, *k)).astype(np.int8)
    b = rng.integers(-5000, 5000, cout).astype(np.int32)
    mult, shift = quantize_multiplier(rng.uniform(1e-4, 2e-2, cout))
    mult[0], shift[0] = 0, 0  # a flushed (dead) channel
    in_zp, out_zp, lo, hi = -7, 3, -100, 120
    oh = (h + 2 * pads[0] - k[0]) // s[0] + 1
    ow = (w + 2 * pads[1] - k[1]) // s[1] + 1
    ref = ref_qconv(x, wt, b, in_zp, mult, shift, out_zp, lo, hi, groups, s, pads, (oh, ow))
    for reference in (False, True):  # the compiler's kernel, and the reference kernel
        got = run_conv(lib, x, wt, b, in_zp, qout(mult, shift, out_zp, lo, hi), groups, s, pads, (oh, ow),
                       depthwise=dw, reference=reference)
        np.testing.assert_array_equal(got, ref)
        assert np.all(got[0] == np.clip(out_zp, lo, hi))


def test_mbqm_ties_and_extreme_shifts(lib):
    """Exact ties (where single rounding and round-half-up differ), int32 extremes and shifts from
    -31 to +4 through the requantization every kernel ends with."""
    rng = np.random.default_rng(3)
    n = 4000
    accs = rng.integers(-(1 << 24), 1 << 24, n).astype(np.int64)
    accs[: n // 2] = (accs[: n // 2] >> 8) << 8  # many exact ties at small shifts
    cases = [(1 << 30, -1), (1 << 30, -8), (1431655765, -3), (2147483647, -31), (1073741824, 0),
             (1879048192, 4), (1300000000, -20)]
    for mult, shift in cases:
        for acc in (accs, np.array([-(1 << 31), (1 << 31) - 1, -1, 1, 0, -(1 << 30), 1 << 30])):
            # a fully connected layer with zero weights: its accumulator is the bias
            bias = acc.astype(np.int32)
            got = run_fc_reference(lib, np.zeros(1, np.int8), np.zeros((bias.size, 1), np.int8), bias, 0,
                                   qout(mult, shift, 0, -128, 127))
            v = multiply_by_quantized_multiplier(bias.astype(np.int64), mult, shift)
            np.testing.assert_array_equal(got, np.clip(v, -128, 127).astype(np.int8), err_msg=f"{mult} {shift}")
            # the fast kernel: the zero weights make every channel constant (folded at compile time)
            got = run_fc(lib, np.zeros(1, np.int8), np.zeros((bias.size, 1), np.int8), bias, 0,
                         qout(mult, shift, 0, -128, 127))
            np.testing.assert_array_equal(got, np.clip(v, -128, 127).astype(np.int8), err_msg=f"{mult} {shift}")


def test_fast_requantization_ties_and_shifts(lib):
    """arch_q_out_fast (SMMULR form) through arch_qgemm, against the reference MBQM, on accumulators
    up to its precondition's bound: exact ties, both signs, shifts from -30 to +4, and shift -31
    (which the compiler proves to give 0)."""
    rng = np.random.default_rng(4)
    hw = 1001  # leftover pixels of the 4-pixel blocks
    x = rng.integers(-128, 128, (1, hw)).astype(np.int8)
    x[0, :8] = [-128, 127, 0, 1, -1, 64, -64, 2]
    for mult, shift in [(1 << 30, -1), (1 << 30, -8), (1431655765, -3), (2147483647, -30), (2147483647, -31),
                        (1073741824, 0), (1879048192, 4), (1300000000, -20), (1 << 30, -2)]:
        left = max(shift, 0)
        limit = (1 << 29 >> left) - 128 * 127
        for bias in (rng.integers(-limit, limit, 3), np.array([limit - 1, -limit + 1, 0]),
                     np.array([-384, 384, 3 << 6])):  # ties at shifts 1, 2, 7 with x = -128..127 * 127
            w = np.full((bias.size, 1), 127, np.int8)
            got = run_gemm(lib, x, w, bias.astype(np.int32), 0, qout(np.full(bias.size, mult), np.full(bias.size, shift),
                                                                      0, -128, 127))
            acc = bias[:, None].astype(np.int64) + 127 * x.astype(np.int64)
            v = np.clip(multiply_by_quantized_multiplier(acc, mult, shift), -128, 127)
            np.testing.assert_array_equal(got, v.astype(np.int8), err_msg=f"{mult} {shift}")


@pytest.mark.parametrize("kind", ["avg", "max"])
@pytest.mark.parametrize("case", [((3, 3), (3, 3), (0, 0), 3, 9, 9), ((8, 8), (8, 8), (0, 0), 4, 8, 8),
                                  ((3, 3), (2, 2), (1, 1), 2, 7, 8), ((2, 3), (1, 2), (1, 0), 3, 5, 6)])
def test_pool_synthetic(lib, kind, case):
    k, s, pads, c, h, w = case
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (c, h, w)).astype(np.int8)
    x[0] = np.tile(np.array([-3, -2, 5, 6], np.int8), h * w)[: h * w].reshape(h, w)  # ties
    oh, ow = (h + 2 * pads[0] - k[0]) // s[0] + 1, (w + 2 * pads[1] - k[1]) // s[1] + 1
    got = run_pool(lib, x, kind, k, s, pads, (oh, ow), -120, 127)
    ref = np.zeros((c, oh, ow), np.int64)
    for y in range(oh):
        for xx in range(ow):
            y0, x0 = y * s[0] - pads[0], xx * s[1] - pads[1]
            win = x[:, max(y0, 0):min(y0 + k[0], h), max(x0, 0):min(x0 + k[1], w)].reshape(c, -1).astype(np.int64)
            if kind == "max":
                ref[:, y, xx] = win.max(1)
            else:
                tot, cnt = win.sum(1), win.shape[1]
                ref[:, y, xx] = np.where(tot > 0, (tot + cnt // 2) // cnt, -((-tot + cnt // 2) // cnt))
    np.testing.assert_array_equal(got, np.clip(ref, -120, 127))


def test_add_and_requantize_synthetic(lib):
    rng = np.random.default_rng(9)
    a, b = rng.integers(-128, 128, (2, 500)).astype(np.int8)
    p = add_struct(0.0393935516, -128, 0.104194961, 4, 0.0509456731, -128, -128, 127)
    got = run_add(lib, a, b, p)
    m1, m2, mo = add_params(0.0393935516, 0.104194961, 0.0509456731)
    va = multiply_by_quantized_multiplier((a.astype(np.int64) + 128) << 20, *m1)
    vb = multiply_by_quantized_multiplier((b.astype(np.int64) - 4) << 20, *m2)
    ref = np.clip(multiply_by_quantized_multiplier(va + vb, *mo) - 128, -128, 127)
    np.testing.assert_array_equal(got, ref)
    # requantize: x - zp_in scaled by 0.37 to zp_out 5
    mult, shift = quantize_multiplier(0.37)
    (xa, xp) = i8(a)
    out = guarded(a.size)
    lib.arch_qrequantize(xp, a.size, -3, int(mult), int(shift), 5, out.ctypes.data_as(ctypes.POINTER(ctypes.c_int8)))
    check_guard(out, a.size)
    ref = np.clip(multiply_by_quantized_multiplier(a.astype(np.int64) + 3, mult, shift) + 5, -128, 127)
    np.testing.assert_array_equal(out[:a.size], ref)


@pytest.mark.parametrize("c,hw,scale", [(10, 1, 0.171853513), (2, 1, 0.0146362185), (37, 5, 0.05), (1000, 1, 0.3),
                                        (4, 3, 2.5)])
def test_softmax_synthetic(lib, c, hw, scale):
    """Rows over channels (NCHW: stride hw) against the NumPy port of TFLite's reference softmax."""
    rng = np.random.default_rng(c + hw)
    x = rng.integers(-128, 128, (c, hw)).astype(np.int8)
    x[: min(c, 3), 0] = 127  # ties at the maximum
    got = run_softmax(lib, x, c, hw, scale).reshape(c, hw)
    m, shift, diff_min = softmax_params(scale)
    ref = softmax_int8(x.T, m, shift, diff_min).T
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("cpu", ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m7"])
def test_kernels_build_for_any_cortex_m(tmp_path, cpu):
    """The portable path: no DSP extension, no FPU, no libc beyond <stdint.h>."""
    if c_target.mcu_unavailable():
        pytest.skip(c_target.mcu_unavailable())
    rt = c_target.templates() / "runtime"
    for src in sorted(rt.glob("rt_q*.c")):
        proc = subprocess.run([c_target.ARM_CC, f"-mcpu={cpu}", "-mthumb", "-O2", "-ffreestanding",
                               *c_target.WARN_FLAGS, f"-I{rt}", "-c", str(src), "-o", str(tmp_path / "k.o")],
                              capture_output=True, text=True)
        assert proc.returncode == 0 and not proc.stderr, f"{src.name} for {cpu}: {proc.stderr}"
        undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(tmp_path / "k.o")], capture_output=True, text=True)
        calls = set(undefined.stdout.split()) - {"U"}
        calls = {f for f in calls if not f.startswith("arch_q")}  # the runtime's own kernels (rt_qinplace.c)
        assert calls <= {"__aeabi_lmul", "__aeabi_idiv", "memcpy", "memset"}, (src.name, calls)  # libgcc, libc


def test_synthetic_cases_reach_every_conv_kernel():
    """CONV_CASES run the compiler's choice of kernel: together they reach every one."""
    from archdsl.backends.c_target.lowering_int8 import KERNEL_FILES, conv_plan

    seen = set()
    for cin, h, w, cout, groups, k, s, pads, dw in CONV_CASES:
        oh, ow = (h + 2 * pads[0] - k[0]) // s[0] + 1, (w + 2 * pads[1] - k[1]) // s[1] + 1
        wt = np.ones((cout, cin // groups, *k), np.int8)
        m, sh = quantize_multiplier(np.full(cout, 1e-3))
        seen.add(conv_plan(cin, (h, w), (oh, ow), cin if dw else groups, k, s, pads, wt, np.zeros(cout, np.int32),
                           m, sh, -7).kernel)
    assert seen == set(KERNEL_FILES), seen
