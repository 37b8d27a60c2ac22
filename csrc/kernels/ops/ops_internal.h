/* ops_internal.h: index math and per-element border code shared by every ISA of the op kernels (ops_<isa>.c).
 * No intrinsics; every function is static inline, so each ISA group compiles its own copy (a non-static helper
 * from an AVX2 object could be the one the linker keeps and run on a baseline CPU). The border elements of
 * pooling and depthwise convolution are computed here in plain C by every ISA, so they are bitwise equal across
 * ISAs; only the interior (all taps inside the image) is vectorized. */
#ifndef ENG_OPS_INTERNAL_H
#define ENG_OPS_INTERNAL_H

#include <math.h>
#include <stddef.h>

#include "eng/eng_kernels.h"

/* Output indices [*lo, *hi) along one axis whose taps o*s - p + t*d (t < k) all lie in [0, in). Empty -> lo == hi. */
static inline void ops_interior(size_t out, size_t s, size_t p, size_t k, size_t d, size_t in, size_t *lo, size_t *hi) {
  size_t span = (k - 1) * d; /* last tap offset */
  size_t a = (p + s - 1) / s; /* first o with o*s >= p */
  size_t b = 0;               /* one past the last o with o*s - p + span <= in - 1 */
  if (in + p >= span + 1) b = (in - 1 + p - span) / s + 1;
  if (b > out) b = out;
  if (a > b) a = b;
  *lo = a;
  *hi = b;
}

/* max over taps inside the image; NaN propagates: m = (v > m || v != v) ? v : m. */
static inline float ops_max_step(float m, float v) { return (v > m || v != v) ? v : m; }

/* One output element of pooling, taps in row-major order (a outer, b inner), sum in float. */
static inline float ops_pool_one(int kind, const eng_win2d_t *g, const float *x, size_t i, size_t j) {
  const ptrdiff_t r0 = (ptrdiff_t)(i * g->sh) - (ptrdiff_t)g->pt, c0 = (ptrdiff_t)(j * g->sw) - (ptrdiff_t)g->pl;
  const ptrdiff_t H = (ptrdiff_t)g->h, Wd = (ptrdiff_t)g->w;
  float m = -INFINITY, s = 0.0f;
  size_t cnt = 0, cnt_pad = 0;
  for (size_t a = 0; a < g->kh; a++) {
    ptrdiff_t r = r0 + (ptrdiff_t)(a * g->dh);
    int rin = r >= 0 && r < H, rpad = r >= -(ptrdiff_t)g->pt && r < H + (ptrdiff_t)g->pb;
    for (size_t b = 0; b < g->kw; b++) {
      ptrdiff_t c = c0 + (ptrdiff_t)(b * g->dw);
      if (rpad && c >= -(ptrdiff_t)g->pl && c < Wd + (ptrdiff_t)g->pr) cnt_pad++;
      if (!rin || c < 0 || c >= Wd) continue;
      float v = x[r * Wd + c];
      m = ops_max_step(m, v);
      s = s + v;
      cnt++;
    }
  }
  if (kind == ENG_POOL_MAX) return m;
  return s / (float)(kind == ENG_POOL_AVG_INCLUDE_PAD ? cnt_pad : cnt);
}

/* One output element of depthwise convolution before the activation: bias + w*x over the inside taps, row-major
 * tap order, no FMA (the interior SIMD code uses FMA: see the tolerance in the tests). */
static inline float ops_dwconv_one(const eng_win2d_t *g, const float *x, const float *w, float bias, size_t i, size_t j) {
  const ptrdiff_t r0 = (ptrdiff_t)(i * g->sh) - (ptrdiff_t)g->pt, c0 = (ptrdiff_t)(j * g->sw) - (ptrdiff_t)g->pl;
  const ptrdiff_t H = (ptrdiff_t)g->h, Wd = (ptrdiff_t)g->w;
  float acc = bias;
  for (size_t a = 0; a < g->kh; a++) {
    ptrdiff_t r = r0 + (ptrdiff_t)(a * g->dh);
    if (r < 0 || r >= H) continue;
    for (size_t b = 0; b < g->kw; b++) {
      ptrdiff_t c = c0 + (ptrdiff_t)(b * g->dw);
      if (c < 0 || c >= Wd) continue;
      acc = acc + w[a * g->kw + b] * x[r * Wd + c];
    }
  }
  return acc;
}

static inline float ops_binary_one(int op, float a, float b) {
  switch (op) {
    case ENG_BIN_ADD: return a + b;
    case ENG_BIN_SUB: return a - b;
    case ENG_BIN_MUL: return a * b;
    case ENG_BIN_DIV: return a / b;
    case ENG_BIN_MAX: return (b > a || b != b) ? b : a;
    case ENG_BIN_MIN: return (b < a || b != b) ? b : a;
    default: return a;
  }
}

#endif /* ENG_OPS_INTERNAL_H */
