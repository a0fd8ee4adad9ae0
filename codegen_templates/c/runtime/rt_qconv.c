/* int8 convolution, any kernel, stride, padding and groups: TFLite's ConvPerChannel on NCHW.
 * Taps outside the map are skipped: the reference adds (x - in_zp) * w, and padding holds in_zp. */
#include <string.h>

#include "archdsl_qrt.h"

void arch_qconv2d(const int8_t *restrict in, int cin, int h, int w, int32_t in_zp,
                  const int8_t *restrict weight, const int32_t *restrict bias,
                  int cout, int groups, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                  int8_t *restrict out, int oh, int ow, const struct arch_qout *q)
{
    const int cg = cin / groups, og = cout / groups;
    int o, oy, ox, ic, ky, kx;
    for (o = 0; o < cout; o++) {
        const int8_t *wo = weight + o * cg * kh * kw;
        const int8_t *xg = in + (o / og) * cg * h * w;
        const int32_t m = q->multiplier[o * q->per_channel], s = q->shift[o * q->per_channel];
        for (oy = 0; oy < oh; oy++) {
            int y0, y1;
            const int iy = oy * sh - pad_top;
            arch_q_taps(oy, sh, pad_top, kh, h, &y0, &y1);
            for (ox = 0; ox < ow; ox++) {
                int x0, x1;
                const int ix = ox * sw - pad_left;
                int32_t acc = bias[o];
                arch_q_taps(ox, sw, pad_left, kw, w, &x0, &x1);
                for (ic = 0; ic < cg; ic++) {
                    const int8_t *plane = xg + ic * h * w;
                    const int8_t *wk = wo + ic * kh * kw;
                    for (ky = y0; ky < y1; ky++) {
                        const int8_t *row = plane + (iy + ky) * w + ix;
                        const int8_t *wr = wk + ky * kw;
                        for (kx = x0; kx < x1; kx++) acc += (int32_t)wr[kx] * ((int32_t)row[kx] - in_zp);
                    }
                }
                *out++ = arch_q_out(acc, m, s, q->zero_point, q->act_min, q->act_max);
            }
        }
    }
}

/* ---------------------------------------------------------------- the row kernel (few input channels)
 *
 * arch_qconv_rows: groups 1, cin * kh <= CR_MAX_ROWS (a network's first convolution, 3 channels),
 * q meeting arch_q_out_fast's precondition for |x - in_zp|. As arch_qconv_dw_rows (rt_qdwconv.c):
 * the cin * kh input rows of an output row are widened once to int16 (x - zp, padding as zeros),
 * the kernel's taps paired along the row; then a 2 output channel x 2 pixel tile adds each pair
 * with one SMLAD: 8 mult-adds for 2 pair loads, 2 weight loads and 4 SMLAD. */
#define CR_MAX_ROWS 16
#define CR_MAX_K 7

/* acc[channel 0, 1][pixel 0, 1] += the pairs at rp[r] + off (pixel 0) and rp[r] + off + dx (pixel 1),
 * r < nrows, times the weight pairs w0, w1 (kp per row). */
static inline void cr_tile_k(int32_t acc[4], const int16_t *const *rp, int off, int nrows, int kp, int dx,
                             const int32_t *restrict w0, const int32_t *restrict w1)
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    int r, k;
    for (r = 0; r < nrows; r++) {
        const int16_t *p0 = rp[r] + off, *p1 = rp[r] + off + dx;
        for (k = 0; k < kp; k++) {
            const int32_t wa = *w0++, wb = *w1++;
#if defined(ARCH_Q_DSP)
            const int32_t xa = arch_q_pair16(p0 + 2 * k), xb = arch_q_pair16(p1 + 2 * k);
            a00 = __smlad(xa, wa, a00);
            a01 = __smlad(xb, wa, a01);
            a10 = __smlad(xa, wb, a10);
            a11 = __smlad(xb, wb, a11);
#else
            const int32_t wa0 = (int16_t)(wa & 0xFFFF), wa1 = wa >> 16, wb0 = (int16_t)(wb & 0xFFFF), wb1 = wb >> 16;
            a00 += p0[2 * k] * wa0 + p0[2 * k + 1] * wa1;
            a01 += p1[2 * k] * wa0 + p1[2 * k + 1] * wa1;
            a10 += p0[2 * k] * wb0 + p0[2 * k + 1] * wb1;
            a11 += p1[2 * k] * wb0 + p1[2 * k + 1] * wb1;
#endif
        }
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* The tile as a function of its own (its loop gets the registers), with copies for 3-wide windows
 * (two pairs) at strides 1 and 2 whose loads take constant offsets. */
ARCH_Q_NOINLINE static void cr_tile(int32_t acc[4], const int16_t *const *rp, int off, int nrows, int kp,
                                    int dx, const int32_t *restrict w0, const int32_t *restrict w1)
{
    if (kp == 2 && dx == 2) {
        cr_tile_k(acc, rp, off, nrows, 2, 2, w0, w1);
    } else if (kp == 2 && dx == 1) {
        cr_tile_k(acc, rp, off, nrows, 2, 1, w0, w1);
    } else {
        cr_tile_k(acc, rp, off, nrows, kp, dx, w0, w1);
    }
}

/* Channel o's outputs of one row from their accumulators (its own loop: the constants in registers). */
ARCH_Q_NOINLINE static void cr_out(int8_t *restrict y, const int32_t *restrict acc, int n, int o,
                                   const struct arch_qout *q)
{
    arch_q_out_row(y, acc, n, arch_q_channel(q, o), q);
}

void arch_qconv_rows(const int8_t *restrict in, int cin, int h, int w, int32_t in_zp,
                     const int8_t *restrict weight, const int32_t *restrict bias,
                     int cout, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                     int8_t *restrict out, int oh, int ow, const struct arch_qout *q)
{
    const int kp = (kw + 1) / 2, nrows = cin * kh, plane = oh * ow;
    const int ow2 = (ow + 1) & ~1; /* the tiles' pixel pairs: an odd last pixel's partner reads zeros */
    const int len = ((ow2 - 1) * sw + 2 * kp + 1) & ~1; /* the last pair read, rounded up */
    int16_t buffer[nrows][len];
    int32_t a0[ow2], a1[ow2]; /* one output row's accumulators of the channel pair */
    int32_t wp[cout][nrows * kp]; /* per output channel: nrows x kp tap pairs */
    int16_t *ring[2 * CR_MAX_ROWS]; /* channel c's ring: ring + 2 kh c (arch_q_rows_init) */
    int16_t **win[CR_MAX_ROWS]; /* channel c's window of kh rows */
    const int16_t *rp[CR_MAX_ROWS]; /* the window's nrows rows, channel after channel */
    int o, c, oy, ox, j, base = 0;
    for (o = 0; o < cout; o++)
        for (j = 0; j < nrows; j++) arch_q_tap_pairs(weight + (o * nrows + j) * kw, kw, wp[o] + j * kp);
    for (c = 0; c < cin; c++) arch_q_rows_init(ring + 2 * kh * c, buffer[c * kh], kh, len);
    for (oy = 0; oy < oh; oy++) {
        for (c = 0; c < cin; c++) {
            int b = base;
            win[c] = arch_q_next_rows(ring + 2 * kh * c, &b, kh, sh, oy == 0, len, in + c * h * w, h, w,
                                      oy * sh - pad_top, pad_left, in_zp);
            if (c == cin - 1) base = b;
        }
        for (c = 0; c < cin; c++)
            for (j = 0; j < kh; j++) rp[c * kh + j] = win[c][j];
        for (o = 0; o < cout; o += 2) { /* a channel pair's row, then its requantization */
            const int two_ch = o + 1 < cout;
            const int o1 = two_ch ? o + 1 : o;
            int8_t *y = out + o * plane + oy * ow;
            for (ox = 0; ox < ow; ox += 2) {
                int32_t acc[4];
                acc[0] = acc[1] = bias[o];
                acc[2] = acc[3] = bias[o1];
                cr_tile(acc, rp, ox * sw, nrows, kp, sw, wp[o], wp[o1]);
                a0[ox] = acc[0];
                a0[ox + 1] = acc[1];
                a1[ox] = acc[2];
                a1[ox + 1] = acc[3];
            }
            cr_out(y, a0, ow, o, q);
            if (two_ch) cr_out(y + plane, a1, ow, o1, q);
        }
    }
}
