/* Element-wise kernels. Each may run in place: `out` can be the buffer of its first input. */
#include "archdsl_rt.h"

void arch_add(const float *a, const float *b, float *out, int n, int act)
{
    int i;
    for (i = 0; i < n; i++) out[i] = a[i] + b[i];
    arch_activate(out, n, act);
}

void arch_mul(const float *x, const float *gate, int c, int hw, int gate_hw, float *out)
{
    int ch, i;
    if (gate_hw == 1) {
        for (ch = 0; ch < c; ch++) {
            const float g = gate[ch];
            const float *xc = x + ch * hw;
            float *oc = out + ch * hw;
            for (i = 0; i < hw; i++) oc[i] = xc[i] * g;
        }
    } else {
        const int n = c * hw;
        for (i = 0; i < n; i++) out[i] = x[i] * gate[i];
    }
}

void arch_affine(const float *in, const float *scale, const float *shift, int c, int hw, float *out, int act)
{
    int ch, i;
    for (ch = 0; ch < c; ch++) {
        const float s = scale[ch], t = shift[ch];
        const float *ic = in + ch * hw;
        float *oc = out + ch * hw;
        for (i = 0; i < hw; i++) oc[i] = ic[i] * s + t;
        arch_activate(oc, hw, act);
    }
}

void arch_activation(const float *in, float *out, int n, int act)
{
    int i;
    if (in != out)
        for (i = 0; i < n; i++) out[i] = in[i];
    arch_activate(out, n, act);
}

void arch_copy(const float *restrict in, float *restrict out, int n)
{
    int i;
    for (i = 0; i < n; i++) out[i] = in[i];
}

void arch_channel_shuffle(const float *restrict in, float *restrict out, int c, int hw, int groups)
{
    const int per_group = c / groups;
    int g, j;
    for (g = 0; g < groups; g++)
        for (j = 0; j < per_group; j++)
            arch_copy(in + (g * per_group + j) * hw, out + (j * groups + g) * hw, hw);
}
