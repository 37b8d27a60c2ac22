# Bindings of the op kernels (csrc/include/eng/eng_ops.h). Included at the end of _kernels.pyx.
# Each function checks dtype, contiguity and that every element the C driver will touch lies inside the arrays
# (so a bad call raises instead of crashing), releases the GIL and calls C. Shape logic lives in engine/kernels.py.

cdef extern from "eng/eng_ops.h" nogil:
    ctypedef struct eng_win2d_t:
        size_t h, w, oh, ow
        size_t kh, kw, sh, sw, dh, dw
        size_t pt, pl, pb, pr
    eng_status_t eng_act_run_f32(size_t n, const float *x, float *y, const eng_act_t *act)
    eng_status_t eng_binary_run_f32(int op, const size_t *d, const float *a, const size_t *as_, const float *b,
                                    const size_t *bs, float *y)
    eng_status_t eng_softmax_run_f32(size_t rows, size_t n, const float *x, float *y, int log)
    eng_status_t eng_norm_run_f32(size_t rows, size_t n, const float *x, const float *scale, const float *bias,
                                  float eps, int rms, float *y, float *mean, float *inv_std)
    eng_status_t eng_pool2d_run_f32(int kind, const eng_win2d_t *g, size_t planes, const float *x, float *y)
    eng_status_t eng_global_pool_run_f32(int op, size_t planes, size_t hw, const float *x, float *y)
    eng_status_t eng_im2col_run_f32(const eng_win2d_t *g, size_t c, const float *x, float *col)
    eng_status_t eng_dwconv2d_run_f32(const eng_win2d_t *g, size_t planes, size_t c, const float *x, const float *w,
                                      const float *bias, const eng_act_t *act, float *y)

cdef extern from "eng/eng_kernels.h" nogil:
    enum: ENG_ACT_COUNT

ACT_COUNT = ENG_ACT_COUNT  # activation ids are 0 .. ACT_COUNT - 1 (eng_act_kind_t)


cdef const float *_cf(cnp.ndarray x, str name, size_t need, bint out=False) except? NULL:
    """Data pointer of a C-contiguous float32 array of exactly `need` elements (writable when out)."""
    if cnp.PyArray_TYPE(x) != cnp.NPY_FLOAT32:
        raise TypeError(f"{name} must be float32, got {x.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(x):
        raise ValueError(f"{name} must be C-contiguous")
    if <size_t>cnp.PyArray_SIZE(x) != need:
        raise ValueError(f"{name} has {cnp.PyArray_SIZE(x)} elements, expected {need}")
    if out and not x.flags.writeable:
        raise ValueError(f"{name} (an output) is read-only")
    return <const float *>cnp.PyArray_DATA(x)


cdef _fill_win(tuple g, eng_win2d_t *w):
    if len(g) != 14:
        raise ValueError("window geometry must be (h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr)")
    for v in g:
        if v < 0:
            raise ValueError(f"window geometry has a negative entry: {g}")
    w.h, w.w, w.oh, w.ow, w.kh, w.kw, w.sh, w.sw, w.dh, w.dw, w.pt, w.pl, w.pb, w.pr = g


cdef size_t _mul(size_t a, size_t b) except? 0:
    if a != 0 and b > (<size_t>-1) // a:
        raise OverflowError("size overflow")
    return a * b


def act_f32(cnp.ndarray x, cnp.ndarray y, int kind, float p0=0.0, float p1=0.0):
    """y = act(x) elementwise; x and y have the same size (y may be x)."""
    if kind < 0 or kind >= ACT_COUNT:
        raise ValueError(f"unknown activation id {kind}")
    cdef size_t n = <size_t>cnp.PyArray_SIZE(x)
    cdef const float *px = _cf(x, "x", n)
    cdef float *py = <float *>_cf(y, "out", n, True)
    cdef eng_act_t a
    a.kind = kind
    a.p0 = p0
    a.p1 = p1
    cdef eng_status_t s
    with nogil:
        s = eng_act_run_f32(n, px, py, &a)
    _raise(s, "activation")
    return y


def binary_f32(int op, tuple d, cnp.ndarray a, tuple a_strides, cnp.ndarray b, tuple b_strides, cnp.ndarray y):
    """y (d0 x d1 x d2, contiguous) = a op b with per-operand element strides (0 = broadcast)."""
    cdef size_t dd[3]
    cdef size_t sa[3]
    cdef size_t sb[3]
    cdef size_t reach_a = 0, reach_b = 0, i
    if len(d) != 3 or len(a_strides) != 3 or len(b_strides) != 3:
        raise ValueError("binary_f32: d and strides must have 3 entries")
    for i in range(3):
        if d[i] < 0 or a_strides[i] < 0 or b_strides[i] < 0:
            raise ValueError("binary_f32: negative size or stride")
        dd[i] = d[i]
        sa[i] = a_strides[i]
        sb[i] = b_strides[i]
    if sa[2] > 1 or sb[2] > 1:
        raise ValueError("binary_f32: the innermost stride must be 0 or 1")
    cdef size_t total = _mul(_mul(dd[0], dd[1]), dd[2])
    if total:
        for i in range(3):  # the largest element index each operand is read at, + 1
            reach_a += _mul(dd[i] - 1, sa[i])
            reach_b += _mul(dd[i] - 1, sb[i])
        reach_a += 1
        reach_b += 1
    if <size_t>cnp.PyArray_SIZE(a) < reach_a or <size_t>cnp.PyArray_SIZE(b) < reach_b:
        raise ValueError("binary_f32: strides reach past the end of an operand")
    cdef const float *pa = _cf(a, "a", <size_t>cnp.PyArray_SIZE(a))
    cdef const float *pb = _cf(b, "b", <size_t>cnp.PyArray_SIZE(b))
    cdef float *py = <float *>_cf(y, "out", total, True)
    cdef eng_status_t s
    with nogil:
        s = eng_binary_run_f32(op, dd, pa, sa, pb, sb, py)
    _raise(s, "binary")
    return y


def softmax_f32(cnp.ndarray x, cnp.ndarray y, size_t rows, size_t n, bint log=False):
    cdef size_t total = _mul(rows, n)
    cdef const float *px = _cf(x, "x", total)
    cdef float *py = <float *>_cf(y, "out", total, True)
    cdef eng_status_t s
    with nogil:
        s = eng_softmax_run_f32(rows, n, px, py, log)
    _raise(s, "softmax")
    return y


def norm_f32(cnp.ndarray x, cnp.ndarray y, size_t rows, size_t n, scale, bias, float eps, bint rms,
             mean=None, inv_std=None):
    """Layer (rms False) or RMS normalization of rows x n; scale/bias: None or n floats; mean/inv_std: None or
    `rows` floats (outputs)."""
    cdef size_t total = _mul(rows, n)
    cdef const float *px = _cf(x, "x", total)
    cdef float *py = <float *>_cf(y, "out", total, True)
    cdef const float *ps = NULL
    cdef const float *pb = NULL
    cdef float *pm = NULL
    cdef float *pi = NULL
    if scale is not None:
        ps = _cf(scale, "scale", n)
    if bias is not None:
        pb = _cf(bias, "bias", n)
    if mean is not None:
        pm = <float *>_cf(mean, "mean", rows, True)
    if inv_std is not None:
        pi = <float *>_cf(inv_std, "inv_std", rows, True)
    cdef eng_status_t s
    with nogil:
        s = eng_norm_run_f32(rows, n, px, ps, pb, eps, rms, py, pm, pi)
    _raise(s, "layer_norm")
    return y


def pool2d_f32(int kind, cnp.ndarray x, cnp.ndarray y, size_t planes, tuple geometry):
    """kind 0 max, 1 avg, 2 avg counting the padding; geometry: see _fill_win."""
    cdef eng_win2d_t g
    _fill_win(geometry, &g)
    cdef const float *px = _cf(x, "x", _mul(planes, _mul(g.h, g.w)))
    cdef float *py = <float *>_cf(y, "out", _mul(planes, _mul(g.oh, g.ow)), True)
    cdef eng_status_t s
    with nogil:
        s = eng_pool2d_run_f32(kind, &g, planes, px, py)
    _raise(s, "pool2d")
    return y


def global_pool_f32(int op, cnp.ndarray x, cnp.ndarray y, size_t planes, size_t hw):
    """op 0: mean, 1: max of each plane."""
    cdef const float *px = _cf(x, "x", _mul(planes, hw))
    cdef float *py = <float *>_cf(y, "out", planes, True)
    cdef eng_status_t s
    with nogil:
        s = eng_global_pool_run_f32(op, planes, hw, px, py)
    _raise(s, "global_pool")
    return y


def im2col_f32(cnp.ndarray x, cnp.ndarray col, size_t c, tuple geometry):
    cdef eng_win2d_t g
    _fill_win(geometry, &g)
    cdef const float *px = _cf(x, "x", _mul(c, _mul(g.h, g.w)))
    cdef float *pc = <float *>_cf(col, "out", _mul(_mul(c, _mul(g.kh, g.kw)), _mul(g.oh, g.ow)), True)
    cdef eng_status_t s
    with nogil:
        s = eng_im2col_run_f32(&g, c, px, pc)
    _raise(s, "im2col")
    return col


def dwconv2d_f32(cnp.ndarray x, cnp.ndarray w, bias, cnp.ndarray y, size_t planes, size_t c, tuple geometry,
                 int kind=0, float p0=0.0, float p1=0.0):
    cdef eng_win2d_t g
    _fill_win(geometry, &g)
    if kind < 0 or kind >= ACT_COUNT:
        raise ValueError(f"unknown activation id {kind}")
    if c == 0 or planes % c:
        raise ValueError(f"dwconv2d: {planes} planes are not a whole number of batches of {c} channels")
    cdef const float *px = _cf(x, "x", _mul(planes, _mul(g.h, g.w)))
    cdef const float *pw = _cf(w, "w", _mul(c, _mul(g.kh, g.kw)))
    cdef const float *pb = NULL
    if bias is not None:
        pb = _cf(bias, "bias", c)
    cdef float *py = <float *>_cf(y, "out", _mul(planes, _mul(g.oh, g.ow)), True)
    cdef eng_act_t a
    a.kind = kind
    a.p0 = p0
    a.p1 = p1
    cdef eng_status_t s
    with nogil:
        s = eng_dwconv2d_run_f32(&g, planes, c, px, pw, pb, &a, py)
    _raise(s, "depthwise_conv2d")
    return y
