# Small-tensor elementwise steps for the graph executor (engine.ops.accel): float32 Add/Sub/Mul/Div, Relu and Neg
# on tensors of a few thousand elements at most, where numpy's ufunc machinery (type resolution, iterator setup,
# scalar handling: 0.5-1.5 us per call) costs far more than the arithmetic. Small models (voice-activity
# detectors, wake-word models) run hundreds of such nodes per call.
#
# Each object is callable like an op's run function: `step(a, b) -> (y,)`. It handles, in C, exact float32
# ndarrays that are C-contiguous, aligned and in native byte order, with one of these broadcast patterns: equal
# shapes; one operand with a single element and a rank no greater than the other's (a scalar); one operand whose
# shape is a suffix of the other's (a bias row). Anything else (other dtypes, strides, patterns, larger tensors)
# goes to `fallback(a, b)`, the numpy run function, unchanged. Results are bitwise those of numpy: one IEEE
# single-precision operation per element (no FMA contraction: there is no multiply-add here), NaN/inf as IEEE
# gives them, no warnings (the executor runs numpy under errstate(all="ignore") too). The output is always a new
# array (never an alias of an input).
cimport numpy as cnp

cdef enum:
    _SB_ADD = 0
    _SB_SUB = 1
    _SB_MUL = 2
    _SB_DIV = 3

cdef enum:
    _SU_RELU = 0
    _SU_NEG = 1

_SMALL_BINARY_OPS = {"add": _SB_ADD, "sub": _SB_SUB, "mul": _SB_MUL, "div": _SB_DIV}
_SMALL_UNARY_OPS = {"relu": _SU_RELU, "neg": _SU_NEG}


cdef inline bint _plain_f32(object o):
    if not cnp.PyArray_CheckExact(o):
        return False
    cdef cnp.ndarray a = <cnp.ndarray>o
    return (cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32 and cnp.PyArray_IS_C_CONTIGUOUS(a) and cnp.PyArray_ISALIGNED(a)
            and cnp.PyArray_ISNOTSWAPPED(a))


cdef inline bint _same_dims(cnp.npy_intp *x, cnp.npy_intp *y, int n):
    cdef int i
    for i in range(n):
        if x[i] != y[i]:
            return False
    return True


cdef void _bin_same(int op, const float *a, const float *b, float *y, cnp.npy_intp n) noexcept nogil:
    cdef cnp.npy_intp i
    if op == _SB_ADD:
        for i in range(n):
            y[i] = a[i] + b[i]
    elif op == _SB_SUB:
        for i in range(n):
            y[i] = a[i] - b[i]
    elif op == _SB_MUL:
        for i in range(n):
            y[i] = a[i] * b[i]
    else:
        for i in range(n):
            y[i] = a[i] / b[i]


cdef void _bin_scalar_b(int op, const float *a, float s, float *y, cnp.npy_intp n) noexcept nogil:
    cdef cnp.npy_intp i
    if op == _SB_ADD:
        for i in range(n):
            y[i] = a[i] + s
    elif op == _SB_SUB:
        for i in range(n):
            y[i] = a[i] - s
    elif op == _SB_MUL:
        for i in range(n):
            y[i] = a[i] * s
    else:
        for i in range(n):
            y[i] = a[i] / s


cdef void _bin_scalar_a(int op, float s, const float *b, float *y, cnp.npy_intp n) noexcept nogil:
    cdef cnp.npy_intp i
    if op == _SB_ADD:
        for i in range(n):
            y[i] = s + b[i]
    elif op == _SB_SUB:
        for i in range(n):
            y[i] = s - b[i]
    elif op == _SB_MUL:
        for i in range(n):
            y[i] = s * b[i]
    else:
        for i in range(n):
            y[i] = s / b[i]


cdef class SmallBinary:
    """`SmallBinary(op, fallback, max_size)`: a run function for float32 `op` in ("add", "sub", "mul", "div") on
    tensors of at most `max_size` elements, calling `fallback(a, b)` for everything it does not handle."""
    cdef int op
    cdef cnp.npy_intp max_size
    cdef object fallback

    def __init__(self, str op, fallback, cnp.npy_intp max_size):
        if op not in _SMALL_BINARY_OPS:
            raise ValueError(f"SmallBinary: unknown op {op!r}; known: {', '.join(_SMALL_BINARY_OPS)}")
        self.op = _SMALL_BINARY_OPS[op]
        self.fallback = fallback
        self.max_size = max_size

    def __call__(self, a, b):
        r = self._run(a, b)
        if r is None:
            return self.fallback(a, b)
        return (r,)

    cdef object _run(self, object a, object b):
        if not (_plain_f32(a) and _plain_f32(b)):
            return None
        cdef cnp.ndarray A = <cnp.ndarray>a, B = <cnp.ndarray>b, Y
        cdef cnp.npy_intp na = cnp.PyArray_SIZE(A), nb = cnp.PyArray_SIZE(B), n, rows, inner, r
        cdef int nda = cnp.PyArray_NDIM(A), ndb = cnp.PyArray_NDIM(B)
        cdef cnp.npy_intp *da = cnp.PyArray_DIMS(A)
        cdef cnp.npy_intp *db = cnp.PyArray_DIMS(B)
        cdef const float *pa
        cdef const float *pb
        cdef float *py
        if na > self.max_size or nb > self.max_size:
            return None
        if nda == ndb and _same_dims(da, db, nda):
            Y = <cnp.ndarray>cnp.PyArray_EMPTY(nda, da, cnp.NPY_FLOAT32, 0)
            _bin_same(self.op, <const float *>cnp.PyArray_DATA(A), <const float *>cnp.PyArray_DATA(B),
                      <float *>cnp.PyArray_DATA(Y), na)
            return Y
        if nb == 1 and ndb <= nda:                       # b is a scalar (all its dims are 1)
            Y = <cnp.ndarray>cnp.PyArray_EMPTY(nda, da, cnp.NPY_FLOAT32, 0)
            _bin_scalar_b(self.op, <const float *>cnp.PyArray_DATA(A), (<const float *>cnp.PyArray_DATA(B))[0],
                          <float *>cnp.PyArray_DATA(Y), na)
            return Y
        if na == 1 and nda <= ndb:                       # a is a scalar
            Y = <cnp.ndarray>cnp.PyArray_EMPTY(ndb, db, cnp.NPY_FLOAT32, 0)
            _bin_scalar_a(self.op, (<const float *>cnp.PyArray_DATA(A))[0], <const float *>cnp.PyArray_DATA(B),
                          <float *>cnp.PyArray_DATA(Y), nb)
            return Y
        # one operand's shape is a suffix of the other's (a row broadcast over the leading dims)
        if ndb < nda and nb > 0 and _same_dims(da + (nda - ndb), db, ndb):
            Y = <cnp.ndarray>cnp.PyArray_EMPTY(nda, da, cnp.NPY_FLOAT32, 0)
            n, inner = na, nb
            pa = <const float *>cnp.PyArray_DATA(A)
            pb = <const float *>cnp.PyArray_DATA(B)
            py = <float *>cnp.PyArray_DATA(Y)
            rows = n // inner
            for r in range(rows):
                _bin_same(self.op, pa + r * inner, pb, py + r * inner, inner)
            return Y
        if nda < ndb and na > 0 and _same_dims(db + (ndb - nda), da, nda):
            Y = <cnp.ndarray>cnp.PyArray_EMPTY(ndb, db, cnp.NPY_FLOAT32, 0)
            n, inner = nb, na
            pa = <const float *>cnp.PyArray_DATA(A)
            pb = <const float *>cnp.PyArray_DATA(B)
            py = <float *>cnp.PyArray_DATA(Y)
            rows = n // inner
            for r in range(rows):
                _bin_same(self.op, pa, pb + r * inner, py + r * inner, inner)
            return Y
        return None


cdef class SmallUnary:
    """`SmallUnary(op, fallback, max_size)`: a run function for float32 `op` in ("relu", "neg") on tensors of at
    most `max_size` elements, calling `fallback(x)` for everything else. relu keeps NaN and -0.0 as
    numpy.maximum(x, 0) does."""
    cdef int op
    cdef cnp.npy_intp max_size
    cdef object fallback

    def __init__(self, str op, fallback, cnp.npy_intp max_size):
        if op not in _SMALL_UNARY_OPS:
            raise ValueError(f"SmallUnary: unknown op {op!r}; known: {', '.join(_SMALL_UNARY_OPS)}")
        self.op = _SMALL_UNARY_OPS[op]
        self.fallback = fallback
        self.max_size = max_size

    def __call__(self, x):
        if not _plain_f32(x):
            return self.fallback(x)
        cdef cnp.ndarray X = <cnp.ndarray>x, Y
        cdef cnp.npy_intp n = cnp.PyArray_SIZE(X), i
        if n > self.max_size:
            return self.fallback(x)
        Y = <cnp.ndarray>cnp.PyArray_EMPTY(cnp.PyArray_NDIM(X), cnp.PyArray_DIMS(X), cnp.NPY_FLOAT32, 0)
        cdef const float *px = <const float *>cnp.PyArray_DATA(X)
        cdef float *py = <float *>cnp.PyArray_DATA(Y)
        cdef float v
        if self.op == _SU_RELU:
            for i in range(n):
                v = px[i]
                py[i] = 0.0 if v < 0.0 else v            # NaN and -0.0 pass through, as numpy.maximum(x, 0)
        else:
            for i in range(n):
                py[i] = -px[i]
        return (Y,)
