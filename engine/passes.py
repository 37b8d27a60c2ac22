"""Graph passes run once when a Session is created, on engine's IR (before planning):

- `drop_identity`: removes Identity and inference-mode Dropout nodes (consumers read the input directly);
- `fold_batchnorm`: folds an inference BatchNormalization into the Conv or Gemm before it (new constant weights
  and bias), when that Conv's output feeds nothing else;
- `fuse_gelu`: the erf form of GELU as exporters write it, x * 0.5 * (1 + Erf(x / sqrt(2))) in any operand
  order, becomes one `engine::Activation` node (the C GELU kernel) instead of five elementwise passes;
- `fuse_layernorm`: LayerNormalization written out as exporters of older opsets do, mean = ReduceMean(x);
  d = x - mean; (d / Sqrt(ReduceMean(d^2) + eps)) * gamma + beta over the last axis (d^2 as Pow(d, 2) or d * d),
  becomes one `engine::LayerNorm` node (the C row kernel) instead of nine passes over the tensor;
- `fuse_matmul_add`: MatMul by a constant matrix followed by Add of a constant bias row becomes one GEMM with a
  fused bias (`engine::FusedMatMul`);
- `fuse_conv_add`: a residual connection, Add(Conv(X, W, B?), Z) in either operand order, becomes one
  `engine::FusedConv(X, W, B or "", Z)` computing conv(X, W, B) + Z, when the Conv's output feeds nothing else and
  Z is known (from shape inference) to have exactly the Conv output's shape and dtype float32 (an Add that could
  broadcast the Conv output to a bigger shape is left alone); `fuse_activation` runs after it, so
  Conv + Add + Relu becomes one node computing relu(conv + Z);
- `fuse_activation`: Relu, Clip (constant bounds), LeakyRelu, Sigmoid, HardSwish or Gelu right after a Conv or a
  (fused) MatMul is applied inside it: in the GEMM epilogue for MatMul, in place on the fresh Conv output (after
  the residual, when the FusedConv has one).

Passes run in the order of ALL_PASSES, whatever order they are asked for in.

Every pass keeps results the same up to float rounding and can be switched off: `SessionOptions(passes=...)`
(a set of names, or "all"/"none") or the environment variable ENGINE_DISABLE_PASSES (comma-separated names,
or "all"). A pass never touches a value that is a graph output or read by a subgraph.
"""
from __future__ import annotations

import os
from collections import defaultdict

import numpy as np

from engine.ir import Graph, Node

ALL_PASSES = ("drop_identity", "fold_batchnorm", "fuse_gelu", "fuse_layernorm", "fuse_matmul_add", "fuse_conv_add",
              "fuse_activation")
ENGINE_DOMAIN = "engine"


def enabled_passes(requested) -> list[str]:
    """The passes to run: `requested` ("all", "none", or an iterable of names) minus ENGINE_DISABLE_PASSES."""
    if requested is None or requested == "all":
        chosen = list(ALL_PASSES)
    elif requested == "none":
        chosen = []
    else:
        chosen = list(requested)
        unknown = [p for p in chosen if p not in ALL_PASSES]
        if unknown:
            raise ValueError(f"unknown pass(es) {unknown}; known: {list(ALL_PASSES)}")
    off = os.environ.get("ENGINE_DISABLE_PASSES", "").strip()
    if off:
        if off == "all":
            return []
        names = {p.strip() for p in off.split(",") if p.strip()}
        unknown = names - set(ALL_PASSES)
        if unknown:
            raise ValueError(f"ENGINE_DISABLE_PASSES names unknown pass(es) {sorted(unknown)}; known: "
                             f"{list(ALL_PASSES)}")
        chosen = [p for p in chosen if p not in names]
    return chosen


def run_passes(graph: Graph, names: list[str]) -> None:
    for name in ALL_PASSES:
        if name in names:
            _PASSES[name](graph)


def _arity(n: Node, k: int) -> bool:
    """n has at least k inputs, the first k present (a malformed node is left for the checker to report)."""
    return len(n.inputs) >= k and all(n.inputs[:k])


# ------------------------------------------------------------------------------------------------ helpers
class _Uses:
    """Who reads each value: node input slots; graph outputs and subgraph captures are "pinned"."""

    def __init__(self, graph: Graph):
        self.readers: dict[str, list[Node]] = defaultdict(list)
        self.pinned: set[str] = {v.name for v in graph.outputs}
        for n in graph.nodes:
            for name in n.inputs:
                if name:
                    self.readers[name].append(n)
            for a in n.attrs.values():
                for g in (a if isinstance(a, list) else [a]):
                    if isinstance(g, Graph):
                        self.pinned.update(g.outer_names())

    def only_reader(self, name: str) -> Node | None:
        if name in self.pinned:
            return None
        r = self.readers.get(name, [])
        return r[0] if len(r) == 1 else None


def _const(graph: Graph, name: str) -> np.ndarray | None:
    return graph.constants.get(name) if name else None


def _fresh(graph: Graph, base: str) -> str:
    used = set(graph.constants) | {o for n in graph.nodes for o in n.outputs} | {v.name for v in graph.inputs}
    i = 0
    while f"{base}__{i}" in used:
        i += 1
    return f"{base}__{i}"


# ------------------------------------------------------------------------------------------------- passes
def drop_identity(graph: Graph) -> None:
    uses = _Uses(graph)
    rename: dict[str, str] = {}
    keep = []
    for n in graph.nodes:
        if n.domain == "" and n.op_type in ("Identity", "Dropout") and n.inputs and n.inputs[0]:
            if n.op_type == "Dropout":
                training = len(n.inputs) > 2 and n.inputs[2] and not _false_const(graph, n.inputs[2])
                if training or any(o for o in n.outputs[1:]):  # random, or its mask is used
                    keep.append(n)
                    continue
            src, dst = n.inputs[0], n.outputs[0]
            src = rename.get(src, src)
            if dst in uses.pinned or graph.type_of(src) is not None and graph.type_of(src).kind != "tensor":
                keep.append(n)
                continue
            rename[dst] = src
            continue
        keep.append(n)
    if not rename:
        return
    for n in keep:
        n.inputs = [rename.get(x, x) for x in n.inputs]
    graph.nodes = keep


def _false_const(graph: Graph, name: str) -> bool:
    c = _const(graph, name)
    return c is not None and c.size == 1 and not bool(c.reshape(-1)[0])


def fold_batchnorm(graph: Graph) -> None:
    uses = _Uses(graph)
    producer = {o: n for n in graph.nodes for o in n.outputs if o}
    drop = set()
    replaced: set[str] = set()
    for bn in graph.nodes:
        if (bn.domain != "" or bn.op_type != "BatchNormalization" or any(o for o in bn.outputs[1:])
                or not _arity(bn, 5) or not bn.outputs):
            continue
        if bn.attrs.get("training_mode", 0):
            continue
        conv = producer.get(bn.inputs[0])
        if (conv is None or conv.domain != "" or conv.op_type != "Conv" or not _arity(conv, 2)
                or len(conv.outputs) != 1 or uses.only_reader(conv.outputs[0]) is not bn):
            continue
        w = _const(graph, conv.inputs[1])
        b = _const(graph, conv.inputs[2]) if len(conv.inputs) > 2 and conv.inputs[2] else None
        if w is None or (len(conv.inputs) > 2 and conv.inputs[2] and b is None):
            continue
        params = [_const(graph, x) for x in bn.inputs[1:5]]
        if any(p is None for p in params) or w.dtype not in (np.float32, np.float64):
            continue
        scale, bias, mean, var = (np.asarray(p, np.float64).reshape(-1) for p in params)
        m = w.shape[0]
        if not all(p.size == m for p in (scale, bias, mean, var)):
            continue
        eps = float(bn.attrs.get("epsilon", 1e-5))
        s = scale / np.sqrt(var + eps)
        new_w = (w.astype(np.float64) * s.reshape((m,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        b0 = np.zeros(m) if b is None else b.astype(np.float64)
        new_b = ((b0 - mean) * s + bias).astype(w.dtype)
        wn, bname = _fresh(graph, conv.inputs[1] + "_bnfold"), None
        graph.constants[wn] = new_w
        bname = _fresh(graph, (conv.inputs[2] if b is not None else conv.outputs[0]) + "_bnbias")
        graph.constants[bname] = new_b
        replaced.update(x for x in conv.inputs[1:] + bn.inputs[1:5] if x)
        conv.inputs = [conv.inputs[0], wn, bname]
        conv.outputs = [bn.outputs[0]]
        drop.add(id(bn))
    if drop:
        graph.nodes = [n for n in graph.nodes if id(n) not in drop]
        _drop_unread_constants(graph, replaced)


def _drop_unread_constants(graph: Graph, names: set) -> None:
    """Removes the constants among `names` that nothing reads any more (the weights a fold replaced), so the
    session does not hold the model's weights twice."""
    uses = _Uses(graph)
    inputs = {v.name for v in graph.inputs}
    for name in names:
        if name not in uses.readers and name not in uses.pinned and name not in graph.input_defaults \
                and name not in inputs:
            graph.constants.pop(name, None)


def _bias_row(graph: Graph, name: str, n_cols: int, out_rank: int) -> np.ndarray | None:
    c = _const(graph, name)
    if c is None or c.dtype != np.float32 or c.ndim > out_rank or c.size != n_cols:
        return None
    if c.ndim and c.shape[-1] != n_cols:
        return None
    return np.ascontiguousarray(c.reshape(-1))


def fuse_matmul_add(graph: Graph) -> None:
    uses = _Uses(graph)
    drop = set()
    for mm in list(graph.nodes):
        if mm.domain != "" or mm.op_type != "MatMul" or id(mm) in drop or not _arity(mm, 2):
            continue
        w = _const(graph, mm.inputs[1])
        if w is None or w.ndim != 2 or w.dtype != np.float32:
            continue
        add = uses.only_reader(mm.outputs[0])
        if add is None or add.domain != "" or add.op_type != "Add" or not _arity(add, 2) or len(add.outputs) != 1:
            continue
        other = add.inputs[1] if add.inputs[0] == mm.outputs[0] else add.inputs[0]
        if other == mm.outputs[0]:
            continue
        t = graph.type_of(mm.inputs[0])
        rank = len(t.shape) if t is not None and t.shape is not None else 2
        bias = _bias_row(graph, other, w.shape[1], max(rank, 2))
        if bias is None:
            continue
        bname = _fresh(graph, other + "_row")
        graph.constants[bname] = bias
        mm.op_type, mm.domain = "FusedMatMul", ENGINE_DOMAIN
        mm.inputs = [mm.inputs[0], mm.inputs[1], bname]
        mm.outputs = [add.outputs[0]]
        drop.add(id(add))
    if drop:
        graph.nodes = [n for n in graph.nodes if id(n) not in drop]
        graph.opsets.setdefault(ENGINE_DOMAIN, 1)


def _scalar(graph: Graph, name: str) -> float | None:
    c = _const(graph, name)
    if c is None or c.size != 1 or c.dtype.kind != "f":
        return None
    return float(c.reshape(-1)[0])


def _other(node: Node, name: str) -> str | None:
    """The other input of a two-input node one of whose inputs is `name`."""
    if len(node.inputs) != 2:
        return None
    a, b = node.inputs
    return b if a == name else a if b == name else None


def fuse_gelu(graph: Graph) -> None:
    uses = _Uses(graph)
    producer = {o: n for n in graph.nodes for o in n.outputs if o}
    drop: set[int] = set()
    replace: dict[int, Node] = {}
    for erf in graph.nodes:
        if erf.domain != "" or erf.op_type != "Erf" or not _arity(erf, 1):
            continue
        scale = producer.get(erf.inputs[0])  # x / sqrt(2) or x * (1/sqrt(2))
        if scale is None or scale.domain != "" or len(scale.inputs) != 2 or id(scale) in drop:
            continue
        if scale.op_type == "Div" and _close(_scalar(graph, scale.inputs[1]), 2 ** 0.5):
            x = scale.inputs[0]
        elif scale.op_type == "Mul":
            x = next((a for a, b in (scale.inputs, scale.inputs[::-1]) if _close(_scalar(graph, b), 2 ** -0.5)), None)
        else:
            continue
        if x is None or uses.only_reader(scale.outputs[0]) is not erf:
            continue
        add = uses.only_reader(erf.outputs[0])
        if add is None or add.op_type != "Add" or add.domain != "" or not _close(
                _scalar(graph, _other(add, erf.outputs[0]) or ""), 1.0):
            continue
        mul1 = uses.only_reader(add.outputs[0])
        if mul1 is None or mul1.op_type != "Mul" or mul1.domain != "":
            continue
        other = _other(mul1, add.outputs[0])
        chain = [scale, erf, add, mul1]
        if other == x:  # (x * (1 + erf)) * 0.5
            last = uses.only_reader(mul1.outputs[0])
            if last is None or last.op_type != "Mul" or last.domain != "" or not _close(
                    _scalar(graph, _other(last, mul1.outputs[0]) or ""), 0.5):
                continue
            chain.append(last)
        else:  # (x * 0.5) * (1 + erf)
            half = producer.get(other or "")
            if half is None or half.op_type != "Mul" or half.domain != "" or uses.only_reader(half.outputs[0]) is not mul1:
                continue
            hx = _other(half, x)
            if hx is None or not _close(_scalar(graph, hx), 0.5):
                continue
            chain.append(half)
            last = mul1
        if any(id(n) in drop for n in chain):
            continue
        drop.update(id(n) for n in chain)
        replace[id(last)] = Node("Activation", [x], [last.outputs[0]], {"activation": "gelu", "act_p0": 0.0,
                                                                         "act_p1": 0.0}, erf.name, ENGINE_DOMAIN)
    if drop:
        graph.nodes = [replace.get(id(n), n) for n in graph.nodes if id(n) not in drop or id(n) in replace]
        graph.opsets.setdefault(ENGINE_DOMAIN, 1)


def _last_axis_mean(graph: Graph, n: Node) -> str | None:
    """The input of `n` if it is a ReduceMean over the last axis only, keeping dims (axes as an attribute before
    opset 18, as a constant input from 18); else None."""
    if n.domain != "" or n.op_type != "ReduceMean" or not _arity(n, 1) or len(n.outputs) != 1:
        return None
    if int(n.attrs.get("keepdims", 1)) != 1 or int(n.attrs.get("noop_with_empty_axes", 0)) != 0:
        return None
    axes = n.attrs.get("axes")
    if axes is None and len(n.inputs) > 1 and n.inputs[1]:
        c = _const(graph, n.inputs[1])
        axes = None if c is None else [int(v) for v in c.reshape(-1)]
    if axes is None or len(axes) != 1:
        return None
    t = graph.type_of(n.inputs[0])
    rank = len(t.shape) if t is not None and t.shape is not None else None
    if axes[0] != -1 and (rank is None or axes[0] != rank - 1):
        return None
    return n.inputs[0]


def fuse_layernorm(graph: Graph) -> None:
    uses = _Uses(graph)
    drop: set[int] = set()
    replace: dict[int, Node] = {}

    def only(name, op):
        r = uses.only_reader(name)
        return r if r is not None and r.domain == "" and r.op_type == op and id(r) not in drop else None

    for mean in graph.nodes:
        x = _last_axis_mean(graph, mean)
        if x is None or id(mean) in drop:
            continue
        sub = only(mean.outputs[0], "Sub")
        if sub is None or sub.inputs != [x, mean.outputs[0]]:
            continue
        d = sub.outputs[0]
        readers = uses.readers.get(d, [])
        if d in uses.pinned or len(readers) not in (2, 3):
            continue
        sq = next((r for r in readers if r.domain == "" and (
            (r.op_type == "Pow" and len(r.inputs) == 2 and r.inputs[0] == d and _scalar(graph, r.inputs[1]) == 2.0)
            or (r.op_type == "Mul" and r.inputs == [d, d]))), None)
        div = next((r for r in readers if r.domain == "" and r.op_type == "Div" and r.inputs[0] == d), None)
        if sq is None or div is None or len(readers) != (3 if sq.op_type == "Mul" else 2):
            continue  # (Mul(d, d) lists d twice among the readers)
        var = uses.only_reader(sq.outputs[0])
        if var is None or _last_axis_mean(graph, var) != sq.outputs[0] or id(var) in drop:
            continue
        add_eps = only(var.outputs[0], "Add")
        eps = _scalar(graph, _other(add_eps, var.outputs[0]) or "") if add_eps is not None else None
        if eps is None or eps < 0:
            continue
        sqrt = only(add_eps.outputs[0], "Sqrt")
        if sqrt is None or uses.only_reader(sqrt.outputs[0]) is not div or div.inputs != [d, sqrt.outputs[0]]:
            continue
        mul = only(div.outputs[0], "Mul")
        gamma = _other(mul, div.outputs[0]) if mul is not None else None
        add = only(mul.outputs[0], "Add") if mul is not None else None
        beta = _other(add, mul.outputs[0]) if add is not None else None
        g, b = _const(graph, gamma or ""), _const(graph, beta or "")
        if g is None or b is None or g.ndim != 1 or b.shape != g.shape or g.dtype.kind != "f" or b.dtype != g.dtype:
            continue  # the affine part: constant vectors along the normalised axis
        chain = [mean, sub, sq, var, add_eps, sqrt, div, mul, add]
        drop.update(id(n) for n in chain)
        replace[id(add)] = Node("LayerNorm", [x, gamma, beta], [add.outputs[0]], {"axis": -1, "epsilon": eps},
                                mean.name, ENGINE_DOMAIN)
    if drop:
        graph.nodes = [replace.get(id(n), n) for n in graph.nodes if id(n) not in drop or id(n) in replace]
        graph.opsets.setdefault(ENGINE_DOMAIN, 1)


def _close(v: float | None, want: float) -> bool:
    return v is not None and abs(v - want) <= 1e-4 * abs(want)


def activation_of(graph: Graph, node: Node):
    """(kind, p0, p1) for an activation node engine can fuse, else None. Kinds are engine.linalg's names."""
    if node.domain == ENGINE_DOMAIN and node.op_type == "Activation":
        return (node.attrs["activation"], node.attrs.get("act_p0", 0.0), node.attrs.get("act_p1", 0.0))
    if node.domain != "":
        return None
    op = node.op_type
    if op == "Relu":
        return ("relu", 0.0, 0.0)
    if op == "Sigmoid":
        return ("sigmoid", 0.0, 0.0)
    if op == "HardSwish":
        return ("hardswish", 0.0, 0.0)
    if op == "LeakyRelu":
        return ("leaky_relu", float(node.attrs.get("alpha", 0.01)), 0.0)
    if op == "Gelu":
        approx = node.attrs.get("approximate", b"none")
        approx = approx.decode() if isinstance(approx, bytes) else approx
        return ("gelu_tanh" if approx == "tanh" else "gelu", 0.0, 0.0)
    if op == "Clip":
        if "min" in node.attrs or "max" in node.attrs:  # opset < 11
            return ("clip", float(node.attrs.get("min", -3.4028234663852886e38)),
                    float(node.attrs.get("max", 3.4028234663852886e38)))
        lo = _const(graph, node.inputs[1]) if len(node.inputs) > 1 and node.inputs[1] else None
        hi = _const(graph, node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        if (len(node.inputs) > 1 and node.inputs[1] and lo is None) or (len(node.inputs) > 2 and node.inputs[2]
                                                                          and hi is None):
            return None
        return ("clip", float(lo) if lo is not None else -3.4028234663852886e38,
                float(hi) if hi is not None else 3.4028234663852886e38)
    return None


def _same_shape(a, b) -> bool:
    """Two inferred types are float32 tensors of one fully stated shape: every dim a known int or a symbol, equal
    position by position (equal symbols are equal sizes in ONNX shape inference). Unknown dims or ranks: False."""
    if a is None or b is None or a.kind != "tensor" or b.kind != "tensor" or a.shape is None or b.shape is None:
        return False
    if a.dtype is None or b.dtype is None or np.dtype(a.dtype) != np.float32 or np.dtype(b.dtype) != np.float32:
        return False
    return len(a.shape) == len(b.shape) and all(x is not None and x == y for x, y in zip(a.shape, b.shape))


def fuse_conv_add(graph: Graph) -> None:
    uses = _Uses(graph)
    producer = {o: n for n in graph.nodes for o in n.outputs if o}
    drop: set[int] = set()
    for add in graph.nodes:
        if (add.domain != "" or add.op_type != "Add" or len(add.inputs) != 2 or not _arity(add, 2)
                or len(add.outputs) != 1 or not add.outputs[0] or "broadcast" in add.attrs):
            continue
        for side in (0, 1):
            c_name, z = add.inputs[side], add.inputs[1 - side]
            conv = producer.get(c_name)
            if (conv is None or conv.domain != "" or conv.op_type != "Conv" or id(conv) in drop
                    or not _arity(conv, 2) or len(conv.inputs) > 3 or len(conv.outputs) != 1 or z == c_name
                    or uses.only_reader(c_name) is not add):
                continue
            # Z must match the conv output exactly: then Y has the conv output's shape and the residual is a
            # plain elementwise add (no broadcasting, which a C epilogue could not do)
            if not _same_shape(graph.type_of(c_name), graph.type_of(z)):
                continue
            b = conv.inputs[2] if len(conv.inputs) > 2 else ""
            conv.op_type, conv.domain = "FusedConv", ENGINE_DOMAIN
            conv.inputs = [conv.inputs[0], conv.inputs[1], b, z]
            conv.outputs = [add.outputs[0]]
            drop.add(id(add))
            break
    if drop:
        graph.nodes = [n for n in graph.nodes if id(n) not in drop]
        graph.opsets.setdefault(ENGINE_DOMAIN, 1)


def fuse_activation(graph: Graph) -> None:
    uses = _Uses(graph)
    drop = set()
    for n in list(graph.nodes):
        if id(n) in drop or not n.outputs or not n.outputs[0]:
            continue
        base = (n.domain, n.op_type)
        if not _arity(n, 2):
            continue
        if base == ("", "MatMul"):
            w = _const(graph, n.inputs[1])
            if w is None or w.ndim != 2 or w.dtype != np.float32:
                continue
        elif base not in (("", "Conv"), (ENGINE_DOMAIN, "FusedMatMul"), (ENGINE_DOMAIN, "FusedConv")):
            continue
        if "activation" in n.attrs or len(n.outputs) != 1:
            continue
        act_node = uses.only_reader(n.outputs[0])
        if act_node is None or not act_node.inputs or act_node.inputs[0] != n.outputs[0] or len(act_node.outputs) != 1:
            continue
        act = activation_of(graph, act_node)
        if act is None:
            continue
        t = graph.type_of(n.outputs[0])
        if t is not None and t.dtype is not None and t.dtype != np.float32:
            continue
        if base == ("", "MatMul"):
            n.op_type, n.domain = "FusedMatMul", ENGINE_DOMAIN
        elif base == ("", "Conv"):
            n.op_type, n.domain = "FusedConv", ENGINE_DOMAIN
        n.attrs = dict(n.attrs, activation=act[0], act_p0=act[1], act_p1=act[2])
        n.outputs = [act_node.outputs[0]]
        drop.add(id(act_node))
    if drop:
        graph.nodes = [n for n in graph.nodes if id(n) not in drop]
        graph.opsets.setdefault(ENGINE_DOMAIN, 1)


_PASSES = {"drop_identity": drop_identity, "fold_batchnorm": fold_batchnorm, "fuse_gelu": fuse_gelu,
           "fuse_layernorm": fuse_layernorm,
           "fuse_matmul_add": fuse_matmul_add, "fuse_conv_add": fuse_conv_add,
           "fuse_activation": fuse_activation}
