/* probe_avx2.c: the floating-point throughput probe (probe_simd.inc).  ISA: avx2 (-mfma).
 * Twelve independent 8-lane FMA chains: enough to cover 2 FMA pipes x 4-5 cycles of latency (Haswell to Zen 4)
 * and to leave registers for b and c. */
#include <immintrin.h>

#include "eng/eng_kernels.h"

typedef __m256 vf;
#define VL 8
#define SFX(name) name##_avx2
#define v_load(p) _mm256_loadu_ps(p)
#define v_store(p, v) _mm256_storeu_ps((p), (v))
#define v_set1(f) _mm256_set1_ps(f)
#define v_fma _mm256_fmadd_ps
#define CHAINS 12
#define EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11)

#include "probe_simd.inc"
