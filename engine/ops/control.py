"""Graph-structure ops: Constant, Identity, and control flow (If, Loop, Scan).

Subgraphs are compiled once, when the Session is built, into plans of their own; values they read from the
enclosing graph are passed in as extra arguments (see `NodeCtx.subgraph`).
"""
from __future__ import annotations

import numpy as np

from engine.ops._registry import NodeCtx, Unsupported, register


@register("Constant", shape_inputs=())
def constant(ctx: NodeCtx):
    attrs = ctx.node.attrs
    if len(attrs) != 1:
        raise Unsupported(f"Constant needs exactly one value attribute, got {sorted(attrs)}")
    (key, v), = attrs.items()
    if key in ("value", "sparse_value"):
        value = np.asarray(v)
    elif key == "value_float":
        value = np.array(v, dtype=np.float32)
    elif key == "value_floats":
        value = np.array(v, dtype=np.float32).reshape(-1)
    elif key == "value_int":
        value = np.array(v, dtype=np.int64)
    elif key == "value_ints":
        value = np.array(v, dtype=np.int64).reshape(-1)
    elif key == "value_string":
        value = np.array(v.decode() if isinstance(v, bytes) else v, dtype=object)
    elif key == "value_strings":
        value = np.array([s.decode() if isinstance(s, bytes) else s for s in v], dtype=object)
    else:
        raise Unsupported(f"unknown Constant attribute {key!r}")
    value.flags.writeable = False

    def run():
        return (value,)
    return run


@register("Identity", shape_inputs=())
def identity(ctx: NodeCtx):
    def run(x):
        return (x,)
    return run


def _outer(args, n_in: int):
    return args[n_in:]


@register("If")
def if_(ctx: NodeCtx):
    then_g = ctx.subgraph("then_branch")
    else_g = ctx.subgraph("else_branch")
    n_out = ctx.n_outputs
    if len(then_g.output_names) != n_out or len(else_g.output_names) != n_out:
        raise Unsupported(f"branches give {len(then_g.output_names)} and {len(else_g.output_names)} outputs, the "
                          f"node has {n_out}")
    ti, ei = then_g.outer_index, else_g.outer_index

    def run(cond, *outer):
        c = np.asarray(cond)
        if c.size != 1:
            raise ValueError(f"If condition must hold one value, got shape {list(c.shape)}")
        if bool(c.reshape(-1)[0]):
            return then_g.run([], [outer[i] for i in ti])
        return else_g.run([], [outer[i] for i in ei])
    return run


def _stack(items: list, like_shape=None, dtype=None) -> np.ndarray:
    if items:
        return np.stack([np.asarray(x) for x in items])
    return np.zeros((0,) + tuple(like_shape or ()), dtype=dtype or np.float32)


@register("Loop")
def loop(ctx: NodeCtx):
    body = ctx.subgraph("body")
    n_carried = ctx.n_inputs - 2
    if n_carried < 0:
        raise Unsupported("Loop needs at least the inputs M and cond (either may be empty)")
    n_body_out = len(body.output_names)
    n_scan = n_body_out - 1 - n_carried
    if len(body.input_names) != 2 + n_carried or n_scan < 0:
        raise Unsupported(f"body takes {len(body.input_names)} inputs and gives {n_body_out} outputs; with "
                          f"{n_carried} loop-carried values it must take {2 + n_carried} and give at least "
                          f"{1 + n_carried}")
    oi = body.outer_index
    scan_types = [body.graph.type_of(n) for n in body.output_names[1 + n_carried:]]

    def run(m, cond, *rest):
        carried = list(rest[:n_carried])
        outer = [rest[n_carried:][i] for i in oi]
        trip = None if m is None else int(np.asarray(m).reshape(-1)[0])
        keep = True if cond is None else bool(np.asarray(cond).reshape(-1)[0])
        if trip is None and cond is None:
            raise ValueError("Loop has neither a trip count M nor a condition: it would never end")
        scans: list[list] = [[] for _ in range(n_scan)]
        i = 0
        while keep and (trip is None or i < trip):
            out = body.run([np.array(i, dtype=np.int64), np.array(keep)] + carried, outer)
            keep = bool(np.asarray(out[0]).reshape(-1)[0])
            carried = list(out[1:1 + n_carried])
            for j in range(n_scan):
                scans[j].append(out[1 + n_carried + j])
            i += 1
        res = carried
        for j in range(n_scan):
            t = scan_types[j]
            shape = [d if isinstance(d, int) else 0 for d in t.shape] if t is not None and t.shape else []
            res.append(_stack(scans[j], shape, t.dtype if t is not None else None))
        return res
    return run


@register("Scan")
def scan(ctx: NodeCtx):
    if ctx.version < 9:
        raise Unsupported("Scan-8 (with sequence_lens and a batch axis) is not supported; re-export at opset >= 9")
    body = ctx.subgraph("body")
    n_scan_in = ctx.attr("num_scan_inputs")
    n_in = ctx.n_inputs
    n_state = n_in - n_scan_in
    n_scan_out = len(body.output_names) - n_state
    if n_state < 0 or n_scan_out < 0 or len(body.input_names) != n_in:
        raise Unsupported("Scan body inputs/outputs do not match the node's states and scan inputs")
    in_axes = ctx.attr("scan_input_axes", [0] * n_scan_in)
    in_dirs = ctx.attr("scan_input_directions", [0] * n_scan_in)
    out_axes = ctx.attr("scan_output_axes", [0] * n_scan_out)
    out_dirs = ctx.attr("scan_output_directions", [0] * n_scan_out)
    oi = body.outer_index

    def run(*args):
        states = list(args[:n_state])
        xs = []
        for j in range(n_scan_in):
            x = np.asarray(args[n_state + j])
            ax = in_axes[j] + x.ndim if in_axes[j] < 0 else in_axes[j]
            x = np.moveaxis(x, ax, 0)
            xs.append(x[::-1] if in_dirs[j] else x)
        outer = [args[n_in:][i] for i in oi]
        steps = xs[0].shape[0] if xs else 0
        for x in xs:
            if x.shape[0] != steps:
                raise ValueError(f"Scan inputs differ in length along the scan axis ({x.shape[0]} vs {steps})")
        ys: list[list] = [[] for _ in range(n_scan_out)]
        for t in range(steps):
            out = body.run(states + [x[t] for x in xs], outer)
            states = list(out[:n_state])
            for j in range(n_scan_out):
                ys[j].append(out[n_state + j])
        res = states
        for j in range(n_scan_out):
            y = _stack(ys[j])
            if out_dirs[j]:
                y = y[::-1]
            ax = out_axes[j] + y.ndim if out_axes[j] < 0 else out_axes[j]
            res.append(np.ascontiguousarray(np.moveaxis(y, 0, ax)))
        return res
    return run
