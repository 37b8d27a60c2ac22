/* table_scalar.c: the scalar kernel table. Compiled in the scalar group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_scalar = {
    .gemm_f32 = &eng_gemm_f32_scalar,
    .gemv_f32 = eng_gemv_f32_scalar,
    .bias_act_f32 = eng_bias_act_f32_scalar,
    .act_f32 = eng_act_f32_scalar,
    .binary_f32 = eng_binary_f32_scalar,
    .binary_s_f32 = eng_binary_s_f32_scalar,
    .softmax_f32 = eng_softmax_f32_scalar,
    .norm_f32 = eng_norm_f32_scalar,
    .reduce_f32 = eng_reduce_f32_scalar,
    .pool2d_f32 = eng_pool2d_f32_scalar,
    .dwconv2d_f32 = eng_dwconv2d_f32_scalar,
};
