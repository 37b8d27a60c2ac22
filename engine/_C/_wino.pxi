# Bindings of the Winograd F(4x4, 3x3) convolution (csrc/include/eng/eng_wino.h). Included at the end of
# _kernels.pyx. Checks dtype, contiguity and exact element counts (so a bad call raises instead of crashing),
# releases the GIL and calls C; shapes are derived and validated in engine/kernels.py.

cdef extern from "eng/eng_wino.h" nogil:
    eng_status_t eng_wino_weights_f32(size_t oc, size_t ic, const float *w, float *u)
    eng_status_t eng_wino_conv_f32(size_t n, size_t ic, size_t h, size_t w, size_t oc, const size_t *pads,
                                   const float *x, const float *u, const float *bias, const float *z,
                                   const eng_act_t *act, float *y)
    size_t eng_wino_block_tiles(size_t ic, size_t oc, size_t tiles)


def wino_weights_f32(cnp.ndarray w, cnp.ndarray u, size_t oc, size_t ic):
    """u (36, oc, ic) = G g G^T of each 3x3 filter of w (oc, ic, 3, 3)."""
    cdef const float *pw = _cf(w, "w", _mul(_mul(oc, ic), 9))
    cdef float *pu = <float *>_cf(u, "u", _mul(_mul(oc, ic), 36), True)
    cdef eng_status_t s
    with nogil:
        s = eng_wino_weights_f32(oc, ic, pw, pu)
    _raise(s, "winograd_weights")
    return u


def wino_conv_f32(cnp.ndarray x, cnp.ndarray u, bias, cnp.ndarray y, size_t n, size_t ic, size_t h, size_t w,
                  size_t oc, tuple pads, int kind=0, float p0=0.0, float p1=0.0, z=None):
    """y (n, oc, oh, ow) = act(conv3x3(x (n, ic, h, w)) + bias + z) from the transformed weights u (36, oc, ic); z: None
    or a residual of y's size that does not overlap y."""
    cdef size_t pd[4]
    if len(pads) != 4:
        raise ValueError("pads must be (top, left, bottom, right)")
    for i in range(4):
        if pads[i] < 0:
            raise ValueError(f"pads must be >= 0, got {pads}")
        pd[i] = pads[i]
    if kind < 0 or kind >= ACT_COUNT:
        raise ValueError(f"unknown activation id {kind}")
    if h + pd[0] + pd[2] < 3 or w + pd[1] + pd[3] < 3:
        raise ValueError("conv2d_winograd: the padded input is smaller than the 3x3 kernel")
    cdef size_t oh = h + pd[0] + pd[2] - 2, ow = w + pd[1] + pd[3] - 2
    cdef const float *px = _cf(x, "x", _mul(n, _mul(ic, _mul(h, w))))
    cdef const float *pu = _cf(u, "u", _mul(_mul(oc, ic), 36))
    cdef const float *pb = NULL
    if bias is not None:
        pb = _cf(bias, "bias", oc)
    cdef float *py = <float *>_cf(y, "out", _mul(n, _mul(oc, _mul(oh, ow))), True)
    cdef const float *pz = NULL
    if z is not None:
        pz = _cf(z, "residual", _mul(n, _mul(oc, _mul(oh, ow))))
        if np.may_share_memory(z, y):
            raise ValueError("conv2d_winograd: the residual overlaps the output")
    cdef eng_act_t a
    a.kind = kind
    a.p0 = p0
    a.p1 = p1
    cdef eng_status_t s
    with nogil:
        s = eng_wino_conv_f32(n, ic, h, w, oc, pd, px, pu, pb, pz, &a, py)
    _raise(s, "conv2d_winograd")
    return y


def wino_block_tiles(size_t ic, size_t oc, size_t tiles):
    """Tiles per block the Winograd driver uses for these channel counts (ENGINE_WINO_TB overrides)."""
    return eng_wino_block_tiles(ic, oc, tiles)
