# Bindings of the implicit-GEMM convolution (csrc/include/eng/eng_conv.h). Included at the end of _kernels.pyx.
# The geometry is checked in C (eng_conv2d_packed_size returns 0 for an invalid one); here the array sizes are
# checked against it before the GIL is released, so a bad call raises instead of reading out of bounds.

cdef extern from "eng/eng_conv.h" nogil:
    ctypedef struct eng_conv2d_t:
        size_t n, c, h, w, m, group, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow
    size_t eng_conv2d_packed_size(const eng_kernels_t *kt, const eng_conv2d_t *g)
    eng_status_t eng_conv2d_pack_f32(const eng_kernels_t *kt, const eng_conv2d_t *g, const float *w, float *wp)
    eng_status_t eng_conv2d_run_f32(const eng_kernels_t *kt, const eng_conv2d_t *g, const float *x, const float *wp,
                                    const float *bias, const float *z, const eng_act_t *act, float *y, int parallel)


def conv_tile():
    """(mr, nr): the register tile of the active conv micro-kernel; packed weights are tied to mr."""
    return (eng_active.conv_f32.mr, eng_active.conv_f32.nr)


cdef _fill_conv(tuple g, eng_conv2d_t *c):
    if len(g) != 18:
        raise ValueError("conv geometry must be (n, c, h, w, m, group, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, oh, ow)")
    for v in g:
        if v < 0:
            raise ValueError(f"conv geometry has a negative entry: {g}")
    (c.n, c.c, c.h, c.w, c.m, c.group, c.kh, c.kw, c.sh, c.sw, c.dh, c.dw, c.pt, c.pl, c.pb, c.pr, c.oh,
     c.ow) = g


def conv2d_pack_f32(tuple g, cnp.ndarray w):
    """Packs w (M x C/group x kh x kw float32, C-contiguous) for the active micro-kernel; returns (wp, mr)."""
    cdef eng_conv2d_t c
    _fill_conv(g, &c)
    cdef size_t need = eng_conv2d_packed_size(&eng_active, &c)
    if need == 0:
        raise ValueError(f"invalid conv geometry {g}")
    cdef const float *pw = _cf(w, "w", _mul(_mul(c.m, c.c // c.group), _mul(c.kh, c.kw)))
    wp = np.empty(need, np.float32)
    cdef float *pp = <float *>cnp.PyArray_DATA(wp)
    cdef eng_status_t s
    with nogil:
        s = eng_conv2d_pack_f32(&eng_active, &c, pw, pp)
    _raise(s, "conv2d_pack")
    return wp, eng_active.conv_f32.mr


def conv2d_f32(tuple g, cnp.ndarray x, cnp.ndarray wp, unsigned mr, bias, z, cnp.ndarray y, int kind, float p0=0.0,
               float p1=0.0):
    """y = act(conv(x, w) + bias + z) with weights packed by conv2d_pack_f32 (for tile height mr)."""
    cdef eng_conv2d_t c
    _fill_conv(g, &c)
    if mr != eng_active.conv_f32.mr:
        raise ValueError(f"conv weights were packed for a tile of {mr} rows, the active kernel uses "
                         f"{eng_active.conv_f32.mr}: repack them")
    if kind < 0 or kind >= ACT_COUNT:
        raise ValueError(f"unknown activation id {kind}")
    cdef size_t need = eng_conv2d_packed_size(&eng_active, &c)
    if need == 0:
        raise ValueError(f"invalid conv geometry {g}")
    cdef const float *px = _cf(x, "x", _mul(_mul(c.n, c.c), _mul(c.h, c.w)))
    cdef const float *pw = _cf(wp, "packed weights", need)
    cdef size_t ny = _mul(_mul(c.n, c.m), _mul(c.oh, c.ow))
    cdef float *py = <float *>_cf(y, "out", ny, True)
    cdef const float *pb = NULL
    cdef const float *pz = NULL
    if bias is not None:
        pb = _cf(bias, "bias", c.m)
    if z is not None:
        pz = _cf(z, "residual", ny)
        if np.may_share_memory(z, y):
            raise ValueError("conv2d: the residual must not overlap the output")
    if np.may_share_memory(x, y):
        raise ValueError("conv2d: the input must not overlap the output")
    cdef eng_act_t a
    a.kind = kind
    a.p0 = p0
    a.p1 = p1
    cdef eng_status_t s
    with nogil:
        s = eng_conv2d_run_f32(&eng_active, &c, px, pw, pb, pz, &a, py, 1)
    _raise(s, "conv2d")
    return y
