/* int8 depthwise convolution with channel multiplier m: TFLite's DepthwiseConvPerChannel on NCHW.
 * Output channel o reads input channel o / m; the bias and (multiplier, shift) are the output's. */
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
