/* int8 in-place layers (rt_qinplace.c). Included by an int8 model built with in-place layers
 * (compile --in-place-dw, or a patch plan). */
#ifndef ARCHDSL_RT_QINPLACE_H
#define ARCHDSL_RT_QINPLACE_H

#include "archdsl_qrt.h"

void arch_qconv_dw_inplace(int8_t *buf, int8_t *restrict scratch, int c, int h, int w, int32_t in_zp,
                           const int8_t *restrict weight, const int32_t *restrict bias,
                           int kh, int kw, int sh, int sw, int pad_top, int pad_left, int oh, int ow,
                           const struct arch_qout *q, int rows);

#endif /* ARCHDSL_RT_QINPLACE_H */
