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
/* Fast path, stride 1 or 2 (both axes alike): for each output row, the input rows it reads are first
 * copied into a buffer, padded with zeros (so the border columns need no code of their own) and at
 * stride 2 split into their even and odd columns (so tap kx of output x is one plain load: even
 * column x + kx / 2 or odd column x + (kx - 1) / 2). The output row is then a matrix product with
 * K = cin_g x (filter rows inside the map) x kw: register tiles of MR output channels x nv vectors of
 * output columns, as in rt_gemm.c, their last vector stored masked. Input channels go through the
 * buffer CONV_BUF floats at a time; a tile adds to what the chunks before it stored. */
#if ARCH_SIMD == 512
#define FMR 8 /* 8 channels x up to 3 vectors: 24 of the 32 zmm registers accumulate */
#define FNV 3
#else
#define FMR 6 /* 6 channels x up to 2 vectors: 12 of the 16 ymm registers accumulate */
#define FNV 2
#endif
#define CONV_BUF 16384 /* floats: 64 KB on the stack */

/* The buffered rows of one output row: input channel ci (of the chunk), filter row ky0 + j at
 * buf + (ci * nky + j) * rs; stride 2: the even columns from there, the odd ones rs_half further. */
struct conv_rows {
    const float *buf;
    int rs, rs_half, nky, nci, kw, ksize, ky0;
    int wstride; /* from one output channel's weights to the next: cin_g x kh x kw */
};

/* Channels [0, nr) of the tile (the rows past nr recompute the last and are not stored), nv vectors of
 * output columns from x0 (the last holds n_last lanes), input channels [0, cr->nci) of the chunk whose
 * weights start at wt; `first`: start from the bias (else from what out holds); `last`: clamp. */
ARCH_INLINE void conv_tile(int nv, int masked, int s, const struct conv_rows *cr, const float *restrict wt, int nr,
                           int x0, int n_last, int first, int last, const float *restrict bias, float *restrict out,
                           int ohw, int act)
{
    vf acc[FMR][FNV];
    int off[FMR];
    int r, v, ci, j, kx;
    const int kstride = cr->wstride;
    ARCH_UNROLL for (r = 0; r < FMR; r++) {
        const int rr = r < nr ? r : nr - 1;
        const vf bv = V_SET1(bias[rr]);
        off[r] = rr * kstride;
        ARCH_UNROLL for (v = 0; v < nv; v++) {
            const float *o = out + rr * ohw + x0 + v * VL;
            const int n = masked && v == nv - 1 ? n_last : VL;
            acc[r][v] = first ? bv : n == VL ? V_LOAD(o) : V_LOADM(o, V_MASK(n));
        }
    }
    for (ci = 0; ci < cr->nci; ci++) {
        for (j = 0; j < cr->nky; j++) {
            const float *row = cr->buf + (ci * cr->nky + j) * cr->rs + x0;
            const float *wk = wt + ci * cr->ksize + (cr->ky0 + j) * cr->kw;
            for (kx = 0; kx < cr->kw; kx++) {
                const float *src = s == 1 ? row + kx : row + (kx & 1) * cr->rs_half + kx / 2;
                vf xv[FNV];
                ARCH_UNROLL for (v = 0; v < nv; v++) xv[v] = V_LOAD(src + v * VL);
                ARCH_UNROLL for (r = 0; r < FMR; r++) {
                    const vf a = V_BCAST(wk + off[r] + kx);
                    ARCH_UNROLL for (v = 0; v < nv; v++) acc[r][v] = V_FMA(a, xv[v], acc[r][v]);
                }
            }
        }
    }
    if (last && (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6)) {
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

/* conv_tile with nv, masked and s constants. */
static void conv_tile_n(int nv, int masked, int s, const struct conv_rows *cr, const float *restrict wt, int nr,
                        int x0, int n_last, int first, int last, const float *restrict bias, float *restrict out,
                        int ohw, int act)
{
#define CONV_TILE(n) \
    case n: \
        if (s == 1 && masked) conv_tile(n, 1, 1, cr, wt, nr, x0, n_last, first, last, bias, out, ohw, act); \
        else if (s == 1) conv_tile(n, 0, 1, cr, wt, nr, x0, n_last, first, last, bias, out, ohw, act); \
        else if (masked) conv_tile(n, 1, 2, cr, wt, nr, x0, n_last, first, last, bias, out, ohw, act); \
        else conv_tile(n, 0, 2, cr, wt, nr, x0, n_last, first, last, bias, out, ohw, act); \
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

/* Copy input rows [iy0, iy0 + nky) of channels [0, nci) (from in_c) into the buffer as struct conv_rows says. */
static void fill_rows(float *restrict buf, const struct conv_rows *cr, int s, const float *restrict in_c, int h,
                      int w, int iy0, int pad_left)
{
    const int span = s == 1 ? cr->rs - VL : cr->rs_half; /* whole vectors */
    int ci, j, x;
    for (ci = 0; ci < cr->nci; ci++)
        for (j = 0; j < cr->nky; j++) {
            const float *row = in_c + (ci * h + iy0 + j) * w;
            float *d = buf + (ci * cr->nky + j) * cr->rs;
            if (s == 1) {
                for (x = 0; x < span; x += VL) V_STORE(d + x, padded_vec(row, w, pad_left, x));
            } else {
                for (x = 0; x < span; x += VL) {
                    vf e, o;
                    split_lanes(padded_vec(row, w, pad_left, 2 * x), padded_vec(row, w, pad_left, 2 * x + VL), &e, &o);
                    V_STORE(d + x, e);
                    V_STORE(d + span + x, o);
                }
            }
            for (x = 0; x < VL; x++) d[cr->rs - VL + x] = 0.0f; /* the slack the last tile's loads reach */
        }
}

void arch_conv2d(const float *restrict in, int cin, int h, int w,
                 const float *restrict weight, const float *restrict bias,
                 int cout, int groups, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                 float *restrict out, int oh, int ow, int act)
{
    const int cin_g = cin / groups, cout_g = cout / groups, ksize = kh * kw, ohw = oh * ow;
    const int vecs = (ow + VL - 1) / VL;
    /* the padded row's columns [0, (ow - 1) s + kw); stride 2: its even and odd halves, each in whole vectors */
    const int half = ((ow + (kw - 1) / 2) + VL - 1) / VL * VL;
    const int rs = sh == 1 ? ((ow + kw - 1) + VL - 1) / VL * VL + VL : 2 * half + VL;
    float buf[CONV_BUF];
    int g, co, oy;
    if (sh != sw || (sh != 1 && sh != 2) || kh * rs > CONV_BUF || pad_left >= VL) {
        conv2d_portable(in, cin, h, w, weight, bias, cout, groups, kh, kw, sh, sw, pad_top, pad_left, out, oh, ow,
                        act);
        return;
    }
    for (g = 0; g < groups; g++) {
        const float *in_g = in + g * cin_g * h * w;
        for (oy = 0; oy < oh; oy++) {
            const int iy0 = oy * sh - pad_top;
            struct conv_rows cr;
            int c0;
            cr.buf = buf;
            cr.rs = rs;
            cr.rs_half = sh == 1 ? 0 : half;
            cr.kw = kw;
            cr.ksize = ksize;
            cr.wstride = cin_g * ksize;
            cr.ky0 = iy0 < 0 ? -iy0 : 0;
            cr.nky = (iy0 + kh > h ? h - iy0 : kh) - cr.ky0;
            if (cr.nky <= 0) { /* no filter row inside the map: the bias alone */
                for (co = 0; co < cout_g; co++) {
                    float *o = out + (g * cout_g + co) * ohw + oy * ow;
                    int x;
                    for (x = 0; x < ow; x++) o[x] = bias[g * cout_g + co];
                    arch_activate(o, ow, act);
                }
                continue;
            }
            for (c0 = 0; c0 < cin_g; c0 += cr.nci) {
                const int room = CONV_BUF / (cr.nky * rs);
                cr.nci = cin_g - c0 < room ? cin_g - c0 : room;
                fill_rows(buf, &cr, sh, in_g + c0 * h * w, h, w, iy0 + cr.ky0, pad_left);
                for (co = 0; co < cout_g; co += FMR) {
                    const int nr = cout_g - co < FMR ? cout_g - co : FMR, c = g * cout_g + co;
                    const int first = c0 == 0, last = c0 + cr.nci == cin_g;
                    const float *wt = weight + c * cin_g * ksize + c0 * ksize;
                    float *o = out + c * ohw + oy * ow;
                    int x, nv = vecs < FNV ? vecs : FNV;
                    for (x = 0; x + nv * VL <= ow; x += nv * VL)
                        conv_tile_n(nv, 0, sh, &cr, wt, nr, x, VL, first, last, bias + c, o, ohw, act);
                    if (x < ow) { /* the last tile: its last vector masked */
                        const int left = ow - x, lv = (left + VL - 1) / VL;
                        conv_tile_n(lv, 1, sh, &cr, wt, nr, x, left - (lv - 1) * VL, first, last, bias + c, o, ohw,
                                    act);
                    }
                    if (last && act != ARCH_ACT_NONE && act != ARCH_ACT_RELU && act != ARCH_ACT_RELU6) {
                        int r; /* conv_tile clamps only; the other activations run on the stored row */
                        for (r = 0; r < nr; r++) arch_activate(o + r * ohw, ow, act);
                    }
                }
            }
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
