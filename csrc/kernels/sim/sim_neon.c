/* sim_neon.c: similarity kernels.  ISA: neon (AArch64 Advanced SIMD, no extra flags).  Scalar twins:
 * sim_scalar.c.  f32: four 4-lane FMA accumulators, scalar tails.  f16: widened with FCVTL (vcvt_f32_f16, part
 * of baseline AArch64 ASIMD), accumulated in f32.  i8: SMULL/SMULL2 to int16 then SADALP into int32 lanes,
 * or, on CPUs with the dot-product extension (HWCAP asimddp, detected once through eng_cpu_features()),
 * SDOT: 16 products per instruction. Both are exact, so bitwise the scalar result.
 * Tested under qemu-aarch64 with cortex-a53 (no dotprod) and neoverse-n1 (dotprod) by run_ctests.sh. */
#include <arm_neon.h>
#include <assert.h>

#include "eng/eng_kernels.h"
#include "sim_internal.h"

/* ---- i8 dot-product extension: eng_cpu_features() detects once and caches the bits ---- */
static inline int has_dotprod_neon(void) { return (eng_cpu_features() & ENG_CPU_ASIMDDP) != 0; }

static inline int32x4_t dot16_smull_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
  return vpadalq_s16(acc, vmull_high_s8(a, b));
}
/* Sum of a[i] b[i] over i < n16 (a multiple of 16), by SDOT or SMULL; the caller adds the tail. */
__attribute__((target("arch=armv8.2-a+dotprod"))) static int32_t dot_i8_body_sdot_neon(size_t n16, const int8_t *a, const int8_t *b) {
  int32x4_t s0 = vdupq_n_s32(0), s1 = s0;
  size_t i = 0;
  for (; i + 32 <= n16; i += 32) {
    s0 = vdotq_s32(s0, vld1q_s8(a + i), vld1q_s8(b + i));
    s1 = vdotq_s32(s1, vld1q_s8(a + i + 16), vld1q_s8(b + i + 16));
  }
  if (i < n16) s0 = vdotq_s32(s0, vld1q_s8(a + i), vld1q_s8(b + i));
  return vaddvq_s32(vaddq_s32(s0, s1));
}
static int32_t dot_i8_body_smull_neon(size_t n16, const int8_t *a, const int8_t *b) {
  int32x4_t s0 = vdupq_n_s32(0), s1 = s0;
  size_t i = 0;
  for (; i + 32 <= n16; i += 32) {
    s0 = dot16_smull_neon(s0, vld1q_s8(a + i), vld1q_s8(b + i));
    s1 = dot16_smull_neon(s1, vld1q_s8(a + i + 16), vld1q_s8(b + i + 16));
  }
  if (i < n16) s0 = dot16_smull_neon(s0, vld1q_s8(a + i), vld1q_s8(b + i));
  return vaddvq_s32(vaddq_s32(s0, s1));
}
static inline int32_t dot_i8_neon(size_t n, const int8_t *a, const int8_t *b) {
  size_t n16 = n - n % 16;
  int32_t s = has_dotprod_neon() ? dot_i8_body_sdot_neon(n16, a, b) : dot_i8_body_smull_neon(n16, a, b);
  for (size_t i = n16; i < n; i++) s += (int32_t)a[i] * b[i];
  return s;
}

static inline float32x4_t load_f16_neon(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

float eng_dot_f32_neon(size_t n, const float *a, const float *b) {
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
    s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
    s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
  float s = vaddvq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

float eng_sqnorm_f32_neon(size_t n, const float *a) {
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float32x4_t x0 = vld1q_f32(a + i), x1 = vld1q_f32(a + i + 4);
    s0 = vfmaq_f32(s0, x0, x0);
    s1 = vfmaq_f32(s1, x1, x1);
  }
  for (; i + 4 <= n; i += 4) {
    float32x4_t x = vld1q_f32(a + i);
    s0 = vfmaq_f32(s0, x, x);
  }
  float s = vaddvq_f32(vaddq_f32(s0, s1));
  for (; i < n; i++) s += a[i] * a[i];
  return s;
}

float eng_cos_f32_neon(size_t n, const float *a, const float *b) {
  float32x4_t ab0 = vdupq_n_f32(0.0f), ab1 = ab0, aa0 = ab0, aa1 = ab0, bb0 = ab0, bb1 = ab0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    float32x4_t x0 = vld1q_f32(a + i), y0 = vld1q_f32(b + i), x1 = vld1q_f32(a + i + 4), y1 = vld1q_f32(b + i + 4);
    ab0 = vfmaq_f32(ab0, x0, y0);
    aa0 = vfmaq_f32(aa0, x0, x0);
    bb0 = vfmaq_f32(bb0, y0, y0);
    ab1 = vfmaq_f32(ab1, x1, y1);
    aa1 = vfmaq_f32(aa1, x1, x1);
    bb1 = vfmaq_f32(bb1, y1, y1);
  }
  float ab = vaddvq_f32(vaddq_f32(ab0, ab1)), aa = vaddvq_f32(vaddq_f32(aa0, aa1)), bb = vaddvq_f32(vaddq_f32(bb0, bb1));
  for (; i < n; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return eng_sim_cos_finish(ab, aa, bb);
}

float eng_dot_f16_neon(size_t n, const uint16_t *a, const uint16_t *b) {
  float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 = vfmaq_f32(s0, load_f16_neon(a + i), load_f16_neon(b + i));
    s1 = vfmaq_f32(s1, load_f16_neon(a + i + 4), load_f16_neon(b + i + 4));
  }
  for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, load_f16_neon(a + i), load_f16_neon(b + i));
  float s = vaddvq_f32(vaddq_f32(s0, s1));
  for (; i < n; i++) s += eng_sim_h2f(a[i]) * eng_sim_h2f(b[i]);
  return s;
}

float eng_sqnorm_f16_neon(size_t n, const uint16_t *a) {
  float32x4_t s0 = vdupq_n_f32(0.0f);
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t x = load_f16_neon(a + i);
    s0 = vfmaq_f32(s0, x, x);
  }
  float s = vaddvq_f32(s0);
  for (; i < n; i++) {
    float x = eng_sim_h2f(a[i]);
    s += x * x;
  }
  return s;
}

float eng_cos_f16_neon(size_t n, const uint16_t *a, const uint16_t *b) {
  float32x4_t ab4 = vdupq_n_f32(0.0f), aa4 = ab4, bb4 = ab4;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    float32x4_t x = load_f16_neon(a + i), y = load_f16_neon(b + i);
    ab4 = vfmaq_f32(ab4, x, y);
    aa4 = vfmaq_f32(aa4, x, x);
    bb4 = vfmaq_f32(bb4, y, y);
  }
  float ab = vaddvq_f32(ab4), aa = vaddvq_f32(aa4), bb = vaddvq_f32(bb4);
  for (; i < n; i++) {
    float x = eng_sim_h2f(a[i]), y = eng_sim_h2f(b[i]);
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return eng_sim_cos_finish(ab, aa, bb);
}

int32_t eng_dot_i8_neon(size_t n, const int8_t *a, const int8_t *b) {
  assert(n <= ENG_SIM_I8_MAX_N);
  return dot_i8_neon(n, a, b);
}

int32_t eng_sqnorm_i8_neon(size_t n, const int8_t *a) {
  assert(n <= ENG_SIM_I8_MAX_N);
  return dot_i8_neon(n, a, a);
}

float eng_cos_i8_neon(size_t n, const int8_t *a, const int8_t *b) {
  assert(n <= ENG_SIM_I8_MAX_N);
  return eng_sim_cos_finish_i32(dot_i8_neon(n, a, b), dot_i8_neon(n, a, a), dot_i8_neon(n, b, b));
}

void eng_l2norm_rows_f32_neon(size_t m, size_t n, const float *x, size_t ldx, float *y, size_t ldy) {
  assert(m <= 1 || (ldx >= n && ldy >= n));
  for (size_t r = 0; r < m; r++) {
    const float *xr = x + r * ldx;
    float *yr = y + r * ldy;
    float inv = eng_sim_inv_norm(eng_sqnorm_f32_neon(n, xr));
    float32x4_t v = vdupq_n_f32(inv);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(yr + i, vmulq_f32(vld1q_f32(xr + i), v));
    for (; i < n; i++) yr[i] = xr[i] * inv;
  }
}

void eng_l2norm_rows_f16_neon(size_t m, size_t n, const uint16_t *x, size_t ldx, uint16_t *y, size_t ldy) {
  assert(m <= 1 || (ldx >= n && ldy >= n));
  for (size_t r = 0; r < m; r++) {
    const uint16_t *xr = x + r * ldx;
    uint16_t *yr = y + r * ldy;
    float inv = eng_sim_inv_norm(eng_sqnorm_f16_neon(n, xr));
    float32x4_t v = vdupq_n_f32(inv);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(yr + i, vreinterpret_u16_f16(vcvt_f16_f32(vmulq_f32(load_f16_neon(xr + i), v))));
    for (; i < n; i++) yr[i] = eng_sim_f2h(eng_sim_h2f(xr[i]) * inv);
  }
}

/* Gallery scans: one row at a time (one sequential memory stream; see sim_avx2.c). */
void eng_scan_f32_neon(size_t rows, size_t d, const float *q, const float *g, size_t ldg, float *out) {
  assert(rows <= 1 || ldg >= d);
  for (size_t r = 0; r < rows; r++) out[r] = eng_dot_f32_neon(d, q, g + r * ldg);
}

void eng_scan_f16_neon(size_t rows, size_t d, const float *q, const uint16_t *g, size_t ldg, float *out) {
  assert(rows <= 1 || ldg >= d);
  for (size_t r = 0; r < rows; r++) {
    const uint16_t *gr = g + r * ldg;
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
    size_t i = 0;
    for (; i + 8 <= d; i += 8) {
      a0 = vfmaq_f32(a0, load_f16_neon(gr + i), vld1q_f32(q + i));
      a1 = vfmaq_f32(a1, load_f16_neon(gr + i + 4), vld1q_f32(q + i + 4));
    }
    for (; i + 4 <= d; i += 4) a0 = vfmaq_f32(a0, load_f16_neon(gr + i), vld1q_f32(q + i));
    float s = vaddvq_f32(vaddq_f32(a0, a1));
    for (; i < d; i++) s += q[i] * eng_sim_h2f(gr[i]);
    out[r] = s;
  }
}

void eng_scan_i8_neon(size_t rows, size_t d, const int8_t *q, const int8_t *g, size_t ldg, int32_t *out) {
  assert(rows <= 1 || ldg >= d);
  assert(d <= ENG_SIM_I8_MAX_N);
  for (size_t r = 0; r < rows; r++) out[r] = dot_i8_neon(d, q, g + r * ldg);
}

void eng_cvt_f16_f32_neon(size_t n, const uint16_t *x, float *y) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, load_f16_neon(x + i));
  for (; i < n; i++) y[i] = eng_sim_h2f(x[i]);
}

void eng_cvt_f32_f16_neon(size_t n, const float *x, uint16_t *y) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
  for (; i < n; i++) y[i] = eng_sim_f2h(x[i]);
}
