"""Tensor (data movement, indexing, generation) ops (see engine.ops._registry for the conventions).

Hot ops of exported transformers (Reshape, Transpose, Concat, Gather, Slice, Unsqueeze) precompute what their
constant inputs allow in the builder; their run() is one or two numpy calls. Reshape/Squeeze/Unsqueeze/Flatten
return views.
"""
from __future__ import annotations

import numpy as np

from engine._C._kernels import ReshapeStep, SliceStep
from engine.ops._registry import NodeCtx, Unsupported, register

_I64 = np.dtype(np.int64)


def _ints(v) -> list[int]:
    """A 1-D int list from an attribute or an input array (None stays None)."""
    if v is None:
        return None
    return [int(x) for x in np.asarray(v).reshape(-1)]


def _axis(a: int, r: int, what: str = "axis") -> int:
    if not -r <= a < r:
        raise ValueError(f"{what} {a} is out of range for rank {r}")
    return a + r if a < 0 else a


def _rank(ctx: NodeCtx, i: int = 0) -> int | None:
    t = ctx.in_type(i)
    return None if t is None or t.shape is None else len(t.shape)


def _onnx_dtype(code: int) -> np.dtype:
    from onnx import helper

    return np.dtype(helper.tensor_dtype_to_np_dtype(int(code)))


# ------------------------------------------------------------------------------------------------ shape ops

def _reshape_target(xshape, shape, allowzero):
    out = list(shape)
    if not allowzero:
        for i, s in enumerate(out):
            if s == 0:
                if i >= len(xshape):
                    raise ValueError(f"Reshape: shape {shape} copies dim {i} but the input has rank {len(xshape)}")
                out[i] = xshape[i]
    if -1 in out:
        if out.count(-1) > 1:
            raise ValueError(f"Reshape: shape {shape} has more than one -1")
        known = 1
        for s in out:
            if s != -1:
                known *= s
        total = 1
        for s in xshape:
            total *= s
        if known == 0:
            if total != 0:
                raise ValueError(f"Reshape: cannot reshape {list(xshape)} into {shape}")
            out[out.index(-1)] = 0
        else:
            if total % known:
                raise ValueError(f"Reshape: cannot reshape {list(xshape)} into {shape}")
            out[out.index(-1)] = total // known
    return out


@register("Reshape", shape_inputs=(1,))
def reshape(ctx: NodeCtx):
    allowzero = ctx.attr("allowzero", 0) if ctx.version >= 14 else 0
    if ctx.version < 5:
        shape = _ints(ctx.attr("shape"))

        def run1(x):
            return (x.reshape(_reshape_target(x.shape, shape, allowzero)),)
        return run1
    c = ctx.const(1)
    if c is not None:
        shape = _ints(c)
        if allowzero and 0 in shape and -1 in shape:
            raise Unsupported("Reshape with allowzero=1 cannot have both 0 and -1 in shape")
        tshape = tuple(shape)
        zeros = () if allowzero else tuple(i for i, d in enumerate(shape) if d == 0)

        def run_c(x, s):
            try:
                if zeros:
                    t = list(tshape)
                    xs = x.shape
                    for i in zeros:
                        t[i] = xs[i]
                    return (x.reshape(t),)
                return (x.reshape(tshape),)
            except (ValueError, IndexError):       # the slow path explains the error (or handles -1 with 0 size)
                return (x.reshape(_reshape_target(x.shape, shape, allowzero)),)
        return ReshapeStep(run_c)  # the output shape is cached per input shape

    def run(x, s):
        return (x.reshape(_reshape_target(x.shape, _ints(s), allowzero)),)
    return run


@register("Transpose", shape_inputs=())
def transpose(ctx: NodeCtx):
    perm = ctx.attr("perm", None)
    perm = None if perm is None else tuple(int(p) for p in perm)

    def run(x):
        if perm is None:
            return (x.transpose(),)
        if len(perm) != x.ndim:
            raise ValueError(f"Transpose: perm {list(perm)} does not match rank {x.ndim}")
        return (x.transpose(perm),)
    return run


@register("Concat", shape_inputs=())
def concat(ctx: NodeCtx):
    axis = int(ctx.attr("axis", 1) if ctx.version < 4 else ctx.attr("axis"))

    def run(*xs):
        if len(xs) == 1:
            return (xs[0],)
        return (np.concatenate(xs, axis=axis),)
    return run


@register("Split", shape_inputs=(1,))
def split(ctx: NodeCtx):
    axis = int(ctx.attr("axis", 0))
    n = ctx.n_outputs
    num_outputs = ctx.attr("num_outputs", None) if ctx.version >= 18 else None
    if ctx.version < 13:
        split_const = _ints(ctx.attr("split", None))
        if ctx.version < 2 and ctx.has_input(1):
            raise Unsupported("Split-1 with a split input is not supported")
    else:
        split_const = _ints(ctx.const(1)) if ctx.has_input(1) else None
    if num_outputs is not None and ctx.has_input(1):
        raise Unsupported("Split: both num_outputs and split are given")
    dyn = ctx.version >= 13 and ctx.has_input(1) and split_const is None

    def run(x, s=None):
        ax = _axis(axis, x.ndim)
        d = x.shape[ax]
        sp = _ints(s) if dyn else split_const
        if sp is not None and len(sp) == 0:
            sp = None                                  # an empty split input means "not given"
        if sp is None:
            if num_outputs is not None:
                k = -(-d // num_outputs)
                sp = [min(k, max(d - i * k, 0)) for i in range(num_outputs)]
            else:
                if d % n:
                    raise ValueError(f"Split: dim {d} does not divide into {n} equal outputs")
                sp = [d // n] * n
        if len(sp) != n or sum(sp) != d:
            raise ValueError(f"Split: sizes {sp} do not split dim {d} into {n} outputs")
        idx = np.cumsum(sp[:-1]).tolist()
        return tuple(np.split(x, idx, axis=ax))
    return run


def _slice_index(ndim, starts, ends, axes, steps):
    sl = [slice(None)] * ndim
    if axes is None:
        axes = range(len(starts))
    if steps is None:
        steps = [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise ValueError("Slice: starts, ends, axes and steps differ in length")
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _axis(a, ndim)
        if st == 0:
            raise ValueError("Slice: step 0")
        # Python's slice clamping is exactly ONNX's (incl. negative steps) when given the raw values
        sl[a] = slice(s, e, st)
    return tuple(sl)


@register("Slice", shape_inputs=(1, 2, 3, 4))
def slice_(ctx: NodeCtx):
    if ctx.version < 10:
        starts, ends = _ints(ctx.attr("starts")), _ints(ctx.attr("ends"))
        axes = _ints(ctx.attr("axes", None))
        cache: dict = {}

        def run1(x):
            idx = cache.get(x.ndim)
            if idx is None:
                idx = cache[x.ndim] = _slice_index(x.ndim, starts, ends, axes, None)
            return (x[idx],)
        return run1
    consts = [ctx.const(i) for i in range(1, 5)]
    all_const = all(consts[i] is not None or not ctx.has_input(i + 1) for i in range(4))
    if all_const:
        starts, ends, axes, steps = (_ints(c) for c in consts)
        cache = {}
        rank = _rank(ctx)
        if rank is not None:
            try:
                idx0 = _slice_index(rank, starts, ends, axes, steps)
            except ValueError:
                idx0 = None          # reported by the run below, with the actual rank
            if idx0 is not None:
                cache[rank] = idx0

        def run_c(x, *rest):
            idx = cache.get(x.ndim)
            if idx is None:
                idx = cache[x.ndim] = _slice_index(x.ndim, starts, ends, axes, steps)
            return (x[idx],)
        if rank is not None and idx0 is not None:  # the rank inferred at load: the index is built once
            return SliceStep(idx0, rank, run_c)
        return run_c

    def run(x, starts, ends, axes=None, steps=None):
        return (x[_slice_index(x.ndim, _ints(starts), _ints(ends), _ints(axes), _ints(steps))],)
    return run


@register("Squeeze", shape_inputs=(1,))
def squeeze(ctx: NodeCtx):
    if ctx.version < 13:
        axes = _ints(ctx.attr("axes", None))
        dyn = False
    else:
        axes = _ints(ctx.const(1))
        dyn = ctx.has_input(1) and axes is None

    cache: dict = {}

    def run(x, a=None):
        if dyn:
            ax = _ints(a)
        else:
            ax = cache.get(x.ndim)
            if ax is None and axes is not None:
                ax = cache[x.ndim] = tuple(sorted({_axis(i, x.ndim) for i in axes}))
        if ax is None:
            return (x.reshape([d for d in x.shape if d != 1]),)
        if dyn:
            ax = tuple(sorted({_axis(i, x.ndim) for i in ax}))
        xs = x.shape
        for i in ax:
            if xs[i] != 1:
                raise ValueError(f"Squeeze: dim {i} of shape {list(xs)} is not 1")
        return (x.reshape([d for i, d in enumerate(xs) if i not in ax]),)
    return run if dyn else ReshapeStep(run)  # constant axes: the output shape is cached per input shape


@register("Unsqueeze", shape_inputs=(1,))
def unsqueeze(ctx: NodeCtx):
    if ctx.version < 13:
        axes = _ints(ctx.attr("axes"))
        dyn = False
    else:
        axes = _ints(ctx.const(1))
        dyn = axes is None
    cache: dict = {}

    def run(x, a=None):
        if dyn:
            ax = _ints(a)
            r = x.ndim + len(ax)
            ax = [_axis(i, r) for i in ax]
        else:
            ax = cache.get(x.ndim)
            if ax is None:
                r = x.ndim + len(axes)
                ax = [_axis(i, r) for i in axes]
                if len(set(ax)) != len(ax):
                    raise ValueError(f"Unsqueeze: repeated axes {axes}")
                shape_pos = ax
                cache[x.ndim] = ax = shape_pos
        shape = list(x.shape)
        for i in sorted(ax):
            shape.insert(i, 1)
        return (x.reshape(shape),)
    return run if dyn else ReshapeStep(run)  # constant axes: the output shape is cached per input shape


@register("Flatten", shape_inputs=())
def flatten(ctx: NodeCtx):
    axis = int(ctx.attr("axis", 1))

    def run(x):
        a = axis + x.ndim if axis < 0 else axis
        if not 0 <= a <= x.ndim:
            raise ValueError(f"Flatten: axis {axis} out of range for rank {x.ndim}")
        outer = 1
        for d in x.shape[:a]:
            outer *= d
        inner = 1
        for d in x.shape[a:]:
            inner *= d
        return (x.reshape(outer, inner),)
    return ReshapeStep(run)  # the output shape is cached per input shape


@register("Expand", shape_inputs=(1,))
def expand(ctx: NodeCtx):
    c = ctx.const(1)
    shape_c = None if c is None else tuple(_ints(c))

    def run(x, s):
        shape = shape_c if shape_c is not None else tuple(_ints(s))
        out = np.broadcast_shapes(x.shape, shape)
        if out == x.shape:
            return (x,)
        return (np.broadcast_to(x, out),)
    return run


@register("Tile", shape_inputs=(1,))
def tile(ctx: NodeCtx):
    if ctx.version < 6:
        raise Unsupported("Tile-1 (tiles/axis inputs) is not supported")

    def run(x, reps):
        r = _ints(reps)
        if len(r) != x.ndim:
            raise ValueError(f"Tile: repeats {r} do not match rank {x.ndim}")
        return (np.tile(x, r),)
    return run


# ------------------------------------------------------------------------------------------------ Pad

def _pad_take(x, width, mode, cache):
    """reflect/edge/wrap padding as one gather per padded axis. The source index of each output position depends
    only on the axis length and widths, so it is np.pad of an arange (exactly np.pad's semantics, including
    reflections wider than the axis), computed once per input shape: np.pad on the data costs ~70 us of Python
    per call."""
    key = (x.shape, tuple(width))
    plan = cache.get(key) if cache is not None else None
    if plan is None:
        plan = [(a, np.pad(np.arange(n, dtype=np.intp), w, mode=mode)) for a, (n, w) in enumerate(zip(x.shape, width))
                if w != (0, 0)]
        if cache is not None:
            if len(cache) >= 64:
                cache.clear()
            cache[key] = plan
    for a, idx in plan:
        x = x.take(idx, axis=a)
    return x


def _pad(x, pads, mode, value, axes, cache=None):
    r = x.ndim
    if axes is None:
        axes = list(range(r))
    else:
        axes = [_axis(a, r) for a in axes]
    if len(pads) != 2 * len(axes):
        raise ValueError(f"Pad: {len(pads)} pads for {len(axes)} axes")
    n = len(axes)
    width = [(0, 0)] * r
    crop = [slice(None)] * r
    need_crop = False
    for j, a in enumerate(axes):
        b, e = pads[j], pads[j + n]
        if b < 0 or e < 0:
            need_crop = True
            crop[a] = slice(-b if b < 0 else 0, x.shape[a] + e if e < 0 else x.shape[a])
        width[a] = (max(b, 0), max(e, 0))
    if need_crop:
        x = x[tuple(crop)]
    if not any(w != (0, 0) for w in width):
        return x
    if mode == "constant":            # np.pad costs ~100 us of Python per call: fill + one slice copy instead
        out = np.full([d + b + e for d, (b, e) in zip(x.shape, width)], value, dtype=x.dtype)
        out[tuple(slice(b, b + d) for d, (b, _) in zip(x.shape, width))] = x
        return out
    if mode in ("reflect", "edge", "wrap"):
        for a, (b, e) in enumerate(width):
            if (b or e) and x.shape[a] == 0:
                raise ValueError(f"Pad: mode {mode} cannot pad an empty axis {a}")
        return _pad_take(x, width, mode, cache)
    raise ValueError(f"Pad: unknown mode {mode!r}")


@register("Pad", shape_inputs=(1, 2, 3))
def pad(ctx: NodeCtx):
    mode = ctx.attr_str("mode", "constant")
    if mode not in ("constant", "reflect", "edge", "wrap"):
        raise Unsupported(f"Pad mode {mode!r}")
    if mode == "wrap" and ctx.version < 19:
        raise Unsupported("Pad mode 'wrap' needs opset 19")
    if ctx.version < 11:
        pads = _ints(ctx.attr("pads" if ctx.version >= 2 else "paddings"))
        value = float(ctx.attr("value", 0.0))
        cache1: dict = {}

        def run1(x):
            return (_pad(x, pads, mode, x.dtype.type(value), None, cache1),)
        return run1
    pads_c = _ints(ctx.const(1))
    axes_c = _ints(ctx.const(3))
    cache: dict = {}

    def run(x, pads, cval=None, axes=None):
        p = pads_c if pads_c is not None else _ints(pads)
        a = axes_c if axes_c is not None else _ints(axes)
        if mode != "constant":
            v = None
        else:
            v = x.dtype.type(0) if cval is None or np.size(cval) == 0 else np.asarray(cval).reshape(-1)[0]
        return (_pad(x, p, mode, v, a, cache),)
    return run


# ------------------------------------------------------------------------------------------------ gather/scatter

@register("Gather", shape_inputs=())
def gather(ctx: NodeCtx):
    axis = int(ctx.attr("axis", 0))
    ic = ctx.const(1)
    if ic is not None and ic.ndim == 0:
        i0 = int(ic)
        cache: dict = {}

        def run_s(x, idx):
            t = cache.get(x.ndim)
            if t is None:
                a = _axis(axis, x.ndim, "Gather axis")
                t = cache[x.ndim] = (a, (slice(None),) * a + (i0,))
            d = x.shape[t[0]]
            if not -d <= i0 < d:
                raise IndexError(f"Gather: index {i0} out of range for dim {d}")
            r = x[t[1]]
            return (r if type(r) is np.ndarray else np.asarray(r),)   # 1-D data: a 0-d array, not a scalar
        return run_s

    def run(x, idx):
        if idx.dtype.kind not in "iu":
            raise TypeError(f"Gather: indices must be integers, got {idx.dtype}")
        return (np.take(x, idx, axis=axis),)
    return run


def _full_index(idx, axis):
    """Index tuple for element-wise gather/scatter along `axis` (idx: normalized indices)."""
    r = idx.ndim
    out = []
    for d in range(r):
        if d == axis:
            out.append(idx)
        else:
            sh = [1] * r
            sh[d] = idx.shape[d]
            out.append(np.arange(idx.shape[d]).reshape(sh))
    return tuple(out)


def _norm_idx(idx, dim, what):
    idx = np.asarray(idx)
    if idx.size:
        lo, hi = idx.min(), idx.max()
        if lo < -dim or hi >= dim:
            raise IndexError(f"{what}: index out of range [{-dim}, {dim - 1}]")
    return np.where(idx < 0, idx + dim, idx)


@register("GatherElements", shape_inputs=())
def gather_elements(ctx: NodeCtx):
    axis = int(ctx.attr("axis", 0))

    def run(x, idx):
        a = _axis(axis, x.ndim)
        if idx.ndim != x.ndim:
            raise ValueError("GatherElements: indices and data differ in rank")
        i = _norm_idx(idx, x.shape[a], "GatherElements")
        return (x[_full_index(i, a)],)
    return run


@register("GatherND", shape_inputs=())
def gather_nd(ctx: NodeCtx):
    bd = int(ctx.attr("batch_dims", 0))

    def run(x, idx):
        k = idx.shape[-1]
        if bd + k > x.ndim:
            raise ValueError("GatherND: indices.shape[-1] + batch_dims exceeds the data rank")
        bshape = x.shape[:bd]
        B = int(np.prod(bshape, dtype=np.int64))
        rest = x.shape[bd + k:]
        xr = x.reshape((B,) + x.shape[bd:])
        ir = idx.reshape(B, -1, k)
        cols = [np.arange(B).reshape(B, 1)]
        for j in range(k):
            cols.append(_norm_idx(ir[..., j], x.shape[bd + j], "GatherND"))
        out = xr[tuple(cols)]
        return (out.reshape(idx.shape[:-1] + rest),)
    return run


_UFUNC = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _reduction(ctx: NodeCtx):
    red = ctx.attr_str("reduction", "none")
    if red not in ("none", "add", "mul", "max", "min"):
        raise Unsupported(f"{ctx.op_type}: reduction {red!r}")
    return red


def _scatter(out, index, updates, red):
    if red == "none":
        out[index] = updates
    else:
        _UFUNC[red].at(out, index, updates)


@register("ScatterND", shape_inputs=())
def scatter_nd(ctx: NodeCtx):
    red = _reduction(ctx)

    def run(x, idx, upd):
        k = idx.shape[-1]
        if k > x.ndim:
            raise ValueError("ScatterND: indices.shape[-1] exceeds the data rank")
        out = x.copy()
        ir = idx.reshape(-1, k)
        cols = tuple(_norm_idx(ir[:, j], x.shape[j], "ScatterND") for j in range(k))
        u = upd.reshape((ir.shape[0],) + x.shape[k:])
        _scatter(out, cols, u, red)
        return (out,)
    return run


@register("ScatterElements", "Scatter", shape_inputs=())
def scatter_elements(ctx: NodeCtx):
    red = _reduction(ctx)
    axis = int(ctx.attr("axis", 0))

    def run(x, idx, upd):
        a = _axis(axis, x.ndim)
        if idx.shape != upd.shape or idx.ndim != x.ndim:
            raise ValueError("ScatterElements: indices and updates must have the same shape and data's rank")
        out = x.copy()
        i = _norm_idx(idx, x.shape[a], ctx_name)
        _scatter(out, _full_index(i, a), upd, red)
        return (out,)
    ctx_name = ctx.op_type
    return run


# ------------------------------------------------------------------------------------------------ shape info

@register("Shape", shape_inputs=(), shape_only=True)
def shape(ctx: NodeCtx):
    start = int(ctx.attr("start", 0)) if ctx.version >= 15 else 0
    end = ctx.attr("end", None) if ctx.version >= 15 else None

    if start == 0 and end is None:
        def run_all(x):
            return (np.array(x.shape, dtype=np.int64),)
        return run_all

    def run(x):
        s = x.shape
        r = len(s)
        b = min(max(start + r if start < 0 else start, 0), r)
        e = r if end is None else min(max(end + r if end < 0 else end, 0), r)
        return (np.array(s[b:e], dtype=np.int64),)
    return run


@register("Size", shape_inputs=(), shape_only=True)
def size(ctx: NodeCtx):
    def run(x):
        return (np.array(x.size, dtype=np.int64),)
    return run


@register("ConstantOfShape", shape_inputs=(0,))
def constant_of_shape(ctx: NodeCtx):
    v = ctx.attr("value", None)
    if v is None:
        val = np.zeros((), dtype=np.float32)
    else:
        val = np.asarray(v).reshape(-1)
        if val.size != 1:
            raise Unsupported("ConstantOfShape: value must hold one element")
        val = val[0]
        dt = np.asarray(v).dtype
        val = np.asarray(val, dtype=dt)

    def run(s):
        return (np.full(_ints(s), val, dtype=val.dtype),)
    return run


@register("Range", shape_inputs=(0, 1, 2))
def range_(ctx: NodeCtx):
    def run(start, limit, delta):
        dt = np.asarray(start).dtype
        s, l, d = (np.asarray(v).reshape(-1)[0] for v in (start, limit, delta))
        if d == 0:
            raise ValueError("Range: delta is 0")
        n = max(int(np.ceil((float(l) - float(s)) / float(d))), 0)
        if dt.kind in "iu":
            out = (s + np.arange(n, dtype=dt) * d).astype(dt, copy=False)
        else:
            out = np.arange(s, l, d).astype(dt, copy=False)
            if out.size != n:
                out = (s + np.arange(n, dtype=dt) * d).astype(dt, copy=False)
        return (out,)
    return run


@register("EyeLike", shape_inputs=())
def eye_like(ctx: NodeCtx):
    k = int(ctx.attr("k", 0))
    dt = ctx.attr("dtype", None)
    dtype = None if dt is None else _onnx_dtype(dt)

    def run(x):
        if x.ndim != 2:
            raise ValueError("EyeLike: input must be 2-D")
        return (np.eye(x.shape[0], x.shape[1], k, dtype=dtype or x.dtype),)
    return run


@register("OneHot", shape_inputs=(1,))
def one_hot(ctx: NodeCtx):
    axis = int(ctx.attr("axis", -1))

    def run(ind, depth, values):
        d = int(np.asarray(depth).reshape(-1)[0])
        v = np.asarray(values).reshape(-1)
        ind = np.asarray(ind)
        i = ind.astype(np.int64) if ind.dtype.kind == "f" else ind
        i = np.where(i < 0, i + d, i)
        r = ind.ndim + 1
        a = _axis(axis, r)
        hot = i[..., None] == np.arange(d)
        out = np.where(hot, v[1], v[0]).astype(v.dtype, copy=False)
        return (np.moveaxis(out, -1, a),)
    return run


@register("Trilu", shape_inputs=())
def trilu(ctx: NodeCtx):
    upper = int(ctx.attr("upper", 1))

    def run(x, k=None):
        kk = 0 if k is None else int(np.asarray(k).reshape(-1)[0])
        if x.ndim < 2:
            raise ValueError("Trilu: input must be at least 2-D")
        return ((np.triu if upper else np.tril)(x, kk),)
    return run


@register("TopK", shape_inputs=(1,))
def topk(ctx: NodeCtx):
    axis = int(ctx.attr("axis", -1))
    largest = int(ctx.attr("largest", 1)) if ctx.version >= 11 else 1
    # sorted=0 allows any order: the sorted order is one of them
    k_attr = int(ctx.attr("k")) if ctx.version < 10 else None

    def run(x, k=None):
        kk = k_attr if k_attr is not None else int(np.asarray(k).reshape(-1)[0])
        a = _axis(axis, x.ndim)
        if not 0 <= kk <= x.shape[a]:
            raise ValueError(f"TopK: k={kk} out of range for dim {x.shape[a]}")
        if largest:
            if x.dtype.kind == "u":
                key = ~x
            elif x.dtype.kind == "b":
                key = ~x
            else:
                key = -x.astype(np.float64) if x.dtype.kind == "f" else -x.astype(np.int64)
        else:
            key = x
        order = np.argsort(key, axis=a, kind="stable")
        idx = np.take(order, np.arange(kk), axis=a)
        return (np.take_along_axis(x, idx, axis=a), idx.astype(np.int64, copy=False))
    return run


@register("NonZero")
def nonzero(ctx: NodeCtx):
    def run(x):
        if x.ndim == 0:
            return (np.zeros((0, 1 if x else 0), dtype=np.int64),)
        return (np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1),)
    return run


@register("Unique")
def unique(ctx: NodeCtx):
    sorted_ = int(ctx.attr("sorted", 1))
    axis = ctx.attr("axis", None)

    def run(x):
        if axis is None:
            y, ind, inv, cnt = np.unique(x.reshape(-1), return_index=True, return_inverse=True, return_counts=True)
            a = 0
        else:
            a = _axis(int(axis), x.ndim)
            y, ind, inv, cnt = np.unique(x, return_index=True, return_inverse=True, return_counts=True, axis=a)
        inv = inv.reshape(-1)
        if not sorted_:
            order = np.argsort(ind, kind="stable")
            rank = np.empty_like(order)
            rank[order] = np.arange(order.size)
            y = np.take(y, order, axis=a)
            ind, cnt, inv = ind[order], cnt[order], rank[inv]
        return (y, ind.astype(np.int64), inv.astype(np.int64), cnt.astype(np.int64))
    return run


@register("Compress")
def compress(ctx: NodeCtx):
    axis = ctx.attr("axis", None)

    def run(x, cond):
        c = np.asarray(cond).reshape(-1).astype(bool)
        if axis is None:
            return (np.compress(c, x.reshape(-1)),)
        return (np.compress(c, x, axis=_axis(int(axis), x.ndim)),)
    return run


# ------------------------------------------------------------------------------------------------ space/depth

@register("DepthToSpace", shape_inputs=())
def depth_to_space(ctx: NodeCtx):
    b = int(ctx.attr("blocksize"))
    mode = ctx.attr_str("mode", "DCR") if ctx.version >= 11 else "DCR"
    if mode not in ("DCR", "CRD"):
        raise Unsupported(f"DepthToSpace mode {mode!r}")

    def run(x):
        if x.ndim != 4:
            raise ValueError("DepthToSpace: input must be 4-D")
        n, c, h, w = x.shape
        if c % (b * b):
            raise ValueError(f"DepthToSpace: channels {c} not divisible by blocksize^2")
        if mode == "DCR":
            t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
        else:
            t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
        return (t.reshape(n, c // (b * b), h * b, w * b),)
    return run


@register("SpaceToDepth", shape_inputs=())
def space_to_depth(ctx: NodeCtx):
    b = int(ctx.attr("blocksize"))
    mode = ctx.attr_str("mode", "DCR")
    if mode not in ("DCR", "CRD"):
        raise Unsupported(f"SpaceToDepth mode {mode!r}")
    perm = (0, 3, 5, 1, 2, 4) if mode == "DCR" else (0, 1, 3, 5, 2, 4)

    def run(x):
        if x.ndim != 4:
            raise ValueError("SpaceToDepth: input must be 4-D")
        n, c, h, w = x.shape
        if h % b or w % b:
            raise ValueError("SpaceToDepth: spatial dims not divisible by blocksize")
        t = x.reshape(n, c, h // b, b, w // b, b).transpose(perm)
        return (t.reshape(n, c * b * b, h // b, w // b),)
    return run


# ------------------------------------------------------------------------------------------------ misc

@register("Einsum", shape_inputs=())
def einsum(ctx: NodeCtx):
    eq = ctx.attr_str("equation").replace(" ", "")

    def run(*xs):
        dt = xs[0].dtype
        if dt.kind not in "fiucb":
            xs = [x.astype(np.float32) for x in xs]      # bfloat16 & co: numpy cannot einsum them natively
        out = np.einsum(eq, *xs, optimize=len(xs) > 2)
        return (np.asarray(out).astype(dt, copy=False),)
    return run


@register("Dropout", shape_inputs=(), nondeterministic=True)
def dropout(ctx: NodeCtx):
    v = ctx.version
    ratio_attr = float(ctx.attr("ratio", 0.5)) if v < 12 else None
    seed = ctx.attr("seed", None)
    want_mask = ctx.has_output(1)
    if v < 7:
        if int(ctx.attr("is_test", 0)) == 0:
            raise Unsupported("Dropout before opset 7 in training mode (is_test=0)")

    def run(x, ratio=None, training=None):
        train = training is not None and bool(np.asarray(training).reshape(-1)[0])
        if not train:
            if not want_mask:
                return (x, None)
            mdt = x.dtype if v < 10 else np.bool_
            return (x, np.ones(x.shape, dtype=mdt))
        r = float(np.asarray(ratio).reshape(-1)[0]) if ratio is not None else (ratio_attr if ratio_attr is not None
                                                                                 else 0.5)
        mask = np.random.RandomState(seed).uniform(0, 1.0, x.shape) >= r  # the stream onnx's reference uses
        scale = 1.0 / (1.0 - r) if r < 1 else 0.0
        y = (x * mask * scale).astype(x.dtype, copy=False)
        return (y, mask if want_mask else None)
    return run


# ------------------------------------------------------------------------------------------------ Resize / Upsample
# Resize is separable: the N-D result is a 1-D resize applied along each resized axis in turn. Each 1-D resize
# maps output index y to a source coordinate x (coordinate_transformation_mode), then takes n taps around x with
# weights from the interpolation kernel (edge-clamped indices), exactly as the spec's reference describes.

_CTMS = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
         "tf_crop_and_resize", "tf_half_pixel_for_nn")
_NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _src_coords(ctm, out_n, scale, in_n, roi):
    y = np.arange(out_n, dtype=np.float64)
    out_w = scale * in_n
    if ctm == "align_corners":
        return np.zeros(out_n) if out_w == 1 else y * (in_n - 1) / (out_w - 1)
    if ctm == "asymmetric":
        return y / scale
    if ctm == "tf_crop_and_resize":
        r0, r1 = roi
        if out_w == 1:
            x = np.full(out_n, (r1 - r0) * (in_n - 1) / 2)
        else:
            x = y * (r1 - r0) * (in_n - 1) / (out_w - 1)
        return x + r0 * (in_n - 1)
    if ctm == "pytorch_half_pixel":
        return np.full(out_n, -0.5) if out_w == 1 else (y + 0.5) / scale - 0.5
    if ctm == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if ctm == "half_pixel_symmetric":
        offset = in_n / 2 * (1 - out_n / out_w)
        return offset + (y + 0.5) / scale - 0.5
    if ctm == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale
    raise ValueError(f"Resize: unknown coordinate_transformation_mode {ctm!r}")


def _cubic_kernel(t, a):
    t = np.abs(t)
    t2, t3 = t * t, t * t * t
    return np.where(t <= 1, (a + 2) * t3 - (a + 3) * t2 + 1,
                    np.where(t < 2, a * t3 - 5 * a * t2 + 8 * a * t - 4 * a, 0.0))


def _coeffs(mode, ratio, scale, a, antialias):
    """(O, n) kernel weights for taps at offsets relative to the window start (see _window)."""
    r = ratio[:, None]
    if mode == "linear":
        if antialias and scale < 1:
            start = int(np.floor(-1 / scale) + 1)
            args = (np.arange(start, 2 - start) - r) * scale
            c = np.clip(1 - np.abs(args), 0, 1)
            return c / c.sum(axis=1, keepdims=True)
        return np.concatenate([1 - r, r], axis=1)
    # cubic
    if antialias and scale < 1:
        start = int(np.floor(-2 / scale) + 1)
        c = _cubic_kernel(scale * (np.arange(start, 2 - start) - r), a)
        return c / c.sum(axis=1, keepdims=True)
    return _cubic_kernel(np.concatenate([r + 1, r, 1 - r, 2 - r], axis=1), a)


def _axis_table(mode, ctm, nearest_mode, a, excl, antialias, in_n, out_n, scale, roi):
    """(indices (O, n), weights (O, n) or None, extrapolated mask or None) for one axis."""
    x = _src_coords(ctm, out_n, scale, in_n, roi)
    extra = None
    if ctm == "tf_crop_and_resize":
        extra = (x < 0) | (x > in_n - 1)
        if not extra.any():
            extra = None
    xf = np.floor(x)
    if mode == "nearest":
        frac = x - xf
        if nearest_mode == "round_prefer_floor":
            up = frac > 0.5
        elif nearest_mode == "round_prefer_ceil":
            up = frac >= 0.5
        elif nearest_mode == "floor":
            up = np.zeros(out_n, dtype=bool)
        else:
            up = frac > 0
        idx = np.clip(xf + up, 0, in_n - 1).astype(np.intp)
        return idx[:, None], None, extra
    ratio = np.where(x == xf, 1.0, x - xf)
    w = _coeffs(mode, ratio, scale, a, antialias)
    n = w.shape[1]
    if n % 2 == 0:
        off = np.where(x == xf, -(n // 2), -(n // 2) + 1)
    else:
        off = np.where(x - xf <= 0.5, -((n - 1) // 2), -((n - 1) // 2) + 1)
    taps = (xf.astype(np.int64) + off)[:, None] + np.arange(n)
    if excl:
        w = np.where((taps < 0) | (taps >= in_n), 0.0, w)
        s = w.sum(axis=1, keepdims=True)
        w = w / np.where(s == 0, 1.0, s)
    return np.clip(taps, 0, in_n - 1).astype(np.intp), w, extra


_DENSE_MAX_IN = 192     # up to this input length a linear/cubic axis is one BLAS matmul with a banded matrix


def _dense_matrix(table, in_n, cdt):
    idx, w, _ = table
    m = np.zeros((idx.shape[0], in_n), dtype=np.float64)
    np.add.at(m, (np.repeat(np.arange(idx.shape[0]), idx.shape[1]), idx.reshape(-1)), w.reshape(-1))
    return m.astype(cdt)


def _resize_axis(data, axis, table, extrap, cdt, dense=None):
    idx, w, extra = table
    if w is None:
        out = np.take(data, idx[:, 0], axis=axis)
    elif dense is not None and axis >= data.ndim - 2:
        # a matmul mixes every input of the row (0 * inf = nan), so the caller checked the data is finite
        out = np.matmul(dense, data) if axis == data.ndim - 2 else np.matmul(data, dense.T)
    else:
        shp = [1] * data.ndim
        shp[axis] = -1
        out = None
        for k in range(idx.shape[1]):
            term = np.take(data, idx[:, k], axis=axis) * w[:, k].astype(cdt).reshape(shp)
            out = term if out is None else out + term
        if out is None:
            out = np.take(data, idx[:, 0], axis=axis)
    if extra is not None:
        shp = [1] * data.ndim
        shp[axis] = -1
        out = np.where(extra.reshape(shp), np.asarray(extrap, dtype=out.dtype), out)
    return out


class _ResizeSpec:
    def __init__(self, mode, ctm, nearest_mode, a, excl, extrap, antialias, policy):
        self.mode, self.ctm, self.nearest_mode, self.a = mode, ctm, nearest_mode, a
        self.excl, self.extrap, self.antialias, self.policy = excl, extrap, antialias, policy
        self.cache: dict = {}

    def run(self, x, scales, sizes, roi, axes):
        r = x.ndim
        axes = list(range(r)) if axes is None else [_axis(a, r, "Resize axis") for a in axes]
        n = len(axes)
        if roi is not None:
            roi = [float(v) for v in np.asarray(roi).reshape(-1)]
            if not roi:
                roi = None
            elif len(roi) != 2 * n:
                raise ValueError(f"Resize: roi has {len(roi)} values, expected {2 * n}")
        if self.ctm == "tf_crop_and_resize" and roi is None:
            raise ValueError("Resize: coordinate_transformation_mode tf_crop_and_resize needs roi")
        if sizes is not None:
            sizes = _ints(sizes)
            if len(sizes) != n:
                raise ValueError(f"Resize: sizes has {len(sizes)} values for {n} axes")
            sc = [sizes[i] / x.shape[a] if x.shape[a] else 1.0 for i, a in enumerate(axes)]
            if self.policy != "stretch":
                s = min(sc) if self.policy == "not_larger" else max(sc)
                sc = [s] * n
                sizes = [int(s * x.shape[a] + 0.5) for a in axes]
        elif scales is not None:
            sc = [float(v) for v in np.asarray(scales).reshape(-1)]
            if len(sc) != n:
                raise ValueError(f"Resize: scales has {len(sc)} values for {n} axes")
            if any(s <= 0 for s in sc):
                raise ValueError(f"Resize: scales must be positive, got {sc}")
            sizes = [int(np.floor(s * x.shape[a])) for s, a in zip(sc, axes)]
        else:
            raise ValueError("Resize: neither scales nor sizes is given")
        cdt = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        y = x if x.dtype == cdt else x.astype(cdt)
        finite = None
        for i, a in enumerate(axes):
            in_n, out_n, s = x.shape[a], sizes[i], sc[i]
            rp = None if roi is None else (roi[i], roi[n + i])
            if abs(s - 1.0) < 1e-9 and out_n == in_n and (rp is None or (rp[0] == 0.0 and rp[1] == 1.0)):
                continue
            if out_n == 0 or in_n == 0:
                shp = list(y.shape)
                shp[a] = out_n
                if out_n and not in_n:
                    raise ValueError("Resize: cannot resize an empty axis to a non-empty one")
                y = np.zeros(shp, dtype=cdt)
                continue
            key = (in_n, out_n, s, rp)
            t = self.cache.get(key)
            if t is None:
                t = _axis_table(self.mode, self.ctm, self.nearest_mode, self.a, self.excl, self.antialias, in_n,
                                out_n, s, rp)
                if len(self.cache) < 64:
                    self.cache[key] = t
            dense = None
            if t[1] is not None and in_n <= _DENSE_MAX_IN and a >= y.ndim - 2 and y.size >= 4096:
                if finite is None:
                    finite = bool(np.isfinite(y).all())
                if finite:
                    dkey = (key, cdt.str)
                    dense = self.cache.get(dkey)
                    if dense is None:
                        dense = _dense_matrix(t, in_n, cdt)
                        if len(self.cache) < 64:
                            self.cache[dkey] = dense
            y = _resize_axis(y, a, t, self.extrap, cdt, dense)
        if y.dtype == x.dtype:
            return y
        if x.dtype.kind in "iu":
            info = np.iinfo(x.dtype)
            return np.clip(np.round(y), info.min, info.max).astype(x.dtype)
        return y.astype(x.dtype)


@register("Resize", shape_inputs=(1, 2, 3))
def resize(ctx: NodeCtx):
    v = ctx.version
    mode = ctx.attr_str("mode", "nearest")
    if mode not in ("nearest", "linear", "cubic") or (v < 11 and mode == "cubic"):
        raise Unsupported(f"Resize mode {mode!r} at opset {v}")
    if v < 11:
        ctm, nearest_mode = "asymmetric", "floor"
    else:
        ctm = ctx.attr_str("coordinate_transformation_mode", "half_pixel")
        nearest_mode = ctx.attr_str("nearest_mode", "round_prefer_floor")
    if ctm not in _CTMS or (ctm == "tf_half_pixel_for_nn" and v >= 13) or \
            (ctm == "half_pixel_symmetric" and v < 19):
        raise Unsupported(f"Resize coordinate_transformation_mode {ctm!r} at opset {v}")
    if nearest_mode not in _NEAREST_MODES:
        raise Unsupported(f"Resize nearest_mode {nearest_mode!r}")
    antialias = int(ctx.attr("antialias", 0)) if v >= 18 else 0
    if antialias and mode == "nearest":
        raise Unsupported("Resize: antialias is defined for linear and cubic modes only")
    policy = ctx.attr_str("keep_aspect_ratio_policy", "stretch") if v >= 18 else "stretch"
    if policy not in ("stretch", "not_larger", "not_smaller"):
        raise Unsupported(f"Resize keep_aspect_ratio_policy {policy!r}")
    axes = _ints(ctx.attr("axes", None)) if v >= 18 else None
    spec = _ResizeSpec(mode, ctm, nearest_mode, float(ctx.attr("cubic_coeff_a", -0.75)),
                       int(ctx.attr("exclude_outside", 0)), float(ctx.attr("extrapolation_value", 0.0)),
                       antialias, policy)
    if v < 11:
        def run10(x, scales):
            return (spec.run(x, scales, None, None, None),)
        return run10
    def run(x, roi=None, scales=None, sizes=None):
        if sizes is not None and np.size(sizes) == 0:
            sizes = None
        if scales is not None and np.size(scales) == 0:
            scales = None
        if sizes is not None and scales is not None:
            raise ValueError("Resize: only one of scales and sizes may be given")
        return (spec.run(x, scales, sizes, roi if ctm == "tf_crop_and_resize" else None, axes),)
    return run


@register("Upsample", shape_inputs=(1,))
def upsample(ctx: NodeCtx):
    v = ctx.version
    mode = ctx.attr_str("mode", "nearest")
    if mode == "bilinear":
        mode = "linear"
    if mode not in ("nearest", "linear"):
        raise Unsupported(f"Upsample mode {mode!r}")
    spec = _ResizeSpec(mode, "asymmetric", "floor", -0.75, 0, 0.0, 0, "stretch")
    if v < 9:
        scales = ctx.attr("scales", None)
        if scales is None:
            if v < 7 and ctx.has_attr("height_scale"):
                raise Unsupported("Upsample-1 (height_scale/width_scale) is not supported")
            raise Unsupported("Upsample needs a scales attribute")
        sc = [float(s) for s in scales]

        def run7(x):
            return (spec.run(x, sc, None, None, None),)
        return run7

    def run(x, scales):
        return (spec.run(x, scales, None, None, None),)
    return run


# ------------------------------------------------------------------------------------------------ detection

def _box_corners(b, center):
    b = b.astype(np.float64)
    if center:
        hw, hh = b[:, 2] / 2, b[:, 3] / 2
        return b[:, 0] - hw, b[:, 1] - hh, b[:, 0] + hw, b[:, 1] + hh   # x1, y1, x2, y2
    y1, x1, y2, x2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    return np.minimum(x1, x2), np.minimum(y1, y2), np.maximum(x1, x2), np.maximum(y1, y2)


@register("NonMaxSuppression")
def non_max_suppression(ctx: NodeCtx):
    center = int(ctx.attr("center_point_box", 0))

    def run(boxes, scores, max_out=None, iou_thr=None, score_thr=None):
        if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3 or scores.shape[0] != boxes.shape[0] \
                or scores.shape[2] != boxes.shape[1]:
            raise ValueError(f"NonMaxSuppression: boxes {list(boxes.shape)} and scores {list(scores.shape)} "
                             "must be [B, N, 4] and [B, C, N]")
        m = 0 if max_out is None or np.size(max_out) == 0 else max(int(np.asarray(max_out).reshape(-1)[0]), 0)
        iou = 0.0 if iou_thr is None or np.size(iou_thr) == 0 else float(np.asarray(iou_thr).reshape(-1)[0])
        sthr = None if score_thr is None or np.size(score_thr) == 0 else float(np.asarray(score_thr).reshape(-1)[0])
        out = []
        if m == 0:
            return (np.zeros((0, 3), dtype=np.int64),)
        for b in range(boxes.shape[0]):
            x1, y1, x2, y2 = _box_corners(boxes[b], center)
            area = (x2 - x1) * (y2 - y1)
            for c in range(scores.shape[1]):
                s = scores[b, c]
                cand = np.arange(s.shape[0]) if sthr is None else np.nonzero(s > sthr)[0]
                cand = cand[np.argsort(-s[cand].astype(np.float64), kind="stable")]
                alive = np.ones(cand.size, dtype=bool)
                picked = 0
                for j in range(cand.size):
                    if not alive[j]:
                        continue
                    i = cand[j]
                    out.append((b, c, i))
                    picked += 1
                    if picked >= m:
                        break
                    rest = cand[j + 1:]
                    iw = np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])
                    ih = np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])
                    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
                    union = area[i] + area[rest] - inter
                    ok = (inter > 0) & (area[i] > 0) & (area[rest] > 0) & (union > 0)
                    ratio = np.divide(inter, union, out=np.zeros_like(inter), where=ok)
                    alive[j + 1:] &= ~(ok & (ratio > iou))
        return (np.array(out, dtype=np.int64).reshape(-1, 3),)
    return run


@register("CenterCropPad", shape_inputs=(1,))
def center_crop_pad(ctx: NodeCtx):
    axes_attr = _ints(ctx.attr("axes", None))

    def run(x, shape):
        r = x.ndim
        sh = _ints(shape)
        axes = list(range(r)) if axes_attr is None else [_axis(a, r) for a in axes_attr]
        if len(sh) != len(axes):
            raise ValueError(f"CenterCropPad: shape has {len(sh)} values for {len(axes)} axes")
        crop = [slice(None)] * r
        put = [slice(None)] * r
        new = list(x.shape)
        for a, t in zip(axes, sh):
            d = x.shape[a]
            if t < d:
                s = (d - t) // 2
                crop[a] = slice(s, s + t)
            elif t > d:
                s = (t - d) // 2
                put[a] = slice(s, s + d)
            new[a] = t
        y = x[tuple(crop)]
        if tuple(new) == y.shape:
            return (y,)
        out = np.zeros(new, dtype=x.dtype)
        out[tuple(put)] = y
        return (out,)
    return run


@register("ReverseSequence", shape_inputs=())
def reverse_sequence(ctx: NodeCtx):
    batch_axis = int(ctx.attr("batch_axis", 1))
    time_axis = int(ctx.attr("time_axis", 0))
    if {batch_axis, time_axis} != {0, 1}:
        raise Unsupported("ReverseSequence: batch_axis and time_axis must be 0 and 1")

    def run(x, lens):
        T, B = x.shape[time_axis], x.shape[batch_axis]
        ln = np.asarray(lens).reshape(-1).astype(np.int64)
        if ln.size != B or (ln.size and (ln.min() < 0 or ln.max() > T)):
            raise ValueError(f"ReverseSequence: sequence_lens {ln.tolist()} invalid for batch {B}, time {T}")
        t = np.arange(T)[:, None]
        src = np.where(t < ln[None, :], ln[None, :] - 1 - t, t)          # (T, B)
        idx = src if time_axis == 0 else src.T
        idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
        return (np.take_along_axis(x, idx, axis=time_axis),)
    return run


@register("Det", shape_inputs=())
def det(ctx: NodeCtx):
    def run(x):
        if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"Det: input shape {list(x.shape)} is not [..., M, M]")
        return (np.asarray(np.linalg.det(x)).astype(x.dtype, copy=False),)
    return run


# ------------------------------------------------------------------------------------------------ random

def _rng(seed):
    return np.random.RandomState() if seed is None else np.random.RandomState(int(seed))


@register("RandomNormal", "RandomUniform", shape_inputs=(), nondeterministic=True)
def random_(ctx: NodeCtx):
    dtype = _onnx_dtype(ctx.attr("dtype", 1))
    shape = tuple(_ints(ctx.attr("shape")))
    seed = ctx.attr("seed", None)
    normal = ctx.op_type == "RandomNormal"
    a = float(ctx.attr("mean", 0.0) if normal else ctx.attr("low", 0.0))
    b = float(ctx.attr("scale", 1.0) if normal else ctx.attr("high", 1.0))

    def run():
        st = _rng(seed)
        if normal:
            r = st.randn(*shape).astype(dtype) * b + a
        else:
            r = st.rand(*shape).astype(dtype) * (b - a) + a
        return (np.asarray(r, dtype=dtype),)
    return run


@register("RandomNormalLike", "RandomUniformLike", shape_inputs=(), nondeterministic=True)
def random_like(ctx: NodeCtx):
    dt = ctx.attr("dtype", None)
    dtype = None if dt is None else _onnx_dtype(dt)
    seed = ctx.attr("seed", None)
    normal = ctx.op_type == "RandomNormalLike"
    a = float(ctx.attr("mean", 0.0) if normal else ctx.attr("low", 0.0))
    b = float(ctx.attr("scale", 1.0) if normal else ctx.attr("high", 1.0))

    def run(x):
        d = dtype or x.dtype
        st = _rng(seed)
        if normal:
            r = st.randn(*x.shape).astype(d) * b + a
        else:
            r = st.rand(*x.shape).astype(d) * (b - a) + a
        return (np.asarray(r, dtype=d),)
    return run


@register("Bernoulli", shape_inputs=(), nondeterministic=True)
def bernoulli(ctx: NodeCtx):
    dt = ctx.attr("dtype", None)
    dtype = None if dt is None else _onnx_dtype(dt)
    seed = ctx.attr("seed", None)

    def run(p):
        if p.size and (np.nanmin(p) < 0 or np.nanmax(p) > 1):
            raise ValueError("Bernoulli: probabilities must lie in [0, 1]")
        return (_rng(seed).binomial(1, p=p).astype(dtype or p.dtype),)
    return run


@register("Multinomial", shape_inputs=(), nondeterministic=True)
def multinomial(ctx: NodeCtx):
    dtype = _onnx_dtype(ctx.attr("dtype", 6))
    n = int(ctx.attr("sample_size", 1))
    seed = ctx.attr("seed", None)

    def run(x):
        if x.ndim != 2:
            raise ValueError("Multinomial: input must be [batch, classes]")
        lp = x.astype(np.float64)
        p = np.exp(lp - lp.max(axis=1, keepdims=True))
        cdf = np.cumsum(p, axis=1)
        cdf /= cdf[:, -1:]
        u = _rng(seed).rand(x.shape[0], n)
        out = np.empty((x.shape[0], n), dtype=dtype)
        for i in range(x.shape[0]):
            out[i] = np.minimum(np.searchsorted(cdf[i], u[i], side="right"), x.shape[1] - 1)
        return (out,)
    return run


# ------------------------------------------------------------------------------------------------ windows

def _window(ctx: NodeCtx, a0: float, a1: float, a2: float):
    dtype = _onnx_dtype(ctx.attr("output_datatype", 1))
    periodic = int(ctx.attr("periodic", 1))

    def run(size):
        n = int(np.asarray(size).reshape(-1)[0])
        if n < 0:
            raise ValueError(f"{ctx.op_type}: size {n} is negative")
        N = n if periodic else n - 1
        k = np.arange(n, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            w = a0 - a1 * np.cos(2 * np.pi * k / N) + a2 * np.cos(4 * np.pi * k / N)
        if n == 1 and not periodic:
            w = np.ones(1)
        return (w.astype(dtype),)
    return run


@register("HannWindow", shape_inputs=(0,))
def hann_window(ctx: NodeCtx):
    return _window(ctx, 0.5, 0.5, 0.0)


@register("HammingWindow", shape_inputs=(0,))
def hamming_window(ctx: NodeCtx):
    return _window(ctx, 25.0 / 46.0, 21.0 / 46.0, 0.0)


@register("BlackmanWindow", shape_inputs=(0,))
def blackman_window(ctx: NodeCtx):
    return _window(ctx, 0.42, 0.5, 0.08)


# ------------------------------------------------------------------------------------------------ spectral

def _to_complex(x):
    if x.shape[-1] == 1:
        return x[..., 0]
    if x.shape[-1] == 2:
        return x[..., 0] + 1j * x[..., 1]
    raise ValueError(f"the last dim must be 1 (real) or 2 (complex), got {x.shape[-1]}")


def _from_complex(c, dtype):
    out = np.empty(c.shape + (2,), dtype=dtype)
    out[..., 0] = c.real
    out[..., 1] = c.imag
    return out


@register("DFT", shape_inputs=(1, 2))
def dft(ctx: NodeCtx):
    v = ctx.version
    inverse = int(ctx.attr("inverse", 0))
    onesided = int(ctx.attr("onesided", 0))
    axis_attr = int(ctx.attr("axis", 1)) if v < 20 else None
    def run(x, dft_length=None, axis=None):
        if axis_attr is not None:
            a = axis_attr
        else:
            a = -2 if axis is None or np.size(axis) == 0 else int(np.asarray(axis).reshape(-1)[0])
        r = x.ndim
        a = a % r
        if a == r - 1:
            raise ValueError("DFT: axis cannot be the last (real/imaginary) dim")
        c = _to_complex(x)
        if dft_length is None or np.size(dft_length) == 0:
            n = 2 * (x.shape[a] - 1) if inverse and onesided else x.shape[a]
        else:
            n = int(np.asarray(dft_length).reshape(-1)[0])
        if n <= 0:
            raise ValueError(f"DFT: dft_length {n} must be positive")
        if inverse:
            if onesided:
                return (np.fft.irfft(c, n=n, axis=a)[..., None].astype(x.dtype),)
            return (_from_complex(np.fft.ifft(c, n=n, axis=a), x.dtype),)
        f = np.fft.fft(c, n=n, axis=a)
        if onesided:
            f = np.take(f, np.arange(n // 2 + 1), axis=a)
        return (_from_complex(f, x.dtype),)
    return run


@register("STFT", shape_inputs=(1, 2, 3))
def stft(ctx: NodeCtx):
    onesided = int(ctx.attr("onesided", 1))

    def run(x, frame_step, window=None, frame_length=None):
        if x.ndim != 3:
            raise ValueError("STFT: signal must be [batch, length, 1 or 2]")
        step = int(np.asarray(frame_step).reshape(-1)[0])
        if frame_length is not None and np.size(frame_length):
            fl = int(np.asarray(frame_length).reshape(-1)[0])
        else:
            fl = x.shape[1] if window is None else window.shape[0]
        w = np.ones(fl, dtype=x.dtype) if window is None else window
        ws = w.shape[0]
        if step <= 0 or ws > x.shape[1]:
            raise ValueError(f"STFT: frame_step {step} / window {ws} invalid for signal length {x.shape[1]}")
        nf = 1 + (x.shape[1] - ws) // step
        idx = np.arange(nf)[:, None] * step + np.arange(ws)
        frames = x[:, idx, :] * w.reshape(1, 1, ws, 1)            # [B, F, ws, 1|2]
        f = np.fft.fft(_to_complex(frames), n=fl, axis=2)
        if onesided:
            f = f[:, :, :fl // 2 + 1]
        return (_from_complex(f, x.dtype),)
    return run


@register("MelWeightMatrix", shape_inputs=(0, 1, 2, 3, 4))
def mel_weight_matrix(ctx: NodeCtx):
    dtype = _onnx_dtype(ctx.attr("output_datatype", 1))

    def run(num_mel_bins, dft_length, sample_rate, lower_hz, upper_hz):
        nm = int(np.asarray(num_mel_bins).reshape(-1)[0])
        dl = int(np.asarray(dft_length).reshape(-1)[0])
        sr = int(np.asarray(sample_rate).reshape(-1)[0])
        lo = float(np.asarray(lower_hz).reshape(-1)[0])
        hi = float(np.asarray(upper_hz).reshape(-1)[0])
        if nm <= 0 or dl <= 0 or sr <= 0:
            raise ValueError("MelWeightMatrix: num_mel_bins, dft_length and sample_rate must be positive")
        nbins = dl // 2 + 1
        lo_m = 2595 * np.log1p(lo / 700) / np.log(10)
        hi_m = 2595 * np.log1p(hi / 700) / np.log(10)
        step = (hi_m - lo_m) / (nm + 2)
        hz = 700 * np.expm1((np.arange(nm + 2) * step + lo_m) / 2595 * np.log(10))
        pts = (((dl + 1) * hz) // sr).astype(np.int64)
        j = np.arange(nbins)[:, None]
        left, center, right = pts[None, :-2], pts[None, 1:-1], pts[None, 2:]
        lc = center - left
        ch = right - center
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.where((j >= left) & (j <= center), (j - left) / np.where(lc == 0, 1, lc), 0.0)
            up = np.where((lc == 0) & (j == center), 1.0, np.where(lc == 0, 0.0, up))
            down = np.where((j >= center) & (j < right), (right - j) / np.where(ch == 0, 1, ch), 0.0)
        out = np.where((ch > 0) & (j >= center) & (j < right), down, up)
        return (out.astype(dtype),)
    return run


# ------------------------------------------------------------------------------------------------ sampling

def _reflect(x, lo, hi):
    rng = hi - lo
    if rng <= 0:
        return np.full_like(x, lo)
    below, above = x < lo, x > hi
    dx = np.where(below, lo - x, x - hi)
    n = np.floor(dx / rng)
    r = dx - n * rng
    even = (n % 2) == 0
    return np.where(below, np.where(even, lo + r, hi - r), np.where(above, np.where(even, hi - r, lo + r), x))


def _cubic_w(t, a=-0.75):
    return [((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a,
            ((a + 2) * t - (a + 3)) * t * t + 1,
            ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1,
            ((a * (2 - t) - 5 * a) * (2 - t) + 8 * a) * (2 - t) - 4 * a]


@register("GridSample", shape_inputs=())
def grid_sample(ctx: NodeCtx):
    v = ctx.version
    mode = ctx.attr_str("mode", "bilinear" if v < 20 else "linear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    if mode not in ("linear", "nearest", "cubic"):
        raise Unsupported(f"GridSample mode {mode!r}")
    pad_mode = ctx.attr_str("padding_mode", "zeros")
    if pad_mode not in ("zeros", "border", "reflection"):
        raise Unsupported(f"GridSample padding_mode {pad_mode!r}")
    align = int(ctx.attr("align_corners", 0))
    import itertools

    def run(x, grid):
        N, C = x.shape[:2]
        dims = x.shape[2:]
        D = len(dims)
        if grid.ndim != D + 2 or grid.shape[0] != N or grid.shape[-1] != D:
            raise ValueError(f"GridSample: grid {list(grid.shape)} does not match input {list(x.shape)}")
        if v < 20 and D != 2:
            raise ValueError("GridSample-16 takes 4-D inputs only")
        out_sp = grid.shape[1:-1]
        P = int(np.prod(out_sp, dtype=np.int64))
        g = grid.reshape(N, P, D).astype(np.float64)
        taps_per_dim = []
        for d in range(D):
            size = dims[d]
            gv = g[:, :, D - 1 - d]
            c = (gv + 1) / 2 * (size - 1) if align else ((gv + 1) * size - 1) / 2
            lo, hi = (0.0, size - 1.0) if align else (-0.5, size - 0.5)
            if mode == "nearest":
                c = np.rint(c)
            if pad_mode == "border":
                c = np.where((c < lo) | (c > hi), np.clip(c, 0, size - 1), c)
            elif pad_mode == "reflection":
                c = _reflect(c, lo, hi)
            if mode == "nearest":
                idxs, ws = [np.trunc(c).astype(np.int64)], [np.ones_like(c)]
            else:
                f = np.floor(c)
                t = c - f
                f = f.astype(np.int64)
                if mode == "linear":
                    idxs, ws = [f, f + 1], [1 - t, t]
                else:
                    idxs, ws = [f - 1, f, f + 1, f + 2], _cubic_w(t)
            fixed = []
            for i, w in zip(idxs, ws):
                if pad_mode == "zeros":
                    ok = (i >= 0) & (i < size)
                    fixed.append((np.clip(i, 0, size - 1), np.where(ok, w, 0.0)))
                elif pad_mode == "border":
                    fixed.append((np.clip(i, 0, size - 1), w))
                else:
                    ii = np.trunc(_reflect(i.astype(np.float64), lo, hi)).astype(np.int64)
                    fixed.append((np.clip(ii, 0, size - 1), w))
            taps_per_dim.append(fixed)
        strides = [int(np.prod(dims[d + 1:], dtype=np.int64)) for d in range(D)]
        xf = x.reshape(N, C, -1)
        bn = np.arange(N)[:, None, None]
        bc = np.arange(C)[None, :, None]
        acc = np.zeros((N, C, P), dtype=np.float64)
        for combo in itertools.product(*taps_per_dim):
            flat = sum(i * s for (i, _), s in zip(combo, strides))
            w = combo[0][1]
            for _, ww in combo[1:]:
                w = w * ww
            acc += xf[bn, bc, flat[:, None, :]] * w[:, None, :]
        return (acc.reshape((N, C) + tuple(out_sp)).astype(x.dtype),)
    return run


@register("AffineGrid", shape_inputs=(1,))
def affine_grid(ctx: NodeCtx):
    align = int(ctx.attr("align_corners", 0))

    def run(theta, size):
        sz = _ints(size)
        sp = sz[2:]
        D = len(sp)
        if D not in (2, 3) or theta.shape[1:] != (D, D + 1) or theta.shape[0] != sz[0]:
            raise ValueError(f"AffineGrid: theta {list(theta.shape)} does not match size {sz}")

        def lin(n):
            if align:
                return np.linspace(-1, 1, n) if n > 1 else np.zeros(n)
            return (2 * np.arange(n) + 1) / n - 1
        axes = [lin(n) for n in sp]                     # spatial order (D, H, W) / (H, W)
        mesh = np.meshgrid(*axes, indexing="ij")
        base = np.stack([m for m in reversed(mesh)] + [np.ones_like(mesh[0])], axis=-1)   # (..., x, y[, z], 1)
        out = np.einsum("...k,njk->n...j", base, theta.astype(np.float64))
        return (out.astype(theta.dtype),)
    return run


@register("Col2Im", shape_inputs=(1, 2))
def col2im(ctx: NodeCtx):
    dil_a = _ints(ctx.attr("dilations", None))
    pads_a = _ints(ctx.attr("pads", None))
    str_a = _ints(ctx.attr("strides", None))
    import itertools

    def run(x, image_shape, block_shape):
        img = _ints(image_shape)
        blk = _ints(block_shape)
        D = len(img)
        dil = dil_a or [1] * D
        pads = pads_a or [0] * (2 * D)
        st = str_a or [1] * D
        N, CK, L = x.shape
        K = int(np.prod(blk))
        if CK % K:
            raise ValueError(f"Col2Im: input dim 1 ({CK}) not divisible by the block size {K}")
        C = CK // K
        outs = [(img[d] + pads[d] + pads[d + D] - dil[d] * (blk[d] - 1) - 1) // st[d] + 1 for d in range(D)]
        if int(np.prod(outs)) != L:
            raise ValueError(f"Col2Im: {L} blocks given, the geometry implies {outs}")
        cols = x.reshape((N, C) + tuple(blk) + tuple(outs))
        padded = np.zeros((N, C) + tuple(img[d] + pads[d] + pads[d + D] for d in range(D)), dtype=x.dtype)
        for k in itertools.product(*[range(b) for b in blk]):
            sl = tuple(slice(k[d] * dil[d], k[d] * dil[d] + st[d] * (outs[d] - 1) + 1, st[d]) for d in range(D))
            padded[(slice(None), slice(None)) + sl] += cols[(slice(None), slice(None)) + k]
        crop = tuple(slice(pads[d], pads[d] + img[d]) for d in range(D))
        return (padded[(slice(None), slice(None)) + crop],)
    return run


@register("RoiAlign", shape_inputs=())
def roi_align(ctx: NodeCtx):
    v = ctx.version
    mode = ctx.attr_str("mode", "avg")
    if mode not in ("avg", "max"):
        raise Unsupported(f"RoiAlign mode {mode!r}")
    ph_n = int(ctx.attr("output_height", 1))
    pw_n = int(ctx.attr("output_width", 1))
    ratio = int(ctx.attr("sampling_ratio", 0))
    scale = float(ctx.attr("spatial_scale", 1.0))
    ctm = ctx.attr_str("coordinate_transformation_mode", "half_pixel") if v >= 16 else "output_half_pixel"
    if ctm not in ("half_pixel", "output_half_pixel"):
        raise Unsupported(f"RoiAlign coordinate_transformation_mode {ctm!r}")
    half = ctm == "half_pixel"

    def axis_samples(start, size, pooled, grid, n):
        # sample coordinates (pooled, grid) and their bilinear taps/weights along one axis
        f = np.float32                                        # float32 geometry, as the reference kernels
        b = f(size) / f(pooled)
        c = (f(start) + np.arange(pooled, dtype=f)[:, None] * b
             + (np.arange(grid, dtype=f)[None, :] + f(0.5)) * b / f(grid)).astype(np.float64)
        outside = (c < -1.0) | (c > n)
        c = np.maximum(c, 0.0)
        lo = np.floor(c).astype(np.int64)
        top = lo >= n - 1
        lo = np.where(top, n - 1, lo)
        hi = np.where(top, n - 1, lo + 1)
        c = np.where(top, lo.astype(np.float64), c)
        frac = c - lo
        return lo, hi, 1 - frac, frac, outside

    def run(x, rois, batch_indices):
        N, C, H, W = x.shape
        R = rois.shape[0]
        out = np.zeros((R, C, ph_n, pw_n), dtype=x.dtype)
        bi = np.asarray(batch_indices).reshape(-1)
        if bi.size != R or rois.shape[1:] != (4,):
            raise ValueError("RoiAlign: rois must be [R, 4] with R batch_indices")
        off = 0.5 if half else 0.0
        for r in range(R):
            b = int(bi[r])
            if not 0 <= b < N:
                raise IndexError(f"RoiAlign: batch index {b} out of range")
            x1, y1, x2, y2 = (np.float32(t) * np.float32(scale) - np.float32(off) for t in rois[r])
            rw, rh = x2 - x1, y2 - y1
            if not half:
                rw, rh = max(rw, np.float32(1.0)), max(rh, np.float32(1.0))
            gh = ratio if ratio > 0 else int(np.ceil(rh / np.float32(ph_n)))
            gw = ratio if ratio > 0 else int(np.ceil(rw / np.float32(pw_n)))
            ylo, yhi, wyl, wyh, yout = axis_samples(y1, rh, ph_n, gh, H)
            xlo, xhi, wxl, wxh, xout = axis_samples(x1, rw, pw_n, gw, W)
            img = x[b].astype(np.float64)                       # C, H, W
            Y = lambda a: a[:, :, None, None]                   # noqa: E731  (ph, gh) -> (ph, gh, 1, 1)
            X = lambda a: a[None, None, :, :]                   # noqa: E731  (pw, gw) -> (1, 1, pw, gw)
            valid = ~(Y(yout) | X(xout))
            terms = [img[:, Y(ylo), X(xlo)] * (Y(wyl) * X(wxl)), img[:, Y(ylo), X(xhi)] * (Y(wyl) * X(wxh)),
                     img[:, Y(yhi), X(xlo)] * (Y(wyh) * X(wxl)), img[:, Y(yhi), X(xhi)] * (Y(wyh) * X(wxh))]
            if mode == "avg":
                s = np.where(valid, terms[0] + terms[1] + terms[2] + terms[3], 0.0)
                out[r] = s.sum(axis=(2, 4)) / max(gh * gw, 1)
            else:
                m = np.maximum(np.maximum(terms[0], terms[1]), np.maximum(terms[2], terms[3]))
                m = np.where(valid, m, 0.0)
                out[r] = m.max(axis=(2, 4)) if gh * gw else 0
        return (out,)
    return run


# ------------------------------------------------------------------------------------------------ strings

def _str_array(x, op):
    x = np.asarray(x)
    if x.dtype.kind not in "OUS":
        raise TypeError(f"{op}: expected a string tensor, got {x.dtype}")
    if x.dtype.kind != "O":
        x = x.astype(object)
    return x


@register("StringNormalizer", shape_inputs=None)
def string_normalizer(ctx: NodeCtx):
    action = ctx.attr_str("case_change_action", "NONE")
    if action not in ("NONE", "LOWER", "UPPER"):
        raise Unsupported(f"StringNormalizer case_change_action {action!r}")
    sensitive = int(ctx.attr("is_case_sensitive", 0))
    stops = [w.decode() if isinstance(w, bytes) else w for w in ctx.attr("stopwords", [])]
    stop_set = set(stops) if sensitive else {w.lower() for w in stops}

    def norm(w):
        if action == "LOWER":
            return w.lower()
        if action == "UPPER":
            return w.upper()
        return w

    def run(x):
        x = _str_array(x, "StringNormalizer")
        if x.ndim == 2 and x.shape[0] == 1:
            words = list(x[0])
        elif x.ndim == 1:
            words = list(x)
        else:
            raise ValueError(f"StringNormalizer: input must be [C] or [1, C], got {list(x.shape)}")
        kept = [norm(w) for w in words if (w if sensitive else w.lower()) not in stop_set]
        if not kept:
            kept = [""]
        out = np.array(kept, dtype=object)
        return (out.reshape(1, -1) if x.ndim == 2 else out,)
    return run


@register("StringConcat", shape_inputs=())
def string_concat(ctx: NodeCtx):
    def run(a, b):
        return (np.asarray(_str_array(a, "StringConcat") + _str_array(b, "StringConcat"), dtype=object),)
    return run


@register("RegexFullMatch", shape_inputs=())
def regex_full_match(ctx: NodeCtx):
    import re

    pat = ctx.attr_str("pattern", None)
    if pat is None:
        raise Unsupported("RegexFullMatch needs a pattern")
    try:
        rx = re.compile(pat)
    except re.error as e:
        raise Unsupported(f"RegexFullMatch: pattern {pat!r} is not a valid regex: {e}")

    def run(x):
        x = _str_array(x, "RegexFullMatch")
        out = np.fromiter((rx.fullmatch(s) is not None for s in x.reshape(-1)), dtype=bool, count=x.size)
        return (out.reshape(x.shape),)
    return run


@register("StringSplit")
def string_split(ctx: NodeCtx):
    delim = ctx.attr_str("delimiter", None) or None
    maxsplit = ctx.attr("maxsplit", None)
    ms = -1 if maxsplit is None else int(maxsplit)

    def run(x):
        x = _str_array(x, "StringSplit")
        parts = [s.split(delim, ms) if delim is not None else s.split(None, ms) for s in x.reshape(-1)]
        n = max((len(p) for p in parts), default=0)
        y = np.full((len(parts), n), "", dtype=object)
        for i, p in enumerate(parts):
            y[i, :len(p)] = p
        z = np.array([len(p) for p in parts], dtype=np.int64).reshape(x.shape)
        return (y.reshape(x.shape + (n,)), z)
    return run


@register("TensorScatter", shape_inputs=())
def tensor_scatter(ctx: NodeCtx):
    mode = ctx.attr_str("mode", "linear")
    if mode not in ("linear", "circular"):
        raise Unsupported(f"TensorScatter mode {mode!r}")
    axis = int(ctx.attr("axis", -2))

    def run(past, update, write_indices=None):
        r = past.ndim
        a = _axis(axis, r, "TensorScatter axis")
        if a == 0:
            raise ValueError("TensorScatter: axis cannot be the batch axis 0")
        if update.ndim != r or any(update.shape[i] != past.shape[i] for i in range(r) if i != a) \
                or update.shape[a] > past.shape[a]:
            raise ValueError(f"TensorScatter: update {list(update.shape)} does not fit cache {list(past.shape)} "
                             f"along axis {a}")
        B, M, S = past.shape[0], past.shape[a], update.shape[a]
        w = np.zeros(B, dtype=np.int64) if write_indices is None else np.asarray(write_indices).reshape(-1)
        if w.size != B:
            raise ValueError(f"TensorScatter: {w.size} write_indices for batch {B}")
        out = past.copy()
        om = np.moveaxis(out, a, 1)
        um = np.moveaxis(update, a, 1)
        for b in range(B):
            pos = int(w[b]) + np.arange(S)
            if mode == "circular":
                pos %= M
            elif S and (pos[0] < 0 or pos[-1] >= M):
                raise IndexError(f"TensorScatter: write index {int(w[b])} + {S} exceeds the cache length {M}")
            om[b, pos] = um[b]
        return (out,)
    return run


@register("MaxRoiPool", shape_inputs=())
def max_roi_pool(ctx: NodeCtx):
    pooled = _ints(ctx.attr("pooled_shape"))
    if len(pooled) != 2 or min(pooled) <= 0:
        raise Unsupported(f"MaxRoiPool: pooled_shape {pooled} must be two positive ints")
    ph_n, pw_n = pooled
    scale = float(ctx.attr("spatial_scale", 1.0))

    def rnd(v):                                    # C roundf: half away from zero
        return int(np.sign(v) * np.floor(abs(v) + 0.5))

    def run(x, rois):
        if x.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError("MaxRoiPool: X must be [N, C, H, W] and rois [R, 5]")
        N, C, H, W = x.shape
        out = np.zeros((rois.shape[0], C, ph_n, pw_n), dtype=x.dtype)
        for r in range(rois.shape[0]):
            b = int(rois[r, 0])
            if not 0 <= b < N:
                raise IndexError(f"MaxRoiPool: batch index {b} out of range")
            x1, y1, x2, y2 = (rnd(float(v) * scale) for v in rois[r, 1:])
            bh = max(y2 - y1 + 1, 1) / ph_n
            bw = max(x2 - x1 + 1, 1) / pw_n
            for ph in range(ph_n):
                hs = min(max(int(np.floor(ph * bh)) + y1, 0), H)
                he = min(max(int(np.ceil((ph + 1) * bh)) + y1, 0), H)
                for pw in range(pw_n):
                    ws = min(max(int(np.floor(pw * bw)) + x1, 0), W)
                    we = min(max(int(np.ceil((pw + 1) * bw)) + x1, 0), W)
                    if he > hs and we > ws:
                        out[r, :, ph, pw] = x[b, :, hs:he, ws:we].max(axis=(1, 2))
        return (out,)
    return run
