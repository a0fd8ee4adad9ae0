/* Pooling. Windows are clipped to the map: padding is never counted, in the average or in the max. */
#include "archdsl_rt.h"

/* The valid [lo, hi) range of window taps for output index o: start = o * s - pad. */
static void window(int o, int s, int pad, int k, int n, int *lo, int *hi)
{
    const int start = o * s - pad;
    *lo = start < 0 ? -start : 0;
    *hi = start + k > n ? n - start : k;
}

void arch_avg_pool(const float *restrict in, int c, int h, int w, int kh, int kw, int sh, int sw,
                   int pad_top, int pad_left, float *restrict out, int oh, int ow)
{
    int ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ch++) {
        const float *plane = in + ch * h * w;
        for (oy = 0; oy < oh; oy++) {
            int y0, y1;
            window(oy, sh, pad_top, kh, h, &y0, &y1);
            for (ox = 0; ox < ow; ox++) {
                int x0, x1;
                const int iy = oy * sh - pad_top, ix = ox * sw - pad_left;
                float sum = 0.0f;
                window(ox, sw, pad_left, kw, w, &x0, &x1);
                for (ky = y0; ky < y1; ky++)
                    for (kx = x0; kx < x1; kx++) sum += plane[(iy + ky) * w + ix + kx];
                *out++ = sum / (float)((y1 - y0) * (x1 - x0));
            }
        }
    }
}

void arch_max_pool(const float *restrict in, int c, int h, int w, int kh, int kw, int sh, int sw,
                   int pad_top, int pad_left, float *restrict out, int oh, int ow)
{
    int ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ch++) {
        const float *plane = in + ch * h * w;
        for (oy = 0; oy < oh; oy++) {
            int y0, y1;
            window(oy, sh, pad_top, kh, h, &y0, &y1);
            for (ox = 0; ox < ow; ox++) {
                int x0, x1;
                const int iy = oy * sh - pad_top, ix = ox * sw - pad_left;
                float mx;
                window(ox, sw, pad_left, kw, w, &x0, &x1);
                mx = plane[(iy + y0) * w + ix + x0];
                for (ky = y0; ky < y1; ky++)
                    for (kx = x0; kx < x1; kx++) {
                        const float v = plane[(iy + ky) * w + ix + kx];
                        mx = v > mx || v != v ? v : mx; /* a NaN wins, as in NumPy and torch */
                    }
                *out++ = mx;
            }
        }
    }
}

void arch_global_avg_pool(const float *restrict in, int c, int hw, float *restrict out)
{
    int ch, i;
    for (ch = 0; ch < c; ch++) {
        const float *p = in + ch * hw;
        float sum = 0.0f;
        for (i = 0; i < hw; i++) sum += p[i];
        out[ch] = sum / (float)hw;
    }
}

void arch_global_max_pool(const float *restrict in, int c, int hw, float *restrict out)
{
    int ch, i;
    for (ch = 0; ch < c; ch++) {
        const float *p = in + ch * hw;
        float mx = p[0];
        for (i = 1; i < hw; i++) mx = p[i] > mx || p[i] != p[i] ? p[i] : mx;
        out[ch] = mx;
    }
}
