"""Each op's int8 rule, in one table keyed by op name.

A rule says how a step of the fused schedule (analysis/schedule.py) runs in int8 and where its
output's (scale, zero point) come from:

    kind              the int8 kernel that runs it: conv (groups covers depthwise), fc, add, concat,
                      avgpool, maxpool, reshape, softmax, clamp
    output            "calibrated" (its own range: PTQ measures it, an importer reads it),
                      "input" (shares its input's parameters: pools, reshapes, a standalone
                      ReLU), or "fixed" (softmax: 1/256, −128, which the kernel requires)
    weights           the step carries int8 weights and an int32 bias (conv, conv dw, fc)
    fused             activations that may run in the step's epilogue, as a clamp (relu, relu6)

An op without an entry has no int8 rule: QuantizedNetwork refuses it by name, on its spec line.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Int8Rule:
    kind: str
    output: str = "calibrated"   # calibrated | input | fixed
    weights: bool = False
    fused: tuple[str, ...] = ()
    doc: str = ""


_CLAMPS = ("relu", "relu6")

INT8_RULES: dict[str, Int8Rule] = {
    "conv": Int8Rule("conv", weights=True, fused=_CLAMPS,
                     doc="per-channel int8 weights, int32 bias, input padded with its zero point"),
    "conv dw": Int8Rule("conv", weights=True, fused=_CLAMPS, doc="as conv, one group per channel"),
    "fc": Int8Rule("fc", weights=True, fused=_CLAMPS, doc="per-tensor or per-channel int8 weights"),
    "add": Int8Rule("add", fused=_CLAMPS, doc="both inputs requantized (2^20 pre-shift), then the sum"),
    "concat": Int8Rule("concat", doc="each input requantized to the output's parameters"),
    "avg pool": Int8Rule("avgpool", output="input", fused=_CLAMPS, doc="raw window sum, rounded division"),
    "global avg pool": Int8Rule("avgpool", output="input", fused=_CLAMPS),
    "max pool": Int8Rule("maxpool", output="input", fused=_CLAMPS),
    "global max pool": Int8Rule("maxpool", output="input", fused=_CLAMPS),
    "flatten": Int8Rule("reshape", output="input"),
    "dropout": Int8Rule("reshape", output="input"),
    "softmax": Int8Rule("softmax", output="fixed", doc="gemmlowp fixed-point exp; output 1/256, -128"),
    "relu": Int8Rule("clamp", output="input", doc="[max(-128, zp), 127] in the input's parameters"),
    "relu6": Int8Rule("clamp", output="input", doc="[max(-128, zp), min(127, zp + 6/s)]"),
}


def rule_for(op_name: str) -> Int8Rule | None:
    return INT8_RULES.get(op_name)
