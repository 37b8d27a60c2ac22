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

#include "ops_simd.inc"
