/* table_scalar.c: the scalar kernel table. Compiled in the scalar group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_scalar = {
    .gemm_f32 = &eng_gemm_f32_scalar,
    .gemv_f32 = eng_gemv_f32_scalar,
    .bias_act_f32 = eng_bias_act_f32_scalar,
};
