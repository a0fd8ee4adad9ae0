"""Post-training quantization in TFLite's scheme: float weights + calibration images -> int8 weights.

    quantize(graph, weights, calibration, activations=None) -> int8 weight dict (weights_file.py)

The weight side follows the TFLite converter's quantizer (`tflite/tools/optimize/
quantization_utils.cc`, shared/notes/tflite_int8.md §7) operation for operation, in float32 unless
marked double, so that it reproduces the converter's integers bit for bit:

    weights, per output channel c (per tensor for a per-tensor FC):
        half_range = max |w[c]|, scale = half_range / 127, inv = 127 / half_range (0 for an
        all-zero channel), q = clamp(round_half_away(w · inv), −127, 127)
    the bias-overflow rule (AdjustWeightsForBiasScale): when |b[c]| ≥ 0.5 · s_in · scale · (2^31 − 1),
        half_range = float32(double(2 · |b[c]|) / (2^31 − 1) · float32(127 / s_in)) and the
        channel is quantized again with it (this puts the bias at about ±2^30; BN-folded dead
        channels of VWW need it)
    biases: bias_scale = float32(s_in · scale[c]), inv = float32(1 / bias_scale),
        q = clamp(round_half_away(b · inv), −(2^31 − 1), 2^31 − 1)

Activations: the float reference (backends/numpy_target.py) runs the calibration batch; each
calibrated tensor's range is widened to include 0, scale = (max − min) / 255 and zero point
−128 − min / scale (or 127 − max / scale, whichever adds smaller terms) rounded and clamped to
[−128, 127] (GetAsymmetricQuantizationParams; in double for the MLIR quantizer). Tensors whose
int8 rule shares its input's parameters (pools, reshapes) take them; softmax outputs are (1/256, −128).
A fused ReLU's output has min 0, hence zero point −128.

`activations` ({tensor: (scale, zero_point)}) replaces calibration for the tensors it names: with
a shipped model's own activation parameters the weight side can be compared with the converter's.
"""
from __future__ import annotations

import numpy as np

from ..errors import ArchError
from ..ir import Graph
from . import arithmetic as A
from .network import SOFTMAX_OUT, refuse_unsupported
from .weights_file import FORMAT, VERSION, check_int8, tensor_key

INT32_BIAS_MAX = (1 << 31) - 1


def activation_params(lo: float, hi: float, quantizer: str = "legacy") -> tuple[float, int]:
    """(scale, zero point) of a calibrated range: the range widened to include 0, scale
    (max − min) / 255, the zero point from whichever end adds the smaller terms, rounded half away
    and clamped (GetAsymmetricQuantizationParams, in float32; the MLIR quantizer's
    getNudgedScaleAndZeroPoint, in double, the scale then stored as float32)."""
    real = np.float64 if quantizer == "mlir" else np.float32
    lo, hi = real(min(lo, 0.0)), real(max(hi, 0.0))
    if hi == lo:  # a tensor that is always 0: any scale represents it
        return 1.0, -128
    qmin, qmax = real(-128.0), real(127.0)
    scale = real((hi - lo) / (qmax - qmin))
    from_min, from_max = real(qmin - lo / scale), real(qmax - hi / scale)
    err_min, err_max = real(abs(qmin) + abs(lo / scale)), real(abs(qmax) + abs(hi / scale))
    zp = from_min if err_min < err_max else from_max
    zp = -128 if zp < qmin else 127 if zp > qmax else int(A.round_half_away(zp))
    return float(np.float32(scale)), zp


NEAR_ZERO_RANGE = 1e-6  # a channel whose range is below this is widened to ±5e-7 (ExpandVerySmallRange)


MLIR_BIAS_MAX = ((1 << 31) - 1) // 2  # kBiasMax = INT32_MAX / 2 (integer division), quantization_driver.cc
QUANTIZERS = ("mlir", "legacy")


def _weight_scales(w: np.ndarray, per_channel: bool, quantizer: str) -> np.ndarray:
    """half_range per output channel (or one for the tensor), float32."""
    flat = w.reshape(w.shape[0], -1).astype(np.float32) if per_channel else w.reshape(1, -1).astype(np.float32)
    lo, hi = flat.min(axis=1), flat.max(axis=1)
    half = np.maximum(np.abs(lo), np.abs(hi)).astype(np.float32)
    if quantizer == "legacy":
        return half
    tiny = (hi.astype(np.float64) - lo.astype(np.float64)) <= NEAR_ZERO_RANGE
    return np.where(tiny, np.maximum(half, np.float32(NEAR_ZERO_RANGE / 2)), half).astype(np.float32)


def _quantize_weights(w: np.ndarray, half_range: np.ndarray) -> np.ndarray:
    shape = (-1,) + (1,) * (w.ndim - 1) if half_range.size > 1 else (1,) * w.ndim
    safe = np.where(half_range > 0, half_range, np.float32(1.0))
    inv = np.where(half_range > 0, np.float32(127.0) / safe, np.float32(0.0)).astype(np.float32)
    q = A.round_half_away((w.astype(np.float32) * inv.reshape(shape)).astype(np.float32))
    return np.clip(q, -127, 127).astype(np.int8)


def quantize_conv(w: np.ndarray, b: np.ndarray, in_scale: float, per_channel: bool = True,
                  quantizer: str = "mlir"):
    """(int8 weight, float32 weight scale, int32 bias, channels widened by the bias rule) of one
    BN-folded conv / fc, by the converter's rules (module doc)."""
    w = np.asarray(w, np.float32)
    b = np.asarray(b, np.float32)
    s_in = np.float32(in_scale)
    half = _weight_scales(w, per_channel, quantizer)
    scale = (half / np.float32(127.0)).astype(np.float32)
    bias_abs = np.abs(b).astype(np.float32)
    if quantizer == "legacy":  # AdjustWeightsForBiasScale (tflite/tools/optimize)
        limit = (np.float32(0.5) * s_in * np.broadcast_to(scale, b.shape) * np.float32(INT32_BIAS_MAX))
        widen = bias_abs >= limit.astype(np.float32)
        if not per_channel and np.any(widen):
            widen_to = np.float32(2.0 * float(bias_abs.max()) / INT32_BIAS_MAX * float(np.float32(127.0) / s_in))
            half = np.maximum(half, widen_to)
        elif per_channel:
            wide = 2.0 * bias_abs.astype(np.float64) / INT32_BIAS_MAX * float(np.float32(np.float32(127.0) / s_in))
            half = np.where(widen, wide.astype(np.float32), half).astype(np.float32)
        scale = (half / np.float32(127.0)).astype(np.float32)
    else:  # SetBiasParamsWithAdjustments (the MLIR quantization driver), in double
        bias_scale = float(s_in) * np.broadcast_to(scale, b.shape).astype(np.float64)
        with np.errstate(divide="ignore"):
            widen = bias_abs.astype(np.float64) / bias_scale > MLIR_BIAS_MAX
        if not per_channel and np.any(widen):
            widen = np.zeros_like(widen)
            widen[np.argmax(bias_abs)] = True
            scale = np.full(1, bias_abs.max() / MLIR_BIAS_MAX / float(s_in), np.float32)
        elif per_channel:
            scale = np.where(widen, (bias_abs.astype(np.float64) / MLIR_BIAS_MAX / float(s_in)), scale)
            scale = scale.astype(np.float32)
        # the channels re-scaled for their bias are quantized with the new scale
        half = np.where(widen, scale * np.float32(127.0), half).astype(np.float32) if per_channel else \
            (scale * np.float32(127.0)).astype(np.float32)
    q = _quantize_weights(w, half)
    scale = np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)  # an all-zero channel, no bias
    bias_scale = (s_in * np.broadcast_to(scale, b.shape)).astype(np.float32)
    inv = (1.0 / bias_scale.astype(np.float64)).astype(np.float32)
    qb = A.round_half_away((b * inv).astype(np.float32).astype(np.float64))
    qb = np.clip(qb, -INT32_BIAS_MAX, INT32_BIAS_MAX).astype(np.int32)
    return q, scale, qb, int(np.sum(widen))


def calibrate(graph: Graph, weights: dict, calibration: np.ndarray, tensors: list[str]) -> dict[str, tuple]:
    """{tensor: (min, max)} over the calibration batch, from the float reference."""
    from ..backends.numpy_target import reference_forward

    ranges: dict[str, list[float]] = {}
    for start in range(0, calibration.shape[0], 16):  # bounded memory
        batch = calibration[start:start + 16]
        _, layers = reference_forward(graph, weights, batch, keep=True)
        layers[graph.input_name] = np.asarray(batch, np.float32)
        for t in tensors:
            lo, hi = float(layers[t].min()), float(layers[t].max())
            if t in ranges:
                ranges[t] = [min(ranges[t][0], lo), max(ranges[t][1], hi)]
            else:
                ranges[t] = [lo, hi]
    return {t: tuple(v) for t, v in ranges.items()}


def quantize(graph: Graph, weights: dict, calibration: np.ndarray | None,
             activations: dict[str, tuple[float, int]] | None = None, quantizer: str = "mlir") -> tuple[dict, dict]:
    """(int8 weight dict, report {"widened": channels widened by the bias rule, ...}).
    quantizer: "mlir" (the TFLite converter's default since TF 2.4) or "legacy" (tflite/tools/optimize)."""
    if quantizer not in QUANTIZERS:
        raise ArchError(f"unknown quantizer '{quantizer}'", None, f"one of: {', '.join(QUANTIZERS)}")
    from ..analysis.schedule import schedule
    from ..weights import check_weights, fold_bn

    weights = check_weights(weights, graph)
    plan = refuse_unsupported(graph)
    fixed = dict(activations or {})
    calibrated = [graph.input_name] + [s.output for s, rule in plan if rule.output == "calibrated"]
    todo = [t for t in calibrated if t not in fixed]
    if todo:
        if calibration is None or len(calibration) == 0:
            raise ArchError("quantize needs calibration samples for the activation ranges", None,
                            "--calibration samples.npy: float NCHW inputs (N, C, H, W), as the float model takes them")
        ranges = calibrate(graph, weights, calibration, todo)
        for t in todo:
            fixed[t] = activation_params(*ranges[t], quantizer=quantizer)
    folded = fold_bn(graph, schedule(graph), weights)
    out: dict[str, np.ndarray] = {}
    params: dict[str, tuple[float, int]] = {graph.input_name: fixed[graph.input_name]}
    widened = 0
    for step, rule in plan:
        if rule.output == "input":
            params[step.output] = params[step.inputs[0]]
        elif rule.output == "fixed":
            params[step.output] = (SOFTMAX_OUT.scale, SOFTMAX_OUT.zero_point)
        else:
            params[step.output] = fixed[step.output]
        if rule.weights:
            w, b = folded[step.main.name]
            per_channel = step.main.op.name != "fc"
            q, scale, qb, n = quantize_conv(w, b, params[step.inputs[0]][0], per_channel, quantizer)
            widened += n
            key = step.main.param_key
            out[key("weight")], out[key("weight_scale")], out[key("bias")] = q, scale, qb
    for t, (s, zp) in params.items():
        out[tensor_key(t, "scale")] = np.array(s, np.float32)
        out[tensor_key(t, "zero_point")] = np.array(zp, np.int32)
    out = check_int8({**out, "__format__": np.array(FORMAT), "__version__": np.array(VERSION, np.int32)},
                     graph, "the quantized weights")
    return out, {"widened": widened, "calibrated": len(todo)}
