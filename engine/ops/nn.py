"""nn ops: MatMul, Gemm, Conv, ConvTranspose, pooling, normalizations (see engine.ops._registry for the
conventions).

float32 products run on engine's GEMM (`engine._C._kernels.gemm`, the kernel behind `engine.gemm`, called
directly where a per-row bias is fused: conv output rows are channels). Other dtypes go through numpy; float16
is computed in float32 and rounded once at the end.

Conv is im2col + GEMM: the padded input is viewed as (N, G, C/G, *kernel, *out) with stride tricks and copied
once into the column matrix; a 1x1 stride-1 unpadded conv skips im2col (the NCHW activations already are the
column matrix) and a depthwise conv (group == C == M) sums the k*k shifted views times per-channel weights.
ConvTranspose is the reverse: GEMM to columns, then a scatter-add over kernel positions (col2im). Pools loop
over kernel positions too (a handful of vectorized passes over the output), never over channels or pixels.

Output shapes follow the ONNX formulas exactly (explicit pads, auto_pad SAME_UPPER/SAME_LOWER/VALID, ceil_mode
with its "last window starts inside the input" rule); the geometry is cached per input shape.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from engine._C import _kernels as _k
from engine.linalg import gemm as _egemm
from engine.linalg import matmul as _ematmul
from engine.ops._registry import NodeCtx, Unsupported, register

_F32 = np.dtype(np.float32)
_F16 = np.dtype(np.float16)
_AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _is_float(dt: np.dtype) -> bool:
    return dt.kind == "f" or dt.name == "bfloat16"


def _compute_dtype(dt: np.dtype) -> np.dtype:
    """float16 and bfloat16 are computed in float32 (rounded once at the end); other dtypes in themselves."""
    return _F32 if dt == _F16 or dt.name == "bfloat16" else dt


def _ints(ctx: NodeCtx, name: str, default=None):
    v = ctx.attr(name, None)
    if v is None:
        return default
    return tuple(int(i) for i in v)


def _auto_pad(ctx: NodeCtx) -> str:
    ap = ctx.attr_str("auto_pad", "NOTSET") or "NOTSET"
    if ap not in _AUTO_PADS:
        raise Unsupported(f"auto_pad {ap!r} is not one of {', '.join(_AUTO_PADS)}")
    return ap


def _check_rank(x: np.ndarray, nd: int, op: str, what: str = "X"):
    if x.ndim != nd + 2:
        raise ValueError(f"{op}: input {what} has shape {list(x.shape)}; expected rank {nd + 2} "
                         f"(N, C and {nd} spatial dims)")


def _spatial_attr(v, nd: int, fill: int, name: str, op: str):
    if v is None:
        return (fill,) * nd
    if len(v) != nd:
        raise ValueError(f"{op}: attribute {name} has {len(v)} values, the input has {nd} spatial dims")
    return tuple(v)


# ---------------------------------------------------------------------------------------------------------
# shape geometry

def _conv_geometry(in_sp, k, s, d, pads, auto_pad, op):
    """Output spatial shape and (begin, end) pads of a convolution, per the ONNX Conv formulas."""
    nd = len(in_sp)
    out, pb, pe = [], [], []
    for i in range(nd):
        n, dk = in_sp[i], (k[i] - 1) * d[i] + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = -(-n // s[i])
            total = max(0, (o - 1) * s[i] + dk - n)
            b = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            e = total - b
        elif auto_pad == "VALID":
            b = e = 0
            o = (n - dk) // s[i] + 1
        else:
            b, e = pads[i], pads[i + nd]
            o = (n + b + e - dk) // s[i] + 1
        if o < 1:
            raise ValueError(f"{op}: spatial dim {i} of size {n} (pads {b}+{e}) is smaller than the dilated kernel "
                             f"({dk}): the output would be empty")
        out.append(o)
        pb.append(b)
        pe.append(e)
    return tuple(out), tuple(pb), tuple(pe)


def _pool_geometry(in_sp, k, s, d, pads, auto_pad, ceil_mode, op):
    """Output spatial shape and (begin, end) pads of a pooling op (ONNX MaxPool/AveragePool formulas)."""
    if auto_pad != "NOTSET" or not ceil_mode:
        return _conv_geometry(in_sp, k, s, d, pads, auto_pad, op)
    nd = len(in_sp)
    out = []
    for i in range(nd):
        n, dk = in_sp[i], (k[i] - 1) * d[i] + 1
        b, e = pads[i], pads[i + nd]
        o = -(-(n + b + e - dk) // s[i]) + 1
        if (o - 1) * s[i] >= n + b:  # the last window must start inside the input or its left padding
            o -= 1
        if o < 1:
            raise ValueError(f"{op}: spatial dim {i} of size {n} is smaller than the dilated kernel ({dk})")
        out.append(o)
    return tuple(out), tuple(pads[:nd]), tuple(pads[nd:])


def _pad_input(x: np.ndarray, pb, need, fill):
    """x with spatial dims padded to `need` sizes: `pb` before, the rest after (cut if need is smaller)."""
    nd = len(pb)
    in_sp = x.shape[2:]
    if not any(pb) and tuple(need) == tuple(in_sp):
        return x
    shape = x.shape[:2] + tuple(need)
    xp = np.zeros(shape, dtype=x.dtype) if fill == 0 else np.full(shape, fill, dtype=x.dtype)
    dst, src = [slice(None), slice(None)], [slice(None), slice(None)]
    for i in range(nd):
        lo = max(0, pb[i])
        hi = min(need[i], pb[i] + in_sp[i])
        dst.append(slice(lo, max(lo, hi)))
        src.append(slice(lo - pb[i], lo - pb[i] + max(0, hi - lo)))
    xp[tuple(dst)] = x[tuple(src)]
    return xp


def _tap_view(xp: np.ndarray, t, s, d, out):
    """The (N, C, *out) view of xp read by kernel position t."""
    idx = [slice(None), slice(None)]
    for i in range(len(t)):
        start = t[i] * d[i]
        idx.append(slice(start, start + (out[i] - 1) * s[i] + 1, s[i]))
    return xp[tuple(idx)]


class _ShapeCache(dict):
    """Geometry per input shape (a pure function of the shape: safe to share between threads)."""

    def get_or(self, key, make):
        v = self.get(key)
        if v is None:
            if len(self) > 64:
                self.clear()
            v = self[key] = make()
        return v


# ---------------------------------------------------------------------------------------------------------
# MatMul, Gemm

@register("MatMul", shape_inputs=())
def matmul_op(ctx: NodeCtx):
    if ctx.version < 1:
        raise Unsupported(f"MatMul version {ctx.version}")

    def run(a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"MatMul: inputs must have at least one dimension, got shapes {list(a.shape)} and "
                             f"{list(b.shape)}")
        if a.dtype != b.dtype:
            raise TypeError(f"MatMul: input dtypes differ: {a.dtype} and {b.dtype}")
        if a.dtype == _F32:
            if b.ndim == 2 and a.ndim > 2 and a.flags.c_contiguous:
                if a.shape[-1] != b.shape[0]:
                    raise ValueError(f"MatMul: shapes {list(a.shape)} and {list(b.shape)} do not fit")
                y = _ematmul(a.reshape(-1, a.shape[-1]), b)
                return (y.reshape(a.shape[:-1] + (b.shape[1],)),)
            return (_ematmul(a, b),)
        cd = _compute_dtype(a.dtype)
        if cd != a.dtype:
            return (_ematmul(a.astype(_F32), b.astype(_F32)).astype(a.dtype),)
        return (np.matmul(a, b),)
    return run


@register("Gemm", shape_inputs=())
def gemm_op(ctx: NodeCtx):
    alpha = float(ctx.attr("alpha", 1.0))
    beta = float(ctx.attr("beta", 1.0))
    ta = bool(ctx.attr("transA", 0))
    tb = bool(ctx.attr("transB", 0))
    # opset 6's `broadcast` attribute is not read: C is broadcast unidirectionally in every version (with
    # broadcast=0, C already has the full shape, which the broadcast accepts)
    c_const = ctx.const(2)
    bias_row = None   # beta * C as a per-column vector when C broadcasts along rows
    if c_const is not None and c_const.dtype == _F32 and (c_const.ndim <= 1 or
                                                           (c_const.ndim == 2 and c_const.shape[0] == 1)):
        bias_row = np.ascontiguousarray((c_const * np.float32(beta)).reshape(-1), dtype=_F32)

    def run(a, b, c=None):
        if a.ndim != 2 or b.ndim != 2:
            raise ValueError(f"Gemm: A and B must be 2-D, got shapes {list(a.shape)} and {list(b.shape)}")
        if a.dtype != b.dtype or (c is not None and c.dtype != a.dtype):
            raise TypeError(f"Gemm: input dtypes differ: {a.dtype}, {b.dtype}"
                            + ("" if c is None else f", {c.dtype}"))
        m, k = (a.shape[1], a.shape[0]) if ta else a.shape
        kb, n = (b.shape[1], b.shape[0]) if tb else b.shape
        if k != kb:
            raise ValueError(f"Gemm: op(A) is {m}x{k} but op(B) is {kb}x{n}")
        if c is not None:
            try:
                np.broadcast_shapes(c.shape, (m, n))
            except ValueError:
                raise ValueError(f"Gemm: C of shape {list(c.shape)} does not broadcast to {[m, n]}") from None
            if len(np.broadcast_shapes(c.shape, (m, n))) > 2:
                raise ValueError(f"Gemm: C of shape {list(c.shape)} does not broadcast to {[m, n]}")
        if a.dtype == _F32:
            if c is None or beta == 0.0:
                return (_egemm(a, b, alpha=alpha, trans_a=ta, trans_b=tb),)
            if c is c_const and bias_row is not None:
                bias = bias_row if bias_row.shape[0] == n else np.full(n, bias_row[0], _F32)
                return (_egemm(a, b, alpha=alpha, trans_a=ta, trans_b=tb, bias=bias),)
            if c.ndim <= 1 or c.shape[0] == 1:
                bias = np.ascontiguousarray(np.broadcast_to((c * np.float32(beta)).reshape(-1), (n,)),
                                            dtype=_F32)
                return (_egemm(a, b, alpha=alpha, trans_a=ta, trans_b=tb, bias=bias),)
            out = np.empty((m, n), _F32)
            out[...] = c
            return (_egemm(a, b, out, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb),)
        dt = a.dtype
        cd = _compute_dtype(dt)
        a2 = (a.T if ta else a).astype(cd, copy=False)
        b2 = (b.T if tb else b).astype(cd, copy=False)
        y = np.matmul(a2, b2)
        if alpha != 1.0:
            y = y * alpha
        if c is not None and beta != 0.0:
            y = y + (c.astype(cd, copy=False) * beta if beta != 1.0 else c)
        return (np.ascontiguousarray(np.broadcast_to(y, (m, n))).astype(dt, copy=False),)
    return run


# ---------------------------------------------------------------------------------------------------------
# Conv

def _gemm_rows_bias(w2: np.ndarray, col: np.ndarray, out2: np.ndarray, bias):
    """out2 = w2 @ col (+ bias per row), float32, on engine's GEMM."""
    if bias is None:
        _k.gemm(w2, col, out2)
    else:
        _k.gemm(w2, col, out2, False, False, 1.0, 0.0, bias, _k.BIAS_ROW)


@register("Conv", shape_inputs=())
def conv_op(ctx: NodeCtx):
    auto_pad = _auto_pad(ctx)
    group = int(ctx.attr("group", 1))
    if group < 1:
        raise Unsupported(f"group must be >= 1, got {group}")
    kernel_attr = _ints(ctx, "kernel_shape")
    pads_attr = _ints(ctx, "pads")
    strides_attr = _ints(ctx, "strides")
    dil_attr = _ints(ctx, "dilations")
    if pads_attr is not None and any(p < 0 for p in pads_attr):
        raise Unsupported(f"negative pads {list(pads_attr)}")
    if strides_attr is not None and any(v < 1 for v in strides_attr):
        raise Unsupported(f"strides must be >= 1, got {list(strides_attr)}")
    if dil_attr is not None and any(v < 1 for v in dil_attr):
        raise Unsupported(f"dilations must be >= 1, got {list(dil_attr)}")
    w_const = ctx.const(1)
    b_const = ctx.const(2)
    pre = {}
    if w_const is not None:
        if w_const.ndim < 3:
            raise Unsupported(f"W must have rank >= 3, got shape {list(w_const.shape)}")
        if w_const.shape[0] % group:
            raise Unsupported(f"W has {w_const.shape[0]} output channels, not divisible by group {group}")
        if kernel_attr is not None and tuple(kernel_attr) != tuple(w_const.shape[2:]):
            raise Unsupported(f"kernel_shape {list(kernel_attr)} does not match W's shape {list(w_const.shape)}")
        pre = _conv_weights(w_const, group, _compute_dtype(w_const.dtype))
    if b_const is not None:
        pre["bias"] = np.ascontiguousarray(b_const.reshape(-1), dtype=_compute_dtype(b_const.dtype))
    cache = _ShapeCache()

    def run(x, w, b=None):
        if x.dtype != w.dtype:
            raise TypeError(f"Conv: X is {x.dtype} but W is {w.dtype}")
        nd = w.ndim - 2
        _check_rank(x, nd, "Conv")
        M, Cg = w.shape[:2]
        k = w.shape[2:]
        N, C = x.shape[:2]
        if C != Cg * group:
            raise ValueError(f"Conv: X has {C} channels but W {list(w.shape)} with group {group} expects "
                             f"{Cg * group}")
        if M % group:
            raise ValueError(f"Conv: W has {M} output channels, not divisible by group {group}")
        if kernel_attr is not None and tuple(kernel_attr) != tuple(k):
            raise ValueError(f"Conv: kernel_shape {list(kernel_attr)} does not match W's shape {list(w.shape)}")
        geo = cache.get_or(x.shape[2:] + k, lambda: _conv_geometry(
            x.shape[2:], k, _spatial_attr(strides_attr, nd, 1, "strides", "Conv"),
            _spatial_attr(dil_attr, nd, 1, "dilations", "Conv"),
            pads_attr if pads_attr is not None else (0,) * (2 * nd), auto_pad, "Conv"))
        out, pb, pe = geo
        s = _spatial_attr(strides_attr, nd, 1, "strides", "Conv")
        d = _spatial_attr(dil_attr, nd, 1, "dilations", "Conv")
        if pads_attr is not None and len(pads_attr) != 2 * nd:
            raise ValueError(f"Conv: pads has {len(pads_attr)} values, expected {2 * nd}")
        dt = x.dtype
        cd = _compute_dtype(dt)
        p = pre if w is w_const else _conv_weights(w, group, cd)
        if b is None:
            bias = None
        elif b is b_const:
            bias = pre["bias"]
        else:
            bias = np.ascontiguousarray(b.reshape(-1), dtype=cd)
        if bias is not None and bias.shape[0] != M:
            raise ValueError(f"Conv: B has {bias.shape[0]} values, expected {M}")
        xc = x if x.dtype == cd else x.astype(cd)
        y = _conv_compute(xc, p, group, k, s, d, out, pb, cd, bias)
        return (y if dt == cd else y.astype(dt),)
    return run


def _conv_weights(w: np.ndarray, group: int, cd) -> dict:
    """W (M, C/G, *k) in the layouts the conv paths use: (G, M/G, C/G*kk) contiguous, and per-channel taps for a
    depthwise conv."""
    M, Cg = w.shape[:2]
    kk = int(np.prod(w.shape[2:], dtype=np.int64))
    wm = np.ascontiguousarray(w.reshape(group, M // group, Cg * kk), dtype=cd)
    p = {"wmat": wm}
    if Cg == 1 and M == group:   # depthwise, channel multiplier 1
        p["dw"] = np.ascontiguousarray(w.reshape(M, kk).T, dtype=cd)  # (kk, M)
    return p


def _conv_compute(x, p, group, k, s, d, out, pb, cd, bias):
    nd = len(k)
    N, C = x.shape[:2]
    wm = p["wmat"]
    G, Mg, K = wm.shape
    M = G * Mg
    P = int(np.prod(out, dtype=np.int64))
    need = tuple((out[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 for i in range(nd))
    y = np.empty((N, M) + tuple(out), dtype=cd)
    if N == 0 or M == 0:
        return y
    f32 = cd == _F32
    if "dw" in p and G > 1:
        if nd == 2:
            _depthwise2d(x, pb, need, p["dw"], k, s, d, out, y, bias)
        else:
            _depthwise(_pad_input(x, pb, need, 0), p["dw"], k, s, d, out, y, bias)
        return y
    in_sp = x.shape[2:]
    pointwise = all(v == 1 for v in k) and not any(pb) and all(need[i] <= in_sp[i] for i in range(nd))
    if pointwise:
        # 1x1: subsample by the strides (usually 1: no copy at all) and multiply
        idx = (slice(None), slice(None)) + tuple(slice(0, (out[i] - 1) * s[i] + 1, s[i]) for i in range(nd))
        xs = x[idx]
        if f32 and group == 1:
            xs = np.ascontiguousarray(xs)
            for n in range(N):
                _gemm_rows_bias(wm[0], xs[n].reshape(C, P), y[n].reshape(M, P), bias)
            return y
        view = xs
    else:
        xp = _pad_input(x, pb, need, 0)
        st = xp.strides
        Cg = C // G
        shape = (N, G, Cg) + tuple(k) + tuple(out)
        strides = (st[0], st[1] * Cg, st[1]) + tuple(st[2 + i] * d[i] for i in range(nd)) \
            + tuple(st[2 + i] * s[i] for i in range(nd))
        view = as_strided(xp, shape, strides, writeable=False)
    # one image at a time: the column matrix of one image (K x P per group) is all that is materialized
    y3 = y.reshape(N, G, Mg, P)
    for n in range(N):
        col = np.ascontiguousarray(view[n]).reshape(G, K, P)
        if f32:
            for g in range(G):
                _gemm_rows_bias(wm[g], col[g], y3[n, g], None if bias is None else bias[g * Mg:(g + 1) * Mg])
        else:
            y3[n] = np.matmul(wm, col)
    if not f32 and bias is not None:
        y += bias.reshape((M,) + (1,) * nd)
    return y


def _depthwise(xp, taps, k, s, d, out, y, bias):
    """y[n, c] = sum over kernel positions t of taps[t, c] * xp[n, c, shifted by t] (+ bias[c])."""
    nd = len(k)
    bshape = (-1,) + (1,) * nd
    tmp = np.empty_like(y)
    first = True
    for ti, t in enumerate(np.ndindex(*k)):
        v = _tap_view(xp, t, s, d, out)
        wt = taps[ti].reshape(bshape)
        if first:
            np.multiply(v, wt, out=y)
            first = False
        else:
            np.multiply(v, wt, out=tmp)
            y += tmp
    if bias is not None:
        y += bias.reshape(bshape)


def _phase_planes(x, pb, need, s, fill=0):
    """The padded input (pads `pb` before, total size `need`, pad value `fill`) split into its stride phases, in
    one copy: plane a*sw + b holds padded[a::sh, b::sw], each flattened: returns (N, C, sh*sw, Hq*Wq), Hq, Wq."""
    N, C, H, W = x.shape
    sh, sw = s
    Hq, Wq = -(-need[0] // sh), -(-need[1] // sw)
    if sh == 1 and sw == 1 and not any(pb) and (H, W) == tuple(need):
        return x.reshape(N, C, 1, H * W), H, W
    shape = (N, C, sh * sw, Hq, Wq)
    ph = np.zeros(shape, dtype=x.dtype) if fill == 0 else np.full(shape, fill, dtype=x.dtype)

    def span(a, st, pad, n, nq):
        u0 = max(0, -(-(pad - a) // st))
        u1 = min(nq, (n - 1 + pad - a) // st + 1)
        return u0, u1, a + u0 * st - pad

    for a in range(sh):
        u0, u1, r0 = span(a, sh, pb[0], H, -(-(need[0] - a) // sh))
        if u1 <= u0:
            continue
        for b in range(sw):
            v0, v1, c0 = span(b, sw, pb[1], W, -(-(need[1] - b) // sw))
            if v1 <= v0:
                continue
            ph[:, :, a * sw + b, u0:u1, v0:v1] = x[:, :, r0:r0 + (u1 - u0 - 1) * sh + 1:sh,
                                                  c0:c0 + (v1 - v0 - 1) * sw + 1:sw]
    return ph.reshape(N, C, sh * sw, Hq * Wq), Hq, Wq


def _taps2d(x, pb, need, k, s, d, out, fill, combine):
    """combine() of the k[0]*k[1] shifted windows of a 2-D input, each a contiguous 1-D slice of a stride phase
    (see _depthwise2d): returns an (N, C, O1, O2) view of the accumulator."""
    N, C = x.shape[:2]
    sh, sw = s
    O1, O2 = out
    flat, Hq, Wq = _phase_planes(x, pb, need, s, fill)
    L = (O1 - 1) * Wq + O2
    acc = np.empty((N, C, O1 * Wq), dtype=x.dtype)
    a = acc[:, :, :L]
    for ti in range(k[0] * k[1]):
        i, j = divmod(ti, k[1])
        r, c = i * d[0], j * d[1]
        off = (r // sh) * Wq + c // sw
        v = flat[:, :, (r % sh) * sw + (c % sw), off:off + L]
        if ti == 0:
            np.copyto(a, v)
        else:
            combine(a, v, out=a)
    return acc.reshape(N, C, O1, Wq)[:, :, :, :O2]


def _depthwise2d(x, pb, need, taps, k, s, d, out, y, bias):
    """2-D depthwise conv with every tap a contiguous 1-D slice: the padded input is split into its stride
    phases (_phase_planes); output (o1, o2) of tap (r, c) then sits at flat offset (r//sh)*Wq + c//sw + o1*Wq
    + o2 of plane (r%sh, c%sw). The accumulator is computed on the plane's full row width and cropped (with the
    bias added) at the end."""
    N, C = x.shape[:2]
    sh, sw = s
    O1, O2 = out
    flat, Hq, Wq = _phase_planes(x, pb, need, s)
    L = (O1 - 1) * Wq + O2
    acc = np.empty((N, C, O1 * Wq), dtype=y.dtype)
    a = acc[:, :, :L]
    tmp = np.empty_like(a)
    for ti in range(k[0] * k[1]):
        i, j = divmod(ti, k[1])
        r, c = i * d[0], j * d[1]
        off = (r // sh) * Wq + c // sw
        v = flat[:, :, (r % sh) * sw + (c % sw), off:off + L]
        wt = taps[ti].reshape(-1, 1)
        if ti == 0:
            np.multiply(v, wt, out=a)
        else:
            np.multiply(v, wt, out=tmp)
            a += tmp
    res = acc.reshape(N, C, O1, Wq)[:, :, :, :O2]
    if bias is None:
        np.copyto(y, res)
    else:
        np.add(res, bias.reshape(-1, 1, 1), out=y)


# ---------------------------------------------------------------------------------------------------------
# ConvTranspose

@register("ConvTranspose", shape_inputs=())
def conv_transpose_op(ctx: NodeCtx):
    auto_pad = _auto_pad(ctx)
    group = int(ctx.attr("group", 1))
    if group < 1:
        raise Unsupported(f"group must be >= 1, got {group}")
    kernel_attr = _ints(ctx, "kernel_shape")
    pads_attr = _ints(ctx, "pads")
    strides_attr = _ints(ctx, "strides")
    dil_attr = _ints(ctx, "dilations")
    opad_attr = _ints(ctx, "output_padding")
    oshape_attr = _ints(ctx, "output_shape")
    if strides_attr is not None and any(v < 1 for v in strides_attr):
        raise Unsupported(f"strides must be >= 1, got {list(strides_attr)}")
    if dil_attr is not None and any(v < 1 for v in dil_attr):
        raise Unsupported(f"dilations must be >= 1, got {list(dil_attr)}")
    w_const = ctx.const(1)
    pre_w = None
    if w_const is not None:
        if w_const.ndim < 3:
            raise Unsupported(f"W must have rank >= 3, got shape {list(w_const.shape)}")
        if w_const.shape[0] % group:
            raise Unsupported(f"W has {w_const.shape[0]} input channels, not divisible by group {group}")
        if kernel_attr is not None and tuple(kernel_attr) != tuple(w_const.shape[2:]):
            raise Unsupported(f"kernel_shape {list(kernel_attr)} does not match W's shape {list(w_const.shape)}")
        pre_w = _convt_weights(w_const, group, _compute_dtype(w_const.dtype))
    cache = _ShapeCache()

    def geometry(in_sp, k):
        nd = len(in_sp)
        s = _spatial_attr(strides_attr, nd, 1, "strides", "ConvTranspose")
        d = _spatial_attr(dil_attr, nd, 1, "dilations", "ConvTranspose")
        op = _spatial_attr(opad_attr, nd, 0, "output_padding", "ConvTranspose")
        natural = [s[i] * (in_sp[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 for i in range(nd)]
        oshape = None
        if oshape_attr is not None:
            oshape = tuple(oshape_attr[-nd:]) if len(oshape_attr) in (nd, nd + 2) else None
            if oshape is None:
                raise ValueError(f"ConvTranspose: output_shape {list(oshape_attr)} does not have {nd} spatial dims")
        if pads_attr is not None and auto_pad == "NOTSET":
            if len(pads_attr) != 2 * nd:
                raise ValueError(f"ConvTranspose: pads has {len(pads_attr)} values, expected {2 * nd}")
            pb = tuple(pads_attr[:nd])
            out = oshape if oshape is not None else tuple(natural[i] - pads_attr[i] - pads_attr[i + nd]
                                                          for i in range(nd))
        elif oshape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            out = oshape if oshape is not None else tuple(in_sp[i] * s[i] for i in range(nd))
            total = [natural[i] - out[i] for i in range(nd)]
            if auto_pad == "SAME_UPPER":
                pb = tuple(t // 2 for t in total)
            else:
                pb = tuple(t - t // 2 for t in total)
        else:
            pb = (0,) * nd
            out = tuple(natural)
        if any(o < 0 for o in out):
            raise ValueError(f"ConvTranspose: the output shape {list(out)} would be negative")
        return tuple(out), pb, s, d

    def run(x, w, b=None):
        if x.dtype != w.dtype:
            raise TypeError(f"ConvTranspose: X is {x.dtype} but W is {w.dtype}")
        nd = w.ndim - 2
        _check_rank(x, nd, "ConvTranspose")
        C, Mg = w.shape[:2]
        k = w.shape[2:]
        N = x.shape[0]
        if x.shape[1] != C:
            raise ValueError(f"ConvTranspose: X has {x.shape[1]} channels, W {list(w.shape)} expects {C}")
        if C % group:
            raise ValueError(f"ConvTranspose: {C} input channels are not divisible by group {group}")
        if kernel_attr is not None and tuple(kernel_attr) != tuple(k):
            raise ValueError(f"ConvTranspose: kernel_shape {list(kernel_attr)} does not match W's shape "
                             f"{list(w.shape)}")
        out, pb, s, d = cache.get_or(x.shape[2:] + k, lambda: geometry(x.shape[2:], k))
        dt = x.dtype
        cd = _compute_dtype(dt)
        wt = pre_w if w is w_const else _convt_weights(w, group, cd)
        M = Mg * group
        if b is not None and b.size != M:
            raise ValueError(f"ConvTranspose: B has {b.size} values, expected {M}")
        xc = x if dt == cd else x.astype(cd)
        y = _convt_compute(xc, wt, group, Mg, k, s, d, out, pb, cd)
        if b is not None:
            y += b.astype(cd, copy=False).reshape((M,) + (1,) * nd)
        return (y if dt == cd else y.astype(dt),)
    return run


def _convt_weights(w, group, cd):
    """W (C, M/G, *k) as (G, M/G*kk, C/G): the GEMM that maps input channels to column rows."""
    C, Mg = w.shape[:2]
    kk = int(np.prod(w.shape[2:], dtype=np.int64))
    Cg = C // group
    return np.ascontiguousarray(w.reshape(group, Cg, Mg * kk).transpose(0, 2, 1), dtype=cd)


def _convt_compute(x, wt, group, Mg, k, s, d, out, pb, cd):
    nd = len(k)
    N, C = x.shape[:2]
    in_sp = x.shape[2:]
    G = group
    Cg = C // G
    M = G * Mg
    Pin = int(np.prod(in_sp, dtype=np.int64))
    xg = x.reshape(N, G, Cg, Pin)
    if cd == _F32:
        col = np.empty((N, G, wt.shape[1], Pin), _F32)
        for n in range(N):
            for g in range(G):
                _k.gemm(wt[g], np.ascontiguousarray(xg[n, g]), col[n, g])
    else:
        col = np.matmul(wt[None], xg)
    col = col.reshape((N, M) + tuple(k) + tuple(in_sp))
    # buffer coordinate of output o is o + pb + off; position of (input i, tap t) is i*s + t*d
    off = [max(0, -pb[i]) for i in range(nd)]
    span = [(in_sp[i] - 1) * s[i] + (k[i] - 1) * d[i] + 1 if in_sp[i] > 0 else 0 for i in range(nd)]
    blen = [max(span[i], pb[i] + out[i]) + off[i] for i in range(nd)]
    buf = np.zeros((N, M) + tuple(blen), dtype=cd)
    if Pin:
        for t in np.ndindex(*k):
            idx = (slice(None), slice(None)) + tuple(
                slice(off[i] + t[i] * d[i], off[i] + t[i] * d[i] + (in_sp[i] - 1) * s[i] + 1, s[i])
                for i in range(nd))
            buf[idx] += col[(slice(None), slice(None)) + t]
    crop = (slice(None), slice(None)) + tuple(slice(off[i] + pb[i], off[i] + pb[i] + out[i]) for i in range(nd))
    return np.ascontiguousarray(buf[crop])


# ---------------------------------------------------------------------------------------------------------
# pooling

def _pool_attrs(ctx: NodeCtx, op: str, dilations: bool):
    kernel = _ints(ctx, "kernel_shape")
    if kernel is None:
        raise Unsupported(f"{op} needs the attribute kernel_shape")
    nd = len(kernel)
    if any(v < 1 for v in kernel):
        raise Unsupported(f"kernel_shape must be >= 1, got {list(kernel)}")
    pads = _ints(ctx, "pads", (0,) * (2 * nd))
    if len(pads) != 2 * nd:
        raise Unsupported(f"pads has {len(pads)} values, expected {2 * nd}")
    if any(p < 0 for p in pads):
        raise Unsupported(f"negative pads {list(pads)}")
    strides = _ints(ctx, "strides", (1,) * nd)
    if len(strides) != nd or any(v < 1 for v in strides):
        raise Unsupported(f"strides {list(strides)} must be {nd} values >= 1")
    dil = _ints(ctx, "dilations", (1,) * nd) if dilations else (1,) * nd
    if len(dil) != nd or any(v < 1 for v in dil):
        raise Unsupported(f"dilations {list(dil)} must be {nd} values >= 1")
    ceil_mode = bool(ctx.attr("ceil_mode", 0))
    return kernel, pads, strides, dil, _auto_pad(ctx), ceil_mode


def _window_counts(in_sp, k, s, d, out, pb, pe, include_pad):
    """Number of window positions that count for an average, per output position (shape out)."""
    cnt = None
    for i in range(len(k)):
        pos = np.arange(out[i])[:, None] * s[i] + np.arange(k[i])[None, :] * d[i]  # padded coordinates
        if include_pad:
            ok = pos < in_sp[i] + pb[i] + pe[i]
        else:
            ok = (pos >= pb[i]) & (pos < pb[i] + in_sp[i])
        c = ok.sum(axis=1)
        cnt = c if cnt is None else np.multiply.outer(cnt, c)
    return cnt


def _fill_min(dt):
    if _is_float(dt):
        return -np.inf
    if dt.kind in "iu":
        return np.iinfo(dt).min
    if dt == np.bool_:
        return False
    raise TypeError(f"pooling does not support dtype {dt}")


@register("MaxPool", shape_inputs=())
def maxpool_op(ctx: NodeCtx):
    kernel, pads, strides, dil, auto_pad, ceil_mode = _pool_attrs(ctx, "MaxPool", ctx.version >= 10)
    storage_order = int(ctx.attr("storage_order", 0))
    if storage_order not in (0, 1):
        raise Unsupported(f"storage_order must be 0 or 1, got {storage_order}")
    want_idx = ctx.has_output(1)
    n_out = ctx.n_outputs
    nd = len(kernel)
    cache = _ShapeCache()

    def geometry(in_sp):
        out, pb, pe = _pool_geometry(in_sp, kernel, strides, dil, pads, auto_pad, ceil_mode, "MaxPool")
        need = tuple(max((out[i] - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1, 0) for i in range(nd))
        taps = None
        if want_idx:
            taps = []
            for t in np.ndindex(*kernel):
                coords = [np.arange(out[i]) * strides[i] + t[i] * dil[i] - pb[i] for i in range(nd)]
                if storage_order == 0:
                    mult = [int(np.prod(in_sp[i + 1:], dtype=np.int64)) for i in range(nd)]
                else:
                    mult = [int(np.prod(in_sp[:i], dtype=np.int64)) for i in range(nd)]
                flat = np.zeros(out, np.int64)
                for i in range(nd):
                    sh = [1] * nd
                    sh[i] = out[i]
                    flat = flat + (coords[i] * mult[i]).reshape(sh)
                taps.append(flat)
        return out, pb, need, taps

    def run(x):
        _check_rank(x, nd, "MaxPool")
        out, pb, need, taps = cache.get_or(x.shape[2:], lambda: geometry(x.shape[2:]))
        if not want_idx and nd == 2 and x.size:
            return (np.ascontiguousarray(_taps2d(x, pb, need, kernel, strides, dil, out, _fill_min(x.dtype),
                                                 np.maximum)), None)[:n_out]
        xp = _pad_input(x, pb, need, _fill_min(x.dtype))
        y = None
        if not want_idx:
            for t in np.ndindex(*kernel):
                v = _tap_view(xp, t, strides, dil, out)
                if y is None:
                    y = np.array(v, dtype=x.dtype)
                else:
                    np.maximum(y, v, out=y)
            return (y, None)[:n_out]
        N, C = x.shape[:2]
        idx = np.zeros((N, C) + tuple(out), np.int64)
        y = np.full((N, C) + tuple(out), _fill_min(x.dtype), dtype=x.dtype)
        for ti, t in enumerate(np.ndindex(*kernel)):
            v = _tap_view(xp, t, strides, dil, out)
            better = v > y
            np.copyto(y, v, where=better)
            np.copyto(idx, taps[ti], where=better)
        base = (np.arange(N * C, dtype=np.int64) * int(np.prod(x.shape[2:], dtype=np.int64)))
        idx += base.reshape((N, C) + (1,) * nd)
        return (y, idx)
    return run


@register("AveragePool", "LpPool", shape_inputs=())
def avgpool_op(ctx: NodeCtx):
    op = ctx.op_type
    lp = op == "LpPool"
    dil_ok = (op == "AveragePool" and ctx.version >= 19) or (lp and ctx.version >= 18)
    kernel, pads, strides, dil, auto_pad, ceil_mode = _pool_attrs(ctx, op, dil_ok)
    include_pad = bool(ctx.attr("count_include_pad", 0)) if not lp else True
    p = float(ctx.attr("p", 2)) if lp else 1.0
    nd = len(kernel)
    cache = _ShapeCache()

    def geometry(in_sp):
        out, pb, pe = _pool_geometry(in_sp, kernel, strides, dil, pads, auto_pad, ceil_mode, op)
        need = tuple((out[i] - 1) * strides[i] + (kernel[i] - 1) * dil[i] + 1 for i in range(nd))
        inv = None
        if not lp:
            cnt = _window_counts(in_sp, kernel, strides, dil, out, pb, pe, include_pad)
            inv = (1.0 / np.maximum(cnt, 1))
        return out, pb, need, inv

    def run(x):
        _check_rank(x, nd, op)
        if not _is_float(x.dtype):
            raise TypeError(f"{op}: input dtype {x.dtype} is not a float type")
        out, pb, need, inv = cache.get_or(x.shape[2:], lambda: geometry(x.shape[2:]))
        cd = _compute_dtype(x.dtype)
        xc = x if x.dtype == cd else x.astype(cd)
        if lp:
            xc = np.abs(xc) if p == 1.0 else (np.square(xc) if p == 2.0 else np.abs(xc) ** cd.type(p))
        if nd == 2 and x.size:
            y = np.array(_taps2d(xc, pb, need, kernel, strides, dil, out, 0, np.add), dtype=cd)
        else:
            xp = _pad_input(xc, pb, need, 0)
            y = None
            for t in np.ndindex(*kernel):
                v = _tap_view(xp, t, strides, dil, out)
                if y is None:
                    y = np.array(v, dtype=cd)
                else:
                    y += v
        if lp:
            y = np.sqrt(y, out=y) if p == 2.0 else (y if p == 1.0 else y ** cd.type(1.0 / p))
        else:
            y *= inv.astype(cd, copy=False)
        return (y.astype(x.dtype, copy=False),)
    return run


@register("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", shape_inputs=())
def global_pool_op(ctx: NodeCtx):
    op = ctx.op_type
    p = float(ctx.attr("p", 2)) if op == "GlobalLpPool" else None

    def run(x):
        if x.ndim < 2:
            raise ValueError(f"{op}: input has shape {list(x.shape)}; expected (N, C, ...)")
        axes = tuple(range(2, x.ndim))
        if op == "GlobalMaxPool":
            if x.size == 0 and axes and x.shape[0] * x.shape[1]:
                raise ValueError(f"{op}: empty spatial dims {list(x.shape)}")
            return (np.max(x, axis=axes, keepdims=True) if axes else x.copy(),)
        if not _is_float(x.dtype):
            raise TypeError(f"{op}: input dtype {x.dtype} is not a float type")
        cd = _compute_dtype(x.dtype)
        xc = x.astype(cd, copy=False)
        if op == "GlobalAveragePool":
            y = np.mean(xc, axis=axes, keepdims=True, dtype=cd)
        elif p == 2.0:
            y = np.sqrt(np.sum(np.square(xc), axis=axes, keepdims=True))
        else:
            y = np.sum(np.abs(xc) ** cd.type(p), axis=axes, keepdims=True) ** cd.type(1.0 / p)
        return (y.astype(x.dtype, copy=False),)
    return run


@register("MaxUnpool", shape_inputs=(2,))
def maxunpool_op(ctx: NodeCtx):
    kernel = _ints(ctx, "kernel_shape")
    if kernel is None:
        raise Unsupported("MaxUnpool needs the attribute kernel_shape")
    nd = len(kernel)
    pads = _ints(ctx, "pads", (0,) * (2 * nd))
    strides = _ints(ctx, "strides", (1,) * nd)
    if len(pads) != 2 * nd or len(strides) != nd:
        raise Unsupported(f"pads {list(pads)} / strides {list(strides)} do not fit kernel_shape {list(kernel)}")

    def run(x, ind, output_shape=None):
        _check_rank(x, nd, "MaxUnpool")
        if ind.shape != x.shape:
            raise ValueError(f"MaxUnpool: I has shape {list(ind.shape)}, X has {list(x.shape)}")
        inferred = x.shape[:2] + tuple((x.shape[2 + i] - 1) * strides[i] - pads[i] - pads[i + nd] + kernel[i]
                                       for i in range(nd))
        total = int(np.prod(inferred, dtype=np.int64))
        flat_i = ind.reshape(-1).astype(np.int64, copy=False)
        if flat_i.size and (flat_i.min() < 0 or flat_i.max() >= total):
            raise ValueError(f"MaxUnpool: an index is outside the unpooled tensor of shape {list(inferred)}")
        y = np.zeros(total, dtype=x.dtype)
        y[flat_i] = x.reshape(-1)
        y = y.reshape(inferred)
        if output_shape is None:
            return (y,)
        shape = tuple(int(v) for v in np.asarray(output_shape).reshape(-1))
        if len(shape) != len(inferred):
            raise ValueError(f"MaxUnpool: output_shape {list(shape)} has the wrong rank")
        if shape == inferred:
            return (y,)
        res = np.zeros(shape, dtype=x.dtype)
        sl = tuple(slice(0, min(a, b)) for a, b in zip(inferred, shape))
        res[sl] = y[sl]
        return (res,)
    return run


# ---------------------------------------------------------------------------------------------------------
# normalizations

def _chan_shape(x_ndim: int, v: np.ndarray) -> tuple:
    """Broadcast shape of a per-channel parameter against (N, C, ...): (C, 1, ..., 1)."""
    if v.ndim == 1:
        return (v.shape[0],) + (1,) * (x_ndim - 2)
    return v.shape  # opset < 9 with spatial=0: (C, D1, ...)


@register("BatchNormalization", shape_inputs=())
def batchnorm_op(ctx: NodeCtx):
    eps = float(ctx.attr("epsilon", 1e-5))
    momentum = float(ctx.attr("momentum", 0.9))
    training = bool(ctx.attr("training_mode", 0)) if ctx.version >= 14 else False
    if ctx.version < 14:
        if ctx.version < 7 and not ctx.attr("is_test", 0) and any(ctx.has_output(i) for i in range(1, 5)):
            raise Unsupported("training-mode BatchNormalization (is_test=0 with extra outputs) before opset 7")
        if any(ctx.has_output(i) for i in range(1, ctx.n_outputs)):
            raise Unsupported("the training outputs (mean, var, saved_mean, saved_var) before opset 14")
    n_out = ctx.n_outputs
    consts = [ctx.const(i) for i in range(1, 5)]
    folded = None
    if not training and all(c is not None for c in consts):
        sc, bb, mm, vv = (c.astype(np.float64) for c in consts)
        a = sc / np.sqrt(vv + eps)
        folded = (a, bb - mm * a)
    cache = {}

    def run(x, scale, bias, mean, var):
        if x.ndim < 2:
            raise ValueError(f"BatchNormalization: X has shape {list(x.shape)}; expected (N, C, ...)")
        C = x.shape[1]
        for nm, v in (("scale", scale), ("B", bias), ("input_mean", mean), ("input_var", var)):
            if v.shape[0] != C if v.ndim else True:
                raise ValueError(f"BatchNormalization: {nm} has shape {list(v.shape)}, expected [{C}]")
        cd = _compute_dtype(x.dtype)
        if training:
            axes = (0,) + tuple(range(2, x.ndim))
            xc = x.astype(cd, copy=False)
            bm = xc.mean(axis=axes)
            bv = xc.var(axis=axes)
            sh = (C,) + (1,) * (x.ndim - 2)
            inv = scale.astype(cd) / np.sqrt(bv + cd.type(eps))
            y = (xc - bm.reshape(sh)) * inv.reshape(sh) + bias.astype(cd).reshape(sh)
            rm = mean * momentum + bm * (1 - momentum)
            rv = var * momentum + bv * (1 - momentum)
            return (y.astype(x.dtype, copy=False), rm.astype(mean.dtype, copy=False),
                    rv.astype(var.dtype, copy=False))
        if folded is not None and consts[0] is scale and consts[1] is bias and consts[2] is mean \
                and consts[3] is var:
            key = (x.ndim, cd)
            ab = cache.get(key)
            if ab is None:
                ab = cache[key] = tuple(np.ascontiguousarray(v.astype(cd).reshape(_chan_shape(x.ndim, consts[0])))
                                        for v in folded)
        else:
            sc, bb, mm, vv = (v.astype(np.float64) if cd == np.float64 else v.astype(_F32)
                              for v in (scale, bias, mean, var))
            a = sc / np.sqrt(vv + eps)
            sh = _chan_shape(x.ndim, scale)
            ab = (a.astype(cd).reshape(sh), (bb - mm * a).astype(cd).reshape(sh))
        y = np.multiply(x, ab[0], dtype=cd)
        y += ab[1]
        out = (y.astype(x.dtype, copy=False),)
        return out + (None,) * (n_out - 1)
    return run


def fold_batchnorm(w: np.ndarray, b: np.ndarray | None, scale, bias, mean, var, epsilon: float = 1e-5):
    """Conv weights (M, C/G, *k) and bias (M,) with an inference BatchNormalization that follows the Conv folded
    in: returns (w', b') with Conv(x, w', b') == BN(Conv(x, w, b)). For a graph pass (not used by the ops);
    computed in float64, returned in w's dtype."""
    a = np.asarray(scale, np.float64) / np.sqrt(np.asarray(var, np.float64) + epsilon)
    if a.shape != (w.shape[0],):
        raise ValueError(f"fold_batchnorm: BN parameters have shape {list(a.shape)}, the Conv has {w.shape[0]} "
                         f"output channels")
    b0 = np.zeros(w.shape[0]) if b is None else np.asarray(b, np.float64)
    w2 = (w.astype(np.float64) * a.reshape((-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
    b2 = ((b0 - np.asarray(mean, np.float64)) * a + np.asarray(bias, np.float64)).astype(w.dtype)
    return w2, b2


@register("InstanceNormalization", shape_inputs=())
def instancenorm_op(ctx: NodeCtx):
    eps = float(ctx.attr("epsilon", 1e-5))

    def run(x, scale, bias):
        if x.ndim < 3:
            raise ValueError(f"InstanceNormalization: X has shape {list(x.shape)}; expected (N, C, D1, ...)")
        C = x.shape[1]
        if scale.shape != (C,) or bias.shape != (C,):
            raise ValueError(f"InstanceNormalization: scale {list(scale.shape)} and B {list(bias.shape)} must "
                             f"be [{C}]")
        cd = _compute_dtype(x.dtype)
        axes = tuple(range(2, x.ndim))
        xc = x.astype(cd, copy=False)
        mean = xc.mean(axis=axes, keepdims=True)
        d = xc - mean
        var = np.mean(np.square(d), axis=axes, keepdims=True)
        sh = (C,) + (1,) * (x.ndim - 2)
        inv = scale.astype(cd).reshape(sh) / np.sqrt(var + cd.type(eps))
        d *= inv
        d += bias.astype(cd).reshape(sh)
        return (d.astype(x.dtype, copy=False),)
    return run


def _stash(ctx: NodeCtx):
    st = int(ctx.attr("stash_type", 1))
    if st not in (1, 11):   # float32, double
        raise Unsupported(f"stash_type {st} (only float32=1 and double=11)")
    return np.dtype(np.float32) if st == 1 else np.dtype(np.float64)


@register("LayerNormalization", shape_inputs=())
def layernorm_op(ctx: NodeCtx):
    axis = int(ctx.attr("axis", -1))
    eps = float(ctx.attr("epsilon", 1e-5))
    sd = _stash(ctx)
    want_mean, want_inv = ctx.has_output(1), ctx.has_output(2)
    n_out = ctx.n_outputs

    def run(x, scale, bias=None):
        r = x.ndim
        a = axis + r if axis < 0 else axis
        if not 0 <= a < r:
            raise ValueError(f"LayerNormalization: axis {axis} is out of range for rank {r}")
        rows = int(np.prod(x.shape[:a], dtype=np.int64))
        cols = int(np.prod(x.shape[a:], dtype=np.int64))
        cd = sd if sd.itemsize >= x.dtype.itemsize else x.dtype
        x2 = x.reshape(rows, cols).astype(cd, copy=False)
        mean = x2.mean(axis=1, keepdims=True)
        d = x2 - mean
        var = np.einsum("ij,ij->i", d, d).reshape(rows, 1) / cd.type(max(cols, 1)) if cols else mean * 0
        inv = 1.0 / np.sqrt(var + cd.type(eps))
        d *= inv
        y = d.reshape(x.shape)
        try:   # in place: y is this call's own array; scale/B must broadcast to x.shape[axis:]
            np.multiply(y, scale.astype(cd, copy=False), out=y)
            if bias is not None:
                np.add(y, bias.astype(cd, copy=False), out=y)
        except ValueError:
            raise ValueError(f"LayerNormalization: scale {list(scale.shape)} / B "
                             f"{None if bias is None else list(bias.shape)} do not broadcast to "
                             f"{list(x.shape[a:])}") from None
        res = [y.astype(x.dtype, copy=False)]
        red = x.shape[:a] + (1,) * (r - a)
        if n_out > 1:
            res.append(mean.reshape(red).astype(sd, copy=False) if want_mean else None)
        if n_out > 2:
            res.append(inv.reshape(red).astype(sd, copy=False) if want_inv else None)
        return tuple(res)
    return run


@register("RMSNormalization", shape_inputs=())
def rmsnorm_op(ctx: NodeCtx):
    axis = int(ctx.attr("axis", -1))
    eps = float(ctx.attr("epsilon", 1e-5))
    sd = _stash(ctx)

    def run(x, scale):
        r = x.ndim
        a = axis + r if axis < 0 else axis
        if not 0 <= a < r:
            raise ValueError(f"RMSNormalization: axis {axis} is out of range for rank {r}")
        rows = int(np.prod(x.shape[:a], dtype=np.int64))
        cols = int(np.prod(x.shape[a:], dtype=np.int64))
        cd = sd if sd.itemsize >= x.dtype.itemsize else x.dtype
        x2 = x.reshape(rows, cols).astype(cd, copy=False)
        ms = np.einsum("ij,ij->i", x2, x2).reshape(rows, 1) / cd.type(max(cols, 1))
        y = (x2 * (1.0 / np.sqrt(ms + cd.type(eps))).astype(cd, copy=False)).reshape(x.shape)
        y = y * scale.astype(cd, copy=False)
        if y.shape != x.shape:
            raise ValueError(f"RMSNormalization: scale {list(scale.shape)} broadcasts the output to "
                             f"{list(y.shape)}")
        return (y.astype(x.dtype, copy=False),)
    return run


@register("GroupNormalization", shape_inputs=())
def groupnorm_op(ctx: NodeCtx):
    G = int(ctx.attr("num_groups"))
    eps = float(ctx.attr("epsilon", 1e-5))
    version = ctx.version
    per_channel = version >= 21
    sd = _stash(ctx) if ctx.version >= 21 else _F32
    if G < 1:
        raise Unsupported(f"num_groups must be >= 1, got {G}")

    def run(x, scale, bias):
        if x.ndim < 2:
            raise ValueError(f"GroupNormalization: X has shape {list(x.shape)}; expected (N, C, ...)")
        N, C = x.shape[:2]
        if C % G:
            raise ValueError(f"GroupNormalization: {C} channels are not divisible by num_groups {G}")
        want = C if per_channel else G
        if scale.shape != (want,) or bias.shape != (want,):
            raise ValueError(f"GroupNormalization: scale {list(scale.shape)} and bias {list(bias.shape)} must be "
                             f"[{want}] at opset {version}")
        cd = sd if sd.itemsize >= x.dtype.itemsize else x.dtype
        x3 = x.reshape(N, G, -1).astype(cd, copy=False)
        mean = x3.mean(axis=2, keepdims=True)
        d = x3 - mean
        var = np.mean(np.square(d), axis=2, keepdims=True)
        d *= 1.0 / np.sqrt(var + cd.type(eps))
        sh = (C,) + (1,) * (x.ndim - 2)
        if per_channel:
            s, b = scale.astype(cd), bias.astype(cd)
        else:
            s, b = np.repeat(scale.astype(cd), C // G), np.repeat(bias.astype(cd), C // G)
        y = d.reshape(x.shape) * s.reshape(sh) + b.reshape(sh)
        return (y.astype(x.dtype, copy=False),)
    return run


@register("LRN", shape_inputs=())
def lrn_op(ctx: NodeCtx):
    size = int(ctx.attr("size"))
    alpha = float(ctx.attr("alpha", 1e-4))
    beta = float(ctx.attr("beta", 0.75))
    bias = float(ctx.attr("bias", 1.0))
    if size < 1:
        raise Unsupported(f"size must be >= 1, got {size}")
    lo = (size - 1) // 2   # the window is [c - lo, c + size - 1 - lo]

    def run(x):
        if x.ndim < 3:
            raise ValueError(f"LRN: X has shape {list(x.shape)}; expected (N, C, D1, ...)")
        cd = _compute_dtype(x.dtype)
        sq = np.square(x.astype(cd, copy=False))
        C = x.shape[1]
        padded = np.zeros((x.shape[0], C + size - 1) + x.shape[2:], dtype=cd)
        padded[:, lo:lo + C] = sq
        ssum = padded[:, 0:C].copy()
        for j in range(1, size):
            ssum += padded[:, j:j + C]
        y = x.astype(cd, copy=False) / (cd.type(bias) + cd.type(alpha / size) * ssum) ** cd.type(beta)
        return (y.astype(x.dtype, copy=False),)
    return run


# ---------------------------------------------------------------------------------------------------------
# RotaryEmbedding, Attention (opset 23+)

@register("RotaryEmbedding", shape_inputs=())
def rotary_op(ctx: NodeCtx):
    interleaved = bool(ctx.attr("interleaved", 0))
    rot_dim_attr = int(ctx.attr("rotary_embedding_dim", 0))
    num_heads = int(ctx.attr("num_heads", 0))

    def run(x, cos, sin, position_ids=None):
        if x.ndim == 4:
            B, H, S, D = x.shape
            x4 = x                       # (B, H, S, D): the caches broadcast as (B, 1, S, half)
            head_axis = 1
        elif x.ndim == 3:
            if num_heads <= 0:
                raise ValueError("RotaryEmbedding: a 3-D input needs the attribute num_heads")
            B, S, hidden = x.shape
            if hidden % num_heads:
                raise ValueError(f"RotaryEmbedding: hidden size {hidden} is not divisible by num_heads {num_heads}")
            D = hidden // num_heads
            x4 = x.reshape(B, S, num_heads, D)   # caches broadcast as (B, S, 1, half)
            head_axis = 2
        else:
            raise ValueError(f"RotaryEmbedding: input has shape {list(x.shape)}; expected 3-D or 4-D")
        rd = rot_dim_attr or D
        if rd > D or rd % 2:
            raise ValueError(f"RotaryEmbedding: rotary_embedding_dim {rd} must be even and <= head size {D}")
        half = rd // 2
        if position_ids is not None:
            pid = position_ids.astype(np.int64, copy=False)
            if pid.size and (pid.min() < 0 or pid.max() >= cos.shape[0]):
                raise ValueError(f"RotaryEmbedding: a position id is outside the caches' {cos.shape[0]} rows")
            cos, sin = cos[pid], sin[pid]
        if cos.shape[-1] != half or sin.shape[-1] != half:
            raise ValueError(f"RotaryEmbedding: the caches' last dim ({cos.shape[-1]}, {sin.shape[-1]}) must be "
                             f"rotary_embedding_dim/2 = {half}")
        cd = _compute_dtype(x.dtype)
        c = np.expand_dims(cos.astype(cd, copy=False), head_axis)
        s = np.expand_dims(sin.astype(cd, copy=False), head_axis)
        xc = x4.astype(cd, copy=False)
        xr = xc[..., :rd]
        if interleaved:
            x1, x2 = xr[..., 0::2], xr[..., 1::2]
        else:
            x1, x2 = xr[..., :half], xr[..., half:]
        y = np.empty(x4.shape, dtype=cd)
        real = c * x1 - s * x2
        imag = s * x1 + c * x2
        if interleaved:
            y[..., 0:rd:2] = real
            y[..., 1:rd:2] = imag
        else:
            y[..., :half] = real
            y[..., half:rd] = imag
        y[..., rd:] = xc[..., rd:]
        return (y.reshape(x.shape).astype(x.dtype, copy=False),)
    return run


def _softmax_lastaxis(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; a row that is all -inf gives zeros (not NaN)."""
    m = np.max(x, axis=-1, keepdims=True)
    m = np.where(np.isneginf(m), 0, m)
    e = np.exp(x - m)
    s = np.sum(e, axis=-1, keepdims=True)
    s[s == 0] = 1
    e /= s
    return e


_NP_OF_ONNX = {1: np.dtype(np.float32), 10: np.dtype(np.float16), 11: np.dtype(np.float64)}


@register("Attention", shape_inputs=())
def attention_op(ctx: NodeCtx):
    v = ctx.version
    is_causal = bool(ctx.attr("is_causal", 0))
    q_heads = ctx.attr("q_num_heads", None)
    kv_heads = ctx.attr("kv_num_heads", None)
    scale_attr = ctx.attr("scale", None)
    softcap = float(ctx.attr("softcap", 0.0))
    mode = int(ctx.attr("qk_matmul_output_mode", 0))
    sp = ctx.attr("softmax_precision", None)
    left = int(ctx.attr("left_window_size", -1)) if v >= 25 else -1
    right = int(ctx.attr("right_window_size", -1)) if v >= 25 else -1
    if mode not in (0, 1, 2, 3):
        raise Unsupported(f"qk_matmul_output_mode {mode}")
    if left < -1 or right < -1:
        raise Unsupported(f"window sizes must be -1 or >= 0, got left {left}, right {right}")
    if sp is not None and int(sp) not in _NP_OF_ONNX:
        raise Unsupported(f"softmax_precision {sp} (only float, float16 and double)")
    sp_dtype = None if sp is None else _NP_OF_ONNX[int(sp)]
    if ctx.has_input(4) != ctx.has_input(5):
        raise Unsupported("past_key and past_value must be given together")
    if ctx.has_input(6) and ctx.has_input(4):
        raise Unsupported("nonpad_kv_seqlen cannot be combined with past_key/past_value")
    n_out = ctx.n_outputs
    has_out = ctx.has_output
    want_qk = ctx.has_output(3)

    def run(Q, K, V, attn_mask=None, past_key=None, past_value=None, nonpad=None):
        if not (Q.ndim == K.ndim == V.ndim) or Q.ndim not in (3, 4):
            raise ValueError(f"Attention: Q, K, V must all be 3-D or all 4-D, got shapes {list(Q.shape)}, "
                             f"{list(K.shape)}, {list(V.shape)}")
        three_d = Q.ndim == 3
        B = Q.shape[0]
        if three_d:
            if not q_heads or not kv_heads:
                raise ValueError("Attention: 3-D inputs need the attributes q_num_heads and kv_num_heads")
            for nm, t, h in (("Q", Q, q_heads), ("K", K, kv_heads), ("V", V, kv_heads)):
                if t.shape[2] % h:
                    raise ValueError(f"Attention: {nm}'s hidden size {t.shape[2]} is not divisible by {h} heads")
            Q = Q.reshape(B, Q.shape[1], q_heads, -1).transpose(0, 2, 1, 3)
            K = K.reshape(B, K.shape[1], kv_heads, -1).transpose(0, 2, 1, 3)
            V = V.reshape(B, V.shape[1], kv_heads, -1).transpose(0, 2, 1, 3)
        elif v >= 25 and (q_heads is not None or kv_heads is not None):
            raise ValueError("Attention: q_num_heads and kv_num_heads must not be given with 4-D inputs")
        dt = Q.dtype
        cd = _compute_dtype(dt)
        if past_key is not None:
            K = np.concatenate((past_key, K), axis=2)
            V = np.concatenate((past_value, V), axis=2)
        present_k, present_v = K, V
        Hq, Sq, Dq = Q.shape[1:]
        Hk, Skv = K.shape[1], K.shape[2]
        if V.shape[1] != Hk or V.shape[2] != Skv or K.shape[3] != Dq:
            raise ValueError(f"Attention: K {list(K.shape)} and V {list(V.shape)} do not fit Q {list(Q.shape)}")
        if Hq % Hk:
            raise ValueError(f"Attention: {Hq} query heads are not a multiple of {Hk} key/value heads")
        rep = Hq // Hk
        scale = float(scale_attr) if scale_attr is not None else 1.0 / math.sqrt(Dq)

        # additive bias (right-aligned broadcast against (B, Hq, Sq, Skv))
        bias = np.zeros((Sq, Skv), dtype=cd)
        if attn_mask is not None:
            m = attn_mask
            if m.shape[-1] < Skv:
                pad = [(0, 0)] * (m.ndim - 1) + [(0, Skv - m.shape[-1])]
                m = np.pad(m, pad, constant_values=False if m.dtype == np.bool_ else -np.inf)
            if m.dtype == np.bool_:
                m = np.where(m, cd.type(0), cd.type(-np.inf))
            bias = bias + m.astype(cd, copy=False)
        if nonpad is not None:
            nonpad = nonpad.reshape(-1).astype(np.int64, copy=False)
            offset = (nonpad - Sq).reshape(-1, 1, 1, 1)        # per batch
        else:
            offset = past_key.shape[2] if past_key is not None else 0
        if is_causal or left >= 0 or right >= 0:
            i = np.arange(Sq).reshape(Sq, 1)
            j = np.arange(Skv).reshape(1, Skv)
            diff = (i + offset) - j
            allowed = np.ones(np.shape(diff), dtype=bool)
            if is_causal:
                allowed &= diff >= 0
            if left >= 0:
                allowed &= diff <= left
            if right >= 0:
                allowed &= -diff <= right
            bias = bias + np.where(allowed, cd.type(0), cd.type(-np.inf))
        if nonpad is not None:
            pm = np.arange(Skv).reshape(1, Skv) < nonpad.reshape(-1, 1)
            bias = bias + np.where(pm, cd.type(0), cd.type(-np.inf)).reshape(B, 1, 1, Skv)
        try:
            np.broadcast_shapes(bias.shape, (B, Hq, Sq, Skv))
        except ValueError:
            raise ValueError(f"Attention: attn_mask of shape {list(attn_mask.shape)} does not broadcast to "
                             f"{[B, Hq, Sq, Skv]}") from None

        # scores, grouped so that query heads share their key/value head without copying K/V
        q5 = (Q.astype(cd, copy=False) * cd.type(scale)).reshape(B, Hk, rep, Sq, Dq)
        kt5 = K.astype(cd, copy=False).transpose(0, 1, 3, 2)[:, :, None]
        mm = _ematmul if cd == _F32 else np.matmul
        qk = mm(np.ascontiguousarray(q5), kt5).reshape(B, Hq, Sq, Skv)
        if softcap > 0:
            qk = np.tanh(qk / cd.type(softcap)) * cd.type(softcap)
        qkb = qk + bias
        qk_out = None
        if want_qk:
            qk_out = qkb if mode == 2 else qk
        probs = _softmax_lastaxis(qkb if sp_dtype is None else qkb.astype(sp_dtype))
        dead = np.isneginf(np.max(bias, axis=-1, keepdims=True))
        if dead.any():
            probs = np.where(dead, 0, probs)
        if want_qk and mode == 3:
            qk_out = probs
        p5 = probs.astype(cd, copy=False).reshape(B, Hk, rep, Sq, Skv)
        y = mm(np.ascontiguousarray(p5), V.astype(cd, copy=False)[:, :, None]).reshape(B, Hq, Sq, V.shape[3])
        if three_d:
            y = y.transpose(0, 2, 1, 3).reshape(B, Sq, Hq * V.shape[3])
        res = [np.ascontiguousarray(y).astype(dt, copy=False)]
        if n_out > 1:
            res.append(present_k if has_out(1) else None)
        if n_out > 2:
            res.append(present_v if has_out(2) else None)
        if n_out > 3:
            res.append(None if qk_out is None else np.broadcast_to(qk_out, (B, Hq, Sq, Skv)).astype(dt))
        return tuple(res)
    return run
