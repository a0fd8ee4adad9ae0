/* Activations: the epilogue every kernel runs on its freshly written output (while it is in cache). */
#include <math.h>

#include "archdsl_rt.h"

/* Written so that a NaN falls through every comparison and propagates, as in NumPy, torch and ONNX. */
void arch_activate(float *x, int n, int act)
{
    int i;
    switch ((enum arch_act)act) { /* every value has a case: -Wswitch -Werror names one that has none */
    case ARCH_ACT_RELU:
        for (i = 0; i < n; i++) x[i] = x[i] < 0.0f ? 0.0f : x[i];
        break;
    case ARCH_ACT_RELU6:
        for (i = 0; i < n; i++) {
            float v = x[i] < 0.0f ? 0.0f : x[i];
            x[i] = v > 6.0f ? 6.0f : v;
        }
        break;
    case ARCH_ACT_SIGMOID:
        for (i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
        break;
    case ARCH_ACT_HSIGMOID:
        for (i = 0; i < n; i++) {
            float v = x[i] + 3.0f;
            v = v < 0.0f ? 0.0f : v;
            x[i] = (v > 6.0f ? 6.0f : v) / 6.0f;
        }
        break;
    case ARCH_ACT_HSWISH:
        for (i = 0; i < n; i++) {
            float v = x[i] + 3.0f;
            v = v < 0.0f ? 0.0f : v;
            x[i] = x[i] * (v > 6.0f ? 6.0f : v) / 6.0f;
        }
        break;
    case ARCH_ACT_SILU:
        for (i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
        break;
    case ARCH_ACT_NONE:
        break;
    }
}
