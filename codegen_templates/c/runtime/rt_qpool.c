/* int8 pooling: TFLite's integer AveragePool and MaxPool on NCHW, over the valid taps of each
 * window. Input and output share (scale, zero point), so there is no requantization. */
#include <string.h>

#include "archdsl_qrt.h"

/* The sum of n int8 values; on the DSP extension 4 a word: SXTB16 and SMLAD by (1, 1). */
static int32_t q_sum(const int8_t *restrict p, int n)
{
    int32_t sum = 0;
    int i = 0;
#if defined(ARCH_Q_DSP)
    for (; i + 4 <= n; i += 4) {
        int32_t v;
        memcpy(&v, p + i, 4);
        sum = __smlad(__sxtb16(v), 0x00010001, sum);
        sum = __smlad(arch_q_sxtb16_ror8(v), 0x00010001, sum);
    }
#endif
    for (; i < n; i++) sum += p[i];
    return sum;
}

void arch_qavg_pool(const int8_t *restrict in, int c, int h, int w, int kh, int kw, int sh, int sw,
                    int pad_top, int pad_left, int8_t *restrict out, int oh, int ow,
                    int32_t act_min, int32_t act_max)
{
    int ch, oy, ox, ky;
    for (ch = 0; ch < c; ch++) {
        const int8_t *plane = in + ch * h * w;
        for (oy = 0; oy < oh; oy++) {
            const int iy = oy * sh - pad_top;
            int y0, y1;
            arch_q_taps(oy, sh, pad_top, kh, h, &y0, &y1);
            for (ox = 0; ox < ow; ox++) {
                const int ix = ox * sw - pad_left;
                int x0, x1;
                int32_t count, sum = 0, avg;
                arch_q_taps(ox, sw, pad_left, kw, w, &x0, &x1);
                count = (y1 - y0) * (x1 - x0);
                if (x1 - x0 == w) { /* whole rows (a global pool): one run of values */
                    sum = q_sum(plane + (iy + y0) * w, (y1 - y0) * w);
                } else {
                    for (ky = y0; ky < y1; ky++) sum += q_sum(plane + (iy + ky) * w + ix + x0, x1 - x0);
                }
                /* round half away from zero, on the raw values (not on q - zp: ties differ) */
                avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                *out++ = arch_q_clamp(avg, act_min, act_max);
            }
        }
    }
}

void arch_qmax_pool(const int8_t *restrict in, int c, int h, int w, int kh, int kw, int sh, int sw,
                    int pad_top, int pad_left, int8_t *restrict out, int oh, int ow,
                    int32_t act_min, int32_t act_max)
{
    int ch, oy, ox, ky, kx;
    for (ch = 0; ch < c; ch++) {
        const int8_t *plane = in + ch * h * w;
        for (oy = 0; oy < oh; oy++) {
            const int iy = oy * sh - pad_top;
            int y0, y1;
            arch_q_taps(oy, sh, pad_top, kh, h, &y0, &y1);
            for (ox = 0; ox < ow; ox++) {
                const int ix = ox * sw - pad_left;
                int x0, x1;
                int32_t mx = -128;
                arch_q_taps(ox, sw, pad_left, kw, w, &x0, &x1);
                for (ky = y0; ky < y1; ky++)
                    for (kx = x0; kx < x1; kx++) {
                        const int32_t v = plane[(iy + ky) * w + ix + kx];
                        mx = v > mx ? v : mx;
                    }
                *out++ = arch_q_clamp(mx, act_min, act_max);
            }
        }
    }
}
