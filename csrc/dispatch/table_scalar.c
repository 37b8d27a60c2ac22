/* table_scalar.c: the scalar kernel table. Compiled in the scalar group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_scalar = {
    .gemm_f32 = &eng_gemm_f32_scalar,
    .gemv_f32 = eng_gemv_f32_scalar,
    .bias_act_f32 = eng_bias_act_f32_scalar,
    .dot_f32 = eng_dot_f32_scalar,
    .sqnorm_f32 = eng_sqnorm_f32_scalar,
    .cos_f32 = eng_cos_f32_scalar,
    .dot_f16 = eng_dot_f16_scalar,
    .sqnorm_f16 = eng_sqnorm_f16_scalar,
    .cos_f16 = eng_cos_f16_scalar,
    .dot_i8 = eng_dot_i8_scalar,
    .sqnorm_i8 = eng_sqnorm_i8_scalar,
    .cos_i8 = eng_cos_i8_scalar,
    .l2norm_rows_f32 = eng_l2norm_rows_f32_scalar,
    .l2norm_rows_f16 = eng_l2norm_rows_f16_scalar,
    .scan_f32 = eng_scan_f32_scalar,
    .scan_f16 = eng_scan_f16_scalar,
    .scan_i8 = eng_scan_i8_scalar,
    .cvt_f16_f32 = eng_cvt_f16_f32_scalar,
    .cvt_f32_f16 = eng_cvt_f32_f16_scalar,
};
