/* Softmax over channels, one pixel at a time (for a 1x1xC map: the usual class softmax). */
#include <math.h>

#include "archdsl_rt.h"

void arch_softmax(const float *restrict in, int c, int hw, float *restrict out)
{
    int p, ch;
    for (p = 0; p < hw; p++) {
        float mx = in[p], sum = 0.0f, inv;
        for (ch = 1; ch < c; ch++)
            if (in[ch * hw + p] > mx) mx = in[ch * hw + p];
        for (ch = 0; ch < c; ch++) {
            const float e = expf(in[ch * hw + p] - mx);
            out[ch * hw + p] = e;
            sum += e;
        }
        inv = 1.0f / sum;
        for (ch = 0; ch < c; ch++) out[ch * hw + p] *= inv;
    }
}
