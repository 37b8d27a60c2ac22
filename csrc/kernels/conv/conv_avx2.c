/* conv_avx2.c: implicit-GEMM convolution micro-kernel, 6 output channels x 16 pixels (contract:
 * eng_conv_ukr_f32_fn in eng_kernels.h). ISA: avx2 (-mavx2 -mfma -mf16c). Scalar twin: conv_scalar.c; sums run
 * over the taps in increasing order with FMA, so results agree with it up to FMA rounding.
 * Per tap: one offset load, two image vectors at x + off[p] (unaligned), six weight broadcasts, 12 FMAs into
 * the 12 accumulators, the same register budget as the 6x16 GEMM kernel (gemm_avx2.c), and like it the loop
 * is inline assembly, because GCC spills accumulators of the intrinsics version. */
#include <immintrin.h>

#include "eng/eng_kernels.h"
#include "../../simd/simd_avx2.h"

#define MR 6
#define NR 16

/* c = acc (+ c when accumulate) on the m x n corner, masked at the edges. */
static inline void store_acc_avx2(float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, int accumulate,
                                  const float *t) {
  if (n == NR) {
    for (size_t i = 0; i < m; i++) {
      float *cr = c + i * ldc;
      __m256 r0 = _mm256_load_ps(t + i * NR), r1 = _mm256_load_ps(t + i * NR + 8);
      if (accumulate) r0 = _mm256_add_ps(r0, _mm256_loadu_ps(cr)), r1 = _mm256_add_ps(r1, _mm256_loadu_ps(cr + 8));
      _mm256_storeu_ps(cr, r0);
      _mm256_storeu_ps(cr + 8, r1);
    }
    return;
  }
  const __m256i k0 = tail_mask_avx2(n >= 8 ? 8 : n), k1 = tail_mask_avx2(n > 8 ? n - 8 : 0);
  for (size_t i = 0; i < m; i++) {
    float *cr = c + i * ldc;
    __m256 r0 = _mm256_load_ps(t + i * NR), r1 = _mm256_load_ps(t + i * NR + 8);
    if (accumulate) {
      r0 = _mm256_add_ps(r0, _mm256_maskload_ps(cr, k0));
      r1 = _mm256_add_ps(r1, _mm256_maskload_ps(cr + 8, k1));
    }
    _mm256_maskstore_ps(cr, k0, r0);
    _mm256_maskstore_ps(cr + 8, k1, r1);
  }
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(ENG_NO_ASM)
#define CASM_FMA_ROW(areg, r0, r1) "vfmadd231ps %%ymm12, %%" areg ", %%ymm" #r0 "\n\tvfmadd231ps %%ymm13, %%" areg ", %%ymm" #r1 "\n\t"
/* one tap: offset off[OFF/8] into %[o], image row at x + 4*o bytes, weights at AOFF(%[a]) */
#define CASM_STEP(AOFF, OFF)                                                                                  \
  "mov " #OFF "(%[off]), %[o]\n\t"                                                                           \
  "vmovups (%[x], %[o], 4), %%ymm12\n\tvmovups 32(%[x], %[o], 4), %%ymm13\n\t"                               \
  "vbroadcastss " #AOFF "(%[a]), %%ymm14\n\t" CASM_FMA_ROW("ymm14", 0, 1)                                   \
  "vbroadcastss " #AOFF "+4(%[a]), %%ymm15\n\t" CASM_FMA_ROW("ymm15", 2, 3)                                 \
  "vbroadcastss " #AOFF "+8(%[a]), %%ymm14\n\t" CASM_FMA_ROW("ymm14", 4, 5)                                 \
  "vbroadcastss " #AOFF "+12(%[a]), %%ymm15\n\t" CASM_FMA_ROW("ymm15", 6, 7)                                \
  "vbroadcastss " #AOFF "+16(%[a]), %%ymm14\n\t" CASM_FMA_ROW("ymm14", 8, 9)                                \
  "vbroadcastss " #AOFF "+20(%[a]), %%ymm15\n\t" CASM_FMA_ROW("ymm15", 10, 11)

static void ukr_6x16_avx2(size_t kc, const float *ENG_RESTRICT a, const float *x, const int64_t *off,
                          float *ENG_RESTRICT c, size_t ldc, size_t m, size_t n, int accumulate) {
  float t[MR * NR] __attribute__((aligned(32)));
  size_t k4 = kc / 4, k1 = kc % 4;
  int64_t o;
  __asm__ volatile(
      "vxorps %%ymm0, %%ymm0, %%ymm0\n\tvxorps %%ymm1, %%ymm1, %%ymm1\n\tvxorps %%ymm2, %%ymm2, %%ymm2\n\t"
      "vxorps %%ymm3, %%ymm3, %%ymm3\n\tvxorps %%ymm4, %%ymm4, %%ymm4\n\tvxorps %%ymm5, %%ymm5, %%ymm5\n\t"
      "vxorps %%ymm6, %%ymm6, %%ymm6\n\tvxorps %%ymm7, %%ymm7, %%ymm7\n\tvxorps %%ymm8, %%ymm8, %%ymm8\n\t"
      "vxorps %%ymm9, %%ymm9, %%ymm9\n\tvxorps %%ymm10, %%ymm10, %%ymm10\n\tvxorps %%ymm11, %%ymm11, %%ymm11\n\t"
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
      "vmovaps %%ymm0, 0(%[t])\n\tvmovaps %%ymm1, 32(%[t])\n\tvmovaps %%ymm2, 64(%[t])\n\t"
      "vmovaps %%ymm3, 96(%[t])\n\tvmovaps %%ymm4, 128(%[t])\n\tvmovaps %%ymm5, 160(%[t])\n\t"
      "vmovaps %%ymm6, 192(%[t])\n\tvmovaps %%ymm7, 224(%[t])\n\tvmovaps %%ymm8, 256(%[t])\n\t"
      "vmovaps %%ymm9, 288(%[t])\n\tvmovaps %%ymm10, 320(%[t])\n\tvmovaps %%ymm11, 352(%[t])\n\t"
      "vzeroupper\n\t"
      : [a] "+r"(a), [off] "+r"(off), [k4] "+r"(k4), [k1] "+r"(k1), [o] "=&r"(o)
      : [t] "r"(t), [x] "r"(x)
      : "ymm0", "ymm1", "ymm2", "ymm3", "ymm4", "ymm5", "ymm6", "ymm7", "ymm8", "ymm9", "ymm10", "ymm11", "ymm12",
        "ymm13", "ymm14", "ymm15", "cc", "memory");
  store_acc_avx2(c, ldc, m, n, accumulate, t);
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
  float t[MR * NR] __attribute__((aligned(32)));
  for (int i = 0; i < MR; i++) _mm256_store_ps(t + i * NR, acc[i][0]), _mm256_store_ps(t + i * NR + 8, acc[i][1]);
  store_acc_avx2(c, ldc, m, n, accumulate, t);
}
#endif

/* kc = 256 taps: the 6 x 256 weight panel (6 KiB) and the tile's 256 image rows of 64 bytes (at most 16 KiB,
 * far less when taps of one channel overlap) share L1. */
const eng_conv_f32_impl_t eng_conv_f32_avx2 = {MR, NR, 256, ukr_6x16_avx2};
