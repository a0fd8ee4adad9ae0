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
 * stack, planes up to PADDED_MAX floats), so that the border is only zeros in that copy and every
 * output row is one branch-free pass of vectors along x, nine taps per vector. At stride 2 each padded
 * row is stored split into its even and its odd columns, so the taps of output x are even[x],
 * odd[x] and even[x + 1]: plain loads, no shuffles in the loop. The copy ends with PADDED_SLACK
 * spare floats, so the loads of a row's last vector never need a mask (the lanes past the row are
 * computed and not stored); only that vector's store is partial. Larger planes, and other filters
 * and strides, take the portable path. */
#define PADDED_MAX 16384 /* 64 KB: a 112 x 112 map padded; L2-resident while its row passes run */
#define PADDED_SLACK (2 * VL + 4)
/* Output rows up to ARCH_DW_STRIPS vectors wide read the input in strips (below), wider ones a padded
 * copy. A strip keeps 9 weights, 9 tap vectors and 3 sums in registers: AVX-512's 32 hold them, and
 * strips beat the copy up to rows of 4 vectors (MobileNetV1 on Zen 4: 56 wide at stride 1 and 2;
 * 112 wide the copy wins). AVX2's 16 do not: strips spill, and pay only where a row is one vector
 * (the copy's overhead is per row). Measured with bench/bench_c_layers.py. */
#ifndef ARCH_DW_STRIPS
#if ARCH_SIMD == 512
#define ARCH_DW_STRIPS 4
#else
#define ARCH_DW_STRIPS 1
#endif
#endif

/* Taps of one filter row (k: its three weights) for the VL outputs whose taps start at p (stride 1)
 * or whose even-column taps start at p and odd-column ones at q (stride 2). */
ARCH_INLINE vf taps3(const float *p, const float *q, const vf *k, vf acc, int s)
{
    acc = V_FMA(k[0], V_LOAD(p), acc);
    acc = V_FMA(k[1], V_LOAD(s == 1 ? p + 1 : q), acc);
    return V_FMA(k[2], V_LOAD(s == 1 ? p + 2 : p + 1), acc);
}

/* The padded copy of one input plane: ph rows of rs floats, each written in whole vectors (the slack
 * takes the last row's spill). Stride 1: row y is padded row y (pw columns). Stride 2: row y is padded
 * row y's even columns, then from rs / 2 on its odd columns (rs / 2 a whole number of vectors). */
static void pad_plane(float *restrict dst, int ph, int pw, int rs, int s, const float *restrict plane, int h, int w,
                      int pad_top, int pad_left)
{
    const int n = w < pw - pad_left ? w : pw - pad_left; /* the row's columns that are read */
    int y, x;
    for (y = 0; y < ph; y++) {
        const int iy = y - pad_top;
        const float *row = iy >= 0 && iy < h && n > 0 ? plane + iy * w : NULL;
        float *d = dst + y * rs;
        if (s == 1) {
            for (x = 0; x < pw; x += VL) V_STORE(d + x, padded_vec(row, n, pad_left, x));
        } else {
            for (x = 0; x < rs / 2; x += VL) {
                vf e, o;
                split_lanes(padded_vec(row, n, pad_left, 2 * x), padded_vec(row, n, pad_left, 2 * x + VL), &e, &o);
                V_STORE(d + x, e);
                V_STORE(d + rs / 2 + x, o);
            }
        }
    }
}

/* One output plane from the padded copy (rows of rs floats; at stride 2 the odd columns half a row on). */
ARCH_INLINE void plane3x3(const float *restrict padded, int rs, int s, const float *restrict wt, float b,
                          float *restrict o, int oh, int ow, int act)
{
    const int odd = s == 1 ? 0 : rs / 2;
    vf k[9];
    int oy, x0, t;
    ARCH_UNROLL for (t = 0; t < 9; t++) k[t] = V_SET1(wt[t]);
    for (oy = 0; oy < oh; oy++) {
        const float *r0 = padded + oy * s * rs, *r1 = r0 + rs, *r2 = r1 + rs;
        for (x0 = 0; x0 < ow; x0 += VL) {
            /* one partial sum per filter row: three short dependency chains */
            vf a0 = taps3(r0 + x0, r0 + odd + x0, k, V_SET1(b), s);
            const vf a1 = taps3(r1 + x0, r1 + odd + x0, k + 3, V_SET1(0.0f), s);
            const vf a2 = taps3(r2 + x0, r2 + odd + x0, k + 6, V_SET1(0.0f), s);
            a0 = V_ADD(a0, V_ADD(a1, a2));
            if (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6) a0 = V_MAX(a0, V_SET1(0.0f));
            if (act == ARCH_ACT_RELU6) a0 = V_MIN(a0, V_SET1(6.0f));
            if (ow - x0 >= VL)
                V_STORE(o + oy * ow + x0, a0);
            else
                V_STOREM(o + oy * ow + x0, a0, V_MASK(ow - x0));
        }
    }
    if (act != ARCH_ACT_NONE && act != ARCH_ACT_RELU && act != ARCH_ACT_RELU6) arch_activate(o, oh * ow, act);
}

/* Read straight from the input plane, no copy, in strips one vector wide: on a small map a padded
 * copy's stores are still in flight when the taps read them a float or two off, and every load waits
 * on store forwarding. Down a strip, each input row is loaded once as its three tap vectors
 * t[kx][x] = padded row[(x0 + x) s + kx] (padded_vec: plain loads inside the map, zeros outside) and
 * kept while the output rows that use it pass. */
struct row_taps {
    vf t[3];
};

ARCH_INLINE struct row_taps row_vectors(const float *restrict plane, int h, int w, int pad_left, int iy, int s, int x0)
{
    struct row_taps r;
    const float *row = iy >= 0 && iy < h ? plane + iy * w : NULL;
    const int x = x0 * s;
    if (s == 1) {
        r.t[0] = padded_vec(row, w, pad_left, x);
        r.t[1] = padded_vec(row, w, pad_left, x + 1);
        r.t[2] = padded_vec(row, w, pad_left, x + 2);
    } else {
        vf unused;
        split_lanes(padded_vec(row, w, pad_left, x), padded_vec(row, w, pad_left, x + VL), &r.t[0], &r.t[1]);
        split_lanes(padded_vec(row, w, pad_left, x + 2), padded_vec(row, w, pad_left, x + 2 + VL), &r.t[2], &unused);
    }
    return r;
}

/* Output columns [x0, x0 + n) (n <= VL) of every row of one output plane. */
ARCH_INLINE void strip3x3(int s, const float *restrict plane, int h, int w, int pad_top, int pad_left,
                          const vf *k, float b, float *restrict o, int oh, int ow, int x0, int n, int act)
{
    const vmask part = V_MASK(n);
    struct row_taps r0, r1, r2;
    int oy;
    r0 = row_vectors(plane, h, w, pad_left, -pad_top, s, x0);
    r1 = row_vectors(plane, h, w, pad_left, 1 - pad_top, s, x0);
    r2 = row_vectors(plane, h, w, pad_left, 2 - pad_top, s, x0);
    for (oy = 0; oy < oh; oy++) {
        /* one partial sum per filter row: three short dependency chains */
        vf a0 = V_FMA(k[0], r0.t[0], V_SET1(b)), a1 = V_MUL(k[3], r1.t[0]), a2 = V_MUL(k[6], r2.t[0]);
        a0 = V_FMA(k[1], r0.t[1], a0);
        a1 = V_FMA(k[4], r1.t[1], a1);
        a2 = V_FMA(k[7], r2.t[1], a2);
        a0 = V_FMA(k[2], r0.t[2], a0);
        a1 = V_FMA(k[5], r1.t[2], a1);
        a2 = V_FMA(k[8], r2.t[2], a2);
        a0 = V_ADD(a0, V_ADD(a1, a2));
        if (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6) a0 = V_MAX(a0, V_SET1(0.0f));
        if (act == ARCH_ACT_RELU6) a0 = V_MIN(a0, V_SET1(6.0f));
        if (n == VL)
            V_STORE(o + oy * ow + x0, a0);
        else
            V_STOREM(o + oy * ow + x0, a0, part);
        if (oy + 1 == oh) break;
        if (s == 1) { /* the next output row's input rows: iy + 1 .. iy + 3 */
            r0 = r1;
            r1 = r2;
            r2 = row_vectors(plane, h, w, pad_left, oy + 3 - pad_top, 1, x0);
        } else { /* iy + 2 .. iy + 4 */
            r0 = r2;
            r1 = row_vectors(plane, h, w, pad_left, 2 * oy + 3 - pad_top, 2, x0);
            r2 = row_vectors(plane, h, w, pad_left, 2 * oy + 4 - pad_top, 2, x0);
        }
    }
}

static void plane3x3_strips(int s, const float *restrict plane, int h, int w, int pad_top, int pad_left,
                            const float *restrict wt, float b, float *restrict o, int oh, int ow, int act)
{
    vf k[9];
    int x0, t;
    ARCH_UNROLL for (t = 0; t < 9; t++) k[t] = V_SET1(wt[t]);
    for (x0 = 0; x0 < ow; x0 += VL) {
        const int n = ow - x0 < VL ? ow - x0 : VL;
        if (s == 1)
            strip3x3(1, plane, h, w, pad_top, pad_left, k, b, o, oh, ow, x0, n, act);
        else
            strip3x3(2, plane, h, w, pad_top, pad_left, k, b, o, oh, ow, x0, n, act);
    }
    if (act != ARCH_ACT_NONE && act != ARCH_ACT_RELU && act != ARCH_ACT_RELU6) arch_activate(o, oh * ow, act);
}

/* Small maps, VL channels at a time (m == 1): a row of a small plane fills few of a vector's lanes
 * (7 of 16 on a 7 x 7 map), so here a vector holds one pixel of VL channels instead. The planes of
 * a block of VL channels are copied into one zero-padded buffer of pixels (VL floats each, one per
 * channel) by VL x VL transposes in registers, every output pixel is nine full-width FMAs whatever
 * the map's width, and the block's results are transposed back into their planes. */
#define BLOCK_PIXELS 256 /* padded pixels, 16 KB at VL 16: the buffer stays in L1 while the taps read it */
/* Where the transposes pay for themselves, measured with bench/bench_c_layers.py (AVX-512, MobileNetV1
 * 1.0/224): output rows of at most half a vector (7 x 7: 46 -> 36 us at stride 1, even at stride 2).
 * Wider rows fill the strips' lanes well enough that the copies cost more than they save (14 x 14
 * outputs of a 28 x 28 map: 37 -> 55 us). */
#define CHANNEL_BLOCKS_WHEN(ow) (2 * (ow) <= VL)

/* r[i] lane j <- r[j] lane i. */
ARCH_INLINE void transpose(vf *r)
{
#if ARCH_SIMD == 512
    __m512 t[16];
    int i;
    for (i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (i = 0; i < 16; i += 4) {
        const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
        const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    /* each 128-bit lane k of r[i] now holds the 4 x 4 block (rows 4 (i / 4) .., columns 4 k ..) */
    for (i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
    }
#else
    __m256 t[8], u[8];
    int i;
    for (i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
#endif
}

static void dw3x3_channel_blocks(int s, const float *restrict in, int c, int h, int w, int pad_top, int pad_left,
                                 const float *restrict weight, const float *restrict bias,
                                 float *restrict out, int oh, int ow, int act)
{
    const int ph = (oh - 1) * s + 3, pw = (ow - 1) * s + 3, hw = h * w, ohw = oh * ow;
    /* res: VL pixels of slack, read (not stored) by the last transpose back */
    float buf[BLOCK_PIXELS * VL], res[(BLOCK_PIXELS + VL) * VL], wt[9 * VL], bv[VL];
    int c0, l, x, t, oy, ox, p, iy, ix;
    for (x = 0; x < ph * pw * VL; x++) buf[x] = 0.0f;
    for (x = 0; x < (ohw + VL) * VL; x++) res[x] = 0.0f;
    for (c0 = 0; c0 < c; c0 += VL) {
        const int nl = c - c0 < VL ? c - c0 : VL; /* lanes past nl compute zeros, not stored */
        vf k[9], r[VL];
        for (l = 0; l < VL; l++) {
            for (t = 0; t < 9; t++) wt[t * VL + l] = l < nl ? weight[(c0 + l) * 9 + t] : 0.0f;
            bv[l] = l < nl ? bias[c0 + l] : 0.0f;
        }
        ARCH_UNROLL for (t = 0; t < 9; t++) k[t] = V_LOAD(wt + t * VL);
        iy = 0, ix = 0; /* the plane row and column of pixel p */
        for (p = 0; p < hw; p += VL) { /* the block's pixels p .. p + VL - 1 (flat in the plane) */
            const int n = hw - p < VL ? hw - p : VL;
            for (l = 0; l < VL; l++) {
                const float *src = in + (c0 + l) * hw + p;
                r[l] = l >= nl ? V_SET1(0.0f) : n == VL ? V_LOAD(src) : V_LOADM(src, V_MASK(n));
            }
            transpose(r);
            for (l = 0; l < n; l++) {
                if (iy + pad_top < ph && ix + pad_left < pw)
                    V_STORE(buf + ((iy + pad_top) * pw + ix + pad_left) * VL, r[l]);
                if (++ix == w) ix = 0, iy++;
            }
        }
        for (oy = 0; oy < oh; oy++) {
            for (ox = 0; ox < ow; ox++) {
                const float *q = buf + (oy * s * pw + ox * s) * VL;
                /* one partial sum per filter row: three short dependency chains */
                vf a0 = V_FMA(k[0], V_LOAD(q), V_LOAD(bv));
                vf a1 = V_MUL(k[3], V_LOAD(q + pw * VL));
                vf a2 = V_MUL(k[6], V_LOAD(q + 2 * pw * VL));
                a0 = V_FMA(k[1], V_LOAD(q + VL), a0);
                a1 = V_FMA(k[4], V_LOAD(q + (pw + 1) * VL), a1);
                a2 = V_FMA(k[7], V_LOAD(q + (2 * pw + 1) * VL), a2);
                a0 = V_FMA(k[2], V_LOAD(q + 2 * VL), a0);
                a1 = V_FMA(k[5], V_LOAD(q + (pw + 2) * VL), a1);
                a2 = V_FMA(k[8], V_LOAD(q + (2 * pw + 2) * VL), a2);
                a0 = V_ADD(a0, V_ADD(a1, a2));
                if (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6) a0 = V_MAX(a0, V_SET1(0.0f));
                if (act == ARCH_ACT_RELU6) a0 = V_MIN(a0, V_SET1(6.0f));
                V_STORE(res + (oy * ow + ox) * VL, a0);
            }
        }
        for (p = 0; p < ohw; p += VL) {
            const int n = ohw - p < VL ? ohw - p : VL;
            for (l = 0; l < VL; l++) r[l] = V_LOAD(res + (p + l) * VL);
            transpose(r);
            for (l = 0; l < nl; l++) {
                if (n == VL)
                    V_STORE(out + (c0 + l) * ohw + p, r[l]);
                else
                    V_STOREM(out + (c0 + l) * ohw + p, r[l], V_MASK(n));
            }
        }
    }
    if (act != ARCH_ACT_NONE && act != ARCH_ACT_RELU && act != ARCH_ACT_RELU6) arch_activate(out, c * ohw, act);
}

void arch_conv_dw(const float *restrict in, int c, int h, int w,
                  const float *restrict weight, const float *restrict bias, int m,
                  int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                  float *restrict out, int oh, int ow, int act)
{
    /* the padded plane: every row and column a tap reads, from (-pad_top, -pad_left) on */
    const int ph = (oh - 1) * sh + 3, pw = (ow - 1) * sw + 3;
    /* stride 2: ow + 1 even columns (pw = 2 ow + 1) and as many odd ones, each half rounded up to vectors */
    const int rs = sh == 1 ? pw : 2 * ((ow + 1 + VL - 1) / VL * VL);
    float padded[PADDED_MAX + PADDED_SLACK];
    int o, x;
    if (kh != 3 || kw != 3 || sh != sw || (sh != 1 && sh != 2) || ph * rs > PADDED_MAX) {
        conv_dw_portable(in, c, h, w, weight, bias, m, kh, kw, sh, sw, pad_top, pad_left, out, oh, ow, act);
        return;
    }
    if (m == 1 && ph * pw <= BLOCK_PIXELS && CHANNEL_BLOCKS_WHEN(ow)) {
        dw3x3_channel_blocks(sh, in, c, h, w, pad_top, pad_left, weight, bias, out, oh, ow, act);
        return;
    }
    /* the lanes read past the copy (their outputs are not stored) read zeros, not stale stack */
    for (x = 0; x < PADDED_SLACK; x++) padded[ph * rs + x] = 0.0f;
    if (kh == 3 && kw == 3 && sh == sw && (sh == 1 || sh == 2) && ow <= ARCH_DW_STRIPS * VL && pad_left < VL) {
        for (o = 0; o < c * m; o++)
            plane3x3_strips(sh, in + (o / m) * h * w, h, w, pad_top, pad_left, weight + o * 9, bias[o],
                            out + o * oh * ow, oh, ow, act);
        return;
    }
    for (o = 0; o < c * m; o++) {
        if (o % m == 0) pad_plane(padded, ph, pw, rs, sh, in + (o / m) * h * w, h, w, pad_top, pad_left);
        if (sh == 1)
            plane3x3(padded, rs, 1, weight + o * 9, bias[o], out + o * oh * ow, oh, ow, act);
        else
            plane3x3(padded, rs, 2, weight + o * 9, bias[o], out + o * oh * ow, oh, ow, act);
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
