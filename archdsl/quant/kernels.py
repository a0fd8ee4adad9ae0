"""int8 NumPy kernels, NCHW, one per rule kind (rules.py). NumPy and arithmetic.py only, so the
generated NumPy runtime copies them as they are.

The sums are exact: products of int8 values accumulate in float64 matrix products, exact for
integers below 2^53 (a window would need 2^53 / (127 · 255) ≈ 2.8e11 taps to leave that range),
then go on in int64 with the reference kernels' rounding (arithmetic.py).
"""
from __future__ import annotations

import numpy as np

from .arithmetic import (add_int8, avg_pool_divide, multiply_by_quantized_multiplier, round_half_away,
                         softmax_int8)


def _windows(x, kernel, stride, pads, value):
    """(N, C, OH, OW, kh, kw) windows of x padded with `value`."""
    (kh, kw), (sh, sw), (t, l, b, r) = kernel, stride, pads
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)
    return np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]


def _requantize(acc, multiplier, shift, out_zp, lo, hi, channel_axis=1):
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    m = np.asarray(multiplier, np.int64).reshape(shape)
    e = np.asarray(shift, np.int64).reshape(shape)
    y = multiply_by_quantized_multiplier(acc, m, e)
    y += out_zp
    return np.clip(y, lo, hi, out=y).astype(np.int8)


def conv_int8(x, weight, bias, multiplier, shift, in_zp, out_zp, lo, hi, kernel, stride, pads, groups):
    """TFLite ConvPerChannel / DepthwiseConvPerChannel: acc = bias + Σ w·(x − in_zp), taps outside
    the image skipped (= padding with in_zp), then MBQM per output channel, + out_zp, clamp."""
    xs = np.asarray(x, np.float64) - in_zp
    win = _windows(xs, kernel, stride, pads, 0.0)
    n, c, oh, ow, kh, kw = win.shape
    w = np.asarray(weight, np.float64)
    cout = w.shape[0]
    if groups == 1:
        acc = np.ascontiguousarray(np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2))
    else:
        cg, og = c // groups, cout // groups
        wg = w.reshape(groups, og, cg, kh, kw)
        wing = win.reshape(n, groups, cg, oh, ow, kh, kw)
        acc = np.einsum("ngchwij,gocij->ngohw", wing, wg, optimize=True).reshape(n, cout, oh, ow)
    acc = np.rint(acc).astype(np.int64)
    acc += np.asarray(bias, np.int64).reshape(1, -1, 1, 1)
    return _requantize(acc, multiplier, shift, out_zp, lo, hi)


def fc_int8(x, weight, bias, multiplier, shift, in_zp, out_zp, lo, hi, real_multiplier=None):
    """TFLite FullyConnected: acc = bias + Σ w·(x − in_zp) over the flattened (C, H, W) input.
    Requantized by MBQM (TFLite Micro, CMSIS-NN), or with real_multiplier given, by
    round_half_away(double(acc) · real_multiplier) (LiteRT 2.3.0's BUILTIN_REF). Output (N, O, 1, 1)."""
    xs = np.asarray(x, np.float64).reshape(x.shape[0], -1) - in_zp
    acc = np.rint(xs @ np.asarray(weight, np.float64).T).astype(np.int64) + np.asarray(bias, np.int64)
    if real_multiplier is None:
        y = _requantize(acc, multiplier, shift, out_zp, lo, hi)
    else:
        y = np.clip(round_half_away(acc * np.asarray(real_multiplier, np.float64)) + out_zp, lo, hi).astype(np.int8)
    return y.reshape(x.shape[0], -1, 1, 1)


def add_kernel(a, b, in_zero_points, out_zero_point, multipliers, lo, hi):
    """TFLite int8 ADD (same shapes)."""
    return add_int8(a, b, in_zero_points[0], in_zero_points[1], out_zero_point, multipliers, lo, hi)


def concat_int8(xs, in_zero_points, out_zero_point, multipliers):
    """Channel concatenation, each input requantized to the output's parameters (a copy when equal)."""
    parts = []
    for x, zp, (m, e) in zip(xs, in_zero_points, multipliers):
        y = multiply_by_quantized_multiplier(np.asarray(x, np.int64) - zp, m, e) + out_zero_point
        parts.append(np.clip(y, -128, 127).astype(np.int8))
    return np.concatenate(parts, axis=1)


def avg_pool_int8(x, kernel, stride, pads, lo, hi):
    """TFLite int8 AveragePool: the raw q summed over the taps inside the image (no zero-point
    subtraction: input and output share their parameters), divided by the tap count rounding half
    away from zero, clamped."""
    total = _windows(np.asarray(x, np.int64), kernel, stride, pads, 0).sum(axis=(4, 5))
    count = _windows(np.ones((1, 1) + x.shape[2:], np.int64), kernel, stride, pads, 0).sum(axis=(4, 5))
    return np.clip(avg_pool_divide(total, count), lo, hi).astype(np.int8)


def max_pool_int8(x, kernel, stride, pads, lo, hi):
    """Max over the taps inside the image (padding never wins), clamped."""
    y = _windows(np.asarray(x, np.int16), kernel, stride, pads, -129).max(axis=(4, 5))
    return np.clip(y, lo, hi).astype(np.int8)


def softmax_kernel(x, input_multiplier, left_shift, diff_min):
    """TFLite int8 Softmax over channels (NCHW axis 1)."""
    moved = np.moveaxis(np.asarray(x), 1, -1)
    return np.moveaxis(softmax_int8(moved, input_multiplier, left_shift, diff_min), -1, 1)


def clamp_int8(x, lo, hi):
    return np.clip(x, lo, hi).astype(np.int8)


def reshape_int8(x, shape):
    return np.asarray(x).reshape((x.shape[0],) + tuple(shape))
