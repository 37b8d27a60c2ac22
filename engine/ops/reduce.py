"""Reductions and normalizations along axes: Reduce*, ArgMax/ArgMin, CumSum, Softmax/LogSoftmax/Hardmax,
LpNormalization, MeanVarianceNormalization (see engine.ops._registry for the conventions).

Reduce* take their axes as an attribute up to a version (ReduceSum 11, the others 13) and as an optional second
input from then on (ReduceSum 13, the others 18); with no axes (or an empty list) they reduce over every axis,
unless noop_with_empty_axes=1, which reduces over the empty set (numpy's axis=()). A reduction over an empty
set of values gives the op's identity: 0 (Sum, L1, L2, SumSquare), 1 (Prod), -inf or the dtype's minimum (Max),
+inf or the dtype's maximum (Min), -inf (LogSum, LogSumExp), NaN (Mean).

Softmax, LogSoftmax and Hardmax before opset 13 flatten the input to 2-D at `axis` (default 1) and work on the
rows; from 13 on they work along the single `axis` (default -1).
"""
from __future__ import annotations

import numpy as np

from engine.ops._registry import NodeCtx, Unsupported, register

# since_version from which the axes are an input (else an attribute)
_AXES_INPUT_FROM = {"ReduceSum": 13}
_AXES_INPUT_DEFAULT = 18


def _axes_const(v, what: str = "axes") -> tuple:
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers, got {a.dtype.name}")
    if a.ndim > 1:
        raise ValueError(f"{what} must be a 1-D tensor, got shape {list(a.shape)}")
    return tuple(int(i) for i in a.reshape(-1))


def _norm_axes(axes: tuple, ndim: int) -> tuple:
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor of rank {ndim}")
        out.append(a + ndim if a < 0 else a)
    if len(set(out)) != len(out):
        raise ValueError(f"axes {list(axes)} repeat an axis")
    return tuple(out)


def _float_work(x: np.ndarray) -> np.ndarray:
    """float16/bfloat16 are computed in float32 (accuracy; bfloat16 lacks most numpy loops)."""
    if x.dtype == np.float16 or x.dtype.kind == "V":
        return x.astype(np.float32)
    return x


def _sum(x, axes, keepdims):
    if x.dtype.kind in "iub":
        return np.add.reduce(x, axis=axes, keepdims=keepdims, dtype=x.dtype if x.dtype.kind != "b" else None)
    return np.add.reduce(_float_work(x), axis=axes, keepdims=keepdims)


def _extreme(fn, x, axes, keepdims, low: bool):
    if x.size == 0:
        dt = x.dtype
        if dt == np.bool_:
            init = False if low else True
        elif dt.kind in "iu":
            init = np.iinfo(dt).min if low else np.iinfo(dt).max
        else:
            init = -np.inf if low else np.inf
        w = _float_work(x)
        return fn.reduce(w, axis=axes, keepdims=keepdims, initial=init)
    if x.dtype.kind == "V":
        return fn.reduce(x.astype(np.float32), axis=axes, keepdims=keepdims)
    return fn.reduce(x, axis=axes, keepdims=keepdims)


def _logsumexp(x, axes, keepdims):
    w = _float_work(x)
    if w.size == 0:
        return np.add.reduce(w, axis=axes, keepdims=keepdims) - np.inf
    mx = np.maximum.reduce(np.where(np.isinf(w), -np.inf, w), axis=axes, keepdims=True)
    mx = np.where(np.isfinite(mx), mx, 0)  # all -inf (or NaN) slices: no shift
    e = np.exp(w - mx)
    s = np.add.reduce(e, axis=axes, keepdims=True)
    with np.errstate(divide="ignore"):
        r = np.log(s) + mx
    if not keepdims:
        r = r.reshape(np.add.reduce(w, axis=axes, keepdims=False).shape)
    return r


def _mean(x, axes, keepdims):
    w = _float_work(x)
    if axes is None:
        n = w.size
    else:
        n = 1
        for a in axes:
            n *= w.shape[a]
    if x.dtype.kind in "iu":
        s = np.add.reduce(w, axis=axes, keepdims=keepdims, dtype=np.float64)
    else:
        s = np.add.reduce(w, axis=axes, keepdims=keepdims)
    if n == 0:
        return s * np.nan  # mean of nothing
    return s * s.dtype.type(1.0 / n) if s.dtype != np.float64 else s / n


def _abs_sum(x, axes, keepdims):
    return _sum(np.abs(x) if x.dtype.kind != "V" else np.abs(x.astype(np.float32)), axes, keepdims)


def _l2(x, axes, keepdims):
    if x.dtype.kind in "iu":
        return np.sqrt(np.add.reduce(np.square(x.astype(np.float64)), axis=axes, keepdims=keepdims))
    w = _float_work(x)
    return np.sqrt(np.add.reduce(w * w, axis=axes, keepdims=keepdims))


def _sum_square(x, axes, keepdims):
    if x.dtype.kind in "iu":
        return np.add.reduce(x * x, axis=axes, keepdims=keepdims, dtype=x.dtype)
    w = _float_work(x)
    return np.add.reduce(w * w, axis=axes, keepdims=keepdims)


def _log_sum(x, axes, keepdims):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(_sum(x, axes, keepdims))


def _prod(x, axes, keepdims):
    if x.dtype.kind in "iu":
        return np.multiply.reduce(x, axis=axes, keepdims=keepdims, dtype=x.dtype)
    return np.multiply.reduce(_float_work(x), axis=axes, keepdims=keepdims)


_REDUCERS = {
    "ReduceSum": _sum,
    "ReduceMean": _mean,
    "ReduceMax": lambda x, a, k: _extreme(np.maximum, x, a, k, low=True),
    "ReduceMin": lambda x, a, k: _extreme(np.minimum, x, a, k, low=False),
    "ReduceProd": _prod,
    "ReduceL1": _abs_sum,
    "ReduceL2": _l2,
    "ReduceLogSum": _log_sum,
    "ReduceLogSumExp": _logsumexp,
    "ReduceSumSquare": _sum_square,
}


def _mean_fast(dt: np.dtype, rank: int, norm: tuple, keepdims: bool, fixed: tuple):
    """ReduceMean of float32/float64 over constant axes (the per-band normalisations of small audio models): _mean
    with the dtype checks and the element count hoisted out of the call (cached per input shape); same values."""
    counts: dict = {}
    f32 = dt == np.float32

    def run(x, *_):
        if x.dtype is not dt or x.ndim != rank:
            r = _mean(x, norm if x.ndim == rank else _norm_axes(fixed, x.ndim), keepdims)
            return (r if r.dtype == x.dtype else r.astype(x.dtype),)
        s = np.add.reduce(x, axis=norm, keepdims=keepdims)
        c = counts.get(x.shape)
        if c is None:
            n = 1
            for a in norm:
                n *= x.shape[a]
            # as _mean: float32 sums times float32(1/n), float64 sums divided by n, NaN for an empty reduction
            c = (np.nan, None) if n == 0 else (dt.type(1.0 / n), None) if f32 else (None, n)
            if len(counts) >= 64:
                counts.clear()
            counts[x.shape] = c
        if c[1] is None:
            return (s * c[0],)
        return (s / c[1],)
    if f32 and norm == tuple(range(rank - len(norm), rank)):  # over trailing axes: one C loop for small tensors
        from engine._C._kernels import MeanStep

        return MeanStep(len(norm), keepdims, 4096, run)
    return run


def _reduce_builder(op_type: str, fn):
    input_from = _AXES_INPUT_FROM.get(op_type, _AXES_INPUT_DEFAULT)

    def build(ctx: NodeCtx):
        keepdims = bool(ctx.attr("keepdims", 1))
        noop = bool(ctx.attr("noop_with_empty_axes", 0)) if ctx.version >= input_from else False
        dt = ctx.in_dtype(0)
        if op_type in ("ReduceLogSum", "ReduceLogSumExp", "ReduceL2") and dt is not None and \
                np.dtype(dt).kind == "b":
            raise Unsupported(f"{op_type} on bool input")
        if ctx.version >= input_from:
            if ctx.has_attr("axes"):
                raise Unsupported(f"{op_type}-{ctx.version} takes axes as an input, not an attribute")
            if ctx.has_input(1) and ctx.const(1) is None:
                dynamic = True
                fixed = None
            else:
                dynamic = False
                fixed = _axes_const(ctx.const(1)) if ctx.has_input(1) else ()
        else:
            dynamic = False
            fixed = tuple(int(a) for a in ctx.attr("axes", []))

        def resolve(x, axes: tuple):
            if not axes:
                return () if noop else None
            return _norm_axes(axes, x.ndim)

        if not dynamic:
            if not fixed:
                ax0 = () if noop else None

                def run(x, *_):
                    r = fn(x, ax0, keepdims)
                    return (r if r.dtype == x.dtype else r.astype(x.dtype),)
                return run
            t = ctx.in_type(0)
            rank = None if t is None or t.shape is None else len(t.shape)
            if rank is not None:
                norm = _norm_axes(fixed, rank)  # a bad axis is reported at load
                if op_type == "ReduceMean" and dt is not None and np.dtype(dt) in (np.float32, np.float64):
                    return _mean_fast(np.dtype(dt), rank, norm, keepdims, fixed)

                def run(x, *_):
                    r = fn(x, norm if x.ndim == rank else _norm_axes(fixed, x.ndim), keepdims)
                    return (r if r.dtype == x.dtype else r.astype(x.dtype),)
                return run

            def run(x, *_):
                r = fn(x, _norm_axes(fixed, x.ndim), keepdims)
                return (r if r.dtype == x.dtype else r.astype(x.dtype),)
            return run

        def run(x, axes=None):
            ax = () if axes is None else _axes_const(axes)
            r = fn(x, resolve(x, ax), keepdims)
            return (r if r.dtype == x.dtype else r.astype(x.dtype),)
        return run

    register(op_type, shape_inputs=(1,))(build)


for _name, _fn in _REDUCERS.items():
    _reduce_builder(_name, _fn)


# ----------------------------------------------------------------------------------------- ArgMax/Min
def _arg_builder(op_type: str, fn):
    def build(ctx: NodeCtx):
        axis = int(ctx.attr("axis", 0))
        keepdims = bool(ctx.attr("keepdims", 1))
        last = bool(ctx.attr("select_last_index", 0)) if ctx.version >= 12 else False

        def run(x):
            ax = _norm_axes((axis,), x.ndim)[0] if x.ndim else None
            if x.ndim == 0:
                raise ValueError(f"{op_type} needs an input of rank >= 1")
            if x.shape[ax] == 0:
                raise ValueError(f"{op_type}: axis {axis} of shape {list(x.shape)} is empty")
            w = x.astype(np.float32) if x.dtype.kind == "V" else x
            if last:
                i = fn(np.flip(w, axis=ax), axis=ax, keepdims=keepdims)
                i = (x.shape[ax] - 1) - i
            else:
                i = fn(w, axis=ax, keepdims=keepdims)
            return (np.asarray(i, dtype=np.int64),)
        return run
    register(op_type, shape_inputs=())(build)


_arg_builder("ArgMax", np.argmax)
_arg_builder("ArgMin", np.argmin)


# ---------------------------------------------------------------------------------------------- CumSum
def _axis_value(v) -> int:
    a = np.asarray(v)
    if a.size != 1 or a.dtype.kind not in "iu":
        raise ValueError(f"CumSum axis must be one integer, got {a.dtype.name} of shape {list(a.shape)}")
    return int(a.reshape(-1)[0])


@register("CumSum", shape_inputs=())
def cumsum(ctx: NodeCtx):
    exclusive = bool(ctx.attr("exclusive", 0))
    reverse = bool(ctx.attr("reverse", 0))
    c = ctx.const(1)
    fixed = None if c is None else _axis_value(c)

    def run(x, axis):
        ax = fixed if fixed is not None else _axis_value(axis)
        ax = _norm_axes((ax,), x.ndim)[0]
        if x.dtype.kind == "V":
            w = x.astype(np.float32)
        else:
            w = x
        if reverse:
            w = np.flip(w, axis=ax)
        r = np.cumsum(w, axis=ax, dtype=w.dtype)
        if exclusive:  # shift by one along the axis (exact, unlike subtracting x)
            r2 = np.zeros_like(r)
            dst = [slice(None)] * r.ndim
            src = [slice(None)] * r.ndim
            dst[ax], src[ax] = slice(1, None), slice(0, -1)
            r2[tuple(dst)] = r[tuple(src)]
            r = r2
        if reverse:
            r = np.flip(r, axis=ax)
        return (np.ascontiguousarray(r, dtype=x.dtype),)
    return run


# ------------------------------------------------------------------------------ Softmax / LogSoftmax / Hardmax
def _softmax_core(w, ax, log: bool):
    # a row holding +inf (or only -inf) gives NaN, as exp(x - max) does in the ONNX function body
    e = w - np.maximum.reduce(w, axis=ax, keepdims=True)
    if log:
        s = np.add.reduce(np.exp(e), axis=ax, keepdims=True)
        e -= np.log(s)
        return e
    np.exp(e, out=e)
    e /= np.add.reduce(e, axis=ax, keepdims=True)
    return e


def _hardmax_core(w, ax):
    i = np.argmax(w, axis=ax)
    y = np.zeros(w.shape, dtype=w.dtype)
    np.put_along_axis(y, np.expand_dims(i, axis=ax), 1, axis=ax)
    return y


def _softmax_family(op_type: str):
    def build(ctx: NodeCtx):
        legacy = ctx.version < 13
        axis = int(ctx.attr("axis", 1 if legacy else -1))
        if op_type == "Hardmax":
            def core(w, ax):
                return _hardmax_core(w, ax)
        else:
            log = op_type == "LogSoftmax"

            def core(w, ax):
                return _softmax_core(w, ax, log)

        def run(x):
            if x.size == 0:
                return (x,)
            nd = x.ndim
            if not -nd <= axis < max(nd, 1) or nd == 0:
                raise ValueError(f"{op_type}: axis {axis} is out of range for a tensor of rank {nd}")
            ax = axis + nd if axis < 0 else axis
            w = _float_work(x) if op_type != "Hardmax" else x
            if w is x and op_type != "Hardmax" and x.dtype.kind in "iu":
                raise ValueError(f"{op_type} needs a floating-point input")
            if legacy and ax != nd - 1:
                shape = x.shape
                rows = int(np.prod(shape[:ax], dtype=np.int64))
                y = core(w.reshape(rows, -1), 1).reshape(shape)
            else:
                y = core(w, ax)
            return (y if y.dtype == x.dtype else y.astype(x.dtype),)
        return run
    register(op_type, shape_inputs=())(build)


for _name in ("Softmax", "LogSoftmax", "Hardmax"):
    _softmax_family(_name)


# ----------------------------------------------------------------------------------------- normalizations
@register("LpNormalization", shape_inputs=())
def lp_normalization(ctx: NodeCtx):
    axis = int(ctx.attr("axis", -1))
    p = int(ctx.attr("p", 2))
    if p not in (1, 2):
        raise Unsupported(f"LpNormalization p={p} (only 1 and 2 are defined)")

    def run(x):
        ax = _norm_axes((axis,), x.ndim)[0]
        w = _float_work(x)
        if p == 2:
            n = np.sqrt(np.add.reduce(w * w, axis=ax, keepdims=True))
        else:
            n = np.add.reduce(np.abs(w), axis=ax, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(n == 0, 0, w / n)
        return (y.astype(x.dtype, copy=False),)
    return run


@register("MeanVarianceNormalization", shape_inputs=())
def mean_variance_normalization(ctx: NodeCtx):
    axes = tuple(int(a) for a in ctx.attr("axes", [0, 2, 3]))
    eps = 1e-9  # the ONNX function body's Epsilon

    def run(x):
        ax = _norm_axes(axes, x.ndim)
        w = _float_work(x)
        n = 1
        for a in ax:
            n *= w.shape[a]
        inv = w.dtype.type(1.0 / n) if n else w.dtype.type(np.nan)
        m = np.add.reduce(w, axis=ax, keepdims=True) * inv
        d = w - m
        var = np.add.reduce(w * w, axis=ax, keepdims=True) * inv - m * m  # E[x^2] - E[x]^2, as the function body
        std = np.sqrt(np.maximum(var, 0))
        std += w.dtype.type(eps)
        d /= std
        return (d.astype(x.dtype, copy=False),)
    return run
