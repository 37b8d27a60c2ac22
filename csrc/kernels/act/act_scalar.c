/* act_scalar.c: reference bias + activation epilogue and elementwise activation.  ISA: scalar.
 * Uses libm (expf, erff, tanhf, expm1f, log1pf), so it is the accurate twin of the SIMD approximations. */
#include <math.h>

#include "eng/eng_kernels.h"

static float act_one(float x, const eng_act_t *act) {
  switch (act->kind) {
    case ENG_ACT_RELU: return x < 0.0f ? 0.0f : x; /* NaN stays NaN, as in ONNX */
    case ENG_ACT_CLIP: return x < act->p0 ? act->p0 : (x > act->p1 ? act->p1 : x);
    case ENG_ACT_LEAKY_RELU: return x >= 0.0f ? x : act->p0 * x;
    case ENG_ACT_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case ENG_ACT_SILU: return x / (1.0f + expf(-x));
    case ENG_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case ENG_ACT_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
    case ENG_ACT_HARDSWISH: {
      float t = x * (1.0f / 6.0f) + 0.5f;
      t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
      return x * t;
    }
    case ENG_ACT_TANH: return tanhf(x);
    case ENG_ACT_HARDSIGMOID: {
      float t = act->p0 * x;
      t = t + act->p1;
      return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    }
    case ENG_ACT_ELU: return x >= 0.0f ? x : act->p0 * expm1f(x);
    case ENG_ACT_SOFTPLUS: return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
    case ENG_ACT_EXP: return expf(x);
    default: return x;
  }
}

void eng_bias_act_f32_scalar(size_t n, float *y, const float *bias, float bias_s, const eng_act_t *act) {
  for (size_t j = 0; j < n; j++) {
    float v = y[j] + bias_s;
    if (bias) v += bias[j];
    y[j] = act_one(v, act);
  }
}

void eng_act_f32_scalar(size_t n, const float *x, float *y, const eng_act_t *act) {
  for (size_t j = 0; j < n; j++) y[j] = act_one(x[j], act);
}
