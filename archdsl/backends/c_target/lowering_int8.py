"""The C target's int8 lowerings: a table (`INT8_LOWERINGS`) of small functions, one per int8 kernel
kind (archdsl/quant/rules.py), each emitting the call of a quantized step (quant.network.QStep).

Everything numeric comes from the QuantizedNetwork (the one place int8 parameters are computed):
the int8 weights, int32 biases and per-channel (multiplier, shift) become `const` arrays, each
layer's requantization a `const struct arch_qout` (flash on an MCU); the arena is the memory plan
at one byte per element. The kernels are codegen_templates/c/runtime/rt_q*.c (archdsl_qrt.h).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ...errors import ArchError
from .lowering import ConstArray, Emitter, _call, buffer_macro, c_ident

RUNTIME_HEADER = "archdsl_qrt.h"
UNIT = (1 << 30, 1)  # QuantizeMultiplier(1.0): MBQM by it is the identity


def c_ints(values: np.ndarray, per_line: int = 16, indent: str = "    ") -> str:
    flat = np.asarray(values).ravel().astype(np.int64).tolist()
    items = [str(v) if v != -(1 << 31) else "(-2147483647 - 1)" for v in flat]
    lines = [", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line)]
    return ",\n".join(indent + line for line in lines)


CTYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.int32): "int32_t"}


@dataclass
class ConstStruct:
    type: str
    name: str
    init: str
    what: str


@dataclass
class QEmitter(Emitter):
    """The float Emitter's tensor macros, with int8/int32 constant arrays and parameter structs."""

    structs: list[ConstStruct] = field(default_factory=list)

    def array(self, node, local: str, values: np.ndarray, what: str) -> str:
        """A const array, emitted once: every tile of a patch-based step shares the layer's."""
        name = f"{self.prefix}_{c_ident(node.name)}_{local}"
        values = np.ascontiguousarray(values)
        if any(a.name == name for a in self.arrays):
            return name
        self.arrays.append(ConstArray(name, values, what, CTYPES[values.dtype]))
        return name

    def struct(self, node, local: str, type_: str, init: str, what: str) -> str:
        name = f"{self.prefix}_{c_ident(node.name)}_{local}"
        if not any(st.name == name for st in self.structs):
            self.structs.append(ConstStruct(type_, name, init, what))
        return "&" + name

    def qout(self, q, requant: "Requant | None" = None) -> str:
        """The step's output requantization (`requant`: a fast kernel's, else the step's own): one
        (multiplier, shift) entry when all channels share it."""
        if requant is None:
            requant = Requant(np.asarray(q.arrays["bias"]), np.asarray(q.arrays["multiplier"], np.int32),
                              np.asarray(q.arrays["shift"], np.int32))
        m, s = requant.multiplier, requant.shift
        per_channel = not (np.all(m == m[0]) and np.all(s == s[0]))
        if not per_channel:
            m, s = m[:1], s[:1]
        node = q.main
        mn = self.array(node, "mult", m, f"{node.name}: requantization multipliers (Q31)")
        sn = self.array(node, "shift", s, f"{node.name}: requantization shifts (negative: right)")
        a = q.attrs
        init = f"{{{mn}, {sn}, {int(per_channel)}, {a['out_zero_point']}, {a['act_min']}, {a['act_max']}}}"
        what = (f"{node.name}: output {q.out}, clamp [{a['act_min']}, {a['act_max']}], "
                f"{'per channel' if per_channel else 'per tensor'}")
        return self.struct(node, "q", "arch_qout", init, what)


# ---------------------------------------------------------------- constants prepared for the fast kernels

@dataclass(frozen=True)
class Requant:
    """A layer's int32 bias and per-channel (multiplier, shift), as a kernel reads them."""

    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray


DW_ROWS_MAX_K = 7  # DW_MAX_K of rt_qdwconv.c
CONV_ROWS_MAX_ROWS, CONV_ROWS_MAX_K = 16, 7  # CR_MAX_ROWS, CR_MAX_K of rt_qconv.c
FAST_ACC_LIMIT = 1 << 29  # arch_q_out_fast (archdsl_qrt.h): |acc * 2^left| below this, right shift <= 30


def fast_requant(weight: np.ndarray, bias: np.ndarray, multiplier: np.ndarray, shift: np.ndarray,
                 x_max: int) -> Requant | None:
    """The requantization of a layer whose kernel adds bias[o] + sum w[o] x with |x| <= x_max, made to
    meet arch_q_out_fast's precondition without changing one output value; None if it cannot be.

    A channel whose weights are all zero (the converter's dead channels, whose bias can be near
    2^30) has the constant output MBQM(bias): that value (saturated to +-256) becomes its bias,
    with the identity multiplier. A channel whose right shift exceeds 30 is provably 0 for every accumulator
    the bound allows: it gets the multiplier 0. Every other channel must satisfy the bound."""
    from ...quant.arithmetic import multiply_by_quantized_multiplier

    w = np.asarray(weight, np.int64).reshape(len(bias), -1)
    b = np.asarray(bias, np.int64).copy()
    m = np.asarray(multiplier, np.int64).copy()
    s = np.asarray(shift, np.int64).copy()
    dead = ~w.any(axis=1)
    if dead.any():
        # beyond +-256 every zero point and clamp saturate alike
        b[dead] = np.clip(multiply_by_quantized_multiplier(b[dead], m[dead], s[dead]), -256, 256)
        m[dead], s[dead] = UNIT
    bound = (np.abs(b) + x_max * np.abs(w).sum(axis=1)) << np.maximum(s, 0)
    zero = (m == 0) | ((-s > 30) & (bound * m < ((1 << 30) - 1) << 31))  # |SRDHM| < 2^30: rounds to 0
    m[zero], s[zero] = 0, 0
    if np.any(bound >= FAST_ACC_LIMIT) or np.any(-s > 30):
        return None
    return Requant(b.astype(np.int32), m.astype(np.int32), s.astype(np.int32))


def pack_gemm(weight: np.ndarray) -> np.ndarray:
    """(O, K) int8 weights in arch_qgemm's order (rt_qgemm.c): rows padded with zeros to a multiple
    of 4, the rows of channels 2j and 2j + 1 interleaved 4 bytes at a time, an odd last row plain."""
    o, k = weight.shape
    k4 = -(-k // 4) * 4
    w = np.zeros((o, k4), np.int8)
    w[:, :k] = weight
    pairs = o // 2
    body = w[:2 * pairs].reshape(pairs, 2, k4 // 4, 4).transpose(0, 2, 1, 3)
    return np.concatenate([body.ravel(), w[2 * pairs:].ravel()])


def gemm_constants(weight: np.ndarray, bias: np.ndarray, multiplier, shift, in_zp: int):
    """(packed weights, Requant) of arch_qgemm for (O, K) weights read by x - in_zp, or None when the
    layer must keep the reference kernel: the input offset folded into the bias."""
    w = np.asarray(weight, np.int64).reshape(len(bias), -1)
    folded = np.asarray(bias, np.int64) - in_zp * w.sum(axis=1)
    r = fast_requant(w, folded, multiplier, shift, 128)
    return None if r is None else (pack_gemm(np.asarray(weight, np.int8).reshape(len(bias), -1)), r)


@dataclass(frozen=True)
class ConvPlan:
    """Which kernel runs a convolution, with the constants it reads (weights as the kernel wants
    them, Requant: bias and per-channel requantization)."""

    kernel: str
    weight: np.ndarray
    requant: Requant


def conv_plan(cin: int, hw_in: tuple[int, int], hw_out: tuple[int, int], groups: int, kernel: tuple[int, int],
              stride: tuple[int, int], pads: tuple[int, int], weight, bias, multiplier, shift, in_zp: int) -> ConvPlan:
    """The kernel of a convolution (weights (O, I/g, kh, kw)): the fast ones where their shape rule
    and their requantization's precondition (fast_requant) hold, else the reference."""
    cout, (kh, kw) = len(bias), kernel
    x_max = max(abs(-128 - in_zp), abs(127 - in_zp))  # the row kernels read x - zp
    args = (weight, bias, multiplier, shift)
    pointwise = kernel == (1, 1) and stride == (1, 1) and pads == (0, 0) and groups == 1 and hw_in == hw_out
    if pointwise:
        c = gemm_constants(*args, in_zp)
        if c is not None:
            return ConvPlan("arch_qgemm", c[0], c[1])
    elif groups == cin == cout and groups > 1 and max(kh, kw) <= DW_ROWS_MAX_K:
        r = fast_requant(*args, x_max)
        if r is not None:
            return ConvPlan("arch_qconv_dw_rows", np.asarray(weight, np.int8), r)
    elif groups == 1 and cin * kh <= CONV_ROWS_MAX_ROWS and max(kh, kw) <= CONV_ROWS_MAX_K:
        r = fast_requant(*args, x_max)
        if r is not None:
            return ConvPlan("arch_qconv_rows", np.asarray(weight, np.int8), r)
    ref = Requant(np.asarray(bias, np.int32), np.asarray(multiplier, np.int32), np.asarray(shift, np.int32))
    kind = "arch_qconv_dw" if groups == cin and groups > 1 else "arch_qconv2d"
    return ConvPlan(kind, np.asarray(weight, np.int8), ref)


# ---------------------------------------------------------------- lowerings: one per int8 kernel kind

def _qconv(e: QEmitter, q) -> list[str]:
    n, a = q.main, q.attrs
    x, y = n.in_shapes[0], q.out_shape
    (kh, kw), (sh, sw), (pt, pl, _, _) = a["kernel"], a["stride"], a["pads"]
    groups = a.get("groups", 1)
    zp = a["in_zero_point"]
    src, dst = e.t(q.inputs[0]), e.t(q.output)
    plan = conv_plan(x.c, (x.h, x.w), (y.h, y.w), groups, (kh, kw), (sh, sw), (pt, pl), q.arrays["weight"],
                     q.arrays["bias"], q.arrays["multiplier"], q.arrays["shift"], zp)
    if q.output in e.scratch:  # in place through a one-plane buffer (analysis.memory), the kernel chosen
        w = e.array(n, "w", plan.weight, _weights_what(q))
        b = e.array(n, "b", plan.requant.bias, f"{n.name}: int32 bias")
        qo = e.qout(q, plan.requant)
        e.use("rt_qdwconv.c", "rt_qinplace.c")
        return [_call("arch_qconv_dw_inplace", src, e.scratch[q.output], x.c, x.h, x.w, zp, w, b, kh, kw, sh, sw,
                      pt, pl, y.h, y.w, qo, int(plan.kernel == "arch_qconv_dw_rows"))]
    packed = ", packed for arch_qgemm" if plan.kernel == "arch_qgemm" else ""
    w = e.array(n, "w", plan.weight, _weights_what(q, packed))
    folded = ", input offset folded in" if plan.kernel == "arch_qgemm" else ""
    b = e.array(n, "b", plan.requant.bias, f"{n.name}: int32 bias{folded}")
    qo = e.qout(q, plan.requant)
    e.use(KERNEL_FILES[plan.kernel])
    if plan.kernel == "arch_qgemm":
        return [_call("arch_qgemm", src, x.c, x.h * x.w, w, b, y.c, dst, qo)]
    if plan.kernel == "arch_qconv_dw_rows":
        return [_call(plan.kernel, src, x.c, x.h, x.w, zp, w, b, kh, kw, sh, sw, pt, pl, dst, y.h, y.w, qo)]
    if plan.kernel == "arch_qconv_rows":
        return [_call(plan.kernel, src, x.c, x.h, x.w, zp, w, b, y.c, kh, kw, sh, sw, pt, pl, dst, y.h, y.w, qo)]
    if plan.kernel == "arch_qconv_dw":
        return [_call(plan.kernel, src, x.c, x.h, x.w, zp, w, b, y.c // x.c, kh, kw, sh, sw, pt, pl,
                      dst, y.h, y.w, qo)]
    return [_call("arch_qconv2d", src, x.c, x.h, x.w, zp, w, b, y.c, groups, kh, kw, sh, sw, pt, pl,
                  dst, y.h, y.w, qo)]


KERNEL_FILES = {"arch_qgemm": "rt_qgemm.c", "arch_qconv_rows": "rt_qconv.c", "arch_qconv2d": "rt_qconv.c",
                "arch_qconv_dw_rows": "rt_qdwconv.c", "arch_qconv_dw": "rt_qdwconv.c"}


def _weights_what(q, packed: str = "") -> str:
    n = q.main
    return (f"{n.name}: int8 weights {'x'.join(map(str, q.arrays['weight'].shape))}{packed}"
            + (f", {q.step.bn.name} folded" if q.step.bn else ""))


def _qfc(e: QEmitter, q) -> list[str]:
    """A 1x1 convolution on a 1x1 map: TFLM requantizes both in fixed point."""
    n, a = q.main, q.attrs
    k, cout = n.in_shapes[0].numel, q.out_shape.c
    w4 = np.asarray(q.arrays["weight"]).reshape(cout, k, 1, 1)
    plan = conv_plan(k, (1, 1), (1, 1), 1, (1, 1), (1, 1), (0, 0), w4, q.arrays["bias"], q.arrays["multiplier"],
                     q.arrays["shift"], a["in_zero_point"])
    src, dst = e.t(q.inputs[0]), e.t(q.output)
    fast = plan.kernel == "arch_qgemm"
    w = e.array(n, "w", plan.weight if fast else plan.weight.reshape(cout, k),
                _weights_what(q, ", packed for arch_qgemm" if fast else ""))
    b = e.array(n, "b", plan.requant.bias, f"{n.name}: int32 bias" + (", input offset folded in" if fast else ""))
    qo = e.qout(q, plan.requant)
    e.use(KERNEL_FILES[plan.kernel])
    if fast:
        return [_call("arch_qgemm", src, k, 1, w, b, cout, dst, qo)]
    return [_call("arch_qconv2d", src, k, 1, 1, a["in_zero_point"], w, b, cout, 1, 1, 1, 1, 1, 0, 0, dst, 1, 1, qo)]


def _qadd(e: QEmitter, q) -> list[str]:
    from ...quant.arithmetic import ADD_LEFT_SHIFT

    a = q.attrs
    (m1, e1), (m2, e2), (mo, eo) = a["multipliers"]
    (z1, z2) = a["in_zero_points"]
    init = (f"{{{z1}, {m1}, {e1}, {z2}, {m2}, {e2}, {ADD_LEFT_SHIFT}, {mo}, {eo}, {a['out_zero_point']}, "
            f"{a['act_min']}, {a['act_max']}}}")
    p = e.struct(q.main, "q", "arch_qadd", init, f"{q.main.name}: {q.ins[0]} + {q.ins[1]} -> {q.out}")
    e.use("rt_qeltwise.c")
    return [_call("arch_qadd", e.t(q.inputs[0]), e.t(q.inputs[1]), e.t(q.output), q.out_shape.numel, p)]


def _qconcat(e: QEmitter, q) -> list[str]:
    a = q.attrs
    e.use("rt_qeltwise.c")
    lines, offset = [], 0
    for tensor, shape, zp, (m, s) in zip(q.inputs, q.main.in_shapes, a["in_zero_points"], a["multipliers"]):
        dst = f"{e.t(q.output)} + {offset}"
        if (m, s) == UNIT and zp == a["out_zero_point"]:  # same parameters: the requantization is the identity
            lines.append(_call("arch_qcopy", e.t(tensor), dst, shape.numel))
        else:
            lines.append(_call("arch_qrequantize", e.t(tensor), shape.numel, zp, m, s, a["out_zero_point"], dst))
        offset += shape.numel
    return lines


def _qpool(kernel: str) -> Callable:
    def lower(e: QEmitter, q) -> list[str]:
        n, a = q.main, q.attrs
        x, y = n.in_shapes[0], q.out_shape
        if n.attrs.is_global:
            (kh, kw), (sh, sw), (pt, pl) = (x.h, x.w), (1, 1), (0, 0)
        else:
            (kh, kw), (sh, sw), (pt, pl, _, _) = a["kernel"], a["stride"], a["pads"]
        e.use("rt_qpool.c")
        return [_call(kernel, e.t(q.inputs[0]), x.c, x.h, x.w, kh, kw, sh, sw, pt, pl, e.t(q.output), y.h, y.w,
                      a["act_min"], a["act_max"])]

    return lower


def _qsoftmax(e: QEmitter, q) -> list[str]:
    a, x = q.attrs, q.main.in_shapes[0]
    e.use("rt_qsoftmax.c")
    return [_call("arch_qsoftmax", e.t(q.inputs[0]), x.c, x.h * x.w, a["input_multiplier"], a["left_shift"],
                  a["diff_min"], e.t(q.output))]


def _qclamp(e: QEmitter, q) -> list[str]:
    a = q.attrs
    e.use("rt_qeltwise.c")
    return [_call("arch_qclamp", e.t(q.inputs[0]), e.t(q.output), q.out_shape.numel, a["act_min"], a["act_max"])]


def _qview(e: QEmitter, q) -> list[str]:
    return []


INT8_LOWERINGS: dict[str, Callable[[QEmitter, object], list[str]]] = {
    "conv": _qconv,
    "fc": _qfc,
    "add": _qadd,
    "concat": _qconcat,
    "avgpool": _qpool("arch_qavg_pool"),
    "maxpool": _qpool("arch_qmax_pool"),
    "softmax": _qsoftmax,
    "clamp": _qclamp,
    "reshape": _qview,
}


def lower_step(e: QEmitter, q) -> list[str]:
    """The lines of one int8 call (a whole step, or a step's tile: QStep.at_tile)."""
    if q.kind not in INT8_LOWERINGS:
        raise ArchError(f"the C target has no int8 lowering for '{q.kind}' (node {q.main.name})")
    return INT8_LOWERINGS[q.kind](e, q)


def emitter(net, prefix: str, memory=None) -> tuple[QEmitter, object]:
    """(emitter, plan) of a QuantizedNetwork: the arena plan at one byte per element (`memory`:
    one with in-place layers or patches, planned with elem_bytes=1)."""
    from ...analysis.memory import plan_memory

    plan = memory if memory is not None else plan_memory(net.graph, [q.step for q in net.steps], elem_bytes=1)
    e = QEmitter(net.graph, prefix, {}, {}, plan, runtime=set())
    e.scratch = {t: buffer_macro(i) for t, i in plan.scratch_of.items()}
    return e, plan


def lower(net, prefix: str):
    """(emitter, plan, [(schedule step, lines)]) for a QuantizedNetwork, with the plain arena."""
    e, plan = emitter(net, prefix)
    return e, plan, [(q.step, lower_step(e, q)) for q in net.steps]
