/* act_avx2.c: bias + activation epilogue (eng_bias_act_f32_avx2) and elementwise activation (eng_act_f32_avx2).
 * ISA: avx2 (-mavx2 -mfma -mf16c). Must match act_scalar.c (eng_bias_act_f32_scalar, eng_act_f32_scalar): exact for
 * relu/clip/leaky_relu and hardsigmoid (mul then add, no FMA), hardswish up to FMA rounding; sigmoid, silu, gelu,
 * gelu_tanh, tanh, elu, softplus and exp use the approximations of simd_avx2.h (a few ulp, see tests/tolerances.py).
 * NaN inputs give NaN outputs for every activation. */
#include "act_avx2.h"

void eng_bias_act_f32_avx2(size_t n, float *y, const float *bias, float bias_s, const eng_act_t *act) {
  const int kind = act->kind;
  const __m256 p0 = _mm256_set1_ps(act->p0), p1 = _mm256_set1_ps(act->p1), bs = _mm256_set1_ps(bias_s);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_add_ps(_mm256_loadu_ps(y + j), bs);
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
    _mm256_storeu_ps(y + j, act_avx2(v, kind, p0, p1));
  }
  if (j < n) {
    __m256i mk = tail_mask_avx2(n - j);
    __m256 v = _mm256_add_ps(_mm256_maskload_ps(y + j, mk), bs);
    if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + j, mk));
    _mm256_maskstore_ps(y + j, mk, act_avx2(v, kind, p0, p1));
  }
}

/* One loop per activation kind, so the kind's code is inlined straight into the loop (no per-vector switch). */
#define ACT_LOOP_AVX2(K)                                                                         \
  {                                                                                              \
    size_t j = 0;                                                                                \
    for (; j + 16 <= n; j += 16) { /* two vectors per step: overlaps the long transcendental chains */ \
      __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);                      \
      _mm256_storeu_ps(y + j, act_avx2(v0, K, p0, p1));                                          \
      _mm256_storeu_ps(y + j + 8, act_avx2(v1, K, p0, p1));                                      \
    }                                                                                            \
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, act_avx2(_mm256_loadu_ps(x + j), K, p0, p1)); \
    if (j < n) {                                                                                 \
      __m256i mk = tail_mask_avx2(n - j);                                                        \
      _mm256_maskstore_ps(y + j, mk, act_avx2(_mm256_maskload_ps(x + j, mk), K, p0, p1));        \
    }                                                                                            \
  }                                                                                              \
  break;

void eng_act_f32_avx2(size_t n, const float *x, float *y, const eng_act_t *act) {
  const __m256 p0 = _mm256_set1_ps(act->p0), p1 = _mm256_set1_ps(act->p1);
  switch (act->kind) {
    case ENG_ACT_RELU: ACT_LOOP_AVX2(ENG_ACT_RELU)
    case ENG_ACT_CLIP: ACT_LOOP_AVX2(ENG_ACT_CLIP)
    case ENG_ACT_LEAKY_RELU: ACT_LOOP_AVX2(ENG_ACT_LEAKY_RELU)
    case ENG_ACT_SIGMOID: ACT_LOOP_AVX2(ENG_ACT_SIGMOID)
    case ENG_ACT_SILU: ACT_LOOP_AVX2(ENG_ACT_SILU)
    case ENG_ACT_GELU: ACT_LOOP_AVX2(ENG_ACT_GELU)
    case ENG_ACT_GELU_TANH: ACT_LOOP_AVX2(ENG_ACT_GELU_TANH)
    case ENG_ACT_HARDSWISH: ACT_LOOP_AVX2(ENG_ACT_HARDSWISH)
    case ENG_ACT_TANH: ACT_LOOP_AVX2(ENG_ACT_TANH)
    case ENG_ACT_HARDSIGMOID: ACT_LOOP_AVX2(ENG_ACT_HARDSIGMOID)
    case ENG_ACT_ELU: ACT_LOOP_AVX2(ENG_ACT_ELU)
    case ENG_ACT_SOFTPLUS: ACT_LOOP_AVX2(ENG_ACT_SOFTPLUS)
    case ENG_ACT_EXP: ACT_LOOP_AVX2(ENG_ACT_EXP)
    default: ACT_LOOP_AVX2(ENG_ACT_NONE)
  }
}
#undef ACT_LOOP_AVX2
