"""C kernels behind the hot ops. The family modules (elementwise, reduce, nn, fused) define each op's full
semantics in numpy; this module wraps their builders (`_registry.accelerate`) so that float32 tensors of the
common layouts run on engine's C kernels (`engine.kernels`, `engine._C._kernels.gemm`) instead, and everything
else (other dtypes, 1-D/3-D convolutions, grouped convolutions, MaxPool's Indices output...) falls through to
the numpy implementation unchanged.

- Conv / engine::FusedConv (1-D and 2-D, float32, constant W): depthwise convolutions on the direct C kernel with
  bias and activation fused; 3x3 stride-1 layers with enough channels on Winograd F(4x4, 3x3); every other one
  (any group count) on the implicit-GEMM kernel (`kernels.conv2d`: no im2col, weights packed at build) with the
  bias, FusedConv's residual input and the activation in its epilogue. A 1-D convolution is a 2-D one of height 1.
- MaxPool / AveragePool (2-D) and GlobalAveragePool / GlobalMaxPool on the C pooling kernels.
- Softmax / LogSoftmax and LayerNormalization on their row kernels.
- Activations (Relu, Sigmoid, Tanh, LeakyRelu, Elu, HardSigmoid, HardSwish, Softplus, Gelu, Clip) and the binary
  ops Add/Sub/Mul/Div/Max/Min on the threaded elementwise kernels, for tensors big enough that the kernel's
  threads beat numpy's single pass (below that numpy is as fast and has less call overhead).
- Tiny float32 Add/Sub/Mul/Div, Relu, Neg, Sigmoid and Tanh (small models: hundreds of nodes on tensors of a few dozen
  elements) on one C loop each (engine._C `SmallBinary`/`SmallUnary`), without the ufunc dispatch overhead:
  bitwise numpy's results, but Sigmoid/Tanh from libm's expf/tanhf (within an ulp or two).
"""
from __future__ import annotations

import numpy as np

from engine import kernels as K
from engine._C import _kernels as _k
from engine.linalg import _activation
from engine.ops._registry import NodeCtx, accelerate

F32 = np.dtype(np.float32)
ELEMENTWISE_MIN = 1 << 15   # elements: below this numpy's ufunc is as fast as the threaded kernel
ACTIVATION_MIN = 1 << 10    # transcendental activations win earlier


# ------------------------------------------------------------------------------------------------ GEMM
@accelerate("MatMul")
def matmul(ctx: NodeCtx, base):
    """A (..., K) @ B (K, N), both float32 and C-contiguous: one GEMM call on the flattened rows of A, straight to
    the kernel (engine.matmul's general broadcasting costs microseconds per call in small models)."""
    base_run = base(ctx)

    def run(a, b):
        if (a.dtype != F32 or b.dtype != F32 or b.ndim != 2 or a.ndim < 2 or not a.flags.c_contiguous
                or not b.flags.c_contiguous or a.shape[-1] != b.shape[0]):
            return base_run(a, b)
        k, n = b.shape
        y = np.empty(a.shape[:-1] + (n,), F32)
        if y.size and k:
            _k.gemm(a.reshape(-1, k), b, y.reshape(-1, n), False, False, 1.0, 0.0, None, 0, 0, 0.0, 0.0)
        elif y.size:
            y.fill(0)
        return (y,)
    return run


@accelerate("FusedMatMul", domain="engine")
def fused_matmul(ctx: NodeCtx, base):
    from engine.ops.fused import _act_params

    base_run = base(ctx)
    w = ctx.const(1)
    b = ctx.const(2)
    if w is None or w.dtype != F32 or w.ndim != 2 or (ctx.has_input(2) and b is None):
        return base_run
    w = np.ascontiguousarray(w)
    k, n = w.shape
    bias = None if b is None else np.ascontiguousarray(b.reshape(-1), dtype=F32)
    act = _act_params(ctx)
    kind, p0, p1 = _activation(act) if act is not None else (0, 0.0, 0.0)
    bias_kind = _k.BIAS_COL if bias is not None else _k.BIAS_NONE

    def run(a, _w=None, _b=None):
        if a.dtype != F32 or a.ndim < 1 or a.shape[-1] != k or a.size == 0:
            return base_run(a, _w, _b)
        a = np.ascontiguousarray(a)
        y = np.empty(a.shape[:-1] + (n,), F32)
        _k.gemm(a.reshape(-1, k), w, y.reshape(-1, n), False, False, 1.0, 0.0, bias, bias_kind, kind, p0, p1)
        return (y,)
    return run


# ------------------------------------------------------------------------------------------------ conv
def _conv_attrs(ctx: NodeCtx):
    from engine.ops.nn import _auto_pad  # validates it as the numpy path does

    auto_pad = _auto_pad(ctx)
    return (ctx.attr("group", 1), ctx.attr("strides", None), ctx.attr("dilations", None), ctx.attr("pads", None),
            auto_pad, ctx.attr("kernel_shape", None))


# Winograd F(4x4, 3x3) for 3x3 stride-1 group-1 convolutions with at least this many input and output channels and
# output pixels (bench/compare_winograd.py: it beats the implicit GEMM from ~16 channels and 14x14 outputs; on 7x7
# maps its 4x larger transformed weights dominate). ENGINE_CONV_WINOGRAD=0 turns it off (exact implicit GEMM).
WINOGRAD_MIN_CHANNELS = 32
WINOGRAD_MIN_PIXELS = 14 * 14


# 1x1 stride-1 unpadded convolutions with at most this many output pixels per image run on the GEMM driver (B packed
# per call into contiguous panels) instead of the implicit GEMM, whose micro-kernel reads each input channel's
# pixels at a stride of H*W. Measured on Zen 3, 1 thread, GEMM time / implicit-GEMM time: 0.71-0.82 at 14x14,
# 0.87-1.03 at 28x28, 0.99-1.39 at 56x56 (MobileNetV2 and ResNet-50 shapes).
POINTWISE_GEMM_MAX_PIXELS = 28 * 28

# Layers with large weights (M x C*kh*kw at least COL_GEMM_MIN_WEIGHTS) on small output planes (at most
# COL_GEMM_MAX_PIXELS pixels, e.g. ResNet's 7x7 stage) run as im2col + one GEMM per image: the implicit GEMM's wide
# layout computes Wq - ow garbage columns per row (2 of 9 at 7x7 for a 3x3 layer) and its strided-layer phases read
# the taps from four planes, while the GEMM on the column matrix ends in a 1-column tail (ukr_tail). Measured on
# Zen 3, 1 thread, im2col + GEMM time / implicit-GEMM time: 512->512 3x3 at 7x7 0.83-0.93, 256->512 3x3 stride 2
# 14->7 0.84-0.92, 256->256 at 7x7 0.97-1.06, 128->128 at 7x7 1.25-1.6 (the column copy dominates).
COL_GEMM_MAX_PIXELS = 8 * 8
COL_GEMM_MIN_WEIGHTS = 1 << 20


def _winograd_enabled() -> bool:
    import os

    return os.environ.get("ENGINE_CONV_WINOGRAD", "1") != "0"


# (id(W constant), group) -> (W, ConvWeights, [Winograd weights]) of the Conv being built, for the accelerated Conv
# that its numpy fallback builds on the same W (a FusedConv's); an entry lives only during that nested build.
_PREPARING: dict = {}


def _static_path(ctx: NodeCtx, rank: int, channels: int, plan_for) -> str | None:
    """The path ("gemm", "wino", "pw", "dw") a Conv takes on the input size the model fixes (its height and width),
    else None (unknown, or an output too small: the run raises that on the numpy path)."""
    t = ctx.in_type(0)
    if t is None or t.shape is None or len(t.shape) != rank:
        return None
    sp = tuple(t.shape[2:])
    if not all(isinstance(v, int) and v > 0 for v in sp):
        return None
    try:
        return plan_for((1, channels) + sp)[5]
    except ValueError:
        return None


def _conv_fast(ctx: NodeCtx, base, act):
    """The C path of a 1-D or 2-D float32 Conv with constant weights (and bias): depthwise convolutions on the
    direct kernel; 3x3 stride-1 layers with enough channels and pixels on Winograd F(4x4, 3x3); 1x1 stride-1 layers on
    small planes as one GEMM per image ("pw"); layers with large weights on small output planes as im2col + GEMM
    ("col"); every other one on the implicit-GEMM kernel. The weights are packed (or Winograd-transformed) here, once, when the session is built.
    A 1-D convolution runs as a 2-D one of height 1.
    A 4th input (engine::FusedConv's residual Z) is added before the activation (in the implicit GEMM's epilogue)."""
    from engine.ops.nn import _conv_geometry  # the exact ONNX output-size formulas, shared with the numpy path

    w = w_onnx = ctx.const(1)
    b = ctx.const(2)
    if w is None or w.dtype != F32 or w.ndim not in (3, 4) or (ctx.has_input(2) and b is None):
        return None
    one_d = w.ndim == 3
    group, strides, dil, pads, auto_pad, kshape = _conv_attrs(ctx)
    nsp = w.ndim - 2
    if kshape is not None and tuple(kshape) != tuple(w.shape[2:]):
        return None
    s = tuple(strides) if strides else (1,) * nsp
    d = tuple(dil) if dil else (1,) * nsp
    p = tuple(pads) if pads else (0,) * (2 * nsp)
    if len(s) != nsp or len(d) != nsp or len(p) != 2 * nsp or group < 1 or w.shape[0] % group:
        return None
    if one_d:  # (M, C/g, k) -> (M, C/g, 1, k): height 1, stride/dilation 1 and no padding along it
        w = w.reshape(w.shape[0], w.shape[1], 1, w.shape[2])
    m, cg, kh, kw = w.shape
    s2 = (1, s[0]) if one_d else s
    d2 = (1, d[0]) if one_d else d
    bias = None if b is None else np.ascontiguousarray(b.reshape(-1), dtype=F32)
    if bias is not None and bias.shape != (m,):
        return None
    depthwise = group > 1 and cg == 1 and m == group
    wd = np.ascontiguousarray(w) if depthwise else None
    wino = (not depthwise and not one_d and group == 1 and (kh, kw) == (3, 3) and s == (1, 1) and d == (1, 1)
            and min(m, cg) >= WINOGRAD_MIN_CHANNELS and _winograd_enabled())
    # A 1x1 stride-1 convolution is the GEMM W (M x C) @ X (C x H*W) of each image, read in place (no im2col)
    w_pw = np.ascontiguousarray(w.reshape(m, cg)) if group == 1 and (kh, kw) == (1, 1) and s2 == (1, 1) else None
    # im2col + GEMM: the weights as the GEMM's A (M x C*kh*kw), read in place
    w_col = (np.ascontiguousarray(w.reshape(m, cg * kh * kw))
             if group == 1 and not one_d and w_pw is None and m * cg * kh * kw >= COL_GEMM_MIN_WEIGHTS else None)
    residual = ctx.has_input(3)
    kind, p0, p1 = _activation(act) if act is not None else (0, 0.0, 0.0)
    ctx_k = (kw,) if one_d else (kh, kw)
    rank = 3 if one_d else 4
    # Per input shape: how to call the kernel. The bindings are called directly (kernels.conv2d & co. re-check
    # every argument, ~30 us a call, more than a small convolution takes); their own checks still guard memory.
    plans: dict = {}

    def plan_for(shape):
        out_sp, pb, pe = _conv_geometry(shape[2:], ctx_k, s, d, p, auto_pad, "Conv")
        if one_d:
            (oh, ow), pp = (1,) + tuple(out_sp), (0, pb[0], 0, pe[0])
            h, w_ = 1, shape[2]
        else:
            (oh, ow), pp = tuple(out_sp), (pb[0], pb[1], pe[0], pe[1])
            h, w_ = shape[2], shape[3]
        n = shape[0]
        if depthwise:
            how = ("dw", (h, w_, oh, ow, kh, kw) + s2 + d2 + pp)
        elif wino and oh * ow >= WINOGRAD_MIN_PIXELS:
            how = ("wino", pp)
        elif w_pw is not None and not any(pp) and oh * ow <= POINTWISE_GEMM_MAX_PIXELS:
            how = ("pw", None)
        elif w_col is not None and oh * ow <= COL_GEMM_MAX_PIXELS:
            how = ("col", (h, w_, oh, ow, kh, kw) + s2 + d2 + pp)
        else:
            how = ("gemm", (n, cg * group, h, w_, m, group, kh, kw) + s2 + d2 + pp + (oh, ow))
        return (n, h, w_, oh, ow) + how

    # The weights are packed / transformed here, when the session is built, never on a run. The path is chosen per
    # input shape: with the input's height and width known from the model, only the path they take is prepared (the
    # 3x3 layers of a ResNet need no GEMM packing, 1x1 layers on the pointwise GEMM none); with them unknown, every
    # path the layer can take. `packed.w` is the original w, not a copy when the constant is contiguous float32 (it
    # is the session's constant): it stays, for ConvWeights to repack from when the ISA level and so the tile change
    # (tests), and the numpy fallback (base_run) gets the session's w as its input anyway.
    # A FusedConv's numpy fallback (base_run below) runs this same accelerated Conv on the same w: while it is built
    # it takes the weights prepared here (_PREPARING) instead of a second packed copy of every fused layer.
    key = (id(w_onnx), group)
    shared = _PREPARING.get(key)
    if depthwise:
        shared, packed, wino_u = True, None, [None]
    elif shared is not None and shared[0] is w_onnx:
        packed, wino_u = shared[1], shared[2]
    else:
        shared = None
        packed = K.ConvWeights(np.ascontiguousarray(w), group)
        wino_u = [None]
        static_how = _static_path(ctx, rank, cg * group, plan_for)
        if wino and static_how in (None, "wino"):
            wino_u[0] = K.winograd_weights(packed.w)
        if static_how in (None, "gemm"):
            packed.packed()

    def run(x, _w=None, _b=None, z=None):
        if x.dtype != F32 or x.ndim != rank or x.shape[1] != cg * group or (residual and z is None):
            return base_run(x, _w, _b, z) if residual else base_run(x, _w, _b)
        pl = plans.get(x.shape)
        if pl is None:
            pl = plans[x.shape] = plan_for(x.shape)
        n, h, w_, oh, ow, how, geo = pl
        if z is not None:
            if z.dtype != F32 or z.shape != ((n, m, ow) if one_d else (n, m, oh, ow)):
                return base_run(x, _w, _b, z)  # a residual that needs broadcasting: the numpy path
            z = np.ascontiguousarray(z)
        x = np.ascontiguousarray(x)
        y = np.empty((n, m, ow) if one_d else (n, m, oh, ow), F32)
        if y.size == 0:
            return (y,)
        if how in ("pw", "col"):  # one GEMM per image: bias, residual (as beta * C) and activation in its epilogue
            hw = oh * ow
            col = np.empty((cg * kh * kw, hw), F32) if how == "col" else None
            for i in range(n):
                yi = y[i].reshape(m, hw)
                if how == "col":  # the column matrix of the image, then W @ col
                    _k.im2col_f32(x[i], col, cg, geo)
                if z is not None:
                    yi[...] = z[i].reshape(m, hw)
                _k.gemm(w_pw if how == "pw" else w_col, x[i].reshape(cg, hw) if how == "pw" else col, yi, False,
                        False, 1.0, 0.0 if z is None else 1.0, bias, _k.BIAS_NONE if bias is None else _k.BIAS_ROW,
                        kind, p0, p1)
            return (y,)
        if how == "gemm":
            wp, mr = packed.packed()  # packed at build; repacked only if the ISA level changed since (tests)
            _k.conv2d_f32(geo, x, wp, mr, bias, z, y, kind, p0, p1)
            return (y,)
        if how == "wino":  # the residual and the activation in the output transform
            if wino_u[0] is None:  # only if the inferred input shape was wrong: prepared at build otherwise
                wino_u[0] = K.winograd_weights(packed.w)
            _k.wino_conv_f32(x, wino_u[0], bias, y, n, cg, h, w_, m, geo, kind, p0, p1, z)
            return (y,)
        post = z is not None and kind != 0  # the residual comes before the activation: apply it after
        k_, q0, q1 = (0, 0.0, 0.0) if post else (kind, p0, p1)
        _k.dwconv2d_f32(x, wd, bias, y, n * m, m, geo, k_, q0, q1)
        if z is not None:
            y += z.reshape(y.shape)
            if post:
                _k.act_f32(y, y, kind, p0, p1)
        return (y,)

    if shared is None:
        _PREPARING[key] = (w_onnx, packed, wino_u)
    try:
        base_run = base(ctx)
    finally:
        if shared is None:
            _PREPARING.pop(key, None)
    return run


@accelerate("Conv")
def conv(ctx: NodeCtx, base):
    return _conv_fast(ctx, base, None) or base(ctx)


@accelerate("FusedConv", domain="engine")
def fused_conv(ctx: NodeCtx, base):
    from engine.ops.fused import _act_params

    if ctx.n_inputs > 4:
        return base(ctx)
    return _conv_fast(ctx, base, _act_params(ctx)) or base(ctx)


# --------------------------------------------------------------------------------------------- pooling
def _pool_fast(ctx: NodeCtx, base, kind: str):
    from engine.ops.nn import _pool_attrs, _pool_geometry  # the same attribute rules and output sizes as numpy's

    if ctx.has_output(1):  # MaxPool's Indices: numpy path
        return None
    base_run = base(ctx)  # first: a bad attribute raises the numpy builder's error
    dil_ok = ctx.version >= (10 if kind == "max" else 19)
    k, p, s, d, auto_pad, ceil = _pool_attrs(ctx, ctx.op_type, dil_ok)
    if len(k) != 2:
        return base_run
    k, p, s, d = tuple(k), tuple(p), tuple(s), tuple(d)
    include = bool(ctx.attr("count_include_pad", 0))
    cache: dict = {}

    def run(x):
        if x.dtype != F32 or x.ndim != 4:
            return base_run(x)
        g = cache.get(x.shape[2:])
        if g is None:
            out, pb, pe = _pool_geometry(x.shape[2:], tuple(k), s, d, p, auto_pad, ceil, ctx.op_type)
            g = cache[x.shape[2:]] = (out, (pb[0], pb[1], pe[0], pe[1]))
        out, pp = g
        x = np.ascontiguousarray(x)
        if kind == "max":
            y = K.max_pool2d(x, tuple(k), s, pp, d, ceil and auto_pad == "NOTSET")
        else:
            y = K.avg_pool2d(x, tuple(k), s, pp, d, ceil and auto_pad == "NOTSET", include)
        if y.shape[2:] != tuple(out):  # the kernel's size formula must agree with ONNX's; else the numpy path
            return base_run(x)
        return (y,)
    return run


@accelerate("MaxPool")
def max_pool(ctx: NodeCtx, base):
    return _pool_fast(ctx, base, "max") or base(ctx)


@accelerate("AveragePool")
def avg_pool(ctx: NodeCtx, base):
    return _pool_fast(ctx, base, "avg") or base(ctx)


@accelerate("GlobalAveragePool", "GlobalMaxPool")
def global_pool(ctx: NodeCtx, base):
    f = K.global_avg_pool if ctx.op_type == "GlobalAveragePool" else K.global_max_pool
    base_run = base(ctx)

    def run(x):
        if x.dtype != F32 or x.ndim < 3:
            return base_run(x)
        y = f(np.ascontiguousarray(x))
        return (y.reshape(x.shape[:2] + (1,) * (x.ndim - 2)),)
    return run


# ---------------------------------------------------------------------------------- softmax and norms
@accelerate("Softmax", "LogSoftmax")
def softmax(ctx: NodeCtx, base):
    log = ctx.op_type == "LogSoftmax"
    legacy = ctx.version < 13
    axis = ctx.attr("axis", 1 if legacy else -1)
    base_run = base(ctx)

    def run(x):
        if x.dtype != F32 or x.ndim == 0 or not -x.ndim <= axis < x.ndim:
            return base_run(x)
        x = np.ascontiguousarray(x)
        if legacy:  # coerce to 2-D at axis, softmax over the second dimension
            ax = axis % x.ndim
            rows = int(np.prod(x.shape[:ax], dtype=np.int64))
            if x.size == 0:
                return base_run(x)
            return (K.softmax(x.reshape(rows, -1), -1, log).reshape(x.shape),)
        return (K.softmax(x, axis, log),)
    return run


@accelerate("LayerNormalization")
@accelerate("LayerNorm", domain="engine")  # the fuse_layernorm pass's node, for opsets before LayerNormalization
def layer_norm(ctx: NodeCtx, base):
    axis = ctx.attr("axis", -1)
    eps = ctx.attr("epsilon", 1e-5)
    stats = ctx.has_output(1) or ctx.has_output(2)
    base_run = base(ctx)
    if ctx.attr("stash_type", 1) != 1:
        return base_run

    def run(x, scale, bias=None):
        if x.dtype != F32 or scale.dtype != F32 or (bias is not None and bias.dtype != F32) or x.size == 0:
            return base_run(x, scale, bias)
        x = np.ascontiguousarray(x)
        if stats:
            y, mean, inv = K.layer_norm(x, scale, bias, axis, eps, return_stats=True)
            return (y, mean, inv)
        return (K.layer_norm(x, scale, bias, axis, eps),)
    return run


# ---------------------------------------------------------------------------------------- elementwise
# Small models run hundreds of tiny elementwise nodes: when the inferred types already tell that a node can never
# reach a kernel (not float32, or fewer elements than the kernel's threshold), the numpy run function is used
# directly, without a wrapper that re-checks dtype and size on every call. (The choice only affects speed: both
# paths compute the same values.)
def _static_numel(t) -> int | None:
    """The element count of a TensorType whose dims are all known, else None."""
    if t is None or t.shape is None:
        return None
    n = 1
    for d in t.shape:
        if not isinstance(d, int) or d < 0:
            return None
        n *= d
    return n


def _never_f32(ctx: NodeCtx, n_in: int) -> bool:
    """True when an input's type is known and is not float32."""
    for i in range(n_in):
        dt = ctx.in_dtype(i)
        if dt is not None and dt != F32:
            return True
    return False


def _never_fast(ctx: NodeCtx, n_in: int, min_size: int) -> bool:
    """True when the types say the kernel path cannot apply: an input known not to be float32, or an output
    known to be smaller than `min_size` elements."""
    if _never_f32(ctx, n_in):
        return True
    n = _static_numel(ctx.out_type(0))
    return n is not None and n < min_size


# Tensors up to this many elements: float32 Add/Sub/Mul/Div, Relu, Neg, Sigmoid and Tanh run as one C loop (_k.SmallBinary,
# _k.SmallUnary: ~0.3 us a call against numpy's ~1 us of ufunc dispatch); bigger ones take numpy or the kernels.
SMALL_MAX = 1024


_ACT = {"Relu": ("relu", ELEMENTWISE_MIN), "Sigmoid": ("sigmoid", ACTIVATION_MIN), "Tanh": ("tanh", ACTIVATION_MIN),
        "LeakyRelu": ("leaky_relu", ELEMENTWISE_MIN), "Elu": ("elu", ACTIVATION_MIN),
        "HardSigmoid": ("hardsigmoid", ELEMENTWISE_MIN), "HardSwish": ("hardswish", ELEMENTWISE_MIN),
        "Softplus": ("softplus", ACTIVATION_MIN), "Gelu": ("gelu", ACTIVATION_MIN)}


@accelerate(*_ACT)
def activation(ctx: NodeCtx, base):
    name, min_size = _ACT[ctx.op_type]
    if ctx.op_type == "LeakyRelu":
        params = (ctx.attr("alpha", 0.01), None)
    elif ctx.op_type == "Elu":
        params = (ctx.attr("alpha", 1.0), None)
    elif ctx.op_type == "HardSigmoid":
        params = (ctx.attr("alpha", 0.2), ctx.attr("beta", 0.5))
    elif ctx.op_type == "Gelu":
        if ctx.attr_str("approximate", "none") == "tanh":
            name = "gelu_tanh"
        params = (None, None)
    else:
        params = (None, None)
    base_run = base(ctx)
    if _never_fast(ctx, 1, min_size):
        run = base_run
    else:
        def run(x):
            if x.dtype != F32 or x.size < min_size:
                return base_run(x)
            return (K.activation(np.ascontiguousarray(x), name, *params),)
    if ctx.op_type in ("Relu", "Sigmoid", "Tanh") and not _never_f32(ctx, 1):
        return _k.SmallUnary(ctx.op_type.lower(), run, SMALL_MAX)
    return run


@accelerate("Neg")
def neg(ctx: NodeCtx, base):
    base_run = base(ctx)
    if _never_f32(ctx, 1):
        return base_run
    return _k.SmallUnary("neg", base_run, SMALL_MAX)


@accelerate("Clip")
def clip(ctx: NodeCtx, base):
    base_run = base(ctx)
    if ctx.version < 11:
        return base_run
    lo, hi = ctx.const(1), ctx.const(2)
    if (ctx.has_input(1) and lo is None) or (ctx.has_input(2) and hi is None):
        return base_run
    lo = -np.inf if lo is None else float(lo)
    hi = np.inf if hi is None else float(hi)
    if _never_fast(ctx, 1, ELEMENTWISE_MIN):
        return base_run

    def run(x, *_):
        if x.dtype != F32 or x.size < ELEMENTWISE_MIN:
            return base_run(x, *_)
        return (K.activation(np.ascontiguousarray(x), "clip", lo, hi),)
    return run


_BIN = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "max", "Min": "min"}


@accelerate(*_BIN)
def binary(ctx: NodeCtx, base):
    op = _BIN[ctx.op_type]
    base_run = base(ctx)
    if ctx.n_inputs != 2:
        return base_run
    if _never_fast(ctx, 2, ELEMENTWISE_MIN):
        run = base_run
    else:
        def run(a, b):
            if a.dtype is not F32 and a.dtype != F32 or b.dtype is not F32 and b.dtype != F32 \
                    or a.size < ELEMENTWISE_MIN and b.size < ELEMENTWISE_MIN:
                return base_run(a, b)
            return (K.binary(a, b, op),)
    if op in ("add", "sub", "mul", "div") and not _never_f32(ctx, 2):
        return _k.SmallBinary(op, run, SMALL_MAX)
    return run


# ------------------------------------------------------------------------------------- small products
# These wrap the MatMul / FusedMatMul runs above (accelerate() stacks): with a constant float32 (K, N) matrix, the
# product runs as one engine._C MatMulStep call (GEMM straight on A's rows, also for a column-slice view of A,
# which the runs above copy or send to numpy); other cases reach the runs above unchanged.
def _prepacked(ctx: NodeCtx, step):
    """Packs the step's weight now, when the session is built, if A's inferred shape guarantees products of at least
    MATMUL_PREPACK_MIN_ROWS rows (a symbolic dim counts as 1). Otherwise the first product of that many rows packs it:
    a weight that only ever meets a few rows (batch-1 linear layers, on the GEMV paths) gets no second copy."""
    t = ctx.in_type(0)
    if t is not None and t.shape is not None and len(t.shape) >= 2:
        rows = 1
        for d in t.shape[:-1]:
            rows *= d if isinstance(d, int) else 1
        if rows >= _k.MATMUL_PREPACK_MIN_ROWS:
            step.prepack()
    return step


@accelerate("MatMul")
def matmul_step(ctx: NodeCtx, base):
    run = base(ctx)
    w = ctx.const(1)
    if w is None or w.dtype != F32 or w.ndim != 2 or _never_f32(ctx, 1):
        return run
    return _prepacked(ctx, _k.MatMulStep(np.ascontiguousarray(w), None, 0, 0.0, 0.0, run))


@accelerate("FusedMatMul", domain="engine")
def fused_matmul_step(ctx: NodeCtx, base):
    from engine.ops.fused import _act_params

    run = base(ctx)
    w, b = ctx.const(1), ctx.const(2)
    if w is None or w.dtype != F32 or w.ndim != 2 or (ctx.has_input(2) and b is None) or _never_f32(ctx, 1):
        return run
    bias = None if b is None else np.ascontiguousarray(b.reshape(-1), dtype=F32)
    if bias is not None and bias.shape[0] != w.shape[1]:
        return run
    act = _act_params(ctx)
    kind, p0, p1 = _activation(act) if act is not None else (0, 0.0, 0.0)
    return _prepacked(ctx, _k.MatMulStep(np.ascontiguousarray(w), bias, kind, p0, p1, run))
