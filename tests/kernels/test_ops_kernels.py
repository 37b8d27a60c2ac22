"""engine.kernels (the op kernels: activation, binary, softmax, layer/RMS norm, pooling, im2col, depthwise conv):
every function at every ISA this CPU runs against a float64 NumPy reference (tolerances.py) and against the scalar
ISA, over sizes around the vector widths (0, 1, ..., 2W+1, 3W-1, 4W, 1007), odd spatial sizes, every pooling
pad/stride/dilation/ceil_mode combination (output shapes checked against onnx.reference), canaries around `out`,
threaded vs serial, and bad inputs."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import tolerances as tol

import engine
import engine.kernels as K
from engine.testing import EPS32, force_isa, quick, rng

W = 16
SIZES = list(range(0, 2 * W + 2)) + [3 * W - 1, 4 * W, 1007]
if quick():
    SIZES = [0, 1, 3, 7, 8, 9, 15, 16, 17, 33, 1007]
CANARY = np.float32(-7.75e13)


def _erf(x):
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


def act_ref(x, name, p0, p1):
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        r = {
            "relu": lambda: np.where(x < 0, 0.0, x),
            "leaky_relu": lambda: np.where(x >= 0, x, p0 * x),
            "clip": lambda: np.where(x < p0, p0, np.where(x > p1, p1, x)),
            "sigmoid": lambda: 1.0 / (1.0 + np.exp(-x)),
            "tanh": lambda: np.tanh(x),
            "silu": lambda: x / (1.0 + np.exp(-x)),
            "gelu": lambda: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
            "gelu_tanh": lambda: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))),
            "hardsigmoid": lambda: np.clip(np.float64(np.float32(p0)) * x + np.float32(p1), 0.0, 1.0),
            "hardswish": lambda: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0),
            "elu": lambda: np.where(x >= 0, x, p0 * np.expm1(x)),
            "softplus": lambda: np.logaddexp(0.0, x),
            "exp": lambda: np.exp(x),
        }[name]()
    r = np.where(np.isnan(x), np.nan, r)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(r) > np.finfo(np.float32).max, np.copysign(np.inf, r), r)


def act_f32_formula(x, name, p0, p1):
    """The exact activations in float32 numpy, with the C reference's roundings."""
    f = np.float32
    if name == "relu":
        return np.where(x < 0, f(0), x)
    if name == "leaky_relu":
        return np.where(x >= 0, x, x * f(p0))
    if name == "clip":
        return np.where(x < f(p0), f(p0), np.where(x > f(p1), f(p1), x))
    if name == "hardsigmoid":
        t = x * f(p0) + f(p1)
        return np.where(t < 0, f(0), np.where(t > 1, f(1), t))
    raise KeyError(name)


EXACT = {"relu", "leaky_relu", "clip", "hardsigmoid"}
ACTS = [("relu", None, None), ("leaky_relu", 0.1, None), ("leaky_relu", -1.5, None), ("clip", -0.5, 0.75),
        ("clip", 0.0, 6.0), ("sigmoid", None, None), ("tanh", None, None), ("silu", None, None),
        ("gelu", None, None), ("gelu_tanh", None, None), ("hardsigmoid", 0.2, 0.5), ("hardsigmoid", 1 / 6, 0.5),
        ("hardswish", None, None), ("elu", 1.0, None), ("elu", 0.7, None), ("softplus", None, None),
        ("exp", None, None)]
SPECIALS = np.array([0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 20.0, -20.0, 88.5, -88.5, 100.0, -100.0, np.inf, -np.inf,
                     np.nan, 1e-30, -1e-30, 1e-3, -1e-3, 0.625, -0.625, 0.4], np.float32)


def act_input(g, n):
    x = (g.standard_normal(n) * 6).astype(np.float32)
    if n:
        k = min(n, len(SPECIALS))
        x[g.choice(n, k, replace=False)] = SPECIALS[:k]
    return x


def in_canary(n, pad=W):
    """(big, view): a contiguous length-n view inside a canary-filled buffer."""
    big = np.full(n + 2 * pad, CANARY, np.float32)
    return big, big[pad:pad + n]


def check_canary(big, pad, n, what):
    assert np.all(big[:pad] == CANARY) and np.all(big[pad + n:] == CANARY), f"{what}: wrote outside out"


def assert_close(got, ref, atol, rtol, what):
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    nan_g, nan_r = np.isnan(got), np.isnan(ref)
    assert np.array_equal(nan_g, nan_r), f"{what}: NaN mismatch at {np.argwhere(nan_g != nan_r)[:3].tolist()}"
    with np.errstate(invalid="ignore"):
        err = np.where(nan_r | (got == ref), 0.0, np.abs(got - ref))
    bound = atol + rtol * np.abs(np.where(np.isfinite(ref), ref, 0))
    bad = err > bound
    if bad.any():
        i = np.argmax(np.where(bad, err - bound, -1))
        raise AssertionError(f"{what}: at {np.unravel_index(i, got.shape)} got {got.flat[i]!r}, ref {ref.flat[i]!r}, "
                             f"err {err.flat[i]:.3g} > bound {np.broadcast_to(bound, err.shape).flat[i]:.3g}")


def on_scalar(fn, *a, **kw):
    with force_isa("scalar"):
        return fn(*a, **kw)


# ---------------------------------------------------------------- activation
@pytest.mark.parametrize("name,p0,p1", ACTS, ids=lambda v: str(v))
def test_activation(isa, name, p0, p1):
    g = rng("act", name, p0)
    t = tol.OPS_ACTIVATION[name]
    atol, rtol = (0.0, 0.0) if t == tol.EXACT else t
    for n in SIZES:
        x = act_input(g, n)
        ref = act_ref(x, name, p0, p1)
        big, out = in_canary(n)
        got = K.activation(x, name, p0, p1, out=out)
        assert got is out
        check_canary(big, W, n, f"{isa} {name} n={n}")
        sc = on_scalar(K.activation, x, name, p0, p1)
        what = f"{isa} {name}({p0},{p1}) n={n}"
        if name in EXACT:
            want = act_f32_formula(x, name, p0, p1)
            assert np.array_equal(got.view(np.uint32), sc.view(np.uint32)) or np.array_equal(got, sc, equal_nan=True), what
            assert np.array_equal(got, want, equal_nan=True), what
            if name == "hardsigmoid":
                assert_close(got, ref, 2 * EPS32, 0.0, what)
        else:
            assert_close(got, ref, atol, rtol, what)
            assert_close(got, sc, 2 * atol, 2 * rtol, what + " vs scalar")
        # misaligned input, in place
        if n:
            buf = np.empty(n + 1, np.float32)
            xs = buf[1:]
            xs[...] = x
            K.activation(xs, name, p0, p1, out=xs)
            assert np.array_equal(xs, got, equal_nan=True), what + " in place, misaligned"


def test_activation_threads_bitwise():
    """A large input is cut into blocks on the pool; every element is computed by the same code either way."""
    g = rng("act-threads")
    x = (g.standard_normal(300_007) * 4).astype(np.float32)
    for name in ("gelu", "relu", "tanh"):
        engine.set_num_threads(1)
        one = K.activation(x, name)
        engine.set_num_threads(2)
        two = K.activation(x, name)
        assert np.array_equal(one, two), name


def test_activation_non_contiguous_and_nd():
    x = np.arange(-12, 12, dtype=np.float32).reshape(4, 6)[:, ::2]
    y = K.activation(x, "relu")
    # expected value from a contiguous copy: under qemu's Haswell model numpy 2.4's strided np.maximum answers
    # [0, 0, 4] for [0, 2, 4] (and has crashed), while the contiguous loop is right
    want = np.maximum(np.ascontiguousarray(x), 0)
    assert y.shape == (4, 3) and np.array_equal(y, want)
    assert K.activation(np.array(-2.0, np.float32), "relu").shape == ()


# ---------------------------------------------------------------- binary
BROADCASTS = [((7,), (7,)), ((2, 3, 4, 5), (2, 3, 4, 5)), ((2, 3, 4, 5), ()), ((), (2, 3, 4, 5)),
              ((5, 33), (33,)), ((33,), (5, 33)), ((2, 3, 9, 11), (3, 1, 1)), ((3, 1, 1), (2, 3, 9, 11)),
              ((2, 3, 9, 11), (1, 3, 1, 1)), ((4, 1), (4, 17)), ((4, 17), (4, 1)), ((2, 1, 4, 1), (2, 3, 4, 5)),
              ((1, 3, 1, 5), (2, 3, 4, 5)), ((2, 1, 3, 1, 2), (1, 2, 1, 2, 1)), ((0, 3), (3,)), ((1, 1), (1, 1)),
              ((1007,), (1,)), ((3, 1025), (1025,))]


@pytest.mark.parametrize("sa,sb", BROADCASTS, ids=str)
@pytest.mark.parametrize("op", list(K.BINARY_OPS))
def test_binary(isa, op, sa, sb):
    g = rng("bin", op, sa, sb)
    a = g.standard_normal(sa).astype(np.float32)
    b = g.standard_normal(sb).astype(np.float32)
    if a.size > 4:
        a.flat[::5] = SPECIALS[: a.flat[::5].size % len(SPECIALS) or 1][0]
        a.flat[1] = np.nan
    if b.size > 4:
        b.flat[2] = -np.inf
        b.flat[3] = 0.0
    with np.errstate(all="ignore"):
        want = K._NUMPY_BINARY[op](a, b)
    got = K.binary(a, b, op)
    assert got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=True), f"{isa} {op} {sa} {sb}"
    # into a canary-guarded out, and in place when the shapes allow it
    big, out = in_canary(want.size)
    K.binary(a, b, op, out=out.reshape(want.shape))
    check_canary(big, W, want.size, f"{isa} binary {op}")
    assert np.array_equal(out.reshape(want.shape), want, equal_nan=True)
    if a.shape == want.shape:
        a2 = a.copy()
        K.binary(a2, b, op, out=a2)
        assert np.array_equal(a2, want, equal_nan=True)


def test_binary_threads_bitwise():
    g = rng("bin-threads")
    a = g.standard_normal((64, 3, 1024)).astype(np.float32)
    b = g.standard_normal((3, 1)).astype(np.float32)
    engine.set_num_threads(1)
    one = K.binary(a, b, "mul")
    engine.set_num_threads(2)
    assert np.array_equal(one, K.binary(a, b, "mul"))
    assert np.array_equal(one, a * b)


# ---------------------------------------------------------------- softmax
def softmax_ref(x, axis, log):
    x = np.asarray(x, np.float64)
    d = x - x.max(axis=axis, keepdims=True)
    s = np.exp(d).sum(axis=axis, keepdims=True)
    return (d - np.log(s)) if log else np.exp(d) / s, d, s


@pytest.mark.parametrize("log", [False, True])
def test_softmax_rows(isa, log):
    g = rng("softmax", log)
    for n in SIZES:
        if n == 0:
            continue
        for scale in (1.0, 30.0):
            x = (g.standard_normal((3, n)) * scale + 2).astype(np.float32)
            ref, d, s = softmax_ref(x, -1, log)
            big, out = in_canary(3 * n)
            got = K.softmax(x, log=log, out=out.reshape(3, n))
            check_canary(big, W, 3 * n, f"{isa} softmax n={n}")
            k = (tol.SOFTMAX_C + n / 4) * EPS32
            bound = k * (np.abs(d) + np.abs(np.log(s))) + 4 * k if log else (k + EPS32 * np.abs(d)) * np.abs(ref)
            what = f"{isa} softmax log={log} n={n} scale={scale}"
            assert_close(got, ref, 0.0, 0.0, what) if False else None
            err = np.abs(got.astype(np.float64) - ref)
            assert np.all(err <= bound + 1e-30), f"{what}: max err/bound {np.max(err / (bound + 1e-30)):.3g}"
            sc = on_scalar(K.softmax, x, log=log)
            assert np.all(np.abs(got.astype(np.float64) - sc) <= 2 * bound + 1e-30), what + " vs scalar"


@pytest.mark.parametrize("shape,axis", [((2, 3, 4), 0), ((2, 3, 4), 1), ((2, 3, 4), -2), ((5,), 0), ((4, 1, 3), 1),
                                        ((2, 0, 3), 2), ((2, 0, 3), 1), ((1, 1), -1)])
def test_softmax_axes(isa, shape, axis):
    x = rng("softmax-axes", shape, axis).standard_normal(shape).astype(np.float32)
    for log in (False, True):
        got = K.softmax(x, axis=axis, log=log)
        if x.size == 0:
            assert got.shape == shape
            continue
        ref, _, _ = softmax_ref(x, axis, log)
        assert_close(got, ref, 2e-6, 2e-6, f"{isa} softmax {shape} axis={axis} log={log}")
    y = x.copy()
    K.softmax(y, axis=axis, out=y)  # in place
    if x.size:
        assert_close(y, softmax_ref(x, axis, False)[0], 2e-6, 2e-6, "in place")


def test_softmax_special_rows():
    x = np.array([[0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0], [1e30, 1e30, -1e30]], np.float32)
    y = K.softmax(x)
    e = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    assert y[0, 1] == 0.0 and np.allclose(y[0, [0, 2]], e, rtol=1e-6)
    assert np.all(np.isnan(y[1]))
    assert np.allclose(y[2], [0.5, 0.5, 0.0])


# ---------------------------------------------------------------- layer / rms norm
def norm_ref(x, scale, bias, axis, eps, rms):
    x = np.asarray(x, np.float64)
    ax = tuple(range(axis % x.ndim, x.ndim))
    mean = np.zeros(x.shape[:axis % x.ndim] + (1,) * len(ax)) if rms else x.mean(axis=ax, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=ax, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    y = (x - mean) * inv
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    return y, mean, inv


@pytest.mark.parametrize("rms", [False, True])
def test_norm_rows(isa, rms):
    g = rng("norm", rms)
    fn = K.rms_norm if rms else K.layer_norm
    for n in SIZES:
        if n == 0:
            continue
        for with_sb in (False, True):
            x = (g.standard_normal((4, n)) * 2 + 5).astype(np.float32)
            sc = g.standard_normal(n).astype(np.float32) if with_sb else None
            bi = g.standard_normal(n).astype(np.float32) if with_sb else None
            big, out = in_canary(4 * n)
            got = fn(x, sc, bi, out=out.reshape(4, n))
            check_canary(big, W, 4 * n, f"{isa} norm n={n}")
            ref, mean, inv = norm_ref(x, sc, bi, -1, 1e-5, rms)
            amean = np.abs(x.astype(np.float64)).mean(axis=1, keepdims=True)
            k = tol.NORM_C * (16 + n / 4) * EPS32
            dev = np.abs(x - mean)
            s = np.abs(sc) if with_sb else 1.0
            bound = k * (dev + amean) * inv * (1 + amean ** 2 * inv ** 2) * s + 2 * EPS32 * np.abs(ref) + 1e-30
            err = np.abs(got - ref)
            what = f"{isa} norm rms={rms} n={n} scale/bias={with_sb}"
            assert np.all(err <= bound), f"{what}: max err/bound {np.max(err / bound):.3g}"
            sv = on_scalar(fn, x, sc, bi)
            assert np.all(np.abs(got - sv.astype(np.float64)) <= 2 * bound), what + " vs scalar"


@pytest.mark.parametrize("shape,axis,pshape", [((2, 3, 4, 5), 2, (4, 5)), ((2, 3, 4, 5), 2, (5,)),
                                               ((2, 3, 4, 5), 1, (3, 1, 1)), ((2, 3, 4, 5), 0, (1,)),
                                               ((6, 7), -1, (7,)), ((3,), 0, None)])
def test_layer_norm_axes_and_stats(isa, shape, axis, pshape):
    g = rng("ln-axes", shape, axis)
    x = g.standard_normal(shape).astype(np.float32)
    sc = g.standard_normal(pshape).astype(np.float32) if pshape else None
    bi = g.standard_normal(pshape).astype(np.float32) if pshape else None
    y, mean, inv = K.layer_norm(x, sc, bi, axis=axis, eps=1e-3, return_stats=True)
    ref, rm, ri = norm_ref(x, sc, bi, axis, 1e-3, False)
    assert mean.shape == rm.shape and inv.shape == ri.shape
    assert_close(y, ref, 1e-5, 1e-5, f"{isa} layer_norm {shape} axis={axis}")
    assert_close(mean, rm, 1e-6, 1e-6, "mean")
    assert_close(inv, ri, 0.0, 1e-5, "inv_std")
    yr = K.rms_norm(x, sc, None, axis=axis, eps=1e-3)
    assert_close(yr, norm_ref(x, sc, None, axis, 1e-3, True)[0], 1e-5, 1e-5, "rms_norm")


def test_norm_threads_bitwise():
    x = rng("norm-threads").standard_normal((512, 768)).astype(np.float32)
    engine.set_num_threads(1)
    one = K.layer_norm(x)
    engine.set_num_threads(2)
    assert np.array_equal(one, K.layer_norm(x))


# ---------------------------------------------------------------- pooling
def pool_ref(x, kind, k, s, p, d, ceil_mode, count_include_pad):
    """Direct float64 pooling with ONNX semantics (windows cut at the end padding for count_include_pad)."""
    n, c, h, w = x.shape
    oh = K.pool_output_size(h, k[0], s[0], p[0], p[2], d[0], ceil_mode)
    ow = K.pool_output_size(w, k[1], s[1], p[1], p[3], d[1], ceil_mode)
    y = np.zeros((n, c, oh, ow))
    x64 = x.astype(np.float64)
    for i in range(oh):
        for j in range(ow):
            rows = [i * s[0] - p[0] + a * d[0] for a in range(k[0])]
            cols = [j * s[1] - p[1] + b * d[1] for b in range(k[1])]
            ri = [r for r in rows if 0 <= r < h]
            ci = [q for q in cols if 0 <= q < w]
            win = x64[:, :, ri][:, :, :, ci].reshape(n, c, -1)
            if kind == "max":
                y[:, :, i, j] = np.max(win, axis=-1) if win.shape[-1] else -np.inf
            else:
                if count_include_pad:
                    cnt = sum(-p[0] <= r < h + p[2] for r in rows) * sum(-p[1] <= q < w + p[3] for q in cols)
                else:
                    cnt = len(ri) * len(ci)
                with np.errstate(invalid="ignore"):  # an all-padding window: 0 / 0
                    y[:, :, i, j] = win.sum(axis=-1) / cnt
    return y


def onnx_pool(x, kind, k, s, p, d, ceil_mode, count_include_pad):
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[2], p[3]], ceil_mode=int(ceil_mode))
    if d != (1, 1):
        attrs["dilations"] = list(d)
    if kind == "avg":
        attrs["count_include_pad"] = int(count_include_pad)
    node = helper.make_node("MaxPool" if kind == "max" else "AveragePool", ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


def pool_cases():
    cases = []
    for (h, w), k, s, d, ceil_mode in itertools.product([(1, 1), (5, 7), (9, 8), (12, 13)], [(1, 1), (2, 2), (3, 3), (2, 3)],
                                                        [(1, 1), (2, 2), (3, 1)], [(1, 1), (2, 1)],
                                                        [False, True]):
        span = ((k[0] - 1) * d[0] + 1, (k[1] - 1) * d[1] + 1)
        for p in [(0, 0, 0, 0), (1, 1, 1, 1), (1, 0, 0, 1), (0, 1, 2, 0)]:
            p = tuple(min(v, span[i % 2] - 1) for i, v in enumerate(p))
            if h + p[0] + p[2] < span[0] or w + p[1] + p[3] < span[1]:
                continue
            cases.append(((h, w), k, s, p, d, ceil_mode))
    return cases[::3] if quick() else cases


POOL_CASES = pool_cases()


@pytest.mark.parametrize("kind", ["max", "avg", "avg_pad"])
def test_pool2d_vs_reference(isa, kind):
    g = rng("pool", kind)
    for (h, w), k, s, p, d, ceil_mode in POOL_CASES:
        x = g.standard_normal((2, 3, h, w)).astype(np.float32)
        cip = kind == "avg_pad"
        if kind == "max":
            got = K.max_pool2d(x, k, s, p, d, ceil_mode)
        else:
            got = K.avg_pool2d(x, k, s, p, d, ceil_mode, count_include_pad=cip)
        ref = pool_ref(x, "max" if kind == "max" else "avg", k, s, p, d, ceil_mode, cip)
        what = f"{isa} {kind} hw={h},{w} k={k} s={s} p={p} d={d} ceil={ceil_mode}"
        assert got.shape == ref.shape, what
        taps = k[0] * k[1]
        assert_close(got, ref, (taps + 1) * EPS32 * 4, (taps + 1) * EPS32, what)
        sc = on_scalar(K.max_pool2d, x, k, s, p, d, ceil_mode) if kind == "max" else \
            on_scalar(K.avg_pool2d, x, k, s, p, d, ceil_mode, count_include_pad=cip)
        assert np.array_equal(got, sc, equal_nan=True), what + ": not bitwise equal to scalar"


def test_maxpool_3x3_stride2_separable_path(isa):
    """3x3 stride-2 max pooling (ResNet's stem pool) runs separably on wide rows (row maxima, then 3 rows): bitwise the
    scalar per-window result, NaN (one payload or another), +-0, +-inf included, on widths that take vectors, the
    overlapping last vector and the borders, with every padding and ceil_mode."""
    g = rng("maxpool-3x3s2")
    nan2 = np.array([0x7FC12345], np.uint32).view(np.float32)[0]
    special = np.float32([np.nan, nan2, 0.0, -0.0, np.inf, -np.inf])
    for h, w in [(7, 17), (8, 18), (9, 35), (13, 40), (6, 61), (11, 80), (4, 113)]:
        x = g.standard_normal((2, 3, h, w)).astype(np.float32)
        flat = x.reshape(-1)
        pos = g.choice(flat.size, size=flat.size // 7, replace=False)
        flat[pos] = g.choice(special, size=pos.size)
        for p in [(0, 0, 0, 0), (1, 1, 1, 1), (0, 1, 1, 0), (2, 2, 0, 1), (1, 0, 2, 2)]:
            for ceil_mode in (False, True):
                what = f"{isa} hw={h},{w} p={p} ceil={ceil_mode}"
                got = K.max_pool2d(x, (3, 3), (2, 2), p, (1, 1), ceil_mode)
                sc = on_scalar(K.max_pool2d, x, (3, 3), (2, 2), p, (1, 1), ceil_mode)
                assert got.shape == sc.shape, what
                assert np.array_equal(got.view(np.uint32), sc.view(np.uint32)), what + ": not bitwise equal to scalar"
                ref = pool_ref(np.where(np.isnan(x), np.float32(0), x), "max", (3, 3), (2, 2), p, (1, 1), ceil_mode, False)
                got0 = K.max_pool2d(np.where(np.isnan(x), np.float32(0), x), (3, 3), (2, 2), p, (1, 1), ceil_mode)
                assert np.array_equal(got0, ref), what + " vs the onnx reference (NaN replaced)"


def ort_pool(x, kind, k, s, p, d, ceil_mode, count_include_pad):
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime not installed: no cross-check against it")
    from onnx import TensorProto, helper
    attrs = dict(kernel_shape=list(k), strides=list(s), pads=list(p), ceil_mode=int(ceil_mode), dilations=list(d))
    if kind == "avg":
        attrs["count_include_pad"] = int(count_include_pad)
    node = helper.make_node("MaxPool" if kind == "max" else "AveragePool", ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _empty_window(h, w, k, s, p, d, ceil_mode):
    """A window lying entirely in the padding (possible with dilation): engine gives -inf (max) / NaN (avg),
    onnx.reference 0, onnxruntime -FLT_MAX; the spec leaves it open, so the cross-checks skip such geometries."""
    return bool(np.isinf(pool_ref(np.ones((1, 1, h, w), np.float32), "max", k, s, p, d, ceil_mode, False)).any())


def _pool_fn(x, kind, k, s, p, d, ceil_mode, cip):
    if kind == "max":
        return K.max_pool2d(x, k, s, p, d, ceil_mode)
    return K.avg_pool2d(x, k, s, p, d, ceil_mode, count_include_pad=cip)


def test_pool2d_shapes_match_onnx_reference():
    """Output sizes (incl. ceil_mode) as onnx.reference computes them, values where its semantics are ours. Known
    difference (onnx 1.23 reference bug, onnxruntime agrees with us): MaxPool with ceil_mode, strides 1 and
    dilations 1 takes the CommonPool path, whose padded-extent rule gives one more output than the ONNX formula
    (e.g. 1x1 input, kernel 2, pads (1, 0, 0, 1): reference 2x2, onnxruntime and engine 1x1): those cases are
    compared with onnxruntime instead. The reference also spreads the ceil_mode overhang over both sides as extra
    padding, which shifts windows and divisors: with ceil_mode only shapes are compared here (values against
    onnxruntime in test_pool2d_vs_onnxruntime)."""
    g = rng("pool-onnx")
    checked = 0
    for (h, w), k, s, p, d, ceil_mode in POOL_CASES[::2]:
        if _empty_window(h, w, k, s, p, d, ceil_mode):
            continue
        x = g.standard_normal((1, 2, h, w)).astype(np.float32)
        for kind in ("max", "avg"):
            for cip in ((False, True) if kind == "avg" else (False,)):
                got = _pool_fn(x, kind, k, s, p, d, ceil_mode, cip)
                what = f"{kind} cip={cip} hw={h},{w} k={k} s={s} p={p} d={d} ceil={ceil_mode}"
                if kind == "max" and ceil_mode and s == (1, 1) and d == (1, 1):
                    continue  # the reference bug above: test_pool2d_vs_onnxruntime covers these
                want = onnx_pool(x, kind, k, s, p, d, ceil_mode, cip)
                assert got.shape == want.shape, what
                checked += 1
                if not ceil_mode:
                    assert_close(got, want, 1e-6, 1e-6, what)
    assert checked > 100


def test_pool2d_vs_onnxruntime():
    g = rng("pool-ort")
    for (h, w), k, s, p, d, ceil_mode in POOL_CASES[::2]:
        if _empty_window(h, w, k, s, p, d, ceil_mode):
            continue
        x = g.standard_normal((1, 2, h, w)).astype(np.float32)
        for kind in ("max", "avg"):
            for cip in ((False, True) if kind == "avg" else (False,)):
                got = _pool_fn(x, kind, k, s, p, d, ceil_mode, cip)
                want = ort_pool(x, kind, k, s, p, d, ceil_mode, cip)
                what = f"{kind} cip={cip} hw={h},{w} k={k} s={s} p={p} d={d} ceil={ceil_mode}"
                assert got.shape == want.shape, what
                assert_close(got, want, 1e-6, 1e-6, what)


def test_pool2d_big_planes_threads_and_nan():
    x = rng("pool-big").standard_normal((2, 24, 56, 57)).astype(np.float32)
    x[0, 3, 10, 10] = np.nan
    engine.set_num_threads(1)
    one = K.max_pool2d(x, 3, 2, 1)
    a1 = K.avg_pool2d(x, 3, 1, 1, count_include_pad=True)
    engine.set_num_threads(2)
    assert np.array_equal(one, K.max_pool2d(x, 3, 2, 1), equal_nan=True)
    assert np.array_equal(a1, K.avg_pool2d(x, 3, 1, 1, count_include_pad=True), equal_nan=True)
    assert np.isnan(one[0, 3, 5, 5]) and np.isnan(one[0, 3]).sum() == 1 and not np.isnan(one[0, 2]).any()
    assert_close(one, pool_ref(x, "max", (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False, False), 0, 0, "max big")


@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 5, 1, 1), (2, 4, 33), (1, 2, 3, 4, 5), (3, 17, 1000)])
def test_global_pool(isa, shape):
    x = rng("gpool", shape).standard_normal(shape).astype(np.float32)
    ax = tuple(range(2, len(shape)))
    ga = K.global_avg_pool(x)
    gm = K.global_max_pool(x)
    assert ga.shape == shape[:2] + (1,) * (len(shape) - 2) == gm.shape
    hw = int(np.prod(shape[2:]))
    ref = x.astype(np.float64).mean(axis=ax, keepdims=True)
    bound = (8 + hw / 4) * EPS32 * np.abs(x.astype(np.float64)).mean(axis=ax, keepdims=True)
    assert np.all(np.abs(ga - ref) <= bound), f"{isa} global_avg_pool {shape}"
    assert np.array_equal(gm, x.max(axis=ax, keepdims=True))


# ---------------------------------------------------------------- im2col / depthwise conv
def im2col_ref(x, k, s, p, d):
    c, h, w = x.shape
    oh = (h + p[0] + p[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    xp = np.pad(x, ((0, 0), (p[0], p[2]), (p[1], p[3])))
    cols = np.empty((c, k[0], k[1], oh, ow), np.float32)
    for a in range(k[0]):
        for b in range(k[1]):
            cols[:, a, b] = xp[:, a * d[0]:a * d[0] + s[0] * (oh - 1) + 1:s[0], b * d[1]:b * d[1] + s[1] * (ow - 1) + 1:s[1]]
    return cols.reshape(c * k[0] * k[1], oh * ow)


def onnx_conv(x, w, b, s, p, d, group):
    from onnx import TensorProto, helper
    from onnx.reference import ReferenceEvaluator
    ins = ["x", "w"] + (["b"] if b is not None else [])
    node = helper.make_node("Conv", ins, ["y"], strides=list(s), pads=list(p), dilations=list(d), group=group)
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in zip(ins, (x, w, b))]
    graph = helper.make_graph([node], "g", vi, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    feeds = dict(zip(ins, (x, w, b)))
    return ReferenceEvaluator(model).run(None, feeds)[0]


CONV_CASES = [((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
              ((5, 5), (1, 1), (2, 2, 2, 2), (1, 1)), ((5, 5), (2, 2), (2, 2, 2, 2), (1, 1)),
              ((3, 3), (1, 1), (0, 0, 0, 0), (2, 2)), ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
              ((3, 2), (3, 1), (1, 0, 2, 1), (1, 2)), ((7, 7), (1, 1), (3, 3, 3, 3), (1, 1))]


@pytest.mark.parametrize("k,s,p,d", CONV_CASES, ids=str)
def test_im2col(isa, k, s, p, d):
    g = rng("im2col", k, s, p, d)
    for hw in [(1, 1), (7, 9), (12, 13), (20, 21)]:
        if hw[0] + p[0] + p[2] < (k[0] - 1) * d[0] + 1 or hw[1] + p[1] + p[3] < (k[1] - 1) * d[1] + 1:
            continue
        x = g.standard_normal((3,) + hw).astype(np.float32)
        got = K.im2col(x, k, s, p, d)
        want = im2col_ref(x, k, s, p, d)
        assert np.array_equal(got, want), f"{isa} im2col {hw} {k} {s} {p} {d}"
        # Conv through im2col + GEMM against the ONNX reference
        wt = g.standard_normal((4, 3) + k).astype(np.float32)
        y = (wt.reshape(4, -1) @ got.astype(np.float64)).reshape((1, 4) + _out_hw(hw, k, s, p, d))
        assert_close(y, onnx_conv(x[None], wt, None, s, p, d, 1), 1e-5, 1e-5, "conv via im2col")


def _out_hw(hw, k, s, p, d):
    return tuple((hw[i] + p[i] + p[i + 2] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))


DW_ACTS = [None, "relu", ("clip", 0.0, 6.0), "hardswish", "silu"]


@pytest.mark.parametrize("k,s,p,d", CONV_CASES, ids=str)
def test_depthwise_conv2d(isa, k, s, p, d):
    g = rng("dw", k, s, p, d)
    # (64, 70): more than 4096 padded floats, a ring of padded rows instead of the whole padded plane
    for hw, act in zip([(1, 1), (7, 9), (12, 13), (20, 35), (33, 18), (64, 70)], itertools.cycle(DW_ACTS)):
        if hw[0] + p[0] + p[2] < (k[0] - 1) * d[0] + 1 or hw[1] + p[1] + p[3] < (k[1] - 1) * d[1] + 1:
            continue
        c = 5
        x = g.standard_normal((2, c) + hw).astype(np.float32)
        w = g.standard_normal((c, 1) + k).astype(np.float32)
        b = g.standard_normal(c).astype(np.float32)
        oshape = (2, c) + _out_hw(hw, k, s, p, d)
        big, out = in_canary(int(np.prod(oshape)))
        got = K.depthwise_conv2d(x, w, b, s, p, d, activation=act, out=out.reshape(oshape))
        check_canary(big, W, int(np.prod(oshape)), f"{isa} dwconv")
        z = onnx_conv(x, w, b, s, p, d, c).astype(np.float64)
        # float64 pre-activation and its error bound (taps + 2) eps (|b| + sum |w x|)
        mag = onnx_conv(np.abs(x), np.abs(w), np.abs(b), s, p, d, c).astype(np.float64)
        name = act[0] if isinstance(act, tuple) else act
        p0, p1 = (act[1], act[2]) if isinstance(act, tuple) else (None, None)
        ref = z if act is None else act_ref(z, name, *K._parse_activation(name, p0, p1)[1:])
        lip = {None: 1.0, "relu": 1.0, "clip": 1.0, "hardswish": 1.5, "silu": 1.1}[name]
        atol, rtol = tol.ACTIVATION.get(name, (0, 0)) if not tol.is_exact(name) else (0.0, 0.0)
        bound = lip * (k[0] * k[1] + 2) * EPS32 * mag * 2 + atol + rtol * np.abs(ref) + 1e-30
        err = np.abs(got - ref)
        what = f"{isa} dwconv hw={hw} k={k} s={s} p={p} d={d} act={act}"
        assert np.all(err <= bound), f"{what}: max err/bound {np.max(err / bound):.3g}"
        sc = on_scalar(K.depthwise_conv2d, x, w, b, s, p, d, activation=act)
        assert np.all(np.abs(got - sc) <= 2 * bound), what + " vs scalar"
        assert np.array_equal(K.depthwise_conv2d(x, w[:, 0], b, s, p, d, activation=act), got)



@pytest.mark.parametrize("hw,s,p", [((7, 7), 1, 1), ((14, 14), 2, 1), ((28, 28), 1, 1), ((9, 12), 2, (0, 1, 2, 0)),
                                    ((5, 31), 1, 2), ((40, 40), 1, 1)], ids=str)
def test_depthwise_channel_blocks(isa, hw, s, p):
    # channel counts around the 4-, 8- and 16-lane blocks of the channel-blocked kernels (40x40: plane by plane)
    g = rng("dw-blocks", hw, s)
    pads = p if isinstance(p, tuple) else (p,) * 4
    for c, act in zip([1, 3, 17, 37], itertools.cycle([("clip", 0.0, 6.0), "relu", None, "silu"])):
        x = g.standard_normal((2, c) + hw).astype(np.float32)
        w = g.standard_normal((c, 1, 3, 3)).astype(np.float32)
        b = g.standard_normal(c).astype(np.float32) if c != 17 else None
        oshape = (2, c) + _out_hw(hw, (3, 3), (s, s), pads, (1, 1))
        big, out = in_canary(int(np.prod(oshape)))
        got = K.depthwise_conv2d(x, w, b, s, pads, activation=act, out=out.reshape(oshape))
        check_canary(big, W, int(np.prod(oshape)), f"{isa} dwconv blocks")
        z = onnx_conv(x, w, b, (s, s), pads, (1, 1), c).astype(np.float64)
        mag = onnx_conv(np.abs(x), np.abs(w), None if b is None else np.abs(b), (s, s), pads, (1, 1), c)
        name = act[0] if isinstance(act, tuple) else act
        ref = z if act is None else act_ref(z, name, *K._parse_activation(name, *((act[1], act[2]) if name == "clip" else (None, None)))[1:])
        atol, rtol = tol.ACTIVATION.get(name, (0, 0)) if not tol.is_exact(name) else (0.0, 0.0)
        bound = 1.1 * 11 * EPS32 * mag.astype(np.float64) * 2 + atol + rtol * np.abs(ref) + 1e-30
        what = f"{isa} dwconv blocks c={c} hw={hw} s={s} p={p} act={act}"
        assert np.all(np.abs(got - ref) <= bound), f"{what}: max err/bound {np.max(np.abs(got - ref) / bound):.3g}"
        sc = on_scalar(K.depthwise_conv2d, x, w, b, s, pads, activation=act)
        assert np.all(np.abs(got - sc) <= 2 * bound), what + " vs scalar"
        engine.set_num_threads(2)
        try:  # tasks split at 16-channel blocks: every block is computed the same way on any thread
            assert np.array_equal(K.depthwise_conv2d(x, w, b, s, pads, activation=act), got), what + " 2 threads"
        finally:
            engine.set_num_threads(1)


def test_depthwise_mobilenet_plane_threads():
    g = rng("dw-big")
    x = g.standard_normal((1, 32, 56, 56)).astype(np.float32)
    w = g.standard_normal((32, 1, 3, 3)).astype(np.float32)
    engine.set_num_threads(1)
    one = K.depthwise_conv2d(x, w, None, 1, 1, activation="relu6")
    engine.set_num_threads(2)
    assert np.array_equal(one, K.depthwise_conv2d(x, w, None, 1, 1, activation="relu6"))
    ref = np.clip(onnx_conv(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 32), 0, 6)
    assert_close(one, ref, 1e-5, 1e-5, "mobilenet plane")


# ---------------------------------------------------------------- bad inputs
def test_bad_inputs():
    x = np.zeros((2, 3, 4, 5), np.float32)
    with pytest.raises(TypeError, match="float32"):
        K.activation(x.astype(np.float64), "relu")
    with pytest.raises(TypeError, match="numpy"):
        K.activation([1.0, 2.0], "relu")
    with pytest.raises(ValueError, match="unknown activation"):
        K.activation(x, "swoosh")
    with pytest.raises(ValueError, match="greater than max"):
        K.activation(x, "clip", 1.0, 0.0)
    with pytest.raises(ValueError, match="parameter"):
        K.activation(x, "relu", 1.0)
    with pytest.raises(ValueError, match="shape"):
        K.activation(x, "relu", out=np.empty((2, 3), np.float32))
    with pytest.raises(ValueError, match="read-only"):
        ro = np.empty_like(x)
        ro.flags.writeable = False
        K.activation(x, "relu", out=ro)
    with pytest.raises(ValueError, match="C-contiguous"):
        K.activation(x, "relu", out=np.empty((2, 3, 4, 10), np.float32)[..., ::2])
    with pytest.raises(TypeError, match="float32"):
        K.activation(x, "relu", out=np.empty(x.shape, np.float64))
    with pytest.raises(ValueError, match="do not broadcast"):
        K.binary(x, np.zeros(3, np.float32), "add")
    with pytest.raises(ValueError, match="unknown op"):
        K.binary(x, x, "pow")
    with pytest.raises(ValueError, match="out of range"):
        K.softmax(x, axis=4)
    with pytest.raises(ValueError, match="at least one axis"):
        K.softmax(np.array(1.0, np.float32))
    with pytest.raises(ValueError, match="broadcast"):
        K.layer_norm(x, np.ones(4, np.float32))
    with pytest.raises(ValueError, match="eps"):
        K.layer_norm(x, eps=-1.0)
    with pytest.raises(ValueError, match="4-D"):
        K.max_pool2d(x[0], 2)
    with pytest.raises(ValueError, match="kernel"):
        K.max_pool2d(x, 0)
    with pytest.raises(ValueError, match="strides"):
        K.avg_pool2d(x, 2, strides=(0, 1))
    with pytest.raises(ValueError, match="pads"):
        K.max_pool2d(x, 2, pads=(-1, 0, 0, 0))
    with pytest.raises(ValueError, match="pads"):
        K.max_pool2d(x, 2, pads=(1, 0, 0))
    with pytest.raises(ValueError, match="3-D"):
        K.im2col(x, 3)
    with pytest.raises(ValueError, match="channels"):
        K.depthwise_conv2d(x, np.zeros((4, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="bias"):
        K.depthwise_conv2d(x, np.zeros((3, 1, 3, 3), np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="activation"):
        K.depthwise_conv2d(x, np.zeros((3, 1, 3, 3), np.float32), activation=("clip", 0, 6, 7))
    with pytest.raises(ValueError, match="spatial"):
        K.global_avg_pool(np.zeros((2, 3, 0), np.float32))
    # the Cython layer refuses what the C driver would misread
    from engine._C import _kernels as _k
    with pytest.raises(ValueError, match="reach past"):
        _k.binary_f32(0, (2, 3, 4), x.reshape(-1)[:10], (12, 4, 1), x.reshape(-1), (12, 4, 1), np.empty(24, np.float32))
    with pytest.raises(ValueError, match="elements"):
        _k.pool2d_f32(0, x, np.empty(3, np.float32), 6, (4, 5, 3, 4, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="invalid argument"):
        _k.pool2d_f32(0, x, np.empty(6 * 12, np.float32), 6, (4, 5, 3, 4, 0, 2, 1, 1, 1, 1, 0, 0, 0, 0))


def test_empty_inputs():
    e = np.zeros((0, 3), np.float32)
    assert K.activation(e, "gelu").shape == (0, 3)
    assert K.binary(e, np.ones(3, np.float32), "add").shape == (0, 3)
    assert K.softmax(e).shape == (0, 3)
    assert K.layer_norm(e).shape == (0, 3)
    z = np.zeros((0, 3, 5, 5), np.float32)
    assert K.max_pool2d(z, 3).shape == (0, 3, 3, 3)
    assert K.depthwise_conv2d(z, np.ones((3, 1, 3, 3), np.float32)).shape == (0, 3, 3, 3)
    assert K.max_pool2d(np.zeros((1, 1, 2, 2), np.float32), 3).shape == (1, 1, 0, 0)


def test_out_overlapping_input_goes_through_a_temporary():
    """In place is fine; an `out` that partially overlaps an input must not see half-updated input."""
    g = rng("overlap")
    buf = g.standard_normal(1000).astype(np.float32)
    x = buf[:900].copy()
    want = K.binary(buf[:900], buf[100:], "sub")
    got = K.binary(buf[:900], buf[100:], "sub", out=buf[50:950])
    assert np.array_equal(got, want)
    buf = g.standard_normal(1000).astype(np.float32)
    x = buf[:900].copy()
    K.activation(buf[:900], "tanh", out=buf[10:910])
    assert np.array_equal(buf[10:910], K.activation(x, "tanh"))
    buf = g.standard_normal(2 * 3 * 8 * 8 + 64).astype(np.float32)
    xin = buf[:384].reshape(2, 3, 8, 8)
    want = K.max_pool2d(xin.copy(), 2, 2)
    got = K.max_pool2d(xin, 2, 2, out=buf[1:97].reshape(2, 3, 4, 4))
    assert np.array_equal(got, want)
