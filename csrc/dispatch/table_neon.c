/* table_neon.c: the neon kernel table. Compiled in the neon group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_neon = {
    .gemm_f32 = &eng_gemm_f32_neon,
    .gemv_f32 = eng_gemv_f32_neon,
    .bias_act_f32 = eng_bias_act_f32_neon,
};
