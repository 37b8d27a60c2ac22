/* act_avx2.h: one vector of any activation (act_avx2), shared by the bias + activation kernels (act_avx2.c) and the
 * fused GEMM epilogue of the AVX2 micro-kernel (gemm/tile_6x16_avx2.h), so both give bitwise the same results.
 * ISA: avx2 (-mavx2 -mfma -mf16c); include only from *_avx2.c files. */
#ifndef ENG_ACT_AVX2_H
#define ENG_ACT_AVX2_H

#include "eng/eng_kernels.h"
#include "../../simd/simd_avx2.h"

ENG_INLINE __m256 act_avx2(__m256 x, int kind, __m256 p0, __m256 p1) {
  switch (kind) {
    case ENG_ACT_RELU: return _mm256_max_ps(_mm256_setzero_ps(), x); /* maxps returns x when x is NaN */
    case ENG_ACT_CLIP: return _mm256_min_ps(p1, _mm256_max_ps(p0, x));
    case ENG_ACT_LEAKY_RELU:
      return _mm256_blendv_ps(x, _mm256_mul_ps(x, p0), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
    case ENG_ACT_HARDSWISH: {
      __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.0f / 6.0f), _mm256_set1_ps(0.5f));
      t = _mm256_min_ps(_mm256_set1_ps(1.0f), _mm256_max_ps(_mm256_setzero_ps(), t));
      return _mm256_mul_ps(x, t);
    }
    case ENG_ACT_HARDSIGMOID: { /* mul then add, as the scalar twin (bitwise equal) */
      __m256 t = _mm256_add_ps(_mm256_mul_ps(p0, x), p1);
      return _mm256_min_ps(_mm256_set1_ps(1.0f), _mm256_max_ps(_mm256_setzero_ps(), t));
    }
    default: break;
  }
  __m256 y;
  switch (kind) {
    case ENG_ACT_SIGMOID: y = sigmoid_avx2(x); break;
    case ENG_ACT_SILU: y = _mm256_mul_ps(x, sigmoid_avx2(x)); break;
    case ENG_ACT_GELU: y = gelu_avx2(x); break;
    case ENG_ACT_GELU_TANH: y = gelu_tanh_avx2(x); break;
    case ENG_ACT_TANH: y = tanh_avx2(x); break;
    case ENG_ACT_ELU: {
      __m256 neg = _mm256_mul_ps(p0, expm1_neg_avx2(_mm256_min_ps(x, _mm256_setzero_ps())));
      y = _mm256_blendv_ps(x, neg, _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ));
      break;
    }
    case ENG_ACT_SOFTPLUS: y = softplus_avx2(x); break;
    case ENG_ACT_EXP: { /* exp_avx2 gives +inf above 88.376; exp(x/2)^2 covers the top of the float range */
      y = exp_avx2(x);
      __m256 big = _mm256_cmp_ps(x, _mm256_set1_ps(88.0f), _CMP_GT_OQ);
      if (_mm256_movemask_ps(big)) {
        __m256 h = exp_avx2(_mm256_mul_ps(x, _mm256_set1_ps(0.5f)));
        y = _mm256_blendv_ps(y, _mm256_mul_ps(h, h), big);
      }
      break;
    }
    default: return x;
  }
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q)); /* the range clamps would eat NaN */
}

#endif /* ENG_ACT_AVX2_H */
