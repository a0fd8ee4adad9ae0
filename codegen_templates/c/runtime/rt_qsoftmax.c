/* int8 softmax: TFLite's reference Softmax (int8 in, int8 out with scale 1/256, zero point -128),
 * built on gemmlowp's fixed-point exp and reciprocal. Fixed-point adds and subtracts wrap, as the
 * reference's int32 arithmetic does; only the Rescale left shifts saturate. */
#include "archdsl_qrt.h"

#define SCALED_DIFF_INT_BITS 5 /* exp's input: Q5.26 */
#define ACCUM_INT_BITS 12      /* the sum of exps: Q12.19 */

static int32_t q_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static int32_t q_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* SaturatingRoundingMultiplyByPOT with a positive exponent: x * 2^e, saturated. */
static int32_t q_sat_shl(int32_t x, int e)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return arch_q_shl(x, e);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8. */
static int32_t q_exp_quarter(int32_t a)
{
    const int32_t constant_term = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;
    const int32_t x = q_add(a, 1 << 28); /* a + 1/8 */
    const int32_t x2 = arch_q_srdhm(x, x);
    const int32_t x3 = arch_q_srdhm(x2, x);
    const int32_t x4 = arch_q_srdhm(x2, x2);
    const int32_t x4_over_4 = arch_q_rdbpot(x4, 2);
    const int32_t poly = arch_q_rdbpot(q_add(arch_q_srdhm(q_add(x4_over_4, x3), one_third), x2), 1);
    return q_add(constant_term, arch_q_srdhm(constant_term, q_add(x, poly)));
}

/* exp(a) for a <= 0 in Q5.26, the result in Q0.31: exp of the remainder in [-1/4, 0), times
 * exp(-2^k) for every bit k of the rest. */
static int32_t q_exp_negative(int32_t a)
{
    static const int32_t exp_neg_pow2[7] = { /* exp(-2^k), k = -2 .. 4, Q0.31 */
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int frac_bits = 31 - SCALED_DIFF_INT_BITS;
    const int32_t one_quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t mod_minus_quarter = q_sub(a & (one_quarter - 1), one_quarter);
    const int32_t remainder = q_sub(mod_minus_quarter, a);
    int32_t result = q_exp_quarter(q_sat_shl(mod_minus_quarter, SCALED_DIFF_INT_BITS));
    int k;
    for (k = 0; k < 7; k++)
        if (remainder & ((int32_t)1 << (frac_bits - 2 + k))) result = arch_q_srdhm(result, exp_neg_pow2[k]);
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + x) for x in [0, 1), Q0.31 in and out: Newton-Raphson in Q2.29. */
static int32_t q_one_over_one_plus_x(int32_t a)
{
    const int64_t sum = (int64_t)a + INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    const int32_t one_q29 = (int32_t)1 << 29;
    int32_t x = q_add(1515870810, arch_q_srdhm(half_denominator, -1010580540)); /* 48/17 - 32/17 d */
    int i;
    for (i = 0; i < 3; i++) {
        const int32_t one_minus_dx = q_sub(one_q29, arch_q_srdhm(half_denominator, x));
        x = q_add(x, q_sat_shl(arch_q_srdhm(x, one_minus_dx), 2));
    }
    return q_sat_shl(x, 1);
}

static int q_clz(uint32_t v)
{
    int n = 0;
    if (v == 0) return 32;
    while (!(v & 0x80000000u)) {
        v <<= 1;
        n++;
    }
    return n;
}

void arch_qsoftmax(const int8_t *restrict in, int c, int hw, int32_t input_multiplier,
                   int32_t input_left_shift, int32_t diff_min, int8_t *restrict out)
{
    int p, ch;
    for (p = 0; p < hw; p++) {
        const int8_t *x = in + p;
        int8_t *y = out + p;
        int32_t max_in_row = -128, sum = 0, recip, v;
        int headroom, bits_over_unit;
        for (ch = 0; ch < c; ch++) max_in_row = x[ch * hw] > max_in_row ? x[ch * hw] : max_in_row;
        for (ch = 0; ch < c; ch++) {
            const int32_t diff = x[ch * hw] - max_in_row;
            if (diff >= diff_min) {
                const int32_t scaled = arch_q_srdhm(arch_q_shl(diff, (int)input_left_shift), input_multiplier);
                sum = q_add(sum, arch_q_rdbpot(q_exp_negative(scaled), ACCUM_INT_BITS));
            }
        }
        headroom = q_clz((uint32_t)sum);
        bits_over_unit = ACCUM_INT_BITS - headroom;
        recip = q_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - 0x80000000u));
        for (ch = 0; ch < c; ch++) {
            const int32_t diff = x[ch * hw] - max_in_row;
            if (diff >= diff_min) {
                const int32_t scaled = arch_q_srdhm(arch_q_shl(diff, (int)input_left_shift), input_multiplier);
                v = arch_q_rdbpot(arch_q_srdhm(recip, q_exp_negative(scaled)), bits_over_unit + 31 - 8) - 128;
                y[ch * hw] = arch_q_clamp(v, -128, 127);
            } else {
                y[ch * hw] = -128;
            }
        }
    }
}
