/* table_avx512.c: the avx512 kernel table. Compiled in the avx512 group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_avx512 = {
    .gemm_f32 = &eng_gemm_f32_avx512,
    .gemv_f32 = eng_gemv_f32_avx512,
    .bias_act_f32 = eng_bias_act_f32_avx512,
    .act_f32 = eng_act_f32_avx512,
    .binary_f32 = eng_binary_f32_avx512,
    .binary_s_f32 = eng_binary_s_f32_avx512,
    .softmax_f32 = eng_softmax_f32_avx512,
    .norm_f32 = eng_norm_f32_avx512,
    .reduce_f32 = eng_reduce_f32_avx512,
    .pool2d_f32 = eng_pool2d_f32_avx512,
    .dwconv2d_f32 = eng_dwconv2d_f32_avx512,
};
