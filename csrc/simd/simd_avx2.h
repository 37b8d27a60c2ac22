/* simd_avx2.h: static inline AVX2+FMA helpers. Include only from *_avx2.c files (compiled with
 * -mavx2 -mfma -mf16c); every helper carries the _avx2 suffix so it cannot be used from another ISA. */
#ifndef ENG_SIMD_AVX2_H
#define ENG_SIMD_AVX2_H

#include <immintrin.h>
#include <stdint.h>

/* Mask selecting the first n (0..8) lanes, for maskload/maskstore tails. */
static inline __m256i tail_mask_avx2(size_t n) {
  static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}

static inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

/* exp(x), Cephes-style: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial, 2^n through the
 * exponent bits. Max error about 2 ulp for x in [-87.3, 88.4]; below that it returns 0 (the denormal range
 * is flushed), above it +inf, and NaN gives 0 (callers that can see NaN restore it). */
static inline __m256 exp_avx2(__m256 x0) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
  __m256 x = _mm256_min_ps(_mm256_max_ps(x0, lo), hi);
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  __m256 r2 = _mm256_mul_ps(r, r);
  p = _mm256_fmadd_ps(p, r2, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  y = _mm256_and_ps(y, _mm256_cmp_ps(x0, lo, _CMP_GE_OQ)); /* underflow (and NaN) to 0, not FLT_MIN */
  return _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x0, hi, _CMP_GT_OQ));
}

/* sigmoid(x) = 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) for x < 0: never overflows, keeps relative
 * accuracy in the left tail. */
static inline __m256 sigmoid_avx2(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
  __m256 e = exp_avx2(_mm256_or_ps(x, sign)); /* exp(-|x|) in (0, 1] */
  __m256 d = _mm256_add_ps(one, e);
  __m256 pos = _mm256_div_ps(one, d), neg = _mm256_mul_ps(e, pos); /* one division: e * (1/d), <= 1 ulp more */
  return _mm256_blendv_ps(pos, neg, x); /* blendv picks by the sign bit of x */
}

/* erfc(z) for z >= 0 (Numerical Recipes erfcc, Chebyshev fit, relative error < 1.2e-7 in exact
 * arithmetic): t = 1/(1 + z/2), erfc = t exp(-z^2 + P(t)). */
static inline __m256 erfc_pos_avx2(__m256 z) {
  __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(0.17087277f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
  p = _mm256_fnmadd_ps(z, z, p);
  return _mm256_mul_ps(t, exp_avx2(p));
}

/* gelu(x) = 0.5 x erfc(-x / sqrt 2); erfc(-z) = 2 - erfc(z) for z > 0. */
static inline __m256 gelu_avx2(__m256 x) {
  __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(-0.70710678118654752f));
  __m256 az = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), z);
  __m256 e = erfc_pos_avx2(az);
  __m256 erfc_z = _mm256_blendv_ps(e, _mm256_sub_ps(_mm256_set1_ps(2.0f), e), z); /* z < 0: 2 - erfc(|z|) */
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), erfc_z);
}

/* gelu_tanh(x) = x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)), since 0.5 (1 + tanh(u)) = sigmoid(2u). */
static inline __m256 gelu_tanh_avx2(__m256 x) {
  __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
  __m256 u = _mm256_mul_ps(_mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x), _mm256_set1_ps(1.5957691216057308f));
  return _mm256_mul_ps(x, sigmoid_avx2(u));
}

/* The exp polynomial without its leading 1: q = exp(r) - 1 for |r| <= ln2/2 (same constants as exp_avx2). */
static inline __m256 expm1_poly_avx2(__m256 r) {
  __m256 p = _mm256_set1_ps(1.9875691500E-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
  return _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
}

/* expm1(x) for x <= 0 (ELU's negative side): x = n ln2 + r, expm1 = 2^n q + (2^n - 1) with q = expm1(r), so
 * small |x| (n = 0) keeps full relative accuracy. Below -87.3 it returns -1. NaN gives garbage (callers restore). */
static inline __m256 expm1_neg_avx2(__m256 x0) {
  __m256 x = _mm256_max_ps(x0, _mm256_set1_ps(-87.3365478515625f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 q = expm1_poly_avx2(r);
  __m256 sc = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
  return _mm256_fmadd_ps(sc, q, _mm256_sub_ps(sc, _mm256_set1_ps(1.0f)));
}

/* tanh(x) as x P(x^2) / Q(x^2) on x clamped to +-7.9053 (Eigen's ptanh_float rational approximation, degree 13/6;
 * x itself below |x| < 4e-4): one division, no exp. Max error 3.9e-7 absolute and relative (measured, float32
 * evaluation against float64 tanh on [-10, 10]). NaN gives garbage (callers restore it). */
static inline __m256 tanh_avx2(__m256 x0) {
  const __m256 c = _mm256_set1_ps(7.90531110763549805f);
  __m256 x = _mm256_min_ps(_mm256_max_ps(x0, _mm256_sub_ps(_mm256_setzero_ps(), c)), c);
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-2.76076847742355e-16f);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.00018790482477e-13f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-8.60467152213735e-11f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(5.12229709037114e-08f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(1.48572235717979e-05f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(6.37261928875436e-04f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(4.89352455891786e-03f));
  p = _mm256_mul_ps(p, x);
  __m256 q = _mm256_set1_ps(1.19825839466702e-06f);
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(1.18534705686654e-04f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(2.26843463243900e-03f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(4.89352518554385e-03f));
  __m256 tiny = _mm256_cmp_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x0), _mm256_set1_ps(0.0004f), _CMP_LT_OQ);
  return _mm256_blendv_ps(_mm256_div_ps(p, q), x0, tiny);
}

/* log1p(u) for u in [0, 1] (softplus): Cephes logf on 1 + u = 2^e (1 + f), with f taken from u without rounding
 * 1 + u: e = 0, f = u when 1 + u < sqrt 2; else e = 1, f = (u - 1) / 2. log = f - f^2/2 + f^3 P(f) + e ln2. */
static inline __m256 log1p01_avx2(__m256 u) {
  __m256 big = _mm256_cmp_ps(u, _mm256_set1_ps(0.41421356237309515f), _CMP_GE_OQ);
  __m256 f = _mm256_blendv_ps(u, _mm256_mul_ps(_mm256_sub_ps(u, _mm256_set1_ps(1.0f)), _mm256_set1_ps(0.5f)), big);
  __m256 e = _mm256_and_ps(big, _mm256_set1_ps(1.0f));
  __m256 z = _mm256_mul_ps(f, f);
  __m256 p = _mm256_set1_ps(7.0376836292E-2f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-1.1514610310E-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.1676998740E-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-1.2420140846E-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.4249322787E-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-1.6668057665E-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.0000714765E-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(-2.4999993993E-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(3.3333331174E-1f));
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, f), z);
  y = _mm256_fmadd_ps(e, _mm256_set1_ps(-2.12194440e-4f), y);
  y = _mm256_fnmadd_ps(z, _mm256_set1_ps(0.5f), y);
  __m256 r = _mm256_add_ps(f, y);
  return _mm256_fmadd_ps(e, _mm256_set1_ps(0.693359375f), r);
}

/* softplus(x) = max(x, 0) + log1p(exp(-|x|)). Below about -87 exp flushes to 0, so the result is 0 where the
 * true value is a denormal. */
static inline __m256 softplus_avx2(__m256 x) {
  __m256 e = exp_avx2(_mm256_or_ps(x, _mm256_set1_ps(-0.0f)));
  return _mm256_add_ps(_mm256_max_ps(x, _mm256_setzero_ps()), log1p01_avx2(e));
}

#endif /* ENG_SIMD_AVX2_H */
