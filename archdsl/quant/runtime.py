"""Running a QuantizedNetwork in NumPy: the int8 reference every int8 target is tested against.

    run_int8(net, q, fc_requant="tflm", keep=False) -> (int8 output, {step output: int8 tensor})
    run_float(net, x) -> float32 output      quantizing the input, dequantizing the output

fc_requant names the oracle whose FULLY_CONNECTED rounding to follow (shared/notes/tflite_int8.md
§2.8): "tflm" (fixed-point MBQM: TensorFlow Lite Micro, CMSIS-NN, the deployment reference) or
"litert_ref" (double-precision requantization: ai-edge-litert 2.3.0 BUILTIN_REF). Every other op
is the same in both.
"""
from __future__ import annotations

import numpy as np

from . import arithmetic as A
from . import kernels as K
from .network import QStep, QuantizedNetwork

FC_REQUANT = ("tflm", "litert_ref")


def _run_step(q: QStep, xs: list[np.ndarray], fc_requant: str) -> np.ndarray:
    a, arr = q.attrs, q.arrays
    if q.kind == "conv":
        return K.conv_int8(xs[0], arr["weight"], arr["bias"], arr["multiplier"], arr["shift"], a["in_zero_point"],
                           a["out_zero_point"], a["act_min"], a["act_max"], a["kernel"], a["stride"], a["pads"],
                           a["groups"])
    if q.kind == "fc":
        return K.fc_int8(xs[0], arr["weight"], arr["bias"], arr["multiplier"], arr["shift"], a["in_zero_point"],
                         a["out_zero_point"], a["act_min"], a["act_max"],
                         arr["real_multiplier"] if fc_requant == "litert_ref" else None)
    if q.kind == "add":
        return K.add_kernel(xs[0], xs[1], a["in_zero_points"], a["out_zero_point"], a["multipliers"],
                            a["act_min"], a["act_max"])
    if q.kind == "concat":
        return K.concat_int8(xs, a["in_zero_points"], a["out_zero_point"], a["multipliers"])
    if q.kind == "avgpool":
        return K.avg_pool_int8(xs[0], a["kernel"], a["stride"], a["pads"], a["act_min"], a["act_max"])
    if q.kind == "maxpool":
        return K.max_pool_int8(xs[0], a["kernel"], a["stride"], a["pads"], a["act_min"], a["act_max"])
    if q.kind == "softmax":
        return K.softmax_kernel(xs[0], a["input_multiplier"], a["left_shift"], a["diff_min"])
    if q.kind == "clamp":
        return K.clamp_int8(xs[0], a["act_min"], a["act_max"])
    if q.kind == "reshape":
        return K.reshape_int8(xs[0], q.out_shape.chw)
    raise AssertionError(f"no int8 kernel for {q.kind}")


def check_int8_input(net: QuantizedNetwork, q) -> np.ndarray:
    q = np.asarray(q)
    want = net.graph.input_shape.chw
    if q.ndim == 3:
        q = q[None]
    if q.ndim != 4 or tuple(q.shape[1:]) != want:
        raise ValueError(f"{net.graph.name} takes NCHW int8 input (N, {', '.join(map(str, want))}), got {q.shape}")
    if q.dtype != np.int8:
        raise ValueError(f"run_int8 takes int8 input, got {q.dtype}; run() quantizes float input")
    return q


def run_int8(net: QuantizedNetwork, q, fc_requant: str = "tflm", keep: bool = False, resume=None):
    """(int8 NCHW output, {tensor: int8 NCHW}) — the dict holds every step's output with keep=True.

    resume=(tensors, k): start at step k from the tensors of an earlier keep=True run (to rerun
    only the steps from the first FC in the other FC mode)."""
    if fc_requant not in FC_REQUANT:
        raise ValueError(f"fc_requant must be one of {FC_REQUANT}")
    q = check_int8_input(net, q)
    env, first = ({net.graph.input_name: q}, 0) if resume is None else (dict(resume[0]), resume[1])
    for step in net.steps[first:]:
        y = _run_step(step, [env[t] for t in step.inputs], fc_requant)
        expected = (q.shape[0], *step.out_shape.chw)
        if y.shape != expected:
            raise AssertionError(f"{step.output}: the int8 kernel gives {y.shape}, the IR says {expected}")
        env[step.output] = y
    out = env[net.steps[-1].output]
    return out, (env if keep else {})


def run_float(net: QuantizedNetwork, x, fc_requant: str = "tflm") -> np.ndarray:
    """float NCHW in, float out: quantized with the input's parameters, dequantized with the output's."""
    q = A.quantize_float(x, net.input.scale, net.input.zero_point)
    y, _ = run_int8(net, q, fc_requant)
    return A.dequantize(y, net.output.scale, net.output.zero_point)
