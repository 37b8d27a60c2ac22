/* act_avx512.h: one vector of any activation (act_avx512), shared by the bias + activation kernels (act_avx512.c) and
 * the fused GEMM epilogue of the AVX-512 micro-kernel (gemm/gemm_avx512.c), so both give bitwise the same results.
 * ISA: avx512 (-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c); include only from *_avx512.c files.
 * Twin of act_avx2.h (16 lanes, opmask selects instead of blends). */
#ifndef ENG_ACT_AVX512_H
#define ENG_ACT_AVX512_H

#include "eng/eng_kernels.h"
#include "../../simd/simd_avx512.h"

ENG_INLINE __m512 act_avx512(__m512 x, int kind, __m512 p0, __m512 p1) {
  switch (kind) {
    case ENG_ACT_RELU: return _mm512_max_ps(_mm512_setzero_ps(), x); /* maxps returns x when x is NaN */
    case ENG_ACT_CLIP: return _mm512_min_ps(p1, _mm512_max_ps(p0, x));
    case ENG_ACT_LEAKY_RELU:
      return _mm512_mask_mul_ps(x, _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), x, p0);
    case ENG_ACT_HARDSWISH: {
      __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f));
      t = _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_setzero_ps(), t));
      return _mm512_mul_ps(x, t);
    }
    case ENG_ACT_HARDSIGMOID: { /* mul then add, as the scalar twin (bitwise equal) */
      __m512 t = _mm512_add_ps(_mm512_mul_ps(p0, x), p1);
      return _mm512_min_ps(_mm512_set1_ps(1.0f), _mm512_max_ps(_mm512_setzero_ps(), t));
    }
    default: break;
  }
  __m512 y;
  switch (kind) {
    case ENG_ACT_SIGMOID: y = sigmoid_avx512(x); break;
    case ENG_ACT_SILU: y = _mm512_mul_ps(x, sigmoid_avx512(x)); break;
    case ENG_ACT_GELU: y = gelu_avx512(x); break;
    case ENG_ACT_GELU_TANH: y = gelu_tanh_avx512(x); break;
    case ENG_ACT_TANH: y = tanh_avx512(x); break;
    case ENG_ACT_ELU: {
      __m512 neg = _mm512_mul_ps(p0, expm1_neg_avx512(_mm512_min_ps(x, _mm512_setzero_ps())));
      y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ), x, neg);
      break;
    }
    case ENG_ACT_SOFTPLUS: y = softplus_avx512(x); break;
    case ENG_ACT_EXP: { /* exp_avx512 gives +inf above 88.376; exp(x/2)^2 covers the top of the float range */
      y = exp_avx512(x);
      __mmask16 big = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.0f), _CMP_GT_OQ);
      if (big) {
        __m512 h = exp_avx512(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)));
        y = _mm512_mask_mov_ps(y, big, _mm512_mul_ps(h, h));
      }
      break;
    }
    default: return x;
  }
  return _mm512_mask_mov_ps(y, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), x); /* the range clamps would eat NaN */
}

#endif /* ENG_ACT_AVX512_H */
