/* 1x1 convolution (stride 1, no padding, one group) as a matrix product, the kernel that does
 * most of a MobileNet's mult-adds: out[cout][hw] = W[cout][cin] * in[cin][hw] + bias.
 *
 * Register blocking: a tile of GEMM_MR output channels x GEMM_NR pixels is accumulated in
 * registers over all of cin, then stored once (with the bias and the epilogue activation).
 * The pixel loop is innermost and contiguous in NCHW, so compilers vectorise it; the columns
 * are walked in chunks of about L2 size so a chunk of `in` is reused by every tile row. The tile
 * sizes suit the target's register file; a build can override them with -DARCH_GEMM_MR=... */
#include "archdsl_rt.h"

#define MR ARCH_GEMM_MR
#define NR ARCH_GEMM_NR
#ifndef ARCH_GEMM_CHUNK_BYTES
#define ARCH_GEMM_CHUNK_BYTES 131072 /* a column chunk of `in` (cin x chunk floats) is about this big */
#endif

/* Clamp-type activations run on the registers; the others run on the stored tile. */
static int clamps(int act) { return act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6; }

/* One MR x NR tile: rows w[0..MR) (stride cin) times columns x[.][0..NR) (stride hw). */
static void tile(const float *restrict w, int cin, const float *restrict x, int hw,
                 const float *restrict bias, float *restrict out, int act)
{
    float acc[MR][NR];
    int r, j, k;
    for (r = 0; r < MR; r++)
        for (j = 0; j < NR; j++) acc[r][j] = bias[r];
    for (k = 0; k < cin; k++) {
        const float *restrict xk = x + k * hw;
        for (r = 0; r < MR; r++) {
            const float a = w[r * cin + k];
            for (j = 0; j < NR; j++) acc[r][j] += a * xk[j];
        }
    }
    if (act == ARCH_ACT_RELU || act == ARCH_ACT_RELU6) {
        for (r = 0; r < MR; r++)
            for (j = 0; j < NR; j++) acc[r][j] = acc[r][j] > 0.0f ? acc[r][j] : 0.0f;
        if (act == ARCH_ACT_RELU6)
            for (r = 0; r < MR; r++)
                for (j = 0; j < NR; j++) acc[r][j] = acc[r][j] < 6.0f ? acc[r][j] : 6.0f;
    }
    for (r = 0; r < MR; r++)
        for (j = 0; j < NR; j++) out[r * hw + j] = acc[r][j];
    if (!clamps(act))
        for (r = 0; r < MR; r++) arch_activate(out + r * hw, NR, act);
}

/* Any rows x columns block, for the edges: accumulates in the output row itself. */
static void edge(const float *restrict w, int rows, int cin, const float *restrict x, int hw, int cols,
                 const float *restrict bias, float *restrict out, int act)
{
    int r, j, k;
    for (r = 0; r < rows; r++) {
        float *restrict o = out + r * hw;
        for (j = 0; j < cols; j++) o[j] = bias[r];
        for (k = 0; k < cin; k++) {
            const float a = w[r * cin + k];
            const float *restrict xk = x + k * hw;
            for (j = 0; j < cols; j++) o[j] += a * xk[j];
        }
        arch_activate(o, cols, act);
    }
}

void arch_conv1x1(const float *restrict in, int cin, int hw,
                  const float *restrict weight, const float *restrict bias, int cout,
                  float *restrict out, int act)
{
    int chunk = (ARCH_GEMM_CHUNK_BYTES / 4 / (cin > 0 ? cin : 1)) / NR * NR;
    int j0, co, j;
    if (chunk < NR) chunk = NR;
    for (j0 = 0; j0 < hw; j0 += chunk) {
        const int j1 = j0 + chunk < hw ? j0 + chunk : hw;
        for (co = 0; co + MR <= cout; co += MR) {
            const float *wr = weight + co * cin;
            float *orow = out + co * hw;
            for (j = j0; j + NR <= j1; j += NR) tile(wr, cin, in + j, hw, bias + co, orow + j, act);
            if (j < j1) {
                if (hw >= NR) /* the last tile overlaps the one before: recomputing columns is harmless */
                    tile(wr, cin, in + (j1 - NR), hw, bias + co, orow + (j1 - NR), act);
                else
                    edge(wr, MR, cin, in + j, hw, j1 - j, bias + co, orow + j, act);
            }
        }
        if (co < cout)
            edge(weight + co * cin, cout - co, cin, in + j0, hw, j1 - j0, bias + co, out + co * hw + j0, act);
    }
}
