/* gemm_avx2.c: SGEMM micro-kernel (6x16) and GEMV.  ISA: avx2 (-mavx2 -mfma -mf16c).
 * Must match gemm_scalar.c (ukr_scalar, eng_gemv_f32_scalar) up to FMA rounding: sums run over k in
 * increasing order per output, with fused multiply-adds (except the narrow-tail kernel ukr_tail_avx2, which sums
 * 8 strided partial sums; a shape always takes the same kernels, so results do not depend on the thread count).
 * The 6x16 tile keeps 12 accumulators, 2 B vectors and 1 broadcast in the 16 YMM registers: per k step
 * 12 FMAs against 2 loads + 6 broadcasts, which the two FMA pipes of Haswell/Zen can sustain. */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "eng/eng_kernels.h"
#include "tile_6x16_avx2.h"

/* One k step of the 6x16 tile: two B vectors, six broadcasts of A(i, p) given by the expression AI(i). */
#define TILE_ROW(AI, i)                                      \
  do {                                                       \
    __m256 av = _mm256_broadcast_ss(AI(i));                  \
    acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);          \
    acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);          \
  } while (0)
#define TILE_STEP(AI, bp)                                                  \
  do {                                                                     \
    __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps((bp) + 8);       \
    TILE_ROW(AI, 0);                                                       \
    TILE_ROW(AI, 1);                                                       \
    TILE_ROW(AI, 2);                                                       \
    TILE_ROW(AI, 3);                                                       \
    TILE_ROW(AI, 4);                                                       \
    TILE_ROW(AI, 5);                                                       \
  } while (0)

#if defined(__GNUC__) && defined(__x86_64__) && !defined(ENG_NO_ASM)
/* The k loop in inline assembly: GCC spills some of the 12 accumulators of the intrinsic version to the
 * stack, which costs a third of the speed. ymm0-11 hold the tile (row i in ymm{2i, 2i+1}), ymm12-13 the B
 * row, ymm14-15 alternate broadcasts of A. Four k steps per iteration, then a 1-step remainder loop. The
 * tile is left in acc[] (row-major 6 x 16) for the C epilogue. */
/* one k step on packed A: B row at BOFF(%b), A(i, p) at AOFF + 4i (%a) */
#define ASM_STEP_PACKED(AOFF, BOFF)                                                                           \
  "vmovups " #BOFF "(%[b]), %%ymm12\n\tvmovups " #BOFF "+32(%[b]), %%ymm13\n\t" ASM_BCAST6_PACKED(AOFF)
/* one k step on A in place: rows 0-2 at a, a+lda, a+2lda; rows 3-5 at a3, a3+lda, a3+2lda (lda in bytes) */
#define ASM_STEP_AROW(AOFF, BOFF)                                                                             \
  "vmovups " #BOFF "(%[b]), %%ymm12\n\tvmovups " #BOFF "+32(%[b]), %%ymm13\n\t"                            \
  "vbroadcastss " #AOFF "(%[a]), %%ymm14\n\t" ASM_FMA_ROW("ymm14", 0, 1)                                  \
  "vbroadcastss " #AOFF "(%[a], %[lda], 1), %%ymm15\n\t" ASM_FMA_ROW("ymm15", 2, 3)                       \
  "vbroadcastss " #AOFF "(%[a], %[lda], 2), %%ymm14\n\t" ASM_FMA_ROW("ymm14", 4, 5)                       \
  "vbroadcastss " #AOFF "(%[a3]), %%ymm15\n\t" ASM_FMA_ROW("ymm15", 6, 7)                                 \
  "vbroadcastss " #AOFF "(%[a3], %[lda], 1), %%ymm14\n\t" ASM_FMA_ROW("ymm14", 8, 9)                      \
  "vbroadcastss " #AOFF "(%[a3], %[lda], 2), %%ymm15\n\t" ASM_FMA_ROW("ymm15", 10, 11)
ENG_INLINE void ukr_6x16_body(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                              size_t ldc, size_t m, size_t n, float alpha, float beta, const eng_gemm_epi_t *epi) {
  assert(m <= MR && n <= NR);
  float t[MR * NR] __attribute__((aligned(32)));
  size_t k4 = kc / 4, k1 = kc % 4;
  for (size_t i = 0; i < m; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
  __asm__ volatile(
      ASM_ZERO_ACC
      "test %[k4], %[k4]\n\t"
      "jz 2f\n\t"
      "1:\n\t"
      "prefetcht0 384(%[a])\n\t"
      "prefetcht0 1024(%[b])\n\tprefetcht0 1088(%[b])\n\tprefetcht0 1152(%[b])\n\tprefetcht0 1216(%[b])\n\t"
      ASM_STEP_PACKED(0, 0) ASM_STEP_PACKED(24, 64) ASM_STEP_PACKED(48, 128) ASM_STEP_PACKED(72, 192)
      "add $96, %[a]\n\t"
      "add $256, %[b]\n\t"
      "dec %[k4]\n\t"
      "jnz 1b\n\t"
      "2:\n\t"
      "test %[k1], %[k1]\n\t"
      "jz 4f\n\t"
      "3:\n\t"
      ASM_STEP_PACKED(0, 0)
      "add $24, %[a]\n\t"
      "add $64, %[b]\n\t"
      "dec %[k1]\n\t"
      "jnz 3b\n\t"
      "4:\n\t"
      ASM_STORE_ACC("%[t]")
      "vzeroupper\n\t"
      : [a] "+r"(a), [b] "+r"(b), [k4] "+r"(k4), [k1] "+r"(k1)
      : [t] "r"(t)
      : ASM_CLOBBERS);
  store_spilled_tile_avx2(t, c, ldc, m, n, alpha, beta, epi);
}
#else
ENG_INLINE void ukr_6x16_body(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                              size_t ldc, size_t m, size_t n, float alpha, float beta, const eng_gemm_epi_t *epi) {
  assert(m <= MR && n <= NR);
  __m256 acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#define AP(i) (a + (i))
  for (size_t p = 0; p < kc; p++) {
    TILE_STEP(AP, b);
    a += MR, b += NR;
  }
#undef AP
  if (epi)
    store_tile_epi_avx2(c, ldc, m, n, alpha, beta, acc, epi);
  else
    store_tile_avx2(c, ldc, m, n, alpha, beta, acc);
}
#endif /* inline assembly */

/* Partial tiles (m < MR) in intrinsics: rows >= m must not be read, which the fixed addressing of the
 * assembly loop cannot express; they are at most one row block per C block, so speed does not matter. */
static void ukr_arow_partial_avx2(size_t kc, const float *ENG_RESTRICT a, size_t lda, const float *ENG_RESTRICT b,
                                  float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                                  const eng_gemm_epi_t *epi) {
  const float *a0 = a, *a1 = a + (m > 1 ? lda : 0), *a2 = a + (m > 2 ? 2 * lda : 0);
  const float *a3 = a + (m > 3 ? 3 * lda : 0), *a4 = a + (m > 4 ? 4 * lda : 0), *a5 = a + (m > 5 ? 5 * lda : 0);
  __m256 acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#define AR(i) (a##i + p)
  for (size_t p = 0; p < kc; p++, b += NR) TILE_STEP(AR, b);
#undef AR
  if (epi)
    store_tile_epi_avx2(c, ldc, m, n, alpha, beta, acc, epi);
  else
    store_tile_avx2(c, ldc, m, n, alpha, beta, acc);
}

/* A read in place: rows of the tile at a + i*lda. */
ENG_INLINE void ukr_arow_body(size_t kc, const float *ENG_RESTRICT a, size_t lda, const float *ENG_RESTRICT b,
                              float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                              const eng_gemm_epi_t *epi) {
  assert(m >= 1 && m <= MR && n <= NR);
#if defined(__GNUC__) && defined(__x86_64__) && !defined(ENG_NO_ASM)
  if (m == MR) {
    float t[MR * NR] __attribute__((aligned(32)));
    size_t k4 = kc / 4, k1 = kc % 4, ldab = lda * sizeof(float);
    const float *a3 = a + 3 * lda;
    for (size_t i = 0; i < m; i++) _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
    __asm__ volatile(
        ASM_ZERO_ACC
        "test %[k4], %[k4]\n\t"
        "jz 2f\n\t"
        "1:\n\t"
        "prefetcht0 128(%[a])\n\tprefetcht0 128(%[a], %[lda], 1)\n\tprefetcht0 128(%[a], %[lda], 2)\n\t"
        "prefetcht0 128(%[a3])\n\tprefetcht0 128(%[a3], %[lda], 1)\n\tprefetcht0 128(%[a3], %[lda], 2)\n\t"
        "prefetcht0 1024(%[b])\n\tprefetcht0 1088(%[b])\n\tprefetcht0 1152(%[b])\n\tprefetcht0 1216(%[b])\n\t"
        ASM_STEP_AROW(0, 0) ASM_STEP_AROW(4, 64) ASM_STEP_AROW(8, 128) ASM_STEP_AROW(12, 192)
        "add $16, %[a]\n\t"
        "add $16, %[a3]\n\t"
        "add $256, %[b]\n\t"
        "dec %[k4]\n\t"
        "jnz 1b\n\t"
        "2:\n\t"
        "test %[k1], %[k1]\n\t"
        "jz 4f\n\t"
        "3:\n\t"
        ASM_STEP_AROW(0, 0)
        "add $4, %[a]\n\t"
        "add $4, %[a3]\n\t"
        "add $64, %[b]\n\t"
        "dec %[k1]\n\t"
        "jnz 3b\n\t"
        "4:\n\t"
        ASM_STORE_ACC("%[t]")
        "vzeroupper\n\t"
        : [a] "+r"(a), [a3] "+r"(a3), [b] "+r"(b), [k4] "+r"(k4), [k1] "+r"(k1)
        : [t] "r"(t), [lda] "r"(ldab)
        : ASM_CLOBBERS);
    store_spilled_tile_avx2(t, c, ldc, m, n, alpha, beta, epi);
    return;
  }
#endif
  ukr_arow_partial_avx2(kc, a, lda, b, c, ldc, m, n, alpha, beta, epi);
}

/* The entry points: without and with the fused epilogue (the bodies are inlined into each). */
static void ukr_6x16_avx2(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                          size_t ldc, size_t m, size_t n, float alpha, float beta) {
  ukr_6x16_body(kc, a, b, c, ldc, m, n, alpha, beta, NULL);
}
static void ukr_6x16_epi_avx2(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b,
                              float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                              const eng_gemm_epi_t *epi) {
  ukr_6x16_body(kc, a, b, c, ldc, m, n, alpha, beta, epi);
}
static void ukr_arow_6x16_avx2(size_t kc, const float *ENG_RESTRICT a, size_t lda, const float *ENG_RESTRICT b,
                               float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta) {
  ukr_arow_body(kc, a, lda, b, c, ldc, m, n, alpha, beta, NULL);
}
static void ukr_arow_6x16_epi_avx2(size_t kc, const float *ENG_RESTRICT a, size_t lda, const float *ENG_RESTRICT b,
                                   float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                                   const eng_gemm_epi_t *epi) {
  ukr_arow_body(kc, a, lda, b, c, ldc, m, n, alpha, beta, epi);
}
#undef TILE_STEP
#undef TILE_ROW

/* The narrow last panel (eng_gemm_f32_impl_t.ukr_tail): each of the n <= 4 columns as six dot products along k,
 * 8 k values per vector, then the tile's usual store. Per 8 k steps and column: 7 loads and 6 FMAs, where the 6x16
 * tile spends 8 k steps of 12 FMAs whatever the width. Rows past m are not read (they repeat row 0). The sums run in
 * another order than the full tile's (8 partial sums, then the remainder): rounding differs, within the same bound. */
static void ukr_tail_avx2(size_t kc, const float *ENG_RESTRICT a, size_t lda, const float *ENG_RESTRICT bt,
                          float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha, float beta,
                          const eng_gemm_epi_t *epi) {
  assert(m >= 1 && m <= MR && n >= 1 && n <= ENG_GEMM_TAIL_COLS);
  const float *a0 = a, *a1 = a + (m > 1 ? lda : 0), *a2 = a + (m > 2 ? 2 * lda : 0);
  const float *a3 = a + (m > 3 ? 3 * lda : 0), *a4 = a + (m > 4 ? 4 * lda : 0), *a5 = a + (m > 5 ? 5 * lda : 0);
  float t[MR * NR] __attribute__((aligned(32)));
  const size_t k8 = kc / 8 * 8;
  for (size_t j = 0; j < n; j++) {
    const float *bj = bt + j * kc;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0;
    for (size_t p = 0; p < k8; p += 8) {
      const __m256 bv = _mm256_loadu_ps(bj + p);
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a0 + p), bv, s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a1 + p), bv, s1);
      s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a2 + p), bv, s2);
      s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a3 + p), bv, s3);
      s4 = _mm256_fmadd_ps(_mm256_loadu_ps(a4 + p), bv, s4);
      s5 = _mm256_fmadd_ps(_mm256_loadu_ps(a5 + p), bv, s5);
    }
    float r0 = hsum_avx2(s0), r1 = hsum_avx2(s1), r2 = hsum_avx2(s2), r3 = hsum_avx2(s3), r4 = hsum_avx2(s4),
          r5 = hsum_avx2(s5);
    for (size_t p = k8; p < kc; p++) {
      const float bp = bj[p];
      r0 = fmaf(a0[p], bp, r0), r1 = fmaf(a1[p], bp, r1), r2 = fmaf(a2[p], bp, r2);
      r3 = fmaf(a3[p], bp, r3), r4 = fmaf(a4[p], bp, r4), r5 = fmaf(a5[p], bp, r5);
    }
    t[0 * NR + j] = r0, t[1 * NR + j] = r1, t[2 * NR + j] = r2, t[3 * NR + j] = r3, t[4 * NR + j] = r4;
    t[5 * NR + j] = r5;
  }
  store_spilled_tile_avx2(t, c, ldc, m, n, alpha, beta, epi);
}

/* mc = 24 tiles of 6 rows (A block 144 x 256 floats = 144 KiB, in L2); kc = 256 (a B panel of 16 KiB in L1). */
const eng_gemm_f32_impl_t eng_gemm_f32_avx2 = {MR, NR, 144, 256, 4080, ukr_6x16_avx2, ukr_arow_6x16_avx2,
                                               ukr_6x16_epi_avx2, ukr_arow_6x16_epi_avx2, ukr_tail_avx2};

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
  /* y = x B: column blocks of NB held in an accumulator; eight rows of B per pass over it, so each
   * accumulator load/store is amortised over eight FMAs and every row read is a long contiguous run
   * (16 KiB: short runs at a large row stride defeat the hardware prefetcher; NB = 1024, 2048 and 4096
   * gave 19, 22 and 25 GB/s on one Zen 3 core for a 4096 x 4096 B). A software prefetch one line ahead of
   * each row helps a little more. */
  enum { NB = 4096 };
  float acc[NB] __attribute__((aligned(32)));
  for (size_t j0 = 0; j0 < n; j0 += NB) {
    size_t nb = n - j0 < NB ? n - j0 : NB;
    size_t nv = nb & ~(size_t)7;
    memset(acc, 0, sizeof(float) * ((nb + 7) & ~(size_t)7));
    size_t p = 0;
    for (; p + 8 <= k; p += 8) { /* eight rows per pass, in two independent FMA chains */
      const float *r0 = b + p * ldb + j0;
      __m256 x0 = _mm256_set1_ps(x[p]), x1 = _mm256_set1_ps(x[p + 1]), x2 = _mm256_set1_ps(x[p + 2]), x3 = _mm256_set1_ps(x[p + 3]);
      __m256 x4 = _mm256_set1_ps(x[p + 4]), x5 = _mm256_set1_ps(x[p + 5]), x6 = _mm256_set1_ps(x[p + 6]), x7 = _mm256_set1_ps(x[p + 7]);
      size_t j = 0;
      for (; j < nv; j += 8) {
        const float *q = r0 + j;
        if ((j & 15) == 0) { /* one prefetch per cache line of each row, 1 KiB ahead */
          for (int r = 0; r < 8; r++) _mm_prefetch((const char *)(q + r * ldb + 64), _MM_HINT_T0);
        }
        __m256 s = _mm256_fmadd_ps(x0, _mm256_loadu_ps(q), _mm256_load_ps(acc + j));
        __m256 t = _mm256_mul_ps(x1, _mm256_loadu_ps(q + ldb));
        s = _mm256_fmadd_ps(x2, _mm256_loadu_ps(q + 2 * ldb), s);
        t = _mm256_fmadd_ps(x3, _mm256_loadu_ps(q + 3 * ldb), t);
        s = _mm256_fmadd_ps(x4, _mm256_loadu_ps(q + 4 * ldb), s);
        t = _mm256_fmadd_ps(x5, _mm256_loadu_ps(q + 5 * ldb), t);
        s = _mm256_fmadd_ps(x6, _mm256_loadu_ps(q + 6 * ldb), s);
        t = _mm256_fmadd_ps(x7, _mm256_loadu_ps(q + 7 * ldb), t);
        _mm256_store_ps(acc + j, _mm256_add_ps(s, t));
      }
      if (j < nb) {
        __m256i mk = tail_mask_avx2(nb - j);
        const float *q = r0 + j;
        __m256 s = _mm256_fmadd_ps(x0, _mm256_maskload_ps(q, mk), _mm256_load_ps(acc + j));
        __m256 t = _mm256_mul_ps(x1, _mm256_maskload_ps(q + ldb, mk));
        s = _mm256_fmadd_ps(x2, _mm256_maskload_ps(q + 2 * ldb, mk), s);
        t = _mm256_fmadd_ps(x3, _mm256_maskload_ps(q + 3 * ldb, mk), t);
        s = _mm256_fmadd_ps(x4, _mm256_maskload_ps(q + 4 * ldb, mk), s);
        t = _mm256_fmadd_ps(x5, _mm256_maskload_ps(q + 5 * ldb, mk), t);
        s = _mm256_fmadd_ps(x6, _mm256_maskload_ps(q + 6 * ldb, mk), s);
        t = _mm256_fmadd_ps(x7, _mm256_maskload_ps(q + 7 * ldb, mk), t);
        _mm256_store_ps(acc + j, _mm256_add_ps(s, t));
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
