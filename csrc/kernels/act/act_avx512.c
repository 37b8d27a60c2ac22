/* act_avx512.c: bias + activation epilogue and elementwise activation (eng_act_f32_avx512).  ISA: avx512 (-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2
 * -mfma -mf16c).
 * Must match act_scalar.c (eng_bias_act_f32_scalar): exact for relu/clip/leaky_relu, hardswish up to FMA
 * rounding; sigmoid/silu/gelu use the approximations of simd_avx512.h (a few ulp, see tests/tolerances.py).
 * Twin of act_avx2.c, 16 lanes instead of 8, with an opmask tail instead of maskload/maskstore: both give
 * the same floats. NaN inputs give NaN outputs for every activation. The per-vector activation (act_avx512) lives in
 * act_avx512.h, shared with the fused epilogue of the GEMM micro-kernel (gemm_avx512.c). */
#include "act_avx512.h"

void eng_bias_act_f32_avx512(size_t n, float *y, const float *bias, float bias_s, const eng_act_t *act) {
  const int kind = act->kind;
  const __m512 p0 = _mm512_set1_ps(act->p0), p1 = _mm512_set1_ps(act->p1), bs = _mm512_set1_ps(bias_s);
  size_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m512 v = _mm512_add_ps(_mm512_loadu_ps(y + j), bs);
    if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + j));
    _mm512_storeu_ps(y + j, act_avx512(v, kind, p0, p1));
  }
  if (j < n) { /* masked lanes are neither read nor written (no fault past the end) */
    __mmask16 mk = tail_mask_avx512(n - j);
    __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, y + j), bs);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mk, bias + j));
    _mm512_mask_storeu_ps(y + j, mk, act_avx512(v, kind, p0, p1));
  }
}

/* One loop per activation kind, so the kind's code is inlined straight into the loop (no per-vector switch). */
#define ACT_LOOP_AVX512(K)                                                                       \
  {                                                                                              \
    size_t j = 0;                                                                                \
    for (; j + 32 <= n; j += 32) {                                                               \
      __m512 v0 = _mm512_loadu_ps(x + j), v1 = _mm512_loadu_ps(x + j + 16);                     \
      _mm512_storeu_ps(y + j, act_avx512(v0, K, p0, p1));                                        \
      _mm512_storeu_ps(y + j + 16, act_avx512(v1, K, p0, p1));                                   \
    }                                                                                            \
    for (; j + 16 <= n; j += 16) _mm512_storeu_ps(y + j, act_avx512(_mm512_loadu_ps(x + j), K, p0, p1)); \
    if (j < n) {                                                                                 \
      __mmask16 mk = tail_mask_avx512(n - j);                                                    \
      _mm512_mask_storeu_ps(y + j, mk, act_avx512(_mm512_maskz_loadu_ps(mk, x + j), K, p0, p1)); \
    }                                                                                            \
  }                                                                                              \
  break;

void eng_act_f32_avx512(size_t n, const float *x, float *y, const eng_act_t *act) {
  const __m512 p0 = _mm512_set1_ps(act->p0), p1 = _mm512_set1_ps(act->p1);
  switch (act->kind) {
    case ENG_ACT_RELU: ACT_LOOP_AVX512(ENG_ACT_RELU)
    case ENG_ACT_CLIP: ACT_LOOP_AVX512(ENG_ACT_CLIP)
    case ENG_ACT_LEAKY_RELU: ACT_LOOP_AVX512(ENG_ACT_LEAKY_RELU)
    case ENG_ACT_SIGMOID: ACT_LOOP_AVX512(ENG_ACT_SIGMOID)
    case ENG_ACT_SILU: ACT_LOOP_AVX512(ENG_ACT_SILU)
    case ENG_ACT_GELU: ACT_LOOP_AVX512(ENG_ACT_GELU)
    case ENG_ACT_GELU_TANH: ACT_LOOP_AVX512(ENG_ACT_GELU_TANH)
    case ENG_ACT_HARDSWISH: ACT_LOOP_AVX512(ENG_ACT_HARDSWISH)
    case ENG_ACT_TANH: ACT_LOOP_AVX512(ENG_ACT_TANH)
    case ENG_ACT_HARDSIGMOID: ACT_LOOP_AVX512(ENG_ACT_HARDSIGMOID)
    case ENG_ACT_ELU: ACT_LOOP_AVX512(ENG_ACT_ELU)
    case ENG_ACT_SOFTPLUS: ACT_LOOP_AVX512(ENG_ACT_SOFTPLUS)
    case ENG_ACT_EXP: ACT_LOOP_AVX512(ENG_ACT_EXP)
    default: ACT_LOOP_AVX512(ENG_ACT_NONE)
  }
}
#undef ACT_LOOP_AVX512
