"""Quantization ops (see engine.ops._registry for the conventions): QuantizeLinear, DequantizeLinear (opset 10 to
the newest: per-tensor, per-axis, blocked; 2/4/8/16-bit integers and float8/float4 via ml_dtypes),
DynamicQuantizeLinear, MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv.

Rounding is to nearest with ties to even (np.rint), then saturation to the output type's range, as the spec says.
Integer products (MatMulInteger, ConvInteger, QLinearMatMul, QLinearConv): the operands, zero points taken off,
are integer-valued float32 arrays (|v| <= 255 for 8-bit types) multiplied by engine's float32 GEMM with K split so
that no partial sum exceeds 2**24: every float32 operation is then exact, so the result equals the int32
accumulation the spec describes (whenever that does not overflow). Convolutions are im2col (numpy) + that GEMM.
A dedicated int8 GEMM kernel (u8s8 dot products) would be faster; this path is exact and reasonably fast.
"""
from __future__ import annotations

import math

import ml_dtypes
import numpy as np

from engine.linalg import matmul as _ematmul
from engine.ops._registry import NodeCtx, Unsupported, register

_INT_RANGES = {
    np.dtype(np.uint8): (0, 255), np.dtype(np.int8): (-128, 127),
    np.dtype(np.uint16): (0, 65535), np.dtype(np.int16): (-32768, 32767),
    np.dtype(ml_dtypes.uint4): (0, 15), np.dtype(ml_dtypes.int4): (-8, 7),
    np.dtype(ml_dtypes.uint2): (0, 3), np.dtype(ml_dtypes.int2): (-2, 1),
}
_FLOAT8 = {np.dtype(t) for t in (ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2,
                                 ml_dtypes.float8_e5m2fnuz)}
_FLOAT4 = {np.dtype(ml_dtypes.float4_e2m1fn)}
for _n in ("float6_e2m3fn", "float6_e3m2fn"):
    if hasattr(ml_dtypes, _n):
        _FLOAT4.add(np.dtype(getattr(ml_dtypes, _n)))
_FLOAT_OUT = {np.dtype(np.float32), np.dtype(np.float16), np.dtype(ml_dtypes.bfloat16), np.dtype(np.float64)}


def _onnx_np_dtype(code: int) -> np.dtype:
    from onnx import helper

    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(int(code)))
    except Exception:
        raise Unsupported(f"unknown ONNX data type {code}") from None


def _expand(v: np.ndarray, shape: tuple, axis: int, block: int, what: str) -> np.ndarray:
    """Scale / zero point made broadcastable to `shape` (per tensor, per axis or blocked)."""
    if v.ndim == 0 or v.size == 1:
        return v.reshape(())
    r = len(shape)
    if not -r <= axis < r:
        raise ValueError(f"axis {axis} is out of range for an input of rank {r}")
    axis %= r
    if not block:
        if v.ndim != 1 or v.shape[0] != shape[axis]:
            raise ValueError(f"{what} has shape {list(v.shape)}: per-axis quantization needs a 1-D tensor of "
                             f"{shape[axis]} (input shape {list(shape)}, axis {axis})")
        dims = [1] * r
        dims[axis] = shape[axis]
        return v.reshape(dims)
    if v.ndim != r or any(v.shape[i] != shape[i] for i in range(r) if i != axis) \
            or v.shape[axis] != -(-shape[axis] // block):
        raise ValueError(f"{what} has shape {list(v.shape)}: blocked quantization of an input of shape "
                         f"{list(shape)} with block_size {block} on axis {axis} needs ceil({shape[axis]}/{block}) "
                         "on that axis and the input's size elsewhere")
    v = np.repeat(v, block, axis=axis)
    if v.shape[axis] != shape[axis]:
        v = v.take(np.arange(shape[axis]), axis=axis)
    return v


def _saturate_round(v: np.ndarray, dt: np.dtype) -> np.ndarray:
    """Float values -> integer type dt: round half to even, clip to the range."""
    lo, hi = _INT_RANGES[dt]
    v = np.rint(v)
    np.clip(v, lo, hi, out=v)
    return v.astype(dt)


def _to_float_type(v: np.ndarray, dt: np.dtype, saturate: bool) -> np.ndarray:
    """Float values -> float8/float4 type dt (round to nearest even); saturating maps overflow (and +-inf) to
    the largest finite value, keeping NaN."""
    if saturate or dt in _FLOAT4:
        m = float(ml_dtypes.finfo(dt).max)
        v = np.clip(v, -m, m)
    return v.astype(dt)


def _quantize(v: np.ndarray, dt: np.dtype, zp, saturate: bool) -> np.ndarray:
    """v (already divided by the scale: a fresh array, updated in place) + zero point, rounded and saturated
    into dt."""
    if not isinstance(v, np.ndarray) or not v.flags.writeable:
        v = np.array(v)                                  # a 0-d division gives a numpy scalar
    if dt in _INT_RANGES:
        np.rint(v, out=v)
        if zp is not None:
            v += zp.astype(v.dtype)
        lo, hi = _INT_RANGES[dt]
        np.clip(v, lo, hi, out=v)
        return v.astype(dt)
    if zp is not None:
        zf = zp.astype(np.float32)
        if np.any(zf):
            v = v + zf
    return _to_float_type(v, dt, saturate)


# ---------------------------------------------------------------------------------------------------------


@register("QuantizeLinear", shape_inputs=())
def quantize_linear(ctx: NodeCtx):
    v = ctx.version
    axis = int(ctx.attr("axis", 1)) if v >= 13 else 1
    saturate = bool(ctx.attr("saturate", 1)) if v >= 19 else True
    block = int(ctx.attr("block_size", 0)) if v >= 21 else 0
    if block < 0:
        raise Unsupported(f"block_size must be positive, got {block}")
    out_code = int(ctx.attr("output_dtype", 0)) if v >= 21 else 0
    prec_code = int(ctx.attr("precision", 0)) if v >= 23 else 0
    zp_dt = ctx.in_dtype(2)
    if ctx.has_input(2) and zp_dt is not None:
        out_dt = np.dtype(zp_dt)
        if out_code and _onnx_np_dtype(out_code) != out_dt:
            raise Unsupported(f"output_dtype {_onnx_np_dtype(out_code)} differs from the zero point's type {out_dt}")
    elif ctx.has_input(2) and not out_code:
        out_dt = None                                    # zero point of a type unknown at load: taken from it
    else:
        out_dt = _onnx_np_dtype(out_code) if out_code else np.dtype(np.uint8)
    if out_dt is not None and out_dt not in _INT_RANGES and out_dt not in _FLOAT8 and out_dt not in _FLOAT4:
        raise Unsupported(f"QuantizeLinear cannot produce {out_dt}")
    prec = _onnx_np_dtype(prec_code) if prec_code else None
    if prec is not None and prec not in _FLOAT_OUT:
        raise Unsupported(f"precision must be a float type, got {prec}")
    has_zp = ctx.has_input(2)

    def run(x, scale, zp=None):
        if v < 19 and scale.ndim > 1:
            raise ValueError(f"QuantizeLinear-{v}: y_scale must be a scalar or 1-D, got shape {list(scale.shape)}")
        dt = out_dt
        if zp is not None:
            if dt is None:
                dt = zp.dtype
                if dt not in _INT_RANGES and dt not in _FLOAT8 and dt not in _FLOAT4:
                    raise ValueError(f"QuantizeLinear cannot produce {dt} (the zero point's type)")
            if zp.dtype != dt:
                raise ValueError(f"QuantizeLinear: y_zero_point has type {zp.dtype}, expected {dt}")
            if zp.shape != scale.shape and zp.size != 1 or zp.size != scale.size:
                raise ValueError(f"QuantizeLinear: y_zero_point shape {list(zp.shape)} differs from y_scale shape "
                                 f"{list(scale.shape)}")
        s = _expand(scale, x.shape, axis, block, "y_scale")
        if s.dtype not in _FLOAT_OUT and s.dtype.kind not in "iu":
            s = s.astype(np.float32)                     # float8e8m0 scales (powers of two: exact in float32)
        if prec is not None:
            q = x.astype(prec) / s.astype(prec)
        else:
            q = x / s
        if q.dtype not in (np.float32, np.float64):
            q = q.astype(np.float32)
        z = _expand(zp, x.shape, axis, block, "y_zero_point") if zp is not None else None
        return (_quantize(q, dt, z, saturate),)

    if not has_zp:
        def run_nozp(x, scale, zp=None):
            return run(x, scale, None)
        return run_nozp
    return run


@register("DequantizeLinear", shape_inputs=())
def dequantize_linear(ctx: NodeCtx):
    v = ctx.version
    axis = int(ctx.attr("axis", 1)) if v >= 13 else 1
    block = int(ctx.attr("block_size", 0)) if v >= 21 else 0
    if block < 0:
        raise Unsupported(f"block_size must be positive, got {block}")
    out_code = int(ctx.attr("output_dtype", 0)) if v >= 23 else 0
    out_attr = _onnx_np_dtype(out_code) if out_code else None
    if out_attr is not None and out_attr not in _FLOAT_OUT:
        raise Unsupported(f"DequantizeLinear output_dtype must be a float type, got {out_attr}")

    def run(x, scale, zp=None):
        if v < 19 and scale.ndim > 1:
            raise ValueError(f"DequantizeLinear-{v}: x_scale must be a scalar or 1-D, got shape {list(scale.shape)}")
        out_dt = out_attr if out_attr is not None else scale.dtype
        if out_dt not in _FLOAT_OUT:
            raise ValueError(f"DequantizeLinear: output type {out_dt} (from x_scale) is not a float type; "
                             "set output_dtype")
        xf = x.astype(np.float32)
        if zp is not None:
            if zp.dtype != x.dtype:
                raise ValueError(f"DequantizeLinear: x_zero_point has type {zp.dtype}, x has {x.dtype}")
            if zp.size != scale.size:
                raise ValueError(f"DequantizeLinear: x_zero_point shape {list(zp.shape)} differs from x_scale "
                                 f"shape {list(scale.shape)}")
            zf = _expand(zp, x.shape, axis, block, "x_zero_point").astype(np.float32)
            if zf.ndim or float(zf) != 0.0:
                xf -= zf                                  # xf is a fresh array (astype copies)
        s = _expand(scale, x.shape, axis, block, "x_scale").astype(np.float32)
        xf *= s
        return (xf.astype(out_dt, copy=False),)
    return run


@register("DynamicQuantizeLinear", shape_inputs=())
def dynamic_quantize_linear(ctx: NodeCtx):
    def run(x):
        if x.dtype != np.float32:
            raise ValueError(f"DynamicQuantizeLinear: x must be float32, got {x.dtype}")
        mx = np.float32(max(0.0, float(x.max()))) if x.size else np.float32(0)
        mn = np.float32(min(0.0, float(x.min()))) if x.size else np.float32(0)
        scale = np.float32(np.float32(1.0) if mx == mn else mx - mn) / np.float32(255)
        zp = np.float32(np.clip(np.float32(0) - mn / scale, 0, 255))
        zpi = np.rint(zp)
        y = np.rint(x / scale)
        y += zpi
        np.clip(y, 0, 255, out=y)
        return y.astype(np.uint8), np.array(scale, np.float32), np.array(zpi, np.uint8)
    return run


# ---------------------------------------------------------------------------------------------------------
# integer matmul / conv


def _int_operand(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype not in (np.uint8, np.int8):
        raise ValueError(f"{name} must be uint8 or int8, got {a.dtype}")
    return a


def _axis_param(p, ndim: int, name: str, rows: bool):
    """A per-tensor, per-row (of A, shape [..., M, K]) or per-column (of B, shape [..., K, N]) quantization
    parameter made broadcastable against its matrix."""
    if p is None:
        return None
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    if p.ndim == 1:
        return p.reshape(-1, 1) if rows else p
    if p.ndim == ndim - 1:
        return p[..., None] if rows else p[..., None, :]
    if p.ndim == ndim:
        return p
    raise ValueError(f"{name} has shape {list(p.shape)}: expected a scalar or per-{'row' if rows else 'column'} values")


def _row_param(p, a_ndim: int, name: str):
    return _axis_param(p, a_ndim, name, rows=True)


def _col_param(p, b_ndim: int, name: str):
    return _axis_param(p, b_ndim, name, rows=False)


def _shifted(a: np.ndarray, zp) -> np.ndarray:
    """a - zero_point as floats: float32 for integer inputs (exact: at most 17 bits), float64 for float8 ones."""
    dt = np.float32 if a.dtype.kind in "iu" else np.float64
    a = a.astype(dt)
    if zp is not None:
        a -= zp.astype(dt)
    return a


def _const_shifted(ctx: NodeCtx, i: int, i_zp: int, shift):
    """`shift(value, zero_point)` computed once at load when the input and its zero point are constants (weights),
    else None (then run() computes it)."""
    v = ctx.const(i)
    zp = ctx.const(i_zp)
    if v is None or (ctx.has_input(i_zp) and zp is None):
        return None
    try:
        out = shift(v, zp)
    except (ValueError, TypeError):
        return None                                  # run() raises the clear error
    out.flags.writeable = False
    return out


_F32_EXACT = float(1 << 24)      # every integer of magnitude <= 2**24 is a float32


def _matmul_exact(a: np.ndarray, b: np.ndarray, what: str, a_bound: float | None = None,
                  b_bound: float | None = None) -> np.ndarray:
    """numpy.matmul of a and b as float64. Integer-valued float32 operands go through engine's float32 GEMM, split
    along K so that no partial sum can exceed 2**24 in magnitude (then every float32 sum and product is exact,
    whatever the kernel's summation order), the K chunks added in float64. `a_bound`/`b_bound` bound |a|/|b| when
    known (else they are measured)."""
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"{what}: operands must have at least one dimension")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(f"{what}: shapes {list(a.shape)} and {list(b.shape)} do not match for a matrix product")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"{what}: batch dimensions of {list(a.shape)} and {list(b.shape)} do not broadcast") from None
    if a.dtype != np.float32 or b.dtype != np.float32 or a.size == 0 or b.size == 0:
        return np.matmul(a.astype(np.float64), b.astype(np.float64))
    ab = float(np.abs(a).max()) if a_bound is None else float(a_bound)
    bb = float(np.abs(b).max()) if b_bound is None else float(b_bound)
    step = int(_F32_EXACT // max(1.0, ab * bb))
    if step < 1:
        return np.matmul(a.astype(np.float64), b.astype(np.float64))
    if step >= ka:
        return _ematmul(a, b).astype(np.float64)
    acc = None
    for k0 in range(0, ka, step):
        k1 = k0 + step
        part = _ematmul(a[..., k0:k1], b[k0:k1] if b.ndim == 1 else b[..., k0:k1, :])
        acc = part.astype(np.float64) if acc is None else acc + part
    return acc


@register("MatMulInteger", shape_inputs=())
def matmul_integer(ctx: NodeCtx):
    def shift_b(B, bzp):
        _int_operand(B, "MatMulInteger B")
        if bzp is not None and bzp.dtype != B.dtype:
            raise ValueError("zero point type")
        return _shifted(B, _col_param(bzp, B.ndim, "b_zero_point") if B.ndim > 1 else bzp)
    b_pre = _const_shifted(ctx, 1, 3, shift_b)

    def run(A, B, azp=None, bzp=None):
        _int_operand(A, "MatMulInteger A")
        _int_operand(B, "MatMulInteger B")
        for zp, ref, n in ((azp, A, "a_zero_point"), (bzp, B, "b_zero_point")):
            if zp is not None and zp.dtype != ref.dtype:
                raise ValueError(f"MatMulInteger: {n} has type {zp.dtype}, its input has {ref.dtype}")
        a = _shifted(A, _row_param(azp, A.ndim, "a_zero_point") if A.ndim > 1 else azp)
        b = b_pre if b_pre is not None else shift_b(B, bzp)
        return (_matmul_exact(a, b, "MatMulInteger").astype(np.int64).astype(np.int32),)
    return run


def _requant(acc: np.ndarray, mult: np.ndarray, yzp, out_dt: np.dtype) -> np.ndarray:
    """acc * mult + y_zero_point, rounded half to even and saturated to out_dt (float8: saturating cast)."""
    d = acc * mult.astype(np.float64)
    if out_dt in _INT_RANGES:
        d = np.rint(d)
        if yzp is not None:
            d += yzp.astype(np.float64)
        lo, hi = _INT_RANGES[out_dt]
        np.clip(d, lo, hi, out=d)
        return d.astype(out_dt)
    if yzp is not None:
        d = d + yzp.astype(np.float64)
    return _to_float_type(d.astype(np.float32), out_dt, True)


_QMM_T = {np.dtype(np.uint8), np.dtype(np.int8)} | _FLOAT8


@register("QLinearMatMul", shape_inputs=())
def qlinear_matmul(ctx: NodeCtx):
    def shift_b(b, b_zp):
        if b.dtype not in _QMM_T or b_zp is not None and b_zp.dtype != b.dtype:
            raise ValueError("type")
        return _shifted(b, _col_param(b_zp, b.ndim, "b_zero_point") if b.ndim > 1 else b_zp)
    b_pre = _const_shifted(ctx, 3, 5, shift_b)

    def run(a, a_s, a_zp, b, b_s, b_zp, y_s, y_zp):
        for n, t in (("a", a), ("b", b), ("y_zero_point", y_zp)):
            if t is not None and t.dtype not in _QMM_T:
                raise ValueError(f"QLinearMatMul: {n} has unsupported type {t.dtype}")
        if a_zp is not None and a_zp.dtype != a.dtype or b_zp is not None and b_zp.dtype != b.dtype:
            raise ValueError("QLinearMatMul: a zero point's type differs from its input's")
        ad = a.ndim > 1
        bd = b.ndim > 1
        A = _shifted(a, _row_param(a_zp, a.ndim, "a_zero_point") if ad else a_zp)
        B = b_pre if b_pre is not None else shift_b(b, b_zp)
        acc = _matmul_exact(A, B, "QLinearMatMul")
        sa = _row_param(a_s, a.ndim, "a_scale") if ad else a_s
        sb = _col_param(b_s, b.ndim, "b_scale") if bd else b_s
        mult = sa * sb / y_s
        try:
            mult = np.broadcast_to(mult, np.broadcast_shapes(mult.shape, acc.shape)) if mult.ndim > acc.ndim \
                else mult
        except ValueError:
            raise ValueError("QLinearMatMul: scales do not broadcast against the product") from None
        out_dt = y_zp.dtype if y_zp is not None else a.dtype
        return (_requant(acc, mult, y_zp, out_dt),)
    return run


# --- convolution on integers: im2col with numpy, exact float32 GEMM ---------------------------------------


class _ConvGeom:
    def __init__(self, ctx: NodeCtx, what: str):
        self.what = what
        self.auto_pad = ctx.attr_str("auto_pad", "NOTSET")
        if self.auto_pad not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
            raise Unsupported(f"{what}: unknown auto_pad {self.auto_pad!r}")
        self.group = int(ctx.attr("group", 1))
        if self.group < 1:
            raise Unsupported(f"{what}: group must be >= 1, got {self.group}")
        self.kernel_shape = ctx.attr("kernel_shape", None)
        self.strides = ctx.attr("strides", None)
        self.dilations = ctx.attr("dilations", None)
        self.pads = ctx.attr("pads", None)

    def conv(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        """x (N, C, *S) and w (M, C/group, *K), zero points removed (float32 for integer inputs) -> (N, M, *O)
        float64, exact."""
        what = self.what
        if x.ndim < 3 or w.ndim != x.ndim:
            raise ValueError(f"{what}: x has shape {list(x.shape)} and w {list(w.shape)}: expected N x C x D1... "
                             "and M x C/group x k1... of the same rank (>= 3)")
        nsp = x.ndim - 2
        N, C = x.shape[:2]
        M = w.shape[0]
        g = self.group
        if C != w.shape[1] * g or M % g:
            raise ValueError(f"{what}: x has {C} channels, w has shape {list(w.shape)} with group {g}")
        ks = tuple(w.shape[2:])
        if self.kernel_shape is not None and tuple(self.kernel_shape) != ks:
            raise ValueError(f"{what}: kernel_shape {list(self.kernel_shape)} differs from w's {list(ks)}")
        st = tuple(self.strides) if self.strides is not None else (1,) * nsp
        dl = tuple(self.dilations) if self.dilations is not None else (1,) * nsp
        if len(st) != nsp or len(dl) != nsp or min(st) < 1 or min(dl) < 1:
            raise ValueError(f"{what}: strides {list(st)} / dilations {list(dl)} do not fit {nsp} spatial axes")
        sp = x.shape[2:]
        if self.auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            pb, pe = [], []
            for i in range(nsp):
                o = -(-sp[i] // st[i])
                tot = max(0, (o - 1) * st[i] + (ks[i] - 1) * dl[i] + 1 - sp[i])
                lo = tot // 2 if self.auto_pad == "SAME_UPPER" else tot - tot // 2
                pb.append(lo)
                pe.append(tot - lo)
        elif self.auto_pad == "VALID" or self.pads is None:
            pb, pe = [0] * nsp, [0] * nsp
        else:
            if len(self.pads) != 2 * nsp or min(self.pads) < 0:
                raise ValueError(f"{what}: pads {list(self.pads)} do not fit {nsp} spatial axes")
            pb, pe = list(self.pads[:nsp]), list(self.pads[nsp:])
        out = []
        for i in range(nsp):
            span = (ks[i] - 1) * dl[i] + 1
            o = (sp[i] + pb[i] + pe[i] - span) // st[i] + 1
            if o < 1:
                raise ValueError(f"{what}: the kernel ({span} with dilation) does not fit spatial axis {i} "
                                 f"({sp[i]} + pads {pb[i]}, {pe[i]})")
            out.append(o)
        if any(pb) or any(pe):
            x = np.pad(x, [(0, 0), (0, 0)] + [(pb[i], pe[i]) for i in range(nsp)])
        K = math.prod(ks)
        P = math.prod(out)
        cols = np.empty((N, C, K) + tuple(out), x.dtype)
        for k, idx in enumerate(np.ndindex(*ks)):
            sl = tuple(slice(idx[i] * dl[i], idx[i] * dl[i] + (out[i] - 1) * st[i] + 1, st[i]) for i in range(nsp))
            cols[:, :, k] = x[(slice(None), slice(None)) + sl]
        cols = cols.reshape(N, g, (C // g) * K, P)
        wm = w.reshape(g, M // g, (C // g) * K)
        xb = float(np.abs(x).max()) if x.size else 0.0    # bounds cols (x's values and padding zeros)
        y = _matmul_exact(wm[None], cols, what, b_bound=xb)                  # (N, g, M/g, P)
        return y.reshape((N, M) + tuple(out))


def _chan_param(p, M: int, nsp: int, name: str, what: str):
    """A per-tensor or per-output-channel parameter made broadcastable against (M, ...) weights."""
    if p is None:
        return None
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    if p.ndim != 1 or p.shape[0] != M:
        raise ValueError(f"{what}: {name} has shape {list(p.shape)}: expected a scalar or {M} values (one per "
                         "output channel)")
    return p.reshape((M,) + (1,) * (nsp + 1))


def _scalar_param(p, name: str, what: str):
    if p is None:
        return None
    p = np.asarray(p)
    if p.size != 1:
        raise ValueError(f"{what}: {name} must be a scalar (per-tensor), got shape {list(p.shape)}")
    return p.reshape(())


@register("ConvInteger", shape_inputs=())
def conv_integer(ctx: NodeCtx):
    geom = _ConvGeom(ctx, "ConvInteger")

    def shift_w(w, wzp):
        _int_operand(w, "ConvInteger w")
        if w.ndim < 3:
            raise ValueError("rank")
        return _shifted(w, _chan_param(wzp, w.shape[0], w.ndim - 2, "w_zero_point", "ConvInteger"))
    w_pre = _const_shifted(ctx, 1, 3, shift_w)

    def run(x, w, xzp=None, wzp=None):
        _int_operand(x, "ConvInteger x")
        X = _shifted(x, _scalar_param(xzp, "x_zero_point", "ConvInteger"))
        W = w_pre if w_pre is not None else shift_w(w, wzp)
        return (geom.conv(X, W).astype(np.int64).astype(np.int32),)
    return run


@register("QLinearConv", shape_inputs=())
def qlinear_conv(ctx: NodeCtx):
    geom = _ConvGeom(ctx, "QLinearConv")

    def shift_w(w, wzp):
        _int_operand(w, "QLinearConv w")
        if w.ndim < 3:
            raise ValueError(f"QLinearConv: w must have rank >= 3, got shape {list(w.shape)}")
        return _shifted(w, _chan_param(wzp, w.shape[0], w.ndim - 2, "w_zero_point", "QLinearConv"))
    w_pre = _const_shifted(ctx, 3, 5, shift_w)

    def run(x, x_s, xzp, w, w_s, wzp, y_s, yzp, B=None):
        _int_operand(x, "QLinearConv x")
        if yzp is not None:
            _int_operand(yzp, "QLinearConv y_zero_point")
        W = w_pre if w_pre is not None else shift_w(w, wzp)
        M, nsp = w.shape[0], w.ndim - 2
        X = _shifted(x, _scalar_param(xzp, "x_zero_point", "QLinearConv"))
        acc = geom.conv(X, W)
        if B is not None:
            if B.dtype != np.int32 or B.shape != (M,):
                raise ValueError(f"QLinearConv: B must be int32 of shape [{M}], got {B.dtype} {list(B.shape)}")
            acc += B.astype(np.float64).reshape((M,) + (1,) * nsp)
        ws = np.asarray(w_s)
        if ws.size > 1:
            if ws.ndim != 1 or ws.shape[0] != M:
                raise ValueError(f"QLinearConv: w_scale has shape {list(ws.shape)}: expected a scalar or {M} values")
            ws = ws.reshape((M,) + (1,) * nsp)
        else:
            ws = ws.reshape(())
        mult = _scalar_param(x_s, "x_scale", "QLinearConv") * ws / _scalar_param(y_s, "y_scale", "QLinearConv")
        out_dt = yzp.dtype if yzp is not None else x.dtype
        return (_requant(acc, mult, _scalar_param(yzp, "y_zero_point", "QLinearConv"), out_dt),)
    return run
