# Similarity kernels and the gallery search driver (csrc/kernels/sim/, csrc/include/eng/eng_sim.h).
# Included at the end of _kernels.pyx: one extension, one dispatch table, one thread pool. Bindings only check
# dtypes, shapes and strides, release the GIL and call C; the public API is engine/similarity.py. The kernel table
# (eng_kernels_t, eng_active) is declared in _table.pxi.
from libc.stdint cimport int8_t, uint16_t, int32_t, int64_t

cdef extern from "eng/eng_kernels.h" nogil:
    size_t ENG_SIM_I8_MAX_N

cdef extern from "eng/eng_sim.h" nogil:
    ctypedef struct eng_sim_search_args_t:
        int dtype
        size_t n, d
        const void *g
        size_t ldg
        const float *g_scale
        size_t m
        const float *q
        size_t ldq
        int normalize
        size_t k
        float *scores
        int64_t *idx
    eng_status_t eng_sim_rowwise_cos(const eng_kernels_t *kt, int dtype, size_t m, size_t d, const void *a, size_t lda,
                                     const void *b, size_t ldb, float *out, int parallel)
    eng_status_t eng_sim_cdist_f32(const eng_kernels_t *kt, int metric, size_t m, size_t n, size_t d, const float *a,
                                   size_t lda, const float *b, size_t ldb, float *out, size_t ldo, int parallel)
    eng_status_t eng_sim_search(const eng_kernels_t *kt, const eng_sim_search_args_t *a, int parallel)

SIM_I8_MAX_N = ENG_SIM_I8_MAX_N
SIM_METRICS = {"cosine": 0, "dot": 1, "l2sq": 2}
# A single-pair call shorter than this many elements runs without releasing the GIL: releasing and re-acquiring
# it (a thread-state swap and atomic operations, more if another thread is waiting for it) is a sizeable part of
# a 512-d cosine that takes tens of nanoseconds, and no other thread could get much done in that time anyway.
# Batched calls (rows, cdist, search) always release it.
DEF _NOGIL_MIN = 16384

cdef int _sim_dtype(cnp.ndarray x) except -1:
    cdef int t = cnp.PyArray_TYPE(x)
    if t == cnp.NPY_FLOAT32:
        return 0
    if t == cnp.NPY_FLOAT16:
        return 1
    if t == cnp.NPY_INT8:
        return 2
    raise TypeError(f"unsupported dtype {x.dtype}: use float32, float16 or int8")


cdef size_t _row_stride(cnp.ndarray x, str name) except? 0:
    """Row stride in elements of a 2-D array whose last axis is unit-strided (any of the three dtypes)."""
    cdef Py_ssize_t isz = x.itemsize
    cdef Py_ssize_t r = x.shape[0], c = x.shape[1]
    if r == 0 or c == 0:
        return <size_t>(c if c > 0 else 1)
    if c > 1 and x.strides[1] != isz:
        raise ValueError(f"{name}: the last axis must be contiguous")
    if r > 1 and (x.strides[0] <= 0 or x.strides[0] % isz != 0 or x.strides[0] // isz < c):
        raise ValueError(f"{name}: unsupported row stride of {x.strides[0]} bytes")
    return <size_t>(x.strides[0] // isz) if r > 1 else <size_t>c


cdef inline float _cos1(int dt, size_t n, const void *pa, const void *pb) noexcept nogil:
    if dt == 0:
        return eng_active.cos_f32(n, <const float *>pa, <const float *>pb)
    if dt == 1:
        return eng_active.cos_f16(n, <const uint16_t *>pa, <const uint16_t *>pb)
    return eng_active.cos_i8(n, <const int8_t *>pa, <const int8_t *>pb)


def sim_cos_pair(cnp.ndarray a not None, cnp.ndarray b not None):
    """cos(a, b) of two contiguous 1-D arrays of the same supported dtype and length."""
    cdef int dt = _sim_dtype(a)
    if cnp.PyArray_TYPE(b) != cnp.PyArray_TYPE(a):
        raise TypeError(f"a and b differ in dtype ({a.dtype} vs {b.dtype})")
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError("sim_cos_pair takes 1-D arrays")
    cdef size_t n = a.shape[0]
    if <size_t>b.shape[0] != n:
        raise ValueError(f"dimension mismatch: {a.shape[0]} vs {b.shape[0]}")
    if not (cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_IS_C_CONTIGUOUS(b)):
        raise ValueError("sim_cos_pair takes contiguous arrays")
    if dt == 2 and n > ENG_SIM_I8_MAX_N:
        raise ValueError(f"int8 vectors are limited to {ENG_SIM_I8_MAX_N} elements (int32 accumulation)")
    cdef const void *pa = cnp.PyArray_DATA(a)
    cdef const void *pb = cnp.PyArray_DATA(b)
    cdef float r
    if n < _NOGIL_MIN:
        return _cos1(dt, n, pa, pb)
    with nogil:
        r = _cos1(dt, n, pa, pb)
    return r


def cosine_similarity_fast(a, b):
    """cosine_similarity(a, b) -> float | numpy.ndarray

    Cosine similarity of two vectors (a float), or row-wise of two 2-D batches of the same shape (a float32
    array). a and b: numpy arrays of the same dtype, float32, float16 or int8 (lists of numbers are read as
    float32). A zero vector gives 0, never NaN; results are clamped to [-1, 1]. A dimension mismatch is a
    ValueError, an unsupported dtype a TypeError.
    """
    # Two contiguous float32 vectors (the call-overhead-critical case) are answered here; everything else goes to
    # engine.similarity._cosine_general, which validates and explains errors.
    cdef cnp.ndarray x, y
    cdef size_t n
    if type(a) is np.ndarray and type(b) is np.ndarray:
        x = <cnp.ndarray>a
        y = <cnp.ndarray>b
        if (x.ndim == 1 and y.ndim == 1 and cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32 and
                cnp.PyArray_TYPE(y) == cnp.NPY_FLOAT32 and x.shape[0] == y.shape[0] and
                cnp.PyArray_IS_C_CONTIGUOUS(x) and cnp.PyArray_IS_C_CONTIGUOUS(y)):
            n = x.shape[0]
            if n < _NOGIL_MIN:
                return eng_active.cos_f32(n, <const float *>cnp.PyArray_DATA(x), <const float *>cnp.PyArray_DATA(y))
    return _sim_general(a, b)


_sim_general = None


def _set_sim_general(fn):
    global _sim_general
    _sim_general = fn


def sim_rowwise_cos(cnp.ndarray a not None, cnp.ndarray b not None, cnp.ndarray out not None):
    """out[i] = cos(a[i], b[i]) for 2-D a, b of the same dtype and shape; out float32 of len(a)."""
    cdef int dt = _sim_dtype(a)
    if cnp.PyArray_TYPE(b) != cnp.PyArray_TYPE(a):
        raise TypeError(f"a and b differ in dtype ({a.dtype} vs {b.dtype})")
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0] or a.shape[1] != b.shape[1]:
        raise ValueError(f"shape mismatch: {(<object>a).shape} vs {(<object>b).shape}")
    if cnp.PyArray_TYPE(out) != cnp.NPY_FLOAT32 or out.ndim != 1 or out.shape[0] != a.shape[0] or \
            not cnp.PyArray_IS_C_CONTIGUOUS(out) or not out.flags.writeable:
        raise ValueError("out must be a writeable contiguous float32 vector of len(a)")
    cdef size_t lda = _row_stride(a, "a"), ldb = _row_stride(b, "b")
    cdef size_t m = a.shape[0], d = a.shape[1]
    if dt == 2 and d > ENG_SIM_I8_MAX_N:
        raise ValueError(f"int8 vectors are limited to {ENG_SIM_I8_MAX_N} elements (int32 accumulation)")
    cdef const void *pa = cnp.PyArray_DATA(a)
    cdef const void *pb = cnp.PyArray_DATA(b)
    cdef float *po = <float *>cnp.PyArray_DATA(out)
    cdef eng_status_t s
    with nogil:
        s = eng_sim_rowwise_cos(&eng_active, dt, m, d, pa, lda, pb, ldb, po, 1)
    _raise(s, "cosine_similarity")
    return out


def sim_l2norm_rows(cnp.ndarray x not None, cnp.ndarray out not None):
    """out[i] = x[i] / |x[i]| (zero rows stay zero) for 2-D float32 or float16 x; out same dtype and shape."""
    cdef int dt = _sim_dtype(x)
    if dt == 2:
        raise TypeError("l2-normalizing int8 rows is not supported: normalize in float, then quantize")
    if cnp.PyArray_TYPE(out) != cnp.PyArray_TYPE(x) or out.ndim != 2 or x.ndim != 2 or \
            out.shape[0] != x.shape[0] or out.shape[1] != x.shape[1] or not out.flags.writeable:
        raise ValueError("out must be a writeable array of x's dtype and shape")
    cdef size_t ldx = _row_stride(x, "x"), ldy = _row_stride(out, "out")
    cdef size_t m = x.shape[0], n = x.shape[1]
    cdef const void *px = cnp.PyArray_DATA(x)
    cdef void *py = cnp.PyArray_DATA(out)
    with nogil:
        if dt == 0:
            eng_active.l2norm_rows_f32(m, n, <const float *>px, ldx, <float *>py, ldy)
        else:
            eng_active.l2norm_rows_f16(m, n, <const uint16_t *>px, ldx, <uint16_t *>py, ldy)
    return out


def sim_cdist(cnp.ndarray a not None, cnp.ndarray b not None, str metric, cnp.ndarray out not None):
    """out (len(a) x len(b), float32) = metric(a_i, b_j) for 2-D float32 a, b."""
    if metric not in SIM_METRICS:
        raise ValueError(f"unknown metric {metric!r}; use one of {', '.join(SIM_METRICS)}")
    cdef size_t lda = _ld(a, "A"), ldb = _ld(b, "B"), ldo = _ld(out, "out")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"dimension mismatch: A has {a.shape[1]} columns, B has {b.shape[1]}")
    if out.shape[0] != a.shape[0] or out.shape[1] != b.shape[0] or not out.flags.writeable:
        raise ValueError(f"out must be a writeable float32 array of shape ({a.shape[0]}, {b.shape[0]})")
    cdef int mt = SIM_METRICS[metric]
    cdef size_t m = a.shape[0], n = b.shape[0], d = a.shape[1]
    cdef const float *pa = <const float *>cnp.PyArray_DATA(a)
    cdef const float *pb = <const float *>cnp.PyArray_DATA(b)
    cdef float *po = <float *>cnp.PyArray_DATA(out)
    cdef eng_status_t s
    with nogil:
        s = eng_sim_cdist_f32(&eng_active, mt, m, n, d, pa, lda, pb, ldb, po, ldo, 1)
    _raise(s, "cdist")
    return out


def sim_search(cnp.ndarray g not None, g_scale, cnp.ndarray q not None, size_t k, bint normalize,
               cnp.ndarray scores not None, cnp.ndarray idx not None, bint parallel=True):
    """Fused top-k search of float32 queries q (m x d) in gallery g (n x d; float32, float16 or int8 with the
    per-row float32 g_scale); writes scores (m x k float32) and idx (m x k int64 row numbers)."""
    cdef int dt = _sim_dtype(g)
    if g.ndim != 2 or q.ndim != 2:
        raise ValueError("gallery and queries must be 2-D")
    if cnp.PyArray_TYPE(q) != cnp.NPY_FLOAT32:
        raise TypeError(f"queries must be float32, got {q.dtype}")
    if g.shape[1] != q.shape[1]:
        raise ValueError(f"dimension mismatch: the gallery has dimension {g.shape[1]}, the queries {q.shape[1]}")
    cdef size_t n = g.shape[0], d = g.shape[1], m = q.shape[0]
    if k < 1 or k > n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    if cnp.PyArray_TYPE(scores) != cnp.NPY_FLOAT32 or cnp.PyArray_TYPE(idx) != cnp.NPY_INT64 or \
            not cnp.PyArray_IS_C_CONTIGUOUS(scores) or not cnp.PyArray_IS_C_CONTIGUOUS(idx) or \
            scores.size != <Py_ssize_t>(m * k) or idx.size != <Py_ssize_t>(m * k):
        raise ValueError("scores/idx must be contiguous float32/int64 arrays of m*k elements")
    cdef cnp.ndarray gs
    cdef const float *pgs = NULL
    if dt == 2:
        if g_scale is None:
            raise ValueError("an int8 gallery needs its per-row scales")
        gs = g_scale
        if cnp.PyArray_TYPE(gs) != cnp.NPY_FLOAT32 or gs.ndim != 1 or <size_t>gs.shape[0] != n or \
                not cnp.PyArray_IS_C_CONTIGUOUS(gs):
            raise ValueError("g_scale must be a contiguous float32 vector of one scale per gallery row")
        if d > ENG_SIM_I8_MAX_N:
            raise ValueError(f"int8 galleries are limited to dimension {ENG_SIM_I8_MAX_N} (int32 accumulation)")
        pgs = <const float *>cnp.PyArray_DATA(gs)
    cdef eng_sim_search_args_t a
    a.dtype = dt
    a.n = n
    a.d = d
    a.g = cnp.PyArray_DATA(g)
    a.ldg = _row_stride(g, "gallery")
    a.g_scale = pgs
    a.m = m
    a.q = <const float *>cnp.PyArray_DATA(q)
    a.ldq = _row_stride(q, "queries")
    a.normalize = normalize
    a.k = k
    a.scores = <float *>cnp.PyArray_DATA(scores)
    a.idx = <int64_t *>cnp.PyArray_DATA(idx)
    cdef eng_status_t s
    cdef int par = parallel
    with nogil:
        s = eng_sim_search(&eng_active, &a, par)
    _raise(s, "Gallery.search")


def sim_kernel(str name, cnp.ndarray a not None, b=None):
    """Direct call of one similarity slot of the active table, for tests: name in dot, sqnorm, cos (dtype from
    a), or scan (a: 1-D query, b: 2-D gallery rows; f32 query for f32/f16 rows, i8 for i8). Returns a float, an
    int (i8 dot/sqnorm) or, for scan, a new 1-D array."""
    cdef int dt = _sim_dtype(a)
    cdef cnp.ndarray bb
    if a.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(a):
        raise ValueError("a must be a contiguous 1-D array")
    cdef size_t n = a.shape[0], rows, ldg
    cdef const void *pa = cnp.PyArray_DATA(a)
    cdef const void *pb = NULL
    cdef cnp.ndarray out
    if name == "sqnorm":
        if dt == 0:
            return eng_active.sqnorm_f32(n, <const float *>pa)
        if dt == 1:
            return eng_active.sqnorm_f16(n, <const uint16_t *>pa)
        return eng_active.sqnorm_i8(n, <const int8_t *>pa)
    bb = b
    if name in ("dot", "cos"):
        if cnp.PyArray_TYPE(bb) != cnp.PyArray_TYPE(a) or bb.ndim != 1 or <size_t>bb.shape[0] != n or \
                not cnp.PyArray_IS_C_CONTIGUOUS(bb):
            raise ValueError("b must be a contiguous 1-D array like a")
        pb = cnp.PyArray_DATA(bb)
        if name == "cos":
            return _cos1(dt, n, pa, pb)
        if dt == 0:
            return eng_active.dot_f32(n, <const float *>pa, <const float *>pb)
        if dt == 1:
            return eng_active.dot_f16(n, <const uint16_t *>pa, <const uint16_t *>pb)
        return eng_active.dot_i8(n, <const int8_t *>pa, <const int8_t *>pb)
    if name == "scan":
        if bb.ndim != 2 or <size_t>bb.shape[1] != n:
            raise ValueError("b must be 2-D with len(a) columns")
        rows = bb.shape[0]
        ldg = _row_stride(bb, "b")
        pb = cnp.PyArray_DATA(bb)
        gdt = _sim_dtype(bb)
        if gdt == 2:
            if dt != 2:
                raise TypeError("an int8 scan takes an int8 query")
            out = np.empty(rows, dtype=np.int32)
            eng_active.scan_i8(rows, n, <const int8_t *>pa, <const int8_t *>pb, ldg, <int32_t *>cnp.PyArray_DATA(out))
            return out
        if dt != 0:
            raise TypeError("f32/f16 scans take a float32 query")
        out = np.empty(rows, dtype=np.float32)
        if gdt == 0:
            eng_active.scan_f32(rows, n, <const float *>pa, <const float *>pb, ldg, <float *>cnp.PyArray_DATA(out))
        else:
            eng_active.scan_f16(rows, n, <const float *>pa, <const uint16_t *>pb, ldg, <float *>cnp.PyArray_DATA(out))
        return out
    raise ValueError(f"unknown kernel {name!r}")


def sim_cvt(cnp.ndarray x not None):
    """float16 -> float32 or float32 -> float16 through the active table's conversion kernels (tests)."""
    if x.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(x):
        raise ValueError("x must be a contiguous 1-D array")
    cdef size_t n = x.shape[0]
    cdef cnp.ndarray y
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT16:
        y = np.empty(n, dtype=np.float32)
        eng_active.cvt_f16_f32(n, <const uint16_t *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(y))
    elif cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT32:
        y = np.empty(n, dtype=np.float16)
        eng_active.cvt_f32_f16(n, <const float *>cnp.PyArray_DATA(x), <uint16_t *>cnp.PyArray_DATA(y))
    else:
        raise TypeError(f"sim_cvt takes float16 or float32, got {x.dtype}")
    return y
