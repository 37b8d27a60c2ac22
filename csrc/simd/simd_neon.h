/* simd_neon.h: static inline AArch64 Advanced SIMD (NEON) helpers. Include only from *_neon.c files
 * (ASIMD is baseline on AArch64, so they need no extra flags; no dotprod/fp16 here, those are optional
 * extensions that need target attributes); every helper carries the _neon suffix so it cannot be used from
 * another ISA.
 * Twin of simd_avx2.h: the same formulas, constants and operation order, with one NEON instruction per AVX2
 * instruction (fmadd -> vfmaq, fnmadd -> vfmsq, round-to-nearest-even -> vrndnq, blendv on the sign bit ->
 * vbslq on an arithmetic-shift mask, div -> vdivq), so for finite inputs the results are bit-identical to the
 * AVX2 ones. NaN handling differs inside the helpers (NEON min/max propagate NaN, SSE's return an operand):
 * the callers in act_neon.c restore NaN inputs exactly as act_avx2.c does. */
#ifndef ENG_SIMD_NEON_H
#define ENG_SIMD_NEON_H

#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Loads the first n (0..4) floats of p into a vector whose other lanes are 0, without reading past
 * p[n-1]: the NEON counterpart of a masked load. */
static inline float32x4_t load_tail_neon(const float *p, size_t n) {
  float t[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  memcpy(t, p, n * sizeof(float));
  return vld1q_f32(t);
}

/* Stores the first n (0..4) lanes of v to p, without writing past p[n-1]: a masked store. */
static inline void store_tail_neon(float *p, size_t n, float32x4_t v) {
  float t[4];
  vst1q_f32(t, v);
  memcpy(p, t, n * sizeof(float));
}

/* All-ones lanes where the sign bit of v is set (negative numbers, -0.0, NaNs with the sign bit): the
 * selector _mm256_blendv_ps uses. */
static inline uint32x4_t sign_mask_neon(float32x4_t v) {
  return vreinterpretq_u32_s32(vshrq_n_s32(vreinterpretq_s32_f32(v), 31));
}

static inline float hsum_neon(float32x4_t v) { return vaddvq_f32(v); }

/* exp(x), Cephes-style: x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial, 2^n through the
 * exponent bits. Max error about 2 ulp for x in [-87.3, 88.4]; below that it returns 0 (the denormal range
 * is flushed), above it +inf, and NaN gives 0 (callers that can see NaN restore it). Same as exp_avx2. */
static inline float32x4_t exp_neon(float32x4_t x0) {
  const float32x4_t hi = vdupq_n_f32(88.3762626647949f), lo = vdupq_n_f32(-87.3365478515625f);
  float32x4_t x = vminq_f32(vmaxq_f32(x0, lo), hi);
  float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f))); /* nearest, ties to even */
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));                   /* x - n * C1, fused */
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));                            /* r - n * C2, fused */
  float32x4_t p = vdupq_n_f32(1.9875691500E-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507E-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073E-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894E-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459E-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201E-1f), p, r);
  float32x4_t r2 = vmulq_f32(r, r);
  p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, r2);
  int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23);
  float32x4_t y = vmulq_f32(p, vreinterpretq_f32_s32(e));
  /* underflow (and NaN) to 0, not FLT_MIN; overflow to +inf (as exp_avx2) */
  y = vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(y), vcgeq_f32(x0, lo)));
  return vbslq_f32(vcgtq_f32(x0, hi), vdupq_n_f32(__builtin_inff()), y);
}

/* sigmoid(x) = 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) for x < 0: never overflows, keeps relative
 * accuracy in the left tail. */
static inline float32x4_t sigmoid_neon(float32x4_t x) {
  const float32x4_t one = vdupq_n_f32(1.0f);
  float32x4_t e = exp_neon(vnegq_f32(vabsq_f32(x))); /* exp(-|x|) in (0, 1] */
  float32x4_t d = vaddq_f32(one, e);
  float32x4_t pos = vdivq_f32(one, d), neg = vmulq_f32(e, pos); /* one division, as sigmoid_avx2 */
  return vbslq_f32(sign_mask_neon(x), neg, pos); /* pick by the sign bit of x, as blendv does */
}

/* erfc(z) for z >= 0 (Numerical Recipes erfcc, Chebyshev fit, relative error < 1.2e-7 in exact
 * arithmetic): t = 1/(1 + z/2), erfc = t exp(-z^2 + P(t)). */
static inline float32x4_t erfc_pos_neon(float32x4_t z) {
  float32x4_t t = vdivq_f32(vdupq_n_f32(1.0f), vfmaq_f32(vdupq_n_f32(1.0f), z, vdupq_n_f32(0.5f)));
  float32x4_t p = vdupq_n_f32(0.17087277f);
  p = vfmaq_f32(vdupq_n_f32(-0.82215223f), p, t);
  p = vfmaq_f32(vdupq_n_f32(1.48851587f), p, t);
  p = vfmaq_f32(vdupq_n_f32(-1.13520398f), p, t);
  p = vfmaq_f32(vdupq_n_f32(0.27886807f), p, t);
  p = vfmaq_f32(vdupq_n_f32(-0.18628806f), p, t);
  p = vfmaq_f32(vdupq_n_f32(0.09678418f), p, t);
  p = vfmaq_f32(vdupq_n_f32(0.37409196f), p, t);
  p = vfmaq_f32(vdupq_n_f32(1.00002368f), p, t);
  p = vfmaq_f32(vdupq_n_f32(-1.26551223f), p, t);
  p = vfmsq_f32(p, z, z); /* p - z * z, fused */
  return vmulq_f32(t, exp_neon(p));
}

/* gelu(x) = 0.5 x erfc(-x / sqrt 2); erfc(-z) = 2 - erfc(z) for z > 0. */
static inline float32x4_t gelu_neon(float32x4_t x) {
  float32x4_t z = vmulq_f32(x, vdupq_n_f32(-0.70710678118654752f));
  float32x4_t e = erfc_pos_neon(vabsq_f32(z));
  float32x4_t erfc_z = vbslq_f32(sign_mask_neon(z), vsubq_f32(vdupq_n_f32(2.0f), e), e); /* z < 0: 2 - erfc(|z|) */
  return vmulq_f32(vmulq_f32(vdupq_n_f32(0.5f), x), erfc_z);
}

/* gelu_tanh(x) = x * sigmoid(2 sqrt(2/pi) (x + 0.044715 x^3)), since 0.5 (1 + tanh(u)) = sigmoid(2u). */
static inline float32x4_t gelu_tanh_neon(float32x4_t x) {
  float32x4_t x3 = vmulq_f32(vmulq_f32(x, x), x);
  float32x4_t u = vmulq_f32(vfmaq_f32(x, x3, vdupq_n_f32(0.044715f)), vdupq_n_f32(1.5957691216057308f));
  return vmulq_f32(x, sigmoid_neon(u));
}

/* The exp polynomial without its leading 1: q = exp(r) - 1 for |r| <= ln2/2. Twin of expm1_poly_avx2. */
static inline float32x4_t expm1_poly_neon(float32x4_t r) {
  float32x4_t p = vdupq_n_f32(1.9875691500E-4f);
  p = vfmaq_f32(vdupq_n_f32(1.3981999507E-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(8.3334519073E-3f), p, r);
  p = vfmaq_f32(vdupq_n_f32(4.1665795894E-2f), p, r);
  p = vfmaq_f32(vdupq_n_f32(1.6666665459E-1f), p, r);
  p = vfmaq_f32(vdupq_n_f32(5.0000001201E-1f), p, r);
  return vfmaq_f32(r, p, vmulq_f32(r, r));
}

/* expm1(x) for x <= 0. Twin of expm1_neg_avx2. */
static inline float32x4_t expm1_neg_neon(float32x4_t x0) {
  float32x4_t x = vmaxq_f32(x0, vdupq_n_f32(-87.3365478515625f));
  float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(1.44269504088896341f)));
  float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t q = expm1_poly_neon(r);
  float32x4_t sc = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127)), 23));
  return vfmaq_f32(vsubq_f32(sc, vdupq_n_f32(1.0f)), sc, q);
}

/* tanh(x), twin of tanh_avx2: as x P(x^2) / Q(x^2) on x clamped to +-7.9053 (Eigen's ptanh_float rational approximation, degree 13/6;
 * x itself below |x| < 4e-4): one division, no exp. Max error 3.9e-7 absolute and relative (measured, float32
 * evaluation against float64 tanh on [-10, 10]). NaN gives garbage (callers restore it). */
static inline float32x4_t tanh_neon(float32x4_t x0) {
  const float32x4_t c = vdupq_n_f32(7.90531110763549805f);
  float32x4_t x = vminq_f32(vmaxq_f32(x0, vnegq_f32(c)), c);
  float32x4_t x2 = vmulq_f32(x, x);
  float32x4_t p = vdupq_n_f32(-2.76076847742355e-16f);
  p = vfmaq_f32(vdupq_n_f32(2.00018790482477e-13f), p, x2);
  p = vfmaq_f32(vdupq_n_f32(-8.60467152213735e-11f), p, x2);
  p = vfmaq_f32(vdupq_n_f32(5.12229709037114e-08f), p, x2);
  p = vfmaq_f32(vdupq_n_f32(1.48572235717979e-05f), p, x2);
  p = vfmaq_f32(vdupq_n_f32(6.37261928875436e-04f), p, x2);
  p = vfmaq_f32(vdupq_n_f32(4.89352455891786e-03f), p, x2);
  p = vmulq_f32(p, x);
  float32x4_t q = vdupq_n_f32(1.19825839466702e-06f);
  q = vfmaq_f32(vdupq_n_f32(1.18534705686654e-04f), q, x2);
  q = vfmaq_f32(vdupq_n_f32(2.26843463243900e-03f), q, x2);
  q = vfmaq_f32(vdupq_n_f32(4.89352518554385e-03f), q, x2);
  uint32x4_t tiny = vcltq_f32(vabsq_f32(x0), vdupq_n_f32(0.0004f));
  return vbslq_f32(tiny, x0, vdivq_f32(p, q));
}

/* log1p(u) for u in [0, 1]. Twin of log1p01_avx2. */
static inline float32x4_t log1p01_neon(float32x4_t u) {
  uint32x4_t big = vcgeq_f32(u, vdupq_n_f32(0.41421356237309515f));
  float32x4_t f = vbslq_f32(big, vmulq_f32(vsubq_f32(u, vdupq_n_f32(1.0f)), vdupq_n_f32(0.5f)), u);
  float32x4_t e = vreinterpretq_f32_u32(vandq_u32(big, vreinterpretq_u32_f32(vdupq_n_f32(1.0f))));
  float32x4_t z = vmulq_f32(f, f);
  float32x4_t p = vdupq_n_f32(7.0376836292E-2f);
  p = vfmaq_f32(vdupq_n_f32(-1.1514610310E-1f), p, f);
  p = vfmaq_f32(vdupq_n_f32(1.1676998740E-1f), p, f);
  p = vfmaq_f32(vdupq_n_f32(-1.2420140846E-1f), p, f);
  p = vfmaq_f32(vdupq_n_f32(1.4249322787E-1f), p, f);
  p = vfmaq_f32(vdupq_n_f32(-1.6668057665E-1f), p, f);
  p = vfmaq_f32(vdupq_n_f32(2.0000714765E-1f), p, f);
  p = vfmaq_f32(vdupq_n_f32(-2.4999993993E-1f), p, f);
  p = vfmaq_f32(vdupq_n_f32(3.3333331174E-1f), p, f);
  float32x4_t y = vmulq_f32(vmulq_f32(p, f), z);
  y = vfmaq_f32(y, e, vdupq_n_f32(-2.12194440e-4f));
  y = vfmsq_f32(y, z, vdupq_n_f32(0.5f));
  float32x4_t r = vaddq_f32(f, y);
  return vfmaq_f32(r, e, vdupq_n_f32(0.693359375f));
}

/* softplus(x) = max(x, 0) + log1p(exp(-|x|)). Twin of softplus_avx2 (x < 0 ? 0 : x written as a select so NaN
 * passes as in SSE's maxps(x, 0), which returns 0 for NaN: the caller restores NaN either way). */
static inline float32x4_t softplus_neon(float32x4_t x) {
  float32x4_t e = exp_neon(vnegq_f32(vabsq_f32(x)));
  float32x4_t pos = vbslq_f32(vcgtq_f32(x, vdupq_n_f32(0.0f)), x, vdupq_n_f32(0.0f));
  return vaddq_f32(pos, log1p01_neon(e));
}

#endif /* ENG_SIMD_NEON_H */
