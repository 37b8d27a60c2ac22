"""Tensor (data movement, indexing, generation) ops (see engine.ops._registry for the conventions).

Hot ops of exported transformers (Reshape, Transpose, Concat, Gather, Slice, Unsqueeze) precompute what their
constant inputs allow in the builder; their run() is one or two numpy calls. Reshape/Squeeze/Unsqueeze/Flatten
return views.
"""
from __future__ import annotations

import numpy as np

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
        simple = (0 not in shape or allowzero) and shape.count(-1) <= 1
        tshape = tuple(shape)

        def run_c(x, s):
            if simple:
                try:
                    return (x.reshape(tshape),)
                except ValueError:
                    pass
            return (x.reshape(_reshape_target(x.shape, shape, allowzero)),)
        return run_c

    def run(x, s):
        return (x.reshape(_reshape_target(x.shape, _ints(s), allowzero)),)
    return run


@register("Transpose", shape_inputs=())
def transpose(ctx: NodeCtx):
    perm = ctx.attr("perm", None)
    perm = None if perm is None else tuple(int(p) for p in perm)

    def run(x):
        if perm is not None and len(perm) != x.ndim:
            raise ValueError(f"Transpose: perm {list(perm)} does not match rank {x.ndim}")
        return (np.transpose(x, perm),)
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

        def run_c(x, *rest):
            idx = cache.get(x.ndim)
            if idx is None:
                idx = cache[x.ndim] = _slice_index(x.ndim, starts, ends, axes, steps)
            return (x[idx],)
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

    def run(x, a=None):
        ax = _ints(a) if dyn else axes
        if ax is None:
            return (np.squeeze(x),)
        ax = tuple(_axis(i, x.ndim) for i in ax)
        for i in ax:
            if x.shape[i] != 1:
                raise ValueError(f"Squeeze: dim {i} of shape {list(x.shape)} is not 1")
        return (np.squeeze(x, axis=ax),)
    return run


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
    return run


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
    return run


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

def _pad(x, pads, mode, value, axes):
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
    if mode == "constant":
        return np.pad(x, width, mode="constant", constant_values=value)
    if mode in ("reflect", "edge", "wrap"):
        for a, (b, e) in enumerate(width):
            if (b or e) and x.shape[a] == 0:
                raise ValueError(f"Pad: mode {mode} cannot pad an empty axis {a}")
        return np.pad(x, width, mode=mode)
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

        def run1(x):
            return (_pad(x, pads, mode, x.dtype.type(value), None),)
        return run1
    pads_c = _ints(ctx.const(1))
    axes_c = _ints(ctx.const(3))

    def run(x, pads, cval=None, axes=None):
        p = pads_c if pads_c is not None else _ints(pads)
        a = axes_c if axes_c is not None else _ints(axes)
        v = x.dtype.type(0) if cval is None or np.size(cval) == 0 else np.asarray(cval).reshape(-1)[0]
        return (_pad(x, p, mode, v, a),)
    return run


# ------------------------------------------------------------------------------------------------ gather/scatter

@register("Gather", shape_inputs=())
def gather(ctx: NodeCtx):
    axis = int(ctx.attr("axis", 0))
    ic = ctx.const(1)
    if ic is not None and ic.ndim == 0:
        i0 = int(ic)

        def run_s(x, idx):
            a = axis + x.ndim if axis < 0 else axis
            d = x.shape[a]
            if not -d <= i0 < d:
                raise IndexError(f"Gather: index {i0} out of range for dim {d}")
            return (x[(slice(None),) * a + (i0,)],)
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
    sorted_ = int(ctx.attr("sorted", 1)) if ctx.version >= 11 else 1  # unsorted output: sorted is a valid order
    del sorted_
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
        out = np.einsum(eq, *xs, optimize=len(xs) > 2)
        return (np.asarray(out, dtype=xs[0].dtype),)
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
