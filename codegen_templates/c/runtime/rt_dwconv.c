/* Depthwise convolution (one kh x kw filter per output channel; output channel o reads input
 * channel o / m), any stride and (asymmetric) padding.
 *
 * Each output row starts at the bias and gets one pass per valid filter row; a 3-wide filter
 * row is applied in a single pass over the columns whose three taps are all inside the map
 * (vectorised), the few border columns separately. */
#include "archdsl_rt.h"

/* o[x] += sum_t wt[t] * row[x * s - pad + t] over the taps t < k that fall inside [0, w). */
static void taps_checked(float *restrict o, const float *restrict row, const float *restrict wt, int k,
                         int w, int s, int pad, int x0, int x1)
{
    int x, t;
    for (x = x0; x < x1; x++) {
        float acc = 0.0f;
        for (t = 0; t < k; t++) {
            const int ix = x * s - pad + t;
            if (ix >= 0 && ix < w) acc += wt[t] * row[ix];
        }
        o[x] += acc;
    }
}

static void row_pass(float *restrict o, const float *restrict row, const float *restrict wt, int kw,
                     int w, int ow, int s, int pad)
{
    /* interior: x * s - pad >= 0 and x * s - pad + kw - 1 <= w - 1 */
    int xa = pad > 0 ? (pad + s - 1) / s : 0;
    int xb = w - kw + pad >= 0 ? (w - kw + pad) / s + 1 : 0;
    int x, t;
    if (xb > ow) xb = ow;
    if (xa > xb) xa = xb;
    taps_checked(o, row, wt, kw, w, s, pad, 0, xa);
    if (kw == 3) {
        const float w0 = wt[0], w1 = wt[1], w2 = wt[2];
        if (s == 1 && xb > xa) {
            const float *restrict r = row + (xa - pad); /* xa - pad >= 0 inside the interior */
            float *restrict d = o + xa;
            const int n = xb - xa;
            for (x = 0; x < n; x++) d[x] += w0 * r[x] + w1 * r[x + 1] + w2 * r[x + 2];
        } else {
            for (x = xa; x < xb; x++) {
                const int ix = x * s - pad;
                o[x] += w0 * row[ix] + w1 * row[ix + 1] + w2 * row[ix + 2];
            }
        }
    } else {
        for (x = xa; x < xb; x++) {
            const int ix = x * s - pad;
            float acc = 0.0f;
            for (t = 0; t < kw; t++) acc += wt[t] * row[ix + t];
            o[x] += acc;
        }
    }
    taps_checked(o, row, wt, kw, w, s, pad, xb, ow);
}

void arch_conv_dw(const float *restrict in, int c, int h, int w,
                  const float *restrict weight, const float *restrict bias, int m,
                  int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                  float *restrict out, int oh, int ow, int act)
{
    const int cout = c * m;
    int o, oy, ky, x;
    for (o = 0; o < cout; o++) {
        const float *plane = in + (o / m) * h * w;
        const float *wo = weight + o * kh * kw;
        for (oy = 0; oy < oh; oy++) {
            float *restrict orow = out + (o * oh + oy) * ow;
            for (x = 0; x < ow; x++) orow[x] = bias[o];
            for (ky = 0; ky < kh; ky++) {
                const int iy = oy * sh - pad_top + ky;
                if (iy < 0 || iy >= h) continue;
                row_pass(orow, plane + iy * w, wo + ky * kw, kw, w, ow, sw, pad_left);
            }
            arch_activate(orow, ow, act);
        }
    }
}
