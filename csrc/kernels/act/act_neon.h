/* act_neon.h: one vector of any activation (act_neon), shared by the bias + activation kernels (act_neon.c) and the
 * fused GEMM epilogue of the NEON micro-kernel (gemm/gemm_neon.c), so both give bitwise the same results.
 * ISA: neon (AArch64 Advanced SIMD, baseline: no extra flags); include only from *_neon.c files.
 * Twin of act_avx2.h (4 lanes; compare-selects written as the scalar comparisons, see act_neon.c). */
#ifndef ENG_ACT_NEON_H
#define ENG_ACT_NEON_H

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

#endif /* ENG_ACT_NEON_H */
