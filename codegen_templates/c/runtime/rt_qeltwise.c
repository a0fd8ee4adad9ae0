/* int8 element-wise kernels: TFLite's ADD (three double-rounded multiplies per element), the
 * REQUANTIZE of one tensor to other parameters, a plain copy, and a standalone ReLU / ReLU6 (a
 * clamp in the input's parameters). */
#include "archdsl_qrt.h"

void arch_qadd(const int8_t *a, const int8_t *b, int8_t *out, int n, const struct arch_qadd *p)
{
    int i;
    for (i = 0; i < n; i++) {
        /* |q - zp| <= 255 < 2^8, so the 2^20 pre-shift keeps both terms and their sum in int32 */
        const int32_t va = arch_q_mbqm(arch_q_shl((int32_t)a[i] - p->a_zp, (int)p->left_shift),
                                       p->a_multiplier, p->a_shift);
        const int32_t vb = arch_q_mbqm(arch_q_shl((int32_t)b[i] - p->b_zp, (int)p->left_shift),
                                       p->b_multiplier, p->b_shift);
        out[i] = arch_q_clamp(arch_q_mbqm(va + vb, p->out_multiplier, p->out_shift) + p->out_zp, p->act_min, p->act_max);
    }
}

void arch_qrequantize(const int8_t *restrict in, int n, int32_t in_zp, int32_t multiplier, int32_t shift,
                      int32_t out_zp, int8_t *restrict out)
{
    int i;
    for (i = 0; i < n; i++) out[i] = arch_q_out((int32_t)in[i] - in_zp, multiplier, shift, out_zp, -128, 127);
}

void arch_qcopy(const int8_t *restrict in, int8_t *restrict out, int n)
{
    int i;
    for (i = 0; i < n; i++) out[i] = in[i];
}

void arch_qclamp(const int8_t *in, int8_t *out, int n, int32_t act_min, int32_t act_max)
{
    int i;
    for (i = 0; i < n; i++) out[i] = arch_q_clamp(in[i], act_min, act_max);
}
