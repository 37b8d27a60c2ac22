/* sim_avx2.c: similarity kernels.  ISA: avx2 (-mavx2 -mfma -mf16c).  Scalar twins: sim_scalar.c.
 * f32: four (dot) or two-by-three (cosine) 8-lane FMA accumulators, masked-load tail, summed at the end.
 * f16: F16C vcvtph2ps widening, then as f32; tails go through a zero-filled 8-element buffer.
 * i8: sign-extend to int16 (vpmovsxbw) and vpmaddwd pairs into int32 lanes. This avoids the saturation of
 * vpmaddubsw (u8 x s8 -> s16 saturates at 2 * 255 * 128). On CPUs with AVX-VNNI (the VEX vpdpbusd of Alder Lake
 * and later client cores and of Sierra Forest, which have no AVX-512; detected once) by vpdpbusd instead, 32
 * products per instruction, through the same +128 offset as the AVX-512 VNNI path. The sums are exact either way,
 * so the result is bitwise the scalar one. Gallery scans stream one row at a time (see the scans below). */
#include <assert.h>
#include <string.h>

#include "eng/eng_kernels.h"
#include "sim_internal.h"
#include "../../simd/simd_avx2.h"

static inline int32_t hsum_i32_avx2(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

/* Four horizontal sums in one vector: lane i = sum of v_i. */
static inline __m128 hsum4_avx2(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
  __m256 a = _mm256_hadd_ps(v0, v1), b = _mm256_hadd_ps(v2, v3);
  __m256 c = _mm256_hadd_ps(a, b);
  return _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
}

/* 8 binary16 values from p (n < 8 of them: the rest read as 0) widened to f32. */
static inline __m256 load_f16_avx2(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256 load_f16_tail_avx2(const uint16_t *p, size_t n) {
  uint16_t t[8] = {0};
  memcpy(t, p, n * sizeof(uint16_t));
  return load_f16_avx2(t);
}
/* 16 int8 sign-extended to int16. */
static inline __m256i load_i8_avx2(const int8_t *p) { return _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)p)); }
static inline __m256i load_i8_tail_avx2(const int8_t *p, size_t n) {
  int8_t t[16] = {0};
  memcpy(t, p, n);
  return load_i8_avx2(t);
}

float eng_dot_f32_avx2(size_t n, const float *a, const float *b) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  if (i < n) {
    __m256i k = tail_mask_avx2(n - i);
    s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, k), _mm256_maskload_ps(b + i, k), s1);
  }
  return hsum_avx2(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

float eng_sqnorm_f32_avx2(size_t n, const float *a) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    __m256 x0 = _mm256_loadu_ps(a + i), x1 = _mm256_loadu_ps(a + i + 8);
    __m256 x2 = _mm256_loadu_ps(a + i + 16), x3 = _mm256_loadu_ps(a + i + 24);
    s0 = _mm256_fmadd_ps(x0, x0, s0);
    s1 = _mm256_fmadd_ps(x1, x1, s1);
    s2 = _mm256_fmadd_ps(x2, x2, s2);
    s3 = _mm256_fmadd_ps(x3, x3, s3);
  }
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(a + i);
    s0 = _mm256_fmadd_ps(x, x, s0);
  }
  if (i < n) {
    __m256 x = _mm256_maskload_ps(a + i, tail_mask_avx2(n - i));
    s1 = _mm256_fmadd_ps(x, x, s1);
  }
  return hsum_avx2(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

float eng_cos_f32_avx2(size_t n, const float *a, const float *b) {
  __m256 ab0 = _mm256_setzero_ps(), ab1 = ab0, aa0 = ab0, aa1 = ab0, bb0 = ab0, bb1 = ab0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 x0 = _mm256_loadu_ps(a + i), y0 = _mm256_loadu_ps(b + i);
    __m256 x1 = _mm256_loadu_ps(a + i + 8), y1 = _mm256_loadu_ps(b + i + 8);
    ab0 = _mm256_fmadd_ps(x0, y0, ab0);
    aa0 = _mm256_fmadd_ps(x0, x0, aa0);
    bb0 = _mm256_fmadd_ps(y0, y0, bb0);
    ab1 = _mm256_fmadd_ps(x1, y1, ab1);
    aa1 = _mm256_fmadd_ps(x1, x1, aa1);
    bb1 = _mm256_fmadd_ps(y1, y1, bb1);
  }
  if (i + 8 <= n) {
    __m256 x = _mm256_loadu_ps(a + i), y = _mm256_loadu_ps(b + i);
    ab0 = _mm256_fmadd_ps(x, y, ab0);
    aa0 = _mm256_fmadd_ps(x, x, aa0);
    bb0 = _mm256_fmadd_ps(y, y, bb0);
    i += 8;
  }
  if (i < n) {
    __m256i k = tail_mask_avx2(n - i);
    __m256 x = _mm256_maskload_ps(a + i, k), y = _mm256_maskload_ps(b + i, k);
    ab1 = _mm256_fmadd_ps(x, y, ab1);
    aa1 = _mm256_fmadd_ps(x, x, aa1);
    bb1 = _mm256_fmadd_ps(y, y, bb1);
  }
  __m128 s = hsum4_avx2(_mm256_add_ps(ab0, ab1), _mm256_add_ps(aa0, aa1), _mm256_add_ps(bb0, bb1), _mm256_setzero_ps());
  float r[4];
  _mm_storeu_ps(r, s);
  return eng_sim_cos_finish(r[0], r[1], r[2]);
}

float eng_dot_f16_avx2(size_t n, const uint16_t *a, const uint16_t *b) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(load_f16_avx2(a + i), load_f16_avx2(b + i), s0);
    s1 = _mm256_fmadd_ps(load_f16_avx2(a + i + 8), load_f16_avx2(b + i + 8), s1);
  }
  if (i + 8 <= n) {
    s0 = _mm256_fmadd_ps(load_f16_avx2(a + i), load_f16_avx2(b + i), s0);
    i += 8;
  }
  if (i < n) s1 = _mm256_fmadd_ps(load_f16_tail_avx2(a + i, n - i), load_f16_tail_avx2(b + i, n - i), s1);
  return hsum_avx2(_mm256_add_ps(s0, s1));
}

float eng_sqnorm_f16_avx2(size_t n, const uint16_t *a) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 x0 = load_f16_avx2(a + i), x1 = load_f16_avx2(a + i + 8);
    s0 = _mm256_fmadd_ps(x0, x0, s0);
    s1 = _mm256_fmadd_ps(x1, x1, s1);
  }
  if (i + 8 <= n) {
    __m256 x = load_f16_avx2(a + i);
    s0 = _mm256_fmadd_ps(x, x, s0);
    i += 8;
  }
  if (i < n) {
    __m256 x = load_f16_tail_avx2(a + i, n - i);
    s1 = _mm256_fmadd_ps(x, x, s1);
  }
  return hsum_avx2(_mm256_add_ps(s0, s1));
}

float eng_cos_f16_avx2(size_t n, const uint16_t *a, const uint16_t *b) {
  __m256 ab = _mm256_setzero_ps(), aa = ab, bb = ab;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 x = load_f16_avx2(a + i), y = load_f16_avx2(b + i);
    ab = _mm256_fmadd_ps(x, y, ab);
    aa = _mm256_fmadd_ps(x, x, aa);
    bb = _mm256_fmadd_ps(y, y, bb);
  }
  if (i < n) {
    __m256 x = load_f16_tail_avx2(a + i, n - i), y = load_f16_tail_avx2(b + i, n - i);
    ab = _mm256_fmadd_ps(x, y, ab);
    aa = _mm256_fmadd_ps(x, x, aa);
    bb = _mm256_fmadd_ps(y, y, bb);
  }
  float r[4];
  _mm_storeu_ps(r, hsum4_avx2(ab, aa, bb, _mm256_setzero_ps()));
  return eng_sim_cos_finish(r[0], r[1], r[2]);
}

/* ---- i8 on AVX-VNNI: vpdpbusd (u8 x s8 -> int32, 4 products per lane) where the CPU has it ---- */
#if defined(ENG_SIMDE_EMULATION)
/* tests/c/run_ctests.sh avx512-emu: no CPU here has AVX-VNNI, so ENG_TEST_FORCE_VNNI=1 selects SIMDe's vpdpbusd
 * (the AVX512-VL form, the same operation) to test this path. The real build never defines ENG_SIMDE_EMULATION. */
#include <simde/x86/avx512/dpbusd.h>
#include <stdlib.h>
static int has_vnni_avx2(void) {
  static int v = -1;
  if (v < 0) {
    const char *e = getenv("ENG_TEST_FORCE_VNNI");
    v = e && e[0] == '1';
  }
  return v;
}
#define ENG_VNNI_AVX2 1
#define VNNI_TARGET_AVX2
#define dpbusd_avx2(acc, a, b) simde_mm256_dpbusd_epi32((acc), (a), (b))
#elif (defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11)
/* eng_cpu_features() detects once and caches the bits */
static inline int has_vnni_avx2(void) { return (eng_cpu_features() & ENG_CPU_AVXVNNI) != 0; }
#define ENG_VNNI_AVX2 1
#define VNNI_TARGET_AVX2 __attribute__((target("avxvnni")))
#define dpbusd_avx2(acc, a, b) _mm256_dpbusd_avx_epi32((acc), (a), (b))
#else /* a compiler without -mavxvnni (GCC < 11, clang < 12): vpmaddwd only */
static inline int has_vnni_avx2(void) { return 0; }
#endif

#if defined(ENG_VNNI_AVX2)
/* sum over 32-byte steps of (x + 128) y, x and y int8: x ^ 0x80 is x + 128 as u8. Tail bytes are zero-padded (a
 * zero y makes a padded product 0). n <= 2^16 keeps every lane and the total inside int32 (n * 255 * 128 < 2^31). */
VNNI_TARGET_AVX2 static __m256i dot_u8s8_vnni_avx2(size_t n, const int8_t *x, const int8_t *y) {
  const __m256i flip = _mm256_set1_epi8((char)0x80);
  __m256i acc = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 32 <= n; i += 32)
    acc = dpbusd_avx2(acc, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(x + i)), flip),
                      _mm256_loadu_si256((const __m256i *)(y + i)));
  if (i < n) {
    int8_t tx[32] = {0}, ty[32] = {0};
    memcpy(tx, x + i, n - i);
    memcpy(ty, y + i, n - i);
    acc = dpbusd_avx2(acc, _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)tx), flip),
                      _mm256_loadu_si256((const __m256i *)ty));
  }
  return acc;
}

/* sum y[i] (|sum| <= 2^16 * 128), for the offset: sum x y = sum (x + 128) y - 128 sum y. */
static int32_t sum_i8_avx2(size_t n, const int8_t *y) {
  int32_t s = 0;
  for (size_t i = 0; i < n; i++) s += y[i];
  return s;
}

static int32_t dot_i8_vnni_avx2(size_t n, const int8_t *a, const int8_t *b) {
  return hsum_i32_avx2(dot_u8s8_vnni_avx2(n, a, b)) - 128 * sum_i8_avx2(n, b);
}
#endif

static int32_t dot_i8_madd_avx2(size_t n, const int8_t *a, const int8_t *b) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(load_i8_avx2(a + i), load_i8_avx2(b + i)));
    s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(load_i8_avx2(a + i + 16), load_i8_avx2(b + i + 16)));
  }
  for (; i + 16 <= n; i += 16) s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(load_i8_avx2(a + i), load_i8_avx2(b + i)));
  if (i < n) s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(load_i8_tail_avx2(a + i, n - i), load_i8_tail_avx2(b + i, n - i)));
  return hsum_i32_avx2(_mm256_add_epi32(s0, s1));
}

int32_t eng_dot_i8_avx2(size_t n, const int8_t *a, const int8_t *b) {
  assert(n <= ENG_SIM_I8_MAX_N);
#if defined(ENG_VNNI_AVX2)
  if (has_vnni_avx2()) return dot_i8_vnni_avx2(n, a, b);
#endif
  return dot_i8_madd_avx2(n, a, b);
}

int32_t eng_sqnorm_i8_avx2(size_t n, const int8_t *a) {
  assert(n <= ENG_SIM_I8_MAX_N);
#if defined(ENG_VNNI_AVX2)
  if (has_vnni_avx2()) return dot_i8_vnni_avx2(n, a, a);
#endif
  __m256i s0 = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i x = load_i8_avx2(a + i);
    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x, x));
  }
  if (i < n) {
    __m256i x = load_i8_tail_avx2(a + i, n - i);
    s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(x, x));
  }
  return hsum_i32_avx2(s0);
}

float eng_cos_i8_avx2(size_t n, const int8_t *a, const int8_t *b) {
  assert(n <= ENG_SIM_I8_MAX_N);
#if defined(ENG_VNNI_AVX2)
  if (has_vnni_avx2())
    return eng_sim_cos_finish_i32(dot_i8_vnni_avx2(n, a, b), dot_i8_vnni_avx2(n, a, a), dot_i8_vnni_avx2(n, b, b));
#endif
  __m256i ab = _mm256_setzero_si256(), aa = ab, bb = ab;
  size_t i = 0;
  for (; i < n; i += 16) {
    __m256i x, y;
    if (i + 16 <= n) {
      x = load_i8_avx2(a + i);
      y = load_i8_avx2(b + i);
    } else {
      x = load_i8_tail_avx2(a + i, n - i);
      y = load_i8_tail_avx2(b + i, n - i);
    }
    ab = _mm256_add_epi32(ab, _mm256_madd_epi16(x, y));
    aa = _mm256_add_epi32(aa, _mm256_madd_epi16(x, x));
    bb = _mm256_add_epi32(bb, _mm256_madd_epi16(y, y));
  }
  return eng_sim_cos_finish_i32(hsum_i32_avx2(ab), hsum_i32_avx2(aa), hsum_i32_avx2(bb));
}

void eng_l2norm_rows_f32_avx2(size_t m, size_t n, const float *x, size_t ldx, float *y, size_t ldy) {
  assert(m <= 1 || (ldx >= n && ldy >= n));
  for (size_t r = 0; r < m; r++) {
    const float *xr = x + r * ldx;
    float *yr = y + r * ldy;
    __m256 inv = _mm256_set1_ps(eng_sim_inv_norm(eng_sqnorm_f32_avx2(n, xr)));
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(yr + i, _mm256_mul_ps(_mm256_loadu_ps(xr + i), inv));
    if (i < n) {
      __m256i k = tail_mask_avx2(n - i);
      _mm256_maskstore_ps(yr + i, k, _mm256_mul_ps(_mm256_maskload_ps(xr + i, k), inv));
    }
  }
}

void eng_l2norm_rows_f16_avx2(size_t m, size_t n, const uint16_t *x, size_t ldx, uint16_t *y, size_t ldy) {
  assert(m <= 1 || (ldx >= n && ldy >= n));
  for (size_t r = 0; r < m; r++) {
    const uint16_t *xr = x + r * ldx;
    uint16_t *yr = y + r * ldy;
    __m256 inv = _mm256_set1_ps(eng_sim_inv_norm(eng_sqnorm_f16_avx2(n, xr)));
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
      _mm_storeu_si128((__m128i *)(yr + i), _mm256_cvtps_ph(_mm256_mul_ps(load_f16_avx2(xr + i), inv), _MM_FROUND_TO_NEAREST_INT));
    if (i < n) {
      uint16_t t[8];
      _mm_storeu_si128((__m128i *)t, _mm256_cvtps_ph(_mm256_mul_ps(load_f16_tail_avx2(xr + i, n - i), inv), _MM_FROUND_TO_NEAREST_INT));
      memcpy(yr + i, t, (n - i) * sizeof(uint16_t));
    }
  }
}

/* Gallery scans: one row at a time, four accumulators. Memory-bound, so what matters is the access pattern: one
 * sequential stream (measured on Zen 3, 1 thread, under load: f16 rows 11.6 GB/s one row at a time against 8.8
 * GB/s for four interleaved rows, f32 11.3 vs 10.5; a plain read loop 13 GB/s). The query stays in L1. */
void eng_scan_f32_avx2(size_t rows, size_t d, const float *q, const float *g, size_t ldg, float *out) {
  assert(rows <= 1 || ldg >= d);
  for (size_t r = 0; r < rows; r++) out[r] = eng_dot_f32_avx2(d, q, g + r * ldg);
}

/* The f16 rows also get a software prefetch 1 KiB ahead (the next row at d = 512): measured 0.77-0.81 of a plain
 * read loop's bandwidth without it, 0.92-0.95 with it (the same prefetch in the f32 scan measured 0.87-0.90
 * against 0.95-0.96 without, so it has none). A prefetch past the end of the gallery cannot fault. */
void eng_scan_f16_avx2(size_t rows, size_t d, const float *q, const uint16_t *g, size_t ldg, float *out) {
  assert(rows <= 1 || ldg >= d);
  const __m256i k = tail_mask_avx2(d % 8);
  for (size_t r = 0; r < rows; r++) {
    const uint16_t *p = g + r * ldg;
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 32 <= d; i += 32) {
      _mm_prefetch((const char *)(p + i) + 1024, _MM_HINT_T0);
      s0 = _mm256_fmadd_ps(load_f16_avx2(p + i), _mm256_loadu_ps(q + i), s0);
      s1 = _mm256_fmadd_ps(load_f16_avx2(p + i + 8), _mm256_loadu_ps(q + i + 8), s1);
      s2 = _mm256_fmadd_ps(load_f16_avx2(p + i + 16), _mm256_loadu_ps(q + i + 16), s2);
      s3 = _mm256_fmadd_ps(load_f16_avx2(p + i + 24), _mm256_loadu_ps(q + i + 24), s3);
    }
    for (; i + 8 <= d; i += 8) s0 = _mm256_fmadd_ps(load_f16_avx2(p + i), _mm256_loadu_ps(q + i), s0);
    if (i < d) s1 = _mm256_fmadd_ps(load_f16_tail_avx2(p + i, d - i), _mm256_maskload_ps(q + i, k), s1);
    out[r] = hsum_avx2(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  }
}

void eng_scan_i8_avx2(size_t rows, size_t d, const int8_t *q, const int8_t *g, size_t ldg, int32_t *out) {
  assert(rows <= 1 || ldg >= d);
  assert(d <= ENG_SIM_I8_MAX_N);
#if defined(ENG_VNNI_AVX2)
  if (has_vnni_avx2()) { /* the row is the offset (u8) operand: the correction 128 sum(q) is computed once */
    const int32_t off = 128 * sum_i8_avx2(d, q);
    for (size_t r = 0; r < rows; r++) out[r] = hsum_i32_avx2(dot_u8s8_vnni_avx2(d, g + r * ldg, q)) - off;
    return;
  }
#endif
  for (size_t r = 0; r < rows; r++) out[r] = dot_i8_madd_avx2(d, q, g + r * ldg);
}

void eng_cvt_f16_f32_avx2(size_t n, const uint16_t *x, float *y) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, load_f16_avx2(x + i));
  for (; i < n; i++) y[i] = eng_sim_h2f(x[i]);
}

void eng_cvt_f32_f16_avx2(size_t n, const float *x, uint16_t *y) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++) y[i] = eng_sim_f2h(x[i]);
}
