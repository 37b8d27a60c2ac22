/* conv_avx2.c: implicit-GEMM convolution micro-kernel, 6 output channels x 16 pixels (contract:
 * eng_conv_ukr_f32_fn in eng_kernels.h). ISA: avx2 (-mavx2 -mfma -mf16c). Scalar twin: conv_scalar.c; sums run
 * over the taps in increasing order with FMA, so results agree with it up to FMA rounding.
 * Per tap: one offset load, two image vectors at x + off[p] (unaligned), six weight broadcasts, 12 FMAs into
 * the 12 accumulators, the same register budget as the 6x16 GEMM kernel (gemm_avx2.c), and like it the loop
 * is inline assembly, because GCC spills accumulators of the intrinsics version. */
#include "eng/eng_kernels.h"
#include "../gemm/tile_6x16_avx2.h"

#if defined(__GNUC__) && defined(__x86_64__) && !defined(ENG_NO_ASM)
/* one tap: offset off[OFF/8] into %[o], the image row at x + 4*o bytes into ymm12-13, then the tile's 12 FMAs */
#define CASM_STEP(AOFF, OFF)                                                                                  \
  "mov " #OFF "(%[off]), %[o]\n\t"                                                                           \
  "vmovups (%[x], %[o], 4), %%ymm12\n\tvmovups 32(%[x], %[o], 4), %%ymm13\n\t" ASM_BCAST6_PACKED(AOFF)

static void ukr_6x16_avx2(size_t kc, const float *ENG_RESTRICT a, const float *x, const int64_t *off,
                          float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, int accumulate) {
  float t[MR * NR] __attribute__((aligned(32)));
  size_t k4 = kc / 4, k1 = kc % 4;
  int64_t o;
  __asm__ volatile(
      ASM_ZERO_ACC
      "test %[k4], %[k4]\n\t"
      "jz 2f\n\t"
      "1:\n\t"
      "prefetcht0 384(%[a])\n\t"
      CASM_STEP(0, 0) CASM_STEP(24, 8) CASM_STEP(48, 16) CASM_STEP(72, 24)
      "add $96, %[a]\n\t"
      "add $32, %[off]\n\t"
      "dec %[k4]\n\t"
      "jnz 1b\n\t"
      "2:\n\t"
      "test %[k1], %[k1]\n\t"
      "jz 4f\n\t"
      "3:\n\t"
      CASM_STEP(0, 0)
      "add $24, %[a]\n\t"
      "add $8, %[off]\n\t"
      "dec %[k1]\n\t"
      "jnz 3b\n\t"
      "4:\n\t"
      ASM_STORE_ACC("%[t]")
      "vzeroupper\n\t"
      : [a] "+r"(a), [off] "+r"(off), [k4] "+r"(k4), [k1] "+r"(k1), [o] "=&r"(o)
      : [t] "r"(t), [x] "r"(x)
      : ASM_CLOBBERS);
  store_spilled_tile_avx2(t, c, ldc, m, n, 1.0f, accumulate ? 1.0f : 0.0f, NULL);
}
#else
static void ukr_6x16_avx2(size_t kc, const float *ENG_RESTRICT a, const float *x, const int64_t *off,
                          float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, int accumulate) {
  __m256 acc[MR][2];
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (size_t p = 0; p < kc; p++, a += MR) {
    const float *b = x + off[p];
    __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    for (int i = 0; i < MR; i++) {
      __m256 av = _mm256_broadcast_ss(a + i);
      acc[i][0] = _mm256_fmadd_ps(av, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(av, b1, acc[i][1]);
    }
  }
  store_tile_avx2(c, ldc, m, n, 1.0f, accumulate ? 1.0f : 0.0f, acc);
}
#endif

/* kc = 256 taps: the 6 x 256 weight panel (6 KiB) and the tile's 256 image rows of 64 bytes (at most 16 KiB,
 * far less when taps of one channel overlap) share L1. */
const eng_conv_f32_impl_t eng_conv_f32_avx2 = {MR, NR, 256, ukr_6x16_avx2};
