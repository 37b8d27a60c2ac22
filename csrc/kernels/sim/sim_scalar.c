/* sim_scalar.c: similarity kernels (dot, squared norm, cosine, row L2-normalization, gallery scans, f16
 * conversion) for f32, f16 (binary16 storage, f32 accumulation) and i8 (int32 accumulation).
 * ISA: scalar (portable C11, -fno-tree-vectorize). This file IS the reference the avx2, avx512 and neon
 * twins (sim_<isa>.c) are tested against (tests/c/test_sim.c, tests/kernels/test_sim_kernels.py).
 * Numerics: one float accumulator, k increasing, no FMA (-ffp-contract=off); the SIMD twins use several
 * vector accumulators and FMA, so f32/f16 agree within n*eps*sum|a b|; i8 sums are exact in every ISA. */
#include <assert.h>
#include <math.h>

#include "eng/eng_kernels.h"
#include "sim_internal.h"

float eng_dot_f32_scalar(size_t n, const float *a, const float *b) {
  float s = 0.0f;
  for (size_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

float eng_sqnorm_f32_scalar(size_t n, const float *a) {
  float s = 0.0f;
  for (size_t i = 0; i < n; i++) s += a[i] * a[i];
  return s;
}

float eng_cos_f32_scalar(size_t n, const float *a, const float *b) {
  float ab = 0.0f, aa = 0.0f, bb = 0.0f;
  for (size_t i = 0; i < n; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return eng_sim_cos_finish(ab, aa, bb);
}

float eng_dot_f16_scalar(size_t n, const uint16_t *a, const uint16_t *b) {
  float s = 0.0f;
  for (size_t i = 0; i < n; i++) s += eng_sim_h2f(a[i]) * eng_sim_h2f(b[i]);
  return s;
}

float eng_sqnorm_f16_scalar(size_t n, const uint16_t *a) {
  float s = 0.0f;
  for (size_t i = 0; i < n; i++) {
    float x = eng_sim_h2f(a[i]);
    s += x * x;
  }
  return s;
}

float eng_cos_f16_scalar(size_t n, const uint16_t *a, const uint16_t *b) {
  float ab = 0.0f, aa = 0.0f, bb = 0.0f;
  for (size_t i = 0; i < n; i++) {
    float x = eng_sim_h2f(a[i]), y = eng_sim_h2f(b[i]);
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return eng_sim_cos_finish(ab, aa, bb);
}

int32_t eng_dot_i8_scalar(size_t n, const int8_t *a, const int8_t *b) {
  assert(n <= ENG_SIM_I8_MAX_N);
  int32_t s = 0;
  for (size_t i = 0; i < n; i++) s += (int32_t)a[i] * b[i];
  return s;
}

int32_t eng_sqnorm_i8_scalar(size_t n, const int8_t *a) {
  assert(n <= ENG_SIM_I8_MAX_N);
  int32_t s = 0;
  for (size_t i = 0; i < n; i++) s += (int32_t)a[i] * a[i];
  return s;
}

float eng_cos_i8_scalar(size_t n, const int8_t *a, const int8_t *b) {
  assert(n <= ENG_SIM_I8_MAX_N);
  int32_t ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < n; i++) {
    ab += (int32_t)a[i] * b[i];
    aa += (int32_t)a[i] * a[i];
    bb += (int32_t)b[i] * b[i];
  }
  return eng_sim_cos_finish_i32(ab, aa, bb);
}

void eng_l2norm_rows_f32_scalar(size_t m, size_t n, const float *x, size_t ldx, float *y, size_t ldy) {
  assert(m <= 1 || (ldx >= n && ldy >= n));
  for (size_t i = 0; i < m; i++) {
    const float *xr = x + i * ldx;
    float *yr = y + i * ldy;
    float inv = eng_sim_inv_norm(eng_sqnorm_f32_scalar(n, xr));
    for (size_t j = 0; j < n; j++) yr[j] = xr[j] * inv;
  }
}

void eng_l2norm_rows_f16_scalar(size_t m, size_t n, const uint16_t *x, size_t ldx, uint16_t *y, size_t ldy) {
  assert(m <= 1 || (ldx >= n && ldy >= n));
  for (size_t i = 0; i < m; i++) {
    const uint16_t *xr = x + i * ldx;
    uint16_t *yr = y + i * ldy;
    float inv = eng_sim_inv_norm(eng_sqnorm_f16_scalar(n, xr));
    for (size_t j = 0; j < n; j++) yr[j] = eng_sim_f2h(eng_sim_h2f(xr[j]) * inv);
  }
}

void eng_scan_f32_scalar(size_t rows, size_t d, const float *q, const float *g, size_t ldg, float *out) {
  assert(rows <= 1 || ldg >= d);
  for (size_t i = 0; i < rows; i++) out[i] = eng_dot_f32_scalar(d, q, g + i * ldg);
}

void eng_scan_f16_scalar(size_t rows, size_t d, const float *q, const uint16_t *g, size_t ldg, float *out) {
  assert(rows <= 1 || ldg >= d);
  for (size_t i = 0; i < rows; i++) {
    const uint16_t *r = g + i * ldg;
    float s = 0.0f;
    for (size_t j = 0; j < d; j++) s += q[j] * eng_sim_h2f(r[j]);
    out[i] = s;
  }
}

void eng_scan_i8_scalar(size_t rows, size_t d, const int8_t *q, const int8_t *g, size_t ldg, int32_t *out) {
  assert(rows <= 1 || ldg >= d);
  for (size_t i = 0; i < rows; i++) out[i] = eng_dot_i8_scalar(d, q, g + i * ldg);
}

void eng_cvt_f16_f32_scalar(size_t n, const uint16_t *x, float *y) {
  for (size_t i = 0; i < n; i++) y[i] = eng_sim_h2f(x[i]);
}

void eng_cvt_f32_f16_scalar(size_t n, const float *x, uint16_t *y) {
  for (size_t i = 0; i < n; i++) y[i] = eng_sim_f2h(x[i]);
}
