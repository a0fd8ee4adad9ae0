/* 1x1 convolution (stride 1, no padding, one group) as a matrix product, the kernel that does
 * most of a MobileNet's mult-adds: out[cout][hw] = W[cout][cin] * in[cin][hw] + bias.
 *
 * The weights come packed in panels of `panel` output channels, k-major inside a panel (see
 * ARCH_PANEL in archdsl_rt.h; panel 1 is the plain (cout, cin) matrix). Either way the rows of a
 * panel are a block with uniform strides: weight (r, k) of a block is at base[r * rs + k * ks].
 *
 * Register blocking: a tile of rows x pixels is accumulated in registers over all of cin, then
 * stored once (with the bias and the epilogue activation). Pixels are contiguous in NCHW, so they
 * are the vector dimension and each row's weight is broadcast.
 *  - Fast path (ARCH_SIMD): explicit AVX2/AVX-512 tiles of MR rows x NV vectors, MR x NV
 *    accumulators as many as the register file holds next to the NV input vectors and a
 *    broadcast. A row of vectors is split into as few tiles as NV_MAX allows, as evenly as can be;
 *    the last tile is masked (never a scalar tail), short row blocks repeat their last row. With
 *    AVX2 a column tile's input is first copied into one contiguous panel (conv1x1_packed).
 *  - Portable path: plain C tiles of ARCH_GEMM_MR x ARCH_GEMM_NR the compiler vectorises (or not:
 *    Cortex-M), in column chunks of about L2 size; the last tile of a row overlaps the one before. */
#define ARCH_RT_VECTORS
#include "archdsl_rt.h"

/* A run of rows whose panels all have the same width p: row r of the run, weight k, is at
 * base[(r / p) * p * cin + r % p + k * p]. The full panels are one run, a narrower last panel another;
 * panel 1 (the plain matrix) is one run of p = 1. */
struct block {
    const float *base;
    int p, cin;
};

static int row_offset(struct block b, int r) { return r / b.p * b.p * b.cin + r % b.p; }

/* The run that starts at row r0 (a panel boundary): its first row's block, and its length in rows. */
static int block_at(const float *weight, int panel, int cin, int cout, int r0, struct block *b)
{
    const int full = panel > 1 ? cout / panel * panel : cout;
    b->base = weight + r0 * cin;
    b->cin = cin;
    b->p = r0 < full ? (panel > 1 ? panel : 1) : cout - full;
    return r0 < full ? full - r0 : cout - r0;
}

#if ARCH_SIMD

#ifndef MR
#if ARCH_SIMD == 512
#define MR 8   /* 8 rows x up to 3 vectors: 24 of the 32 zmm registers accumulate */
#define NV_MAX 3
#else
#define MR 6   /* 6 rows x up to 2 vectors: 12 of the 16 ymm registers accumulate */
#define NV_MAX 2
#endif
#endif

/* One tile: rows [r0, r0 + nr) of block b (nr <= MR; the rows past nr recompute the last row and are
 * not stored) times nv vectors of columns from x (its rows ldx apart; out's rows hw apart); the last
 * vector holds `last` lanes. */
ARCH_INLINE void tile(int nv, int masked, struct block b, int r0, int nr, int cin, const float *restrict x, int ldx,
                      int hw, const float *restrict bias, float *restrict out, int act, vmask last)
{
    vf acc[MR][NV_MAX];
    int off[MR];
    int r, v, k;
    ARCH_UNROLL for (r = 0; r < MR; r++) {
        const int rr = r < nr ? r : nr - 1;
        const vf bv = V_SET1(bias[rr]);
        off[r] = row_offset(b, r0 + rr);
        ARCH_UNROLL for (v = 0; v < nv; v++) acc[r][v] = bv;
    }
    for (k = 0; k < cin; k++) {
        const float *restrict xk = x + k * ldx;
        const float *restrict wk = b.base + k * b.p;
        vf xv[NV_MAX];
        ARCH_UNROLL for (v = 0; v < nv; v++) xv[v] = masked && v == nv - 1 ? V_LOADM(xk + v * VL, last)
                                                                            : V_LOAD(xk + v * VL);
        ARCH_UNROLL for (r = 0; r < MR; r++) {
            const vf w = V_BCAST(wk + off[r]);
            ARCH_UNROLL for (v = 0; v < nv; v++) acc[r][v] = V_FMA(w, xv[v], acc[r][v]);
        }
    }
    if (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6) {
        const vf zero = V_SET1(0.0f), six = V_SET1(6.0f);
        ARCH_UNROLL for (r = 0; r < MR; r++) ARCH_UNROLL for (v = 0; v < nv; v++) {
            acc[r][v] = V_MAX(acc[r][v], zero);
            if (act == ARCH_ACT_RELU6) acc[r][v] = V_MIN(acc[r][v], six);
        }
    }
    ARCH_UNROLL for (r = 0; r < MR; r++) {
        if (r >= nr) break;
        ARCH_UNROLL for (v = 0; v < nv; v++) {
            if (masked && v == nv - 1)
                V_STOREM(out + r * hw + v * VL, acc[r][v], last);
            else
                V_STORE(out + r * hw + v * VL, acc[r][v]);
        }
    }
}

/* tile() with nv a constant, so each width is compiled with its registers (nv <= NV_MAX). */
static void tile_n(int nv, int masked, struct block b, int r0, int nr, int cin, const float *restrict x, int ldx,
                   int hw, const float *restrict bias, float *restrict out, int act, vmask last)
{
#define TILE_CASE(n) \
    case n: \
        if (masked) tile(n, 1, b, r0, nr, cin, x, ldx, hw, bias, out, act, last); \
        else tile(n, 0, b, r0, nr, cin, x, ldx, hw, bias, out, act, last); \
        break;
    switch (nv) {
#if NV_MAX >= 4
    TILE_CASE(4)
#endif
#if NV_MAX >= 3
    TILE_CASE(3)
#endif
    TILE_CASE(2)
    default:
        TILE_CASE(1)
    }
#undef TILE_CASE
}

/* The column tiles [j0, j1) of one row tile (j1 - j0 a multiple of nv vectors, or the end of the row). */
static void row_tile(struct block b, int r0, int nr, int cin, const float *restrict in, int hw, int j0, int j1,
                     const float *restrict bias, float *restrict out, int act)
{
    /* the columns' vectors in as few tiles as NV_MAX allows, as even as can be (13 vectors: 3 3 3 2 2) */
    const int vecs = (j1 - j0 + VL - 1) / VL, tiles = (vecs + NV_MAX - 1) / NV_MAX;
    int t, j = j0;
    for (t = 0; t < tiles; t++) {
        const int nv = vecs / tiles + (t < vecs % tiles);
        if (j + nv * VL <= j1)
            tile_n(nv, 0, b, r0, nr, cin, in + j, hw, hw, bias, out + j, act, V_MASK(VL));
        else /* the last, partial tile: its last vector masked */
            tile_n(nv, 1, b, r0, nr, cin, in + j, hw, hw, bias, out + j, act, V_MASK(j1 - j - (nv - 1) * VL));
        j += nv * VL;
    }
    if (act != ARCH_ACT_NONE && act != ARCH_ACT_RELU && act != ARCH_ACT_RELU6) {
        int r;
        for (r = 0; r < nr; r++) arch_activate(out + r * hw + j0, j1 - j0, act);
    }
}

/* Small maps (7x7: 49 pixels are three vectors of 16 and one lane of a fourth): tiles whose vectors
 * run along output channels instead, CV vectors of channels read from the packed panels x np pixels,
 * each pixel's input broadcast, np chosen from hw so the pixels split evenly. The tile is stored
 * through a small buffer, transposed: about VL / cin of the work, so only deep layers take it. */
#if ARCH_SIMD == 512
#define CV 3 /* 3 vectors (48 channels) x up to 8 pixels: 24 zmm accumulate */
#define NP_MAX 8
#else
#define CV 2 /* 2 vectors (16 channels) x up to 6 pixels: 12 ymm accumulate */
#define NP_MAX 6
#endif

/* Output channels [c0, c0 + n) (n <= CV * VL; n < CV * VL only if !full) x np pixels from x. */
ARCH_INLINE void ctile(int np, int full, const float *restrict weight, int panel, int cin, int cout, int c0, int n,
                       const float *restrict x, int hw, const float *restrict bias, float *restrict out, int act)
{
    vf acc[CV][NP_MAX];
    float buf[NP_MAX][CV * VL];
    const float *wv[CV];
    int ks[CV], v, p, k, c;
    vmask mv[CV];
    ARCH_UNROLL for (v = 0; v < CV; v++) {
        const int cv = c0 + v * VL, lanes = n - v * VL <= 0 ? 0 : n - v * VL < VL ? n - v * VL : VL;
        vf b = V_SET1(0.0f);
        mv[v] = V_MASK(lanes);
        wv[v] = weight; /* a vector past cout reads nothing */
        ks[v] = 0;
        if (lanes > 0) {
            const int p0 = cv / panel * panel;
            ks[v] = cout - p0 < panel ? cout - p0 : panel;
            wv[v] = weight + p0 * cin + (cv - p0);
            b = full ? V_LOAD(bias + cv) : V_LOADM(bias + cv, mv[v]);
        }
        ARCH_UNROLL for (p = 0; p < np; p++) acc[v][p] = b;
    }
    for (k = 0; k < cin; k++) {
        vf wk[CV];
        ARCH_UNROLL for (v = 0; v < CV; v++) wk[v] = full ? V_LOAD(wv[v] + k * ks[v]) : V_LOADM(wv[v] + k * ks[v], mv[v]);
        ARCH_UNROLL for (p = 0; p < np; p++) {
            const vf xb = V_BCAST(x + k * hw + p);
            ARCH_UNROLL for (v = 0; v < CV; v++) acc[v][p] = V_FMA(wk[v], xb, acc[v][p]);
        }
    }
    ARCH_UNROLL for (p = 0; p < np; p++) ARCH_UNROLL for (v = 0; v < CV; v++) {
        vf a = acc[v][p];
        if (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6) a = V_MAX(a, V_SET1(0.0f));
        if (act == ARCH_ACT_RELU6) a = V_MIN(a, V_SET1(6.0f));
        V_STORE(buf[p] + v * VL, a);
    }
    for (c = 0; c < n; c++)
        for (p = 0; p < np; p++) out[(c0 + c) * hw + p] = buf[p][c];
}

/* ctile with np and full constants. */
static void ctile_n(int np, int full, const float *restrict weight, int panel, int cin, int cout, int c0, int n,
                    const float *restrict x, int hw, const float *restrict bias, float *restrict out, int act)
{
#define CTILE(m) \
    case m: \
        if (full) ctile(m, 1, weight, panel, cin, cout, c0, n, x, hw, bias, out, act); \
        else ctile(m, 0, weight, panel, cin, cout, c0, n, x, hw, bias, out, act); \
        break;
    switch (np) {
#if NP_MAX >= 8
    CTILE(8)
    CTILE(7)
#endif
    CTILE(6)
    CTILE(5)
    CTILE(4)
    CTILE(3)
    CTILE(2)
    default:
        CTILE(1)
    }
#undef CTILE
}

/* Channel tiles pay when pixel tiles would waste a tenth of their lanes, the layer is deep enough for
 * the transposed store not to matter, and the panels hold whole vectors. */
static int channel_tiles(int cin, int hw, int panel)
{
    const int lanes = (hw + VL - 1) / VL * VL;
    return panel % VL == 0 && cin >= 128 && 10 * hw < 9 * lanes;
}

static void conv1x1_channels(const float *restrict in, int cin, int hw, const float *restrict weight, int panel,
                             const float *restrict bias, int cout, float *restrict out, int act)
{
    int np = NP_MAX, best = -1, m, c0, j;
    for (m = NP_MAX; m >= NP_MAX / 2; m--) { /* the pixel count that splits hw most evenly */
        const int waste = (hw + m - 1) / m * m - hw;
        if (best < 0 || waste < best) {
            best = waste;
            np = m;
        }
    }
    for (c0 = 0; c0 < cout; c0 += CV * VL) {
        const int n = cout - c0 < CV * VL ? cout - c0 : CV * VL;
        for (j = 0; j < hw; j += np)
            ctile_n(hw - j < np ? hw - j : np, n == CV * VL, weight, panel, cin, cout, c0, n, in + j, hw, bias,
                    out + j, act);
    }
    if (act != ARCH_ACT_NONE && act != ARCH_ACT_RELU && act != ARCH_ACT_RELU6) arch_activate(out, cout * hw, act);
}

#if ARCH_SIMD == 256
/* AVX2: a column tile's input (cin rows of up to NV_MAX vectors, hw floats apart) is first copied into
 * one contiguous panel, then every row tile reads it. Measured on MobileNetV1 (Zen 4): 5-10 % on the
 * pointwise layers with 64 or more input channels, nothing below; AVX-512's tiles, three vectors per
 * k, gain nothing from it. */
#define PACK_MIN_CIN 64
#define PACK_FLOATS 16384 /* 64 KB on the stack: cin up to 1024 */

static int packs_input(int cin) { return cin >= PACK_MIN_CIN && cin * NV_MAX * VL <= PACK_FLOATS; }

static void conv1x1_packed(const float *restrict in, int cin, int hw, const float *restrict weight, int panel,
                           const float *restrict bias, int cout, float *restrict out, int act)
{
    const int step = NV_MAX * VL;
    float xp[PACK_FLOATS];
    int j, k, v;
    for (j = 0; j < hw; j += step) {
        const int n = hw - j < step ? hw - j : step, vecs = (n + VL - 1) / VL;
        const vmask last = V_MASK(n - (vecs - 1) * VL);
        int r0 = 0;
        for (k = 0; k < cin; k++)
            for (v = 0; v < vecs; v++) {
                const float *src = in + k * hw + j + v * VL;
                V_STORE(xp + k * step + v * VL, v < vecs - 1 || n == step ? V_LOAD(src) : V_LOADM(src, last));
            }
        while (r0 < cout) {
            struct block b;
            const int nb = block_at(weight, panel, cin, cout, r0, &b);
            int r;
            for (r = 0; r < nb; r += MR)
                tile_n(vecs, n < step, b, r, nb - r < MR ? nb - r : MR, cin, xp, step, hw, bias + r0 + r,
                       out + (r0 + r) * hw + j, act, last);
            r0 += nb;
        }
    }
    if (act != ARCH_ACT_NONE && act != ARCH_ACT_RELU && act != ARCH_ACT_RELU6) arch_activate(out, cout * hw, act);
}
#endif

#ifndef ARCH_GEMM_CHUNK_BYTES
#define ARCH_GEMM_CHUNK_BYTES 65536 /* a column chunk of `in` (cin x chunk floats): in L2, reused by every row */
#endif

/* The columns a chunk is a multiple of: one widest tile (row_tile evens the tiles out over the chunk). */
static int column_step(int hw)
{
    (void)hw;
    return NV_MAX * VL;
}

/* Rows [0, n) of one block over the columns [j0, j1), in tiles of MR rows x up to NV_MAX vectors. */
static void block_columns(struct block b, int n, int cin, const float *restrict in, int hw, int j0, int j1,
                          int step, const float *restrict bias, float *restrict out, int act)
{
    int r;
    (void)step; /* NV_MAX vectors */
    for (r = 0; r < n; r += MR)
        row_tile(b, r, n - r < MR ? n - r : MR, cin, in, hw, j0, j1, bias + r, out + r * hw, act);
}

#else /* portable C99 */

#define MR ARCH_GEMM_MR
#define NR ARCH_GEMM_NR
#ifndef ARCH_GEMM_CHUNK_BYTES
#define ARCH_GEMM_CHUNK_BYTES 131072 /* a column chunk of `in` (cin x chunk floats) is about this big */
#endif

/* Clamp-type activations run on the registers; the others run on the stored tile. */
static int clamps(int act) { return act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6; }

/* One MR x NR tile: rows [r0, r0 + MR) of block b times columns x[.][0..NR) (stride hw). */
static void tile(struct block b, int r0, int cin, const float *restrict x, int hw,
                 const float *restrict bias, float *restrict out, int act)
{
    float acc[MR][NR];
    int off[MR];
    int r, j, k;
    for (r = 0; r < MR; r++) {
        off[r] = row_offset(b, r0 + r);
        for (j = 0; j < NR; j++) acc[r][j] = bias[r];
    }
    for (k = 0; k < cin; k++) {
        const float *restrict xk = x + k * hw;
        const float *restrict wk = b.base + k * b.p;
        for (r = 0; r < MR; r++) {
            const float a = wk[off[r]];
            for (j = 0; j < NR; j++) acc[r][j] += a * xk[j];
        }
    }
    if (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6) {
        for (r = 0; r < MR; r++)
            for (j = 0; j < NR; j++) acc[r][j] = acc[r][j] < 0.0f ? 0.0f : acc[r][j]; /* NaN passes */
        if (act == ARCH_ACT_RELU6)
            for (r = 0; r < MR; r++)
                for (j = 0; j < NR; j++) acc[r][j] = acc[r][j] > 6.0f ? 6.0f : acc[r][j];
    }
    for (r = 0; r < MR; r++)
        for (j = 0; j < NR; j++) out[r * hw + j] = acc[r][j];
    if (!clamps(act))
        for (r = 0; r < MR; r++) arch_activate(out + r * hw, NR, act);
}

/* Rows [r0, r0 + rows) of block b x any columns, for the edges: accumulates in the output row itself. */
static void edge(struct block b, int r0, int rows, int cin, const float *restrict x, int hw, int cols,
                 const float *restrict bias, float *restrict out, int act)
{
    int r, j, k;
    for (r = 0; r < rows; r++) {
        const float *restrict wr = b.base + row_offset(b, r0 + r);
        float *restrict o = out + r * hw;
        for (j = 0; j < cols; j++) o[j] = bias[r];
        for (k = 0; k < cin; k++) {
            const float a = wr[k * b.p];
            const float *restrict xk = x + k * hw;
            for (j = 0; j < cols; j++) o[j] += a * xk[j];
        }
        arch_activate(o, cols, act);
    }
}

/* The columns a tile covers. */
static int column_step(int hw)
{
    (void)hw;
    return NR;
}

/* Rows [0, n) of one block over the columns [j0, j1). */
static void block_columns(struct block b, int n, int cin, const float *restrict in, int hw, int j0, int j1,
                          int step, const float *restrict bias, float *restrict out, int act)
{
    int r, j;
    (void)step; /* NR */
    for (r = 0; r + MR <= n; r += MR) {
        float *orow = out + r * hw;
        for (j = j0; j + NR <= j1; j += NR) tile(b, r, cin, in + j, hw, bias + r, orow + j, act);
        if (j < j1) {
            if (hw >= NR) /* the last tile overlaps the one before: recomputing columns is harmless */
                tile(b, r, cin, in + (j1 - NR), hw, bias + r, orow + (j1 - NR), act);
            else
                edge(b, r, MR, cin, in + j, hw, j1 - j, bias + r, orow + j, act);
        }
    }
    if (r < n) edge(b, r, n - r, cin, in + j0, hw, j1 - j0, bias + r, out + r * hw + j0, act);
}

#endif

/* Column chunks of about ARCH_GEMM_CHUNK_BYTES of input, so a chunk stays in cache while every block of
 * rows passes over it; within a chunk, each block of rows (a run of equal-width panels) in tiles. */
void arch_conv1x1(const float *restrict in, int cin, int hw,
                  const float *restrict weight, int panel, const float *restrict bias, int cout,
                  float *restrict out, int act)
{
    const int step = column_step(hw);
#if ARCH_SIMD
    if (channel_tiles(cin, hw, panel)) {
        conv1x1_channels(in, cin, hw, weight, panel, bias, cout, out, act);
        return;
    }
#if ARCH_SIMD == 256
    if (packs_input(cin)) {
        conv1x1_packed(in, cin, hw, weight, panel, bias, cout, out, act);
        return;
    }
#endif
#endif
    int chunk = ARCH_GEMM_CHUNK_BYTES / 4 / (cin > 0 ? cin : 1) / step * step, j0;
    if (chunk < step) chunk = step;
    for (j0 = 0; j0 < hw; j0 += chunk) {
        const int j1 = j0 + chunk < hw ? j0 + chunk : hw;
        int r0 = 0;
        while (r0 < cout) {
            struct block b;
            const int n = block_at(weight, panel, cin, cout, r0, &b);
            block_columns(b, n, cin, in, hw, j0, j1, step, bias + r0, out + r0 * hw, act);
            r0 += n;
        }
    }
}
