"""The quantized IR: a graph's fused schedule with int8 parameters on every tensor.

    QuantizedNetwork.build(graph, weights)    from an int8 weight dict (the format in weights_file.py)
    net.tensors[name] -> QParams              (scale, zero point) of the input and of every step output
    net.steps -> [QStep]                      one int8 kernel call each, in execution order

Everything the kernels need is computed here, once: the requantization (multiplier, shift) per
output channel, the ADD kernel's three multipliers, the softmax's fixed-point parameters, the
fused ReLU / ReLU6 clamps. The backends only copy these numbers out.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..analysis.schedule import Step, schedule
from ..errors import ArchError, Loc
from ..ir import Graph, Node
from ..ops.base import Window
from ..ops.conv import ConvAttrs
from . import arithmetic as A
from .rules import Int8Rule, int8_ops, rule_for


@dataclass(frozen=True)
class QParams:
    """Per-tensor int8 parameters: real = scale · (q − zero_point)."""

    scale: float       # a float32 value, held as a Python float
    zero_point: int

    def __str__(self) -> str:
        return f"(scale {self.scale:.9g}, zero point {self.zero_point})"


SOFTMAX_OUT = QParams(float(np.float32(A.SOFTMAX_OUT_SCALE)), A.SOFTMAX_OUT_ZERO_POINT)


@dataclass
class QStep:
    """One int8 kernel call.

    kind     the rule's kernel (see rules.py)
    step     the fused schedule step: main node, folded BN, fused activation
    inputs   tensor names read; output: the tensor written (the step's last node)
    ins/out  their QParams
    arrays   conv/fc: weight int8 (IR layout: conv (O, I/g, kh, kw), fc (O, I)), bias int32 (O,),
             multiplier int32 (O,), shift int32 (O,), real_multiplier float64 (O,) (the scale
             ratio, for LiteRT's float FC requantization)
    attrs    ints and tuples: act_min/act_max (every kind but reshape), kernel/stride/pads/groups,
             add: multipliers ((m1, e1), (m2, e2), (m_out, e_out)); softmax: input_multiplier,
             left_shift, diff_min; concat: multipliers [(m, e) per input]
    """

    kind: str
    step: Step
    inputs: tuple[str, ...]
    output: str
    ins: tuple[QParams, ...]
    out: QParams
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict = field(default_factory=dict)

    @property
    def main(self) -> Node:
        return self.step.main

    @property
    def out_shape(self):
        return self.step.out_shape

    def at_tile(self, ts) -> "QStep":
        """This call over one tile of a patch plan (analysis.patch): the step's tile view and the
        tile's padding; the int8 parameters are the layer's."""
        import dataclasses

        from ..analysis.patch import tile_view

        attrs = {**self.attrs, "pads": ts.pads} if "pads" in self.attrs else self.attrs
        return dataclasses.replace(self, step=tile_view(self.step, ts), attrs=attrs)


def node_loc(node: Node) -> Loc | None:
    row = node.row
    if row is None or not row.line:
        return None
    text = (row.text or "").split("#")[0].strip()
    return Loc(row.line, max(1, row.col), max(1, len(text)))


def refuse_unsupported(graph: Graph) -> list[tuple[Step, Int8Rule]]:
    """The schedule with each step's rule; an op without an int8 rule is an error on its row."""
    out = []
    for step in schedule(graph):
        main = step.main
        rule = rule_for(main.op)
        if rule is None:
            raise ArchError(f"'{main.op.name}' has no int8 rule, so {graph.name} cannot run in int8",
                            node_loc(main), f"int8 covers: {', '.join(int8_ops())}")
        act = step.activation
        if act is not None and act.op.name not in rule.fused:
            raise ArchError(f"'{act.op.name}' after '{main.op.name}' has no int8 rule", node_loc(act),
                            f"int8 fuses {' and '.join(rule.fused) or 'no activation'} into '{main.op.name}'"
                            if rule.fused else "int8 activations: relu, relu6")
        out.append((step, rule))
    return out


def weight_steps(graph: Graph) -> list[Step]:
    """The steps that carry int8 weights (conv, conv dw, fc), BN folded in."""
    return [s for s, rule in refuse_unsupported(graph) if rule.weights]


def tensor_names(graph: Graph) -> list[str]:
    """The tensors that carry (scale, zero point): the input and every step's output."""
    return [graph.input_name] + [s.output for s, _ in refuse_unsupported(graph)]


@dataclass
class QuantizedNetwork:
    graph: Graph
    tensors: dict[str, QParams]
    steps: list[QStep]

    @property
    def input(self) -> QParams:
        return self.tensors[self.graph.input_name]

    @property
    def output(self) -> QParams:
        return self.tensors[self.steps[-1].output]

    @classmethod
    def build(cls, graph: Graph, weights: dict[str, np.ndarray]) -> "QuantizedNetwork":
        """From a checked int8 weight dict (weights_file.check_int8). Raises ArchError."""
        from .weights_file import tensor_key

        plan = refuse_unsupported(graph)
        tensors = {graph.input_name: _qparams(weights, graph.input_name)}
        steps = []
        for step, rule in plan:
            ins = tuple(tensors[t] for t in step.inputs)
            stored = _qparams(weights, step.output)
            if rule.output == "input" and stored != ins[0]:
                raise ArchError(f"'{step.main.op.name}' shares its input's int8 parameters {ins[0]}, but the "
                                f"weights give its output {stored} ({tensor_key(step.output, 'scale')})",
                                node_loc(step.main), "an int8 pool or reshape cannot rescale")
            if rule.output == "fixed" and stored != SOFTMAX_OUT:
                raise ArchError(f"the int8 softmax's output must be {SOFTMAX_OUT}; the weights give {stored}",
                                node_loc(step.main))
            tensors[step.output] = stored
            q = QStep(rule.kind, step, tuple(step.inputs), step.output, ins, stored)
            LOWER_PARAMS[rule.kind](q, weights)
            steps.append(q)
        return cls(graph, tensors, steps)


def _qparams(weights: dict, tensor: str) -> QParams:
    from .weights_file import tensor_key

    return QParams(float(np.float32(weights[tensor_key(tensor, "scale")])),
                   int(weights[tensor_key(tensor, "zero_point")]))


def _clamp(q: QStep) -> None:
    act = q.step.activation
    q.attrs["act_min"], q.attrs["act_max"] = A.activation_range(act.op.name if act else None,
                                                                q.out.scale, q.out.zero_point)


def _geometry(q: QStep) -> None:
    """The window (and groups) of the op, copied beside its quantization parameters."""
    a = q.main.attrs
    if isinstance(a, Window):
        q.attrs.update(kernel=a.kernel, stride=a.stride, pads=a.pads)
    if isinstance(a, ConvAttrs):
        q.attrs["groups"] = a.groups


def _conv_params(q: QStep, weights: dict) -> None:
    main = q.main
    w = weights[main.param_key("weight")]
    w_scale = np.asarray(weights[main.param_key("weight_scale")], dtype=np.float32)
    in_s, out_s = np.float32(q.ins[0].scale), np.float32(q.out.scale)
    cout = w.shape[0]
    if q.kind == "fc" and w_scale.size == 1:
        # per-tensor FC (TFLM GetQuantizedConvolutionMultipler): the product is rounded to float32 first
        real = np.full(cout, float(np.float32(in_s * w_scale[0])) / float(out_s))
    else:
        # PopulateConvolutionQuantizationParams: in double
        real = float(in_s) * np.broadcast_to(w_scale.astype(np.float64), (cout,)) / float(out_s)
    mult, shift = A.quantize_multiplier(real)
    q.arrays.update(weight=np.asarray(w, dtype=np.int8), bias=np.asarray(weights[main.param_key("bias")], np.int32),
                    multiplier=mult, shift=shift, real_multiplier=real.astype(np.float64))
    q.attrs["in_zero_point"], q.attrs["out_zero_point"] = q.ins[0].zero_point, q.out.zero_point
    _geometry(q)
    _clamp(q)


def _add_params(q: QStep, weights: dict) -> None:
    a, b = q.ins
    q.attrs["multipliers"] = A.add_params(a.scale, b.scale, q.out.scale)
    q.attrs["in_zero_points"] = (a.zero_point, b.zero_point)
    q.attrs["out_zero_point"] = q.out.zero_point
    _clamp(q)


def _concat_params(q: QStep, weights: dict) -> None:
    pairs = []
    for p in q.ins:
        m, e = A.quantize_multiplier(float(np.float32(p.scale)) / float(np.float32(q.out.scale)))
        pairs.append((int(m), int(e)))
    q.attrs["multipliers"] = tuple(pairs)
    q.attrs["in_zero_points"] = tuple(p.zero_point for p in q.ins)
    q.attrs["out_zero_point"] = q.out.zero_point
    q.attrs["act_min"], q.attrs["act_max"] = -128, 127


def _pool_params(q: QStep, weights: dict) -> None:
    _geometry(q)
    _clamp(q)


def _softmax_params(q: QStep, weights: dict) -> None:
    m, shift, diff_min = A.softmax_params(q.ins[0].scale)
    q.attrs.update(input_multiplier=m, left_shift=shift, diff_min=diff_min)


def _standalone_clamp(q: QStep, weights: dict) -> None:
    q.attrs["act_min"], q.attrs["act_max"] = A.activation_range(q.main.op.name, q.out.scale, q.out.zero_point)


LOWER_PARAMS = {
    "conv": _conv_params,
    "fc": _conv_params,
    "add": _add_params,
    "concat": _concat_params,
    "avgpool": _pool_params,
    "maxpool": _pool_params,
    "reshape": lambda q, weights: None,
    "softmax": _softmax_params,
    "clamp": _standalone_clamp,
}
