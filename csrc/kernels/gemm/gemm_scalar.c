/* gemm_scalar.c: portable reference GEMM micro-kernel and GEMV.  ISA: scalar (no SIMD, -fno-tree-vectorize).
 * This is the specification the SIMD variants are tested against. Sums run over k in increasing order
 * with separate multiply and add (-ffp-contract=off), in float32. */
#include <assert.h>

#include "eng/eng_kernels.h"

#define MR 4
#define NR 4

/* c = alpha * acc + beta * c on the m x n corner; beta == 0 never reads c. */
static void store_tile(float acc[MR][NR], float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta) {
  for (size_t i = 0; i < m; i++) {
    for (size_t j = 0; j < n; j++) {
      float v = alpha * acc[i][j];
      c[i * ldc + j] = beta == 0.0f ? v : v + beta * c[i * ldc + j];
    }
  }
}

static void ukr_scalar(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                       size_t ldc, size_t m, size_t n, float alpha, float beta) {
  assert(m <= MR && n <= NR);
  float acc[MR][NR] = {{0}};
  for (size_t p = 0; p < kc; p++) {
    for (int i = 0; i < MR; i++) {
      float av = a[p * MR + i];
      for (int j = 0; j < NR; j++) acc[i][j] += av * b[p * NR + j];
    }
  }
  store_tile(acc, c, ldc, m, n, alpha, beta);
}

static void ukr_arow_scalar(size_t kc, const float *ENG_RESTRICT a, size_t lda, const float *ENG_RESTRICT b,
                            float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta) {
  assert(m <= MR && n <= NR);
  float acc[MR][NR] = {{0}};
  for (size_t p = 0; p < kc; p++) {
    for (size_t i = 0; i < m; i++) {
      float av = a[i * lda + p];
      for (int j = 0; j < NR; j++) acc[i][j] += av * b[p * NR + j];
    }
  }
  store_tile(acc, c, ldc, m, n, alpha, beta);
}

const eng_gemm_f32_impl_t eng_gemm_f32_scalar = {MR, NR, 64, 256, 1024, ukr_scalar, ukr_arow_scalar};

void eng_gemv_f32_scalar(size_t n, size_t k, float alpha, const float *ENG_RESTRICT x, const float *ENG_RESTRICT b,
                         size_t ldb, int trans_b, float beta, float *ENG_RESTRICT y) {
  if (trans_b) { /* y[j] = dot(x, row j of b) */
    for (size_t j = 0; j < n; j++) {
      const float *row = b + j * ldb;
      float acc = 0.0f;
      for (size_t p = 0; p < k; p++) acc += x[p] * row[p];
      y[j] = beta == 0.0f ? alpha * acc : alpha * acc + beta * y[j];
    }
    return;
  }
  /* y[j] = sum_p x[p] * b[p][j]: blocks of columns so every row read is contiguous */
  enum { NB = 64 };
  for (size_t j0 = 0; j0 < n; j0 += NB) {
    size_t nb = n - j0 < NB ? n - j0 : NB;
    float acc[NB] = {0};
    for (size_t p = 0; p < k; p++) {
      const float *row = b + p * ldb + j0;
      float xv = x[p];
      for (size_t j = 0; j < nb; j++) acc[j] += xv * row[j];
    }
    for (size_t j = 0; j < nb; j++) y[j0 + j] = beta == 0.0f ? alpha * acc[j] : alpha * acc[j] + beta * y[j0 + j];
  }
}
