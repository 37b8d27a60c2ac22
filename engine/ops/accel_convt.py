"""ConvTranspose on engine's C driver (engine.kernels_convt, csrc/kernels/convt): wraps the numpy builder of
engine.ops.nn (`_registry.accelerate`) so that 2-D float32 transposed convolutions run as
Y[n] = col2im(Wt @ X[n]) in C -- the GEMM on engine's threaded micro-kernels, the scatter-add with the bias fused,
a block of input rows at a time -- for every group count (1, grouped, depthwise), stride, dilation, pads,
output_padding, output_shape and auto_pad. A constant W is rearranged for the GEMM once, when the session is built
(a W computed at run time is rearranged on each call, as the numpy path does).

Everything else (other dtypes, 1-D/3-D, attribute values the numpy builder rejects, inputs that do not fit W) goes to the numpy implementation unchanged, which also keeps the op's error messages in one
place. Output sizes and pads follow the same rules as the numpy path (`engine.kernels_convt.convt_geometry`).
"""
from __future__ import annotations

import numpy as np

from engine._C import _kernels as _k
from engine.kernels_convt import convt_geometry, convt_weights
from engine.ops._registry import NodeCtx, accelerate

F32 = np.dtype(np.float32)
_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")
_convt2d = _k.convt2d_f32  # looked up per call (tests wrap it to check that the C path ran)


def _attr_ints(ctx: NodeCtx, name: str, sizes: tuple):
    """The attribute as a tuple of ints if it is absent (None) or has one of `sizes` entries, else False."""
    v = ctx.attr(name, None)
    if v is None:
        return None
    t = tuple(int(i) for i in v)
    return t if len(t) in sizes else False


def _fast(ctx: NodeCtx, base):
    w = ctx.const(1)
    if w is not None and (w.dtype != F32 or w.ndim != 4):
        return None
    if w is None and ctx.in_dtype(1) not in (None, F32):
        return None
    auto_pad = ctx.attr_str("auto_pad", "NOTSET") or "NOTSET"
    group = int(ctx.attr("group", 1))
    kshape = _attr_ints(ctx, "kernel_shape", (2,))
    strides = _attr_ints(ctx, "strides", (2,))
    dil = _attr_ints(ctx, "dilations", (2,))
    opad = _attr_ints(ctx, "output_padding", (2,))
    pads = _attr_ints(ctx, "pads", (4,))
    oshape = _attr_ints(ctx, "output_shape", (2, 4))
    if False in (kshape, strides, dil, opad, pads, oshape) or auto_pad not in _AUTO_PADS or group < 1:
        return None
    s = strides or (1, 1)
    d = dil or (1, 1)
    if min(s) < 1 or min(d) < 1 or (pads is not None and min(pads) < 0):
        return None
    wt_const = None
    if w is not None:  # rearranged for the GEMM once, here
        if w.shape[0] % group or (kshape is not None and kshape != w.shape[2:]) or min(w.shape[2:]) < 1:
            return None
        wt_const = convt_weights(np.ascontiguousarray(w), group)
    b = ctx.const(2)
    if b is not None and b.dtype != F32:
        return None
    bias_const = None if b is None else np.ascontiguousarray(b.reshape(-1))
    runtime_bias = ctx.has_input(2) and b is None
    base_run = base(ctx)
    geo_cache: dict = {}

    def geometry(hw, k):
        key = hw + k
        g = geo_cache.get(key)
        if g is None:
            (oh, ow), (pt, pl) = convt_geometry(hw, k, s, pads, d, opad or 0, oshape, auto_pad)
            g = geo_cache[key] = ((oh, ow), (hw[0], hw[1], oh, ow, k[0], k[1], s[0], s[1], d[0], d[1], pt, pl))
        return g

    def run(x, w_in=None, b_in=None):
        if x.dtype != F32 or x.ndim != 4:
            return base_run(x, w_in, b_in)
        if wt_const is not None:
            wt, (c, mg, kh, kw) = wt_const, w.shape
        else:  # W computed at run time: rearranged on every call, as the numpy path does
            if (w_in is None or w_in.dtype != F32 or w_in.ndim != 4 or w_in.shape[0] % group or min(w_in.shape[2:]) < 1
                    or (kshape is not None and kshape != w_in.shape[2:])):
                return base_run(x, w_in, b_in)
            wt, (c, mg, kh, kw) = convt_weights(w_in, group), w_in.shape
        m = mg * group
        if x.shape[1] != c:
            return base_run(x, w_in, b_in)
        bias = bias_const
        if runtime_bias:
            if b_in is None or b_in.dtype != F32:
                return base_run(x, w_in, b_in)
            bias = np.ascontiguousarray(b_in.reshape(-1))
        if bias is not None and bias.size != m:
            return base_run(x, w_in, b_in)
        try:
            (oh, ow), geo = geometry(x.shape[2:], (kh, kw))
        except ValueError:  # a negative output size: the numpy path raises its own error
            return base_run(x, w_in, b_in)
        y = np.empty((x.shape[0], m, oh, ow), F32)
        _convt2d(np.ascontiguousarray(x), wt, bias, y, x.shape[0], c, m, group, geo)
        return (y,)
    return run


@accelerate("ConvTranspose")
def conv_transpose(ctx: NodeCtx, base):
    return _fast(ctx, base) or base(ctx)
