# Small-tensor elementwise steps for the graph executor (engine.ops.accel): float32 Add/Sub/Mul/Div, Relu, Neg,
# Sigmoid and Tanh on tensors of a few thousand elements at most, where numpy's ufunc machinery (type resolution, iterator setup,
# scalar handling: 0.5-1.5 us per call) costs far more than the arithmetic. Small models (voice-activity
# detectors, wake-word models) run hundreds of such nodes per call.
#
# Each object is callable like an op's run function: `step(a, b) -> (y,)`. It handles, in C, exact float32
# ndarrays that are C-contiguous, aligned and in native byte order, with one of these broadcast patterns: equal
# shapes; one operand with a single element and a rank no greater than the other's (a scalar); one operand whose
# shape is a suffix of the other's (a bias row). Anything else (other dtypes, strides, patterns, larger tensors)
# goes to `fallback(a, b)`, the numpy run function, unchanged. Sigmoid and Tanh use libm's expf/tanhf (within an
# ulp or two of numpy's and scipy's, as the larger tensors' SIMD kernels are); the others are bitwise numpy's: one IEEE
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
    _SU_SIGMOID = 2
    _SU_TANH = 3

_SMALL_BINARY_OPS = {"add": _SB_ADD, "sub": _SB_SUB, "mul": _SB_MUL, "div": _SB_DIV}
_SMALL_UNARY_OPS = {"relu": _SU_RELU, "neg": _SU_NEG, "sigmoid": _SU_SIGMOID, "tanh": _SU_TANH}

from libc.math cimport expf, tanhf


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
    """`SmallUnary(op, fallback, max_size)`: a run function for float32 `op` in ("relu", "neg", "sigmoid", "tanh")
    on tensors of at most `max_size` elements, calling `fallback(x)` for everything else. relu keeps NaN and -0.0
    as numpy.maximum(x, 0) does."""
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
        elif self.op == _SU_NEG:
            for i in range(n):
                py[i] = -px[i]
        elif self.op == _SU_SIGMOID:
            for i in range(n):
                v = px[i]
                if v >= 0:                                 # exp of a non-positive number: no overflow
                    py[i] = 1.0 / (1.0 + expf(-v))
                else:
                    v = expf(v)
                    py[i] = v / (1.0 + v)
        else:
            for i in range(n):
                py[i] = tanhf(px[i])
        return (Y,)


# ------------------------------------------------------------------------------------------ small GRU
from libc.math cimport tanhf


cdef eng_status_t _gemm_small(const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc,
                              size_t m, size_t n, size_t k, float beta, const float *bias, int act,
                              float p0=0.0, float p1=0.0, int trans_a=0) noexcept nogil:
    cdef eng_gemm_args_t g
    _fill_small(&g, a, lda, b, ldb, c, ldc, m, n, k, beta, bias, act, p0, p1, trans_a)
    return eng_gemm_f32(&g)


cdef void _fill_small(eng_gemm_args_t *g, const float *a, size_t lda, const float *b, size_t ldb, float *c, size_t ldc,
                      size_t m, size_t n, size_t k, float beta, const float *bias, int act,
                      float p0, float p1, int trans_a) noexcept nogil:
    g.m = m
    g.n = n
    g.k = k
    g.alpha = 1.0
    g.beta = beta
    g.a = a
    g.lda = lda
    g.trans_a = trans_a
    g.b = b
    g.ldb = ldb
    g.trans_b = 0
    g.c = c
    g.ldc = ldc
    g.bias = bias
    g.bias_kind = 1 if bias != NULL else 0  # ENG_BIAS_COL / ENG_BIAS_NONE
    g.act.kind = act
    g.act.p0 = p0
    g.act.p1 = p1


def gru_steps_f32(cnp.ndarray xw, cnp.ndarray y, cnp.ndarray ra, cnp.ndarray rb, cnp.ndarray h0, rb_h,
                  int act_sigmoid):
    """The recurrence of a one-direction float32 GRU with the default activations, all steps in C (engine.ops.rnn's
    small-GRU path; per step the numpy version costs ~10 calls of ~1 us). xw (S, N, 3H): the input projections
    with the biases, gates z, r, h; overwritten (scratch). y (S, N, H): receives every step's state. ra (H, 2H),
    rb (H, H): the recurrent weights of the sigmoid gates and of the candidate. h0 (N, H): the initial state.
    rb_h: None (linear_before_reset=0: candidate = tanh(x_h + (r * h) @ rb)) or the (H,) recurrent bias of the
    candidate (linear_before_reset=1: tanh(x_h + r * (h @ rb + rb_h))). The sigmoid gates come from the GEMM
    epilogue as in the numpy version; h' = hh + z * (h - hh)."""
    for arr, nm in ((xw, "xw"), (y, "y"), (ra, "ra"), (rb, "rb"), (h0, "h0")):
        if cnp.PyArray_TYPE(arr) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
            raise TypeError(f"gru_steps_f32: {nm} must be a C-contiguous float32 array")
    if xw.ndim != 3 or y.ndim != 3 or ra.ndim != 2 or rb.ndim != 2 or h0.ndim != 2:
        raise ValueError("gru_steps_f32: xw, y must be 3-D and ra, rb, h0 2-D")
    cdef size_t S = xw.shape[0], N = xw.shape[1], H = h0.shape[1]
    cdef size_t GH = 3 * H
    if (<size_t>xw.shape[2] != GH or <size_t>y.shape[0] != S or <size_t>y.shape[1] != N or <size_t>y.shape[2] != H
            or <size_t>h0.shape[0] != N or <size_t>ra.shape[0] != H or <size_t>ra.shape[1] != 2 * H
            or <size_t>rb.shape[0] != H or <size_t>rb.shape[1] != H):
        raise ValueError("gru_steps_f32: shapes do not fit")
    if not y.flags.writeable or not xw.flags.writeable:
        raise ValueError("gru_steps_f32: xw and y must be writeable")
    cdef cnp.ndarray bv
    cdef const float *pb = NULL
    if rb_h is not None:
        bv = rb_h
        if cnp.PyArray_TYPE(bv) != cnp.NPY_FLOAT32 or not cnp.PyArray_IS_C_CONTIGUOUS(bv) or bv.size != <Py_ssize_t>H:
            raise ValueError("gru_steps_f32: rb_h must be a contiguous float32 array of H elements")
        pb = <const float *>cnp.PyArray_DATA(bv)
    cdef cnp.ndarray tmp_arr = np.empty((max(N, 1), max(H, 1)), np.float32)
    cdef float *tmp = <float *>cnp.PyArray_DATA(tmp_arr)
    cdef float *px = <float *>cnp.PyArray_DATA(xw)
    cdef float *py = <float *>cnp.PyArray_DATA(y)
    cdef const float *pra = <const float *>cnp.PyArray_DATA(ra)
    cdef const float *prb = <const float *>cnp.PyArray_DATA(rb)
    cdef const float *h = <const float *>cnp.PyArray_DATA(h0)
    cdef size_t t, i, j
    cdef float *g
    cdef float *gr
    cdef float *yt
    cdef float hv, hh
    cdef eng_status_t s = ENG_OK
    if S == 0 or N == 0 or H == 0:
        return
    with nogil:
        for t in range(S):
            g = px + t * N * GH
            yt = py + t * N * H
            s = _gemm_small(h, H, pra, 2 * H, g, GH, N, 2 * H, H, 1.0, NULL, act_sigmoid)   # z, r
            if s != ENG_OK:
                break
            if pb != NULL:        # hh = x_h + r * (h @ rb + rb_h)
                s = _gemm_small(h, H, prb, H, tmp, H, N, H, H, 0.0, pb, 0)
                if s != ENG_OK:
                    break
                for i in range(N):
                    gr = g + i * GH
                    for j in range(H):
                        gr[2 * H + j] = gr[2 * H + j] + tmp[i * H + j] * gr[H + j]
            else:                 # hh = x_h + (r * h) @ rb
                for i in range(N):
                    gr = g + i * GH
                    for j in range(H):
                        tmp[i * H + j] = gr[H + j] * h[i * H + j]
                s = _gemm_small(tmp, H, prb, H, g + 2 * H, GH, N, H, H, 1.0, NULL, 0)
                if s != ENG_OK:
                    break
            for i in range(N):
                gr = g + i * GH
                for j in range(H):
                    hh = tanhf(gr[2 * H + j])
                    hv = h[i * H + j]
                    yt[i * H + j] = (hv - hh) * gr[j] + hh
            h = yt
    _raise(s, "gru_steps_f32")


# ------------------------------------------------------------------------------------------ Slice
cdef class SliceStep:
    """`SliceStep(index, ndim, fallback)`: Slice with constant starts/ends/axes/steps whose index (a tuple of slices)
    was built at load for inputs of rank `ndim`: `step(x, *constant inputs) -> (x[index],)` (a view) for an ndarray
    of that rank, `fallback(x, *inputs)` otherwise (which builds the index for the actual rank or explains the
    error). Small models run a hundred Slices per call; this drops the Python frame around the indexing."""
    cdef object index
    cdef int ndim
    cdef object fallback

    def __init__(self, tuple index, int ndim, fallback):
        self.index = index
        self.ndim = ndim
        self.fallback = fallback

    def __call__(self, x, *rest):
        if cnp.PyArray_Check(x) and cnp.PyArray_NDIM(<cnp.ndarray>x) == self.ndim:
            return (x[self.index],)
        return self.fallback(x, *rest)


# ------------------------------------------------------------------------------------------ reshapes
cdef class ReshapeStep:
    """`ReshapeStep(fallback)`: for ops whose output is `x.reshape(target)` with a target that depends only on the
    input's shape (Reshape with a constant shape, Squeeze/Unsqueeze with constant axes, Flatten): the first call
    per input shape runs `fallback(x, *rest)` (which checks and raises the op's errors) and remembers the output
    shape; later calls with that shape return `x.reshape(target)` directly (the same view). Up to 64 shapes are
    remembered."""
    cdef dict shapes
    cdef object fallback

    def __init__(self, fallback):
        self.shapes = {}
        self.fallback = fallback

    def __call__(self, x, *rest):
        if not cnp.PyArray_Check(x):
            return self.fallback(x, *rest)
        cdef object shape = getattr(x, "shape")
        t = self.shapes.get(shape)
        if t is not None:
            return (x.reshape(t),)
        res = self.fallback(x, *rest)
        y = res[0]
        if cnp.PyArray_Check(y):
            if len(self.shapes) >= 64:
                self.shapes.clear()
            self.shapes[shape] = getattr(y, "shape")
        return res


# ------------------------------------------------------------------------------------------ MatMul
cdef extern from "eng/eng_runtime.h" nogil:
    ctypedef struct eng_gemm_packed_b_t:
        const float *data
        size_t k, n
        unsigned nr
        size_t kc
    size_t eng_gemm_packed_b_floats(const eng_kernels_t *kt, size_t k, size_t n)
    eng_status_t eng_gemm_pack_b_f32(const eng_kernels_t *kt, size_t k, size_t n, const float *b, size_t ldb,
                                     int trans_b, float *dst, size_t dst_floats, eng_gemm_packed_b_t *out)
    eng_status_t eng_gemm_prepacked_f32(const eng_gemm_args_t *args, const eng_gemm_packed_b_t *pb)

# Products with at least this many rows take w pre-packed in the GEMM's panel layout (packed when the Session is
# built if the model's shapes give that many rows, else on the first such call; kept with the step): packing a
# (K, N) weight costs about as much as 2 * K * N flops of the product, 5-10% of a transformer projection of 128
# tokens, and it is a parallel region of its own. Fewer rows (a batch-1 linear layer)
# go to the GEMV paths, which read w as it is, so nothing is packed for them.
DEF PREPACK_MIN_ROWS = 16
MATMUL_PREPACK_MIN_ROWS = PREPACK_MIN_ROWS


cdef class MatMulStep:
    """`MatMulStep(w, bias, act, p0, p1, fallback)`: `step(a, *constant inputs) -> (act(a @ w + bias),)` for a
    float32 `a` of rank >= 2 that is C-contiguous, or 2-D with a unit stride along one axis and a uniform stride
    along the other (row or column slices, a transposed matrix): one engine GEMM call on a's memory, without the contiguous copy and the
    Python around it (small models run dozens of (1, K) @ (K, N) products). w: a C-contiguous float32 (K, N)
    matrix; bias: None or N float32 values (added per column); act, p0, p1: engine.linalg's activation code and
    parameters (0: none). Anything else (other dtypes, ranks or strides, an empty `a`) goes to
    `fallback(a, *rest)`."""
    cdef cnp.ndarray w
    cdef object bias
    cdef int act
    cdef float p0, p1
    cdef object fallback
    cdef cnp.npy_intp K, N
    cdef cnp.ndarray packed          # w in the GEMM's panel layout (None until a product of many rows)
    cdef eng_gemm_packed_b_t pb

    def __init__(self, cnp.ndarray w, bias, int act, float p0, float p1, fallback):
        if cnp.PyArray_TYPE(w) != cnp.NPY_FLOAT32 or w.ndim != 2 or not cnp.PyArray_IS_C_CONTIGUOUS(w):
            raise TypeError("MatMulStep: w must be a C-contiguous 2-D float32 array")
        self.K = w.shape[0]
        self.N = w.shape[1]
        cdef cnp.ndarray bv
        if bias is not None:
            bv = bias
            if cnp.PyArray_TYPE(bv) != cnp.NPY_FLOAT32 or bv.ndim != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(bv) \
                    or bv.shape[0] != self.N:
                raise ValueError(f"MatMulStep: bias must be a contiguous float32 vector of {self.N} values")
        self.w = w
        self.bias = bias
        self.act = act
        self.p0 = p0
        self.p1 = p1
        self.fallback = fallback

    def __call__(self, a, *rest):
        if not cnp.PyArray_CheckExact(a):
            return self.fallback(a, *rest)
        cdef cnp.ndarray A = <cnp.ndarray>a
        cdef int nd = cnp.PyArray_NDIM(A), i
        if (nd < 2 or nd > 32 or cnp.PyArray_TYPE(A) != cnp.NPY_FLOAT32 or not cnp.PyArray_ISALIGNED(A)
                or not cnp.PyArray_ISNOTSWAPPED(A)):
            return self.fallback(a, *rest)
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(A)
        cdef cnp.npy_intp *st = cnp.PyArray_STRIDES(A)
        cdef cnp.npy_intp K = self.K, N = self.N, rows, lda
        cdef int trans = 0
        if dims[nd - 1] != K or K == 0 or N == 0 or cnp.PyArray_SIZE(A) == 0:
            return self.fallback(a, *rest)
        if cnp.PyArray_IS_C_CONTIGUOUS(A):
            rows = cnp.PyArray_SIZE(A) // K
            lda = K
        elif nd == 2 and st[1] == 4 and (dims[0] == 1 or (st[0] % 4 == 0 and st[0] >= 4 * K)):
            rows = dims[0]                                 # rows of unit stride, one row stride
            lda = K if dims[0] == 1 else st[0] // 4
        elif nd == 2 and (dims[0] == 1 or st[0] == 4) and st[1] % 4 == 0 and st[1] >= 4 * dims[0]:
            rows = dims[0]                                 # columns of unit stride (e.g. a (1, K) column view):
            lda = st[1] // 4                               # A^T stored K x rows
            trans = 1
        else:
            return self.fallback(a, *rest)
        cdef cnp.npy_intp od[32]
        for i in range(nd - 1):
            od[i] = dims[i]
        od[nd - 1] = N
        cdef cnp.ndarray Y = <cnp.ndarray>cnp.PyArray_EMPTY(nd, od, cnp.NPY_FLOAT32, 0)
        cdef const float *pa = <const float *>cnp.PyArray_DATA(A)
        cdef const float *pw = <const float *>cnp.PyArray_DATA(self.w)
        cdef float *py = <float *>cnp.PyArray_DATA(Y)
        cdef const float *pb = NULL
        if self.bias is not None:
            pb = <const float *>cnp.PyArray_DATA(<cnp.ndarray>self.bias)
        cdef eng_status_t s
        cdef eng_gemm_args_t g
        if rows >= PREPACK_MIN_ROWS and N > 1:
            if not self._packed_fits():  # first use, or the ISA level changed
                self._pack()
            _fill_small(&g, pa, lda, pw, N, py, N, rows, N, K, 0.0, pb, self.act, self.p0, self.p1, trans)
            with nogil:
                s = eng_gemm_prepacked_f32(&g, &self.pb)
        else:
            with nogil:
                s = _gemm_small(pa, lda, pw, N, py, N, rows, N, K, 0.0, pb, self.act, self.p0, self.p1, trans)
        _raise(s, "MatMul")
        return (Y,)

    def prepack(self):
        """Packs w now, for the active ISA level (the Session does this when it is built, if the model's shapes say
        the products have at least MATMUL_PREPACK_MIN_ROWS rows). Without it the first such product packs."""
        if self.K > 0 and self.N > 1:
            self._pack()

    @property
    def is_packed(self):
        """Whether the packed copy exists and fits the active ISA level's tile."""
        return self._packed_fits()

    cdef bint _packed_fits(self):
        return (self.packed is not None and self.pb.nr == eng_active.gemm_f32.nr
                and self.pb.kc == min(eng_active.gemm_f32.kc, <size_t>self.K))

    cdef _pack(self):
        cdef size_t need = eng_gemm_packed_b_floats(&eng_active, self.K, self.N)
        if need == <size_t>-1:
            raise OverflowError(f"MatMul: a ({self.K}, {self.N}) weight is too large to pack")
        cdef cnp.ndarray buf = np.empty(need, np.float32)
        cdef eng_gemm_packed_b_t pb
        cdef eng_status_t s = eng_gemm_pack_b_f32(&eng_active, self.K, self.N, <const float *>cnp.PyArray_DATA(self.w),
                                                  self.N, 0, <float *>cnp.PyArray_DATA(buf), need, &pb)
        _raise(s, "MatMul: packing the weight")
        self.packed = buf
        self.pb = pb


# ------------------------------------------------------------------------------------------ ReduceMean
cdef class MeanStep:
    """`MeanStep(k, keepdims, max_size, fallback)`: ReduceMean of a C-contiguous float32 tensor of rank >= k over
    its last `k` axes, for tensors of 1..max_size elements: `step(x, *rest) -> (mean,)`. Each mean is summed in
    double precision, rounded to float32 and multiplied by float32(1 / count) (numpy's float32 pairwise sum then
    the same multiply: results agree to float32 rounding, this one being the more accurate). Other inputs go to
    `fallback(x, *rest)`. Small audio models normalise per band with a dozen such means per call, where numpy's
    reduction machinery costs ~5 us each."""
    cdef int k
    cdef bint keepdims
    cdef cnp.npy_intp max_size
    cdef object fallback

    def __init__(self, int k, bint keepdims, cnp.npy_intp max_size, fallback):
        if k < 1:
            raise ValueError("MeanStep: k must be at least 1")
        self.k = k
        self.keepdims = keepdims
        self.max_size = max_size
        self.fallback = fallback

    def __call__(self, x, *rest):
        if not _plain_f32(x):
            return self.fallback(x, *rest)
        cdef cnp.ndarray X = <cnp.ndarray>x
        cdef int nd = cnp.PyArray_NDIM(X), i
        cdef cnp.npy_intp n = cnp.PyArray_SIZE(X), inner = 1, outer, o, j
        if nd < self.k or nd > 32 or n == 0 or n > self.max_size:
            return self.fallback(x, *rest)
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(X)
        cdef cnp.npy_intp od[32]
        cdef int ond = 0
        for i in range(nd):
            if i >= nd - self.k:
                inner *= dims[i]
                if self.keepdims:
                    od[ond] = 1
                    ond += 1
            else:
                od[ond] = dims[i]
                ond += 1
        outer = n // inner
        cdef cnp.ndarray Y = <cnp.ndarray>cnp.PyArray_EMPTY(ond, od, cnp.NPY_FLOAT32, 0)
        cdef const float *px = <const float *>cnp.PyArray_DATA(X)
        cdef float *py = <float *>cnp.PyArray_DATA(Y)
        cdef float scale = <float>(1.0 / <double>inner)
        cdef double acc
        for o in range(outer):
            acc = 0.0
            for j in range(inner):
                acc += px[o * inner + j]
            py[o] = (<float>acc) * scale
        return (Y,)
