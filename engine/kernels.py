"""Op kernels as plain functions on numpy arrays: activations, broadcast binary ops, softmax, layer/RMS
normalization, 2-D pooling, im2col and depthwise convolution, all float32 on engine's C kernels (the active ISA,
multi-threaded on engine's pool when the work is large).

Every function takes float32 arrays (inputs need not be contiguous: a non-contiguous input is copied once), checks
shapes and parameters (TypeError / ValueError naming what is wrong), and writes into `out` when given (a C-contiguous
float32 array of the result's shape; it may be the input for the elementwise functions) or into a new array.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from engine._C import _kernels as _k

__all__ = [
    "ACTIVATIONS", "BINARY_OPS", "activation", "binary", "softmax", "layer_norm", "rms_norm", "pool_output_size",
    "max_pool2d", "avg_pool2d", "global_avg_pool", "global_max_pool", "im2col", "depthwise_conv2d",
    "ConvWeights", "conv2d", "winograd_weights", "conv2d_winograd",
]

# name -> (C activation id, default parameters); the parameters are ONNX's attribute defaults.
ACTIVATIONS: dict[str | None, tuple[int, tuple[float, ...]]] = {
    None: (0, ()),
    "identity": (0, ()),
    "relu": (1, ()),
    "clip": (2, (float("-inf"), float("inf"))),  # (min, max)
    "relu6": (2, (0.0, 6.0)),
    "leaky_relu": (3, (0.01,)),  # (alpha,)
    "sigmoid": (4, ()),
    "silu": (5, ()),
    "swish": (5, ()),
    "gelu": (6, ()),  # erf form
    "gelu_tanh": (7, ()),
    "hardswish": (8, ()),
    "tanh": (9, ()),
    "hardsigmoid": (10, (0.2, 0.5)),  # (alpha, beta): min(max(alpha x + beta, 0), 1)
    "elu": (11, (1.0,)),  # (alpha,)
    "softplus": (12, ()),
    "exp": (13, ()),
}

BINARY_OPS = {"add": 0, "sub": 1, "mul": 2, "div": 3, "max": 4, "min": 5}
_NUMPY_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "max": np.maximum,
                 "min": np.minimum}


def _f32(x, name: str, fn: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise TypeError(f"{fn}: {name} has dtype {x.dtype}, expected float32")
    return x if x.flags.c_contiguous else x.copy(order="C")  # (ascontiguousarray would make 0-d arrays 1-d)


def _out(out, shape: tuple[int, ...], fn: str) -> np.ndarray:
    if out is None:
        return np.empty(shape, np.float32)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{fn}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != np.float32:
        raise TypeError(f"{fn}: out has dtype {out.dtype}, expected float32")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{fn}: out has shape {tuple(out.shape)}, expected {tuple(shape)}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{fn}: out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{fn}: out is read-only")
    return out


def _overlaps(out, *inputs) -> bool:
    """True if `out` overlaps an input other than by being exactly it (same start, shape and strides): the C
    kernels may run in place but not on partially overlapping buffers, so such calls go through a temporary."""
    for x in inputs:
        if x is None or x is out or not np.may_share_memory(out, x):
            continue
        same = (out.__array_interface__["data"][0] == x.__array_interface__["data"][0] and out.shape == x.shape
                and out.strides == x.strides)
        if not same:
            return True
    return False


def _parse_activation(kind, p0=None, p1=None, fn: str = "activation") -> tuple[int, float, float]:
    """A name (or None) and optional parameters -> (C id, p0, p1) with ONNX defaults for missing parameters."""
    name = kind.lower() if isinstance(kind, str) else kind
    if name not in ACTIVATIONS:
        known = ", ".join(repr(k) for k in ACTIVATIONS if k is not None)
        raise ValueError(f"{fn}: unknown activation {kind!r}; known: None, {known}")
    cid, defaults = ACTIVATIONS[name]
    given = [p for p in (p0, p1) if p is not None]
    if p0 is None and p1 is not None:
        raise ValueError(f"{fn}: p1 given without p0")
    if len(given) > len(defaults):
        raise ValueError(f"{fn}: activation {name!r} takes {len(defaults)} parameter(s), got {len(given)}")
    params = [float(p) for p in given] + list(defaults[len(given):])
    if any(math.isnan(p) for p in params):
        raise ValueError(f"{fn}: activation {name!r} parameters must not be NaN: {params}")
    if cid == 2 and params[0] > params[1]:
        raise ValueError(f"{fn}: clip min {params[0]} is greater than max {params[1]}")
    params += [0.0] * (2 - len(params))
    return cid, params[0], params[1]


def activation(x: np.ndarray, kind, p0: float | None = None, p1: float | None = None, out=None) -> np.ndarray:
    """Elementwise activation y = kind(x).

    kind: one of ACTIVATIONS ("relu", "leaky_relu", "clip", "relu6", "sigmoid", "tanh", "silu", "gelu",
    "gelu_tanh", "hardsigmoid", "hardswish", "elu", "softplus", "exp"). p0, p1: its parameters (None -> the ONNX
    default): leaky_relu/elu alpha = p0; clip min, max = p0, p1; hardsigmoid alpha, beta = p0, p1.
    Accuracy vs float64: relu, leaky_relu, clip, hardsigmoid exact (bitwise equal across ISAs); the others within
    atol = rtol = 1e-6 except exp (rtol 1e-6, no atol: a few ulp), softplus and elu for x below about -87 (exp
    flushes to 0: the result is 0 or -alpha where the true value is a denormal away). NaN in gives NaN out.
    `out` may be x (in place).
    """
    cid, a, b = _parse_activation(kind, p0, p1)
    x = _f32(x, "x", "activation")
    y = _out(out, x.shape, "activation")
    if _overlaps(y, x):
        y[...] = activation(x, kind, p0, p1)
        return y
    _k.act_f32(x, y, cid, a, b)
    return y


def _collapse(shape: tuple[int, ...], sa: tuple[int, ...], sb: tuple[int, ...]):
    """Merges adjacent output axes with the same broadcast pattern (operand broadcast or not) and drops size-1
    axes: returns [(size, a_full, b_full)] from outer to inner."""
    dims: list[list] = []
    for n, fa, fb in zip(shape, sa, sb):
        if n == 1:
            continue
        if dims and dims[-1][1] == fa and dims[-1][2] == fb:
            dims[-1][0] *= n
        else:
            dims.append([n, fa, fb])
    return dims


def binary(a: np.ndarray, b: np.ndarray, op: str, out=None) -> np.ndarray:
    """y = a op b with numpy broadcasting; op in BINARY_OPS: add, sub, mul, div, max, min.

    max/min propagate NaN (as numpy.maximum/minimum). Results are bitwise equal to numpy's float32 result (one IEEE
    operation per element) for every ISA. Broadcast patterns run in C when, after merging adjacent axes with the
    same pattern, at most 3 axes remain with the innermost one either shared by both operands or broadcast in
    one: same shape, scalar, a row/bias broadcast over leading axes, an NCHW channel vector of shape (C, 1, 1), and
    similar. Other patterns (e.g. outer products needing 4 or more axes) fall back to numpy, with the same result.
    `out` may be a or b when that operand has the output's shape.
    """
    if op not in BINARY_OPS:
        raise ValueError(f"binary: unknown op {op!r}; known: {', '.join(BINARY_OPS)}")
    a = _f32(a, "a", "binary")
    b = _f32(b, "b", "binary")
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"binary: shapes {a.shape} and {b.shape} do not broadcast") from None
    y = _out(out, shape, "binary")
    if _overlaps(y, a, b):
        y[...] = binary(a, b, op)
        return y
    nd = len(shape)
    ash = (1,) * (nd - a.ndim) + a.shape
    bsh = (1,) * (nd - b.ndim) + b.shape
    dims = _collapse(shape, tuple(s != 1 for s in ash), tuple(s != 1 for s in bsh))
    if len(dims) > 3:
        # rare: keep numpy's semantics exactly (an out that aliases an input is safe in numpy too); no warnings, as
        # the C path raises none for inf/NaN results
        with np.errstate(all="ignore"):
            _NUMPY_BINARY[op](a, b, out=y)
        return y
    while len(dims) < 3:  # every kept axis has size > 1, so at least one operand is full along it
        dims.insert(0, [1, True, True])
    d = tuple(int(n) for n, _, _ in dims)

    def strides(col: int) -> tuple[int, ...]:
        st, acc = [], 1
        for n, *full in reversed(dims):
            st.append(acc if full[col] else 0)
            if full[col]:
                acc *= n
        st = st[::-1]
        return tuple(st)

    sa, sb = strides(0), strides(1)
    _k.binary_f32(BINARY_OPS[op], d, a, sa, b, sb, y)
    return y


def _axis(axis: int, ndim: int, fn: str) -> int:
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"{fn}: axis must be an int, got {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{fn}: axis {axis} is out of range for a {ndim}-D input")
    return int(axis) % ndim


def softmax(x: np.ndarray, axis: int = -1, log: bool = False, out=None) -> np.ndarray:
    """Softmax (or log-softmax) along one axis, numerically stable (the row maximum is subtracted first).

    Within about 1e-6 relative of float64 (softmax), 1e-6 absolute (log-softmax). The last axis runs in C in place
    over the rows; another axis is moved last (one copy in, one out). `out` may be x."""
    if x is not None and isinstance(x, np.ndarray) and x.ndim == 0:
        raise ValueError("softmax: x must have at least one axis")
    x = _f32(x, "x", "softmax")
    ax = _axis(axis, x.ndim, "softmax")
    y = _out(out, x.shape, "softmax")
    if _overlaps(y, x):
        y[...] = softmax(x, axis, log)
        return y
    if ax == x.ndim - 1:
        n = x.shape[-1]
        _k.softmax_f32(x, y, x.size // n if n else 0, n, bool(log))
        return y
    xt = np.ascontiguousarray(np.moveaxis(x, ax, -1))
    n = xt.shape[-1]
    _k.softmax_f32(xt, xt, xt.size // n if n else 0, n, bool(log))
    y[...] = np.moveaxis(xt, -1, ax)
    return y


def _norm_param(p, shape: tuple[int, ...], n: int, name: str, fn: str):
    if p is None:
        return None
    p = _f32(p, name, fn)
    if p.shape == shape:
        return p.reshape(-1)
    try:
        return np.ascontiguousarray(np.broadcast_to(p, shape)).reshape(-1)
    except ValueError:
        raise ValueError(f"{fn}: {name} of shape {p.shape} does not broadcast to the normalized shape {shape}") from None


def _norm(x, scale, bias, axis, eps, out, rms: bool, return_stats: bool, fn: str):
    x = _f32(x, "x", fn)
    if x.ndim == 0:
        raise ValueError(f"{fn}: x must have at least one axis")
    ax = _axis(axis, x.ndim, fn)
    eps = float(eps)
    if not eps >= 0.0:
        raise ValueError(f"{fn}: eps must be >= 0, got {eps}")
    nshape = x.shape[ax:]
    n = int(np.prod(nshape))
    rows = int(np.prod(x.shape[:ax]))
    if n == 0 and rows > 0:
        raise ValueError(f"{fn}: the normalized shape {nshape} is empty")
    s = _norm_param(scale, nshape, n, "scale", fn)
    b = _norm_param(bias, nshape, n, "bias", fn)
    y = _out(out, x.shape, fn)
    if _overlaps(y, x, s, b):
        r = _norm(x, scale, bias, axis, eps, None, rms, return_stats, fn)
        y[...] = r[0] if return_stats else r
        return (y,) + tuple(r[1:]) if return_stats else y
    stats_shape = x.shape[:ax] + (1,) * (x.ndim - ax)
    mean = np.empty(stats_shape, np.float32) if return_stats else None
    inv = np.empty(stats_shape, np.float32) if return_stats else None
    _k.norm_f32(x, y, rows, n, s, b, eps, rms, mean, inv)
    return (y, mean, inv) if return_stats else y


def layer_norm(x: np.ndarray, scale=None, bias=None, axis: int = -1, eps: float = 1e-5, out=None,
               return_stats: bool = False):
    """ONNX LayerNormalization: normalizes over axes axis..end, y = (x - mean) / sqrt(var + eps) * scale + bias.

    scale, bias: None or arrays broadcastable to x.shape[axis:]. With return_stats, returns (y, mean, inv_std), the
    statistics shaped x.shape[:axis] + (1,) * (ndim - axis) as ONNX's optional outputs. Sums run in float32 with
    several vector accumulators (error ~ n eps relative to the data's spread). `out` may be x."""
    return _norm(x, scale, bias, axis, eps, out, False, return_stats, "layer_norm")


def rms_norm(x: np.ndarray, scale=None, bias=None, axis: int = -1, eps: float = 1e-5, out=None) -> np.ndarray:
    """RMS normalization over axes axis..end: y = x / sqrt(mean(x^2) + eps) * scale (+ bias)."""
    return _norm(x, scale, bias, axis, eps, out, True, False, "rms_norm")


# ---------------------------------------------------------------- pooling and convolution helpers

def _pair(v, name: str, fn: str, minimum: int) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        v = (v, v)
    try:
        t = tuple(int(i) for i in v)
    except TypeError:
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {v!r}") from None
    if len(t) != 2:
        raise ValueError(f"{fn}: {name} must have 2 entries (height, width), got {len(t)}")
    if any(i < minimum for i in t):
        raise ValueError(f"{fn}: {name} entries must be >= {minimum}, got {t}")
    return t


def _pads(p, fn: str) -> tuple[int, int, int, int]:
    if p is None:
        return (0, 0, 0, 0)
    if isinstance(p, (int, np.integer)):
        p = (p,) * 4
    t = tuple(int(i) for i in p)
    if len(t) == 2:
        t = t + t
    if len(t) != 4:
        raise ValueError(f"{fn}: pads must be (top, left, bottom, right), got {p!r}")
    if any(i < 0 for i in t):
        raise ValueError(f"{fn}: pads must be >= 0, got {t}")
    return t


def pool_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int = 1,
                     ceil_mode: bool = False) -> int:
    """ONNX pooling output length along one axis with explicit pads (onnx.reference's formula, including the
    ceil_mode rule that the last window must start inside the input or its begin padding)."""
    span = dilation * (kernel - 1) + 1
    num = size + pad_begin + pad_end - span
    if num < 0:
        return 0
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _geometry(x_hw, kernel, strides, pads, dilations, ceil_mode, fn):
    kh, kw = _pair(kernel, "kernel", fn, 1)
    sh, sw = _pair(strides, "strides", fn, 1)
    dh, dw = _pair(dilations, "dilations", fn, 1)
    pt, pl, pb, pr = _pads(pads, fn)
    h, w = x_hw
    oh = pool_output_size(h, kh, sh, pt, pb, dh, ceil_mode)
    ow = pool_output_size(w, kw, sw, pl, pr, dw, ceil_mode)
    return (h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr)


def _nchw(x, fn: str) -> np.ndarray:
    x = _f32(x, "x", fn)
    if x.ndim != 4:
        raise ValueError(f"{fn}: x must be 4-D (N, C, H, W), got shape {x.shape}")
    return x


def _pool(kind: int, x, kernel, strides, pads, dilations, ceil_mode, out, fn):
    x = _nchw(x, fn)
    n, c, h, w = x.shape
    g = _geometry((h, w), kernel, strides, pads, dilations, ceil_mode, fn)
    y = _out(out, (n, c, g[2], g[3]), fn)
    if _overlaps(y, x):
        y[...] = _pool(kind, x, kernel, strides, pads, dilations, ceil_mode, None, fn)
        return y
    _k.pool2d_f32(kind, x, y, n * c, g)
    return y


def max_pool2d(x: np.ndarray, kernel, strides=1, pads=None, dilations=1, ceil_mode: bool = False,
               out=None) -> np.ndarray:
    """ONNX MaxPool on NCHW float32 with explicit pads (top, left, bottom, right) (the caller converts auto_pad).
    Padding never wins (it is not a value); NaN propagates; a window with no input element gives -inf."""
    return _pool(0, x, kernel, strides, pads, dilations, ceil_mode, out, "max_pool2d")


def avg_pool2d(x: np.ndarray, kernel, strides=1, pads=None, dilations=1, ceil_mode: bool = False,
               count_include_pad: bool = False, out=None) -> np.ndarray:
    """ONNX AveragePool on NCHW float32 with explicit pads (top, left, bottom, right). The divisor counts the
    window's elements inside the input, or with count_include_pad those inside the padded input (a ceil_mode window
    reaching past the end padding is cut there, as onnxruntime does). Bitwise equal across ISAs."""
    return _pool(2 if count_include_pad else 1, x, kernel, strides, pads, dilations, ceil_mode, out, "avg_pool2d")


def _global(op: int, x, out, fn):
    x = _f32(x, "x", fn)
    if x.ndim < 3:
        raise ValueError(f"{fn}: x must be (N, C, spatial...), got shape {x.shape}")
    n, c = x.shape[:2]
    hw = int(np.prod(x.shape[2:]))
    if hw == 0 and n * c:
        raise ValueError(f"{fn}: empty spatial shape {x.shape[2:]}")
    y = _out(out, (n, c) + (1,) * (x.ndim - 2), fn)
    if _overlaps(y, x):
        y[...] = _global(op, x, None, fn)
        return y
    _k.global_pool_f32(op, x, y, n * c, hw)
    return y


def global_avg_pool(x: np.ndarray, out=None) -> np.ndarray:
    """ONNX GlobalAveragePool: mean over every axis after the first two (any number of spatial axes)."""
    return _global(0, x, out, "global_avg_pool")


def global_max_pool(x: np.ndarray, out=None) -> np.ndarray:
    """ONNX GlobalMaxPool: max over every axis after the first two; NaN propagates."""
    return _global(1, x, out, "global_max_pool")


def _conv_geometry(h, w, kernel, strides, pads, dilations, fn):
    g = _geometry((h, w), kernel, strides, pads, dilations, False, fn)
    return g


def im2col(x: np.ndarray, kernel, strides=1, pads=None, dilations=1, out=None) -> np.ndarray:
    """One image (C, H, W) -> the (C*kh*kw, oh*ow) column matrix of a convolution (row (c*kh + a)*kw + b holds
    tap (a, b) of channel c at every output position; padding is 0), so Conv = W (M, C*kh*kw) @ col.
    oh, ow are Conv's output sizes: floor((H + pt + pb - dh (kh - 1) - 1) / sh) + 1. Exact copy (threaded)."""
    x = _f32(x, "x", "im2col")
    if x.ndim != 3:
        raise ValueError(f"im2col: x must be 3-D (C, H, W) (one batch item), got shape {x.shape}")
    c, h, w = x.shape
    g = _conv_geometry(h, w, kernel, strides, pads, dilations, "im2col")
    y = _out(out, (c * g[4] * g[5], g[2] * g[3]), "im2col")
    if _overlaps(y, x):
        y[...] = im2col(x, kernel, strides, pads, dilations)
        return y
    _k.im2col_f32(x, y, c, g)
    return y


def _bias_and_activation(bias, m: int, activation, fn: str):
    """A convolution's optional bias (m floats) and activation (None, a name or (name, p0[, p1])), checked:
    (bias or None, C activation id, p0, p1)."""
    if bias is not None:
        bias = _f32(bias, "bias", fn)
        if bias.shape != (m,):
            raise ValueError(f"{fn}: bias has shape {bias.shape}, expected ({m},)")
    if isinstance(activation, (tuple, list)):
        if not 1 <= len(activation) <= 3:
            raise ValueError(f"{fn}: activation must be a name or (name, p0[, p1]), got {activation!r}")
        return (bias,) + _parse_activation(activation[0], *activation[1:], fn=fn)
    return (bias,) + _parse_activation(activation, fn=fn)


def depthwise_conv2d(x: np.ndarray, w: np.ndarray, bias=None, strides=1, pads=None, dilations=1, activation=None,
                     out=None) -> np.ndarray:
    """Depthwise Conv (ONNX Conv with group = C and one output channel per group) on NCHW float32, with the bias
    and an activation fused: y[n, c] = act(bias[c] + sum_taps w[c, 0, a, b] * x[n, c, tap]).

    w: (C, 1, kh, kw) as in ONNX (or (C, kh, kw)); any kernel size, stride and dilation, explicit pads (top, left,
    bottom, right). Strides 1 and 2 run vectorized over zero-padded rows (small planes a block of channels at a time),
    other strides vectorized in the interior and in C per element at the borders. activation: None, a name or (name, p0[, p1]) as in `activation()`. Accumulates with FMA: within
    (kh kw + 1) eps (|bias| + sum |w x|) of float64, before the activation."""
    x = _nchw(x, "depthwise_conv2d")
    w = _f32(w, "w", "depthwise_conv2d")
    n, c, h, wd = x.shape
    if w.ndim == 4 and w.shape[1] == 1:
        kh, kw = w.shape[2:]
    elif w.ndim == 3:
        kh, kw = w.shape[1:]
    else:
        raise ValueError(f"depthwise_conv2d: w must be (C, 1, kh, kw) or (C, kh, kw), got shape {w.shape}")
    if w.shape[0] != c:
        raise ValueError(f"depthwise_conv2d: w has {w.shape[0]} channels, x has {c}")
    if kh < 1 or kw < 1:
        raise ValueError(f"depthwise_conv2d: empty kernel {w.shape}")
    bias, cid, p0, p1 = _bias_and_activation(bias, c, activation, "depthwise_conv2d")
    g = _conv_geometry(h, wd, (kh, kw), strides, pads, dilations, "depthwise_conv2d")
    y = _out(out, (n, c, g[2], g[3]), "depthwise_conv2d")
    if c == 0 or n == 0:
        return y
    if _overlaps(y, x, w, bias):
        y[...] = depthwise_conv2d(x, w, bias, strides, pads, dilations, activation)
        return y
    _k.dwconv2d_f32(x, w, bias, y, n * c, c, g, cid, p0, p1)
    return y


class ConvWeights:
    """Convolution weights (M, C/group, kh, kw) packed once for the implicit-GEMM kernel (`conv2d`). The packed
    layout depends on the active micro-kernel's tile; if the ISA level changes (tests), it is repacked."""

    __slots__ = ("w", "group", "_packed")

    def __init__(self, w: np.ndarray, group: int = 1):
        w = _f32(w, "w", "ConvWeights")
        if w.ndim != 4 or min(w.shape) < 1:
            raise ValueError(f"ConvWeights: w must be 4-D (M, C/group, kh, kw) and non-empty, got shape {w.shape}")
        group = int(group)
        if group < 1 or w.shape[0] % group:
            raise ValueError(f"ConvWeights: group must be >= 1 and divide M = {w.shape[0]}, got {group}")
        self.w, self.group, self._packed = w, group, None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.w.shape

    def packed(self):
        """(packed array, tile rows) for the active kernel."""
        p = self._packed
        if p is None or p[1] != _k.conv_tile()[0]:
            m, cg, kh, kw = self.w.shape
            # the packing uses only M, C, group and the kernel size: any valid image geometry does
            g = (1, cg * self.group, kh, kw, m, self.group, kh, kw, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1)
            p = self._packed = _k.conv2d_pack_f32(g, self.w)
        return p


def conv2d(x: np.ndarray, w, bias=None, strides=1, pads=None, dilations=1, group: int = 1, activation=None,
           residual=None, out=None) -> np.ndarray:
    """2-D convolution (ONNX Conv, NCHW float32) on the implicit-GEMM kernel, with the bias, a residual and an
    activation fused: y = act(conv(x, w) + bias + residual).

    w: (M, C/group, kh, kw) as in ONNX, or a `ConvWeights` (packed once; pass it when calling repeatedly).
    Any kernel size, stride, dilation, explicit pads (top, left, bottom, right) and group count (depthwise
    convolutions are faster on `depthwise_conv2d`). residual: None or an array of the output's shape.
    activation: None, a name or (name, p0[, p1]) as in `activation()`. Sums run over the taps with FMA: within
    about C/group * kh * kw eps sum |w x| of float64, before the activation."""
    fn = "conv2d"
    x = _nchw(x, fn)
    cw = w if isinstance(w, ConvWeights) else ConvWeights(w, group)
    if int(group) not in (1, cw.group):
        raise ValueError(f"{fn}: group {group} differs from the ConvWeights' group {cw.group}")
    group = cw.group
    n, c, h, wd = x.shape
    m, cg, kh, kw = cw.shape
    if cg * group != c:
        raise ValueError(f"{fn}: x has {c} channels, w expects {cg} x {group} groups = {cg * group}")
    bias, cid, p0, p1 = _bias_and_activation(bias, m, activation, fn)
    g = _conv_geometry(h, wd, (kh, kw), strides, pads, dilations, fn)
    oh, ow = g[2], g[3]
    span_h, span_w = g[8] * (kh - 1) + 1, g[9] * (kw - 1) + 1
    if h + g[10] + g[12] < span_h or wd + g[11] + g[13] < span_w:
        raise ValueError(f"{fn}: the kernel ({kh}x{kw}, dilations {g[8]}x{g[9]}) is larger than the padded input "
                         f"({h + g[10] + g[12]}x{wd + g[11] + g[13]})")
    if residual is not None:
        residual = _f32(residual, "residual", fn)
        if residual.shape != (n, m, oh, ow):
            raise ValueError(f"{fn}: residual has shape {residual.shape}, expected {(n, m, oh, ow)}")
    y = _out(out, (n, m, oh, ow), fn)
    if y.size == 0:
        return y
    if np.may_share_memory(y, x) or (residual is not None and np.may_share_memory(y, residual)):
        y[...] = conv2d(x, cw, bias, strides, pads, dilations, group, activation, residual)
        return y
    wp, mr = cw.packed()
    geo = (n, c, h, wd, m, group, kh, kw, g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], oh, ow)
    _k.conv2d_f32(geo, x, wp, mr, bias, residual, y, cid, p0, p1)
    return y


def winograd_weights(w: np.ndarray) -> np.ndarray:
    """Transforms 3x3 Conv weights w (OC, IC, 3, 3) (ONNX layout, group 1) for `conv2d_winograd`: returns
    u (36, OC, IC) float32 with u[p, o, c] = (G w[o, c] G^T)[p // 6, p % 6], the F(4x4, 3x3) filter transform
    (points 0, +-1, +-2, inf), computed in float64 and rounded once. Do this once per model, not per call."""
    w = _f32(w, "w", "winograd_weights")
    if w.ndim != 4 or w.shape[2:] != (3, 3):
        raise ValueError(f"winograd_weights: w must be (OC, IC, 3, 3), got shape {w.shape}")
    oc, ic = w.shape[:2]
    if oc == 0 or ic == 0:
        raise ValueError(f"winograd_weights: w has no filters (shape {w.shape})")
    u = np.empty((36, oc, ic), np.float32)
    _k.wino_weights_f32(w, u, oc, ic)
    return u


def conv2d_winograd(x: np.ndarray, u: np.ndarray, bias=None, pads=None, activation=None, out=None,
                    residual=None) -> np.ndarray:
    """3x3 Conv with stride 1, dilation 1 and group 1 on NCHW float32 by Winograd F(4x4, 3x3), with the bias, a
    residual and an activation fused: y = act(conv(x, w) + bias + residual), u = winograd_weights(w).

    x: (N, IC, H, W); pads: (top, left, bottom, right), an int or a (height, width) pair; output (N, OC, H + pt + pb
    - 2, W + pl + pr - 2); residual: None or an array of the output's shape. activation: None, a name or (name, p0[,
    p1]) as in `activation()`. The 36 channel sums
    run on the active ISA's GEMM kernels; tiles are transformed in blocks that stay in L2, threaded on engine's pool.
    Accuracy: the transforms (entries up to 5 and 8) grow rounding errors: on He-initialized weights and N(0, 1)
    inputs with 64..512 channels the max error is 6e-6..1.1e-5 of max |y| (RMS 2e-6..3e-6 of RMS y), 10-30x that of
    im2col + GEMM; tests/kernels/test_winograd.py states and checks an elementwise bound.
    Speed: wins over im2col + GEMM from about 16 channels and 14x14 outputs up; loses on 7x7 maps (a 4-tile image
    reads the 4x larger transformed weights for few outputs): bench/compare_winograd.py."""
    fn = "conv2d_winograd"
    x = _nchw(x, fn)
    u = _f32(u, "u", fn)
    n, ic, h, w = x.shape
    if u.ndim != 3 or u.shape[0] != 36:
        raise ValueError(f"{fn}: u must be (36, OC, IC) from winograd_weights, got shape {u.shape}")
    oc = u.shape[1]
    if u.shape[2] != ic:
        raise ValueError(f"{fn}: u is for {u.shape[2]} input channels, x has {ic}")
    if oc == 0 or ic == 0:
        raise ValueError(f"{fn}: no channels (x {x.shape}, u {u.shape})")
    bias, cid, p0, p1 = _bias_and_activation(bias, oc, activation, fn)
    pt, pl, pb, pr = _pads(pads, fn)
    oh, ow = h + pt + pb - 2, w + pl + pr - 2
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: input {h}x{w} with pads {(pt, pl, pb, pr)} is smaller than the 3x3 kernel")
    if residual is not None:
        residual = _f32(residual, "residual", fn)
        if residual.shape != (n, oc, oh, ow):
            raise ValueError(f"{fn}: residual has shape {residual.shape}, expected {(n, oc, oh, ow)}")
    y = _out(out, (n, oc, oh, ow), fn)
    if n == 0:
        return y
    if _overlaps(y, x, u, bias) or np.may_share_memory(y, x) or np.may_share_memory(y, u) or \
            (bias is not None and np.may_share_memory(y, bias)) or \
            (residual is not None and np.may_share_memory(y, residual)):
        y[...] = conv2d_winograd(x, u, bias, pads, activation, residual=residual)
        return y
    _k.wino_conv_f32(x, u, bias, y, n, ic, h, w, oc, (pt, pl, pb, pr), cid, p0, p1, residual)
    return y
