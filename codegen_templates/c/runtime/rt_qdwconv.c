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

/* The accumulators of oh output rows (oh x ow, row after row): output row oy reads the widened
 * input rows rows[oy * sh + ky], ky < kh; wp[ky][k] are the tap pairs. */
static inline void dw_macs(int32_t *restrict acc, int oh, int ow, int sh, int sw, int kh, int kw,
                           int16_t *const *rows, const int32_t wp[DW_MAX_K][DW_PAIRS], int32_t bias)
{
    int oy, ox, ky, k;
    for (oy = 0; oy < oh; oy++) {
        int16_t *const *rr = rows + oy * sh;
        for (ox = 0; ox < ow; ox++) {
            int32_t a = bias;
            for (ky = 0; ky < kh; ky++) {
                const int16_t *r = rr[ky] + ox * sw;
                for (k = 0; 2 * k < kw; k++) {
#if defined(ARCH_Q_DSP)
                    a = __smlad(arch_q_pair16(r + 2 * k), wp[ky][k], a);
#else
                    a += r[2 * k] * (int16_t)(wp[ky][k] & 0xFFFF) + r[2 * k + 1] * (wp[ky][k] >> 16);
#endif
                }
            }
            *acc++ = a;
        }
    }
}

#if defined(ARCH_Q_DSP)
/* dw_macs for a 3x3 window at column stride SW, written out so that the six tap pairs, the three
 * row pointers and the accumulator stay in registers: 6 loads and 6 SMLAD an output. */
#define DW_MACS_3X3(name, SW)                                                                            \
    ARCH_Q_NOINLINE static void name(int32_t *restrict acc, int oh, int ow, int sh, int16_t *const *rows, \
                                     const int32_t wp[DW_MAX_K][DW_PAIRS], int32_t bias)                 \
    {                                                                                                    \
        const int32_t w00 = wp[0][0], w01 = wp[0][1], w10 = wp[1][0], w11 = wp[1][1];                    \
        const int32_t w20 = wp[2][0], w21 = wp[2][1];                                                    \
        int oy;                                                                                          \
        for (oy = 0; oy < oh; oy++) {                                                                    \
            const int16_t *r0 = rows[oy * sh], *r1 = rows[oy * sh + 1], *r2 = rows[oy * sh + 2];         \
            int32_t *const end = acc + ow, *const end2 = acc + (ow & ~1);                                \
            while (acc != end2) { /* two outputs a turn */                                               \
                int32_t a = __smlad(arch_q_pair16(r0), w00, bias);                                       \
                int32_t b = __smlad(arch_q_pair16(r0 + SW), w00, bias);                                  \
                a = __smlad(arch_q_pair16(r0 + 2), w01, a);                                              \
                b = __smlad(arch_q_pair16(r0 + SW + 2), w01, b);                                         \
                a = __smlad(arch_q_pair16(r1), w10, a);                                                  \
                b = __smlad(arch_q_pair16(r1 + SW), w10, b);                                             \
                a = __smlad(arch_q_pair16(r1 + 2), w11, a);                                              \
                b = __smlad(arch_q_pair16(r1 + SW + 2), w11, b);                                         \
                a = __smlad(arch_q_pair16(r2), w20, a);                                                  \
                b = __smlad(arch_q_pair16(r2 + SW), w20, b);                                             \
                acc[0] = __smlad(arch_q_pair16(r2 + 2), w21, a);                                         \
                acc[1] = __smlad(arch_q_pair16(r2 + SW + 2), w21, b);                                    \
                acc += 2;                                                                                \
                r0 += 2 * SW;                                                                            \
                r1 += 2 * SW;                                                                            \
                r2 += 2 * SW;                                                                            \
            }                                                                                            \
            while (acc != end) {                                                                         \
                int32_t a = __smlad(arch_q_pair16(r0), w00, bias);                                       \
                a = __smlad(arch_q_pair16(r0 + 2), w01, a);                                              \
                a = __smlad(arch_q_pair16(r1), w10, a);                                                  \
                a = __smlad(arch_q_pair16(r1 + 2), w11, a);                                              \
                a = __smlad(arch_q_pair16(r2), w20, a);                                                  \
                *acc++ = __smlad(arch_q_pair16(r2 + 2), w21, a);                                         \
                r0 += SW;                                                                                \
                r1 += SW;                                                                                \
                r2 += SW;                                                                                \
            }                                                                                            \
        }                                                                                                \
    }
DW_MACS_3X3(dw_macs_3x3s1, 1)
DW_MACS_3X3(dw_macs_3x3s2, 2)
#endif

/* The 3x3 windows' copies on the DSP extension, the general loop elsewhere. */
ARCH_Q_NOINLINE static void dw_macs_any(int32_t *restrict acc, int oh, int ow, int sh, int sw, int kh, int kw,
                                        int16_t *const *rows, const int32_t wp[DW_MAX_K][DW_PAIRS], int32_t bias)
{
#if defined(ARCH_Q_DSP)
    if (kh == 3 && kw == 3 && sw == 1) {
        dw_macs_3x3s1(acc, oh, ow, sh, rows, wp, bias);
        return;
    }
    if (kh == 3 && kw == 3 && sw == 2) {
        dw_macs_3x3s2(acc, oh, ow, sh, rows, wp, bias);
        return;
    }
#endif
    dw_macs(acc, oh, ow, sh, sw, kh, kw, rows, wp, bias);
}

/* n outputs of channel c from their accumulators (its own loop: the constants stay in registers). */
ARCH_Q_NOINLINE static void dw_out(int8_t *restrict y, const int32_t *restrict acc, int n, struct arch_qch c,
                                   const struct arch_qout *q)
{
    arch_q_out_row(y, acc, n, c, q);
}

#define DW_PLANE_OUTPUTS 256 /* maps of at most this many outputs are done a whole plane at a time */
#define DW_PLANE_ROWS 32

void arch_qconv_dw_rows(const int8_t *restrict in, int c, int h, int w, int32_t in_zp,
                        const int8_t *restrict weight, const int32_t *restrict bias,
                        int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                        int8_t *restrict out, int oh, int ow, const struct arch_qout *q)
{
    /* Small maps: every input row a window reaches is widened once per channel, then one call
     * makes the whole plane's accumulators and one loop requantizes them (no per-row overhead).
     * Larger maps: a ring of kh rows, one output row at a time. */
    const int in_rows = (oh - 1) * sh + kh;
    const int whole = oh * ow <= DW_PLANE_OUTPUTS && in_rows <= DW_PLANE_ROWS;
    const int nbuf = whole ? in_rows : kh, nacc = whole ? oh * ow : ow;
    const int len = ((ow - 1) * sw + 2 * ((kw + 1) / 2) + 1) & ~1; /* the last pair read, rounded up */
    int16_t buffer[nbuf][len];
    int32_t acc[nacc];
    int16_t *rows[2 * DW_PLANE_ROWS]; /* whole: the widened input rows in order; else the ring */
    int o, oy, ky;
    if (whole) {
        memset(buffer, 0, sizeof buffer);
        for (ky = 0; ky < in_rows; ky++) rows[ky] = buffer[ky];
    } else {
        arch_q_rows_init(rows, &buffer[0][0], kh, len);
    }
    for (o = 0; o < c; o++) {
        const int8_t *plane = in + o * h * w;
        const int8_t *wk = weight + o * kh * kw;
        const struct arch_qch ch = arch_q_channel(q, o);
        const int32_t (*wq)[DW_PAIRS];
        int32_t wp[DW_MAX_K][DW_PAIRS];
        int base = 0;
        for (ky = 0; ky < kh; ky++) arch_q_tap_pairs(wk + ky * kw, kw, wp[ky]);
        wq = (const int32_t(*)[DW_PAIRS])wp;
        if (whole) {
            for (ky = 0; ky < in_rows; ky++) /* padding rows stay zero: each buffer row is one input row */
                if (ky - pad_top >= 0 && ky - pad_top < h)
                    arch_q_widen_row(rows[ky], len, plane, h, w, ky - pad_top, pad_left, in_zp);
            dw_macs_any(acc, oh, ow, sh, sw, kh, kw, rows, wq, bias[o]);
            dw_out(out, acc, oh * ow, ch, q);
            out += oh * ow;
            continue;
        }
        for (oy = 0; oy < oh; oy++) {
            int16_t **win = arch_q_next_rows(rows, &base, kh, sh, oy == 0, len, plane, h, w, oy * sh - pad_top,
                                             pad_left, in_zp);
            dw_macs_any(acc, 1, ow, sh, sw, kh, kw, win, wq, bias[o]);
            dw_out(out, acc, ow, ch, q);
            out += ow;
        }
    }
}
