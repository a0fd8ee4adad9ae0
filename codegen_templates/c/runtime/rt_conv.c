/* Standard and grouped convolution, any kernel size, stride and (asymmetric) padding.
 *
 * For each output row, CONV_CO output channels are accumulated together: every input row
 * segment read is used CONV_CO times, and the innermost loop runs along the output row
 * (contiguous in NCHW; with stride 1 the input side is contiguous too), so it vectorises.
 * Padding is handled by clipping each tap's range of output columns, never by reading it. */
#include "archdsl_rt.h"

#define CONV_CO 4

/* The output columns [x0, x1) whose input column x * s - pad + k lies inside [0, w). */
static void tap_range(int k, int s, int pad, int w, int ow, int *x0, int *x1)
{
    const int lo = pad - k, hi = w - 1 + pad - k; /* need lo <= x * s <= hi */
    *x0 = lo <= 0 ? 0 : (lo + s - 1) / s;
    *x1 = hi < 0 ? 0 : hi / s + 1;
    if (*x1 > ow) *x1 = ow;
    if (*x0 > *x1) *x0 = *x1;
}

/* rows[r][x] += wt[r] * row[x * s + off] for x in [x0, x1), r < n. */
static void taps(float *const *rows, const float *wt, int n, const float *restrict row, int s, int off,
                 int x0, int x1)
{
    int x, r;
    if (n == CONV_CO) {
        float *restrict o0 = rows[0], *restrict o1 = rows[1], *restrict o2 = rows[2], *restrict o3 = rows[3];
        const float w0 = wt[0], w1 = wt[1], w2 = wt[2], w3 = wt[3];
        if (s == 1) {
            const float *restrict src = row + off;
            for (x = x0; x < x1; x++) {
                const float v = src[x];
                o0[x] += w0 * v;
                o1[x] += w1 * v;
                o2[x] += w2 * v;
                o3[x] += w3 * v;
            }
        } else {
            for (x = x0; x < x1; x++) {
                const float v = row[x * s + off];
                o0[x] += w0 * v;
                o1[x] += w1 * v;
                o2[x] += w2 * v;
                o3[x] += w3 * v;
            }
        }
        return;
    }
    for (r = 0; r < n; r++) {
        float *restrict o = rows[r];
        const float wr = wt[r];
        for (x = x0; x < x1; x++) o[x] += wr * row[x * s + off];
    }
}

void arch_conv2d(const float *restrict in, int cin, int h, int w,
                 const float *restrict weight, const float *restrict bias,
                 int cout, int groups, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                 float *restrict out, int oh, int ow, int act)
{
    const int cin_g = cin / groups, cout_g = cout / groups, ksize = kh * kw;
    int g, co0, n, oy, ci, ky, kx, r, x;
    for (g = 0; g < groups; g++) {
        for (co0 = 0; co0 < cout_g; co0 += n) {
            const int co = g * cout_g + co0;
            n = cout_g - co0 < CONV_CO ? cout_g - co0 : CONV_CO;
            for (oy = 0; oy < oh; oy++) {
                float *rows[CONV_CO];
                for (r = 0; r < n; r++) {
                    rows[r] = out + ((co + r) * oh + oy) * ow;
                    for (x = 0; x < ow; x++) rows[r][x] = bias[co + r];
                }
                for (ci = 0; ci < cin_g; ci++) {
                    const float *plane = in + (g * cin_g + ci) * h * w;
                    for (ky = 0; ky < kh; ky++) {
                        const int iy = oy * sh - pad_top + ky;
                        if (iy < 0 || iy >= h) continue;
                        for (kx = 0; kx < kw; kx++) {
                            float wt[CONV_CO];
                            int x0, x1;
                            tap_range(kx, sw, pad_left, w, ow, &x0, &x1);
                            for (r = 0; r < n; r++) wt[r] = weight[((co + r) * cin_g + ci) * ksize + ky * kw + kx];
                            taps(rows, wt, n, plane + iy * w, sw, kx - pad_left, x0, x1);
                        }
                    }
                }
                for (r = 0; r < n; r++) arch_activate(rows[r], ow, act);
            }
        }
    }
}
