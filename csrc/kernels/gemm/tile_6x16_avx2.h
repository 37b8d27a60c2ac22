/* tile_6x16_avx2.h: the 6x16 register tile shared by the AVX2 GEMM (gemm_avx2.c) and convolution (conv_avx2.c)
 * micro-kernels: storing the tile, and the inline-assembly pieces of their k loops (ymm0-11 hold the tile, row i in
 * ymm{2i, 2i+1}; ymm12-13 the B row; ymm14-15 alternate broadcasts of A). Include only from *_avx2.c files. */
#ifndef ENG_TILE_6X16_AVX2_H
#define ENG_TILE_6X16_AVX2_H

#include "eng/eng_kernels.h"
#include "../../simd/simd_avx2.h"
#include "../act/act_avx2.h"

#define MR 6
#define NR 16

/* Writes the 6x16 accumulator tile to C: c = alpha * acc + beta * c (beta == 0: c is not read); only the
 * m x n corner is written. */
static inline void store_tile_avx2(float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                                   __m256 acc[MR][2]) {
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (m == MR && n == NR) {
    for (int i = 0; i < MR; i++) {
      float *cr = c + i * ldc;
      __m256 r0 = _mm256_mul_ps(acc[i][0], va), r1 = _mm256_mul_ps(acc[i][1], va);
      if (beta != 0.0f) {
        r0 = _mm256_fmadd_ps(_mm256_loadu_ps(cr), vb, r0);
        r1 = _mm256_fmadd_ps(_mm256_loadu_ps(cr + 8), vb, r1);
      }
      _mm256_storeu_ps(cr, r0);
      _mm256_storeu_ps(cr + 8, r1);
    }
    return;
  }
  /* Partial tile: masked stores, so nothing outside the m x n corner is read or written. */
  const __m256i k0 = tail_mask_avx2(n >= 8 ? 8 : n), k1 = tail_mask_avx2(n > 8 ? n - 8 : 0);
  for (size_t i = 0; i < m; i++) {
    float *cr = c + i * ldc;
    __m256 r0 = _mm256_mul_ps(acc[i][0], va), r1 = _mm256_mul_ps(acc[i][1], va);
    if (beta != 0.0f) {
      r0 = _mm256_fmadd_ps(_mm256_maskload_ps(cr, k0), vb, r0);
      r1 = _mm256_fmadd_ps(_mm256_maskload_ps(cr + 8, k1), vb, r1);
    }
    _mm256_maskstore_ps(cr, k0, r0);
    _mm256_maskstore_ps(cr + 8, k1, r1);
  }
}

/* store_tile_avx2 followed by the epilogue (eng_gemm_epi_t) on the values still in registers: the same operations in
 * the same order as the separate bias_act_f32 pass (act_avx2 is shared), so the results are bitwise equal. */
ENG_INLINE void store_tile_epi_kind_avx2(float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                                         __m256 acc[MR][2], const eng_gemm_epi_t *epi, const int kind) {
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const __m256 p0 = _mm256_set1_ps(epi->act->p0), p1 = _mm256_set1_ps(epi->act->p1);
  const __m256i k0 = tail_mask_avx2(n >= 8 ? 8 : n), k1 = tail_mask_avx2(n > 8 ? n - 8 : 0);
  const int full = n == NR;
  __m256 bc0 = _mm256_setzero_ps(), bc1 = _mm256_setzero_ps();
  if (epi->bias_col) {
    bc0 = full ? _mm256_loadu_ps(epi->bias_col) : _mm256_maskload_ps(epi->bias_col, k0);
    bc1 = full ? _mm256_loadu_ps(epi->bias_col + 8) : _mm256_maskload_ps(epi->bias_col + 8, k1);
  }
  for (size_t i = 0; i < m; i++) {
    float *cr = c + i * ldc;
    __m256 r0 = _mm256_mul_ps(acc[i][0], va), r1 = _mm256_mul_ps(acc[i][1], va);
    if (beta != 0.0f) {
      r0 = _mm256_fmadd_ps(full ? _mm256_loadu_ps(cr) : _mm256_maskload_ps(cr, k0), vb, r0);
      r1 = _mm256_fmadd_ps(full ? _mm256_loadu_ps(cr + 8) : _mm256_maskload_ps(cr + 8, k1), vb, r1);
    }
    const __m256 bs = _mm256_set1_ps(epi->bias_row ? epi->bias_row[i] : 0.0f);
    r0 = _mm256_add_ps(r0, bs);
    r1 = _mm256_add_ps(r1, bs);
    if (epi->bias_col) {
      r0 = _mm256_add_ps(r0, bc0);
      r1 = _mm256_add_ps(r1, bc1);
    }
    r0 = act_avx2(r0, kind, p0, p1);
    r1 = act_avx2(r1, kind, p0, p1);
    if (full) {
      _mm256_storeu_ps(cr, r0);
      _mm256_storeu_ps(cr + 8, r1);
    } else {
      _mm256_maskstore_ps(cr, k0, r0);
      _mm256_maskstore_ps(cr + 8, k1, r1);
    }
  }
}

/* One copy per common activation, so its code is inlined without a switch per vector. */
static inline void store_tile_epi_avx2(float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                                       __m256 acc[MR][2], const eng_gemm_epi_t *epi) {
  switch (epi->act->kind) {
    case ENG_ACT_NONE: store_tile_epi_kind_avx2(c, ldc, m, n, alpha, beta, acc, epi, ENG_ACT_NONE); break;
    case ENG_ACT_RELU: store_tile_epi_kind_avx2(c, ldc, m, n, alpha, beta, acc, epi, ENG_ACT_RELU); break;
    case ENG_ACT_CLIP: store_tile_epi_kind_avx2(c, ldc, m, n, alpha, beta, acc, epi, ENG_ACT_CLIP); break;
    default: store_tile_epi_kind_avx2(c, ldc, m, n, alpha, beta, acc, epi, epi->act->kind); break;
  }
}

/* The end of an inline-assembly micro-kernel: the tile it left in t (row-major MR x NR) stored with or without the
 * epilogue. */
static inline void store_spilled_tile_avx2(const float *t, float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n,
                                           float alpha, float beta, const eng_gemm_epi_t *epi) {
  __m256 acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = _mm256_load_ps(t + i * NR), acc[i][1] = _mm256_load_ps(t + i * NR + 8);
  if (epi)
    store_tile_epi_avx2(c, ldc, m, n, alpha, beta, acc, epi);
  else
    store_tile_avx2(c, ldc, m, n, alpha, beta, acc);
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(ENG_NO_ASM)
#define ASM_FMA_ROW(areg, r0, r1) "vfmadd231ps %%ymm12, %%" areg ", %%ymm" #r0 "\n\tvfmadd231ps %%ymm13, %%" areg ", %%ymm" #r1 "\n\t"
#define ASM_ZERO_ACC                                                                                        \
  "vxorps %%ymm0, %%ymm0, %%ymm0\n\tvxorps %%ymm1, %%ymm1, %%ymm1\n\tvxorps %%ymm2, %%ymm2, %%ymm2\n\t"   \
  "vxorps %%ymm3, %%ymm3, %%ymm3\n\tvxorps %%ymm4, %%ymm4, %%ymm4\n\tvxorps %%ymm5, %%ymm5, %%ymm5\n\t"   \
  "vxorps %%ymm6, %%ymm6, %%ymm6\n\tvxorps %%ymm7, %%ymm7, %%ymm7\n\tvxorps %%ymm8, %%ymm8, %%ymm8\n\t"   \
  "vxorps %%ymm9, %%ymm9, %%ymm9\n\tvxorps %%ymm10, %%ymm10, %%ymm10\n\tvxorps %%ymm11, %%ymm11, %%ymm11\n\t"
#define ASM_STORE_ACC(dst)                                                                                   \
  "vmovups %%ymm0, 0(" dst ")\n\tvmovups %%ymm1, 32(" dst ")\n\tvmovups %%ymm2, 64(" dst ")\n\t"           \
  "vmovups %%ymm3, 96(" dst ")\n\tvmovups %%ymm4, 128(" dst ")\n\tvmovups %%ymm5, 160(" dst ")\n\t"        \
  "vmovups %%ymm6, 192(" dst ")\n\tvmovups %%ymm7, 224(" dst ")\n\tvmovups %%ymm8, 256(" dst ")\n\t"       \
  "vmovups %%ymm9, 288(" dst ")\n\tvmovups %%ymm10, 320(" dst ")\n\tvmovups %%ymm11, 352(" dst ")\n\t"
/* the six broadcasts of A(i, p) at AOFF + 4i (%a) and their 12 FMAs against the B row in ymm12-13 */
#define ASM_BCAST6_PACKED(AOFF)                                                                               \
  "vbroadcastss " #AOFF "(%[a]), %%ymm14\n\t" ASM_FMA_ROW("ymm14", 0, 1)                                  \
  "vbroadcastss " #AOFF "+4(%[a]), %%ymm15\n\t" ASM_FMA_ROW("ymm15", 2, 3)                                \
  "vbroadcastss " #AOFF "+8(%[a]), %%ymm14\n\t" ASM_FMA_ROW("ymm14", 4, 5)                                \
  "vbroadcastss " #AOFF "+12(%[a]), %%ymm15\n\t" ASM_FMA_ROW("ymm15", 6, 7)                               \
  "vbroadcastss " #AOFF "+16(%[a]), %%ymm14\n\t" ASM_FMA_ROW("ymm14", 8, 9)                               \
  "vbroadcastss " #AOFF "+20(%[a]), %%ymm15\n\t" ASM_FMA_ROW("ymm15", 10, 11)
#define ASM_CLOBBERS                                                                                          \
  "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10", "ymm11", "ymm12", \
      "ymm13", "ymm14", "ymm15", "cc", "memory"

#endif /* inline assembly */
#endif /* ENG_TILE_6X16_AVX2_H */
