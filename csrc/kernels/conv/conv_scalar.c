/* conv_scalar.c: the implicit-GEMM convolution micro-kernel in plain C (contract: eng_conv_ukr_f32_fn in
 * eng_kernels.h). ISA: none (-fno-tree-vectorize). The reference every SIMD twin (conv_avx2.c, conv_avx512.c,
 * conv_neon.c) is tested against; they agree up to FMA rounding: sums run over the taps in increasing order,
 * here with separate multiply and add (-ffp-contract=off). */
#include "eng/eng_kernels.h"

#define MR 4
#define NR 8

static void ukr_scalar(size_t kc, const float *ENG_RESTRICT a, const float *x, const int64_t *off, float *ENG_RESTRICT c,
                       size_t ldc, size_t m, size_t n, int accumulate) {
  float acc[MR][NR] = {{0}};
  for (size_t p = 0; p < kc; p++) {
    const float *b = x + off[p];
    for (size_t i = 0; i < MR; i++) {
      float av = a[p * MR + i];
      for (size_t j = 0; j < NR; j++) acc[i][j] += av * b[j];
    }
  }
  for (size_t i = 0; i < m; i++)
    for (size_t j = 0; j < n; j++) c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

const eng_conv_f32_impl_t eng_conv_f32_scalar = {MR, NR, 256, ukr_scalar};
