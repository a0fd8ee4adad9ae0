/* archdsl C runtime: hand-written float32 kernels called by the generated model code.
 *
 * Layout: every tensor is one image (batch 1) in NCHW order, float32, contiguous:
 * element (c, y, x) of a C x H x W map is at [(c * H + y) * W + x].
 * Weights: conv (Cout, Cin/groups, kh, kw); fc (out, in); BatchNorm is folded into
 * the conv/fc weights by the code generator. No kernel allocates memory or does I/O;
 * every shape is passed in by the generated code (taken from the IR).
 * Kernels whose output may be written over their first input (element-wise steps
 * planned in place) say so; all others need output and inputs apart (`restrict`).
 */
#ifndef ARCHDSL_RT_H
#define ARCHDSL_RT_H

/* Register tile of the portable matrix-product kernels (rt_gemm.c, and rt_conv.c at stride 1): MR output
 * channels x NR pixels, sized for the target's registers; override with -DARCH_GEMM_MR=... */
/* Measured with gcc 12 -O3 (MobileNetV1): shapes whose row is two vectors of 8 or of 4 (6x16 with
 * AVX2, 4x8 with SSE2) are vectorised across the tile's rows with shuffles and run 8-20 times
 * slower than these, so keep a row three or more vectors long. */
#ifndef ARCH_GEMM_MR
#if defined(__AVX512F__)
#define ARCH_GEMM_MR 8
#define ARCH_GEMM_NR 32
#elif defined(__AVX__)
#define ARCH_GEMM_MR 4
#define ARCH_GEMM_NR 24
#elif defined(__SSE2__) || defined(__ARM_NEON)
#define ARCH_GEMM_MR 2
#define ARCH_GEMM_NR 24
#else /* scalar FPU (Cortex-M4/M7: 32 single-precision registers) */
#define ARCH_GEMM_MR 4
#define ARCH_GEMM_NR 4
#endif
#endif

/* Pointwise weights are packed offline in panels of ARCH_PANEL output channels (the last panel may be
 * narrower), k-major inside a panel: weight (co, k) is at panel_base + k * panel_width + co % ARCH_PANEL,
 * so a register tile reads its rows' weights for one k as consecutive floats. 16 is a multiple of
 * every fast path's row tile (8 with AVX-512, 4 with AVX2) and is one AVX-512 vector. */
#define ARCH_PANEL 16

/* The explicit-SIMD kernels (x86-64 AVX2 + FMA, AVX-512F), chosen by the compiler's feature macros;
 * -DARCH_PORTABLE forces the portable C99 path everywhere (the reference the fast path is tested
 * against). ARCH_SIMD is 0 on every other target, which runs the portable path. */
#if !defined(ARCH_PORTABLE) && defined(__AVX512F__)
#define ARCH_SIMD 512
#elif !defined(ARCH_PORTABLE) && defined(__AVX2__) && defined(__FMA__)
#define ARCH_SIMD 256
#else
#define ARCH_SIMD 0
#endif

/* The activation run in a kernel's epilogue (or alone, by arch_activation). */
enum arch_act {
@ARCH_ACT_VALUES@
};

/* rt_act.c: apply `act` to x[0..n) in place. */
void arch_activate(float *x, int n, int act);

/* rt_conv.c: standard or grouped convolution, any kernel, stride and padding.
 * in: cin x h x w; out: cout x oh x ow; pad_top/pad_left are the padding before the
 * map (the padding after it follows from oh/ow). bias has cout entries. */
void arch_conv2d(const float *restrict in, int cin, int h, int w,
                 const float *restrict weight, const float *restrict bias,
                 int cout, int groups, int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                 float *restrict out, int oh, int ow, int act);

/* rt_gemm.c: 1x1 convolution, stride 1, no padding, groups 1: out[cout][hw] = W[cout][cin] x in[cin][hw] + b.
 * weight is packed in panels of `panel` output channels (see ARCH_PANEL; panel 1 is plain (cout, cin)). */
void arch_conv1x1(const float *restrict in, int cin, int hw,
                  const float *restrict weight, int panel, const float *restrict bias, int cout,
                  float *restrict out, int act);

/* rt_dwconv.c: depthwise convolution with channel multiplier m: output channel o reads input
 * channel o / m; weight is (c * m, 1, kh, kw). */
void arch_conv_dw(const float *restrict in, int c, int h, int w,
                  const float *restrict weight, const float *restrict bias, int m,
                  int kh, int kw, int sh, int sw, int pad_top, int pad_left,
                  float *restrict out, int oh, int ow, int act);

/* rt_fc.c: fully connected: out[o] = bias[o] + sum_i W[o][i] * in[i]. */
void arch_fc(const float *restrict in, int n_in, const float *restrict weight, const float *restrict bias,
             int n_out, float *restrict out, int act);

/* rt_pool.c: pooling over kh x kw windows; padding is never counted (average over the
 * valid elements; max over the valid elements). */
void arch_avg_pool(const float *restrict in, int c, int h, int w, int kh, int kw, int sh, int sw,
                   int pad_top, int pad_left, float *restrict out, int oh, int ow);
void arch_max_pool(const float *restrict in, int c, int h, int w, int kh, int kw, int sh, int sw,
                   int pad_top, int pad_left, float *restrict out, int oh, int ow);
void arch_global_avg_pool(const float *restrict in, int c, int hw, float *restrict out);
void arch_global_max_pool(const float *restrict in, int c, int hw, float *restrict out);

/* rt_eltwise.c: element-wise kernels; `out` may be the same buffer as the first input. */
void arch_add(const float *a, const float *b, float *out, int n, int act);
/* x is c x hw; gate is c values (gate_hw == 1, broadcast over the map) or c x hw. */
void arch_mul(const float *x, const float *gate, int c, int hw, int gate_hw, float *out);
/* out = in * scale[c] + shift[c] per channel (a BatchNorm that could not be folded), then act. */
void arch_affine(const float *in, const float *scale, const float *shift, int c, int hw, float *out, int act);
/* out = act(in). */
void arch_activation(const float *in, float *out, int n, int act);
/* out[0..n) = in[0..n) (concat copies each branch to its channel offset); out and in apart. */
void arch_copy(const float *restrict in, float *restrict out, int n);
/* ShuffleNet's channel shuffle of a c x hw map: output channel j*groups + i is input channel
 * i*(c/groups) + j. out and in apart. */
void arch_channel_shuffle(const float *restrict in, float *restrict out, int c, int hw, int groups);

/* rt_softmax.c: softmax over the c channels of each of the hw pixels. */
void arch_softmax(const float *restrict in, int c, int hw, float *restrict out);

/* Vector helpers of the fast kernels: one name per operation, so each kernel is written once for
 * both widths. Only kernel files ask for them (ARCH_RT_VECTORS), so the model code never sees
 * <immintrin.h>. VL is the lanes per vector; masks select the first n lanes (n <= VL). */
#if defined(ARCH_RT_VECTORS) && ARCH_SIMD
#include <immintrin.h>
#if ARCH_SIMD == 512
#define VL 16
typedef __m512 vf;
typedef __mmask16 vmask;
#define V_LOAD(p) _mm512_loadu_ps(p)
#define V_LOADM(p, m) _mm512_maskz_loadu_ps(m, p)
#define V_STORE(p, v) _mm512_storeu_ps(p, v)
#define V_STOREM(p, v, m) _mm512_mask_storeu_ps(p, m, v)
#define V_SET1(x) _mm512_set1_ps(x)
#define V_BCAST(p) _mm512_set1_ps(*(p))
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm512_add_ps(a, b)
#define V_MUL(a, b) _mm512_mul_ps(a, b)
#define V_MAX(a, b) _mm512_max_ps(a, b)
#define V_MIN(a, b) _mm512_min_ps(a, b)
#define V_MASK(n) ((__mmask16)((1u << (n)) - 1u))
#else
#define VL 8
typedef __m256 vf;
typedef __m256i vmask;
#define V_LOAD(p) _mm256_loadu_ps(p)
#define V_LOADM(p, m) _mm256_maskload_ps(p, m)
#define V_STORE(p, v) _mm256_storeu_ps(p, v)
#define V_STOREM(p, v, m) v_store_first(p, v, m)
#define V_SET1(x) _mm256_set1_ps(x)
#define V_BCAST(p) _mm256_broadcast_ss(p)
#define V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define V_ADD(a, b) _mm256_add_ps(a, b)
#define V_MUL(a, b) _mm256_mul_ps(a, b)
#define V_MAX(a, b) _mm256_max_ps(a, b)
#define V_MIN(a, b) _mm256_min_ps(a, b)
#define V_MASK(n) _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#endif
#if defined(__GNUC__)
#define ARCH_INLINE static inline __attribute__((always_inline))
#else
#define ARCH_INLINE static inline
#endif
#if ARCH_SIMD == 256
/* The first lanes of v selected by the prefix mask m, stored with at most three plain stores: AVX's
 * masked store (vmaskmovps to memory) is microcoded on AMD cores and costs 10-20 times a store. */
ARCH_INLINE void v_store_first(float *p, __m256 v, __m256i m)
{
    int n = 0, bits = _mm256_movemask_ps(_mm256_castsi256_ps(m));
    __m128 part = _mm256_castps256_ps128(v);
    while (bits & (1 << n)) n++;
    if (n == 8) {
        _mm256_storeu_ps(p, v);
        return;
    }
    if (n >= 4) {
        _mm_storeu_ps(p, part);
        part = _mm256_extractf128_ps(v, 1);
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        _mm_storeu_si64(p, _mm_castps_si128(part));
        part = _mm_movehl_ps(part, part);
        p += 2;
        n -= 2;
    }
    if (n) _mm_store_ss(p, part);
}
#endif
/* Lanes [base, base + VL) of a zero-padded row: p[x] = row[x - pad] for 0 <= x - pad < n, else 0
 * (row NULL: all zeros); reads only row[0 .. n). */
ARCH_INLINE vf padded_vec(const float *row, int n, int pad, int base)
{
    const int i = base - pad; /* the row index of lane 0 */
    if (!row || i >= n) return V_SET1(0.0f);
    if (i >= 0) return i + VL <= n ? V_LOAD(row + i) : V_LOADM(row + i, V_MASK(n - i));
    if (-i >= VL) return V_SET1(0.0f);
    { /* -i lanes of zeros, then row[0 ..): the row's first lanes moved up */
        const vf v = V_LOADM(row, V_MASK(n < VL + i ? n : VL + i));
#if ARCH_SIMD == 512
        const __m512i idx = _mm512_sub_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32(-i));
        return _mm512_maskz_permutexvar_ps((__mmask16)~V_MASK(-i), idx, v);
#else
        const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256 moved = _mm256_permutevar8x32_ps(v, _mm256_sub_epi32(iota, _mm256_set1_epi32(-i)));
        return _mm256_and_ps(moved, _mm256_castsi256_ps(_mm256_cmpgt_epi32(iota, _mm256_set1_epi32(-i - 1))));
#endif
    }
}

/* The even (e) and odd (o) lanes of p[lo .. lo + 2 VL). */
ARCH_INLINE void split_lanes(vf lo, vf hi, vf *e, vf *o)
{
#if ARCH_SIMD == 512
    *e = _mm512_permutex2var_ps(lo, _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30), hi);
    *o = _mm512_permutex2var_ps(lo, _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31), hi);
#else /* [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6] -> [lo0 lo2 lo4 lo6 hi0 hi2 hi4 hi6], odd lanes likewise */
    const __m256 a = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)), b = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1));
    *e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(a), _MM_SHUFFLE(3, 1, 2, 0)));
    *o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(b), _MM_SHUFFLE(3, 1, 2, 0)));
#endif
}

/* Loops over a register tile's rows and vectors must be unrolled for the tile to live in registers
 * (at -O2 gcc keeps an array of vectors in memory otherwise). */
#if defined(__GNUC__)
#define ARCH_UNROLL _Pragma("GCC unroll 16")
#else
#define ARCH_UNROLL
#endif
#endif

#endif /* ARCHDSL_RT_H */
