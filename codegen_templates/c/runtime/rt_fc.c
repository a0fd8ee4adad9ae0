/* Fully connected layer: a matrix-vector product, W (n_out x n_in) row-major. */
#include "archdsl_rt.h"

#define FC_LANES 8 /* independent partial sums, so the dot product vectorises without -ffast-math */

void arch_fc(const float *restrict in, int n_in, const float *restrict weight, const float *restrict bias,
             int n_out, float *restrict out, int act)
{
    int o, i, l;
    for (o = 0; o < n_out; o++) {
        const float *restrict row = weight + o * n_in;
        float part[FC_LANES] = {0.0f};
        float sum = 0.0f;
        for (i = 0; i + FC_LANES <= n_in; i += FC_LANES)
            for (l = 0; l < FC_LANES; l++) part[l] += row[i + l] * in[i + l];
        for (; i < n_in; i++) sum += row[i] * in[i];
        for (l = 0; l < FC_LANES; l++) sum += part[l];
        out[o] = sum + bias[o];
    }
    arch_activate(out, n_out, act);
}
