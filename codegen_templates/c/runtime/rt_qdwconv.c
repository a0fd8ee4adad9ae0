/* int8 depthwise convolution: TFLite's DepthwiseConvPerChannel on NCHW.
 *
 * arch_qconv_dw is the reference: any kernel and channel multiplier m (output channel o reads
 * input channel o / m), taps outside the map skipped.
 *
 * arch_qconv_dw_rows is the fast kernel for channel multiplier 1 (the compiler's choice, with q
 * meeting arch_q_out_fast's precondition, archdsl_qrt.h): each input row a window reaches is
 * widened once to int16 with the zero point subtracted and the padding written as zeros, into a
 * ring of kh rows, so every output pixel takes the same straight-line taps, padding or not. The
 * kernel's taps are paired along the row, (w[ky][0], w[ky][1]), (w[ky][2], w[ky][3]), ... (an odd
 * last tap paired with 0); on the DSP extension one SMLAD multiplies a pair by two adjacent
 * widened inputs, a 32-bit load. 3x3 windows get a copy of the loop with the sizes constant. */
#include <string.h>

#include "archdsl_qrt.h"

void arch_qconv_dw(const int8_t *restrict in, int c, int h, int w, int32_t in_zp,
                   const int8_t *restrict weight, const int32_t *restrict bias, int m,
                   int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                   int8_t *restrict out, int oh, int ow, const struct arch_qout *q)
{
    int o, oy, ox, ky, kx;
    for (o = 0; o < c * m; o++) {
        const int8_t *plane = in + (o / m) * h * w;
        const int8_t *wk = weight + o * kh * kw;
        const int32_t mult = q->multiplier[o * q->per_channel], s = q->shift[o * q->per_channel];
        for (oy = 0; oy < oh; oy++) {
            const int iy = oy * sh - pad_top;
            int y0, y1;
            arch_q_taps(oy, sh, pad_top, kh, h, &y0, &y1);
            for (ox = 0; ox < ow; ox++) {
                const int ix = ox * sw - pad_left;
                int x0, x1;
                int32_t acc = bias[o];
                arch_q_taps(ox, sw, pad_left, kw, w, &x0, &x1);
                for (ky = y0; ky < y1; ky++) {
                    const int8_t *row = plane + (iy + ky) * w + ix;
                    const int8_t *wr = wk + ky * kw;
                    for (kx = x0; kx < x1; kx++) acc += (int32_t)wr[kx] * ((int32_t)row[kx] - in_zp);
                }
                *out++ = arch_q_out(acc, mult, s, q->zero_point, q->act_min, q->act_max);
            }
        }
    }
}

/* ---------------------------------------------------------------- the row kernel */

#define DW_MAX_K 7 /* the compiler sends larger windows to the reference */
#define DW_PAIRS ((DW_MAX_K + 1) / 2)

/* The accumulators of one output row: rows[ky] is the widened input row of tap row ky, wp[ky][k]
 * the tap pairs. */
static inline void dw_macs(int32_t *restrict acc, int ow, int sw, int kh, int kw, int16_t *const rows[DW_MAX_K],
                           const int32_t wp[DW_MAX_K][DW_PAIRS], int32_t bias)
{
    int ox, ky, k;
    for (ox = 0; ox < ow; ox++) {
        int32_t a = bias;
        for (ky = 0; ky < kh; ky++) {
            const int16_t *r = rows[ky] + ox * sw;
            for (k = 0; 2 * k < kw; k++) {
#if defined(ARCH_Q_DSP)
                a = __smlad(arch_q_pair16(r + 2 * k), wp[ky][k], a);
#else
                a += r[2 * k] * (int16_t)(wp[ky][k] & 0xFFFF) + r[2 * k + 1] * (wp[ky][k] >> 16);
#endif
            }
        }
        acc[ox] = a;
    }
}

/* The 3x3 rows, strides 1 and 2, as functions of their own (ARCH_Q_NOINLINE). */
ARCH_Q_NOINLINE static void dw_macs_3x3s1(int32_t *restrict acc, int ow, int16_t *const rows[DW_MAX_K],
                                      const int32_t wp[DW_MAX_K][DW_PAIRS], int32_t bias)
{
    dw_macs(acc, ow, 1, 3, 3, rows, wp, bias);
}

ARCH_Q_NOINLINE static void dw_macs_3x3s2(int32_t *restrict acc, int ow, int16_t *const rows[DW_MAX_K],
                                      const int32_t wp[DW_MAX_K][DW_PAIRS], int32_t bias)
{
    dw_macs(acc, ow, 2, 3, 3, rows, wp, bias);
}

void arch_qconv_dw_rows(const int8_t *restrict in, int c, int h, int w, int32_t in_zp,
                        const int8_t *restrict weight, const int32_t *restrict bias,
                        int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                        int8_t *restrict out, int oh, int ow, const struct arch_qout *q)
{
    const int len = ((ow - 1) * sw + 2 * ((kw + 1) / 2) + 1) & ~1; /* the last pair read, rounded up */
    int16_t ring[DW_MAX_K][len]; /* kh rows used */
    int32_t acc[ow];
    int o, oy, ky;
    for (o = 0; o < c; o++) {
        const int8_t *plane = in + o * h * w;
        const int8_t *wk = weight + o * kh * kw;
        const struct arch_qch ch = arch_q_channel(q, o);
        const int32_t (*wq)[DW_PAIRS];
        int32_t wp[DW_MAX_K][DW_PAIRS];
        int16_t *rows[DW_MAX_K]; /* the input rows iy .. iy + kh - 1 of the current output row */
        for (ky = 0; ky < kh; ky++) {
            rows[ky] = ring[ky];
            arch_q_tap_pairs(wk + ky * kw, kw, wp[ky]);
        }
        wq = (const int32_t(*)[DW_PAIRS])wp;
        for (oy = 0; oy < oh; oy++) {
            arch_q_next_rows(rows, kh, sh, oy == 0, len, plane, h, w, oy * sh - pad_top, pad_left, in_zp);
            if (kh == 3 && kw == 3 && sw == 1) {
                dw_macs_3x3s1(acc, ow, rows, wq, bias[o]);
            } else if (kh == 3 && kw == 3 && sw == 2) {
                dw_macs_3x3s2(acc, ow, rows, wq, bias[o]);
            } else {
                dw_macs(acc, ow, sw, kh, kw, rows, wq, bias[o]);
            }
            arch_q_out_row(out, acc, ow, ch, q);
            out += ow;
        }
    }
}
