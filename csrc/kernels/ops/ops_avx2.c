/* ops_avx2.c: op kernels (binary, reduce, softmax, layer/RMS norm, 2-D pooling, depthwise conv).
 * ISA: avx2 (-mavx2 -mfma -mf16c). Scalar twin: ops_scalar.c. The kernels are written once in ops_simd.inc over
 * the vector vocabulary defined here (8 lanes; tails through maskload/maskstore, which neither read nor write
 * masked lanes). */
#include <math.h>
#include <string.h>

#include "eng/eng_kernels.h"
#include "ops_internal.h"
#include "../../simd/simd_avx2.h"

typedef __m256 vf;
#define VL 8
#define SFX(name) name##_avx2
#define v_load(p) _mm256_loadu_ps(p)
#define v_store(p, v) _mm256_storeu_ps((p), (v))
#define v_load_tail(p, n) _mm256_maskload_ps((p), tail_mask_avx2(n))
#define v_store_tail(p, n, v) _mm256_maskstore_ps((p), tail_mask_avx2(n), (v))
#define v_set1(f) _mm256_set1_ps(f)
#define v_zero() _mm256_setzero_ps()
#define v_add _mm256_add_ps
#define v_sub _mm256_sub_ps
#define v_mul _mm256_mul_ps
#define v_div _mm256_div_ps
#define v_fma _mm256_fmadd_ps
#define v_hsum hsum_avx2
#define v_exp exp_avx2

/* (b > a || b is NaN) ? b : a. maxps(b, a) is b > a ? b : a (a when either is NaN); then NaN b wins. */
static inline __m256 v_bmax(__m256 a, __m256 b) {
  return _mm256_blendv_ps(_mm256_max_ps(b, a), b, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
}
static inline __m256 v_bmin(__m256 a, __m256 b) {
  return _mm256_blendv_ps(_mm256_min_ps(b, a), b, _mm256_cmp_ps(b, b, _CMP_UNORD_Q));
}
/* {p[0], p[2], ..., p[14]} from two loads: shufps picks the even lanes of each 128-bit half, vpermpd reorders. */
static inline __m256 v_load_even(const float *p) {
  __m256 lo = _mm256_loadu_ps(p), hi = _mm256_loadu_ps(p + 8);
  __m256 e = _mm256_shuffle_ps(lo, hi, 0x88); /* lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6 */
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8));
}
/* r[i][j] <-> r[j][i] for the 8 x 8 block in r[0..7] (unpack, shuffle, then swap 128-bit halves). */
static inline void v_transpose(__m256 *r) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

#include "ops_simd.inc"
