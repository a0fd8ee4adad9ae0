"""The int8 rule type. Each op declares its rule in its one place, its class in archdsl/ops/
(`int8 = Int8Rule(...)`; None: the op has no int8 form).

A rule says how a step of the fused schedule (analysis/schedule.py) runs in int8 and where its
output's (scale, zero point) come from:

    kind              the int8 kernel that runs it: conv (groups covers depthwise), fc, add, concat,
                      avgpool, maxpool, reshape, softmax, clamp
    output            "calibrated" (its own range: PTQ measures it, an importer reads it),
                      "input" (shares its input's parameters: pools, reshapes, a standalone
                      ReLU), or "fixed" (softmax: 1/256, −128, which the kernel requires)
    weights           the step carries int8 weights and an int32 bias (conv, conv dw, fc)
    fused             activations that may run in the step's epilogue, as a clamp (relu, relu6)

QuantizedNetwork refuses an op without a rule by name, on its spec line.
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


CLAMPS = ("relu", "relu6")  # the activations an int8 kernel runs as a clamp in its epilogue


def rule_for(op) -> Int8Rule | None:
    """The op's int8 rule (an archdsl.ops.Op), or None."""
    return getattr(op, "int8", None)


def int8_ops() -> list[str]:
    """The names of the ops that have an int8 rule."""
    from ..ops import REGISTRY

    return sorted(name for name, op in REGISTRY.items() if rule_for(op) is not None)
