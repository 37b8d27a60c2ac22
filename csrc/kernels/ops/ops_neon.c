/* ops_neon.c: op kernels (binary, reduce, softmax, layer/RMS norm, 2-D pooling, depthwise conv).
 * ISA: neon (AArch64 Advanced SIMD, baseline). Scalar twin: ops_scalar.c. Written once in ops_simd.inc over the
 * vocabulary defined here (4 lanes; tails through a zero-padded copy, so nothing past the end is touched); the
 * same algorithms as ops_avx2.c. Tested under qemu (tests/c/run_ctests.sh aarch64). */
#include <math.h>
#include <string.h>

#include "eng/eng_kernels.h"
#include "ops_internal.h"
#include "../../simd/simd_neon.h"

typedef float32x4_t vf;
#define VL 4
#define SFX(name) name##_neon
#define v_load(p) vld1q_f32(p)
#define v_store(p, v) vst1q_f32((p), (v))
#define v_load_tail(p, n) load_tail_neon((p), (n))
#define v_store_tail(p, n, v) store_tail_neon((p), (n), (v))
#define v_set1(f) vdupq_n_f32(f)
#define v_zero() vdupq_n_f32(0.0f)
#define v_add vaddq_f32
#define v_sub vsubq_f32
#define v_mul vmulq_f32
#define v_div vdivq_f32
#define v_fma(a, b, c) vfmaq_f32((c), (a), (b))
#define v_hsum hsum_neon
#define v_exp exp_neon

/* (b > a || b is NaN) ? b : a, as compare-selects (NEON fmax would differ on NaN and signed zeros). */
static inline float32x4_t v_bmax(float32x4_t a, float32x4_t b) {
  uint32x4_t take_b = vorrq_u32(vcgtq_f32(b, a), vmvnq_u32(vceqq_f32(b, b)));
  return vbslq_f32(take_b, b, a);
}
static inline float32x4_t v_bmin(float32x4_t a, float32x4_t b) {
  uint32x4_t take_b = vorrq_u32(vcltq_f32(b, a), vmvnq_u32(vceqq_f32(b, b)));
  return vbslq_f32(take_b, b, a);
}
/* {p[0], p[2], p[4], p[6]}: the first register of a de-interleaving load (reads p[0..7]). */
static inline float32x4_t v_load_even(const float *p) { return vld2q_f32(p).val[0]; }
/* r[i][j] <-> r[j][i] for the 4 x 4 block in r[0..3]. */
static inline void v_transpose(float32x4_t *r) {
  float32x4x2_t a = vtrnq_f32(r[0], r[1]), b = vtrnq_f32(r[2], r[3]);
  r[0] = vcombine_f32(vget_low_f32(a.val[0]), vget_low_f32(b.val[0]));
  r[1] = vcombine_f32(vget_low_f32(a.val[1]), vget_low_f32(b.val[1]));
  r[2] = vcombine_f32(vget_high_f32(a.val[0]), vget_high_f32(b.val[0]));
  r[3] = vcombine_f32(vget_high_f32(a.val[1]), vget_high_f32(b.val[1]));
}

#include "ops_simd.inc"
