"""Ops that join tensors: the nodes behind `residual`, `scale` and `concat`."""
from __future__ import annotations

from ..errors import ArchError
from ..ir import TensorShape
from ..quant.rules import CLAMPS, Int8Rule
from .base import Attrs, Op, RowArgs, register


@register
class Add(Op):
    name, short, title = "add", "add", "Add"
    int8 = Int8Rule("add", fused=CLAMPS, doc="both inputs requantized (2^20 pre-shift), then the sum")
    doc = "Element-wise sum of two equal shapes (residual connections)."
    arity = 2
    elementwise = True
    takes_activation = True  # ResNet's relu after the add

    def configure(self, args: RowArgs) -> Attrs:
        body, skip = args.in_shapes
        if body != skip:
            raise ArchError(f"residual body gives {body}, but the shortcut carries {skip}", args.op_loc,
                            "a residual adds x + f(x): f must keep the shape; otherwise add a "
                            "`shortcut { ... }` that maps x to f's shape, or write `residual shortcut=auto` "
                            "to add x only where the shapes match")
        return Attrs()


@register
class Mul(Op):
    name, short, title = "mul", "mul", "Scale"
    doc = "x · g, with a per-channel gate g (1x1xC) broadcast over the map (squeeze-and-excitation)."
    arity = 2
    elementwise = True

    def configure(self, args: RowArgs) -> Attrs:
        x, g = args.in_shapes
        if g != x and not (g.h == 1 and g.w == 1 and g.c == x.c):
            raise ArchError(f"scale gate gives {g}, but it must be 1x1x{x.c} (or {x}) to multiply {x}",
                            args.op_loc, "end the scale body with a 1x1 conv back to the input's channels")
        return Attrs()


@register
class Concat(Op):
    name, short, title = "concat", "concat", "Concat"
    int8 = Int8Rule("concat", doc="each input requantized to the output's parameters")
    doc = "Join branches along channels; every branch keeps the same HxW."
    arity = None

    def configure(self, args: RowArgs) -> Attrs:
        first = args.in_shapes[0]
        for s in args.in_shapes[1:]:
            if (s.h, s.w) != (first.h, first.w):
                raise ArchError("concat branches give different map sizes: "
                                + ", ".join(str(x) for x in args.in_shapes), args.op_loc)
        return Attrs()

    def out_shape(self, attrs, ins):
        return TensorShape(ins[0].h, ins[0].w, sum(s.c for s in ins))
