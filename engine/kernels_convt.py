"""2-D transposed convolution (ONNX ConvTranspose) and its col2im on engine's C driver (csrc/kernels/convt), float32
NCHW, in the style of `engine.kernels`: plain functions on numpy arrays that check shapes and parameters (TypeError /
ValueError naming what is wrong) and write into `out` when given.

ConvTranspose is Y[n] = col2im(Wt @ X[n]): the GEMM (engine's threaded GEMM on the active ISA's micro-kernels) maps
the C input channels of every input position to the (M*kh*kw) kernel taps, and col2im scatter-adds each tap into
the output position it lands on, on top of the bias. The C driver does this a block of input rows at a time, so the
column matrix stays in cache between the two steps.

- `convt_weights(w, group)`: ONNX's W (C, M/group, kh, kw) rearranged once for the GEMM (do it at load).
- `convt_geometry(...)`: output size and begin pads per ONNX (pads, output_padding, output_shape, auto_pad).
- `conv_transpose2d(x, w, ...)`: the whole op.
- `col2im(col, ...)`: the scatter-add alone.
"""
from __future__ import annotations

import numpy as np

from engine._C import _kernels as _k
from engine.kernels import _f32, _out, _overlaps, _pair

__all__ = ["convt_weights", "convt_geometry", "conv_transpose2d", "col2im"]

_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def convt_weights(w: np.ndarray, group: int = 1) -> np.ndarray:
    """W (C, M/group, kh, kw) -> the GEMM operand (group, M/group*kh*kw, C/group), C-contiguous float32: matrix g,
    row (mo*kh + a)*kw + b, column ci holds W[g*C/group + ci, mo, a, b]."""
    w = _f32(w, "w", "convt_weights")
    if w.ndim != 4:
        raise ValueError(f"convt_weights: w must be 4-D (C, M/group, kh, kw), got shape {w.shape}")
    group = int(group)
    if group < 1 or w.shape[0] % group:
        raise ValueError(f"convt_weights: w has {w.shape[0]} input channels, not a multiple of group {group}")
    c, mg, kh, kw = w.shape
    return np.ascontiguousarray(w.reshape(group, c // group, mg * kh * kw).transpose(0, 2, 1))


def convt_geometry(in_hw, kernel, strides=1, pads=None, dilations=1, output_padding=0, output_shape=None,
                   auto_pad: str = "NOTSET"):
    """((oh, ow), (pad_top, pad_left)) of an ONNX ConvTranspose on an input of spatial size in_hw.

    The natural size is s (in - 1) + output_padding + d (k - 1) + 1. Explicit pads (auto_pad NOTSET) are cut from
    it (an output_shape given with them sets the size, the pads stay); an output_shape (or SAME_UPPER / SAME_LOWER:
    in * s) sets the size and the total padding natural - size is split with the odd one at the end for
    SAME_UPPER, at the start otherwise (floor division, as onnx.reference; a negative total moves the output
    before the first tap). VALID or nothing: no padding. These are engine.ops.nn's rules (the numpy path)."""
    fn = "conv_transpose2d"
    kh, kw = _pair(kernel, "kernel", fn, 1)
    s = _pair(strides, "strides", fn, 1)
    d = _pair(dilations, "dilations", fn, 1)
    op = _pair(output_padding, "output_padding", fn, 0)
    if auto_pad not in _AUTO_PADS:
        raise ValueError(f"{fn}: auto_pad {auto_pad!r} is not one of {', '.join(_AUTO_PADS)}")
    in_hw = tuple(int(v) for v in in_hw)
    k = (kh, kw)
    natural = [s[i] * (in_hw[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 for i in range(2)]
    oshape = None
    if output_shape is not None:
        oshape = tuple(int(v) for v in output_shape)
        if len(oshape) == 4:
            oshape = oshape[2:]
        if len(oshape) != 2:
            raise ValueError(f"{fn}: output_shape {list(output_shape)} does not have 2 spatial dims")
    if pads is not None and auto_pad == "NOTSET":
        p = tuple(int(v) for v in pads)
        if len(p) != 4:
            raise ValueError(f"{fn}: pads must be (top, left, bottom, right), got {list(pads)}")
        if any(v < 0 for v in p):
            raise ValueError(f"{fn}: pads must be >= 0, got {list(p)}")
        pb = p[:2]
        out = oshape if oshape is not None else tuple(natural[i] - p[i] - p[i + 2] for i in range(2))
    elif oshape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = oshape if oshape is not None else tuple(in_hw[i] * s[i] for i in range(2))
        total = [natural[i] - out[i] for i in range(2)]
        pb = tuple(t // 2 for t in total) if auto_pad == "SAME_UPPER" else tuple(t - t // 2 for t in total)
    else:
        pb = (0, 0)
        out = tuple(natural)
    if any(o < 0 for o in out):
        raise ValueError(f"{fn}: the output shape {list(out)} would be negative")
    return tuple(out), tuple(pb)


def conv_transpose2d(x: np.ndarray, w: np.ndarray | None, bias=None, strides=1, pads=None, dilations=1,
                     output_padding=0, group: int = 1, output_shape=None, auto_pad: str = "NOTSET",
                     packed: np.ndarray | None = None, out=None) -> np.ndarray:
    """ONNX ConvTranspose on NCHW float32: x (N, C, H, W), w (C, M/group, kh, kw), bias None or (M,).

    Attributes as in ONNX (see `convt_geometry`). `packed` (from `convt_weights(w, group)`, made once) saves
    rearranging w on every call; w still gives the shapes. Each output is bias + the sum over the taps landing on it
    of w * x, the products summed by the GEMM in float32 (error ~ (C/group + kh kw) eps sum |w x|)."""
    fn = "conv_transpose2d"
    x = _f32(x, "x", fn)
    if x.ndim != 4:
        raise ValueError(f"{fn}: x must be 4-D (N, C, H, W), got shape {x.shape}")
    if w is None:
        raise TypeError(f"{fn}: w is required (its shape gives M/group and the kernel)")
    if not isinstance(w, np.ndarray) or w.ndim != 4:
        raise ValueError(f"{fn}: w must be a 4-D array (C, M/group, kh, kw), got {getattr(w, 'shape', w)!r}")
    group = int(group)
    n, c, h, wd = x.shape
    if w.shape[0] != c:
        raise ValueError(f"{fn}: x has {c} channels, w {w.shape} expects {w.shape[0]}")
    if group < 1 or c % group:
        raise ValueError(f"{fn}: {c} input channels are not a multiple of group {group}")
    _, mg, kh, kw = w.shape
    m = mg * group
    if packed is None:
        packed = convt_weights(w, group)
    elif (not isinstance(packed, np.ndarray) or packed.dtype != np.float32 or not packed.flags.c_contiguous
          or packed.shape != (group, mg * kh * kw, c // group)):
        raise ValueError(f"{fn}: packed must be convt_weights(w, group) of shape {(group, mg * kh * kw, c // group)}")
    if bias is not None:
        bias = _f32(bias, "bias", fn)
        if bias.shape != (m,):
            raise ValueError(f"{fn}: bias has shape {bias.shape}, expected ({m},)")
    (oh, ow), (pt, pl) = convt_geometry((h, wd), (kh, kw), strides, pads, dilations, output_padding, output_shape,
                                        auto_pad)
    s = _pair(strides, "strides", fn, 1)
    d = _pair(dilations, "dilations", fn, 1)
    y = _out(out, (n, m, oh, ow), fn)
    if _overlaps(y, x, packed, bias):
        y[...] = conv_transpose2d(x, w, bias, strides, pads, dilations, output_padding, group, output_shape,
                                  auto_pad, packed)
        return y
    geo = (h, wd, oh, ow, kh, kw, s[0], s[1], d[0], d[1], pt, pl)
    _k.convt2d_f32(x, packed, bias, y, n, c, m, group, geo)
    return y


def col2im(col: np.ndarray, input_hw, output_hw, kernel, strides=1, pads=(0, 0), dilations=1, bias=None,
           out=None) -> np.ndarray:
    """The scatter-add of a transposed convolution: col (C*kh*kw, h*w) -> y (C, oh, ow) with
    y[c, i*sh + a*dh - pt, j*sw + b*dw - pl] += col[(c*kh + a)*kw + b, i*w + j] over every tap landing inside y,
    on top of bias[c] (0 without a bias). pads: the begin pads (top, left), which may be negative. Each output
    receives its taps in the order (a, b)."""
    fn = "col2im"
    col = _f32(col, "col", fn)
    kh, kw = _pair(kernel, "kernel", fn, 1)
    sh, sw = _pair(strides, "strides", fn, 1)
    dh, dw = _pair(dilations, "dilations", fn, 1)
    h, wd = _pair(input_hw, "input_hw", fn, 0)
    oh, ow = _pair(output_hw, "output_hw", fn, 0)
    try:
        pt, pl = (int(v) for v in pads)
    except (TypeError, ValueError):
        raise ValueError(f"{fn}: pads must be the begin pads (top, left), got {pads!r}") from None
    if col.ndim != 2 or col.shape[0] % (kh * kw) or col.shape[1] != h * wd:
        raise ValueError(f"{fn}: col must be (C*{kh}*{kw}, {h}*{wd}), got shape {col.shape}")
    c = col.shape[0] // (kh * kw)
    if bias is not None:
        bias = _f32(bias, "bias", fn)
        if bias.shape != (c,):
            raise ValueError(f"{fn}: bias has shape {bias.shape}, expected ({c},)")
    y = _out(out, (c, oh, ow), fn)
    if _overlaps(y, col, bias):
        y[...] = col2im(col, input_hw, output_hw, kernel, strides, pads, dilations, bias)
        return y
    _k.col2im_f32(col, bias, y, c, (h, wd, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl))
    return y
