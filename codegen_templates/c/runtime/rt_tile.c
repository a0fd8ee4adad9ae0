/* Patch-based execution (analysis/patch.py).
 *
 * A tile of a map is a C x h x w block (NCHW) holding rows [y0, y0 + h) and columns [x0, x0 + w)
 * of a C x H x W map. The kernels run on tiles as on whole maps; these move tiles in and out. */
#include "archdsl_rt.h"
#include "rt_tile.h"

/* The h x w region at (y0, x0) of a c x sh x sw tile (or map) `src`, into the tile `dst`. */
void arch_crop(const float *restrict src, int c, int sh, int sw, int y0, int x0, int h, int w,
               float *restrict dst)
{
    int ch, y, x;
    for (ch = 0; ch < c; ch++) {
        for (y = 0; y < h; y++) {
            const float *restrict s = src + ((ch * sh) + y0 + y) * sw + x0;
            float *restrict d = dst + (ch * h + y) * w;
            for (x = 0; x < w; x++) d[x] = s[x];
        }
    }
}

/* The c x h x w tile `src` into the c x dh x dw map `dst` at (y0, x0). */
void arch_paste(const float *restrict src, int c, int h, int w, float *restrict dst, int dh, int dw,
                int y0, int x0)
{
    int ch, y, x;
    for (ch = 0; ch < c; ch++) {
        for (y = 0; y < h; y++) {
            const float *restrict s = src + (ch * h + y) * w;
            float *restrict d = dst + ((ch * dh) + y0 + y) * dw + x0;
            for (x = 0; x < w; x++) d[x] = s[x];
        }
    }
}
