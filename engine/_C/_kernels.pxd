# Declarations of the C API (csrc/include/eng), one to one. No logic here.
from libc.stdint cimport int64_t

cdef extern from "eng/eng_common.h" nogil:
    ctypedef enum eng_status_t:
        ENG_OK
        ENG_ERR_INVALID_ARG
        ENG_ERR_NOMEM
        ENG_ERR_OVERFLOW
        ENG_ERR_UNSUPPORTED
    const char *eng_status_str(eng_status_t s)

cdef extern from "eng/eng_isa.h" nogil:
    ctypedef enum eng_isa_t:
        ENG_ISA_SCALAR
        ENG_ISA_AVX2
        ENG_ISA_AVX512
        ENG_ISA_NEON
        ENG_ISA_COUNT
    unsigned eng_cpu_features()
    eng_isa_t eng_cpu_max_isa()
    const char *eng_isa_name(eng_isa_t isa)

cdef extern from "eng/eng_kernels.h" nogil:
    ctypedef struct eng_act_t:
        int kind
        float p0
        float p1
    enum: ENG_KERNEL_COUNT

cdef extern from "eng/eng_dispatch.h" nogil:
    eng_status_t eng_init()
    const char *eng_init_error()
    eng_status_t eng_select_isa(eng_isa_t isa)
    eng_isa_t eng_active_isa()
    eng_isa_t eng_isa_from_name(const char *name)
    int eng_isa_compiled(eng_isa_t isa)
    int eng_isa_supported(eng_isa_t isa)
    const char *eng_kernel_name(int slot)
    eng_isa_t eng_kernel_isa(int slot)

cdef extern from "eng/eng_runtime.h" nogil:
    int eng_get_num_threads()
    eng_status_t eng_set_num_threads(int n)
    int eng_default_num_threads()
    int eng_usable_cpus()
    int eng_pool_live_workers()
    void eng_pool_hold(int on) nogil
    ctypedef struct eng_gemm_args_t:
        size_t m, n, k
        float alpha, beta
        const float *a
        size_t lda
        int trans_a
        const float *b
        size_t ldb
        int trans_b
        float *c
        size_t ldc
        const float *bias
        int bias_kind
        eng_act_t act
    eng_status_t eng_gemm_f32(const eng_gemm_args_t *args)
    eng_status_t eng_gemm_batch_f32(const eng_gemm_args_t *args, size_t batch, const int64_t *a_off,
                                    const int64_t *b_off, const int64_t *c_off)
