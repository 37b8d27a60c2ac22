/* probe_avx2.c: the floating-point throughput probe (eng_kernels.h, eng_fma_probe_f32_fn).  ISA: avx2 (-mfma).
 * Twelve independent 8-lane FMA chains: enough to cover 2 FMA pipes x 4-5 cycles of latency (Haswell to Zen 4)
 * and to leave registers for b and c. Each lane is x = fmaf(x, b, c), one rounding. The chains are written out
 * (EACH) so that they live in registers whatever the optimization level. */
#include <immintrin.h>

#include "eng/eng_kernels.h"

#define CHAINS 12
#define W 8
#define EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)

size_t eng_fma_probe_f32_avx2(uint64_t iters, float b, float c, float *x) {
  const __m256 vb = _mm256_set1_ps(b), vc = _mm256_set1_ps(c);
#define LOAD(j) __m256 r##j = _mm256_loadu_ps(x + (j) * W);
#define STEP(j) r##j = _mm256_fmadd_ps(r##j, vb, vc);
#define STORE(j) _mm256_storeu_ps(x + (j) * W, r##j);
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
