/* archdsl C runtime, int8: hand-written kernels with TensorFlow Lite's integer reference arithmetic.
 *
 * Layout: as the float runtime (archdsl_rt.h): one image, NCHW, contiguous; every tensor is int8
 * with one (scale, zero point) pair; weights are int8, symmetric (zero point 0), per output channel;
 * biases are int32 (scale in_scale * w_scale[c]). The scales never reach C: the compiler turns each
 * real multiplier into a fixed-point (multiplier, shift) pair (TFLite's QuantizeMultiplier), and the
 * kernels only multiply, round and clamp. Fused activations are the clamp [act_min, act_max].
 *
 * The arithmetic is TFLite Micro's reference kernels' (the deployment reference): requantization by
 * MultiplyByQuantizedMultiplier with double rounding, taps outside the image skipped (the same as
 * padding with the input zero point), fully connected in fixed point, the ADD's 2^20 pre-shift, the
 * average pool rounding half away from zero on the raw values, gemmlowp's fixed-point softmax.
 * Plain C99 on int32/int64: the same code builds for any Cortex-M (M0/M3 included) and any host.
 * Signed right shifts are arithmetic (as on every C compiler archdsl supports: gcc, clang).
 */
#ifndef ARCHDSL_QRT_H
#define ARCHDSL_QRT_H

#include <stdint.h>
#include <string.h>

/* ---------------------------------------------------------------- fixed-point helpers (gemmlowp) */

/* SaturatingRoundingDoublingHighMul: round(a * b / 2^31), ties up; saturates only INT32_MIN^2. */
static inline int32_t arch_q_srdhm(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* RoundingDivideByPOT: x / 2^e rounded half away from zero, e in [0, 31]. */
static inline int32_t arch_q_rdbpot(int32_t x, int e)
{
    const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    const int32_t rem = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > threshold ? 1 : 0);
}

/* x * 2^e, wrapping as the reference's int32 multiply does (e in [0, 31]). */
static inline int32_t arch_q_shl(int32_t x, int e)
{
    return (int32_t)((uint32_t)x << e);
}

/* MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31), the two roundings of the
 * reference. shift is in [-31, 30]: the compiler flushes smaller real multipliers to (0, 0). */
static inline int32_t arch_q_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int left = shift > 0 ? (int)shift : 0;
    const int right = shift > 0 ? 0 : (int)-shift;
    return arch_q_rdbpot(arch_q_srdhm(arch_q_shl(x, left), multiplier), right > 31 ? 31 : right);
}

/* v clamped to an activation's [act_min, act_max] (within int8's range), as int8. */
static inline int8_t arch_q_clamp(int32_t v, int32_t act_min, int32_t act_max)
{
    v = v < act_min ? act_min : v;
    v = v > act_max ? act_max : v;
    return (int8_t)v;
}

/* An int32 accumulator to an int8 output: requantize, add the zero point, clamp to the activation. */
static inline int8_t arch_q_out(int32_t acc, int32_t multiplier, int32_t shift, int32_t out_zp,
                                int32_t act_min, int32_t act_max)
{
    return arch_q_clamp(arch_q_mbqm(acc, multiplier, shift) + out_zp, act_min, act_max);
}

/* ---------------------------------------------------------------- the fast paths' helpers
 *
 * The packed kernels (rt_qgemm.c, rt_qdwconv.c) requantize with arch_q_out_fast, which is
 * MultiplyByQuantizedMultiplier exactly under a precondition the compiler proves per layer from the
 * weights and biases (c_target/lowering_int8.py, `fast_requant`): |acc * 2^left| < 2^29 and
 * right <= 30. Then SRDHM(a, m) = round(a * m / 2^31) = (2a * m + 2^31) >> 32, one SMMULR, and the
 * rounding of the right shift half away from zero is (2t + 2^right - [t < 0]) >> (right + 1).
 *
 * On a core with the DSP extension (Cortex-M4, M7, M33, M55: __ARM_FEATURE_DSP and
 * __ARM_FEATURE_SIMD32) the inner loops use the SIMD instructions of <arm_acle.h>: SXTB16 widens
 * the bytes 0 and 2 of a word to two int16, SMLAD adds two 16 x 16 products. Elsewhere (M0, M3, a
 * host) the same kernels run plain C loops over the same packed weights; both give the same values. */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32) && !defined(ARCHDSL_PORTABLE)
#include <arm_acle.h>
#define ARCH_Q_DSP 1

/* SXTB16 of the word rotated by 8: bytes 1 and 3 (GCC does not fold the rotate into the SXTB16). */
static inline int32_t arch_q_sxtb16_ror8(int32_t v)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}

/* (a.lo, b.lo) and (a.hi, b.hi) of two int16 pairs: PKHBT and PKHTB (GCC builds them from two
 * instructions each). */
static inline int32_t arch_q_pack_lo(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static inline int32_t arch_q_pack_hi(int32_t a, int32_t b)
{
    int32_t r;
    __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* SXTAB16 of the word rotated by 8: a + (bytes 1 and 3), lane by lane. */
static inline int32_t arch_q_sxtab16_ror8(int32_t a, int32_t v)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(v));
    return r;
}
#endif

/* A fast kernel's inner loop as a function of its own: its loop gets the registers (a caller's
 * variable-length buffers take a frame pointer, and inlined loops share the caller's registers). */
#if defined(__GNUC__)
#define ARCH_Q_NOINLINE __attribute__((noinline))
#else
#define ARCH_Q_NOINLINE
#endif

/* (a * b + 2^31) >> 32: SMMULR on the DSP extension. */
static inline int32_t arch_q_smmulr(int32_t a, int32_t b)
{
#if defined(ARCH_Q_DSP)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* The requantization of one output channel, decoded once (arch_q_channel): the multiplier, 1 + the
 * left shift (the 1 doubles the product for SMMULR), the right shift. */
struct arch_qch {
    int32_t multiplier, left, right;
};

/* arch_q_out under the precondition above: the same value. */
static inline int8_t arch_q_out_fast(int32_t acc, struct arch_qch c, int32_t out_zp, int32_t act_min,
                                     int32_t act_max)
{
    const int32_t t = arch_q_smmulr((int32_t)((uint32_t)acc << c.left), c.multiplier);
    const int32_t v = (t * 2 + ((int32_t)1 << c.right) + (t >> 31)) >> (c.right + 1);
    return arch_q_clamp(v + out_zp, act_min, act_max);
}

/* arch_q_out_fast when the clamp is the whole int8 range (SSAT on the DSP extension). */
static inline int8_t arch_q_out_sat(int32_t acc, struct arch_qch c, int32_t out_zp)
{
    const int32_t t = arch_q_smmulr((int32_t)((uint32_t)acc << c.left), c.multiplier);
    const int32_t v = ((t * 2 + ((int32_t)1 << c.right) + (t >> 31)) >> (c.right + 1)) + out_zp;
#if defined(ARCH_Q_DSP)
    return (int8_t)__ssat(v, 8);
#else
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
#endif
}

/* The fast convolutions' rows (rt_qconv.c, rt_qdwconv.c): input row iy of the h x w `plane` as int16
 * x - zp at r[pad_left ..], or zeros there for a padding row. The columns of r outside
 * [pad_left, pad_left + min(w, len - pad_left)) are padding: zeroed once (arch_q_rows_init) and
 * never written again. */
static inline void arch_q_widen_row(int16_t *restrict r, int len, const int8_t *restrict plane, int h, int w,
                                    int iy, int pad_left, int32_t in_zp)
{
    const int n = w < len - pad_left ? w : len - pad_left;
    int16_t *dst = r + pad_left;
    int j = 0;
    if (iy < 0 || iy >= h) {
        memset(dst, 0, (size_t)n * sizeof(int16_t));
        return;
    }
    plane += iy * w;
#if defined(ARCH_Q_DSP)
    {
        const uint32_t zp16 = (uint16_t)(int16_t)-in_zp;
        const int32_t off = (int32_t)((zp16 << 16) | zp16);
        for (; j + 4 <= n; j += 4) {
            int32_t v, lo, hi, a, b;
            memcpy(&v, plane + j, 4);
            lo = __sxtab16(off, v);               /* x0 - zp, x2 - zp */
            hi = arch_q_sxtab16_ror8(off, v);     /* x1 - zp, x3 - zp */
            a = arch_q_pack_lo(lo, hi); /* x0, x1 */
            b = arch_q_pack_hi(lo, hi); /* x2, x3 */
            memcpy(dst + j, &a, 4);
            memcpy(dst + j + 2, &b, 4);
        }
    }
#endif
    for (; j < n; j++) dst[j] = (int16_t)(plane[j] - in_zp);
}

/* A ring of kh widened rows seen through ring[0 .. 2 kh): ring[i] = buffer row i mod kh, so the
 * window of the current output row is ring + base, and moving down by the stride moves base (no
 * copying). The buffer (kh rows of len) is zeroed here, once. */
static inline void arch_q_rows_init(int16_t **ring, int16_t *buffer, int kh, int len)
{
    int i;
    memset(buffer, 0, (size_t)kh * (size_t)len * sizeof(int16_t));
    for (i = 0; i < kh; i++) ring[i] = ring[kh + i] = buffer + i * len;
}

/* The window (kh row pointers) of output row oy: the input rows iy .. iy + kh - 1, widened; for the
 * first output row all of them, then only the sh new ones. */
static inline int16_t **arch_q_next_rows(int16_t **ring, int *base, int kh, int sh, int first, int len,
                                        const int8_t *plane, int h, int w, int iy, int pad_left, int32_t in_zp)
{
    int ky, fresh = kh;
    int16_t **rows;
    if (!first) {
        *base += sh;
        while (*base >= kh) *base -= kh;
        fresh = sh < kh ? sh : kh;
    }
    rows = ring + *base;
    for (ky = kh - fresh; ky < kh; ky++) arch_q_widen_row(rows[ky], len, plane, h, w, iy + ky, pad_left, in_zp);
    return rows;
}

/* One row of kw int8 taps as ceil(kw / 2) int16 pairs (low half first, an odd last tap with 0). */
static inline void arch_q_tap_pairs(const int8_t *taps, int kw, int32_t *pairs)
{
    int k;
    for (k = 0; 2 * k < kw; k++) {
        const int32_t lo = taps[2 * k], hi = 2 * k + 1 < kw ? taps[2 * k + 1] : 0;
        pairs[k] = (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
    }
}

#if defined(ARCH_Q_DSP)
/* Two adjacent int16 as one word (low half first: the little-endian load). */
static inline int32_t arch_q_pair16(const int16_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
#endif

/* The valid [lo, hi) range of a window's taps for output index o (start o * s - pad) on an axis of n. */
static inline void arch_q_taps(int o, int s, int pad, int k, int n, int *lo, int *hi)
{
    const int start = o * s - pad;
    *lo = start < 0 ? -start : 0;
    *hi = start + k > n ? n - start : k;
}

/* The requantization of one op's output: the (multiplier, shift) arrays, per output channel
 * (per_channel 1) or one entry for the tensor (per_channel 0), the output zero point and the
 * activation's clamp. Lives in flash. */
struct arch_qout {
    const int32_t *multiplier;
    const int32_t *shift;
    int32_t per_channel;
    int32_t zero_point;
    int32_t act_min;
    int32_t act_max;
};

static inline struct arch_qch arch_q_channel(const struct arch_qout *q, int o)
{
    struct arch_qch c;
    const int32_t shift = q->shift[o * q->per_channel];
    c.multiplier = q->multiplier[o * q->per_channel];
    c.left = 1 + (shift > 0 ? shift : 0);
    c.right = shift > 0 ? 0 : -shift;
    return c;
}

/* The scaled and rounded acc of arch_q_out_fast before the clamp, with `round` = 2^right plus the
 * output zero point times 2^(right + 1): (X + zp 2^(right+1)) >> (right + 1) = (X >> (right + 1)) + zp,
 * one add fewer an output. No overflow for right <= 21: |2t| < 2^30 and |round| < 2^30. */
static inline int32_t arch_q_scale_zp(int32_t acc, struct arch_qch c, int32_t round)
{
    const int32_t t = arch_q_smmulr((int32_t)((uint32_t)acc << c.left), c.multiplier);
    return (t * 2 + round + (t >> 31)) >> (c.right + 1);
}

static inline int8_t arch_q_sat8(int32_t v)
{
#if defined(ARCH_Q_DSP)
    return (int8_t)__ssat(v, 8);
#else
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
#endif
}

#define ARCH_Q_ZP_ROUND_MAX_RIGHT 21

/* y[i] = the requantized acc[i], i < n, for output channel c (arch_q_out_fast's values): four outputs
 * a turn with SSAT when the clamp allows all of int8, else two, with the zero point in the rounding
 * constant when right allows it; the rest (a short tail, a larger right) one at a time. */
static inline void arch_q_out_row(int8_t *restrict y, const int32_t *restrict acc, int n, struct arch_qch c,
                                  const struct arch_qout *q)
{
    const int full = q->act_min == -128 && q->act_max == 127;
    int i = 0;
    if (c.right <= ARCH_Q_ZP_ROUND_MAX_RIGHT) {
        const int32_t round = ((int32_t)1 << c.right) + q->zero_point * ((int32_t)2 << c.right);
        const int32_t lo = q->act_min, hi = q->act_max;
        if (full) {
            for (; i + 4 <= n; i += 4) {
                const int32_t a = acc[i], b = acc[i + 1], d = acc[i + 2], e = acc[i + 3];
                y[i] = arch_q_sat8(arch_q_scale_zp(a, c, round));
                y[i + 1] = arch_q_sat8(arch_q_scale_zp(b, c, round));
                y[i + 2] = arch_q_sat8(arch_q_scale_zp(d, c, round));
                y[i + 3] = arch_q_sat8(arch_q_scale_zp(e, c, round));
            }
        } else {
            for (; i + 2 <= n; i += 2) {
                int32_t a = arch_q_scale_zp(acc[i], c, round), b = arch_q_scale_zp(acc[i + 1], c, round);
                a = a < lo ? lo : a > hi ? hi : a;
                b = b < lo ? lo : b > hi ? hi : b;
                y[i] = (int8_t)a;
                y[i + 1] = (int8_t)b;
            }
        }
    }
    if (full) {
        for (; i < n; i++) y[i] = arch_q_out_sat(acc[i], c, q->zero_point);
    } else {
        for (; i < n; i++) y[i] = arch_q_out_fast(acc[i], c, q->zero_point, q->act_min, q->act_max);
    }
}

/* ---------------------------------------------------------------- kernels (rt_q*.c) */

/* rt_qconv.c: standard or grouped convolution, any kernel, stride and padding (as arch_conv2d).
 * in_zp is the input's zero point; q has cout channels. */
void arch_qconv2d(const int8_t *restrict in, int cin, int h, int w, int32_t in_zp,
                  const int8_t *restrict weight, const int32_t *restrict bias,
                  int cout, int groups, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                  int8_t *restrict out, int oh, int ow, const struct arch_qout *q);

/* rt_qconv.c: convolution with groups 1 and cin * kh <= 16 rows (a first convolution), a window of
 * at most 7 wide, through widened rows (the fast kernel; q as arch_qconv_dw_rows'). */
void arch_qconv_rows(const int8_t *restrict in, int cin, int h, int w, int32_t in_zp,
                     const int8_t *restrict weight, const int32_t *restrict bias,
                     int cout, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                     int8_t *restrict out, int oh, int ow, const struct arch_qout *q);

/* rt_qdwconv.c: depthwise convolution with channel multiplier 1 and a window of at most 7x7,
 * through widened rows (the fast kernel; q meets arch_q_out_fast's precondition for |x - in_zp|). */
void arch_qconv_dw_rows(const int8_t *restrict in, int c, int h, int w, int32_t in_zp,
                        const int8_t *restrict weight, const int32_t *restrict bias,
                        int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                        int8_t *restrict out, int oh, int ow, const struct arch_qout *q);

/* rt_qgemm.c: a 1x1 convolution (stride 1, no padding, groups 1) over hw pixels, or a fully
 * connected layer (hw 1), with the weights packed and the input offset folded into the bias by the
 * compiler (lowering_int8.gemm_constants); q meets arch_q_out_fast's precondition. */
void arch_qgemm(const int8_t *restrict in, int cin, int hw, const int8_t *restrict weight,
                const int32_t *restrict bias, int cout, int8_t *restrict out, const struct arch_qout *q);

/* rt_qdwconv.c: depthwise convolution with channel multiplier m (as arch_conv_dw). */
void arch_qconv_dw(const int8_t *restrict in, int c, int h, int w, int32_t in_zp,
                   const int8_t *restrict weight, const int32_t *restrict bias, int m,
                   int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                   int8_t *restrict out, int oh, int ow, const struct arch_qout *q);

/* rt_qpool.c: pooling over the valid taps of each window. The output has the input's (scale,
 * zero point); act_min/act_max are the fused activation's clamp. The average rounds half away
 * from zero over the raw values, as TFLite's reference. */
void arch_qavg_pool(const int8_t *restrict in, int c, int h, int w, int kh, int kw, int sh, int sw,
                    int pad_top, int pad_left, int8_t *restrict out, int oh, int ow,
                    int32_t act_min, int32_t act_max);
void arch_qmax_pool(const int8_t *restrict in, int c, int h, int w, int kh, int kw, int sh, int sw,
                    int pad_top, int pad_left, int8_t *restrict out, int oh, int ow,
                    int32_t act_min, int32_t act_max);

/* rt_qeltwise.c: a + b with their own parameters (TFLite's ADD): each input is shifted left by
 * left_shift (20) and scaled to the common scale, the sum is requantized. `out` may be `a`. */
struct arch_qadd {
    int32_t a_zp, a_multiplier, a_shift;
    int32_t b_zp, b_multiplier, b_shift;
    int32_t left_shift;
    int32_t out_multiplier, out_shift, out_zp;
    int32_t act_min, act_max;
};
void arch_qadd(const int8_t *a, const int8_t *b, int8_t *out, int n, const struct arch_qadd *p);

/* rt_qeltwise.c: requantize n values to other parameters: out = MBQM(x - in_zp) + out_zp, clamped
 * (TFLite's REQUANTIZE; a concat input whose parameters differ from the output's). */
void arch_qrequantize(const int8_t *restrict in, int n, int32_t in_zp, int32_t multiplier, int32_t shift,
                      int32_t out_zp, int8_t *restrict out);
/* out[0..n) = in[0..n) (a concat input that already has the output's parameters). */
void arch_qcopy(const int8_t *restrict in, int8_t *restrict out, int n);
/* out = clamp(in, act_min, act_max) (a ReLU or ReLU6 not fused into a kernel); `out` may be `in`. */
void arch_qclamp(const int8_t *in, int8_t *out, int n, int32_t act_min, int32_t act_max);

/* rt_qsoftmax.c: softmax over the c channels of each of the hw pixels; the output has scale 1/256
 * and zero point -128. input_multiplier/input_left_shift encode beta * in_scale * 2^26, diff_min
 * the smallest difference to the row's maximum that still counts. */
void arch_qsoftmax(const int8_t *restrict in, int c, int hw, int32_t input_multiplier,
                   int32_t input_left_shift, int32_t diff_min, int8_t *restrict out);

#endif /* ARCHDSL_QRT_H */
