"""The integer arithmetic of TFLite's int8 reference kernels, vectorised in NumPy.

Every function takes and returns NumPy integer arrays (int64 inside, values in int32 range) and
reproduces the C code of the reference kernels (LiteRT `tflite/kernels/internal/common.h`,
`quantization_util.cc`, gemmlowp `fixedpoint/fixedpoint.h`) bit for bit, including its rounding
modes, which differ from function to function:

    srdhm                 round half up of a·b / 2^31 (SaturatingRoundingDoublingHighMul)
    rdbpot                round half away from zero of x / 2^k (RoundingDivideByPOT)
    round_half_away       C's std::round; NumPy's np.round rounds half to even, never use it here
    avg pool divide       round half away, C truncating division

Fixed-point adds and subtracts wrap in int32 (`wrap32`), as the C code does on every compiler we
target; only the explicit "saturating" operations saturate.

    quantize_multiplier(real)            (multiplier, shift): real = multiplier · 2^(shift−31)
    multiply_by_quantized_multiplier     MBQM: the double-rounding requantization
    activation_range(act, scale, zp)     a fused ReLU / ReLU6 as an int8 clamp
    add_params(s1, s2, s_out)            the ADD kernel's three (multiplier, shift) pairs
    softmax_params(in_scale, beta)       (input multiplier, left shift, diff_min)
    softmax_int8(q, ...)                 the gemmlowp fixed-point softmax over the last axis
    avg_pool_divide(sum, count)          the average pool's rounding division

The module imports nothing but NumPy, so the generated NumPy runtime copies it as it is.
"""
from __future__ import annotations

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def wrap32(x):
    """Two's-complement wrap of int64 values into int32 range (what int32 `+` does in C)."""
    x = np.asarray(x, dtype=np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def round_half_away(x):
    """C `std::round` (half away from zero) of a float array, as float."""
    x = np.asarray(x)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_multiplier(real):
    """TFLite `QuantizeMultiplier`: (multiplier int32, shift int) with real ≈ multiplier · 2^(shift − 31).

    frexp gives real = q · 2^e with q in [0.5, 1); multiplier = round_half_away(q · 2^31), and a
    rounding up to 2^31 becomes 2^30 with e + 1. A shift below −31 would shift every bit out: the
    multiplier is flushed to 0 with shift 0 (dead channels of BN-folded models), and so is a zero
    real multiplier. Works element-wise on arrays (double precision)."""
    real = np.asarray(real, dtype=np.float64)
    if np.any(real < 0) or not np.all(np.isfinite(real)):
        raise ValueError("quantize_multiplier: real multipliers must be finite and non-negative")
    frac, exp = np.frexp(real)
    q = round_half_away(frac * float(1 << 31)).astype(np.int64)
    exp = exp.astype(np.int64)
    carry = q == (1 << 31)
    q = np.where(carry, q // 2, q)
    exp = np.where(carry, exp + 1, exp)
    flush = (exp < -31) | (q == 0)
    q = np.where(flush, 0, q)
    exp = np.where(flush, 0, exp)
    return q.astype(np.int32), exp.astype(np.int32)


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul: (a·b + nudge) / 2^31 truncated, nudge = 2^30 for a
    non-negative product, 1 − 2^30 otherwise; that equals floor((a·b + 2^30) / 2^31). The one
    overflowing case, a = b = INT32_MIN, saturates to INT32_MAX."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    out = a * b
    out += 1 << 30
    out >>= 31
    if np.any(b == INT32_MIN):  # only then can the product overflow (multipliers never do)
        out = np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, out)
    return out


def rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2^exponent, rounded half away from zero (exponent 0..31)."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    out = x >> exponent
    out += remainder > threshold
    return out


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite `MultiplyByQuantizedMultiplier` with double rounding (the default build of LiteRT's
    reference kernels, TFLite Micro and CMSIS-NN): RDBPOT(SRDHM(x · 2^max(shift, 0), multiplier),
    max(−shift, 0)). The left shift wraps like the int32 multiply in C."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.asarray(x, dtype=np.int64)
    if np.any(left):  # (shift is per channel: a small array; most networks only shift right)
        x = wrap32(x << left)
    return rdbpot(srdhm(x, multiplier), right)


def saturating_left_shift(x, exponent: int):
    """gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent: x · 2^exponent, saturated."""
    x = np.asarray(x, dtype=np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def quantize_value(value: float, scale, zero_point):
    """TFLite's `Quantize(f)` in `CalculateActivationRangeQuantized`: zp + round(float32(f / scale))."""
    q = round_half_away(np.float32(value) / np.asarray(scale, dtype=np.float32))
    return int(zero_point) + int(q)


def activation_range(activation: str | None, scale, zero_point) -> tuple[int, int]:
    """(low, high) of the int8 clamp a fused activation becomes (`CalculateActivationRangeQuantized`):
    none [-128, 127], relu [max(-128, zp), 127], relu6 [max(-128, zp), min(127, Quantize(6))]."""
    if activation is None:
        return -128, 127
    low = max(-128, quantize_value(0.0, scale, zero_point))
    if activation == "relu":
        return low, 127
    if activation == "relu6":
        return low, min(127, quantize_value(6.0, scale, zero_point))
    raise ValueError(f"no int8 clamp for activation {activation!r}")


ADD_LEFT_SHIFT = 20  # headroom of the int8 ADD kernel: |q − zp| < 2^8, 2^8 · 2^20 · 2 < 2^31


def add_params(scale1, scale2, out_scale):
    """The ADD kernel's requantization (LiteRT `add.cc`, TFLM `add_common.cc`): inputs scaled by
    s_i / (2·max(s1, s2)) after a 2^20 pre-shift, the sum by 2·max(s1, s2) / (2^20 · s_out), in
    double. Returns ((m1, e1), (m2, e2), (m_out, e_out)) as Python ints."""
    s1, s2, so = (float(np.float32(s)) for s in (scale1, scale2, out_scale))
    twice_max = 2.0 * max(s1, s2)
    reals = (s1 / twice_max, s2 / twice_max, twice_max / ((1 << ADD_LEFT_SHIFT) * so))
    out = []
    for r in reals:
        m, e = quantize_multiplier(r)
        out.append((int(m), int(e)))
    return tuple(out)


def add_int8(q1, q2, zp1, zp2, zp_out, params, low=-128, high=127):
    """The int8 ADD kernel: y = clamp(MBQM(MBQM((q1−zp1)·2^20) + MBQM((q2−zp2)·2^20)) + zp_out)."""
    (m1, e1), (m2, e2), (mo, eo) = params
    a = multiply_by_quantized_multiplier((np.asarray(q1, np.int64) - zp1) << ADD_LEFT_SHIFT, m1, e1)
    b = multiply_by_quantized_multiplier((np.asarray(q2, np.int64) - zp2) << ADD_LEFT_SHIFT, m2, e2)
    y = multiply_by_quantized_multiplier(a + b, mo, eo) + zp_out
    return np.clip(y, low, high).astype(np.int8)


# ---------------------------------------------------------------- softmax (gemmlowp fixed point)

SOFTMAX_DIFF_INTEGER_BITS = 5     # the scaled input difference is Q5.26
SOFTMAX_ACCUM_INTEGER_BITS = 12   # the sum of exponentials is Q12.19
SOFTMAX_OUT_SCALE = 1.0 / 256     # required by the kernel (LiteRT SoftmaxPrepare enforces it)
SOFTMAX_OUT_ZERO_POINT = -128


def softmax_params(in_scale, beta: float = 1.0) -> tuple[int, int, int]:
    """`PreprocessSoftmaxScaling(beta, in_scale, 5)` and `CalculateInputRadius`: (input multiplier,
    left shift, diff_min). Inputs more than |diff_min| below the row's maximum output −128."""
    real = min(float(beta) * float(np.float32(in_scale)) * float(1 << (31 - SOFTMAX_DIFF_INTEGER_BITS)),
               float((1 << 31) - 1))
    m, shift = (int(v) for v in quantize_multiplier(real))
    if shift < 0:
        raise ValueError("softmax: input scale too small for the fixed-point kernel")
    radius = ((1 << SOFTMAX_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SOFTMAX_DIFF_INTEGER_BITS)) / (1 << shift)
    return m, shift, -int(np.floor(radius))


def _fmul(a, b):
    """FixedPoint multiply: the raw result is SRDHM of the raws (integer bits add up)."""
    return srdhm(a, b)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """Q0.31 exp(a) for a in [−1/4, 0): a 4th-order Taylor polynomial around −1/8."""
    constant_term = 1895147668       # exp(−1/8)
    constant_1_over_3 = 715827883
    x = wrap32(a + (1 << 28))        # a + 1/8
    x2 = _fmul(x, x)
    x3 = _fmul(x2, x)
    x4 = _fmul(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    poly = rdbpot(wrap32(_fmul(wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return wrap32(constant_term + _fmul(constant_term, wrap32(x + poly)))


# exp(−2^k) in Q0.31, for the bits of the remainder (the "barrel shifter")
_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
               (3, 720401), (4, 242))


def exp_on_negative_values(a):
    """gemmlowp `exp_on_negative_values` of a Q5.26 input ≤ 0, as Q0.31 (0 gives INT32_MAX)."""
    a = np.asarray(a, dtype=np.int64)
    frac_bits = 31 - SOFTMAX_DIFF_INTEGER_BITS
    quarter = 1 << (frac_bits - 2)
    a_mod_quarter_minus_quarter = wrap32((a & (quarter - 1)) - quarter)
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_left_shift(a_mod_quarter_minus_quarter, SOFTMAX_DIFF_INTEGER_BITS))
    remainder = wrap32(a_mod_quarter_minus_quarter - a)
    for exponent, multiplier in _EXP_BARREL:
        if SOFTMAX_DIFF_INTEGER_BITS > exponent:
            bit = (remainder & (1 << (frac_bits + exponent))) != 0
            result = np.where(bit, _fmul(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp: 1/(1+a) for a Q0.31 a in [0, 1), by three Newton-Raphson steps in Q2.29; Q0.31 out."""
    a = np.asarray(a, dtype=np.int64)
    total = a + INT32_MAX                                   # RoundingHalfSum(a, One)
    half_denominator = _trunc_div2(total + np.where(total >= 0, 1, -1))
    x = wrap32(1515870810 + _fmul(half_denominator, -1010580540))  # 48/17 − 32/17 · d
    one_q2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = _fmul(half_denominator, x)
        one_minus = wrap32(one_q2 - half_denominator_times_x)
        x = wrap32(x + saturating_left_shift(_fmul(x, one_minus), 2))
    return saturating_left_shift(x, 1)


def _trunc_div2(v):
    """C integer division by 2 (toward zero)."""
    v = np.asarray(v, dtype=np.int64)
    return np.where(v >= 0, v // 2, -((-v) // 2))


def _count_leading_zeros32(x):
    """clz of non-negative int32 values (32 for 0); frexp's exponent is the exact bit length."""
    x = np.asarray(x, dtype=np.int64)
    return 32 - np.frexp(x.astype(np.float64))[1].astype(np.int64)


def get_reciprocal(x, integer_digits: int):
    """TFLite `GetReciprocal`: (Q0.31 1/(1+frac), num_bits_over_unit) of a positive Q(digits) sum."""
    x = np.asarray(x, dtype=np.int64)
    headroom_plus_one = _count_leading_zeros32(x)
    num_bits_over_unit = integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def softmax_int8(q, input_multiplier: int, left_shift: int, diff_min: int):
    """TFLite `reference_ops::Softmax` for int8 in and out (1/256, −128) over the last axis."""
    q = np.asarray(q, dtype=np.int64)
    diff = q - q.max(axis=-1, keepdims=True)
    live = diff >= diff_min
    rescaled = srdhm(wrap32(diff << left_shift), input_multiplier)  # MBQM greater than one
    e = exp_on_negative_values(rescaled)
    terms = np.where(live, rdbpot(e, SOFTMAX_ACCUM_INTEGER_BITS), 0)
    total = wrap32(np.sum(terms, axis=-1, keepdims=True))          # int32 adds wrap
    recip, bits_over_unit = get_reciprocal(total, SOFTMAX_ACCUM_INTEGER_BITS)
    out = rdbpot(srdhm(recip, e), bits_over_unit + 31 - 8) + SOFTMAX_OUT_ZERO_POINT
    return np.where(live, np.clip(out, -128, 127), -128).astype(np.int8)


def avg_pool_divide(total, count):
    """The int8 average pool's division of the raw window sum by its tap count: round half away,
    C truncation: (sum ± count/2) / count."""
    total = np.asarray(total, dtype=np.int64)
    count = np.asarray(count, dtype=np.int64)
    num = np.where(total > 0, total + count // 2, total - count // 2)
    return np.sign(num) * (np.abs(num) // count)


def quantize_float(x, scale, zero_point):
    """float → int8 as TFLite's QUANTIZE op: clamp(round_half_away(float32(x / scale)) + zp)."""
    q = round_half_away(np.asarray(x, dtype=np.float32) / np.float32(scale))
    return np.clip(q + int(zero_point), -128, 127).astype(np.int8)


def dequantize(q, scale, zero_point):
    """int8 → float32: scale · (q − zp)."""
    return (np.float32(scale) * (np.asarray(q, dtype=np.int32) - int(zero_point))).astype(np.float32)
