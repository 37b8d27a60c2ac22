/* probe_neon.c: the floating-point throughput probe (probe_simd.inc).  ISA: neon.
 * Sixteen independent 4-lane FMLA chains: 4 vector pipes (Neoverse V1/V2, Apple) x 4 cycles of latency. */
#include <arm_neon.h>

#include "eng/eng_kernels.h"

typedef float32x4_t vf;
#define VL 4
#define SFX(name) name##_neon
#define v_load(p) vld1q_f32(p)
#define v_store(p, v) vst1q_f32((p), (v))
#define v_set1(f) vdupq_n_f32(f)
#define v_fma(a, b, c) vfmaq_f32((c), (a), (b)) /* c + a * b, fused */
#define CHAINS 16
#define EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

#include "probe_simd.inc"
