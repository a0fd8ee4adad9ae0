/* int8 matrix products: the 1x1 convolution and the fully connected layer.
 * The input offset is factored out of the inner loop, as CMSIS-NN does:
 * sum_i w[i] * (x[i] - in_zp) = sum_i w[i] * x[i] - in_zp * sum_i w[i], exact in int32. */
#include "archdsl_qrt.h"

#define QGEMM_NR 4 /* pixels per register block */

static int32_t q_row_sum(const int8_t *restrict row, int n)
{
    int32_t s = 0;
    int i;
    for (i = 0; i < n; i++) s += row[i];
    return s;
}

void arch_qconv1x1(const int8_t *restrict in, int cin, int hw, int32_t in_zp,
                   const int8_t *restrict weight, const int32_t *restrict bias, int cout,
                   int8_t *restrict out, const struct arch_qout *q)
{
    int o, p, i, l;
    for (o = 0; o < cout; o++) {
        const int8_t *restrict wo = weight + o * cin;
        const int32_t base = bias[o] - in_zp * q_row_sum(wo, cin);
        const int32_t m = q->multiplier[o * q->per_channel], s = q->shift[o * q->per_channel];
        int8_t *restrict y = out + o * hw;
        for (p = 0; p + QGEMM_NR <= hw; p += QGEMM_NR) {
            int32_t acc[QGEMM_NR];
            for (l = 0; l < QGEMM_NR; l++) acc[l] = base;
            for (i = 0; i < cin; i++) {
                const int32_t wi = wo[i];
                const int8_t *restrict x = in + i * hw + p;
                for (l = 0; l < QGEMM_NR; l++) acc[l] += wi * x[l];
            }
            for (l = 0; l < QGEMM_NR; l++) y[p + l] = arch_q_out(acc[l], m, s, q->zero_point, q->act_min, q->act_max);
        }
        for (; p < hw; p++) {
            int32_t acc = base;
            for (i = 0; i < cin; i++) acc += (int32_t)wo[i] * in[i * hw + p];
            y[p] = arch_q_out(acc, m, s, q->zero_point, q->act_min, q->act_max);
        }
    }
}

void arch_qfc(const int8_t *restrict in, int n_in, int32_t in_zp,
              const int8_t *restrict weight, const int32_t *restrict bias, int n_out,
              int8_t *restrict out, const struct arch_qout *q)
{
    int o, i;
    for (o = 0; o < n_out; o++) {
        const int8_t *restrict wo = weight + o * n_in;
        int32_t acc = bias[o];
        for (i = 0; i < n_in; i++) acc += (int32_t)wo[i] * ((int32_t)in[i] - in_zp);
        out[o] = arch_q_out(acc, q->multiplier[o * q->per_channel], q->shift[o * q->per_channel],
                            q->zero_point, q->act_min, q->act_max);
    }
}
