/* sim_avx512.c: similarity kernels.  ISA: avx512 (-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma
 * -mf16c).  Scalar twins: sim_scalar.c.  Same structure as sim_avx2.c with 16 lanes: f32 with masked-load
 * tails (no read past the end), f16 widened by vcvtph2ps, i8 sign-extended to int16 and summed in int32 by
 * vpmaddwd, or on CPUs with AVX512-VNNI (detected once) by vpdpbusd: a + 128 as u8 times b, minus 128 sum(b)
 * (also one vpdpbusd), 64 products per instruction. Both are exact, so bitwise the scalar result. Not run natively on the development machine (no AVX-512):
 * tests/c/run_ctests.sh avx512-emu runs this file through SIMDe. */
#include <assert.h>
#include <string.h>

#include "eng/eng_kernels.h"
#include "sim_internal.h"
#include "../../simd/simd_avx512.h"

#if defined(ENG_SIMDE_EMULATION)
/* SIMDe 0.7.4 has no 512-bit half conversions: two 256-bit F16C halves (the emulation build has -mf16c). */
static inline __m512 cvtph_ps_avx512(__m256i h) {
  __m128i lo = _mm256_castsi256_si128((__m256i)h), hi = _mm256_extracti128_si256((__m256i)h, 1);
  float t[16];
  _mm256_storeu_ps(t, _mm256_cvtph_ps(lo));
  _mm256_storeu_ps(t + 8, _mm256_cvtph_ps(hi));
  return _mm512_loadu_ps(t);
}
static inline __m256i cvtps_ph_avx512(__m512 v) {
  float t[16];
  _mm512_storeu_ps(t, v);
  __m128i lo = _mm256_cvtps_ph(_mm256_loadu_ps(t), _MM_FROUND_TO_NEAREST_INT);
  __m128i hi = _mm256_cvtps_ph(_mm256_loadu_ps(t + 8), _MM_FROUND_TO_NEAREST_INT);
  return _mm256_set_m128i(hi, lo);
}
/* SIMDe 0.7.4's native alias of _mm512_madd_epi16 wrongly takes the masked form's four arguments. */
#define madd_epi16_avx512(a, b) simde_mm512_madd_epi16((a), (b))
#else
#define madd_epi16_avx512(a, b) _mm512_madd_epi16((a), (b))
#define cvtph_ps_avx512(h) _mm512_cvtph_ps(h)
#define cvtps_ph_avx512(v) _mm512_cvtps_ph((v), _MM_FROUND_TO_NEAREST_INT)
#endif /* ENG_SIMDE_EMULATION */

static inline int32_t hsum_i32_avx512(__m512i v) {
  int32_t t[16];
  _mm512_storeu_si512((void *)t, v);
  int32_t s = 0;
  for (int i = 0; i < 16; i++) s += t[i];
  return s;
}

static inline __m512 load_f16_avx512(const uint16_t *p) { return cvtph_ps_avx512(_mm256_loadu_si256((const __m256i *)p)); }
static inline __m512 load_f16_tail_avx512(const uint16_t *p, size_t n) {
  uint16_t t[16] = {0};
  memcpy(t, p, n * sizeof(uint16_t));
  return load_f16_avx512(t);
}
static inline __m512i load_i8_avx512(const int8_t *p) { return _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i *)p)); }
static inline __m512i load_i8_tail_avx512(const int8_t *p, size_t n) {
  int8_t t[32] = {0};
  memcpy(t, p, n);
  return load_i8_avx512(t);
}
#define MADD_ACC_AVX512(acc, x, y) (acc) = _mm512_add_epi32((acc), madd_epi16_avx512((x), (y)))

float eng_dot_f32_avx512(size_t n, const float *a, const float *b) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
    s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < n) {
    __mmask16 k = tail_mask_avx512(n - i);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, a + i), _mm512_maskz_loadu_ps(k, b + i), s1);
  }
  return hsum_avx512(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

float eng_sqnorm_f32_avx512(size_t n, const float *a) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 x0 = _mm512_loadu_ps(a + i), x1 = _mm512_loadu_ps(a + i + 16);
    s0 = _mm512_fmadd_ps(x0, x0, s0);
    s1 = _mm512_fmadd_ps(x1, x1, s1);
  }
  for (; i + 16 <= n; i += 16) {
    __m512 x = _mm512_loadu_ps(a + i);
    s0 = _mm512_fmadd_ps(x, x, s0);
  }
  if (i < n) {
    __m512 x = _mm512_maskz_loadu_ps(tail_mask_avx512(n - i), a + i);
    s1 = _mm512_fmadd_ps(x, x, s1);
  }
  return hsum_avx512(_mm512_add_ps(s0, s1));
}

float eng_cos_f32_avx512(size_t n, const float *a, const float *b) {
  __m512 ab0 = _mm512_setzero_ps(), ab1 = ab0, aa0 = ab0, aa1 = ab0, bb0 = ab0, bb1 = ab0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512 x0 = _mm512_loadu_ps(a + i), y0 = _mm512_loadu_ps(b + i);
    __m512 x1 = _mm512_loadu_ps(a + i + 16), y1 = _mm512_loadu_ps(b + i + 16);
    ab0 = _mm512_fmadd_ps(x0, y0, ab0);
    aa0 = _mm512_fmadd_ps(x0, x0, aa0);
    bb0 = _mm512_fmadd_ps(y0, y0, bb0);
    ab1 = _mm512_fmadd_ps(x1, y1, ab1);
    aa1 = _mm512_fmadd_ps(x1, x1, aa1);
    bb1 = _mm512_fmadd_ps(y1, y1, bb1);
  }
  for (; i < n; i += 16) {
    __mmask16 k = tail_mask_avx512(n - i < 16 ? n - i : 16);
    __m512 x = _mm512_maskz_loadu_ps(k, a + i), y = _mm512_maskz_loadu_ps(k, b + i);
    ab0 = _mm512_fmadd_ps(x, y, ab0);
    aa0 = _mm512_fmadd_ps(x, x, aa0);
    bb0 = _mm512_fmadd_ps(y, y, bb0);
  }
  return eng_sim_cos_finish(hsum_avx512(_mm512_add_ps(ab0, ab1)), hsum_avx512(_mm512_add_ps(aa0, aa1)),
                            hsum_avx512(_mm512_add_ps(bb0, bb1)));
}

float eng_dot_f16_avx512(size_t n, const uint16_t *a, const uint16_t *b) {
  __m512 s0 = _mm512_setzero_ps(), s1 = s0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm512_fmadd_ps(load_f16_avx512(a + i), load_f16_avx512(b + i), s0);
    s1 = _mm512_fmadd_ps(load_f16_avx512(a + i + 16), load_f16_avx512(b + i + 16), s1);
  }
  for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(load_f16_avx512(a + i), load_f16_avx512(b + i), s0);
  if (i < n) s1 = _mm512_fmadd_ps(load_f16_tail_avx512(a + i, n - i), load_f16_tail_avx512(b + i, n - i), s1);
  return hsum_avx512(_mm512_add_ps(s0, s1));
}

float eng_sqnorm_f16_avx512(size_t n, const uint16_t *a) {
  __m512 s0 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m512 x = load_f16_avx512(a + i);
    s0 = _mm512_fmadd_ps(x, x, s0);
  }
  if (i < n) {
    __m512 x = load_f16_tail_avx512(a + i, n - i);
    s0 = _mm512_fmadd_ps(x, x, s0);
  }
  return hsum_avx512(s0);
}

float eng_cos_f16_avx512(size_t n, const uint16_t *a, const uint16_t *b) {
  __m512 ab = _mm512_setzero_ps(), aa = ab, bb = ab;
  for (size_t i = 0; i < n; i += 16) {
    __m512 x, y;
    if (i + 16 <= n) {
      x = load_f16_avx512(a + i);
      y = load_f16_avx512(b + i);
    } else {
      x = load_f16_tail_avx512(a + i, n - i);
      y = load_f16_tail_avx512(b + i, n - i);
    }
    ab = _mm512_fmadd_ps(x, y, ab);
    aa = _mm512_fmadd_ps(x, x, aa);
    bb = _mm512_fmadd_ps(y, y, bb);
  }
  return eng_sim_cos_finish(hsum_avx512(ab), hsum_avx512(aa), hsum_avx512(bb));
}

/* ---- i8 dot products: vpmaddwd everywhere, vpdpbusd where AVX512-VNNI is present ---- */
#if defined(ENG_SIMDE_EMULATION)
#include <stdlib.h>
/* The emulation build runs on a CPU without VNNI: ENG_TEST_FORCE_VNNI=1 selects SIMDe's vpdpbusd so that
 * run_ctests.sh avx512-emu can test that path too. */
static int has_vnni_avx512(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("ENG_TEST_FORCE_VNNI");
    v = e && e[0] == '1';
  }
  return v;
}
#define VNNI_TARGET_AVX512
#define dpbusd_avx512(acc, a, b) simde_mm512_dpbusd_epi32((acc), (a), (b))
#else
/* eng_cpu_features() detects once and caches the bits */
static inline int has_vnni_avx512(void) { return (eng_cpu_features() & ENG_CPU_AVX512VNNI) != 0; }
#define VNNI_TARGET_AVX512 __attribute__((target("avx512vnni")))
#define dpbusd_avx512(acc, a, b) _mm512_dpbusd_epi32((acc), (a), (b))
#endif /* ENG_SIMDE_EMULATION */

/* sum a[i] b[i] by vpdpbusd (u8 x s8): (a + 128) b summed, minus 128 sum(b). n <= 2^16 keeps both sums inside
 * int32: |sum (a + 128) b| <= 2^16 * 255 * 128 < 2^31. */
VNNI_TARGET_AVX512 static int32_t dot_i8_vnni_avx512(size_t n, const int8_t *a, const int8_t *b) {
  const __m512i flip = _mm512_set1_epi8((char)0x80), ones = _mm512_set1_epi8(1);
  __m512i acc = _mm512_setzero_si512(), sb = acc;
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    __m512i vb = _mm512_loadu_si512((const void *)(b + i));
    acc = dpbusd_avx512(acc, _mm512_xor_si512(_mm512_loadu_si512((const void *)(a + i)), flip), vb);
    sb = dpbusd_avx512(sb, ones, vb);
  }
  if (i < n) { /* zero padding: b's zeros make the padded products 0 */
    int8_t ta[64] = {0}, tb[64] = {0};
    memcpy(ta, a + i, n - i);
    memcpy(tb, b + i, n - i);
    __m512i vb = _mm512_loadu_si512((const void *)tb);
    acc = dpbusd_avx512(acc, _mm512_xor_si512(_mm512_loadu_si512((const void *)ta), flip), vb);
    sb = dpbusd_avx512(sb, ones, vb);
  }
  return hsum_i32_avx512(acc) - 128 * hsum_i32_avx512(sb);
}

static int32_t dot_i8_madd_avx512(size_t n, const int8_t *a, const int8_t *b) {
  __m512i s0 = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) MADD_ACC_AVX512(s0, load_i8_avx512(a + i), load_i8_avx512(b + i));
  if (i < n) MADD_ACC_AVX512(s0, load_i8_tail_avx512(a + i, n - i), load_i8_tail_avx512(b + i, n - i));
  return hsum_i32_avx512(s0);
}

static inline int32_t dot_i8_any_avx512(size_t n, const int8_t *a, const int8_t *b) {
  return has_vnni_avx512() ? dot_i8_vnni_avx512(n, a, b) : dot_i8_madd_avx512(n, a, b);
}

int32_t eng_dot_i8_avx512(size_t n, const int8_t *a, const int8_t *b) {
  assert(n <= ENG_SIM_I8_MAX_N);
  return dot_i8_any_avx512(n, a, b);
}

int32_t eng_sqnorm_i8_avx512(size_t n, const int8_t *a) {
  assert(n <= ENG_SIM_I8_MAX_N);
  if (has_vnni_avx512()) return dot_i8_vnni_avx512(n, a, a);
  __m512i s0 = _mm512_setzero_si512();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m512i x = load_i8_avx512(a + i);
    MADD_ACC_AVX512(s0, x, x);
  }
  if (i < n) {
    __m512i x = load_i8_tail_avx512(a + i, n - i);
    MADD_ACC_AVX512(s0, x, x);
  }
  return hsum_i32_avx512(s0);
}

float eng_cos_i8_avx512(size_t n, const int8_t *a, const int8_t *b) {
  assert(n <= ENG_SIM_I8_MAX_N);
  if (has_vnni_avx512())
    return eng_sim_cos_finish_i32(dot_i8_vnni_avx512(n, a, b), dot_i8_vnni_avx512(n, a, a), dot_i8_vnni_avx512(n, b, b));
  __m512i ab = _mm512_setzero_si512(), aa = ab, bb = ab;
  for (size_t i = 0; i < n; i += 32) {
    __m512i x, y;
    if (i + 32 <= n) {
      x = load_i8_avx512(a + i);
      y = load_i8_avx512(b + i);
    } else {
      x = load_i8_tail_avx512(a + i, n - i);
      y = load_i8_tail_avx512(b + i, n - i);
    }
    MADD_ACC_AVX512(ab, x, y);
    MADD_ACC_AVX512(aa, x, x);
    MADD_ACC_AVX512(bb, y, y);
  }
  return eng_sim_cos_finish_i32(hsum_i32_avx512(ab), hsum_i32_avx512(aa), hsum_i32_avx512(bb));
}

void eng_l2norm_rows_f32_avx512(size_t m, size_t n, const float *x, size_t ldx, float *y, size_t ldy) {
  assert(m <= 1 || (ldx >= n && ldy >= n));
  for (size_t r = 0; r < m; r++) {
    const float *xr = x + r * ldx;
    float *yr = y + r * ldy;
    __m512 inv = _mm512_set1_ps(eng_sim_inv_norm(eng_sqnorm_f32_avx512(n, xr)));
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(yr + i, _mm512_mul_ps(_mm512_loadu_ps(xr + i), inv));
    if (i < n) {
      __mmask16 k = tail_mask_avx512(n - i);
      _mm512_mask_storeu_ps(yr + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, xr + i), inv));
    }
  }
}

void eng_l2norm_rows_f16_avx512(size_t m, size_t n, const uint16_t *x, size_t ldx, uint16_t *y, size_t ldy) {
  assert(m <= 1 || (ldx >= n && ldy >= n));
  for (size_t r = 0; r < m; r++) {
    const uint16_t *xr = x + r * ldx;
    uint16_t *yr = y + r * ldy;
    __m512 inv = _mm512_set1_ps(eng_sim_inv_norm(eng_sqnorm_f16_avx512(n, xr)));
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
      _mm256_storeu_si256((__m256i *)(yr + i), cvtps_ph_avx512(_mm512_mul_ps(load_f16_avx512(xr + i), inv)));
    if (i < n) {
      uint16_t t[16];
      _mm256_storeu_si256((__m256i *)t, cvtps_ph_avx512(_mm512_mul_ps(load_f16_tail_avx512(xr + i, n - i), inv)));
      memcpy(yr + i, t, (n - i) * sizeof(uint16_t));
    }
  }
}

/* Gallery scans: one row at a time (one sequential memory stream; see sim_avx2.c for the measurement). */
void eng_scan_f32_avx512(size_t rows, size_t d, const float *q, const float *g, size_t ldg, float *out) {
  assert(rows <= 1 || ldg >= d);
  for (size_t r = 0; r < rows; r++) out[r] = eng_dot_f32_avx512(d, q, g + r * ldg);
}

void eng_scan_f16_avx512(size_t rows, size_t d, const float *q, const uint16_t *g, size_t ldg, float *out) {
  assert(rows <= 1 || ldg >= d);
  const __mmask16 k = tail_mask_avx512(d % 16);
  for (size_t r = 0; r < rows; r++) {
    const uint16_t *p = g + r * ldg;
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 64 <= d; i += 64) {
      s0 = _mm512_fmadd_ps(load_f16_avx512(p + i), _mm512_loadu_ps(q + i), s0);
      s1 = _mm512_fmadd_ps(load_f16_avx512(p + i + 16), _mm512_loadu_ps(q + i + 16), s1);
      s2 = _mm512_fmadd_ps(load_f16_avx512(p + i + 32), _mm512_loadu_ps(q + i + 32), s2);
      s3 = _mm512_fmadd_ps(load_f16_avx512(p + i + 48), _mm512_loadu_ps(q + i + 48), s3);
    }
    for (; i + 16 <= d; i += 16) s0 = _mm512_fmadd_ps(load_f16_avx512(p + i), _mm512_loadu_ps(q + i), s0);
    if (i < d) s1 = _mm512_fmadd_ps(load_f16_tail_avx512(p + i, d - i), _mm512_maskz_loadu_ps(k, q + i), s1);
    out[r] = hsum_avx512(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
  }
}

void eng_scan_i8_avx512(size_t rows, size_t d, const int8_t *q, const int8_t *g, size_t ldg, int32_t *out) {
  assert(rows <= 1 || ldg >= d);
  assert(d <= ENG_SIM_I8_MAX_N);
  for (size_t r = 0; r < rows; r++) out[r] = dot_i8_any_avx512(d, q, g + r * ldg);
}

void eng_cvt_f16_f32_avx512(size_t n, const uint16_t *x, float *y) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, load_f16_avx512(x + i));
  for (; i < n; i++) y[i] = eng_sim_h2f(x[i]);
}

void eng_cvt_f32_f16_avx512(size_t n, const float *x, uint16_t *y) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *)(y + i), cvtps_ph_avx512(_mm512_loadu_ps(x + i)));
  for (; i < n; i++) y[i] = eng_sim_f2h(x[i]);
}
