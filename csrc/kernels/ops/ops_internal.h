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

/* Taps [*t0, *t1) (of k) whose position o*s - p + t*d lies in [0, in). */
static inline void ops_tap_range(size_t o, size_t s, size_t p, size_t k, size_t d, size_t in, size_t *t0, size_t *t1) {
  ptrdiff_t base = (ptrdiff_t)(o * s) - (ptrdiff_t)p, dd = (ptrdiff_t)d;
  ptrdiff_t lim = (ptrdiff_t)in - 1 - base;
  size_t lo, hi;
  if (d == 1) { /* the common case, without divisions (this runs once per border element) */
    lo = base >= 0 ? 0 : (size_t)-base;
    hi = lim < 0 ? 0 : (size_t)lim + 1;
  } else {
    lo = base >= 0 ? 0 : (size_t)((-base + dd - 1) / dd);
    hi = lim < 0 ? 0 : (size_t)(lim / dd) + 1;
  }
  if (hi > k) hi = k;
  if (lo > hi) lo = hi;
  *t0 = lo;
  *t1 = hi;
}

/* How many of the k taps lie inside the padded extent [-p, in + p_end). */
static inline size_t ops_tap_count_pad(size_t o, size_t s, size_t p, size_t p_end, size_t k, size_t d, size_t in) {
  size_t t0, t1;
  ops_tap_range(o, s, 0, k, d, in + p + p_end, &t0, &t1); /* shift the origin to -p */
  return t1 - t0;
}

/* One output element of pooling over the taps inside the image, in row-major order (a outer, b inner), sum in
 * float. The vector code of every ISA visits the same taps in the same order. */
static inline float ops_pool_one(int kind, const eng_win2d_t *g, const float *x, size_t i, size_t j) {
  size_t a0, a1, b0, b1;
  ops_tap_range(i, g->sh, g->pt, g->kh, g->dh, g->h, &a0, &a1);
  ops_tap_range(j, g->sw, g->pl, g->kw, g->dw, g->w, &b0, &b1);
  const ptrdiff_t r0 = (ptrdiff_t)(i * g->sh) - (ptrdiff_t)g->pt, c0 = (ptrdiff_t)(j * g->sw) - (ptrdiff_t)g->pl;
  float m = -INFINITY, s = 0.0f;
  for (size_t a = a0; a < a1; a++) {
    const float *xr = x + (r0 + (ptrdiff_t)(a * g->dh)) * (ptrdiff_t)g->w + c0;
    for (size_t b = b0; b < b1; b++) {
      float v = xr[b * g->dw];
      m = ops_max_step(m, v);
      s = s + v;
    }
  }
  if (kind == ENG_POOL_MAX) return m;
  size_t cnt = kind == ENG_POOL_AVG_INCLUDE_PAD
                   ? ops_tap_count_pad(i, g->sh, g->pt, g->pb, g->kh, g->dh, g->h) *
                         ops_tap_count_pad(j, g->sw, g->pl, g->pr, g->kw, g->dw, g->w)
                   : (a1 - a0) * (b1 - b0);
  return s / (float)cnt;
}

/* One output element of depthwise convolution before the activation: bias + w*x over the inside taps, row-major
 * tap order, no FMA (the interior SIMD code uses FMA: see the tolerance in the tests). */
static inline float ops_dwconv_one(const eng_win2d_t *g, const float *x, const float *w, float bias, size_t i, size_t j) {
  size_t a0, a1, b0, b1;
  ops_tap_range(i, g->sh, g->pt, g->kh, g->dh, g->h, &a0, &a1);
  ops_tap_range(j, g->sw, g->pl, g->kw, g->dw, g->w, &b0, &b1);
  const ptrdiff_t r0 = (ptrdiff_t)(i * g->sh) - (ptrdiff_t)g->pt, c0 = (ptrdiff_t)(j * g->sw) - (ptrdiff_t)g->pl;
  float acc = bias;
  for (size_t a = a0; a < a1; a++) {
    const float *xr = x + (r0 + (ptrdiff_t)(a * g->dh)) * (ptrdiff_t)g->w + c0;
    const float *wr = w + a * g->kw;
    for (size_t b = b0; b < b1; b++) acc = acc + wr[b] * xr[b * g->dw];
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
