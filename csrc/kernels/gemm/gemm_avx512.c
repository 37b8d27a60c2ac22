/* gemm_avx512.c: SGEMM micro-kernel (12x32) and GEMV.  ISA: avx512 (-mavx512f -mavx512bw -mavx512dq -mavx512vl
 * -mavx2 -mfma -mf16c).
 * Must match gemm_scalar.c (ukr_scalar, eng_gemv_f32_scalar) up to FMA rounding: sums run over k in
 * increasing order per output, with fused multiply-adds.  Twin of gemm_avx2.c (same structure, same
 * contract); what differs is the tile and the tails:
 * - The 12x32 tile keeps 24 accumulators, 2 B vectors and 1 broadcast in the 32 ZMM registers: per k step
 *   24 FMAs against 2 loads + 12 broadcasts (the compiler folds them into the FMAs as {1to16} memory
 *   operands), which keeps both FMA ports of Skylake-SP/Ice Lake/Sapphire Rapids/Zen 4 busy. 12 rows
 *   rather than 14 leave registers spare so the compiler never spills in the k loop.
 * - Partial tiles store through opmasks (columns) and a row count, instead of the AVX2 spill-and-copy;
 *   masked-off lanes are neither read nor written, so nothing outside the m x n corner is touched.
 * - The fused epilogue (ukr_12x32_epi_avx512, eng_gemm_epi_t) spills the tile and stores it row by row with bias and
 *   activation applied, in the operation order of the separate pass (act_avx512.c, act_avx512 shared through
 *   act_avx512.h): bitwise equal to storing and then running eng_bias_act_f32_avx512 over the rows. */
#include <assert.h>
#include <string.h>

#include "eng/eng_kernels.h"
#include "../../simd/simd_avx512.h"
#include "../act/act_avx512.h"

#define MR 12
#define NR 32

/* Writes one accumulator row to C: c = alpha * acc + beta * c (beta == 0: c is not read). Columns are
 * selected by the masks k0 (0..15) and k1 (16..31), rows by row < m. */
#define STORE_ROW(acc0, acc1, row)                                                    \
  do {                                                                                \
    if ((row) < m) {                                                                  \
      float *cr = c + (row) * ldc;                                                    \
      __m512 r0 = _mm512_mul_ps(acc0, va), r1 = _mm512_mul_ps(acc1, va);              \
      if (beta != 0.0f) {                                                             \
        r0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k0, cr), vb, r0);                  \
        r1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k1, cr + 16), vb, r1);             \
      }                                                                               \
      _mm512_mask_storeu_ps(cr, k0, r0);                                              \
      _mm512_mask_storeu_ps(cr + 16, k1, r1);                                         \
    }                                                                                 \
  } while (0)

/* The epilogue on the tile spilled to t (row-major MR x NR, 64-byte aligned): per row c = alpha * acc + beta * c as
 * in STORE_ROW, then + bias_row[i] (always added, 0 without a row bias, as the separate pass adds its bias_s),
 * + bias_col[j] when given, then the activation: the operations of eng_bias_act_f32_avx512 in the same order, so the
 * stored floats are bitwise those of the unfused path. Lanes past n are masked off (neither read nor written). */
ENG_INLINE void store_tile_epi_kind_avx512(const float *t, float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n,
                                           float alpha, float beta, const eng_gemm_epi_t *epi, const int kind) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __m512 p0 = _mm512_set1_ps(epi->act->p0), p1 = _mm512_set1_ps(epi->act->p1);
  const __mmask16 k0 = tail_mask_avx512(n < 16 ? n : 16), k1 = tail_mask_avx512(n > 16 ? n - 16 : 0);
  const int two = n > 16; /* the second half of the row has columns to store */
  __m512 bc0 = _mm512_setzero_ps(), bc1 = _mm512_setzero_ps();
  if (epi->bias_col) {
    bc0 = _mm512_maskz_loadu_ps(k0, epi->bias_col);
    if (two) bc1 = _mm512_maskz_loadu_ps(k1, epi->bias_col + 16);
  }
  for (size_t i = 0; i < m; i++) {
    float *cr = c + i * ldc;
    const __m512 bs = _mm512_set1_ps(epi->bias_row ? epi->bias_row[i] : 0.0f);
    __m512 r0 = _mm512_mul_ps(_mm512_load_ps(t + i * NR), va);
    if (beta != 0.0f) r0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k0, cr), vb, r0);
    r0 = _mm512_add_ps(r0, bs);
    if (epi->bias_col) r0 = _mm512_add_ps(r0, bc0);
    _mm512_mask_storeu_ps(cr, k0, act_avx512(r0, kind, p0, p1));
    if (two) {
      __m512 r1 = _mm512_mul_ps(_mm512_load_ps(t + i * NR + 16), va);
      if (beta != 0.0f) r1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k1, cr + 16), vb, r1);
      r1 = _mm512_add_ps(r1, bs);
      if (epi->bias_col) r1 = _mm512_add_ps(r1, bc1);
      _mm512_mask_storeu_ps(cr + 16, k1, act_avx512(r1, kind, p0, p1));
    }
  }
}

/* One copy per common activation, so its code is inlined without a switch per vector (as store_tile_epi_avx2). */
static void store_tile_epi_avx512(const float *t, float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha,
                                  float beta, const eng_gemm_epi_t *epi) {
  switch (epi->act->kind) {
    case ENG_ACT_NONE: store_tile_epi_kind_avx512(t, c, ldc, m, n, alpha, beta, epi, ENG_ACT_NONE); break;
    case ENG_ACT_RELU: store_tile_epi_kind_avx512(t, c, ldc, m, n, alpha, beta, epi, ENG_ACT_RELU); break;
    case ENG_ACT_CLIP: store_tile_epi_kind_avx512(t, c, ldc, m, n, alpha, beta, epi, ENG_ACT_CLIP); break;
    default: store_tile_epi_kind_avx512(t, c, ldc, m, n, alpha, beta, epi, epi->act->kind); break;
  }
}

/* The tile product; epi == NULL stores plainly (STORE_ROW), else through store_tile_epi_avx512. Inlined into the two
 * entry points below, so the plain kernel carries no epilogue code. */
ENG_INLINE void ukr_12x32_body(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                               size_t ldc, size_t m, size_t n, float alpha, float beta, const eng_gemm_epi_t *epi) {
  assert(m <= MR && n <= NR);
  __m512 c00 = _mm512_setzero_ps(), c01 = _mm512_setzero_ps(), c10 = _mm512_setzero_ps(), c11 = _mm512_setzero_ps();
  __m512 c20 = _mm512_setzero_ps(), c21 = _mm512_setzero_ps(), c30 = _mm512_setzero_ps(), c31 = _mm512_setzero_ps();
  __m512 c40 = _mm512_setzero_ps(), c41 = _mm512_setzero_ps(), c50 = _mm512_setzero_ps(), c51 = _mm512_setzero_ps();
  __m512 c60 = _mm512_setzero_ps(), c61 = _mm512_setzero_ps(), c70 = _mm512_setzero_ps(), c71 = _mm512_setzero_ps();
  __m512 c80 = _mm512_setzero_ps(), c81 = _mm512_setzero_ps(), c90 = _mm512_setzero_ps(), c91 = _mm512_setzero_ps();
  __m512 ca0 = _mm512_setzero_ps(), ca1 = _mm512_setzero_ps(), cb0 = _mm512_setzero_ps(), cb1 = _mm512_setzero_ps();
  if (m == MR && n == NR) {
    for (int i = 0; i < MR; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
  }
#define FMA_ROW(i, acc0, acc1)                         \
  do {                                                 \
    __m512 av = _mm512_set1_ps(a[(off_a) + (i)]);      \
    acc0 = _mm512_fmadd_ps(av, b0, acc0);              \
    acc1 = _mm512_fmadd_ps(av, b1, acc1);              \
  } while (0)
#define STEP(off_a_, off_b)                                                           \
  do {                                                                                \
    const size_t off_a = (off_a_);                                                    \
    __m512 b0 = _mm512_loadu_ps(b + (off_b)), b1 = _mm512_loadu_ps(b + (off_b) + 16); \
    FMA_ROW(0, c00, c01);                                                             \
    FMA_ROW(1, c10, c11);                                                             \
    FMA_ROW(2, c20, c21);                                                             \
    FMA_ROW(3, c30, c31);                                                             \
    FMA_ROW(4, c40, c41);                                                             \
    FMA_ROW(5, c50, c51);                                                             \
    FMA_ROW(6, c60, c61);                                                             \
    FMA_ROW(7, c70, c71);                                                             \
    FMA_ROW(8, c80, c81);                                                             \
    FMA_ROW(9, c90, c91);                                                             \
    FMA_ROW(10, ca0, ca1);                                                            \
    FMA_ROW(11, cb0, cb1);                                                            \
  } while (0)
  /* Unrolled by 2, not 4 as in the AVX2 twin: with 24 accumulators, GCC 12 hoists the loads of a 4-step
   * body and spills one register per iteration; 2 steps keep the loop spill-free. */
  size_t p = 0;
  for (; p + 2 <= kc; p += 2) {
    /* B streams at 128 bytes (two lines) per k step: fetch both lines of each step 8 steps ahead */
    _mm_prefetch((const char *)(b + 8 * NR), _MM_HINT_T0);
    _mm_prefetch((const char *)(b + 8 * NR + 16), _MM_HINT_T0);
    _mm_prefetch((const char *)(b + 9 * NR), _MM_HINT_T0);
    _mm_prefetch((const char *)(b + 9 * NR + 16), _MM_HINT_T0);
    STEP(0, 0);
    STEP(MR, NR);
    a += 2 * MR;
    b += 2 * NR;
  }
  for (; p < kc; p++) {
    STEP(0, 0);
    a += MR;
    b += NR;
  }
#undef STEP
#undef FMA_ROW
  if (epi) {
    float t[MR * NR] __attribute__((aligned(64)));
    _mm512_store_ps(t + 0 * NR, c00), _mm512_store_ps(t + 0 * NR + 16, c01);
    _mm512_store_ps(t + 1 * NR, c10), _mm512_store_ps(t + 1 * NR + 16, c11);
    _mm512_store_ps(t + 2 * NR, c20), _mm512_store_ps(t + 2 * NR + 16, c21);
    _mm512_store_ps(t + 3 * NR, c30), _mm512_store_ps(t + 3 * NR + 16, c31);
    _mm512_store_ps(t + 4 * NR, c40), _mm512_store_ps(t + 4 * NR + 16, c41);
    _mm512_store_ps(t + 5 * NR, c50), _mm512_store_ps(t + 5 * NR + 16, c51);
    _mm512_store_ps(t + 6 * NR, c60), _mm512_store_ps(t + 6 * NR + 16, c61);
    _mm512_store_ps(t + 7 * NR, c70), _mm512_store_ps(t + 7 * NR + 16, c71);
    _mm512_store_ps(t + 8 * NR, c80), _mm512_store_ps(t + 8 * NR + 16, c81);
    _mm512_store_ps(t + 9 * NR, c90), _mm512_store_ps(t + 9 * NR + 16, c91);
    _mm512_store_ps(t + 10 * NR, ca0), _mm512_store_ps(t + 10 * NR + 16, ca1);
    _mm512_store_ps(t + 11 * NR, cb0), _mm512_store_ps(t + 11 * NR + 16, cb1);
    store_tile_epi_avx512(t, c, ldc, m, n, alpha, beta, epi);
    return;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  const __mmask16 k0 = tail_mask_avx512(n < 16 ? n : 16), k1 = tail_mask_avx512(n > 16 ? n - 16 : 0);
  STORE_ROW(c00, c01, 0);
  STORE_ROW(c10, c11, 1);
  STORE_ROW(c20, c21, 2);
  STORE_ROW(c30, c31, 3);
  STORE_ROW(c40, c41, 4);
  STORE_ROW(c50, c51, 5);
  STORE_ROW(c60, c61, 6);
  STORE_ROW(c70, c71, 7);
  STORE_ROW(c80, c81, 8);
  STORE_ROW(c90, c91, 9);
  STORE_ROW(ca0, ca1, 10);
  STORE_ROW(cb0, cb1, 11);
}
#undef STORE_ROW

/* The entry points: without and with the fused epilogue. */
static void ukr_12x32_avx512(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                             size_t ldc, size_t m, size_t n, float alpha, float beta) {
  ukr_12x32_body(kc, a, b, c, ldc, m, n, alpha, beta, NULL);
}
static void ukr_12x32_epi_avx512(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b,
                                 float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                                 const eng_gemm_epi_t *epi) {
  ukr_12x32_body(kc, a, b, c, ldc, m, n, alpha, beta, epi);
}

/* Cache blocking for a 48 KiB L1D and a 1-2 MiB L2 per core (Ice Lake-SP, Sapphire Rapids; 32 KiB/1 MiB on
 * Skylake-SP and Zen 4 still fits the L2 part):
 * - kc = 192: the kernel re-reads one packed B micro-panel (kc x 32 floats = 24 KiB) for every A
 *   micro-panel of the block, so that panel must stay in L1 next to the streaming A micro-panel
 *   (kc x 12 = 9 KiB): 33 KiB of 48 KiB, with room left for the C tile and prefetches. kc = 256 would need
 *   44 KiB and evict the B panel.
 * - mc = 480 (40 tiles of 12): the packed A block (480 x 192 floats = 360 KiB) stays in L2 while the B
 *   micro-panels cycle through it, a third of a 1 MiB L2, leaving room for B panels and C lines.
 * - nc = 4096 (128 panels of 32): the packed B block (192 x 4096 floats = 3 MiB) lives in the shared L3;
 *   larger only matters for very wide N, where it would be re-packed per jc block anyway. */
const eng_gemm_f32_impl_t eng_gemm_f32_avx512 = {MR, NR, 480, 192, 4096, ukr_12x32_avx512, NULL, ukr_12x32_epi_avx512};

void eng_gemv_f32_avx512(size_t n, size_t k, float alpha, const float *ENG_RESTRICT x, const float *ENG_RESTRICT b,
                         size_t ldb, int trans_b, float beta, float *ENG_RESTRICT y) {
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  if (trans_b) { /* y[j] = dot(x, row j): four rows at a time share the loads of x */
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
      const float *r0 = b + j * ldb, *r1 = r0 + ldb, *r2 = r1 + ldb, *r3 = r2 + ldb;
      __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
      size_t p = 0;
      for (; p + 16 <= k; p += 16) {
        __m512 xv = _mm512_loadu_ps(x + p);
        s0 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r0 + p), s0);
        s1 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r1 + p), s1);
        s2 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r2 + p), s2);
        s3 = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r3 + p), s3);
      }
      if (p < k) {
        __mmask16 mk = tail_mask_avx512(k - p);
        __m512 xv = _mm512_maskz_loadu_ps(mk, x + p);
        s0 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mk, r0 + p), s0);
        s1 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mk, r1 + p), s1);
        s2 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mk, r2 + p), s2);
        s3 = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mk, r3 + p), s3);
      }
      float d[4] = {hsum_avx512(s0), hsum_avx512(s1), hsum_avx512(s2), hsum_avx512(s3)};
      for (int i = 0; i < 4; i++) y[j + i] = beta == 0.0f ? alpha * d[i] : alpha * d[i] + beta * y[j + i];
    }
    for (; j < n; j++) {
      const float *r0 = b + j * ldb;
      __m512 s0 = _mm512_setzero_ps();
      size_t p = 0;
      for (; p + 16 <= k; p += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + p), _mm512_loadu_ps(r0 + p), s0);
      if (p < k) {
        __mmask16 mk = tail_mask_avx512(k - p);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x + p), _mm512_maskz_loadu_ps(mk, r0 + p), s0);
      }
      float d = hsum_avx512(s0);
      y[j] = beta == 0.0f ? alpha * d : alpha * d + beta * y[j];
    }
    return;
  }
  /* y = x B: column blocks of NB held in an L1 accumulator; four rows of B per pass over it, so each
   * accumulator load/store is amortised over four FMAs and every row read is a contiguous run. */
  enum { NB = 512 };
  float acc[NB] __attribute__((aligned(64)));
  for (size_t j0 = 0; j0 < n; j0 += NB) {
    size_t nb = n - j0 < NB ? n - j0 : NB;
    size_t nv = nb & ~(size_t)15;
    memset(acc, 0, sizeof(float) * ((nb + 15) & ~(size_t)15));
    size_t p = 0;
    for (; p + 4 <= k; p += 4) {
      const float *r0 = b + p * ldb + j0, *r1 = r0 + ldb, *r2 = r1 + ldb, *r3 = r2 + ldb;
      __m512 x0 = _mm512_set1_ps(x[p]), x1 = _mm512_set1_ps(x[p + 1]), x2 = _mm512_set1_ps(x[p + 2]), x3 = _mm512_set1_ps(x[p + 3]);
      size_t j = 0;
      for (; j < nv; j += 16) {
        __m512 s = _mm512_load_ps(acc + j);
        s = _mm512_fmadd_ps(x0, _mm512_loadu_ps(r0 + j), s);
        s = _mm512_fmadd_ps(x1, _mm512_loadu_ps(r1 + j), s);
        s = _mm512_fmadd_ps(x2, _mm512_loadu_ps(r2 + j), s);
        s = _mm512_fmadd_ps(x3, _mm512_loadu_ps(r3 + j), s);
        _mm512_store_ps(acc + j, s);
      }
      if (j < nb) {
        __mmask16 mk = tail_mask_avx512(nb - j);
        __m512 s = _mm512_load_ps(acc + j);
        s = _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(mk, r0 + j), s);
        s = _mm512_fmadd_ps(x1, _mm512_maskz_loadu_ps(mk, r1 + j), s);
        s = _mm512_fmadd_ps(x2, _mm512_maskz_loadu_ps(mk, r2 + j), s);
        s = _mm512_fmadd_ps(x3, _mm512_maskz_loadu_ps(mk, r3 + j), s);
        _mm512_store_ps(acc + j, s);
      }
    }
    for (; p < k; p++) {
      const float *r0 = b + p * ldb + j0;
      __m512 x0 = _mm512_set1_ps(x[p]);
      size_t j = 0;
      for (; j < nv; j += 16) _mm512_store_ps(acc + j, _mm512_fmadd_ps(x0, _mm512_loadu_ps(r0 + j), _mm512_load_ps(acc + j)));
      if (j < nb) {
        __mmask16 mk = tail_mask_avx512(nb - j);
        _mm512_store_ps(acc + j, _mm512_fmadd_ps(x0, _mm512_maskz_loadu_ps(mk, r0 + j), _mm512_load_ps(acc + j)));
      }
    }
    float *yj = y + j0;
    size_t j = 0;
    for (; j < nv; j += 16) {
      __m512 r = _mm512_mul_ps(_mm512_load_ps(acc + j), va);
      if (beta != 0.0f) r = _mm512_fmadd_ps(_mm512_loadu_ps(yj + j), vb, r);
      _mm512_storeu_ps(yj + j, r);
    }
    if (j < nb) { /* masked tail: y past n is neither read nor written */
      __mmask16 mk = tail_mask_avx512(nb - j);
      __m512 r = _mm512_mul_ps(_mm512_load_ps(acc + j), va);
      if (beta != 0.0f) r = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, yj + j), vb, r);
      _mm512_mask_storeu_ps(yj + j, mk, r);
    }
  }
}
