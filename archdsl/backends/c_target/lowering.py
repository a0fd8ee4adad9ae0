"""The C lowerings: a table (`LOWERINGS`) of small functions, one per op, each emitting the kernel
call for a step (analysis.schedule) whose main node is of that op, into an `Emitter`."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ... import ops
from ...errors import ArchError
from ...weights import bn_scale_shift
from . import layout
from ..codetext import identifier

ALWAYS = ("rt_act.c",)  # every kernel's epilogue


# ---------------------------------------------------------------- code generation helpers

def c_ident(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return s if s and not s[0].isdigit() else "_" + s


MAX_IDENT = 63  # C99's significant characters of an external identifier: longer names get a digest


@dataclass
class ConstArray:
    name: str
    values: np.ndarray
    what: str
    ctype: str = "float"


def buffer_macro(index: int) -> str:
    """The macro of a planned buffer that holds no whole tensor (a tile, crop or one-plane buffer)."""
    return f"ARENA_B{index}"


@dataclass
class Emitter:
    """What the lowerings write into: tensor pointers, weight arrays, kernels used."""

    graph: object
    prefix: str
    weights: dict
    folded: dict
    plan: object
    arrays: list[ConstArray] = field(default_factory=list)
    runtime: set[str] = field(default_factory=lambda: set(ALWAYS))
    tensor_macros: dict[str, str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)  # identifiers in use: mangled names never collide
    where: dict[str, str] = field(default_factory=dict)  # tensor -> its tile's expression, inside a tile
    scratch: dict[str, str] = field(default_factory=dict)  # in-place depthwise output -> its plane buffer
    _folded_names: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)

    def t(self, tensor: str) -> str:
        """The C expression of a tensor: a macro for its place in the arena (or its tile's)."""
        if tensor in self.where:
            return self.where[tensor]
        if tensor not in self.tensor_macros:
            self.tensor_macros[tensor] = identifier(tensor, self.taken, prefix="T_", fallback="", limit=MAX_IDENT)
        return self.tensor_macros[tensor]

    def array(self, node, local: str, values: np.ndarray, what: str) -> str:
        name = identifier(f"{node.name}_{local}", self.taken, prefix=f"{self.prefix}_", fallback="", limit=MAX_IDENT)
        self.arrays.append(ConstArray(name, np.ascontiguousarray(values, dtype=np.float32), what))
        return name

    def folded_weights(self, step, layout: Callable | None = None, layout_what: str = "") -> tuple[str, str]:
        """The step's folded weight and bias arrays; `layout` reorders the weights for the kernel
        (layout.py), `layout_what` says how in the array's comment. Emitted once per layout: every
        tile of a patch-based step shares them."""
        key = (step.main.name, layout_what)
        if key in self._folded_names:
            return self._folded_names[key]
        w, b = self.folded[step.main.name]
        what = f"{step.main.name}: {'x'.join(map(str, w.shape))}" + (
            f", {step.bn.name} folded" if step.bn is not None else "") + (f", {layout_what}" if layout_what else "")
        packed = layout(w) if layout is not None else w
        again = sum(k[0] == step.main.name for k in self._folded_names)  # another layout of these weights
        suffix = str(again + 1) if again else ""
        names = (self.array(step.main, "w" + suffix, packed, what),
                 self.array(step.main, "b" + suffix, b, f"{step.main.name}: bias"))
        self._folded_names[key] = names
        return names

    def use(self, *files: str) -> None:
        self.runtime.update(files)


def act_of(step) -> str:
    if step.activation is None:
        return "ARCH_ACT_NONE"
    return ACTIVATIONS[step.activation.op.name]


# The activations a kernel epilogue can run: enum arch_act of archdsl_rt.h, rendered from the
# registry in this order (rt_act.c has one case per value; -Wswitch makes a missing one an error).
ACTIVATIONS = {op.name: "ARCH_ACT_" + re.sub(r"\W", "_", op.name).upper() for op in ops.activations()}


def activation_enum() -> str:
    """The body of enum arch_act, one value per activation of the registry, commented with its formula."""
    names = ["ARCH_ACT_NONE = 0", *ACTIVATIONS.values()]
    formulas = ["", *(op.formula for op in ops.activations())]
    width = max(len(n) for n in names[1:]) + 2 if len(names) > 1 else 0
    lines = []
    for i, (name, formula) in enumerate(zip(names, formulas)):
        text = name + ("," if i < len(names) - 1 else "")
        lines.append("    " + (f"{text.ljust(width)}/* {formula} */" if formula else text))
    return "\n".join(lines)


INT_MAX = 2**31 - 1  # the kernels take sizes, strides and paddings as C int


def _call(fn: str, *args) -> str:
    big = [a for a in args if isinstance(a, int) and not isinstance(a, bool) and abs(a) > INT_MAX]
    if big:
        raise ArchError(f"{fn}: the argument {big[0]:,} does not fit the C runtime's int (at most {INT_MAX:,})",
                        None, "is a stride, padding or size in the spec far too large?")
    return f"{fn}({', '.join(str(a) for a in args)});"


# ---------------------------------------------------------------- lowerings: one per op

def _conv(e: Emitter, step) -> list[str]:
    n = step.main
    a, x, y = n.attrs, n.in_shapes[0], n.out_shape
    (kh, kw), (sh, sw), (pt, pl, _, _) = a.kernel, a.stride, a.pads
    if (kh, kw) == (1, 1) and (sh, sw) == (1, 1) and pt == pl == 0 and a.groups == 1 and (y.h, y.w) == (x.h, x.w):
        panel = layout.pointwise_panel(y.c, x.c)
        w, b = e.folded_weights(step, lambda m: layout.pack_panels(m, panel),
                                f"packed in panels of {panel} output channels" if panel > 1 else "")
        e.use("rt_gemm.c")
        return [_call("arch_conv1x1", e.t(n.inputs[0]), x.c, x.h * x.w, w, panel, b, y.c, e.t(step.output),
                      act_of(step))]
    w, b = e.folded_weights(step)
    if a.groups == x.c and a.groups > 1:  # depthwise written as a grouped conv
        return _dw_call(e, step, w, b)
    e.use("rt_conv.c")
    return [_call("arch_conv2d", e.t(n.inputs[0]), x.c, x.h, x.w, w, b, y.c, a.groups, kh, kw, sh, sw, pt, pl,
                  e.t(step.output), y.h, y.w, act_of(step))]


def _dw_call(e: Emitter, step, w: str, b: str) -> list[str]:
    n = step.main
    a, x, y = n.attrs, n.in_shapes[0], n.out_shape
    (kh, kw), (sh, sw), (pt, pl, _, _) = a.kernel, a.stride, a.pads
    e.use("rt_dwconv.c")
    if step.output in e.scratch:  # in place through a one-plane buffer (analysis.memory)
        e.use("rt_dwconv_inplace.c")
        return [_call("arch_conv_dw_inplace", e.t(n.inputs[0]), e.scratch[step.output], x.c, x.h, x.w, w, b,
                      kh, kw, sh, sw, pt, pl, y.h, y.w, act_of(step))]
    return [_call("arch_conv_dw", e.t(n.inputs[0]), x.c, x.h, x.w, w, b, y.c // x.c, kh, kw, sh, sw, pt, pl,
                  e.t(step.output), y.h, y.w, act_of(step))]


def _conv_dw(e: Emitter, step) -> list[str]:
    w, b = e.folded_weights(step)
    return _dw_call(e, step, w, b)


def _fc(e: Emitter, step) -> list[str]:
    n = step.main
    w, b = e.folded_weights(step)
    e.use("rt_fc.c")
    return [_call("arch_fc", e.t(n.inputs[0]), n.in_shapes[0].numel, w, b, n.out_shape.c, e.t(step.output),
                  act_of(step))]


def _bn(e: Emitter, step) -> list[str]:
    """A BatchNorm that could not fold into a conv: a per-channel affine map."""
    n = step.main
    scale, shift = bn_scale_shift(n, e.weights)
    s = e.array(n, "scale", scale, f"{n.name}: gamma / sqrt(running_var + eps)")
    t = e.array(n, "shift", shift, f"{n.name}: beta - running_mean * scale")
    x = n.in_shapes[0]
    e.use("rt_eltwise.c")
    return [_call("arch_affine", e.t(n.inputs[0]), s, t, x.c, x.h * x.w, e.t(step.output), act_of(step))]


def _activation(e: Emitter, step) -> list[str]:
    n = step.main
    e.use("rt_eltwise.c")
    return [_call("arch_activation", e.t(n.inputs[0]), e.t(step.output), n.out_shape.numel, ACTIVATIONS[n.op.name])]


def _softmax(e: Emitter, step) -> list[str]:
    n = step.main
    x = n.in_shapes[0]
    e.use("rt_softmax.c")
    return [_call("arch_softmax", e.t(n.inputs[0]), x.c, x.h * x.w, e.t(step.output))]


def _add(e: Emitter, step) -> list[str]:
    n = step.main
    e.use("rt_eltwise.c")
    return [_call("arch_add", e.t(n.inputs[0]), e.t(n.inputs[1]), e.t(step.output), n.out_shape.numel,
                  act_of(step))]


def _mul(e: Emitter, step) -> list[str]:
    n = step.main
    x, g = n.in_shapes
    e.use("rt_eltwise.c")
    return [_call("arch_mul", e.t(n.inputs[0]), e.t(n.inputs[1]), x.c, x.h * x.w, g.h * g.w, e.t(step.output))]


def _concat(e: Emitter, step) -> list[str]:
    n = step.main
    e.use("rt_eltwise.c")
    lines, offset = [], 0
    for tensor, shape in zip(n.inputs, n.in_shapes):
        lines.append(_call("arch_copy", e.t(tensor), f"{e.t(step.output)} + {offset}", shape.numel))
        offset += shape.numel
    return lines


def _split(e: Emitter, step) -> list[str]:
    """A channel split: its channels are one contiguous run of the NCHW input."""
    n = step.main
    x = n.in_shapes[0]
    first, end = n.attrs.channel_range(x.c)
    e.use("rt_eltwise.c")
    return [_call("arch_copy", f"{e.t(n.inputs[0])} + {first * x.h * x.w}", e.t(step.output), (end - first) * x.h * x.w)]


def _shuffle(e: Emitter, step) -> list[str]:
    n = step.main
    x = n.in_shapes[0]
    e.use("rt_eltwise.c")
    return [_call("arch_channel_shuffle", e.t(n.inputs[0]), e.t(step.output), x.c, x.h * x.w, n.attrs.groups)]


def _pool(kernel: str, global_kernel: str) -> Callable:
    def lower(e: Emitter, step) -> list[str]:
        n = step.main
        a, x, y = n.attrs, n.in_shapes[0], n.out_shape
        e.use("rt_pool.c")
        if a.is_global:
            return [_call(global_kernel, e.t(n.inputs[0]), x.c, x.h * x.w, e.t(step.output))]
        (kh, kw), (sh, sw), (pt, pl, _, _) = a.kernel, a.stride, a.pads
        return [_call(kernel, e.t(n.inputs[0]), x.c, x.h, x.w, kh, kw, sh, sw, pt, pl, e.t(step.output), y.h, y.w)]

    return lower


def _view(e: Emitter, step) -> list[str]:
    """flatten and dropout (at inference): the output is the input's buffer, viewed anew."""
    return []


LOWERINGS: dict[type, Callable[[Emitter, object], list[str]]] = {
    ops.Conv: _conv,
    ops.ConvDW: _conv_dw,
    ops.FC: _fc,
    ops.BatchNorm: _bn,
    ops.Softmax: _softmax,
    ops.Add: _add,
    ops.Mul: _mul,
    ops.Concat: _concat,
    ops.ChannelSplit: _split,
    ops.ChannelShuffle: _shuffle,
    ops.AvgPool: _pool("arch_avg_pool", "arch_global_avg_pool"),  # and global avg pool
    ops.MaxPool: _pool("arch_max_pool", "arch_global_max_pool"),  # and global max pool
    ops.Flatten: _view,
    ops.Dropout: _view,
    **{type(op): _activation for op in ops.activations()},  # one kernel, the op an ACTIVATIONS value
}
