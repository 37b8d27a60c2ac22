/* probe_neon.c: the floating-point throughput probe (eng_kernels.h, eng_fma_probe_f32_fn).  ISA: neon.
 * Sixteen independent 4-lane FMLA chains: 4 vector pipes (Neoverse V1/V2, Apple) x 4 cycles of latency. Each lane
 * is x = fmaf(x, b, c), one rounding (vfmaq_f32(c, x, b) = c + x * b, fused). The chains are written out (EACH)
 * so that they live in registers whatever the optimization level. */
#include <arm_neon.h>

#include "eng/eng_kernels.h"

#define CHAINS 16
#define W 4
#define EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

size_t eng_fma_probe_f32_neon(uint64_t iters, float b, float c, float *x) {
  const float32x4_t vb = vdupq_n_f32(b), vc = vdupq_n_f32(c);
#define LOAD(j) float32x4_t r##j = vld1q_f32(x + (j) * W);
#define STEP(j) r##j = vfmaq_f32(vc, r##j, vb);
#define STORE(j) vst1q_f32(x + (j) * W, r##j);
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
