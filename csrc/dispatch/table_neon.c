/* table_neon.c: the neon kernel table. Compiled in the neon group; a NULL slot falls back to a lower level. */
#include "eng/eng_kernels.h"

const eng_kernels_t eng_kernels_neon = {
    .gemm_f32 = &eng_gemm_f32_neon,
    .gemv_f32 = eng_gemv_f32_neon,
    .bias_act_f32 = eng_bias_act_f32_neon,
    .dot_f32 = eng_dot_f32_neon,
    .sqnorm_f32 = eng_sqnorm_f32_neon,
    .cos_f32 = eng_cos_f32_neon,
    .dot_f16 = eng_dot_f16_neon,
    .sqnorm_f16 = eng_sqnorm_f16_neon,
    .cos_f16 = eng_cos_f16_neon,
    .dot_i8 = eng_dot_i8_neon,
    .sqnorm_i8 = eng_sqnorm_i8_neon,
    .cos_i8 = eng_cos_i8_neon,
    .l2norm_rows_f32 = eng_l2norm_rows_f32_neon,
    .l2norm_rows_f16 = eng_l2norm_rows_f16_neon,
    .scan_f32 = eng_scan_f32_neon,
    .scan_f16 = eng_scan_f16_neon,
    .scan_i8 = eng_scan_i8_neon,
    .cvt_f16_f32 = eng_cvt_f16_f32_neon,
    .cvt_f32_f16 = eng_cvt_f32_f16_neon,
};
