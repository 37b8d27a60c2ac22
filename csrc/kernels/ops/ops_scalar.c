/* ops_scalar.c: reference op kernels (binary, softmax, layer/RMS norm, reduce, 2-D pooling, depthwise conv).
 * ISA: scalar (-fno-tree-vectorize). The specification the SIMD twins (ops_avx2.c, ops_avx512.c, ops_neon.c) are
 * tested against (tests/c/test_ops.c, tests/kernels/test_ops_kernels.py).
 * Numerics: binary ops are one IEEE operation (every ISA bitwise equal). Softmax, norm and sum accumulate in
 * double here (the SIMD twins in float with several vector accumulators, within n * eps of this). Pool and
 * depthwise conv sum taps in row-major order in float; the pooling twins use the same order (bitwise equal), the
 * conv twins use FMA in the interior. */
#include <math.h>

#include "eng/eng_kernels.h"
#include "ops_internal.h"

void eng_binary_f32_scalar(int op, size_t n, const float *a, const float *b, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = ops_binary_one(op, a[i], b[i]);
}

void eng_binary_s_f32_scalar(int op, size_t n, const float *a, float s, float *y, int rev) {
  if (rev)
    for (size_t i = 0; i < n; i++) y[i] = ops_binary_one(op, s, a[i]);
  else
    for (size_t i = 0; i < n; i++) y[i] = ops_binary_one(op, a[i], s);
}

void eng_softmax_f32_scalar(size_t n, const float *x, float *y, int want_log) {
  if (n == 0) return;
  float m = x[0];
  for (size_t i = 1; i < n; i++) m = ops_max_step(m, x[i]);
  double s = 0.0;
  if (want_log) {
    for (size_t i = 0; i < n; i++) s += expf(x[i] - m);
    float ls = (float)log(s);
    for (size_t i = 0; i < n; i++) y[i] = (x[i] - m) - ls;
  } else {
    for (size_t i = 0; i < n; i++) {
      float e = expf(x[i] - m);
      y[i] = e;
      s += e;
    }
    float inv = (float)(1.0 / s);
    for (size_t i = 0; i < n; i++) y[i] = y[i] * inv;
  }
}

void eng_norm_f32_scalar(size_t n, const float *x, const float *scale, const float *bias, float eps, int rms, float *y,
                         float *stats) {
  if (n == 0) return;
  double mean = 0.0, var = 0.0;
  if (!rms) {
    for (size_t i = 0; i < n; i++) mean += x[i];
    mean /= (double)n;
  }
  for (size_t i = 0; i < n; i++) {
    double d = x[i] - mean;
    var += d * d;
  }
  var /= (double)n;
  const float meanf = (float)mean, inv = (float)(1.0 / sqrt(var + (double)eps));
  if (stats) stats[0] = meanf, stats[1] = inv;
  for (size_t i = 0; i < n; i++) {
    float t = (x[i] - meanf) * inv;
    if (scale) t = t * scale[i];
    if (bias) t = t + bias[i];
    y[i] = t;
  }
}

float eng_reduce_f32_scalar(int op, size_t n, const float *x) {
  if (op == ENG_REDUCE_MAX) {
    float m = -INFINITY;
    for (size_t i = 0; i < n; i++) m = ops_max_step(m, x[i]);
    return m;
  }
  double s = 0.0;
  for (size_t i = 0; i < n; i++) s += x[i];
  return (float)s;
}

void eng_pool2d_f32_scalar(int kind, const eng_win2d_t *g, const float *x, float *y) {
  for (size_t i = 0; i < g->oh; i++)
    for (size_t j = 0; j < g->ow; j++) y[i * g->ow + j] = ops_pool_one(kind, g, x, i, j);
}

void eng_dwconv2d_f32_scalar(const eng_win2d_t *g, const float *x, const float *w, float bias, const eng_act_t *act,
                             float *y) {
  for (size_t i = 0; i < g->oh; i++) {
    for (size_t j = 0; j < g->ow; j++) y[i * g->ow + j] = ops_dwconv_one(g, x, w, bias, i, j);
  }
  if (act->kind != ENG_ACT_NONE) eng_act_f32_scalar(g->oh * g->ow, y, y, act);
}

/* nc planes of consecutive channels, one after the other: the specification of the channel-blocked SIMD twins. */
void eng_dwconv2d_multi_f32_scalar(const eng_win2d_t *g, size_t nc, const float *x, const float *w, const float *bias,
                                   const eng_act_t *act, float *y) {
  const size_t in = g->h * g->w, out = g->oh * g->ow, taps = g->kh * g->kw;
  for (size_t k = 0; k < nc; k++)
    eng_dwconv2d_f32_scalar(g, x + k * in, w + k * taps, bias ? bias[k] : 0.0f, act, y + k * out);
}
