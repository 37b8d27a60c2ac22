/* probe_scalar.c: the floating-point throughput probe (eng_kernels.h, eng_fma_probe_f32_fn).  ISA: scalar.
 * Eight independent chains x = x * b + c as a multiply and an add (two roundings: the scalar tier assumes no FMA
 * instruction and compiles with -ffp-contract=off), so it measures this tier's own peak, 2 flops per lane-step. */
#include "eng/eng_kernels.h"

#define LANES 8

size_t eng_fma_probe_f32_scalar(uint64_t iters, float b, float c, float *x) {
  float x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3], x4 = x[4], x5 = x[5], x6 = x[6], x7 = x[7];
  for (uint64_t i = 0; i < iters; i++) {
    x0 = x0 * b + c, x1 = x1 * b + c, x2 = x2 * b + c, x3 = x3 * b + c;
    x4 = x4 * b + c, x5 = x5 * b + c, x6 = x6 * b + c, x7 = x7 * b + c;
  }
  x[0] = x0, x[1] = x1, x[2] = x2, x[3] = x3, x[4] = x4, x[5] = x5, x[6] = x6, x[7] = x7;
  return LANES;
}
