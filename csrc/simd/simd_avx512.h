/* simd_avx512.h: static inline AVX-512 helpers. Include only from *_avx512.c files (compiled with
 * -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c); every helper carries the _avx512 suffix so
 * it cannot be used from another ISA.  Twin of simd_avx2.h: exp, sigmoid, erfc/gelu and gelu_tanh use the
 * same formulas, constants and operation order, so the AVX-512 and AVX2 activations give the same floats
 * (only the vector width differs).
 *
 * ENG_SIMDE_EMULATION (tests/c/run_ctests.sh avx512-emu only; the real build never defines it) takes the
 * _mm512_* intrinsics from SIMDe, which implements them with AVX2, so the logic of these kernels can be
 * tested on a CPU without AVX-512. */
#ifndef ENG_SIMD_AVX512_H
#define ENG_SIMD_AVX512_H

#include <stddef.h>
#include <stdint.h>

#if defined(ENG_SIMDE_EMULATION)
#define SIMDE_ENABLE_NATIVE_ALIASES
#include <math.h>
#include <simde/x86/avx512.h>
/* SIMDe 0.7.4 (Debian 12) lacks a few intrinsics used here; plain-C stand-ins, for the emulation build only.
 * The masked ones touch only the selected lanes, as the hardware does. */
#ifndef _mm512_maskz_loadu_ps
static inline __m512 eng_emu_maskz_loadu_ps(__mmask16 k, const void *p) {
  float t[16];
  for (int i = 0; i < 16; i++) t[i] = (k >> i) & 1 ? ((const float *)p)[i] : 0.0f;
  return _mm512_loadu_ps(t);
}
#define _mm512_maskz_loadu_ps(k, p) eng_emu_maskz_loadu_ps((k), (p))
#endif
#ifndef _mm512_mask_storeu_ps
static inline void eng_emu_mask_storeu_ps(void *p, __mmask16 k, __m512 v) {
  float t[16];
  _mm512_storeu_ps(t, v);
  for (int i = 0; i < 16; i++)
    if ((k >> i) & 1) ((float *)p)[i] = t[i];
}
#define _mm512_mask_storeu_ps(p, k, v) eng_emu_mask_storeu_ps((p), (k), (v))
#endif
#ifndef _mm512_cvtps_epi32
static inline __m512i eng_emu_cvtps_epi32(__m512 v) {
  float t[16];
  int32_t r[16];
  _mm512_storeu_ps(t, v);
  for (int i = 0; i < 16; i++) r[i] = (int32_t)lrintf(t[i]); /* round to nearest even, as MXCSR's default */
  return _mm512_loadu_si512(r);
}
#define _mm512_cvtps_epi32(v) eng_emu_cvtps_epi32(v)
#endif
#ifndef _mm512_reduce_add_ps
static inline float eng_emu_reduce_add_ps(__m512 v) { /* halving tree, as GCC's _mm512_reduce_add_ps */
  float t[16];
  _mm512_storeu_ps(t, v);
  for (int w = 8; w >= 1; w /= 2)
    for (int i = 0; i < w; i++) t[i] = t[i] + t[i + w];
  return t[0];
}
#define _mm512_reduce_add_ps(v) eng_emu_reduce_add_ps(v)
#endif
#else
#if !defined(_MSC_VER) && !defined(__AVX512F__)
#error "simd_avx512.h: compile this file with setup.py's avx512 flags (-mavx512f -mavx512bw -mavx512dq -mavx512vl ...)"
#endif
#include <immintrin.h>
#endif /* ENG_SIMDE_EMULATION */

/* Mask selecting the first n (0..16) lanes, for masked load/store tails. */
static inline __mmask16 tail_mask_avx512(size_t n) { return (__mmask16)((1u << n) - 1u); }

static inline float hsum_avx512(__m512 v) { return _mm512_reduce_add_ps(v); }

/* Lanes whose sign bit is set (x < 0, -0.0, negative NaN): what _mm256_blendv_ps selects on in the twin. */
static inline __mmask16 sign_mask_avx512(__m512 x) {
  return _mm512_movepi32_mask(_mm512_castps_si512(x)); /* AVX512DQ vpmovd2m */
}

/* exp(x), Cephes-style: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial, 2^n through the
 * exponent bits. Max error about 2 ulp for x in [-87.3, 88.4]; below that it returns 0 (the denormal range
 * is flushed), above it +inf, and NaN gives 0 (callers that can see NaN restore it). */
static inline __m512 exp_avx512(__m512 x0) {
  const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-87.3365478515625f);
  __m512 x = _mm512_min_ps(_mm512_max_ps(x0, lo), hi);
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  __m512 r2 = _mm512_mul_ps(r, r);
  p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  __m512 y = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
  y = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x0, lo, _CMP_GE_OQ), y); /* underflow (and NaN) to 0 */
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x0, hi, _CMP_GT_OQ), _mm512_set1_ps(__builtin_inff()));
}

/* sigmoid(x) = 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) for x < 0: never overflows, keeps relative
 * accuracy in the left tail. */
static inline __m512 sigmoid_avx512(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.0f);
  __m512 e = exp_avx512(_mm512_or_ps(x, _mm512_set1_ps(-0.0f))); /* exp(-|x|) in (0, 1] */
  __m512 d = _mm512_add_ps(one, e);
  __m512 pos = _mm512_div_ps(one, d), neg = _mm512_mul_ps(e, pos); /* one division, as sigmoid_avx2 */
  return _mm512_mask_blend_ps(sign_mask_avx512(x), pos, neg); /* by the sign bit, as blendv in the twin */
}

/* erfc(z) for z >= 0 (Numerical Recipes erfcc, Chebyshev fit, relative error < 1.2e-7 in exact
 * arithmetic): t = 1/(1 + z/2), erfc = t exp(-z^2 + P(t)). */
static inline __m512 erfc_pos_avx512(__m512 z) {
  __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(z, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(0.17087277f);
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
  p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
  p = _mm512_fnmadd_ps(z, z, p);
  return _mm512_mul_ps(t, exp_avx512(p));
}

/* gelu(x) = 0.5 x erfc(-x / sqrt 2); erfc(-z) = 2 - erfc(z) for z > 0. */
static inline __m512 gelu_avx512(__m512 x) {
  __m512 z = _mm512_mul_ps(x, _mm512_set1_ps(-0.70710678118654752f));
  __m512 az = _mm512_andnot_ps(_mm512_set1_ps(-0.0f), z);
  __m512 e = erfc_pos_avx512(az);
  __m512 erfc_z = _mm512_mask_blend_ps(sign_mask_avx512(z), e, _mm512_sub_ps(_mm512_set1_ps(2.0f), e)); /* z < 0: 2 - erfc(|z|) */
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), erfc_z);
}

/* gelu_tanh(x) = x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)), since 0.5 (1 + tanh(u)) = sigmoid(2u). */
static inline __m512 gelu_tanh_avx512(__m512 x) {
  __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
  __m512 u = _mm512_mul_ps(_mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x), _mm512_set1_ps(1.5957691216057308f));
  return _mm512_mul_ps(x, sigmoid_avx512(u));
}

/* The exp polynomial without its leading 1: q = exp(r) - 1 for |r| <= ln2/2. Twin of expm1_poly_avx2. */
static inline __m512 expm1_poly_avx512(__m512 r) {
  __m512 p = _mm512_set1_ps(1.9875691500E-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
  return _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
}

/* expm1(x) for x <= 0. Twin of expm1_neg_avx2. */
static inline __m512 expm1_neg_avx512(__m512 x0) {
  __m512 x = _mm512_max_ps(x0, _mm512_set1_ps(-87.3365478515625f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 q = expm1_poly_avx512(r);
  __m512 sc = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
  return _mm512_fmadd_ps(sc, q, _mm512_sub_ps(sc, _mm512_set1_ps(1.0f)));
}

/* tanh(x), twin of tanh_avx2: as x P(x^2) / Q(x^2) on x clamped to +-7.9053 (Eigen's ptanh_float rational approximation, degree 13/6;
 * x itself below |x| < 4e-4): one division, no exp. Max error 3.9e-7 absolute and relative (measured, float32
 * evaluation against float64 tanh on [-10, 10]). NaN gives garbage (callers restore it). */
static inline __m512 tanh_avx512(__m512 x0) {
  const __m512 c = _mm512_set1_ps(7.90531110763549805f);
  __m512 x = _mm512_min_ps(_mm512_max_ps(x0, _mm512_sub_ps(_mm512_setzero_ps(), c)), c);
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_set1_ps(-2.76076847742355e-16f);
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(2.00018790482477e-13f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(-8.60467152213735e-11f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(5.12229709037114e-08f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(1.48572235717979e-05f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(6.37261928875436e-04f));
  p = _mm512_fmadd_ps(p, x2, _mm512_set1_ps(4.89352455891786e-03f));
  p = _mm512_mul_ps(p, x);
  __m512 q = _mm512_set1_ps(1.19825839466702e-06f);
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(1.18534705686654e-04f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(2.26843463243900e-03f));
  q = _mm512_fmadd_ps(q, x2, _mm512_set1_ps(4.89352518554385e-03f));
  __mmask16 tiny = _mm512_cmp_ps_mask(_mm512_andnot_ps(_mm512_set1_ps(-0.0f), x0), _mm512_set1_ps(0.0004f), _CMP_LT_OQ);
  return _mm512_mask_mov_ps(_mm512_div_ps(p, q), tiny, x0);
}

/* log1p(u) for u in [0, 1]. Twin of log1p01_avx2. */
static inline __m512 log1p01_avx512(__m512 u) {
  __mmask16 big = _mm512_cmp_ps_mask(u, _mm512_set1_ps(0.41421356237309515f), _CMP_GE_OQ);
  __m512 f = _mm512_mask_blend_ps(big, u, _mm512_mul_ps(_mm512_sub_ps(u, _mm512_set1_ps(1.0f)), _mm512_set1_ps(0.5f)));
  __m512 e = _mm512_maskz_mov_ps(big, _mm512_set1_ps(1.0f));
  __m512 z = _mm512_mul_ps(f, f);
  __m512 p = _mm512_set1_ps(7.0376836292E-2f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(-1.1514610310E-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.1676998740E-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(-1.2420140846E-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.4249322787E-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(-1.6668057665E-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.0000714765E-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(-2.4999993993E-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(3.3333331174E-1f));
  __m512 y = _mm512_mul_ps(_mm512_mul_ps(p, f), z);
  y = _mm512_fmadd_ps(e, _mm512_set1_ps(-2.12194440e-4f), y);
  y = _mm512_fnmadd_ps(z, _mm512_set1_ps(0.5f), y);
  __m512 r = _mm512_add_ps(f, y);
  return _mm512_fmadd_ps(e, _mm512_set1_ps(0.693359375f), r);
}

/* softplus(x) = max(x, 0) + log1p(exp(-|x|)). Twin of softplus_avx2. */
static inline __m512 softplus_avx512(__m512 x) {
  __m512 e = exp_avx512(_mm512_or_ps(x, _mm512_set1_ps(-0.0f)));
  return _mm512_add_ps(_mm512_max_ps(x, _mm512_setzero_ps()), log1p01_avx512(e));
}

#endif /* ENG_SIMD_AVX512_H */
