/* int8 convolution, any kernel, stride, padding and groups: TFLite's ConvPerChannel on NCHW.
 * Taps outside the map are skipped: the reference adds (x - in_zp) * w, and padding holds in_zp. */
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
