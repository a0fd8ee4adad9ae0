/* Fully connected layer: a matrix-vector product, W (n_out x n_in) row-major. */
#define ARCH_RT_VECTORS
#include "archdsl_rt.h"

#define FC_LANES 8 /* independent partial sums, so the dot product vectorises without -ffast-math */

#if ARCH_SIMD
/* Fast path: four rows at a time, two vectors of partial sums per row (eight chains cover the FMA
 * latency); the weights stream through once, so the input vectors are loaded once per four rows. */
#if ARCH_SIMD == 512
static float hsum(vf v) { return _mm512_reduce_add_ps(v); }
#else
static float hsum(vf v)
{
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_shuffle_ps(t, t, 1)));
}
#endif

#define FC_ROWS 4

static void fc_rows(const float *restrict in, int n_in, const float *restrict w, float *restrict out)
{
    vf acc[FC_ROWS][2];
    int r, i;
    ARCH_UNROLL for (r = 0; r < FC_ROWS; r++) acc[r][0] = acc[r][1] = V_SET1(0.0f);
    for (i = 0; i + 2 * VL <= n_in; i += 2 * VL) {
        const vf x0 = V_LOAD(in + i), x1 = V_LOAD(in + i + VL);
        ARCH_UNROLL for (r = 0; r < FC_ROWS; r++) {
            acc[r][0] = V_FMA(V_LOAD(w + r * n_in + i), x0, acc[r][0]);
            acc[r][1] = V_FMA(V_LOAD(w + r * n_in + i + VL), x1, acc[r][1]);
        }
    }
    for (; i < n_in; i += VL) { /* the tail, masked */
        const int n = n_in - i < VL ? n_in - i : VL;
        const vf x0 = V_LOADM(in + i, V_MASK(n));
        ARCH_UNROLL for (r = 0; r < FC_ROWS; r++) acc[r][0] = V_FMA(V_LOADM(w + r * n_in + i, V_MASK(n)), x0, acc[r][0]);
    }
    ARCH_UNROLL for (r = 0; r < FC_ROWS; r++) out[r] = hsum(V_ADD(acc[r][0], acc[r][1]));
}
#endif

void arch_fc(const float *restrict in, int n_in, const float *restrict weight, const float *restrict bias,
             int n_out, float *restrict out, int act)
{
    int o = 0, i, l;
#if ARCH_SIMD
    for (; o + FC_ROWS <= n_out; o += FC_ROWS) {
        fc_rows(in, n_in, weight + o * n_in, out + o);
        for (l = 0; l < FC_ROWS; l++) out[o + l] += bias[o + l];
    }
#endif
    for (; o < n_out; o++) {
        const float *restrict row = weight + o * n_in;
        float part[FC_LANES] = {0.0f};
        float sum = 0.0f;
        for (i = 0; i + FC_LANES <= n_in; i += FC_LANES)
            for (l = 0; l < FC_LANES; l++) part[l] += row[i + l] * in[i + l];
        for (; i < n_in; i++) sum += row[i] * in[i];
        for (l = 0; l < FC_LANES; l++) sum += part[l];
        out[o] = sum + bias[o];
    }
    arch_activate(out, n_out, act);
}
