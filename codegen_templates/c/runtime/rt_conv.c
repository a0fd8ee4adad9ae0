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

/* Output row oy of channels co .. co + n - 1 (n <= CONV_CO), columns [xlo, xhi), tap by tap. */
static void row_segment(const float *restrict in_g, int cin_g, int h, int w, const float *restrict weight,
                        const float *restrict bias, int co, int n, int kh, int kw, int sh, int sw,
                        int pad_top, int pad_left, float *restrict out, int oh, int ow, int oy,
                        int xlo, int xhi, int act)
{
    const int ksize = kh * kw;
    float *rows[CONV_CO];
    int r, x, ci, ky, kx;
    if (xlo >= xhi) return;
    for (r = 0; r < n; r++) {
        rows[r] = out + ((co + r) * oh + oy) * ow;
        for (x = xlo; x < xhi; x++) rows[r][x] = bias[r];
    }
    for (ci = 0; ci < cin_g; ci++) {
        const float *plane = in_g + ci * h * w;
        for (ky = 0; ky < kh; ky++) {
            const int iy = oy * sh - pad_top + ky;
            if (iy < 0 || iy >= h) continue;
            for (kx = 0; kx < kw; kx++) {
                float wt[CONV_CO];
                int x0, x1;
                tap_range(kx, sw, pad_left, w, ow, &x0, &x1);
                if (x0 < xlo) x0 = xlo;
                if (x1 > xhi) x1 = xhi;
                for (r = 0; r < n; r++) wt[r] = weight[(r * cin_g + ci) * ksize + ky * kw + kx];
                taps(rows, wt, n, plane + iy * w, sw, kx - pad_left, x0, x1);
            }
        }
    }
    for (r = 0; r < n; r++) arch_activate(rows[r] + xlo, xhi - xlo, act);
}

/* Stride 1 with ow == w: output pixel j (flat index in the plane) and input pixel
 * j + (ky - pad_top) * w + kx - pad_left line up for every tap, so over the run of output rows whose
 * taps are all inside, the convolution is a matrix product with K = cin_g x kh x kw whose k-th row
 * is the input plane shifted by a constant: register tiles of MR channels x NR pixels as in
 * rt_gemm.c. Pixels whose taps wrap around a row end (the border columns) are recomputed by
 * row_segment afterwards. */
#define MR ARCH_GEMM_MR
#define NR ARCH_GEMM_NR
#define MAX_TAPS 49

static void shifted_tile(const float *restrict wt, int cin_g, int ntaps, const int *restrict shift,
                         const float *restrict x, int plane, const float *restrict bias, float *restrict out,
                         int ohw, int act)
{
    float acc[MR][NR];
    const int kstride = cin_g * ntaps;
    int r, j, ci, t;
    for (r = 0; r < MR; r++)
        for (j = 0; j < NR; j++) acc[r][j] = bias[r];
    for (ci = 0; ci < cin_g; ci++) {
        for (t = 0; t < ntaps; t++) {
            const float *restrict xk = x + ci * plane + shift[t];
            const int k = ci * ntaps + t;
            for (r = 0; r < MR; r++) {
                const float a = wt[r * kstride + k];
                for (j = 0; j < NR; j++) acc[r][j] += a * xk[j];
            }
        }
    }
    for (r = 0; r < MR; r++)
        for (j = 0; j < NR; j++) out[r * ohw + j] = acc[r][j];
    for (r = 0; r < MR; r++) arch_activate(out + r * ohw, NR, act);
}

/* Stride 1, the rows [y0, y1) whose kh taps are all inside: column x of channels co .. co + n - 1
 * (n <= CONV_CO), with the taps clipped in x (the border columns the shifted product gets wrong).
 * Each tap is applied down the whole column, so its cost is spread over the rows. */
static void column_segment(const float *restrict in_g, int cin_g, int h, int w, const float *restrict weight,
                           const float *restrict bias, int co, int n, int kh, int kw, int pad_top, int pad_left,
                           float *restrict out, int oh, int ow, int x, int y0, int y1, int act)
{
    const int ksize = kh * kw, ix0 = x - pad_left;
    const int kx0 = ix0 < 0 ? -ix0 : 0, kx1 = ix0 + kw > w ? w - ix0 : kw;
    int r, y, ci, ky, kx;
    for (r = 0; r < n; r++)
        for (y = y0; y < y1; y++) out[((co + r) * oh + y) * ow + x] = bias[r];
    for (ci = 0; ci < cin_g; ci++)
        for (ky = 0; ky < kh; ky++)
            for (kx = kx0; kx < kx1; kx++) {
                const float *src = in_g + (ci * h + y0 - pad_top + ky) * w + ix0 + kx;
                for (r = 0; r < n; r++) {
                    const float wr = weight[(r * cin_g + ci) * ksize + ky * kw + kx];
                    float *o = out + ((co + r) * oh + y0) * ow + x;
                    for (y = 0; y < y1 - y0; y++) o[y * ow] += wr * src[y * w];
                }
            }
    for (r = 0; r < n; r++)
        for (y = y0; y < y1; y++) arch_activate(out + ((co + r) * oh + y) * ow + x, 1, act);
}

void arch_conv2d(const float *restrict in, int cin, int h, int w,
                 const float *restrict weight, const float *restrict bias,
                 int cout, int groups, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                 float *restrict out, int oh, int ow, int act)
{
    const int cin_g = cin / groups, cout_g = cout / groups, ksize = kh * kw;
    int g, co0, n, oy, ya = 0, yb = 0, xa = 0, xb = 0, j0 = 0, j1 = 0, x;
    int shift[MAX_TAPS];
    int fast = sh == 1 && sw == 1 && ow == w && ksize <= MAX_TAPS && cout_g >= MR;
    if (fast) {
        int ky, kx;
        tap_range(0, 1, pad_top, h, oh, &ya, &x); /* rows whose kh taps are all inside: [ya, yb) */
        tap_range(kh - 1, 1, pad_top, h, oh, &x, &yb);
        tap_range(0, 1, pad_left, w, ow, &xa, &x); /* columns likewise: [xa, xb) */
        tap_range(kw - 1, 1, pad_left, w, ow, &x, &xb);
        fast = yb > ya && xb > xa;
        if (fast) {
            j0 = ya * ow + xa;
            j1 = (yb - 1) * ow + xb;
            fast = j1 - j0 >= NR;
        }
        for (ky = 0; ky < kh; ky++)
            for (kx = 0; kx < kw; kx++) shift[ky * kw + kx] = (ky - pad_top) * w + (kx - pad_left);
    }
    for (g = 0; g < groups; g++) {
        const float *in_g = in + g * cin_g * h * w;
        co0 = 0;
        if (fast) {
            for (; co0 + MR <= cout_g; co0 += MR) {
                const int co = g * cout_g + co0;
                const float *wt = weight + co * cin_g * ksize;
                float *o = out + co * oh * ow;
                int j, r;
                for (j = j0; j + NR <= j1; j += NR)
                    shifted_tile(wt, cin_g, ksize, shift, in_g + j, h * w, bias + co, o + j, oh * ow, act);
                if (j < j1) /* overlaps the tile before: recomputing pixels is harmless */
                    shifted_tile(wt, cin_g, ksize, shift, in_g + (j1 - NR), h * w, bias + co, o + (j1 - NR),
                                 oh * ow, act);
                for (r = 0; r < MR; r += n) {
                    n = MR - r < CONV_CO ? MR - r : CONV_CO;
                    const float *wr = weight + (co + r) * cin_g * ksize;
                    for (x = 0; x < ow; x++) /* the columns [0, xa) and [xb, ow) */
                        if (x < xa || x >= xb)
                            column_segment(in_g, cin_g, h, w, wr, bias + co + r, co + r, n, kh, kw, pad_top,
                                           pad_left, out, oh, ow, x, ya, yb, act);
                    for (oy = 0; oy < oh; oy++)
                        if (oy < ya || oy >= yb)
                            row_segment(in_g, cin_g, h, w, wr, bias + co + r, co + r, n, kh, kw, sh, sw, pad_top,
                                        pad_left, out, oh, ow, oy, 0, ow, act);
                }
            }
        }
        for (; co0 < cout_g; co0 += n) {
            const int co = g * cout_g + co0;
            n = cout_g - co0 < CONV_CO ? cout_g - co0 : CONV_CO;
            for (oy = 0; oy < oh; oy++)
                row_segment(in_g, cin_g, h, w, weight + co * cin_g * ksize, bias + co, co, n, kh, kw, sh, sw,
                            pad_top, pad_left, out, oh, ow, oy, 0, ow, act);
        }
    }
}
