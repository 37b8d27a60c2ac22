/* gemm_avx2.c: SGEMM micro-kernel (6x16) and GEMV.  ISA: avx2 (-mavx2 -mfma -mf16c).
 * Must match gemm_scalar.c (ukr_scalar, eng_gemv_f32_scalar) up to FMA rounding: sums run over k in
 * increasing order per output, with fused multiply-adds.
 * The 6x16 tile keeps 12 accumulators, 2 B vectors and 1 broadcast in the 16 YMM registers: per k step
 * 12 FMAs against 2 loads + 6 broadcasts, which the two FMA pipes of Haswell/Zen can sustain. */
#include <assert.h>
#include <string.h>

#include "eng/eng_kernels.h"
#include "../../simd/simd_avx2.h"

#define MR 6
#define NR 16

/* Writes the accumulator rows to C: c = alpha * acc + beta * c (beta == 0: c is not read). */
#define STORE_ROW(acc0, acc1, row)                                                  \
  do {                                                                              \
    float *cr = c + (row) * ldc;                                                    \
    __m256 r0 = _mm256_mul_ps(acc0, va), r1 = _mm256_mul_ps(acc1, va);              \
    if (beta != 0.0f) {                                                             \
      r0 = _mm256_fmadd_ps(_mm256_loadu_ps(cr), vb, r0);                            \
      r1 = _mm256_fmadd_ps(_mm256_loadu_ps(cr + 8), vb, r1);                        \
    }                                                                               \
    _mm256_storeu_ps(cr, r0);                                                       \
    _mm256_storeu_ps(cr + 8, r1);                                                   \
  } while (0)

static void ukr_6x16_avx2(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                          size_t ldc, size_t m, size_t n, float alpha, float beta) {
  assert(m <= MR && n <= NR);
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  if (m == MR && n == NR) {
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
  }
#define STEP(off_a, off_b)                                            \
  do {                                                                \
    __m256 b0 = _mm256_loadu_ps(b + (off_b)), b1 = _mm256_loadu_ps(b + (off_b) + 8); \
    __m256 av = _mm256_broadcast_ss(a + (off_a) + 0);                 \
    c00 = _mm256_fmadd_ps(av, b0, c00);                               \
    c01 = _mm256_fmadd_ps(av, b1, c01);                               \
    av = _mm256_broadcast_ss(a + (off_a) + 1);                        \
    c10 = _mm256_fmadd_ps(av, b0, c10);                               \
    c11 = _mm256_fmadd_ps(av, b1, c11);                               \
    av = _mm256_broadcast_ss(a + (off_a) + 2);                        \
    c20 = _mm256_fmadd_ps(av, b0, c20);                               \
    c21 = _mm256_fmadd_ps(av, b1, c21);                               \
    av = _mm256_broadcast_ss(a + (off_a) + 3);                        \
    c30 = _mm256_fmadd_ps(av, b0, c30);                               \
    c31 = _mm256_fmadd_ps(av, b1, c31);                               \
    av = _mm256_broadcast_ss(a + (off_a) + 4);                        \
    c40 = _mm256_fmadd_ps(av, b0, c40);                               \
    c41 = _mm256_fmadd_ps(av, b1, c41);                               \
    av = _mm256_broadcast_ss(a + (off_a) + 5);                        \
    c50 = _mm256_fmadd_ps(av, b0, c50);                               \
    c51 = _mm256_fmadd_ps(av, b1, c51);                               \
  } while (0)
  size_t p = 0;
  for (; p + 4 <= kc; p += 4) {
    _mm_prefetch((const char *)(b + 4 * NR * 4), _MM_HINT_T0);
    STEP(0, 0);
    STEP(MR, NR);
    STEP(2 * MR, 2 * NR);
    STEP(3 * MR, 3 * NR);
    a += 4 * MR;
    b += 4 * NR;
  }
  for (; p < kc; p++) {
    STEP(0, 0);
    a += MR;
    b += NR;
  }
#undef STEP
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (m == MR && n == NR) {
    STORE_ROW(c00, c01, 0);
    STORE_ROW(c10, c11, 1);
    STORE_ROW(c20, c21, 2);
    STORE_ROW(c30, c31, 3);
    STORE_ROW(c40, c41, 4);
    STORE_ROW(c50, c51, 5);
    return;
  }
  /* Partial tile: spill to a local tile, then copy the m x n corner. */
  float t[MR * NR];
  _mm256_storeu_ps(t + 0 * NR, c00), _mm256_storeu_ps(t + 0 * NR + 8, c01);
  _mm256_storeu_ps(t + 1 * NR, c10), _mm256_storeu_ps(t + 1 * NR + 8, c11);
  _mm256_storeu_ps(t + 2 * NR, c20), _mm256_storeu_ps(t + 2 * NR + 8, c21);
  _mm256_storeu_ps(t + 3 * NR, c30), _mm256_storeu_ps(t + 3 * NR + 8, c31);
  _mm256_storeu_ps(t + 4 * NR, c40), _mm256_storeu_ps(t + 4 * NR + 8, c41);
  _mm256_storeu_ps(t + 5 * NR, c50), _mm256_storeu_ps(t + 5 * NR + 8, c51);
  for (size_t i = 0; i < m; i++) {
    for (size_t j = 0; j < n; j++) {
      float v = alpha * t[i * NR + j];
      c[i * ldc + j] = beta == 0.0f ? v : v + beta * c[i * ldc + j];
    }
  }
}
#undef STORE_ROW

/* mc = 24 tiles of 6 rows (A block 144 x 256 floats = 144 KiB, in L2); kc = 256 (a B panel of 16 KiB in L1). */
const eng_gemm_f32_impl_t eng_gemm_f32_avx2 = {MR, NR, 144, 256, 4080, ukr_6x16_avx2};

void eng_gemv_f32_avx2(size_t n, size_t k, float alpha, const float *ENG_RESTRICT x, const float *ENG_RESTRICT b,
                       size_t ldb, int trans_b, float beta, float *ENG_RESTRICT y) {
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  if (trans_b) { /* y[j] = dot(x, row j): four rows at a time share the loads of x */
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
      const float *r0 = b + j * ldb, *r1 = r0 + ldb, *r2 = r1 + ldb, *r3 = r2 + ldb;
      __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
      size_t p = 0;
      for (; p + 8 <= k; p += 8) {
        __m256 xv = _mm256_loadu_ps(x + p);
        s0 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r0 + p), s0);
        s1 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r1 + p), s1);
        s2 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r2 + p), s2);
        s3 = _mm256_fmadd_ps(xv, _mm256_loadu_ps(r3 + p), s3);
      }
      if (p < k) {
        __m256i mk = tail_mask_avx2(k - p);
        __m256 xv = _mm256_maskload_ps(x + p, mk);
        s0 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(r0 + p, mk), s0);
        s1 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(r1 + p, mk), s1);
        s2 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(r2 + p, mk), s2);
        s3 = _mm256_fmadd_ps(xv, _mm256_maskload_ps(r3 + p, mk), s3);
      }
      float d[4] = {hsum_avx2(s0), hsum_avx2(s1), hsum_avx2(s2), hsum_avx2(s3)};
      for (int i = 0; i < 4; i++) y[j + i] = beta == 0.0f ? alpha * d[i] : alpha * d[i] + beta * y[j + i];
    }
    for (; j < n; j++) {
      const float *r0 = b + j * ldb;
      __m256 s0 = _mm256_setzero_ps();
      size_t p = 0;
      for (; p + 8 <= k; p += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + p), _mm256_loadu_ps(r0 + p), s0);
      if (p < k) {
        __m256i mk = tail_mask_avx2(k - p);
        s0 = _mm256_fmadd_ps(_mm256_maskload_ps(x + p, mk), _mm256_maskload_ps(r0 + p, mk), s0);
      }
      float d = hsum_avx2(s0);
      y[j] = beta == 0.0f ? alpha * d : alpha * d + beta * y[j];
    }
    return;
  }
  /* y = x B: column blocks of NB held in an L1 accumulator; four rows of B per pass over it, so each
   * accumulator load/store is amortised over four FMAs and every row read is a contiguous run. */
  enum { NB = 512 };
  float acc[NB] __attribute__((aligned(32)));
  for (size_t j0 = 0; j0 < n; j0 += NB) {
    size_t nb = n - j0 < NB ? n - j0 : NB;
    size_t nv = nb & ~(size_t)7;
    memset(acc, 0, sizeof(float) * ((nb + 7) & ~(size_t)7));
    size_t p = 0;
    for (; p + 4 <= k; p += 4) {
      const float *r0 = b + p * ldb + j0, *r1 = r0 + ldb, *r2 = r1 + ldb, *r3 = r2 + ldb;
      __m256 x0 = _mm256_set1_ps(x[p]), x1 = _mm256_set1_ps(x[p + 1]), x2 = _mm256_set1_ps(x[p + 2]), x3 = _mm256_set1_ps(x[p + 3]);
      size_t j = 0;
      for (; j < nv; j += 8) {
        __m256 s = _mm256_load_ps(acc + j);
        s = _mm256_fmadd_ps(x0, _mm256_loadu_ps(r0 + j), s);
        s = _mm256_fmadd_ps(x1, _mm256_loadu_ps(r1 + j), s);
        s = _mm256_fmadd_ps(x2, _mm256_loadu_ps(r2 + j), s);
        s = _mm256_fmadd_ps(x3, _mm256_loadu_ps(r3 + j), s);
        _mm256_store_ps(acc + j, s);
      }
      if (j < nb) {
        __m256i mk = tail_mask_avx2(nb - j);
        __m256 s = _mm256_load_ps(acc + j);
        s = _mm256_fmadd_ps(x0, _mm256_maskload_ps(r0 + j, mk), s);
        s = _mm256_fmadd_ps(x1, _mm256_maskload_ps(r1 + j, mk), s);
        s = _mm256_fmadd_ps(x2, _mm256_maskload_ps(r2 + j, mk), s);
        s = _mm256_fmadd_ps(x3, _mm256_maskload_ps(r3 + j, mk), s);
        _mm256_store_ps(acc + j, s);
      }
    }
    for (; p < k; p++) {
      const float *r0 = b + p * ldb + j0;
      __m256 x0 = _mm256_set1_ps(x[p]);
      size_t j = 0;
      for (; j < nv; j += 8) _mm256_store_ps(acc + j, _mm256_fmadd_ps(x0, _mm256_loadu_ps(r0 + j), _mm256_load_ps(acc + j)));
      if (j < nb) {
        __m256i mk = tail_mask_avx2(nb - j);
        _mm256_store_ps(acc + j, _mm256_fmadd_ps(x0, _mm256_maskload_ps(r0 + j, mk), _mm256_load_ps(acc + j)));
      }
    }
    float *yj = y + j0;
    size_t j = 0;
    for (; j < nv; j += 8) {
      __m256 r = _mm256_mul_ps(_mm256_load_ps(acc + j), va);
      if (beta != 0.0f) r = _mm256_fmadd_ps(_mm256_loadu_ps(yj + j), vb, r);
      _mm256_storeu_ps(yj + j, r);
    }
    for (; j < nb; j++) yj[j] = beta == 0.0f ? alpha * acc[j] : alpha * acc[j] + beta * yj[j];
  }
}
