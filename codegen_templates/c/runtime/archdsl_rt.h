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

/* Register tile of the matrix-product kernels (rt_gemm.c, and rt_conv.c at stride 1): MR output
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

/* The activation run in a kernel's epilogue (or alone, by arch_activation). */
enum arch_act {
    ARCH_ACT_NONE = 0,
    ARCH_ACT_RELU,     /* max(x, 0) */
    ARCH_ACT_RELU6,    /* min(max(x, 0), 6) */
    ARCH_ACT_SIGMOID,  /* 1 / (1 + exp(-x)) */
    ARCH_ACT_HSIGMOID, /* relu6(x + 3) / 6 */
    ARCH_ACT_HSWISH    /* x * relu6(x + 3) / 6 */
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

/* rt_gemm.c: 1x1 convolution, stride 1, no padding, groups 1: out[cout][hw] = W[cout][cin] x in[cin][hw] + b. */
void arch_conv1x1(const float *restrict in, int cin, int hw,
                  const float *restrict weight, const float *restrict bias, int cout,
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

/* rt_softmax.c: softmax over the c channels of each of the hw pixels. */
void arch_softmax(const float *restrict in, int c, int hw, float *restrict out);

#endif /* ARCHDSL_RT_H */
