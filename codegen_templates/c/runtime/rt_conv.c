/* Standard and grouped convolution, any kernel size, stride and (asymmetric) padding.
 *
 * For each output row, CONV_CO output channels are accumulated together: every input row
 * segment read is used CONV_CO times, and the innermost loop runs along the output row
 * (contiguous in NCHW; with stride 1 the input side is contiguous too), so it vectorises.
 * Padding is handled by clipping each tap's range of output columns, never by reading it. */
#define ARCH_RT_VECTORS
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

/* The portable kernel (every target; the fast path's reference, and its fallback for other strides). */
static void conv2d_portable(const float *restrict in, int cin, int h, int w,
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

#if ARCH_SIMD
/* Fast path, stride 1 or 2 (both axes alike): each output row is a matrix product with
 * K = cin_g x (filter rows inside the map) x kw, whose k-th row is an input row read at the tap's
 * offset (contiguous at stride 1, the even lanes of two vectors at stride 2). Register tiles of
 * MR output channels x nv vectors of output columns, as in rt_gemm.c, over the columns whose taps
 * are all inside the row; the border columns go to row_segment. */
#if ARCH_SIMD == 512
#define FMR 8 /* 8 channels x up to 3 vectors: 24 of the 32 zmm registers accumulate */
#define FNV 3
#else
#define FMR 6 /* 6 channels x up to 2 vectors: 12 of the 16 ymm registers accumulate */
#define FNV 2
#endif

struct conv_row {
    const float *plane; /* the group's first input channel at the row's first filter row, column 0 */
    int cin_g, hw, w, kw, ky0, ky1, ksize, s;
};

/* Channels [0, nr) of the tile (the rows past nr recompute the last and are not stored), nv vectors of
 * output columns from x0 (the last holds n_last lanes); x0 counts from cr->plane's column and from out.
 * wt: the first channel's weights. */
ARCH_INLINE void conv_tile(int nv, int masked, int s, const struct conv_row *cr, const float *restrict wt, int nr,
                           int x0, int n_last, const float *restrict bias, float *restrict out, int ohw, int act)
{
    vf acc[FMR][FNV];
    int off[FMR];
    int r, v, ci, ky, kx;
    const int kstride = cr->cin_g * cr->ksize;
    ARCH_UNROLL for (r = 0; r < FMR; r++) {
        const int rr = r < nr ? r : nr - 1;
        const vf bv = V_SET1(bias[rr]);
        off[r] = rr * kstride;
        ARCH_UNROLL for (v = 0; v < nv; v++) acc[r][v] = bv;
    }
    for (ci = 0; ci < cr->cin_g; ci++) {
        for (ky = cr->ky0; ky < cr->ky1; ky++) {
            const float *row = cr->plane + ci * cr->hw + (ky - cr->ky0) * cr->w + x0 * s;
            const float *wk = wt + ci * cr->ksize + ky * cr->kw;
            for (kx = 0; kx < cr->kw; kx++) {
                vf xv[FNV];
                ARCH_UNROLL for (v = 0; v < nv; v++) {
                    const int n = masked && v == nv - 1 ? n_last : VL;
                    if (s == 1)
                        xv[v] = n == VL ? V_LOAD(row + kx + v * VL) : V_LOADM(row + kx + v * VL, V_MASK(n));
                    else
                        xv[v] = v_load_even(row + kx + 2 * v * VL, n);
                }
                ARCH_UNROLL for (r = 0; r < FMR; r++) {
                    const vf a = V_BCAST(wk + off[r] + kx);
                    ARCH_UNROLL for (v = 0; v < nv; v++) acc[r][v] = V_FMA(a, xv[v], acc[r][v]);
                }
            }
        }
    }
    if (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6) {
        const vf zero = V_SET1(0.0f), six = V_SET1(6.0f);
        ARCH_UNROLL for (r = 0; r < FMR; r++) ARCH_UNROLL for (v = 0; v < nv; v++) {
            acc[r][v] = V_MAX(acc[r][v], zero);
            if (act == ARCH_ACT_RELU6) acc[r][v] = V_MIN(acc[r][v], six);
        }
    }
    ARCH_UNROLL for (r = 0; r < FMR; r++) {
        if (r >= nr) break;
        ARCH_UNROLL for (v = 0; v < nv; v++) {
            if (masked && v == nv - 1)
                V_STOREM(out + r * ohw + x0 + v * VL, acc[r][v], V_MASK(n_last));
            else
                V_STORE(out + r * ohw + x0 + v * VL, acc[r][v]);
        }
    }
}

/* conv_tile with nv and s constants. */
static void conv_tile_n(int nv, int masked, const struct conv_row *cr, const float *restrict wt, int nr, int x0,
                        int n_last, const float *restrict bias, float *restrict out, int ohw, int act)
{
#define CONV_TILE(n) \
    case n: \
        if (cr->s == 1) conv_tile(n, masked, 1, cr, wt, nr, x0, n_last, bias, out, ohw, act); \
        else conv_tile(n, masked, 2, cr, wt, nr, x0, n_last, bias, out, ohw, act); \
        break;
    switch (nv) {
#if FNV >= 3
    CONV_TILE(3)
#endif
    CONV_TILE(2)
    default:
        CONV_TILE(1)
    }
#undef CONV_TILE
}

void arch_conv2d(const float *restrict in, int cin, int h, int w,
                 const float *restrict weight, const float *restrict bias,
                 int cout, int groups, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                 float *restrict out, int oh, int ow, int act)
{
    const int cin_g = cin / groups, cout_g = cout / groups, ksize = kh * kw, ohw = oh * ow;
    int g, co, oy, xa, xb, j;
    if (sh != sw || (sh != 1 && sh != 2)) {
        conv2d_portable(in, cin, h, w, weight, bias, cout, groups, kh, kw, sh, sw, pad_top, pad_left, out, oh, ow,
                        act);
        return;
    }
    tap_range(0, sw, pad_left, w, ow, &xa, &j); /* columns whose kw taps are all inside: [xa, xb) */
    tap_range(kw - 1, sw, pad_left, w, ow, &j, &xb);
    if (xb < xa) xb = xa;
    for (g = 0; g < groups; g++) {
        const float *in_g = in + g * cin_g * h * w;
        for (oy = 0; oy < oh; oy++) {
            const int iy0 = oy * sh - pad_top;
            struct conv_row cr;
            cr.ky0 = iy0 < 0 ? -iy0 : 0;
            cr.ky1 = iy0 + kh > h ? h - iy0 : kh;
            cr.cin_g = cin_g;
            cr.hw = h * w;
            cr.w = w;
            cr.kw = kw;
            cr.ksize = ksize;
            cr.s = sh;
            for (co = 0; co < cout_g; co += FMR) {
                const int nr = cout_g - co < FMR ? cout_g - co : FMR, c = g * cout_g + co;
                const float *wt = weight + c * cin_g * ksize;
                float *o = out + c * ohw + oy * ow;
                int x, r;
                if (cr.ky1 > cr.ky0 && xb > xa) {
                    const int vecs = (xb - xa + VL - 1) / VL;
                    int nv = vecs < FNV ? vecs : FNV;
                    cr.plane = in_g + (iy0 + cr.ky0) * w + xa * sw - pad_left;
                    for (x = xa; x + nv * VL <= xb; x += nv * VL)
                        conv_tile_n(nv, 0, &cr, wt, nr, x - xa, VL, bias + c, o + xa, ohw, act);
                    if (x < xb) { /* the last tile: its last vector masked */
                        const int left = xb - x, lv = (left + VL - 1) / VL;
                        conv_tile_n(lv, 1, &cr, wt, nr, x - xa, left - (lv - 1) * VL, bias + c, o + xa, ohw, act);
                    }
                }
                for (r = 0; r < nr; r += CONV_CO) { /* the border columns (all columns if no tile ran) */
                    const int n = nr - r < CONV_CO ? nr - r : CONV_CO;
                    const int lo = cr.ky1 > cr.ky0 ? xa : 0, hi = cr.ky1 > cr.ky0 ? xb : 0;
                    row_segment(in_g, cin_g, h, w, wt + r * cin_g * ksize, bias + c + r, c + r, n, kh, kw, sh, sw,
                                pad_top, pad_left, out, oh, ow, oy, 0, lo, act);
                    row_segment(in_g, cin_g, h, w, wt + r * cin_g * ksize, bias + c + r, c + r, n, kh, kw, sh, sw,
                                pad_top, pad_left, out, oh, ow, oy, hi > lo ? hi : lo, ow, act);
                }
            }
        }
    }
    if (act != ARCH_ACT_NONE && act != ARCH_ACT_RELU && act != ARCH_ACT_RELU6) {
        /* conv_tile clamps only; the other activations run on the interior afterwards
         * (row_segment already ran them on the border columns) */
        for (co = 0; co < cout; co++)
            for (oy = 0; oy < oh; oy++) {
                const int iy0 = oy * sh - pad_top;
                const int any = (iy0 < 0 ? -iy0 : 0) < (iy0 + kh > h ? h - iy0 : kh);
                if (any && xb > xa) arch_activate(out + co * ohw + oy * ow + xa, xb - xa, act);
            }
    }
}

#else

void arch_conv2d(const float *restrict in, int cin, int h, int w,
                 const float *restrict weight, const float *restrict bias,
                 int cout, int groups, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                 float *restrict out, int oh, int ow, int act)
{
    conv2d_portable(in, cin, h, w, weight, bias, cout, groups, kh, kw, sh, sw, pad_top, pad_left, out, oh, ow, act);
}

#endif
