/* table_avx512.c: the avx512 kernel table. Compiled in the avx512 group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_avx512 = {
    .gemm_f32 = &eng_gemm_f32_avx512,
    .gemv_f32 = eng_gemv_f32_avx512,
    .bias_act_f32 = eng_bias_act_f32_avx512,
};
