"""Sequence and optional ops (see engine.ops._registry for the conventions).

A sequence value is a Python list of arrays (never mutated: every op that changes a sequence returns a new list);
an empty optional is None.
"""
from __future__ import annotations

import numpy as np

from engine.ops._registry import NodeCtx, Unsupported, register


def _seq(s, op: str) -> list:
    if not isinstance(s, (list, tuple)):
        raise TypeError(f"{op}: expected a sequence, got {type(s).__name__}")
    return s


def _pos(p, n: int, op: str, allow_end: bool = False) -> int:
    i = int(np.asarray(p).reshape(-1)[0])
    hi = n if allow_end else n - 1
    if not -n <= i <= hi:
        raise IndexError(f"{op}: position {i} out of range for a sequence of length {n}")
    return i + n if i < 0 else i


@register("SequenceConstruct")
def sequence_construct(ctx: NodeCtx):
    def run(*xs):
        return ([x for x in xs],)
    return run


@register("SequenceEmpty")
def sequence_empty(ctx: NodeCtx):
    def run():
        return ([],)
    return run


@register("SequenceAt")
def sequence_at(ctx: NodeCtx):
    def run(s, p):
        s = _seq(s, "SequenceAt")
        return (s[_pos(p, len(s), "SequenceAt")],)
    return run


@register("SequenceInsert")
def sequence_insert(ctx: NodeCtx):
    def run(s, x, p=None):
        s = list(_seq(s, "SequenceInsert"))
        if p is None:
            s.append(x)
        else:
            s.insert(_pos(p, len(s), "SequenceInsert", allow_end=True), x)
        return (s,)
    return run


@register("SequenceErase")
def sequence_erase(ctx: NodeCtx):
    def run(s, p=None):
        s = list(_seq(s, "SequenceErase"))
        if not s:
            raise IndexError("SequenceErase: the sequence is empty")
        del s[-1 if p is None else _pos(p, len(s), "SequenceErase")]
        return (s,)
    return run


@register("SequenceLength")
def sequence_length(ctx: NodeCtx):
    def run(s):
        return (np.array(len(_seq(s, "SequenceLength")), dtype=np.int64),)
    return run


@register("ConcatFromSequence")
def concat_from_sequence(ctx: NodeCtx):
    axis = int(ctx.attr("axis"))
    new_axis = int(ctx.attr("new_axis", 0))

    def run(s):
        s = _seq(s, "ConcatFromSequence")
        if not s:
            raise ValueError("ConcatFromSequence: the sequence is empty")
        if new_axis:
            return (np.stack(s, axis=axis),)
        return (np.concatenate(s, axis=axis),)
    return run


@register("SplitToSequence")
def split_to_sequence(ctx: NodeCtx):
    axis = int(ctx.attr("axis", 0))
    keepdims = int(ctx.attr("keepdims", 1))

    def run(x, split=None):
        r = x.ndim
        if not -r <= axis < r:
            raise ValueError(f"SplitToSequence: axis {axis} out of range for rank {r}")
        a = axis + r if axis < 0 else axis
        d = x.shape[a]
        if split is None:
            parts = np.split(x, d, axis=a) if d else []
            if not keepdims:
                parts = [np.squeeze(p, axis=a) for p in parts]
            return (parts,)
        sp = np.asarray(split)
        if sp.ndim == 0:
            k = int(sp)
            if k <= 0:
                raise ValueError(f"SplitToSequence: split {k} must be positive")
            idx = list(range(k, d, k))
        else:
            sizes = [int(v) for v in sp.reshape(-1)]
            if sum(sizes) != d or any(v < 0 for v in sizes):
                raise ValueError(f"SplitToSequence: sizes {sizes} do not split dim {d}")
            idx = np.cumsum(sizes[:-1]).tolist()
        return (list(np.split(x, idx, axis=a)),)
    return run


@register("SequenceMap")
def sequence_map(ctx: NodeCtx):
    body = ctx.subgraph("body")
    n_in = ctx.n_inputs
    if len(body.input_names) != n_in:
        raise Unsupported(f"SequenceMap body takes {len(body.input_names)} inputs, the node gives {n_in}")
    n_out = ctx.n_outputs
    if len(body.output_names) != n_out:
        raise Unsupported(f"SequenceMap body gives {len(body.output_names)} outputs, the node has {n_out}")
    oi = body.outer_index

    def run(*args):
        ins = args[:n_in]
        outer = [args[n_in:][i] for i in oi]
        s0 = _seq(ins[0], "SequenceMap")
        n = len(s0)
        for j, v in enumerate(ins[1:], 1):
            if isinstance(v, (list, tuple)) and len(v) != n:
                raise ValueError(f"SequenceMap: input {j} has {len(v)} elements, input 0 has {n}")
        outs: list[list] = [[] for _ in range(n_out)]
        for i in range(n):
            vals = [v[i] if isinstance(v, (list, tuple)) else v for v in ins]
            res = body.run(vals, outer)
            for j in range(n_out):
                outs[j].append(res[j])
        return outs
    return run


@register("Optional")
def optional(ctx: NodeCtx):
    def run(x=None):
        return (x,)
    return run


@register("OptionalHasElement")
def optional_has_element(ctx: NodeCtx):
    def run(x=None):
        return (np.array(x is not None),)
    return run


@register("OptionalGetElement")
def optional_get_element(ctx: NodeCtx):
    def run(x):
        if x is None:
            raise ValueError("OptionalGetElement: the optional is empty")
        return (x,)
    return run
