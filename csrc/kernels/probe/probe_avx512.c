/* probe_avx512.c: the floating-point throughput probe (probe_simd.inc).  ISA: avx512 (F).
 * Sixteen independent 16-lane FMA chains (2 FMA pipes x 4 cycles of latency need 8; 16 also cover cores with
 * longer latencies). */
#include "eng/eng_kernels.h"
#include "../../simd/simd_avx512.h" /* immintrin.h, or SIMDe in the C tests' emulation build */

typedef __m512 vf;
#define VL 16
#define SFX(name) name##_avx512
#define v_load(p) _mm512_loadu_ps(p)
#define v_store(p, v) _mm512_storeu_ps((p), (v))
#define v_set1(f) _mm512_set1_ps(f)
#define v_fma _mm512_fmadd_ps
#define CHAINS 16
#define EACH(M) M(0) M(1) M(2) M(3) M(4) M(5) M(6) M(7) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)

#include "probe_simd.inc"
