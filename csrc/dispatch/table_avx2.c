/* table_avx2.c: the avx2 kernel table. Compiled in the avx2 group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_avx2 = {
    .gemm_f32 = &eng_gemm_f32_avx2,
    .gemv_f32 = eng_gemv_f32_avx2,
    .bias_act_f32 = eng_bias_act_f32_avx2,
    .dot_f32 = eng_dot_f32_avx2,
    .sqnorm_f32 = eng_sqnorm_f32_avx2,
    .cos_f32 = eng_cos_f32_avx2,
    .dot_f16 = eng_dot_f16_avx2,
    .sqnorm_f16 = eng_sqnorm_f16_avx2,
    .cos_f16 = eng_cos_f16_avx2,
    .dot_i8 = eng_dot_i8_avx2,
    .sqnorm_i8 = eng_sqnorm_i8_avx2,
    .cos_i8 = eng_cos_i8_avx2,
    .l2norm_rows_f32 = eng_l2norm_rows_f32_avx2,
    .l2norm_rows_f16 = eng_l2norm_rows_f16_avx2,
    .scan_f32 = eng_scan_f32_avx2,
    .scan_f16 = eng_scan_f16_avx2,
    .scan_i8 = eng_scan_i8_avx2,
    .cvt_f16_f32 = eng_cvt_f16_f32_avx2,
    .cvt_f32_f16 = eng_cvt_f32_f16_avx2,
};
