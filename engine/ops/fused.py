"""engine's own fused ops (domain "engine"), created by `engine.passes`, never by exporters:

- `FusedMatMul(A, W, bias?)`: A @ W (+ bias row) (-> activation), W a constant matrix, bias a constant row: one
  GEMM call with the bias and activation in its epilogue, over all leading dimensions of A at once;
- `FusedConv(X, W, B?, Z?)`: act(Conv(X, W, B) + Z): a Conv, then the residual Z (optional input 3, made by the
  `fuse_conv_add` pass; B is then "" when the Conv had no bias) added and the activation applied, both in place on
  the fresh Conv output;
- `Activation(X)`: an activation with no op of its own in ONNX's older opsets (GELU written out with Erf);
- `LayerNorm(X, gamma, beta)`: ONNX LayerNormalization (attributes axis, epsilon) for graphs whose opset predates it,
  made by `fuse_layernorm` from the written-out form.
Attributes: `activation` (engine.linalg's names: relu, clip, leaky_relu, sigmoid, hardswish, gelu, gelu_tanh),
`act_p0`, `act_p1` (its parameters); FusedConv also carries every Conv attribute.
"""
from __future__ import annotations

import numpy as np

from engine.ir import Node
from engine.linalg import _activation, gemm
from engine.ops._registry import NodeCtx, Unsupported, lookup, register

_NUMPY_ACT = {
    "relu": lambda y, p0, p1: np.maximum(y, 0, out=y),
    "clip": lambda y, p0, p1: np.clip(y, p0, p1, out=y),
    "leaky_relu": lambda y, p0, p1: np.multiply(y, np.where(y < 0, np.float32(p0), np.float32(1)), out=y),
    "sigmoid": lambda y, p0, p1: np.divide(1, 1 + np.exp(-y), out=y),
    # slow fallbacks, for a build without the C activation kernels only
    "gelu": lambda y, p0, p1: np.multiply(y, 0.5 * (1 + _erf(y / np.sqrt(2))), out=y),
    "gelu_tanh": lambda y, p0, p1: np.multiply(
        y, 0.5 * (1 + np.tanh(np.sqrt(2 / np.pi) * (y + 0.044715 * y ** 3))), out=y),
    "hardswish": lambda y, p0, p1: np.multiply(y, np.clip(y / 6 + 0.5, 0, 1), out=y),
}


def _erf(x: np.ndarray) -> np.ndarray:
    import math

    return np.vectorize(math.erf, otypes=[np.float64])(x).astype(x.dtype)


def _act_params(ctx: NodeCtx):
    name = ctx.attr_str("activation", None)
    if name is None:
        return None
    p0, p1 = ctx.attr("act_p0", 0.0), ctx.attr("act_p1", 0.0)
    params = {"relu": (), "sigmoid": (), "hardswish": (), "gelu": (), "gelu_tanh": (), "leaky_relu": (p0,),
              "clip": (p0, p1)}
    if name not in params:
        raise Unsupported(f"unknown fused activation {name!r}")
    return (name,) + params[name]


def apply_activation(y: np.ndarray, act) -> np.ndarray:
    """act(y), in place when y owns its (writable, float32) data."""
    if act is None:
        return y
    kind, p0, p1 = _activation(act)
    try:
        from engine._C._kernels import act_f32  # C kernel (every act kind), when this build has it
    except ImportError:
        act_f32 = None
    own = y.dtype == np.float32 and y.flags.c_contiguous and y.flags.writeable and y.base is None
    if not own:
        y = np.array(y, dtype=np.float32, order="C")
    if act_f32 is not None:
        act_f32(y, y, kind, p0, p1)
        return y
    f = _NUMPY_ACT.get(act[0])
    if f is None:
        raise RuntimeError(f"activation {act[0]!r} needs the C kernels")
    f(y, p0, p1)
    return y


@register("FusedMatMul", domain="engine", shape_inputs=())
def fused_matmul(ctx: NodeCtx):
    w = ctx.const(1)
    if w is None or w.ndim != 2 or w.dtype != np.float32:
        raise Unsupported("FusedMatMul needs a constant float32 matrix as its second input")
    w = np.ascontiguousarray(w)
    bias = ctx.const(2)
    if ctx.has_input(2) and bias is None:
        raise Unsupported("FusedMatMul needs a constant bias")
    if bias is not None:
        bias = np.ascontiguousarray(bias.reshape(-1), dtype=np.float32)
    act = _act_params(ctx)
    k, n = w.shape

    def run(a, _w=None, _b=None):
        if a.dtype != np.float32:
            raise TypeError(f"FusedMatMul: A has dtype {a.dtype}, expected float32")
        if a.ndim == 0 or a.shape[-1] != k:
            raise ValueError(f"FusedMatMul: A has shape {list(a.shape)}, its last dimension must be {k}")
        lead = a.shape[:-1]
        a2 = a.reshape(-1, k) if a.ndim != 2 else a
        y = gemm(a2, w, bias=bias, activation=act)
        return (y.reshape(lead + (n,)),)
    return run


@register("FusedConv", domain="engine", shape_inputs=())
def fused_conv(ctx: NodeCtx):
    act = _act_params(ctx)
    conv_attrs = {k: v for k, v in ctx.node.attrs.items() if k not in ("activation", "act_p0", "act_p1")}
    if ctx.n_inputs > 4:
        raise Unsupported(f"FusedConv takes at most 4 inputs (X, W, B, Z), got {ctx.n_inputs}")
    residual = ctx.has_input(3)
    node = Node("Conv", ctx.node.inputs[:3], ctx.node.outputs, conv_attrs, ctx.node.name, "")
    inner = NodeCtx(node, ctx.graph, ctx.graph.opsets.get("", ctx.opset), None, ctx._constants)
    from engine.ops._registry import schema_version

    inner.version = schema_version("Conv", inner.opset) or inner.opset
    base = lookup("", "Conv")
    if base is None:
        raise Unsupported("FusedConv needs the Conv op")
    conv = base.build(inner)

    def run(x, w, b=None, z=None):
        (y,) = conv(x, w, b)
        if residual:
            y = _add_residual(y, z)
        return (apply_activation(y, act),)
    return run


def _add_residual(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """y + z with ONNX Add semantics, in place on y when y is the conv's own fresh array of z's shape."""
    if z.dtype != y.dtype:
        raise TypeError(f"FusedConv: the residual input has dtype {z.dtype}, the convolution output {y.dtype}")
    if z.shape == y.shape and y.flags.writeable and y.base is None:
        return np.add(y, z, out=y)
    return np.add(y, z)  # a view, or shapes the load-time check did not foresee: broadcast like Add


@register("Activation", domain="engine", shape_inputs=())
def activation(ctx: NodeCtx):
    act = _act_params(ctx)

    def run(x):
        if x.dtype != np.float32:
            raise TypeError(f"engine::Activation: input has dtype {x.dtype}, expected float32")
        return (apply_activation(np.array(x, dtype=np.float32, order="C"), act),)
    return run


@register("LayerNorm", domain="engine", shape_inputs=())
def layer_norm(ctx: NodeCtx):
    from engine.ops.nn import layernorm_op

    return layernorm_op(ctx)
