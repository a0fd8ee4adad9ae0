/* Patch-based execution of the first stages (rt_tile.c, float and int8) and float in-place
 * depthwise (rt_dwconv_inplace.c). Included by a model built with either (compile --patch-grid /
 * --in-place-dw). */
#ifndef ARCHDSL_RT_TILE_H
#define ARCHDSL_RT_TILE_H

#include <stddef.h>

void arch_crop(const void *restrict src, size_t elem, int c, int sh, int sw, int y0, int x0, int h, int w,
               void *restrict dst);
void arch_paste(const void *restrict src, size_t elem, int c, int h, int w, void *restrict dst, int dh, int dw,
                int y0, int x0);
void arch_conv_dw_inplace(float *buf, float *restrict scratch, int c, int h, int w,
                          const float *restrict weight, const float *restrict bias,
                          int kh, int kw, int sh, int sw, int pad_top, int pad_left, int oh, int ow, int act);

#endif /* ARCHDSL_RT_TILE_H */
