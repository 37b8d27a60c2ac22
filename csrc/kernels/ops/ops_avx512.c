/* ops_avx512.c: op kernels (binary, reduce, softmax, layer/RMS norm, 2-D pooling, depthwise conv).
 * ISA: avx512 (-mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx2 -mfma -mf16c). Scalar twin: ops_scalar.c.
 * Written once in ops_simd.inc over the vocabulary defined here (16 lanes; opmask tails, which neither read nor
 * write masked lanes); the same algorithms as ops_avx2.c. Tested on CPUs without AVX-512 through SIMDe
 * (tests/c/run_ctests.sh avx512-emu). */
#include <math.h>
#include <string.h>

#include "eng/eng_kernels.h"
#include "ops_internal.h"
#include "../../simd/simd_avx512.h"

typedef __m512 vf;
#define VL 16
#define SFX(name) name##_avx512
#define v_load(p) _mm512_loadu_ps(p)
#define v_store(p, v) _mm512_storeu_ps((p), (v))
#define v_load_tail(p, n) _mm512_maskz_loadu_ps(tail_mask_avx512(n), (p))
#define v_store_tail(p, n, v) _mm512_mask_storeu_ps((p), tail_mask_avx512(n), (v))
#define v_set1(f) _mm512_set1_ps(f)
#define v_zero() _mm512_setzero_ps()
#define v_add _mm512_add_ps
#define v_sub _mm512_sub_ps
#define v_mul _mm512_mul_ps
#define v_div _mm512_div_ps
#define v_fma _mm512_fmadd_ps
#define v_hsum hsum_avx512
#define v_exp exp_avx512

/* (b > a || b is NaN) ? b : a, with compare masks (no dependence on maxps operand order). */
static inline __m512 v_bmax(__m512 a, __m512 b) {
  __mmask16 take_b = _mm512_cmp_ps_mask(b, a, _CMP_GT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(a, take_b, b);
}
static inline __m512 v_bmin(__m512 a, __m512 b) {
  __mmask16 take_b = _mm512_cmp_ps_mask(b, a, _CMP_LT_OQ) | _mm512_cmp_ps_mask(b, b, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(a, take_b, b);
}
/* {p[0], p[2], ..., p[30]} from two loads and one two-source permute. */
static inline __m512 v_load_even(const float *p) {
  const __m512i idx = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  return _mm512_permutex2var_ps(_mm512_loadu_ps(p), idx, _mm512_loadu_ps(p + 16));
}
/* r[i][j] <-> r[j][i] for the 16 x 16 block in r[0..15], through memory (simple; a shuffle network was not written
 * because this project's machine has no AVX-512 to measure it on). */
static inline void v_transpose(__m512 *r) {
  float t[256], u[256];
  for (int i = 0; i < 16; i++) _mm512_storeu_ps(t + 16 * i, r[i]);
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++) u[16 * j + i] = t[16 * i + j];
  for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(u + 16 * i);
}

#include "ops_simd.inc"
