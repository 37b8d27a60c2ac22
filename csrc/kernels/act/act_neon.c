/* act_neon.c: bias + activation epilogue and elementwise activation (eng_act_f32_neon).  ISA: neon (AArch64 Advanced SIMD, baseline: no extra flags).
 * Must match act_scalar.c (eng_bias_act_f32_scalar): exact for relu/clip/leaky_relu (selects written as the
 * scalar comparisons, so -0.0 and NaN come out as in C), hardswish up to FMA rounding; sigmoid/silu/gelu use
 * the approximations of simd_neon.h, bit-identical to simd_avx2.h except that exp underflows to 0 (a few ulp
 * from libm, see tests/tolerances.py): silu/gelu_tanh of huge negative x give -0 (NaN at -inf, as the scalar
 * x / (1 + expf(-x)) does). NaN inputs give NaN outputs for every activation.
 * Twin of act_avx2.c. The tail (n % 4 elements) goes through the same vector code on a zero-padded copy,
 * so every element is computed by the same instructions wherever it sits. */
#include "eng/eng_kernels.h"
#include "../../simd/simd_neon.h"

ENG_INLINE float32x4_t act_neon(float32x4_t x, int kind, float32x4_t p0, float32x4_t p1) {
  switch (kind) {
    /* x < 0 ? 0 : x. FMAX would turn -0.0 into +0.0; a compare-select keeps -0.0 and NaN like the C twin. */
    case ENG_ACT_RELU: return vbslq_f32(vcltzq_f32(x), vdupq_n_f32(0.0f), x);
    case ENG_ACT_CLIP: { /* x < p0 ? p0 : (x > p1 ? p1 : x); NaN compares false and passes through */
      float32x4_t t = vbslq_f32(vcgtq_f32(x, p1), p1, x);
      return vbslq_f32(vcltq_f32(x, p0), p0, t);
    }
    case ENG_ACT_LEAKY_RELU: return vbslq_f32(vcltzq_f32(x), vmulq_f32(x, p0), x);
    case ENG_ACT_HARDSWISH: {
      float32x4_t t = vfmaq_f32(vdupq_n_f32(0.5f), x, vdupq_n_f32(1.0f / 6.0f));
      t = vminq_f32(vdupq_n_f32(1.0f), vmaxq_f32(vdupq_n_f32(0.0f), t)); /* NEON min/max propagate NaN */
      return vmulq_f32(x, t);
    }
    case ENG_ACT_HARDSIGMOID: { /* t < 0 ? 0 : (t > 1 ? 1 : t), mul then add: bitwise equal to the scalar twin */
      float32x4_t t = vaddq_f32(vmulq_f32(p0, x), p1);
      t = vbslq_f32(vcgtq_f32(t, vdupq_n_f32(1.0f)), vdupq_n_f32(1.0f), t);
      return vbslq_f32(vcltzq_f32(t), vdupq_n_f32(0.0f), t);
    }
    default: break;
  }
  float32x4_t y;
  switch (kind) {
    case ENG_ACT_SIGMOID: y = sigmoid_neon(x); break;
    case ENG_ACT_SILU: y = vmulq_f32(x, sigmoid_neon(x)); break;
    case ENG_ACT_GELU: y = gelu_neon(x); break;
    case ENG_ACT_GELU_TANH: y = gelu_tanh_neon(x); break;
    case ENG_ACT_TANH: y = tanh_neon(x); break;
    case ENG_ACT_ELU: y = vbslq_f32(vcltzq_f32(x), vmulq_f32(p0, expm1_neg_neon(vminq_f32(x, vdupq_n_f32(0.0f)))), x); break;
    case ENG_ACT_SOFTPLUS: y = softplus_neon(x); break;
    case ENG_ACT_EXP: { /* exp_neon gives +inf above 88.376; exp(x/2)^2 covers the top of the float range */
      y = exp_neon(x);
      uint32x4_t big = vcgtq_f32(x, vdupq_n_f32(88.0f));
      if (vmaxvq_u32(big)) {
        float32x4_t h = exp_neon(vmulq_f32(x, vdupq_n_f32(0.5f)));
        y = vbslq_f32(big, vmulq_f32(h, h), y);
      }
      break;
    }
    default: return x;
  }
  /* x != x only for NaN. NEON min/max propagate NaN, so the helpers already return NaN here (SSE's clamps in
   * act_avx2.c eat it); the select keeps the result independent of that and of which NaN comes out. */
  return vbslq_f32(vceqq_f32(x, x), y, x);
}

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
