/* In-place depthwise convolution (analysis/memory.py): the output overwrites the input. */
#include "archdsl_rt.h"
#include "rt_tile.h"

/* A depthwise convolution (multiplier 1) whose output overwrites its input `buf`: channel o is
 * computed into the one-plane `scratch` from input plane o, then copied to output plane o, which
 * ends at or before the end of input plane o (oh * ow <= h * w), so no unread plane is touched. */
void arch_conv_dw_inplace(float *buf, float *restrict scratch, int c, int h, int w,
                          const float *restrict weight, const float *restrict bias,
                          int kh, int kw, int sh, int sw, int pad_top, int pad_left, int oh, int ow, int act)
{
    const int plane = oh * ow;
    int o, i;
    for (o = 0; o < c; o++) {
        float *out = buf + o * plane;
        arch_conv_dw(buf + o * h * w, 1, h, w, weight + o * kh * kw, bias + o, 1, kh, kw, sh, sw,
                     pad_top, pad_left, scratch, oh, ow, act);
        for (i = 0; i < plane; i++) out[i] = scratch[i];
    }
}
