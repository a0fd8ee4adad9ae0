/* Depthwise convolution (one kh x kw filter per output channel; output channel o reads input
 * channel o / m), any stride and (asymmetric) padding.
 *
 * 3x3 filters (nearly every depthwise layer): an output row whose three input rows are inside the
 * map is computed in one pass, all nine taps per output, over the columns whose taps are all
 * inside (vectorised); the border columns, and the top and bottom rows, take the general path.
 * General path: the row starts at the bias and gets one pass per valid filter row (a 3-wide
 * filter row in a single pass over its interior columns). The activation runs per channel plane. */
#include <stddef.h>

#define ARCH_RT_VECTORS
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

/* The [lo, hi) range of output indices whose k taps (o * s - pad + t, t < k) all fall inside [0, n). */
static void inside(int k, int s, int pad, int n, int on, int *lo, int *hi)
{
    *lo = pad > 0 ? (pad + s - 1) / s : 0;
    *hi = n - k + pad >= 0 ? (n - k + pad) / s + 1 : 0;
    if (*hi > on) *hi = on;
    if (*lo > *hi) *lo = *hi;
}

static void border3x3(float *restrict o, const float *restrict r0, const float *restrict r1,
                      const float *restrict r2, const float *restrict k, float b, int w, int s, int pad,
                      int x0, int x1)
{
    int x;
    for (x = x0; x < x1; x++) o[x] = b;
    taps_checked(o, r0, k, 3, w, s, pad, x0, x1);
    taps_checked(o, r1, k + 3, 3, w, s, pad, x0, x1);
    if (r2) taps_checked(o, r2, k + 6, 3, w, s, pad, x0, x1);
}

/* The same with two input rows (the first or last output row of a padded map): six taps. */
static void row3x2(float *restrict o, const float *restrict r0, const float *restrict r1,
                   const float *restrict k, float b, int w, int ow, int s, int pad)
{
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5];
    int xa, xb, x, n;
    inside(3, s, pad, w, ow, &xa, &xb);
    n = xb - xa;
    if (n > 0) {
        const int off = xa * s - pad;
        const float *restrict a = r0 + off, *restrict m = r1 + off;
        float *restrict d = o + xa;
        if (s == 1) {
            for (x = 0; x < n; x++)
                d[x] = b + k0 * a[x] + k1 * a[x + 1] + k2 * a[x + 2] + k3 * m[x] + k4 * m[x + 1] + k5 * m[x + 2];
        } else {
            for (x = 0; x < n; x++) {
                const int i = x * s;
                d[x] = b + k0 * a[i] + k1 * a[i + 1] + k2 * a[i + 2] + k3 * m[i] + k4 * m[i + 1] + k5 * m[i + 2];
            }
        }
    }
    border3x3(o, r0, r1, NULL, k, b, w, s, pad, 0, xa);
    border3x3(o, r0, r1, NULL, k, b, w, s, pad, xb, ow);
}

/* One output row of a 3x3 filter whose three input rows r0, r1, r2 are all inside the map:
 * all nine taps in one pass over the interior columns (one store per output). */
static void row3x3(float *restrict o, const float *restrict r0, const float *restrict r1,
                   const float *restrict r2, const float *restrict k, float b, int w, int ow, int s, int pad)
{
    const float k0 = k[0], k1 = k[1], k2 = k[2], k3 = k[3], k4 = k[4], k5 = k[5], k6 = k[6], k7 = k[7], k8 = k[8];
    int xa, xb, x, n;
    inside(3, s, pad, w, ow, &xa, &xb);
    n = xb - xa;
    if (n > 0) {
        const int off = xa * s - pad; /* >= 0 inside */
        const float *restrict a = r0 + off, *restrict m = r1 + off, *restrict z = r2 + off;
        float *restrict d = o + xa;
        if (s == 1) {
            for (x = 0; x < n; x++)
                d[x] = b + k0 * a[x] + k1 * a[x + 1] + k2 * a[x + 2] + k3 * m[x] + k4 * m[x + 1] + k5 * m[x + 2]
                     + k6 * z[x] + k7 * z[x + 1] + k8 * z[x + 2];
        } else if (s == 2) {
            for (x = 0; x < n; x++)
                d[x] = b + k0 * a[2 * x] + k1 * a[2 * x + 1] + k2 * a[2 * x + 2] + k3 * m[2 * x]
                     + k4 * m[2 * x + 1] + k5 * m[2 * x + 2] + k6 * z[2 * x] + k7 * z[2 * x + 1] + k8 * z[2 * x + 2];
        } else {
            for (x = 0; x < n; x++) {
                const int i = x * s;
                d[x] = b + k0 * a[i] + k1 * a[i + 1] + k2 * a[i + 2] + k3 * m[i] + k4 * m[i + 1] + k5 * m[i + 2]
                     + k6 * z[i] + k7 * z[i + 1] + k8 * z[i + 2];
            }
        }
    }
    border3x3(o, r0, r1, r2, k, b, w, s, pad, 0, xa);
    border3x3(o, r0, r1, r2, k, b, w, s, pad, xb, ow);
}

/* The portable kernel (every target; the fast path's reference and its fallback). */
static void conv_dw_portable(const float *restrict in, int c, int h, int w,
                             const float *restrict weight, const float *restrict bias, int m,
                             int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                             float *restrict out, int oh, int ow, int act)
{
    const int cout = c * m;
    const int flat = kh == 3 && kw == 3 && sh == 1 && sw == 1 && ow == w;
    int o, oy, ky, x, ya = 0, yb = 0, xa = 0, xb = 0;
    if (kh == 3 && kw == 3) inside(3, sh, pad_top, h, oh, &ya, &yb);
    if (flat) inside(3, sw, pad_left, w, ow, &xa, &xb);
    for (o = 0; o < cout; o++) {
        const float *plane = in + (o / m) * h * w;
        const float *wo = weight + o * kh * kw;
        float *oplane = out + o * oh * ow;
        if (flat && yb > ya && xb > xa) {
            /* Stride 1 and ow == w: output j and input j + (ky - pad_top) * w + kx - pad_left line up
             * over the whole run of interior rows, so one long vectorised loop covers them; the
             * columns it gets wrong (those whose taps wrap to the next row) are redone below. */
            const int j0 = ya * w + xa, j1 = (yb - 1) * w + xb, n = j1 - j0;
            const float *restrict a = plane + (j0 - pad_top * w - pad_left); /* >= plane: j0 >= pad_top * w + pad_left */
            const float *restrict mid = a + w, *restrict z = a + 2 * w;
            float *restrict d = oplane + j0;
            const float b = bias[o], k0 = wo[0], k1 = wo[1], k2 = wo[2], k3 = wo[3], k4 = wo[4], k5 = wo[5],
                        k6 = wo[6], k7 = wo[7], k8 = wo[8];
            int j;
            for (j = 0; j < n; j++)
                d[j] = b + k0 * a[j] + k1 * a[j + 1] + k2 * a[j + 2] + k3 * mid[j] + k4 * mid[j + 1]
                     + k5 * mid[j + 2] + k6 * z[j] + k7 * z[j + 1] + k8 * z[j + 2];
            for (oy = ya; oy < yb; oy++) {
                const float *r0 = plane + (oy - pad_top) * w;
                border3x3(oplane + oy * ow, r0, r0 + w, r0 + 2 * w, wo, b, w, 1, pad_left, 0, xa);
                border3x3(oplane + oy * ow, r0, r0 + w, r0 + 2 * w, wo, b, w, 1, pad_left, xb, ow);
            }
        }
        for (oy = 0; oy < oh; oy++) {
            float *restrict orow = oplane + oy * ow;
            if (oy >= ya && oy < yb) { /* 3x3, all three input rows inside */
                if (flat && xb > xa) continue; /* done above */
                const float *r0 = plane + (oy * sh - pad_top) * w;
                row3x3(orow, r0, r0 + w, r0 + 2 * w, wo, bias[o], w, ow, sw, pad_left);
                continue;
            }
            if (kh == 3 && kw == 3) { /* the first or last row: two input rows inside? */
                const int iy = oy * sh - pad_top;
                if (iy == -1 && h >= 2) {
                    row3x2(orow, plane, plane + w, wo + 3, bias[o], w, ow, sw, pad_left);
                    continue;
                }
                if (iy >= 0 && iy + 1 == h - 1) {
                    row3x2(orow, plane + iy * w, plane + (iy + 1) * w, wo, bias[o], w, ow, sw, pad_left);
                    continue;
                }
            }
            for (x = 0; x < ow; x++) orow[x] = bias[o];
            for (ky = 0; ky < kh; ky++) {
                const int iy = oy * sh - pad_top + ky;
                if (iy < 0 || iy >= h) continue;
                row_pass(orow, plane + iy * w, wo + ky * kw, kw, w, ow, sw, pad_left);
            }
        }
        arch_activate(oplane, oh * ow, act);
    }
}

#if ARCH_SIMD
/* Fast path, 3x3 at stride 1 or 2: each input plane is first copied into a zero-padded one (on the
 * stack, planes up to PADDED_MAX floats), so that every output row is one branch-free pass of vectors
 * along x, nine taps per vector (stride 2 keeps the even lanes of two loads); the last vector of a
 * row is masked. Larger planes, and other filters and strides, take the portable path. */
#define PADDED_MAX 16384 /* 64 KB: a 112 x 112 map padded; L2-resident while its row passes run */

/* Taps of one filter row (k: its three weights) for n (<= VL) outputs from padded position p. */
ARCH_INLINE vf taps3(const float *p, const vf *k, vf acc, int s, int n)
{
    if (s == 1) {
        if (n == VL) {
            acc = V_FMA(k[0], V_LOAD(p), acc);
            acc = V_FMA(k[1], V_LOAD(p + 1), acc);
            return V_FMA(k[2], V_LOAD(p + 2), acc);
        } else {
            const vmask m = V_MASK(n);
            acc = V_FMA(k[0], V_LOADM(p, m), acc);
            acc = V_FMA(k[1], V_LOADM(p + 1, m), acc);
            return V_FMA(k[2], V_LOADM(p + 2, m), acc);
        }
    }
    acc = V_FMA(k[0], v_load_even(p, n), acc);
    acc = V_FMA(k[1], v_load_even(p + 1, n), acc);
    return V_FMA(k[2], v_load_even(p + 2, n), acc);
}

/* dst (ph x pw) = the plane with pad_top rows and pad_left columns of zeros before it, zeros after. */
static void pad_plane(float *restrict dst, int ph, int pw, const float *restrict plane, int h, int w, int pad_top,
                      int pad_left)
{
    const int x0 = pad_left, n = w < pw - pad_left ? w : pw - pad_left; /* the plane's columns that are read */
    int y, x;
    for (y = 0; y < ph; y++) {
        float *d = dst + y * pw;
        const int iy = y - pad_top;
        /* zeros first, then the row over them: vector stores (a loop of scalar zeros becomes a memset
         * call per row, which costs more than the row on small maps) */
        for (x = 0; x + VL <= pw; x += VL) V_STORE(d + x, V_SET1(0.0f));
        if (x < pw) V_STOREM(d + x, V_SET1(0.0f), V_MASK(pw - x));
        if (iy < 0 || iy >= h) continue;
        for (x = 0; x + VL <= n; x += VL) V_STORE(d + x0 + x, V_LOAD(plane + iy * w + x));
        if (x < n) V_STOREM(d + x0 + x, V_LOADM(plane + iy * w + x, V_MASK(n - x)), V_MASK(n - x));
    }
}

static void plane3x3_fast(const float *restrict padded, int pw, const float *restrict wt, float b,
                          float *restrict o, int oh, int ow, int s, int act)
{
    vf k[9];
    int oy, x0, t;
    ARCH_UNROLL for (t = 0; t < 9; t++) k[t] = V_SET1(wt[t]);
    for (oy = 0; oy < oh; oy++) {
        const float *r0 = padded + oy * s * pw, *r1 = r0 + pw, *r2 = r1 + pw;
        for (x0 = 0; x0 < ow; x0 += VL) {
            const int n = ow - x0 < VL ? ow - x0 : VL, off = x0 * s;
            vf a0, a1, a2; /* one partial sum per filter row: three short dependency chains */
            if (n == VL && s == 1) {
                a0 = taps3(r0 + off, k, V_SET1(b), 1, VL);
                a1 = taps3(r1 + off, k + 3, V_SET1(0.0f), 1, VL);
                a2 = taps3(r2 + off, k + 6, V_SET1(0.0f), 1, VL);
            } else if (n == VL) {
                a0 = taps3(r0 + off, k, V_SET1(b), 2, VL);
                a1 = taps3(r1 + off, k + 3, V_SET1(0.0f), 2, VL);
                a2 = taps3(r2 + off, k + 6, V_SET1(0.0f), 2, VL);
            } else {
                a0 = taps3(r0 + off, k, V_SET1(b), s, n);
                a1 = taps3(r1 + off, k + 3, V_SET1(0.0f), s, n);
                a2 = taps3(r2 + off, k + 6, V_SET1(0.0f), s, n);
            }
            a0 = V_ADD(a0, V_ADD(a1, a2));
            if (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6) a0 = V_MAX(a0, V_SET1(0.0f));
            if (act == ARCH_ACT_RELU6) a0 = V_MIN(a0, V_SET1(6.0f));
            if (n == VL)
                V_STORE(o + oy * ow + x0, a0);
            else
                V_STOREM(o + oy * ow + x0, a0, V_MASK(n));
        }
    }
    if (act != ARCH_ACT_NONE && act != ARCH_ACT_RELU && act != ARCH_ACT_RELU6) arch_activate(o, oh * ow, act);
}

void arch_conv_dw(const float *restrict in, int c, int h, int w,
                  const float *restrict weight, const float *restrict bias, int m,
                  int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                  float *restrict out, int oh, int ow, int act)
{
    /* the padded plane: every row and column a tap reads, from (-pad_top, -pad_left) on */
    const int ph = (oh - 1) * sh + 3, pw = (ow - 1) * sw + 3;
    float padded[PADDED_MAX];
    int o;
    if (kh != 3 || kw != 3 || sh != sw || (sh != 1 && sh != 2) || ph * pw > PADDED_MAX) {
        conv_dw_portable(in, c, h, w, weight, bias, m, kh, kw, sh, sw, pad_top, pad_left, out, oh, ow, act);
        return;
    }
    for (o = 0; o < c * m; o++) {
        if (o % m == 0) pad_plane(padded, ph, pw, in + (o / m) * h * w, h, w, pad_top, pad_left);
        plane3x3_fast(padded, pw, weight + o * 9, bias[o], out + o * oh * ow, oh, ow, sh, act);
    }
}

#else

void arch_conv_dw(const float *restrict in, int c, int h, int w,
                  const float *restrict weight, const float *restrict bias, int m,
                  int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                  float *restrict out, int oh, int ow, int act)
{
    conv_dw_portable(in, c, h, w, weight, bias, m, kh, kw, sh, sw, pad_top, pad_left, out, oh, ow, act);
}

#endif
