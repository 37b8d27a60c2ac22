/* probe_avx512.c: the floating-point throughput probe (eng_kernels.h, eng_fma_probe_f32_fn).  ISA: avx512 (F).
 * Sixteen independent 16-lane FMA chains (2 FMA pipes x 4 cycles of latency need 8; 16 also cover cores with
 * longer latencies). Each lane is x = fmaf(x, b, c), one rounding. The chains are written out (EACH) so that
 * they live in registers whatever the optimization level. */
#include "eng/eng_kernels.h"
#include "../../simd/simd_avx512.h" /* immintrin.h, or SIMDe in the C tests' emulation build */

#define CHAINS 16
#define W 16
#define EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

size_t eng_fma_probe_f32_avx512(uint64_t iters, float b, float c, float *x) {
  const __m512 vb = _mm512_set1_ps(b), vc = _mm512_set1_ps(c);
#define LOAD(j) __m512 r##j = _mm512_loadu_ps(x + (j) * W);
#define STEP(j) r##j = _mm512_fmadd_ps(r##j, vb, vc);
#define STORE(j) _mm512_storeu_ps(x + (j) * W, r##j);
  EACH(LOAD)
  for (uint64_t i = 0; i < iters; i++) {
    EACH(STEP)
  }
  EACH(STORE)
#undef LOAD
#undef STEP
#undef STORE
  return CHAINS * W;
}
