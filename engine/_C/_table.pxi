# The active kernel table as the bindings see it (eng_kernels.h, eng_dispatch.h): only the slots that a binding
# reads directly are declared (Cython needs no full struct for an extern one). Included by _kernels.pyx before
# the binding files that use it (_sim.pxi, _conv.pxi).
from libc.stdint cimport int8_t, uint16_t, int32_t, int64_t, uint64_t

cdef extern from "eng/eng_kernels.h" nogil:
    ctypedef float (*eng_dot_f32_fn)(size_t n, const float *a, const float *b)
    ctypedef float (*eng_sqnorm_f32_fn)(size_t n, const float *a)
    ctypedef float (*eng_cos_f32_fn)(size_t n, const float *a, const float *b)
    ctypedef float (*eng_dot_f16_fn)(size_t n, const uint16_t *a, const uint16_t *b)
    ctypedef float (*eng_sqnorm_f16_fn)(size_t n, const uint16_t *a)
    ctypedef float (*eng_cos_f16_fn)(size_t n, const uint16_t *a, const uint16_t *b)
    ctypedef int32_t (*eng_dot_i8_fn)(size_t n, const int8_t *a, const int8_t *b)
    ctypedef int32_t (*eng_sqnorm_i8_fn)(size_t n, const int8_t *a)
    ctypedef float (*eng_cos_i8_fn)(size_t n, const int8_t *a, const int8_t *b)
    ctypedef void (*eng_l2norm_rows_f32_fn)(size_t m, size_t n, const float *x, size_t ldx, float *y, size_t ldy)
    ctypedef void (*eng_l2norm_rows_f16_fn)(size_t m, size_t n, const uint16_t *x, size_t ldx, uint16_t *y, size_t ldy)
    ctypedef void (*eng_scan_f32_fn)(size_t rows, size_t d, const float *q, const float *g, size_t ldg, float *out)
    ctypedef void (*eng_scan_f16_fn)(size_t rows, size_t d, const float *q, const uint16_t *g, size_t ldg, float *out)
    ctypedef void (*eng_scan_i8_fn)(size_t rows, size_t d, const int8_t *q, const int8_t *g, size_t ldg, int32_t *out)
    ctypedef void (*eng_cvt_f16_f32_fn)(size_t n, const uint16_t *x, float *y)
    ctypedef void (*eng_cvt_f32_f16_fn)(size_t n, const float *x, uint16_t *y)
    ctypedef size_t (*eng_fma_probe_f32_fn)(uint64_t iters, float b, float c, float *x)
    enum: ENG_FMA_PROBE_MAX_LANES
    ctypedef void (*eng_conv_ukr_f32_fn)(size_t kc, const float *a, const float *x, const int64_t *off, float *c,
                                         size_t ldc, size_t m, size_t n, int accumulate)
    ctypedef struct eng_conv_f32_impl_t:
        unsigned mr, nr
        size_t kc
        eng_conv_ukr_f32_fn ukr
    ctypedef struct eng_gemm_f32_impl_t:
        unsigned mr, nr
        size_t mc, kc, nc
    ctypedef struct eng_kernels_t:
        const eng_gemm_f32_impl_t *gemm_f32
        const eng_conv_f32_impl_t *conv_f32
        eng_dot_f32_fn dot_f32
        eng_sqnorm_f32_fn sqnorm_f32
        eng_cos_f32_fn cos_f32
        eng_dot_f16_fn dot_f16
        eng_sqnorm_f16_fn sqnorm_f16
        eng_cos_f16_fn cos_f16
        eng_dot_i8_fn dot_i8
        eng_sqnorm_i8_fn sqnorm_i8
        eng_cos_i8_fn cos_i8
        eng_l2norm_rows_f32_fn l2norm_rows_f32
        eng_l2norm_rows_f16_fn l2norm_rows_f16
        eng_scan_f32_fn scan_f32
        eng_scan_f16_fn scan_f16
        eng_scan_i8_fn scan_i8
        eng_cvt_f16_f32_fn cvt_f16_f32
        eng_cvt_f32_f16_fn cvt_f32_f16
        eng_fma_probe_f32_fn fma_probe_f32

cdef extern from "eng/eng_dispatch.h" nogil:
    eng_kernels_t eng_active



def fma_peak_gflops(double seconds=0.05):
    """This thread's float32 multiply-add throughput in GFLOP/s, measured with the active tier's probe (independent
    FMA chains of its widest vectors, no memory traffic): the real peak of one core at its current clock, which
    /proc/cpuinfo's nominal MHz does not give (turbo, power limits, a VM's host). For the benchmarks' "% of peak".
    Runs for about `seconds` (doubling the step count until one call lasts that long), GIL released."""
    import time
    if not seconds > 0:
        raise ValueError(f"fma_peak_gflops: seconds must be positive, got {seconds}")
    cdef float x[ENG_FMA_PROBE_MAX_LANES]
    cdef uint64_t iters = 1 << 12
    cdef size_t lanes = 0
    cdef eng_fma_probe_f32_fn fn = eng_active.fma_probe_f32
    cdef int i
    while True:
        for i in range(ENG_FMA_PROBE_MAX_LANES):
            x[i] = 0.001 * i
        t0 = time.perf_counter()
        with nogil:
            lanes = fn(iters, 0.5, 0.25, x)
        dt = time.perf_counter() - t0
        if dt >= seconds or iters >= (<uint64_t>1 << 40):
            return 2.0 * lanes * iters / dt / 1e9
        iters *= 2
