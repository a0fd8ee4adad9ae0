/* int8 matrix products with packed weights: the 1x1 convolution (hw pixels) and the fully connected
 * layer (hw 1), out[o][p] = requant(bias[o] + sum_i w[o][i] * x[i][p]).
 *
 * The compiler prepares the constants (c_target/lowering_int8.py, `pack_gemm`):
 * - the input offset is folded into the bias: sum_i w (x - in_zp) = sum_i w x - in_zp sum_i w;
 * - each weight row is padded with zeros to k4 = cin rounded up to 4, and the rows of output
 *   channels 2j and 2j + 1 are interleaved 4 bytes at a time (w[2j][0..3], w[2j+1][0..3],
 *   w[2j][4..7], ...), so one pointer walks both rows of a 2-channel tile; an odd last channel
 *   keeps its plain row;
 * - the requantization meets arch_q_out_fast's precondition (archdsl_qrt.h).
 *
 * DSP path: the input is NCHW, so the inner loop's pairs (two input channels of one pixel) are not
 * adjacent in memory. A block of 4 pixels is first widened and transposed into `xs`, as int16 pairs
 * (x[i], x[i+2]) and (x[i+1], x[i+3]) for each group of 4 channels: the lanes SXTB16 gives of the
 * weight word w[i..i+3] and of its rotation. Then a 1 channel x 4 pixel tile does 16 mult-adds per
 * group of 4 channels in 8 SMLAD, 2 SXTB16, one weight load and 4 LDRD (17 instructions with the
 * loop; a 2 x 2 tile needs two more registers than Thumb has to keep its pointers in step). */
#include <string.h>

#include "archdsl_qrt.h"

#define QG_MAX_BLOCKS 32 /* pixel blocks of 4 per pass */

/* The first of the packed weights of output channel o, and the step between its groups of 4. */
static const int8_t *qg_row(const int8_t *weight, int k4, int cout, int o, int *step)
{
    const int paired = (o | 1) < cout;
    *step = paired ? 8 : 4;
    return weight + (o & ~1) * k4 + (paired ? (o & 1) * 4 : 0);
}

#if defined(ARCH_Q_DSP)

static int32_t qg_load(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/* Channels 4g..4g+3 of pixels p..p+3 as the 8 int16 pairs of xs01 (pixels 0, 1) and xs23 (2, 3). */
static void qg_widen(const int32_t v[4], int32_t *restrict xs01, int32_t *restrict xs23)
{
    const int32_t s0 = __sxtb16(v[0]), s1 = __sxtb16(v[1]), s2 = __sxtb16(v[2]), s3 = __sxtb16(v[3]);
    const int32_t r0 = arch_q_sxtb16_ror8(v[0]), r1 = arch_q_sxtb16_ror8(v[1]);
    const int32_t r2 = arch_q_sxtb16_ror8(v[2]), r3 = arch_q_sxtb16_ror8(v[3]);
    xs01[0] = arch_q_pack_lo(s0, s2);
    xs01[1] = arch_q_pack_lo(s1, s3);
    xs01[2] = arch_q_pack_lo(r0, r2);
    xs01[3] = arch_q_pack_lo(r1, r3);
    xs23[0] = arch_q_pack_hi(s0, s2);
    xs23[1] = arch_q_pack_hi(s1, s3);
    xs23[2] = arch_q_pack_hi(r0, r2);
    xs23[3] = arch_q_pack_hi(r1, r3);
}

/* The block of np <= 4 pixels at p into xs (8 words a group of 4 channels: 4 for pixels 0-1, then
 * 4 for pixels 2-3); channels past cin and pixels past np are zero. */
static void qg_fill(int32_t *restrict xs, const int8_t *restrict in, int cin, int hw, int p, int np, int groups)
{
    int g, k, j;
    for (g = 0; g < groups; g++) {
        int32_t v[4];
        for (k = 0; k < 4; k++) {
            const int ch = 4 * g + k;
            if (ch < cin && np == 4) {
                v[k] = qg_load(in + ch * hw + p);
            } else {
                uint32_t u = 0;
                for (j = 0; ch < cin && j < np; j++) u |= (uint32_t)(uint8_t)in[ch * hw + p + j] << (8 * j);
                v[k] = (int32_t)u;
            }
        }
        qg_widen(v, xs + 8 * g, xs + 8 * g + 4);
    }
}

/* Two words at *x, then x += 2: one LDRD with writeback (GCC loads them one at a time and adds the
 * pointer apart). */
static inline void qg_pair_post(const int32_t **x, int32_t *lo, int32_t *hi)
{
    int32_t a, b;
    __asm__("ldrd %0, %1, [%2], #8" : "=&r"(a), "=&r"(b), "+r"(*x) : : "memory");
    *lo = a;
    *hi = b;
}

/* acc[4j .. 4j + 3] = bias + one weight row (groups of 4 bytes, `step` apart) times the 4 pixels of
 * block j of xs, j < nblocks: per group one load and two SXTB16 of the weights, four 64-bit loads
 * of the block and 8 SMLAD, the accumulators and pointers in registers. STEP is a constant (4 or
 * 8, qg_row) so that the loads post-increment. */
#define QG_COL4(name, STEP)                                                                              \
    ARCH_Q_NOINLINE static void name(const int32_t *x, const int8_t *restrict row, int groups,           \
                                     int nblocks, int32_t bias, int32_t *restrict acc)                   \
    {                                                                                                    \
        int j, g;                                                                                        \
        for (j = 0; j < nblocks; j++) {                                                                  \
            const int8_t *w = row;                                                                       \
            int32_t a0 = bias, a1 = bias, a2 = bias, a3 = bias;                                          \
            for (g = 0; g < groups; g++) {                                                               \
                const int32_t w0 = qg_load(w);                                                           \
                const int32_t wa = __sxtb16(w0), wb = arch_q_sxtb16_ror8(w0);                            \
                int32_t xa, xb;                                                                          \
                qg_pair_post(&x, &xa, &xb);                                                              \
                a0 = __smlad(wa, xa, a0);                                                                \
                a0 = __smlad(wb, xb, a0);                                                                \
                qg_pair_post(&x, &xa, &xb);                                                              \
                a1 = __smlad(wa, xa, a1);                                                                \
                a1 = __smlad(wb, xb, a1);                                                                \
                qg_pair_post(&x, &xa, &xb);                                                              \
                a2 = __smlad(wa, xa, a2);                                                                \
                a2 = __smlad(wb, xb, a2);                                                                \
                qg_pair_post(&x, &xa, &xb);                                                              \
                a3 = __smlad(wa, xa, a3);                                                                \
                a3 = __smlad(wb, xb, a3);                                                                \
                w += STEP;                                                                               \
            }                                                                                            \
            acc[0] = a0;                                                                                 \
            acc[1] = a1;                                                                                 \
            acc[2] = a2;                                                                                 \
            acc[3] = a3;                                                                                 \
            acc += 4;                                                                                    \
        }                                                                                                \
    }
QG_COL4(qg_col4_paired, 8)
QG_COL4(qg_col4_plain, 4)

/* n outputs of channel c from their accumulators (its own loop: the constants stay in registers). */
ARCH_Q_NOINLINE static void qg_out(int8_t *restrict y, const int32_t *restrict acc, int n, struct arch_qch c,
                                   const struct arch_qout *q)
{
    arch_q_out_row(y, acc, n, c, q);
}

/* The channels 4g.. of a vector whose last group may be short: zeros past cin. */
static int32_t qg_vector_group(const int8_t *restrict in, int cin, int g)
{
    uint32_t u = 0;
    int j;
    if (4 * g + 4 <= cin) return qg_load(in + 4 * g);
    for (j = 0; 4 * g + j < cin; j++) u |= (uint32_t)(uint8_t)in[4 * g + j] << (8 * j);
    return (int32_t)u;
}

/* hw 1 (fully connected): the input is one contiguous vector, widened as the weights are. */
ARCH_Q_NOINLINE static void qg_vector(const int8_t *restrict in, int cin, const int8_t *restrict weight,
                      const int32_t *restrict bias, int cout, int8_t *restrict out, const struct arch_qout *q)
{
    const int k4 = (cin + 3) & ~3, groups = k4 / 4, full = cin / 4;
    int o, g;
    for (o = 0; o < cout; o += 2) {
        int step;
        const int8_t *w = qg_row(weight, k4, cout, o, &step);
        int32_t a0 = bias[o];
        if (o + 1 < cout) {
            int32_t a1 = bias[o + 1];
            const int8_t *x = in, *const xend = in + 4 * (full & ~1);
            for (; x != xend; x += 8) { /* two whole groups a turn */
                const int32_t v = qg_load(x), v2 = qg_load(x + 4);
                const int32_t xa = __sxtb16(v), xb = arch_q_sxtb16_ror8(v);
                const int32_t xc = __sxtb16(v2), xd = arch_q_sxtb16_ror8(v2);
                const int32_t w0 = qg_load(w), w1 = qg_load(w + 4), w2 = qg_load(w + 8), w3 = qg_load(w + 12);
                a0 = __smlad(__sxtb16(w0), xa, a0);
                a0 = __smlad(arch_q_sxtb16_ror8(w0), xb, a0);
                a1 = __smlad(__sxtb16(w1), xa, a1);
                a1 = __smlad(arch_q_sxtb16_ror8(w1), xb, a1);
                a0 = __smlad(__sxtb16(w2), xc, a0);
                a0 = __smlad(arch_q_sxtb16_ror8(w2), xd, a0);
                a1 = __smlad(__sxtb16(w3), xc, a1);
                a1 = __smlad(arch_q_sxtb16_ror8(w3), xd, a1);
                w += 16;
            }
            for (g = full & ~1; g < groups; g++) {
                const int32_t v = qg_vector_group(in, cin, g);
                const int32_t xa = __sxtb16(v), xb = arch_q_sxtb16_ror8(v);
                const int32_t w0 = qg_load(w), w1 = qg_load(w + 4);
                a0 = __smlad(__sxtb16(w0), xa, a0);
                a0 = __smlad(arch_q_sxtb16_ror8(w0), xb, a0);
                a1 = __smlad(__sxtb16(w1), xa, a1);
                a1 = __smlad(arch_q_sxtb16_ror8(w1), xb, a1);
                w += 8;
            }
            out[o + 1] = arch_q_out_fast(a1, arch_q_channel(q, o + 1), q->zero_point, q->act_min, q->act_max);
        } else {
            for (g = 0; g < groups; g++) {
                const int32_t v = qg_vector_group(in, cin, g), w0 = qg_load(w);
                a0 = __smlad(__sxtb16(w0), __sxtb16(v), a0);
                a0 = __smlad(arch_q_sxtb16_ror8(w0), arch_q_sxtb16_ror8(v), a0);
                w += 4;
            }
        }
        out[o] = arch_q_out_fast(a0, arch_q_channel(q, o), q->zero_point, q->act_min, q->act_max);
    }
}

void arch_qgemm(const int8_t *restrict in, int cin, int hw, const int8_t *restrict weight,
                const int32_t *restrict bias, int cout, int8_t *restrict out, const struct arch_qout *q)
{
    const int k4 = (cin + 3) & ~3, groups = k4 / 4;
    int p, o, j;
    if (hw == 1) {
        qg_vector(in, cin, weight, bias, cout, out, q);
        return;
    }
    {
        /* blocks of 4 * m pixels, m up to 8 while the block's widened input stays within 2 KB: thin
         * layers (few input channels) share the calls and the requantization setup over more pixels */
        const int m = k4 >= 256 ? 1 : 256 / k4 < QG_MAX_BLOCKS ? 256 / k4 : QG_MAX_BLOCKS;
        int32_t xs[QG_MAX_BLOCKS > 0 ? 8 * (k4 / 4) * m : 1]; /* 8 words per group of 4 channels and 4 pixels */
        int32_t acc[4 * QG_MAX_BLOCKS];
        for (p = 0; p < hw; p += 4 * m) {
            const int np = hw - p < 4 * m ? hw - p : 4 * m, nblocks = (np + 3) / 4;
            for (j = 0; 4 * j < np; j++)
                qg_fill(xs + 8 * groups * j, in, cin, hw, p + 4 * j, np - 4 * j < 4 ? np - 4 * j : 4, groups);
            for (o = 0; o < cout; o++) {
                int step;
                const int8_t *w = qg_row(weight, k4, cout, o, &step);
                if (step == 8)
                    qg_col4_paired(xs, w, groups, nblocks, bias[o], acc);
                else
                    qg_col4_plain(xs, w, groups, nblocks, bias[o], acc);
                qg_out(out + o * hw + p, acc, np, arch_q_channel(q, o), q);
            }
        }
    }
}

#else /* portable: the same packed weights, plain C */

#define QGEMM_NR 4 /* pixels per register block */

void arch_qgemm(const int8_t *restrict in, int cin, int hw, const int8_t *restrict weight,
                const int32_t *restrict bias, int cout, int8_t *restrict out, const struct arch_qout *q)
{
    const int k4 = (cin + 3) & ~3;
    int o, p, i, l;
    for (o = 0; o < cout; o++) {
        int step;
        const int8_t *restrict wo = qg_row(weight, k4, cout, o, &step);
        const struct arch_qch c = arch_q_channel(q, o);
        int8_t *restrict y = out + o * hw;
        for (p = 0; p + QGEMM_NR <= hw; p += QGEMM_NR) {
            int32_t acc[QGEMM_NR];
            for (l = 0; l < QGEMM_NR; l++) acc[l] = bias[o];
            for (i = 0; i < cin; i++) {
                const int32_t wi = wo[(i >> 2) * step + (i & 3)];
                const int8_t *restrict x = in + i * hw + p;
                for (l = 0; l < QGEMM_NR; l++) acc[l] += wi * x[l];
            }
            for (l = 0; l < QGEMM_NR; l++) y[p + l] = arch_q_out_fast(acc[l], c, q->zero_point, q->act_min, q->act_max);
        }
        for (; p < hw; p++) {
            int32_t acc = bias[o];
            for (i = 0; i < cin; i++) acc += (int32_t)wo[(i >> 2) * step + (i & 3)] * in[i * hw + p];
            y[p] = arch_q_out_fast(acc, c, q->zero_point, q->act_min, q->act_max);
        }
    }
}

#endif
