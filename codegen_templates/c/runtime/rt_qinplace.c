/* int8 in-place layers (analysis/memory.py): the output overwrites the input through a small
 * buffer. The arithmetic is the ordinary kernel's (rt_qdwconv.c) on parts of the map,
 * so every value equals the run with separate buffers. */
#include "archdsl_qrt.h"
#include "rt_qinplace.h"

/* A depthwise convolution (multiplier 1) whose output overwrites its input `buf`: channel o is
 * computed into the one-plane `scratch` from input plane o, then copied to output plane o, which
 * ends at or before the end of input plane o (oh * ow <= h * w), so no unread plane is touched.
 * Each channel is the ordinary kernel's call on one plane: arch_qconv_dw_rows where the compiler
 * chose it (`rows`, with its constants), else arch_qconv_dw. */
void arch_qconv_dw_inplace(int8_t *buf, int8_t *restrict scratch, int c, int h, int w, int32_t in_zp,
                           const int8_t *restrict weight, const int32_t *restrict bias,
                           int kh, int kw, int sh, int sw, int pad_top, int pad_left, int oh, int ow,
                           const struct arch_qout *q, int rows)
{
    const int plane = oh * ow;
    int o, i;
    for (o = 0; o < c; o++) {
        struct arch_qout one = *q;  /* channel o's requantization */
        const int8_t *in = buf + o * h * w;
        int8_t *out = buf + o * plane;
        one.multiplier += o * q->per_channel;
        one.shift += o * q->per_channel;
        one.per_channel = 0;
        if (rows)
            arch_qconv_dw_rows(in, 1, h, w, in_zp, weight + o * kh * kw, bias + o, kh, kw, sh, sw,
                               pad_top, pad_left, scratch, oh, ow, &one);
        else
            arch_qconv_dw(in, 1, h, w, in_zp, weight + o * kh * kw, bias + o, 1, kh, kw, sh, sw,
                          pad_top, pad_left, scratch, oh, ow, &one);
        for (i = 0; i < plane; i++) out[i] = scratch[i];
    }
}
