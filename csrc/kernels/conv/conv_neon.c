/* conv_neon.c: implicit-GEMM convolution micro-kernel, 6 output channels x 16 pixels (contract:
 * eng_conv_ukr_f32_fn in eng_kernels.h). ISA: neon (AArch64 baseline Advanced SIMD). Scalar twin: conv_scalar.c;
 * sums run over the taps in increasing order with FMA.
 * Per tap: four image vectors at x + off[p], the six weights as one q and one d register, 24 lane FMAs into
 * 24 of the 32 V registers. */
#include <arm_neon.h>

#include "eng/eng_kernels.h"

#define MR 6
#define NR 16

static void ukr_6x16_neon(size_t kc, const float *ENG_RESTRICT a, const float *x, const int64_t *off,
                          float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, int accumulate) {
  float32x4_t acc[MR][4];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < 4; j++) acc[i][j] = vdupq_n_f32(0.0f);
  for (size_t p = 0; p < kc; p++, a += MR) {
    const float *b = x + off[p];
    float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4), b2 = vld1q_f32(b + 8), b3 = vld1q_f32(b + 12);
    float32x4_t a0 = vld1q_f32(a);
    float32x2_t a1 = vld1_f32(a + 4);
#define ROWQ(i, lane)                                        \
  acc[i][0] = vfmaq_laneq_f32(acc[i][0], b0, a0, lane);      \
  acc[i][1] = vfmaq_laneq_f32(acc[i][1], b1, a0, lane);      \
  acc[i][2] = vfmaq_laneq_f32(acc[i][2], b2, a0, lane);      \
  acc[i][3] = vfmaq_laneq_f32(acc[i][3], b3, a0, lane);
#define ROWD(i, lane)                                        \
  acc[i][0] = vfmaq_lane_f32(acc[i][0], b0, a1, lane);       \
  acc[i][1] = vfmaq_lane_f32(acc[i][1], b1, a1, lane);       \
  acc[i][2] = vfmaq_lane_f32(acc[i][2], b2, a1, lane);       \
  acc[i][3] = vfmaq_lane_f32(acc[i][3], b3, a1, lane);
    ROWQ(0, 0) ROWQ(1, 1) ROWQ(2, 2) ROWQ(3, 3) ROWD(4, 0) ROWD(5, 1)
#undef ROWQ
#undef ROWD
  }
  for (size_t i = 0; i < m; i++) {
    float *cr = c + i * ldc;
    if (n == NR) {
      for (int j = 0; j < 4; j++) {
        float32x4_t r = acc[i][j];
        if (accumulate) r = vaddq_f32(r, vld1q_f32(cr + 4 * j));
        vst1q_f32(cr + 4 * j, r);
      }
    } else {
      float t[NR];
      for (int j = 0; j < 4; j++) vst1q_f32(t + 4 * j, acc[i][j]);
      for (size_t j = 0; j < n; j++) cr[j] = accumulate ? cr[j] + t[j] : t[j];
    }
  }
}

const eng_conv_f32_impl_t eng_conv_f32_neon = {MR, NR, 256, ukr_6x16_neon};
