/* conv_avx512.c: implicit-GEMM convolution micro-kernel, 8 output channels x 32 pixels (contract:
 * eng_conv_ukr_f32_fn in eng_kernels.h). ISA: avx512 (-mavx512f -mavx512bw -mavx512dq -mavx512vl). Scalar twin:
 * conv_scalar.c; sums run over the taps in increasing order with FMA.
 * Per tap: two image vectors at x + off[p], eight weight broadcasts, 16 FMAs into 16 of the 32 ZMM registers
 * (10 loads per 16 FMAs: the FMA ports, not the load ports, set the pace). Intrinsics are enough here: with
 * 32 registers the compiler keeps the whole tile in registers. */
#include "eng/eng_kernels.h"
#include "../../simd/simd_avx512.h"

#define MR 8
#define NR 32

static void ukr_8x32_avx512(size_t kc, const float *ENG_RESTRICT a, const float *x, const int64_t *off,
                            float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, int accumulate) {
  __m512 acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (size_t p = 0; p < kc; p++, a += MR) {
    const float *b = x + off[p];
    __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
    for (int i = 0; i < MR; i++) {
      __m512 av = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  const __mmask16 k0 = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
  const __mmask16 k1 = n >= 32 ? (__mmask16)0xFFFF : (n > 16 ? (__mmask16)((1u << (n - 16)) - 1) : (__mmask16)0);
  for (size_t i = 0; i < m; i++) {
    float *cr = c + i * ldc;
    __m512 r0 = acc[i][0], r1 = acc[i][1];
    if (accumulate) {
      r0 = _mm512_add_ps(r0, _mm512_maskz_loadu_ps(k0, cr));
      r1 = _mm512_add_ps(r1, _mm512_maskz_loadu_ps(k1, cr + 16));
    }
    _mm512_mask_storeu_ps(cr, k0, r0);
    _mm512_mask_storeu_ps(cr + 16, k1, r1);
  }
}

const eng_conv_f32_impl_t eng_conv_f32_avx512 = {MR, NR, 256, ukr_8x32_avx512};
