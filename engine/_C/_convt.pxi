# Bindings of the transposed-convolution driver (csrc/include/eng/eng_convt.h). Included at the end of
# _kernels.pyx (after _ops.pxi, whose _cf / _mul helpers it uses). Each function checks dtypes, contiguity and the
# element counts the C driver will touch, releases the GIL and calls C. Shape logic lives in engine/kernels_convt.py.

cdef extern from "eng/eng_convt.h" nogil:
    ctypedef struct eng_convt2d_t:
        size_t h, w, oh, ow
        size_t kh, kw, sh, sw, dh, dw
        ptrdiff_t pt, pl
    eng_status_t eng_col2im_run_f32(const eng_convt2d_t *g, size_t c, const float *col, const float *bias,
                                    float *y)
    eng_status_t eng_convt2d_run_f32(const eng_convt2d_t *g, size_t n, size_t c, size_t m, size_t groups,
                                     const float *x, const float *wt, const float *bias, float *y)


cdef _fill_convt(tuple g, eng_convt2d_t *t):
    if len(g) != 12:
        raise ValueError("convt geometry must be (h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl)")
    for v in g[:10]:
        if v < 0:
            raise ValueError(f"convt geometry has a negative size: {g}")
    for v in g[4:10]:
        if v < 1:
            raise ValueError(f"convt geometry: kernel, strides and dilations must be >= 1: {g}")
    t.h, t.w, t.oh, t.ow, t.kh, t.kw, t.sh, t.sw, t.dh, t.dw, t.pt, t.pl = g


def col2im_f32(cnp.ndarray col, bias, cnp.ndarray y, size_t c, tuple geometry):
    """y (c x oh*ow) = bias + scatter-add of col ((c*kh*kw) x (h*w)); bias: None or c floats."""
    cdef eng_convt2d_t g
    _fill_convt(geometry, &g)
    cdef const float *pc = _cf(col, "col", _mul(_mul(c, _mul(g.kh, g.kw)), _mul(g.h, g.w)))
    cdef const float *pb = NULL
    if bias is not None:
        pb = _cf(bias, "bias", c)
    cdef float *py = <float *>_cf(y, "out", _mul(c, _mul(g.oh, g.ow)), True)
    cdef eng_status_t s
    with nogil:
        s = eng_col2im_run_f32(&g, c, pc, pb, py)
    _raise(s, "col2im")
    return y


def convt2d_f32(cnp.ndarray x, cnp.ndarray wt, bias, cnp.ndarray y, size_t n, size_t c, size_t m, size_t groups,
                tuple geometry):
    """Transposed convolution: x (n x c x h*w), wt (groups x (m/groups*kh*kw) x (c/groups)), bias None or m
    floats, y (n x m x oh*ow)."""
    cdef eng_convt2d_t g
    _fill_convt(geometry, &g)
    if groups == 0 or c % groups or m % groups:
        raise ValueError(f"convt2d: {c} input and {m} output channels are not multiples of group {groups}")
    cdef const float *px = _cf(x, "x", _mul(n, _mul(c, _mul(g.h, g.w))))
    cdef const float *pw = _cf(wt, "wt", _mul(_mul(m, _mul(g.kh, g.kw)), c // groups))
    cdef const float *pb = NULL
    if bias is not None:
        pb = _cf(bias, "bias", m)
    cdef float *py = <float *>_cf(y, "out", _mul(n, _mul(m, _mul(g.oh, g.ow))), True)
    cdef eng_status_t s
    with nogil:
        s = eng_convt2d_run_f32(&g, n, c, m, groups, px, pw, pb, py)
    _raise(s, "conv_transpose2d")
    return y
