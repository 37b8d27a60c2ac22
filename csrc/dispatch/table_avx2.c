/* table_avx2.c: the avx2 kernel table. Compiled in the avx2 group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_avx2 = {
    .gemm_f32 = &eng_gemm_f32_avx2,
    .gemv_f32 = eng_gemv_f32_avx2,
    .bias_act_f32 = eng_bias_act_f32_avx2,
    .act_f32 = eng_act_f32_avx2,
    .binary_f32 = eng_binary_f32_avx2,
    .binary_s_f32 = eng_binary_s_f32_avx2,
    .softmax_f32 = eng_softmax_f32_avx2,
    .norm_f32 = eng_norm_f32_avx2,
    .reduce_f32 = eng_reduce_f32_avx2,
    .pool2d_f32 = eng_pool2d_f32_avx2,
    .dwconv2d_f32 = eng_dwconv2d_f32_avx2,
};
