"""Elementwise ops: unary math, activations, binary arithmetic/comparison/logic (numpy broadcasting), variadic
Sum/Mean/Max/Min, Where, Clip, Cast and CastLike (see engine.ops._registry for the conventions).

Opset >= 7 broadcasting only (the legacy `broadcast`/`axis` attributes of opset < 7 are refused). run()
functions are kept minimal because Relu/Add/Mul/... run hundreds of times per model call: attributes are
read and dtype-cast in the builder; numpy's dtype rules (same-dtype inputs, weak Python scalars) keep the
ONNX output dtype without extra casts.
"""
from __future__ import annotations

import math

import numpy as np
from numpy.polynomial import chebyshev as _cheb

from engine.ops._registry import NodeCtx, Unsupported, register

_FLOAT_KINDS = "fc"


def _no_legacy_broadcast(ctx: NodeCtx) -> None:
    if ctx.version < 7 and (ctx.has_attr("broadcast") or ctx.has_attr("axis")):
        raise Unsupported("legacy broadcast/axis attributes (opset < 7) are not supported; re-export at opset >= 7")
    if ctx.has_attr("consumed_inputs"):
        raise Unsupported("the consumed_inputs attribute (opset < 6) is not supported")


def _is_float(dt) -> bool:
    if dt is None:
        return False
    dt = np.dtype(dt)
    return dt.kind in _FLOAT_KINDS or _is_ml_float(dt)


def _is_ml_float(dt) -> bool:
    # bfloat16, float8*, float4/6 from ml_dtypes have kind 'V'
    return np.dtype(dt).kind == "V" and "float" in np.dtype(dt).name


def _scalar(value, dt):
    """`value` as a scalar of dtype `dt` when known, else the Python number (numpy treats it as weak)."""
    if dt is None:
        return value
    try:
        return np.dtype(dt).type(value)
    except (TypeError, ValueError, OverflowError):
        return value


# ------------------------------------------------------------------------------------------------ erf
try:  # scipy's erf is the fastest; engine does not depend on scipy, so a numpy version stands in
    from scipy.special import erf as _scipy_erf  # type: ignore
except Exception:  # pragma: no cover - depends on the environment
    _scipy_erf = None

_ERF_SMALL = [0.9754769393826541, -0.14226120510371362, 0.01003558218759982, -0.000576876469976721,
              2.7419931252165198e-05, -1.104317550712543e-06, 3.848875545404083e-08, -1.1808582629642202e-09,
              3.2334188180985425e-11, -7.991381083883467e-13, 1.8014964235634207e-14, -3.5108334685767027e-16]
_ERFC_PIECES = [
    (1.0, 2.0, [0.331427281639452, -0.08500213770674321, 0.00995112734146608, -0.0010810888102208225,
                0.00011023243631187973, -1.0636830518157372e-05, 9.775012680158369e-07, -8.597922864038376e-08,
                7.267708389204946e-09, -5.923543964209712e-10, 4.6683908929722213e-11, -3.566104823528265e-12,
                2.645883650881914e-13, -1.910987500931511e-14, 1.2736810928873177e-15, -7.735407248782756e-17]),
    (2.0, 3.0, [0.21398248255623226, -0.037938404099999594, 0.0031959178113380154, -0.0002573666707889999,
                1.990583895018178e-05, -1.484277185409033e-06, 1.070288954578441e-07, -7.482824208466893e-09,
                5.083548512062583e-10, -3.3622569099844014e-11, 2.1685614637752365e-12, -1.3657635678632646e-13,
                8.403722305837368e-15, -5.041955066420018e-16]),
    (3.0, 4.5, [0.1481461953236469, -0.028025749092080686, 0.002576484512423789, -0.00023069211512745028,
                2.0153233859036877e-05, -1.7204117400280869e-06, 1.437081097186993e-07, -1.1760033753081699e-08,
                9.437883808194778e-10, -7.43518926381367e-11, 5.7548601143881044e-12, -4.379497342442899e-13,
                3.280749587674526e-14, -2.4123842185017894e-15, 1.5889137391948265e-16]),
    (4.5, 6.0, [0.10661722126431443, -0.014786024536844352, 0.001008956406399015, -6.779939376887709e-05,
                4.489413401754691e-06, -2.931013482932261e-07, 1.8877463831139535e-08, -1.2000019008936632e-09,
                7.532367272249588e-11, -4.670654124682373e-12, 2.862216337105907e-13, -1.7316667364819204e-14,
                1.0265972257273332e-15, -4.076328758146939e-17]),
]
def _erf_numpy(x):
    """erf in numpy alone (relative error < 1e-15 in float64): erf(x)/x as a Chebyshev series in x^2 on [0, 1),
    erfc(x)*exp(x^2) as Chebyshev series on [1, 6) (1 - exp(-x^2)*g), and +-1 beyond (erfc(6) < 3e-17).
    Coefficients fitted for engine against math.erf/math.erfc at Chebyshev nodes."""
    x = np.asarray(x)
    a = np.abs(x.astype(np.float64))
    y = np.ones_like(a)
    small = a < 1.0
    if small.all():
        s = a * a
        return (x * _cheb.chebval(2 * s - 1, _ERF_SMALL)).astype(x.dtype)
    s = a[small]; s = s * s
    y[small] = a[small] * _cheb.chebval(2 * s - 1, _ERF_SMALL)
    for lo, hi, c in _ERFC_PIECES:
        m = (a >= lo) & (a < hi)
        if m.any():
            v = a[m]
            y[m] = 1.0 - np.exp(-v * v) * _cheb.chebval((2 * v - (lo + hi)) / (hi - lo), c)
    y[np.isnan(a)] = np.nan
    return np.copysign(y, x).astype(x.dtype)


def _erf(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    dt = x.dtype
    if _scipy_erf is not None:
        if dt == np.float32 or dt == np.float64:
            return _scipy_erf(x)
        return _scipy_erf(x.astype(np.float32)).astype(dt)
    return _erf_numpy(x)


# --------------------------------------------------------------------------------------------- unary
def _unary(op_type: str, fn, float_only: bool = False):
    slow = _fwd(fn)

    def build(ctx: NodeCtx):
        _no_legacy_broadcast(ctx)
        dt = ctx.in_dtype(0)
        if float_only and dt is not None and not _is_float(dt):
            raise Unsupported(f"{op_type} needs a floating-point input, got {np.dtype(dt).name}")
        f = fn if dt is not None and np.dtype(dt).kind != "V" else slow  # dtype known: no per-call check

        def run(x):
            return (f(x),)
        return run
    register(op_type, shape_inputs=())(build)


def _fwd(fn):
    """Computes bfloat16/float8 inputs (kind 'V', no native numpy loops for most ufuncs) in float32."""
    def f(x):
        if x.dtype.kind == "V":
            return fn(x.astype(np.float32)).astype(x.dtype)
        return fn(x)
    return f


for _name, _fn in {
    "Abs": np.abs, "Neg": np.negative, "Sign": np.sign,
}.items():
    _unary(_name, _fn)

for _name, _fn in {
    "Reciprocal": np.reciprocal, "Floor": np.floor, "Ceil": np.ceil, "Round": np.round, "Sqrt": np.sqrt,
    "Exp": np.exp, "Log": np.log, "Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Asin": np.arcsin,
    "Acos": np.arccos, "Atan": np.arctan, "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh,
    "Acosh": np.arccosh, "Atanh": np.arctanh, "Tanh": np.tanh, "Erf": _erf,
}.items():
    _unary(_name, _fn, float_only=True)


@register("Not", shape_inputs=())
def not_(ctx: NodeCtx):
    def run(x):
        return (np.logical_not(x),)
    return run


@register("BitwiseNot", shape_inputs=())
def bitwise_not(ctx: NodeCtx):
    def run(x):
        return (np.invert(x),)
    return run


@register("IsNaN", shape_inputs=())
def isnan(ctx: NodeCtx):
    def run(x):
        if x.dtype.kind == "V":
            x = x.astype(np.float32)
        return (np.isnan(x),)
    return run


@register("IsInf", shape_inputs=())
def isinf(ctx: NodeCtx):
    neg = bool(ctx.attr("detect_negative", 1))
    pos = bool(ctx.attr("detect_positive", 1))

    def run(x):
        if x.dtype.kind == "V":
            x = x.astype(np.float32)
        if neg and pos:
            return (np.isinf(x),)
        if pos:
            return (np.isposinf(x),)
        if neg:
            return (np.isneginf(x),)
        return (np.zeros(x.shape, dtype=bool),)
    return run


# -------------------------------------------------------------------------------------- activations
@register("Relu", shape_inputs=())
def relu(ctx: NodeCtx):
    zero = _scalar(0, ctx.in_dtype(0))

    def run(x):
        return (np.maximum(x, zero),)
    return run


@register("LeakyRelu", shape_inputs=())
def leaky_relu(ctx: NodeCtx):
    alpha = float(ctx.attr("alpha", 0.01))
    a = _scalar(alpha, ctx.in_dtype(0))
    if 0.0 < alpha <= 1.0:
        def run(x):
            return (np.maximum(x, x * a),)      # x >= a*x exactly when x >= 0 (alpha = 0 would turn +inf to NaN)
    elif alpha > 1.0:
        def run(x):
            return (np.minimum(x, x * a),)
    else:
        def run(x):
            return (np.where(x < 0, x * a, x),)
    return run


@register("PRelu", shape_inputs=())
def prelu(ctx: NodeCtx):
    def run(x, slope):
        return (np.where(x < 0, x * slope, x).astype(x.dtype, copy=False),)
    return run


@register("Elu", shape_inputs=())
def elu(ctx: NodeCtx):
    a = _scalar(float(ctx.attr("alpha", 1.0)), ctx.in_dtype(0))

    def run(x):
        return (np.where(x > 0, x, np.expm1(x) * a),)
    return run


@register("Selu", shape_inputs=())
def selu(ctx: NodeCtx):
    dt = ctx.in_dtype(0)
    alpha = float(ctx.attr("alpha", 1.67326319217681884765625))
    gamma = float(ctx.attr("gamma", 1.05070102214813232421875))
    g = _scalar(gamma, dt)
    ga = _scalar(gamma * alpha, dt)

    def run(x):
        return (np.where(x > 0, x * g, np.expm1(x) * ga),)
    return run


@register("Celu", shape_inputs=())
def celu(ctx: NodeCtx):
    dt = ctx.in_dtype(0)
    alpha = float(ctx.attr("alpha", 1.0))
    if alpha == 0:
        raise Unsupported("Celu with alpha = 0 divides by zero")
    a = _scalar(alpha, dt)
    inv = _scalar(1.0 / alpha, dt)

    def run(x):
        return (np.where(x > 0, x, np.expm1(x * inv) * a),)
    return run


@register("ThresholdedRelu", shape_inputs=())
def thresholded_relu(ctx: NodeCtx):
    dt = ctx.in_dtype(0)
    a = _scalar(float(ctx.attr("alpha", 1.0)), dt)
    zero = _scalar(0, dt)

    def run(x):
        return (np.where(x > a, x, zero).astype(x.dtype, copy=False),)
    return run


@register("HardSigmoid", shape_inputs=())
def hard_sigmoid(ctx: NodeCtx):
    dt = ctx.in_dtype(0)
    a = _scalar(float(ctx.attr("alpha", 0.2)), dt)
    b = _scalar(float(ctx.attr("beta", 0.5)), dt)
    zero, one = _scalar(0, dt), _scalar(1, dt)

    def run(x):
        y = np.asarray(x * a)  # 0-d inputs give numpy scalars, which out= cannot take
        y += b
        np.maximum(y, zero, out=y)  # np.clip costs several times more per call
        np.minimum(y, one, out=y)
        return (y,)
    return run


@register("HardSwish", shape_inputs=())
def hard_swish(ctx: NodeCtx):
    dt = ctx.in_dtype(0)
    a = _scalar(1.0 / 6.0, dt)
    b = _scalar(0.5, dt)
    zero, one = _scalar(0, dt), _scalar(1, dt)

    def run(x):
        y = np.asarray(x * a)  # 0-d inputs give numpy scalars, which out= cannot take
        y += b
        np.maximum(y, zero, out=y)
        np.minimum(y, one, out=y)
        y *= x
        return (y,)
    return run


def _sigmoid(x):
    # stable both ways: exp of a non-positive number never overflows
    if x.dtype.kind == "V":
        return _sigmoid(x.astype(np.float32)).astype(x.dtype)
    e = np.exp(-np.abs(x))
    d = e + 1
    return np.where(x >= 0, 1 / d, e / d).astype(x.dtype, copy=False)


try:
    from scipy.special import expit as _expit  # type: ignore
except Exception:  # pragma: no cover
    _expit = None


def _sigmoid_fast(x):
    if _expit is not None and (x.dtype == np.float32 or x.dtype == np.float64):
        return _expit(x)
    return _sigmoid(x)


@register("Sigmoid", shape_inputs=())
def sigmoid(ctx: NodeCtx):
    dt = ctx.in_dtype(0)
    if _expit is not None and dt is not None and np.dtype(dt) in (np.float32, np.float64):
        dt = np.dtype(dt)

        def run_known(x):  # the dtype checks of _sigmoid_fast hoisted to load (small models: one frame less)
            if x.dtype is dt:
                return (_expit(x),)
            return (_sigmoid_fast(x),)
        return run_known

    def run(x):
        return (_sigmoid_fast(x),)
    return run


def _softplus(x):
    if x.dtype.kind == "V":
        return _softplus(x.astype(np.float32)).astype(x.dtype)
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)): no overflow
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


@register("Softplus", shape_inputs=())
def softplus(ctx: NodeCtx):
    def run(x):
        return (_softplus(x),)
    return run


@register("Softsign", shape_inputs=())
def softsign(ctx: NodeCtx):
    def run(x):
        return (x / (np.abs(x) + 1),)
    return run


@register("Mish", shape_inputs=())
def mish(ctx: NodeCtx):
    def run(x):
        return (x * np.tanh(_softplus(x)),)
    return run


@register("Gelu", shape_inputs=())
def gelu(ctx: NodeCtx):
    approx = ctx.attr_str("approximate", "none")
    dt = ctx.in_dtype(0)
    if approx == "none":
        c = _scalar(1.0 / math.sqrt(2.0), dt)
        h = _scalar(0.5, dt)

        def run(x):
            y = np.asarray(_erf(x * c))
            y += 1
            y *= x
            y *= h
            return (y,)
    elif approx == "tanh":
        c = _scalar(math.sqrt(2.0 / math.pi), dt)
        k = _scalar(0.044715, dt)
        h = _scalar(0.5, dt)

        def run(x):
            y = np.asarray(x * x)
            y *= k
            y += 1
            y *= x
            y *= c
            np.tanh(y, out=y)
            y += 1
            y *= x
            y *= h
            return (y,)
    else:
        raise Unsupported(f"Gelu approximate={approx!r} (expected 'none' or 'tanh')")
    return run


@register("Swish", shape_inputs=())
def swish(ctx: NodeCtx):
    alpha = float(ctx.attr("alpha", 1.0))
    a = _scalar(alpha, ctx.in_dtype(0))
    if alpha == 1.0:
        def run(x):
            return (x * _sigmoid_fast(x),)
    else:
        def run(x):
            return (x * _sigmoid_fast(x * a),)
    return run


# ---------------------------------------------------------------------------------------------- Clip
def _bound(v, what: str):
    if v is None:
        return None
    v = np.asarray(v)
    if v.size != 1:
        raise ValueError(f"Clip {what} must be a scalar, got shape {list(v.shape)}")
    return v.reshape(())[()]


@register("Clip", shape_inputs=())
def clip(ctx: NodeCtx):
    if ctx.version < 11:
        dt = ctx.in_dtype(0)
        lo = _scalar(float(ctx.attr("min")), dt) if ctx.has_attr("min") else None
        hi = _scalar(float(ctx.attr("max")), dt) if ctx.has_attr("max") else None

        def run(x):
            y = x if lo is None else np.maximum(x, lo)
            return (y if hi is None else np.minimum(y, hi),)
        return run

    c_lo, c_hi = ctx.const(1), ctx.const(2)
    lo_dyn = ctx.has_input(1) and c_lo is None
    hi_dyn = ctx.has_input(2) and c_hi is None
    if not lo_dyn and not hi_dyn:
        lo = _bound(c_lo, "min")
        hi = _bound(c_hi, "max")
        if lo is None and hi is None:
            def run(x, *_):
                return (x,)
        elif hi is None:
            def run(x, *_):
                return (np.maximum(x, lo),)
        elif lo is None:
            def run(x, *_):
                return (np.minimum(x, hi),)
        else:
            def run(x, *_):
                return (np.minimum(np.maximum(x, lo), hi),)
        return run

    def run(x, mn=None, mx=None):
        y = x
        if mn is not None:
            y = np.maximum(y, _bound(mn, "min"))
        if mx is not None:
            y = np.minimum(y, _bound(mx, "max"))
        return (y.astype(x.dtype, copy=False) if isinstance(y, np.ndarray) else y,)
    return run


# -------------------------------------------------------------------------------------------- binary
def _binary(op_type: str, fn):
    def build(ctx: NodeCtx):
        _no_legacy_broadcast(ctx)

        def run(a, b):
            return (fn(a, b),)
        return run
    register(op_type, shape_inputs=())(build)


for _name, _fn in {
    "Add": np.add, "Sub": np.subtract, "Mul": np.multiply,
    "And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor,
    "BitwiseAnd": np.bitwise_and, "BitwiseOr": np.bitwise_or, "BitwiseXor": np.bitwise_xor,
    "Greater": np.greater, "Less": np.less, "GreaterOrEqual": np.greater_equal, "LessOrEqual": np.less_equal,
}.items():
    _binary(_name, _fn)


@register("Equal", shape_inputs=())
def equal(ctx: NodeCtx):
    _no_legacy_broadcast(ctx)

    def run(a, b):
        r = np.equal(a, b)
        if r.dtype != np.bool_:  # object (string) inputs on numpy 1.x
            r = r.astype(np.bool_)
        return (r,)
    return run


def _int_div(a, b):
    """Integer division truncating toward zero (C semantics, as the ONNX reference); x / 0 gives 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.floor_divide(a, b)
        if a.dtype.kind == "u":
            return q
        r = np.remainder(a, b)
    adjust = (r != 0) & ((a < 0) ^ (b < 0))
    return q + adjust.astype(q.dtype)


@register("Div", shape_inputs=())
def div(ctx: NodeCtx):
    _no_legacy_broadcast(ctx)
    dt = ctx.in_dtype(0)
    if dt is not None and np.dtype(dt).kind in "iu":
        def run(a, b):
            return (_int_div(a, b),)
        return run
    if dt is not None and _is_float(dt) and np.dtype(dt).kind != "V":
        def run(a, b):
            return (np.divide(a, b),)
        return run

    def run(a, b):
        if a.dtype.kind in "iu":
            return (_int_div(a, b),)
        return (np.divide(a, b).astype(a.dtype, copy=False),)
    return run


@register("Pow", shape_inputs=())
def pow_(ctx: NodeCtx):
    _no_legacy_broadcast(ctx)
    dt = ctx.in_dtype(0)
    e = ctx.const(1)
    if e is not None and e.ndim == 0 and dt is not None and _is_float(dt) and np.dtype(dt).kind != "V":
        ev = float(e)
        if ev == 2.0:
            def run(a, b):
                return (np.square(a),)
            return run
        if ev == 1.0:
            def run(a, b):
                return (a,)
            return run
        if ev == 0.5:
            def run(a, b):
                return (np.sqrt(a),)
            return run
        es = _scalar(ev, dt)

        def run(a, b):
            return (np.power(a, es),)
        return run

    def run(a, b):
        adt = a.dtype
        if adt.kind in "iu" and b.dtype.kind in "iu":
            bb = b
            if b.dtype.kind == "i" and np.any(b < 0):
                # integer ** negative integer: numpy refuses; compute in float and truncate (1, -1 or 0)
                r = np.trunc(np.power(a.astype(np.float64), b.astype(np.float64)))
                return (r.astype(adt),)
            return (np.power(a, bb).astype(adt, copy=False),)
        if adt.kind == "V":
            return (np.power(a.astype(np.float32), b.astype(np.float32)).astype(adt),)
        if b.dtype.kind == "V":
            b = b.astype(np.float32)
        with np.errstate(all="ignore"):
            r = np.power(a, b)
        return (r.astype(adt, copy=False),)
    return run


@register("Mod", shape_inputs=())
def mod(ctx: NodeCtx):
    fmod = int(ctx.attr("fmod", 0))
    if fmod not in (0, 1):
        raise Unsupported(f"Mod fmod={fmod} (must be 0 or 1)")
    dt = ctx.in_dtype(0)
    if dt is not None and _is_float(dt) and fmod == 0 and ctx.version < 28:
        raise Unsupported("Mod with floating-point inputs needs fmod=1 before opset 28")
    fn = np.fmod if fmod else np.mod

    def run(a, b):
        if a.dtype.kind == "V":
            return (fn(a.astype(np.float32), b.astype(np.float32)).astype(a.dtype),)
        with np.errstate(divide="ignore", invalid="ignore"):
            return (fn(a, b),)
    return run


@register("BitShift", shape_inputs=())
def bitshift(ctx: NodeCtx):
    direction = ctx.attr_str("direction")
    if direction not in ("LEFT", "RIGHT"):
        raise Unsupported(f"BitShift direction={direction!r} (expected 'LEFT' or 'RIGHT')")
    left = direction == "LEFT"

    def run(x, y):
        dt = x.dtype
        bits = dt.itemsize * 8
        bad = (y < 0) | (y >= bits)
        ys = np.where(bad, 0, y).astype(dt, copy=False)
        if left:
            if dt.kind == "i":  # shift the two's complement bits: bits past the sign bit are dropped
                ut = np.dtype(f"u{dt.itemsize}")
                r = np.left_shift(np.asarray(x).astype(ut), ys.astype(ut)).astype(dt)
            else:
                r = np.left_shift(x, ys)
            r = np.where(bad, dt.type(0), r)
        else:
            r = np.right_shift(x, ys)
            if dt.kind == "i":
                fill = np.where(x < 0, dt.type(-1), dt.type(0))
            else:
                fill = dt.type(0)
            r = np.where(bad, fill, r)
        return (np.asarray(r, dtype=dt),)
    return run


# ------------------------------------------------------------------------------------------ variadic
def _variadic(op_type: str, fn, mean: bool = False):
    def build(ctx: NodeCtx):
        n = ctx.n_inputs
        if n < 1:
            raise Unsupported(f"{op_type} needs at least one input")
        if n == 1:
            def run(x):
                return (x,)
            return run
        if n == 2 and not mean:
            def run(a, b):
                return (fn(a, b),)
            return run

        def run(*xs):
            r = fn(xs[0], xs[1])
            for x in xs[2:]:
                r = fn(r, x)
            if mean:
                r = (r / len(xs)).astype(xs[0].dtype, copy=False)
            return (r,)
        return run
    register(op_type, shape_inputs=())(build)


_variadic("Sum", np.add)
_variadic("Mean", np.add, mean=True)
_variadic("Max", np.maximum)
_variadic("Min", np.minimum)


@register("Where", shape_inputs=())
def where(ctx: NodeCtx):
    def run(c, x, y):
        return (np.where(c, x, y),)
    return run


# ---------------------------------------------------------------------------------------------- Cast
_F8_SAT = ("float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz")


def _target_dtype(to) -> np.dtype:
    from onnx import TensorProto, helper

    if isinstance(to, (str, bytes)):  # Cast-1 names the type ("FLOAT")
        name = to.decode() if isinstance(to, bytes) else to
        try:
            to = TensorProto.DataType.Value(name.upper())
        except ValueError:
            raise Unsupported(f"Cast to unknown data type {name!r}") from None
    to = int(to)

    if to == TensorProto.STRING:
        return np.dtype(object)
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(to))
    except Exception as e:
        raise Unsupported(f"Cast to unknown data type {to}") from e


def _to_e8m0(x: np.ndarray, saturate: bool, round_mode: str) -> np.ndarray:
    """float -> float8_e8m0fnu (an exponent only) with the spec's rounding modes, from the float32 bits."""
    import ml_dtypes

    bits = np.ascontiguousarray(x, dtype=np.float32).reshape(np.shape(x)).view(np.uint32)  # keeps 0-d 0-d
    exp = ((bits >> 23) & 0xFF).astype(np.uint16)
    special = exp == 0xFF
    frac = bits & 0x7FFFFF
    if round_mode == "up":
        up = (frac != 0) & ~special
    elif round_mode == "nearest":
        g = (bits & 0x400000) != 0
        rest = (bits & 0x3FFFFF) != 0
        up = g & (rest | (exp > 0)) & ~special
    else:  # down
        up = np.zeros(exp.shape, dtype=bool)
    if saturate:
        up &= exp != 0xFE
    exp = exp + up.astype(np.uint16)
    out = np.where(special, np.uint16(0xFF), exp).astype(np.uint8)
    return out.view(ml_dtypes.float8_e8m0fnu)


def _str_to_num(x: np.ndarray, dt: np.dtype) -> np.ndarray:
    flat = [s.decode() if isinstance(s, bytes) else str(s) for s in x.reshape(-1)]
    try:
        if dt.kind in "iu":
            vals = [int(s) if s.strip().lstrip("+-").isdigit() else int(float(s)) for s in flat]
            return np.array(vals, dtype=object).astype(dt).reshape(x.shape)
        if dt == np.bool_:
            return np.array([float(s) != 0 for s in flat], dtype=bool).reshape(x.shape)
        return np.array([float(s) for s in flat], dtype=np.float64).astype(dt).reshape(x.shape)
    except ValueError as e:
        raise ValueError(f"Cast: cannot convert string to {dt.name}: {e}") from None


def _num_to_str(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "V":
        x = x.astype(np.float32)
    return x.astype(np.str_).astype(object)


def _make_cast(dst: np.dtype, saturate: bool, round_mode: str):
    name = dst.name
    if dst == object:
        def cast(x):
            if x.dtype == object or x.dtype.kind in "US":
                return x.astype(object)
            return _num_to_str(x)
        return cast
    if name == "float8_e8m0fnu":
        def cast(x):
            if x.dtype == dst:
                return x
            if x.dtype == object or x.dtype.kind in "US":
                x = _str_to_num(x, np.dtype(np.float32))
            return _to_e8m0(x, saturate, round_mode)
        return cast
    if name in _F8_SAT and saturate:
        import ml_dtypes

        fi = ml_dtypes.finfo(dst)
        lo, hi = float(fi.min), float(fi.max)

        def cast(x):
            if x.dtype == dst:
                return x
            if x.dtype == object or x.dtype.kind in "US":
                x = _str_to_num(x, np.dtype(np.float32))
            if x.dtype.kind in "iub":
                x = x.astype(np.float32)
            return np.clip(x, lo, hi).astype(dst)
        return cast

    def cast(x):
        if x.dtype == dst:
            return x
        if x.dtype == object or x.dtype.kind in "US":
            return _str_to_num(x, dst)
        return x.astype(dst)
    return cast


@register("Cast", shape_inputs=())
def cast(ctx: NodeCtx):
    dst = _target_dtype(ctx.attr("to"))
    saturate = bool(ctx.attr("saturate", 1))
    round_mode = ctx.attr_str("round_mode", "up")
    if round_mode not in ("up", "down", "nearest"):
        raise Unsupported(f"Cast round_mode={round_mode!r} (expected 'up', 'down' or 'nearest')")
    fn = _make_cast(dst, saturate, round_mode)

    def run(x):
        return (fn(x),)
    return run


@register("CastLike", shape_inputs=())
def cast_like(ctx: NodeCtx):
    saturate = bool(ctx.attr("saturate", 1))
    round_mode = ctx.attr_str("round_mode", "up")
    if round_mode not in ("up", "down", "nearest"):
        raise Unsupported(f"CastLike round_mode={round_mode!r} (expected 'up', 'down' or 'nearest')")
    dt = ctx.in_dtype(1)
    if dt is not None:
        fn = _make_cast(np.dtype(dt), saturate, round_mode)

        def run(x, like):
            return (fn(x),)
        return run
    cache: dict = {}

    def run(x, like):
        f = cache.get(like.dtype)
        if f is None:
            f = cache[like.dtype] = _make_cast(like.dtype, saturate, round_mode)
        return (f(x),)
    return run
