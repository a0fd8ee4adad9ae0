/* Patch-based execution (analysis/patch.py), float and int8 builds alike.
 *
 * A tile of a map is a C x h x w block (NCHW) holding rows [y0, y0 + h) and columns [x0, x0 + w)
 * of a C x H x W map. The kernels run on tiles as on whole maps; these move tiles in and out, as
 * rows of `elem`-byte values (sizeof(float) or sizeof(int8_t)). */
#include <string.h>

#include "rt_tile.h"

/* The h x w region at (y0, x0) of a c x sh x sw tile (or map) `src`, into the tile `dst`. */
void arch_crop(const void *restrict src, size_t elem, int c, int sh, int sw, int y0, int x0, int h, int w,
               void *restrict dst)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    int ch, y;
    for (ch = 0; ch < c; ch++)
        for (y = 0; y < h; y++)
            memcpy(d + ((size_t)(ch * h + y) * w) * elem, s + ((size_t)((ch * sh) + y0 + y) * sw + x0) * elem,
                   (size_t)w * elem);
}

/* The c x h x w tile `src` into the c x dh x dw map `dst` at (y0, x0). */
void arch_paste(const void *restrict src, size_t elem, int c, int h, int w, void *restrict dst, int dh, int dw,
                int y0, int x0)
{
    const unsigned char *s = src;
    unsigned char *d = dst;
    int ch, y;
    for (ch = 0; ch < c; ch++)
        for (y = 0; y < h; y++)
            memcpy(d + ((size_t)((ch * dh) + y0 + y) * dw + x0) * elem, s + ((size_t)(ch * h + y) * w) * elem,
                   (size_t)w * elem);
}
