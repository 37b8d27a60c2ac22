/* gemm_neon.c: SGEMM micro-kernel (8x12) and GEMV.  ISA: neon (AArch64 Advanced SIMD, baseline: no extra
 * flags; no dotprod/fp16).
 * Must match gemm_scalar.c (ukr_scalar, eng_gemv_f32_scalar) up to FMA rounding: sums run over k in
 * increasing order per output, with fused multiply-adds. The micro-kernel and the y = x B GEMV do the same
 * operations in the same order as gemm_avx2.c, so for the same inputs they give the same bits (checked on a
 * 48x300x48 product and GEMV); only where beta != 0 in AVX2's scalar tails (alpha*acc + beta*c unfused,
 * here fused) and in the dot-product GEMV (trans_b: 4 lane sums instead of 8) do they differ, in rounding.
 * The 8x12 tile keeps 24 accumulators, 3 B vectors and 2 A vectors in the 32 V registers (29 used): per k
 * step 24 FMAs (vfmaq_laneq_f32 takes the A value straight from a lane, no broadcast) against 5 loads, which
 * keeps the one or two FMA pipes of Cortex-A53/A72/A76 and Neoverse cores busy.
 * Twin of gemm_avx2.c; tails (partial tiles, k % 4, n % 4) go through the same vector code on zero-padded
 * copies instead of scalar loops, so an output's value does not depend on where it sits in a tile.
 * The fused epilogue (ukr_8x12_epi_neon, eng_gemm_epi_t) spills the tile and stores it row by row with bias and
 * activation applied, in the operation order of the separate pass (act_neon.c, act_neon shared through act_neon.h):
 * bitwise equal to storing and then running eng_bias_act_f32_neon over the rows. */
#include <assert.h>
#include <string.h>

#include "eng/eng_kernels.h"
#include "../../simd/simd_neon.h"
#include "../act/act_neon.h"

#define MR 8
#define NR 12

/* r = alpha * acc + beta * c for one 4-wide piece of a C row (beta == 0: c is not read). */
static inline float32x4_t scale_neon(float32x4_t acc, const float *c, float32x4_t va, float32x4_t vb, float beta) {
  float32x4_t r = vmulq_f32(acc, va);
  if (beta != 0.0f) r = vfmaq_f32(r, vld1q_f32(c), vb);
  return r;
}

/* Writes the accumulators of one row to C (full tile). */
#define STORE_ROW(acc0, acc1, acc2, row)                        \
  do {                                                          \
    float *cr = c + (row) * ldc;                                \
    float32x4_t r0 = scale_neon(acc0, cr, va, vb, beta);        \
    float32x4_t r1 = scale_neon(acc1, cr + 4, va, vb, beta);    \
    float32x4_t r2 = scale_neon(acc2, cr + 8, va, vb, beta);    \
    vst1q_f32(cr, r0);                                          \
    vst1q_f32(cr + 4, r1);                                      \
    vst1q_f32(cr + 8, r2);                                      \
  } while (0)

/* The epilogue on the tile spilled to t (row-major MR x NR): per row c = alpha * acc + beta * c (scale_neon, as the
 * plain store), then + bias_row[i] (always added, 0 without a row bias, as the separate pass adds its bias_s),
 * + bias_col[j] when given, then the activation: the operations of eng_bias_act_f32_neon in the same order, so the
 * stored floats are bitwise those of the unfused path. A partial row goes through a zero-padded copy (C and the
 * column bias are read only inside the m x n corner); lanes past n are computed but never stored. */
ENG_INLINE void store_tile_epi_kind_neon(const float *t, float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n,
                                         float alpha, float beta, const eng_gemm_epi_t *epi, const int kind) {
  const float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
  const float32x4_t p0 = vdupq_n_f32(epi->act->p0), p1 = vdupq_n_f32(epi->act->p1);
  float bc[NR] = {0.0f}, row[NR] = {0.0f};
  if (epi->bias_col) memcpy(bc, epi->bias_col, n * sizeof(float));
  for (size_t i = 0; i < m; i++) {
    float *cr = c + i * ldc, *dst = cr;
    const float32x4_t bs = vdupq_n_f32(epi->bias_row ? epi->bias_row[i] : 0.0f);
    if (n < NR) { /* partial row: through row[] */
      if (beta != 0.0f) memcpy(row, cr, n * sizeof(float));
      dst = row;
    }
    for (size_t j = 0; j < n; j += 4) {
      float32x4_t r = scale_neon(vld1q_f32(t + i * NR + j), dst + j, va, vb, beta);
      r = vaddq_f32(r, bs);
      if (epi->bias_col) r = vaddq_f32(r, vld1q_f32(bc + j));
      vst1q_f32(dst + j, act_neon(r, kind, p0, p1));
    }
    if (n < NR) memcpy(cr, row, n * sizeof(float));
  }
}

/* One copy per common activation, so its code is inlined without a switch per vector (as store_tile_epi_avx2). */
static void store_tile_epi_neon(const float *t, float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, float alpha,
                                float beta, const eng_gemm_epi_t *epi) {
  switch (epi->act->kind) {
    case ENG_ACT_NONE: store_tile_epi_kind_neon(t, c, ldc, m, n, alpha, beta, epi, ENG_ACT_NONE); break;
    case ENG_ACT_RELU: store_tile_epi_kind_neon(t, c, ldc, m, n, alpha, beta, epi, ENG_ACT_RELU); break;
    case ENG_ACT_CLIP: store_tile_epi_kind_neon(t, c, ldc, m, n, alpha, beta, epi, ENG_ACT_CLIP); break;
    default: store_tile_epi_kind_neon(t, c, ldc, m, n, alpha, beta, epi, epi->act->kind); break;
  }
}

/* The tile product; epi == NULL stores plainly, else through store_tile_epi_neon. Inlined into the two entry points
 * below, so the plain kernel carries no epilogue code. */
ENG_INLINE void ukr_8x12_body(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                              size_t ldc, size_t m, size_t n, float alpha, float beta, const eng_gemm_epi_t *epi) {
  assert(m <= MR && n <= NR);
  float32x4_t c00 = vdupq_n_f32(0.0f), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
  float32x4_t c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
  float32x4_t c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
  float32x4_t c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
  if (m == MR && n == NR) {
    for (int i = 0; i < MR; i++) __builtin_prefetch(c + i * ldc, 1, 3);
  }
#define STEP(off_a, off_b)                                                                      \
  do {                                                                                          \
    float32x4_t b0 = vld1q_f32(b + (off_b)), b1 = vld1q_f32(b + (off_b) + 4), b2 = vld1q_f32(b + (off_b) + 8); \
    float32x4_t a0 = vld1q_f32(a + (off_a)), a1 = vld1q_f32(a + (off_a) + 4);                    \
    c00 = vfmaq_laneq_f32(c00, b0, a0, 0);                                                      \
    c01 = vfmaq_laneq_f32(c01, b1, a0, 0);                                                      \
    c02 = vfmaq_laneq_f32(c02, b2, a0, 0);                                                      \
    c10 = vfmaq_laneq_f32(c10, b0, a0, 1);                                                      \
    c11 = vfmaq_laneq_f32(c11, b1, a0, 1);                                                      \
    c12 = vfmaq_laneq_f32(c12, b2, a0, 1);                                                      \
    c20 = vfmaq_laneq_f32(c20, b0, a0, 2);                                                      \
    c21 = vfmaq_laneq_f32(c21, b1, a0, 2);                                                      \
    c22 = vfmaq_laneq_f32(c22, b2, a0, 2);                                                      \
    c30 = vfmaq_laneq_f32(c30, b0, a0, 3);                                                      \
    c31 = vfmaq_laneq_f32(c31, b1, a0, 3);                                                      \
    c32 = vfmaq_laneq_f32(c32, b2, a0, 3);                                                      \
    c40 = vfmaq_laneq_f32(c40, b0, a1, 0);                                                      \
    c41 = vfmaq_laneq_f32(c41, b1, a1, 0);                                                      \
    c42 = vfmaq_laneq_f32(c42, b2, a1, 0);                                                      \
    c50 = vfmaq_laneq_f32(c50, b0, a1, 1);                                                      \
    c51 = vfmaq_laneq_f32(c51, b1, a1, 1);                                                      \
    c52 = vfmaq_laneq_f32(c52, b2, a1, 1);                                                      \
    c60 = vfmaq_laneq_f32(c60, b0, a1, 2);                                                      \
    c61 = vfmaq_laneq_f32(c61, b1, a1, 2);                                                      \
    c62 = vfmaq_laneq_f32(c62, b2, a1, 2);                                                      \
    c70 = vfmaq_laneq_f32(c70, b0, a1, 3);                                                      \
    c71 = vfmaq_laneq_f32(c71, b1, a1, 3);                                                      \
    c72 = vfmaq_laneq_f32(c72, b2, a1, 3);                                                      \
  } while (0)
  /* One k step per iteration: with the 4x unroll of gemm_avx2.c GCC 12 hoists the next steps' loads and
   * runs out of the 32 V registers (spills in the loop); this form keeps all 29 values in registers. */
  for (size_t p = 0; p < kc; p++) {
    __builtin_prefetch(b + 8 * NR, 0, 3);
    STEP(0, 0);
    a += MR;
    b += NR;
  }
#undef STEP
  const float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
  if (m == MR && n == NR && !epi) {
    STORE_ROW(c00, c01, c02, 0);
    STORE_ROW(c10, c11, c12, 1);
    STORE_ROW(c20, c21, c22, 2);
    STORE_ROW(c30, c31, c32, 3);
    STORE_ROW(c40, c41, c42, 4);
    STORE_ROW(c50, c51, c52, 5);
    STORE_ROW(c60, c61, c62, 6);
    STORE_ROW(c70, c71, c72, 7);
    return;
  }
  /* Partial tile, or the fused epilogue: spill the accumulators; then (plain store) per valid row copy the n valid C
   * values into a padded row, scale with the full-tile arithmetic and copy the n results back. C is touched only
   * inside m x n. */
  float t[MR * NR];
  vst1q_f32(t + 0 * NR, c00), vst1q_f32(t + 0 * NR + 4, c01), vst1q_f32(t + 0 * NR + 8, c02);
  vst1q_f32(t + 1 * NR, c10), vst1q_f32(t + 1 * NR + 4, c11), vst1q_f32(t + 1 * NR + 8, c12);
  vst1q_f32(t + 2 * NR, c20), vst1q_f32(t + 2 * NR + 4, c21), vst1q_f32(t + 2 * NR + 8, c22);
  vst1q_f32(t + 3 * NR, c30), vst1q_f32(t + 3 * NR + 4, c31), vst1q_f32(t + 3 * NR + 8, c32);
  vst1q_f32(t + 4 * NR, c40), vst1q_f32(t + 4 * NR + 4, c41), vst1q_f32(t + 4 * NR + 8, c42);
  vst1q_f32(t + 5 * NR, c50), vst1q_f32(t + 5 * NR + 4, c51), vst1q_f32(t + 5 * NR + 8, c52);
  vst1q_f32(t + 6 * NR, c60), vst1q_f32(t + 6 * NR + 4, c61), vst1q_f32(t + 6 * NR + 8, c62);
  vst1q_f32(t + 7 * NR, c70), vst1q_f32(t + 7 * NR + 4, c71), vst1q_f32(t + 7 * NR + 8, c72);
  if (epi) {
    store_tile_epi_neon(t, c, ldc, m, n, alpha, beta, epi);
    return;
  }
  float row[NR] = {0.0f};
  for (size_t i = 0; i < m; i++) {
    float *cr = c + i * ldc;
    if (beta != 0.0f) memcpy(row, cr, n * sizeof(float)); /* lanes >= n are scaled but never stored */
    for (int j = 0; j < NR; j += 4) vst1q_f32(row + j, scale_neon(vld1q_f32(t + i * NR + j), row + j, va, vb, beta));
    memcpy(cr, row, n * sizeof(float));
  }
}
#undef STORE_ROW

/* The entry points: without and with the fused epilogue. */
static void ukr_8x12_neon(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                          size_t ldc, size_t m, size_t n, float alpha, float beta) {
  ukr_8x12_body(kc, a, b, c, ldc, m, n, alpha, beta, NULL);
}
static void ukr_8x12_epi_neon(size_t kc, const float *ENG_RESTRICT a, const float *ENG_RESTRICT b, float *ENG_RESTRICT c,
                              size_t ldc, size_t m, size_t n, float alpha, float beta, const eng_gemm_epi_t *epi) {
  ukr_8x12_body(kc, a, b, c, ldc, m, n, alpha, beta, epi);
}

/* mc = 16 tiles of 8 rows (A block 128 x 256 floats = 128 KiB, in L2); kc = 256 (a B panel of 12 KiB in
 * L1, which is 32-64 KiB on current cores); nc = 340 panels of 12. */
const eng_gemm_f32_impl_t eng_gemm_f32_neon = {MR, NR, 128, 256, 4080, ukr_8x12_neon, NULL, ukr_8x12_epi_neon};

void eng_gemv_f32_neon(size_t n, size_t k, float alpha, const float *ENG_RESTRICT x, const float *ENG_RESTRICT b,
                       size_t ldb, int trans_b, float beta, float *ENG_RESTRICT y) {
  const float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
  if (trans_b) { /* y[j] = dot(x, row j): four rows at a time share the loads of x */
    const size_t kv = k & ~(size_t)3;
    float32x4_t xt = load_tail_neon(x + kv, k - kv); /* the k % 4 tail of x, zero-padded, loaded once */
    for (size_t j = 0; j < n; j += 4) {
      const size_t nr = ENG_MIN((size_t)4, n - j);
      /* Rows past the end repeat the last valid row: every output runs the same code, and the extra lanes
       * are dropped by the tail store. */
      const float *r0 = b + j * ldb;
      const float *r1 = nr > 1 ? r0 + ldb : r0, *r2 = nr > 2 ? r0 + 2 * ldb : r1, *r3 = nr > 3 ? r0 + 3 * ldb : r2;
      float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
      for (size_t p = 0; p < kv; p += 4) {
        float32x4_t xv = vld1q_f32(x + p);
        s0 = vfmaq_f32(s0, xv, vld1q_f32(r0 + p));
        s1 = vfmaq_f32(s1, xv, vld1q_f32(r1 + p));
        s2 = vfmaq_f32(s2, xv, vld1q_f32(r2 + p));
        s3 = vfmaq_f32(s3, xv, vld1q_f32(r3 + p));
      }
      if (kv < k) {
        s0 = vfmaq_f32(s0, xt, load_tail_neon(r0 + kv, k - kv));
        s1 = vfmaq_f32(s1, xt, load_tail_neon(r1 + kv, k - kv));
        s2 = vfmaq_f32(s2, xt, load_tail_neon(r2 + kv, k - kv));
        s3 = vfmaq_f32(s3, xt, load_tail_neon(r3 + kv, k - kv));
      }
      /* pairwise adds: d[i] = (s_i[0] + s_i[1]) + (s_i[2] + s_i[3]), the order vaddvq_f32 uses */
      float32x4_t d = vpaddq_f32(vpaddq_f32(s0, s1), vpaddq_f32(s2, s3));
      if (nr == 4) {
        vst1q_f32(y + j, scale_neon(d, y + j, va, vb, beta));
      } else {
        float yt[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        if (beta != 0.0f) memcpy(yt, y + j, nr * sizeof(float));
        store_tail_neon(y + j, nr, scale_neon(d, yt, va, vb, beta));
      }
    }
    return;
  }
  /* y = x B: column blocks of NB held in an L1 accumulator; four rows of B per pass over it, so each
   * accumulator load/store is amortised over four FMAs and every row read is a contiguous run. */
  enum { NB = 512 };
  float acc[NB] __attribute__((aligned(16)));
  for (size_t j0 = 0; j0 < n; j0 += NB) {
    size_t nb = n - j0 < NB ? n - j0 : NB;
    size_t nv = nb & ~(size_t)3;
    memset(acc, 0, sizeof(float) * ((nb + 3) & ~(size_t)3));
    size_t p = 0;
    for (; p + 4 <= k; p += 4) {
      const float *r0 = b + p * ldb + j0, *r1 = r0 + ldb, *r2 = r1 + ldb, *r3 = r2 + ldb;
      const float32x4_t xv = vld1q_f32(x + p);
      size_t j = 0;
      for (; j + 8 <= nv; j += 8) { /* two independent chains per step */
        float32x4_t s = vld1q_f32(acc + j), u = vld1q_f32(acc + j + 4);
        s = vfmaq_laneq_f32(s, vld1q_f32(r0 + j), xv, 0);
        u = vfmaq_laneq_f32(u, vld1q_f32(r0 + j + 4), xv, 0);
        s = vfmaq_laneq_f32(s, vld1q_f32(r1 + j), xv, 1);
        u = vfmaq_laneq_f32(u, vld1q_f32(r1 + j + 4), xv, 1);
        s = vfmaq_laneq_f32(s, vld1q_f32(r2 + j), xv, 2);
        u = vfmaq_laneq_f32(u, vld1q_f32(r2 + j + 4), xv, 2);
        s = vfmaq_laneq_f32(s, vld1q_f32(r3 + j), xv, 3);
        u = vfmaq_laneq_f32(u, vld1q_f32(r3 + j + 4), xv, 3);
        vst1q_f32(acc + j, s);
        vst1q_f32(acc + j + 4, u);
      }
      for (; j < nv; j += 4) {
        float32x4_t s = vld1q_f32(acc + j);
        s = vfmaq_laneq_f32(s, vld1q_f32(r0 + j), xv, 0);
        s = vfmaq_laneq_f32(s, vld1q_f32(r1 + j), xv, 1);
        s = vfmaq_laneq_f32(s, vld1q_f32(r2 + j), xv, 2);
        s = vfmaq_laneq_f32(s, vld1q_f32(r3 + j), xv, 3);
        vst1q_f32(acc + j, s);
      }
      if (j < nb) {
        float32x4_t s = vld1q_f32(acc + j);
        s = vfmaq_laneq_f32(s, load_tail_neon(r0 + j, nb - j), xv, 0);
        s = vfmaq_laneq_f32(s, load_tail_neon(r1 + j, nb - j), xv, 1);
        s = vfmaq_laneq_f32(s, load_tail_neon(r2 + j, nb - j), xv, 2);
        s = vfmaq_laneq_f32(s, load_tail_neon(r3 + j, nb - j), xv, 3);
        vst1q_f32(acc + j, s);
      }
    }
    for (; p < k; p++) {
      const float *r0 = b + p * ldb + j0;
      const float32x4_t x0 = vdupq_n_f32(x[p]);
      size_t j = 0;
      for (; j < nv; j += 4) vst1q_f32(acc + j, vfmaq_f32(vld1q_f32(acc + j), x0, vld1q_f32(r0 + j)));
      if (j < nb) vst1q_f32(acc + j, vfmaq_f32(vld1q_f32(acc + j), x0, load_tail_neon(r0 + j, nb - j)));
    }
    float *yj = y + j0;
    size_t j = 0;
    for (; j < nv; j += 4) vst1q_f32(yj + j, scale_neon(vld1q_f32(acc + j), yj + j, va, vb, beta));
    if (j < nb) {
      float yt[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      if (beta != 0.0f) memcpy(yt, yj + j, (nb - j) * sizeof(float));
      store_tail_neon(yj + j, nb - j, scale_neon(vld1q_f32(acc + j), yt, va, vb, beta));
    }
  }
}
