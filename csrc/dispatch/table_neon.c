/* table_neon.c: the neon kernel table. Compiled in the neon group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_neon = {
    .gemm_f32 = &eng_gemm_f32_neon,
    .gemv_f32 = eng_gemv_f32_neon,
    .bias_act_f32 = eng_bias_act_f32_neon,
    .act_f32 = eng_act_f32_neon,
    .binary_f32 = eng_binary_f32_neon,
    .binary_s_f32 = eng_binary_s_f32_neon,
    .softmax_f32 = eng_softmax_f32_neon,
    .norm_f32 = eng_norm_f32_neon,
    .reduce_f32 = eng_reduce_f32_neon,
    .pool2d_f32 = eng_pool2d_f32_neon,
    .dwconv2d_f32 = eng_dwconv2d_f32_neon,
};
