/* act_neon.c: bias + activation epilogue and elementwise activation (eng_act_f32_neon).  ISA: neon (AArch64 Advanced SIMD, baseline: no extra flags).
 * Must match act_scalar.c (eng_bias_act_f32_scalar): exact for relu/clip/leaky_relu (selects written as the
 * scalar comparisons, so -0.0 and NaN come out as in C), hardswish up to FMA rounding; sigmoid/silu/gelu use
 * the approximations of simd_neon.h, bit-identical to simd_avx2.h except that exp underflows to 0 (a few ulp
 * from libm, see tests/tolerances.py): silu/gelu_tanh of huge negative x give -0 (NaN at -inf, as the scalar
 * x / (1 + expf(-x)) does). NaN inputs give NaN outputs for every activation.
 * Twin of act_avx2.c. The tail (n % 4 elements) goes through the same vector code on a zero-padded copy,
 * so every element is computed by the same instructions wherever it sits. The per-vector activation (act_neon) lives
 * in act_neon.h, shared with the fused epilogue of the GEMM micro-kernel (gemm_neon.c). */
#include "act_neon.h"

void eng_bias_act_f32_neon(size_t n, float *y, const float *bias, float bias_s, const eng_act_t *act) {
  const int kind = act->kind;
  const float32x4_t p0 = vdupq_n_f32(act->p0), p1 = vdupq_n_f32(act->p1), bs = vdupq_n_f32(bias_s);
  size_t j = 0;
  for (; j + 8 <= n; j += 8) { /* two vectors per step: the transcendental chains are long, overlap them */
    float32x4_t v0 = vaddq_f32(vld1q_f32(y + j), bs), v1 = vaddq_f32(vld1q_f32(y + j + 4), bs);
    if (bias) {
      v0 = vaddq_f32(v0, vld1q_f32(bias + j));
      v1 = vaddq_f32(v1, vld1q_f32(bias + j + 4));
    }
    vst1q_f32(y + j, act_neon(v0, kind, p0, p1));
    vst1q_f32(y + j + 4, act_neon(v1, kind, p0, p1));
  }
  for (; j + 4 <= n; j += 4) {
    float32x4_t v = vaddq_f32(vld1q_f32(y + j), bs);
    if (bias) v = vaddq_f32(v, vld1q_f32(bias + j));
    vst1q_f32(y + j, act_neon(v, kind, p0, p1));
  }
  if (j < n) {
    float32x4_t v = vaddq_f32(load_tail_neon(y + j, n - j), bs);
    if (bias) v = vaddq_f32(v, load_tail_neon(bias + j, n - j));
    store_tail_neon(y + j, n - j, act_neon(v, kind, p0, p1));
  }
}

/* One loop per activation kind, so the kind's code is inlined straight into the loop (no per-vector switch). */
#define ACT_LOOP_NEON(K)                                                                         \
  {                                                                                              \
    size_t j = 0;                                                                                \
    for (; j + 8 <= n; j += 8) {                                                                 \
      float32x4_t v0 = vld1q_f32(x + j), v1 = vld1q_f32(x + j + 4);                              \
      vst1q_f32(y + j, act_neon(v0, K, p0, p1));                                                 \
      vst1q_f32(y + j + 4, act_neon(v1, K, p0, p1));                                             \
    }                                                                                            \
    for (; j + 4 <= n; j += 4) vst1q_f32(y + j, act_neon(vld1q_f32(x + j), K, p0, p1));          \
    if (j < n) store_tail_neon(y + j, n - j, act_neon(load_tail_neon(x + j, n - j), K, p0, p1)); \
  }                                                                                              \
  break;

void eng_act_f32_neon(size_t n, const float *x, float *y, const eng_act_t *act) {
  const float32x4_t p0 = vdupq_n_f32(act->p0), p1 = vdupq_n_f32(act->p1);
  switch (act->kind) {
    case ENG_ACT_RELU: ACT_LOOP_NEON(ENG_ACT_RELU)
    case ENG_ACT_CLIP: ACT_LOOP_NEON(ENG_ACT_CLIP)
    case ENG_ACT_LEAKY_RELU: ACT_LOOP_NEON(ENG_ACT_LEAKY_RELU)
    case ENG_ACT_SIGMOID: ACT_LOOP_NEON(ENG_ACT_SIGMOID)
    case ENG_ACT_SILU: ACT_LOOP_NEON(ENG_ACT_SILU)
    case ENG_ACT_GELU: ACT_LOOP_NEON(ENG_ACT_GELU)
    case ENG_ACT_GELU_TANH: ACT_LOOP_NEON(ENG_ACT_GELU_TANH)
    case ENG_ACT_HARDSWISH: ACT_LOOP_NEON(ENG_ACT_HARDSWISH)
    case ENG_ACT_TANH: ACT_LOOP_NEON(ENG_ACT_TANH)
    case ENG_ACT_HARDSIGMOID: ACT_LOOP_NEON(ENG_ACT_HARDSIGMOID)
    case ENG_ACT_ELU: ACT_LOOP_NEON(ENG_ACT_ELU)
    case ENG_ACT_SOFTPLUS: ACT_LOOP_NEON(ENG_ACT_SOFTPLUS)
    case ENG_ACT_EXP: ACT_LOOP_NEON(ENG_ACT_EXP)
    default: ACT_LOOP_NEON(ENG_ACT_NONE)
  }
}
#undef ACT_LOOP_NEON
