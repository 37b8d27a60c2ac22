# cython: language_level=3
"""Thin bindings over the C kernels: check shapes, dtypes and strides, release the GIL, call C, and turn
C status codes into Python exceptions. No math here."""
cimport numpy as cnp
from libc.stdint cimport int64_t

import numpy as np

cnp.import_array()

_FEATURES = [
    ("sse4.2", 1 << 0), ("avx", 1 << 1), ("avx2", 1 << 2), ("fma", 1 << 3), ("f16c", 1 << 4),
    ("avx512f", 1 << 5), ("avx512bw", 1 << 6), ("avx512dq", 1 << 7), ("avx512vl", 1 << 8),
    ("avx512vnni", 1 << 9), ("avx512bf16", 1 << 10), ("avx512fp16", 1 << 11), ("avxvnni", 1 << 12),
    ("os_ymm", 1 << 13), ("os_zmm", 1 << 14), ("neon", 1 << 16), ("asimddp", 1 << 17), ("fp16", 1 << 18),
    ("i8mm", 1 << 19), ("sve", 1 << 20), ("bf16", 1 << 21),
]
ISA_NAMES = tuple(eng_isa_name(<eng_isa_t>i).decode() for i in range(<int>ENG_ISA_COUNT))
BIAS_NONE, BIAS_COL, BIAS_ROW = 0, 1, 2

_initialized = False


cdef _raise(eng_status_t s, str what):
    if s == ENG_OK:
        return
    msg = f"{what}: {eng_status_str(s).decode()}"
    if s == ENG_ERR_NOMEM:
        raise MemoryError(msg)
    if s == ENG_ERR_OVERFLOW:
        raise OverflowError(msg)
    if s == ENG_ERR_UNSUPPORTED:
        raise NotImplementedError(msg)
    raise ValueError(msg)


def init():
    """Fills the kernel table once (reads ENGINE_ISA). Raises ImportError for a bad ENGINE_ISA."""
    global _initialized
    if _initialized:
        return
    cdef eng_status_t s = eng_init()
    if s != ENG_OK:
        raise ImportError(eng_init_error().decode())
    _initialized = True


def _isa(tag):
    cdef bytes b = str(tag).encode()
    cdef eng_isa_t i = eng_isa_from_name(b)
    if i == ENG_ISA_COUNT:
        raise ValueError(f"unknown ISA level {tag!r}; known levels: {', '.join(ISA_NAMES)}")
    return i


def cpu_features():
    """Detected CPU features as {name: bool}."""
    cdef unsigned f = eng_cpu_features()
    return {name: bool(f & bit) for name, bit in _FEATURES}


def cpu_max_isa():
    return eng_isa_name(eng_cpu_max_isa()).decode()


def compiled_isas():
    return [n for i, n in enumerate(ISA_NAMES) if eng_isa_compiled(<eng_isa_t>i)]


def supported_isas():
    """Levels compiled into this build that this CPU can run, lowest first."""
    return [n for i, n in enumerate(ISA_NAMES) if eng_isa_supported(<eng_isa_t>i)]


def active_isa():
    return eng_isa_name(eng_active_isa()).decode()


def select_isa(tag):
    """Rebuilds the kernel table capped at `tag`. Not thread-safe against running kernels: tests only."""
    cdef eng_isa_t i = _isa(tag)
    if eng_select_isa(i) != ENG_OK:
        raise ValueError(f"ISA level {tag!r} cannot run here; supported: {', '.join(supported_isas())}")


def kernel_info():
    """[{'kernel': slot name, 'isa': level that provides it}] for the active table."""
    return [{"kernel": eng_kernel_name(s).decode(), "isa": eng_isa_name(eng_kernel_isa(s)).decode()}
            for s in range(<int>ENG_KERNEL_COUNT)]


def get_num_threads():
    return eng_get_num_threads()


def set_num_threads(int n):
    _raise(eng_set_num_threads(n), "set_num_threads")


def default_num_threads():
    return eng_default_num_threads()


def usable_cpus():
    return eng_usable_cpus()


def pool_live_workers():
    return eng_pool_live_workers()


cdef size_t _ld(cnp.ndarray x, str name) except? 0:
    """Row stride in elements of a 2-D float32 array whose last axis is unit-strided."""
    if cnp.PyArray_TYPE(x) != cnp.NPY_FLOAT32:
        raise TypeError(f"{name} must be float32, got {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got {x.ndim}-D")
    cdef Py_ssize_t r = x.shape[0], c = x.shape[1]
    cdef Py_ssize_t s0 = x.strides[0], s1 = x.strides[1]
    if r == 0 or c == 0:  # empty (e.g. K == 0): numpy may report any stride, incl. 0; nothing is read
        return <size_t>(c if c > 0 else 1)
    if c > 1 and s1 != 4:
        raise ValueError(f"{name}: the last axis must be contiguous (stride {s1} bytes)")
    if r > 1 and (s0 <= 0 or s0 % 4 != 0 or s0 // 4 < c):
        raise ValueError(f"{name}: unsupported row stride of {s0} bytes")
    return <size_t>(s0 // 4) if r > 1 else <size_t>c


cdef fill_args(eng_gemm_args_t *g, cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a, bint trans_b,
               float alpha, float beta, bias, int bias_kind, int act, float p0, float p1):
    g.lda = _ld(a, "a")
    g.ldb = _ld(b, "b")
    g.ldc = _ld(c, "c")
    if not c.flags.writeable:
        raise ValueError("c (the output) is read-only")
    g.m = c.shape[0]
    g.n = c.shape[1]
    g.k = a.shape[0] if trans_a else a.shape[1]
    cdef size_t am = a.shape[1] if trans_a else a.shape[0]
    cdef size_t bk = b.shape[1] if trans_b else b.shape[0]
    cdef size_t bn = b.shape[0] if trans_b else b.shape[1]
    if am != g.m or bn != g.n or bk != g.k:
        raise ValueError(f"gemm: shapes do not fit: op(a) is {am}x{g.k}, op(b) is {bk}x{bn}, c is {g.m}x{g.n}")
    g.a = <const float *>cnp.PyArray_DATA(a)
    g.b = <const float *>cnp.PyArray_DATA(b)
    g.c = <float *>cnp.PyArray_DATA(c)
    g.trans_a = trans_a
    g.trans_b = trans_b
    g.alpha = alpha
    g.beta = beta
    g.act.kind = act
    g.act.p0 = p0
    g.act.p1 = p1
    g.bias = NULL
    g.bias_kind = BIAS_NONE
    cdef cnp.ndarray bv
    if bias is not None and bias_kind != BIAS_NONE:
        bv = bias
        if cnp.PyArray_TYPE(bv) != cnp.NPY_FLOAT32 or bv.ndim != 1 or not bv.flags.c_contiguous:
            raise TypeError("bias must be a contiguous 1-D float32 array")
        want = g.n if bias_kind == BIAS_COL else g.m
        if <size_t>bv.shape[0] != want:
            raise ValueError(f"bias has {bv.shape[0]} elements, expected {want}")
        g.bias = <const float *>cnp.PyArray_DATA(bv)
        g.bias_kind = bias_kind


def gemm(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a=False, bint trans_b=False, float alpha=1.0,
         float beta=0.0, bias=None, int bias_kind=0, int act=0, float p0=0.0, float p1=0.0):
    """c = act(alpha op(a) op(b) + beta c + bias), in place in c. Arrays: 2-D float32, unit inner stride."""
    cdef eng_gemm_args_t g
    fill_args(&g, a, b, c, trans_a, trans_b, alpha, beta, bias, bias_kind, act, p0, p1)
    cdef eng_status_t s
    with nogil:
        s = eng_gemm_f32(&g)
    _raise(s, "gemm")
    return c


cdef _check_batch(cnp.ndarray m, const int64_t[::1] off, str name):
    """Raises unless m's matrix moved by each element offset stays inside the buffer m is a view of."""
    own = m
    while isinstance(own.base, np.ndarray):
        own = own.base
    cdef Py_ssize_t low = <Py_ssize_t>cnp.PyArray_DATA(own), high = low + own.itemsize, d
    for d in range(own.ndim):  # the byte range own's elements span (numpy's byte_bounds)
        if own.shape[d] == 0:
            high = low
            break
        if own.strides[d] < 0:
            low += (own.shape[d] - 1) * own.strides[d]
        else:
            high += (own.shape[d] - 1) * own.strides[d]
    cdef Py_ssize_t start = <Py_ssize_t>cnp.PyArray_DATA(m)
    cdef Py_ssize_t span = ((m.shape[0] - 1) * m.strides[0] + (m.shape[1] - 1) * m.strides[1] + 4) if m.size else 0
    cdef Py_ssize_t i, p
    for i in range(off.shape[0]):
        p = start + off[i] * 4
        if span and (p < low or p + span > high):
            raise ValueError(f"gemm_batch: problem {i} of {name} (element offset {off[i]}) lies outside its array")


def gemm_batch(cnp.ndarray a, cnp.ndarray b, cnp.ndarray c, bint trans_a, bint trans_b,
               const int64_t[::1] a_off, const int64_t[::1] b_off, const int64_t[::1] c_off):
    """A batch of products sharing the 2-D layout of a, b and c (their first matrices); problem i reads
    a + a_off[i], b + b_off[i] and writes c + c_off[i] (element offsets, computed by engine.linalg from the
    arrays' own strides)."""
    cdef eng_gemm_args_t g
    fill_args(&g, a, b, c, trans_a, trans_b, 1.0, 0.0, None, 0, 0, 0.0, 0.0)
    cdef size_t n = a_off.shape[0]
    if <size_t>b_off.shape[0] != n or <size_t>c_off.shape[0] != n:
        raise ValueError("gemm_batch: offset arrays differ in length")
    cdef eng_status_t s = ENG_OK
    if n == 0:
        return c
    # every problem's matrix must lie inside the memory of the array its first matrix is a view of
    _check_batch(a, a_off, "a")
    _check_batch(b, b_off, "b")
    _check_batch(c, c_off, "c")
    with nogil:
        s = eng_gemm_batch_f32(&g, n, &a_off[0], &b_off[0], &c_off[0])
    _raise(s, "gemm_batch")
    return c
include "_exec.pxi"
include "_ops.pxi"
include "_table.pxi"
include "_sim.pxi"
include "_conv.pxi"
include "_convt.pxi"
include "_wino.pxi"
include "_small.pxi"
