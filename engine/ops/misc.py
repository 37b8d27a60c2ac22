"""Ops outside the main families: losses (NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss), CumProd,
BitCast, and the small ai.onnx.ml ops. Ops the ONNX spec defines as functions (Shrink, SwiGLU,
CausalConvWithState, LinearAttention...) are expanded by the loader instead."""
from __future__ import annotations

import numpy as np

from engine.loader import np_dtype
from engine.ops._registry import NodeCtx, Unsupported, register


def _nll(logp: np.ndarray, target: np.ndarray, weight, ignore_index, reduction: str) -> np.ndarray:
    """logp (N, C, d...) log-probabilities, target (N, d...) -> loss per the ONNX NLL definition."""
    n_cls = logp.shape[1]
    t = target.astype(np.int64)
    ignored = (t == ignore_index) if ignore_index is not None else np.zeros(t.shape, bool)
    safe = np.where(ignored, 0, t)
    if safe.size and (safe.min() < 0 or safe.max() >= n_cls):
        raise ValueError(f"target holds a class index outside [0, {n_cls})")
    picked = np.take_along_axis(logp, np.expand_dims(safe, 1), axis=1)[:, 0]
    w = np.ones(t.shape, logp.dtype) if weight is None else weight[safe].astype(logp.dtype)
    w = np.where(ignored, 0, w).astype(logp.dtype)
    loss = (-picked * w).astype(logp.dtype)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return np.array(loss.sum(dtype=logp.dtype), dtype=logp.dtype)
    if reduction == "mean":
        den = w.sum(dtype=logp.dtype)
        return np.array(loss.sum(dtype=logp.dtype) / den, dtype=logp.dtype)
    raise ValueError(f"unknown reduction {reduction!r}")


@register("NegativeLogLikelihoodLoss", shape_inputs=())
def nll_loss(ctx: NodeCtx):
    reduction = ctx.attr_str("reduction", "mean")
    if reduction not in ("none", "sum", "mean"):
        raise Unsupported(f"reduction {reduction!r} is not none, sum or mean")
    ignore = ctx.attr("ignore_index", None)

    def run(x, target, weight=None):
        return (_nll(x, target, weight, ignore, reduction),)
    return run


@register("SoftmaxCrossEntropyLoss", shape_inputs=())
def sce_loss(ctx: NodeCtx):
    reduction = ctx.attr_str("reduction", "mean")
    if reduction not in ("none", "sum", "mean"):
        raise Unsupported(f"reduction {reduction!r} is not none, sum or mean")
    ignore = ctx.attr("ignore_index", None)
    want_logp = ctx.has_output(1)

    def run(scores, labels, weights=None):
        m = scores.max(axis=1, keepdims=True)
        z = scores - m
        logp = (z - np.log(np.exp(z).sum(axis=1, keepdims=True))).astype(scores.dtype)
        loss = _nll(logp, labels, weights, ignore, reduction)
        return (loss, logp) if want_logp else (loss,)
    return run


@register("CumProd", shape_inputs=())
def cumprod(ctx: NodeCtx):
    exclusive = ctx.attr("exclusive", 0)
    reverse = ctx.attr("reverse", 0)

    def run(x, axis):
        ax = int(np.asarray(axis).reshape(-1)[0])
        if not -x.ndim <= ax < max(x.ndim, 1):
            raise ValueError(f"axis {ax} out of range for rank {x.ndim}")
        ax %= max(x.ndim, 1)
        y = np.flip(x, ax) if reverse else x
        if exclusive:
            one = np.ones_like(np.take(y, [0], axis=ax))
            y = np.concatenate([one, np.take(y, np.arange(y.shape[ax] - 1), axis=ax)], axis=ax)
        y = np.cumprod(y, axis=ax, dtype=x.dtype)
        return (np.flip(y, ax) if reverse else y,)
    return run


@register("BitCast", shape_inputs=())
def bitcast(ctx: NodeCtx):
    to = np_dtype(ctx.attr("to"))
    if to == np.dtype(object):
        raise Unsupported("BitCast to string")

    def run(x):
        if x.dtype.itemsize != to.itemsize or x.dtype == object:
            raise ValueError(f"BitCast from {x.dtype} ({x.dtype.itemsize * 8} bits) to {to} "
                             f"({to.itemsize * 8} bits): the widths differ")
        return ((x if x.flags.c_contiguous else x.copy()).view(to),)  # (ascontiguousarray makes 0-d 1-d)
    return run


# ------------------------------------------------------------------------------------------ ai.onnx.ml
@register("Binarizer", domain="ai.onnx.ml", shape_inputs=())
def binarizer(ctx: NodeCtx):
    thr = ctx.attr("threshold", 0.0)

    def run(x):
        return ((x > x.dtype.type(thr)).astype(x.dtype),)
    return run


@register("ArrayFeatureExtractor", domain="ai.onnx.ml")
def array_feature_extractor(ctx: NodeCtx):
    def run(x, idx):
        i = np.asarray(idx, np.int64).reshape(-1)
        if i.size and (i.min() < -x.shape[-1] or i.max() >= x.shape[-1]):
            raise ValueError("index out of range")
        y = np.take(x, i, axis=-1)
        if x.ndim == 1:
            y = y.reshape(1, -1)
        return (y,)
    return run


@register("LabelEncoder", domain="ai.onnx.ml", shape_inputs=())
def label_encoder(ctx: NodeCtx):
    def pick(prefix):
        for suffix, conv in (("strings", lambda v: [s.decode() if isinstance(s, bytes) else s for s in v]),
                             ("int64s", list), ("floats", list)):
            if ctx.has_attr(f"{prefix}_{suffix}"):
                return conv(ctx.attr(f"{prefix}_{suffix}")), suffix
        if ctx.has_attr(f"{prefix}_tensor"):
            t = ctx.attr(f"{prefix}_tensor")
            return list(t.reshape(-1).tolist()), ("strings" if t.dtype == object else
                                                  "int64s" if t.dtype.kind == "i" else "floats")
        raise Unsupported(f"LabelEncoder needs {prefix}_strings, {prefix}_int64s, {prefix}_floats or {prefix}_tensor")
    keys, _ = pick("keys")
    values, vkind = pick("values")
    if len(keys) != len(values):
        raise Unsupported(f"LabelEncoder has {len(keys)} keys but {len(values)} values")
    out_dtype = {"strings": np.dtype(object), "int64s": np.dtype(np.int64), "floats": np.dtype(np.float32)}[vkind]
    if ctx.has_attr("values_tensor"):
        out_dtype = ctx.attr("values_tensor").dtype
    if ctx.has_attr("default_tensor"):
        default = ctx.attr("default_tensor").reshape(-1)[0]
    else:
        default = {"strings": ctx.attr_str("default_string", "_Unused"), "int64s": ctx.attr("default_int64", -1),
                   "floats": ctx.attr("default_float", -0.0)}[vkind]
    table = {}
    for k, v in zip(keys, values):
        table[k.decode() if isinstance(k, bytes) else k] = v

    def run(x):
        flat = [table.get(k.decode() if isinstance(k, bytes) else (k.item() if hasattr(k, "item") else k), default)
                for k in x.reshape(-1)]
        return (np.array(flat, dtype=out_dtype).reshape(x.shape),)
    return run
