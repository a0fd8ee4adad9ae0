"""The torch lowerings: a table (`LOWERINGS`) of small functions, one per op, each saying how a node
appears in the generated module (a torch.nn constructor or a forward expression)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ... import ops
from ...ir import Node
from ..common import number

# ---------------------------------------------------------------- lowerings (one per op)


@dataclass(frozen=True)
class Lowering:
    """How one IR node appears in the generated module.

    module  -- constructor text of its torch.nn module (None: the node is an expression in forward)
    pad     -- constructor of a padding module that runs just before it (asymmetric padding)
    expr    -- forward expression of a module-less node; {0}, {1}, … are its inputs, {all} all of them
    in_rank -- the rank its inputs must have: 4 (N, C, H, W) or 2 (N, F); None keeps them as they are
    out_rank-- the rank of its output; None: the rank of its (first) input
    helper  -- a helper class of the template that `module` uses
    """

    module: str | None = None
    pad: str | None = None
    expr: str | None = None
    in_rank: int | None = None
    out_rank: int | None = None
    helper: str | None = None


def _pair(t) -> str:
    a, b = t
    return number(a) if a == b else f"({number(a)}, {number(b)})"


def _args(*positional: str, **keywords: str | None) -> str:
    return ", ".join([*positional, *(f"{k}={v}" for k, v in keywords.items() if v is not None)])


def _symmetric(pads) -> tuple[int, int] | None:
    """(top, left) when top == bottom and left == right, else None."""
    t, l, b, r = pads
    return (t, l) if (t, l) == (b, r) else None


def _pad_arg(pads) -> str:
    """F.pad / nn.ZeroPad2d order: (left, right, top, bottom)."""
    t, l, b, r = pads
    return f"({number(l)}, {number(r)}, {number(t)}, {number(b)})"


def _conv(n: Node, ranks) -> Lowering:
    a = n.attrs
    sym = _symmetric(a.pads)
    pad = None if sym is not None else f"nn.ZeroPad2d({_pad_arg(a.pads)})"
    padding = sym if sym is not None else (0, 0)
    cin, cout, groups = n.in_shapes[0].c, a.out_channels, a.groups
    module = "nn.Conv2d(" + _args(
        number(cin), number(cout), _pair(a.kernel),
        stride=_pair(a.stride) if tuple(a.stride) != (1, 1) else None,
        padding=_pair(padding) if tuple(padding) != (0, 0) else None,
        groups=number(groups) if groups != 1 else None,
        bias=None if a.bias else "False") + ")"
    return Lowering(module=module, pad=pad, in_rank=4)


def _bn(n: Node, ranks) -> Lowering:
    eps = float(n.attrs.eps)
    kind = "nn.BatchNorm1d" if ranks[0] == 2 else "nn.BatchNorm2d"
    return Lowering(module=f"{kind}(" + _args(number(n.out_shape.c), eps=None if eps == 1e-5 else number(eps)) + ")")


def _window(n: Node) -> dict:
    a = n.attrs
    return {"kernel": _pair(a.kernel),
            "stride": _pair(a.stride) if tuple(a.stride) != tuple(a.kernel) else None}


def _avg_pool(n: Node, ranks) -> Lowering:
    a = n.attrs
    if a.is_global:
        return Lowering(module="nn.AdaptiveAvgPool2d(1)", in_rank=4)
    w = _window(n)
    sym = _symmetric(a.pads)
    (kh, kw) = a.kernel
    if sym is not None and sym[0] <= kh // 2 and sym[1] <= kw // 2:
        padded = sym != (0, 0)
        return Lowering(module="nn.AvgPool2d(" + _args(
            w["kernel"], stride=w["stride"], padding=_pair(sym) if padded else None,
            count_include_pad="False" if padded else None) + ")", in_rank=4)
    # Asymmetric (TensorFlow SAME) or wider than half the window: a helper that still
    # averages over the real pixels only.
    return Lowering(module="PaddedAvgPool2d(" + _args(
        _pair(a.kernel), _pair(a.stride), _pad_arg(a.pads)) + ")", in_rank=4, helper="PaddedAvgPool2d")


def _max_pool(n: Node, ranks) -> Lowering:
    a = n.attrs
    if a.is_global:
        return Lowering(module="nn.AdaptiveMaxPool2d(1)", in_rank=4)
    w = _window(n)
    sym = _symmetric(a.pads)
    (kh, kw) = a.kernel
    if sym is not None and sym[0] <= kh // 2 and sym[1] <= kw // 2:
        return Lowering(module="nn.MaxPool2d(" + _args(
            w["kernel"], stride=w["stride"], padding=_pair(sym) if sym != (0, 0) else None) + ")", in_rank=4)
    return Lowering(module="nn.MaxPool2d(" + _args(w["kernel"], stride=w["stride"]) + ")",
                    pad=f'nn.ConstantPad2d({_pad_arg(a.pads)}, float("-inf"))', in_rank=4)


def _fc(n: Node, ranks) -> Lowering:
    a = n.attrs
    return Lowering(module="nn.Linear(" + _args(number(n.in_shapes[0].numel), number(a.out_features),
                                                bias=None if a.bias else "False") + ")", in_rank=2)


def _module(text: str, **kw) -> Callable[[Node, tuple], Lowering]:
    def lower(n: Node, ranks) -> Lowering:
        return Lowering(module=text, **kw)
    return lower


def _dropout(n: Node, ranks) -> Lowering:
    return Lowering(module=f"nn.Dropout({number(float(n.attrs.p))})")


def _split(n: Node, ranks) -> Lowering:
    first, end = n.attrs.channel_range(n.in_shapes[0].c)
    return Lowering(expr=f"{{0}}[:, {first}:{end}]", in_rank=4)


def _shuffle(n: Node, ranks) -> Lowering:
    """torchvision's channel_shuffle, written out."""
    g = n.attrs.groups
    return Lowering(expr=f"{{0}}.unflatten(1, ({g}, -1)).transpose(1, 2).flatten(1, 2)", in_rank=4)


def _join(expr: str) -> Callable[[Node, tuple], Lowering]:
    """add / mul / concat: inputs of mixed rank meet as (N, C, H, W)."""
    def lower(n: Node, ranks) -> Lowering:
        return Lowering(expr=expr, in_rank=None if len(set(ranks)) == 1 else 4)
    return lower


LOWERINGS: dict[type, Callable[[Node, tuple], Lowering]] = {
    ops.Conv: _conv,
    ops.ConvDW: _conv,  # groups == C_in is in the attrs
    ops.BatchNorm: _bn,
    ops.ReLU: _module("nn.ReLU()"),
    ops.ReLU6: _module("nn.ReLU6()"),
    ops.Sigmoid: _module("nn.Sigmoid()"),
    ops.HardSigmoid: _module("nn.Hardsigmoid()"),  # relu6(x + 3) / 6
    ops.HardSwish: _module("nn.Hardswish()"),  # x * relu6(x + 3) / 6
    ops.SiLU: _module("nn.SiLU()"),  # x * sigmoid(x)
    ops.Softmax: _module("nn.Softmax(dim=1)"),  # over channels
    ops.AvgPool: _avg_pool,
    ops.MaxPool: _max_pool,
    ops.GlobalAvgPool: _avg_pool,
    ops.GlobalMaxPool: _max_pool,
    ops.FC: _fc,
    ops.Flatten: _module("nn.Flatten()", out_rank=2),  # C, H, W order
    ops.Dropout: _dropout,
    ops.Add: _join("{0} + {1}"),
    ops.Mul: _join("{0} * {1}"),  # a 1x1xC gate broadcasts over H x W
    ops.Concat: _join("torch.cat([{all}], dim=1)"),
    ops.ChannelSplit: _split,
    ops.ChannelShuffle: _shuffle,
}

RESHAPES = {4: "{}[:, :, None, None]", 2: "torch.flatten({}, 1)"}  # to that rank
