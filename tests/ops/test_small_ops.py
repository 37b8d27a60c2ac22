"""The small-tensor fast paths of the executor: engine._C SmallBinary/SmallUnary (float32 Add/Sub/Mul/Div, Relu,
Neg as one C loop) must be bitwise equal to numpy and hand everything else to their fallback; the cached paths of
Pad (reflect/edge/wrap as a gather), ReduceMean, Unsqueeze/Squeeze must agree with the reference evaluator on
repeated calls with changing shapes."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

import engine
from engine._C._kernels import SmallBinary, SmallUnary

_NP = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
# (shape of a, shape of b): equal shapes, scalars (0-d, size-1 of lower or equal rank), suffix rows, empty tensors
_HANDLED = [((), ()), ((3,), ()), ((), (3,)), ((1, 48), (1, 48)), ((1, 48), (48,)), ((48,), (1, 48)),
            ((2, 3, 4), (3, 4)), ((2, 3, 4), (4,)), ((1, 4, 17), (1, 1, 1)), ((1, 1, 1), (1, 4, 17)), ((0, 3), (3,)),
            ((0, 3), (0, 3)), ((1,), (0,)), ((0,), (1,)), ((1,), ()), ((), (1,)), ((5,), (1,))]
# broadcasts it leaves to numpy (through the fallback), and shapes that do not broadcast
_DELEGATED = [((2, 0), (0,)), ((2, 3), (2, 1)), ((2, 3), (1, 1, 1)), ((2, 3), (4, 3)), ((3,), (4,))]


def _fallback(log):
    def f(*args):
        log.append(args)
        return ("fallback",)
    return f


def _bits_equal(got, want):
    assert got.dtype == want.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))


@pytest.mark.parametrize("op", list(_NP))
def test_small_binary_is_numpy_bitwise(op):
    rng = np.random.default_rng(0)
    log: list = []
    sb = SmallBinary(op, _fallback(log), 1000)
    for sa, sb_ in _HANDLED:
        a = rng.standard_normal(sa).astype(np.float32)
        b = rng.standard_normal(sb_).astype(np.float32)
        if a.size > 2:
            a.reshape(-1)[:3] = [np.nan, np.inf, -0.0]
        if b.size > 1:
            b.reshape(-1)[1] = 0.0                           # x / 0
        (y,) = sb(a, b)
        assert not log, (sa, sb_)
        with np.errstate(all="ignore"):
            _bits_equal(y, _NP[op](a, b))
        assert not np.shares_memory(y, a) and not np.shares_memory(y, b)
    for _ in range(50):                                      # magnitudes across the float32 range, denormals
        a = (rng.standard_normal(37) * 10.0 ** rng.integers(-42, 38, 37)).astype(np.float32)
        b = (rng.standard_normal(37) * 10.0 ** rng.integers(-42, 38, 37)).astype(np.float32)
        with np.errstate(all="ignore"):
            _bits_equal(sb(a, b)[0], _NP[op](a, b))
    for sa, sb_ in _DELEGATED:
        log.clear()
        a, b = np.ones(sa, np.float32), np.ones(sb_, np.float32)
        assert sb(a, b) == ("fallback",) and log[0][0] is a and log[0][1] is b, (sa, sb_)


def test_small_ops_delegate_what_they_do_not_handle():
    log: list = []
    sb = SmallBinary("add", _fallback(log), 100)
    x = np.ones((4, 4), np.float32)
    for a, b in [(x[:, ::2], x[:, ::2]), (x.astype(np.float64), x.astype(np.float64)), (x.astype(">f4"), x),
                 (np.ones(200, np.float32), np.ones(200, np.float32)), (np.float32(1), x), (x, 1.0),
                 (x.astype(np.int32), x.astype(np.int32))]:
        log.clear()
        assert sb(a, b) == ("fallback",) and len(log) == 1
    su = SmallUnary("relu", _fallback(log), 100)
    for a in [x[:, ::2], x.astype(np.float16), np.ones(101, np.float32), np.float32(-1)]:
        log.clear()
        assert su(a) == ("fallback",) and len(log) == 1
    with pytest.raises(ValueError, match="unknown op"):
        SmallBinary("pow", None, 10)
    with pytest.raises(ValueError, match="unknown op"):
        SmallUnary("exp", None, 10)


@pytest.mark.parametrize("op", ["relu", "neg"])
def test_small_unary_matches_numpy(op):
    want_fn = (lambda x: np.maximum(x, np.float32(0))) if op == "relu" else np.negative
    su = SmallUnary(op, None, 1000)
    rng = np.random.default_rng(1)
    for shape in [(), (0,), (5,), (3, 4), (1, 16, 17)]:
        x = rng.standard_normal(shape).astype(np.float32)
        if x.size > 3:
            x.reshape(-1)[:4] = [np.nan, -0.0, -np.inf, np.inf]
        (y,) = su(x)
        w = want_fn(x)
        assert y.shape == w.shape and y.dtype == w.dtype and not np.shares_memory(y, x)
        np.testing.assert_array_equal(y, w)


# ------------------------------------------------------------------------------------- through a Session

def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = h.make_model(g, opset_imports=[h.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def _vi(name, elem, shape):
    return h.make_tensor_value_info(name, elem, shape)


def _check_runs(m, feeds_list, rtol=0.0, atol=0.0):
    s = engine.Session(m)
    ref = ReferenceEvaluator(m)
    for feeds in feeds_list:
        for _ in range(2):                                   # first sight, then the specialised plan
            got = s.run(feeds)
            want = ref.run(None, feeds)
            for (name, g), w in zip(got.items(), want):
                assert g.dtype == w.dtype and g.shape == w.shape, name
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_binary_chain_with_bias_scalar_and_shapes(dtype):
    elem = {np.float32: T.FLOAT, np.float64: T.DOUBLE, np.int32: T.INT32}[dtype]
    bias = numpy_helper.from_array(np.arange(1, 5, dtype=dtype), "bias")
    two = numpy_helper.from_array(np.array(2, dtype=dtype), "two")
    nodes = [h.make_node("Add", ["x", "bias"], ["a"]), h.make_node("Mul", ["a", "two"], ["m"]),
             h.make_node("Sub", ["two", "m"], ["s"]), h.make_node("Div", ["s", "y"], ["d"]),
             h.make_node("Relu", ["d"], ["r"]), h.make_node("Neg", ["r"], ["out"])]
    m = _model(nodes, [_vi("x", elem, ["N", 4]), _vi("y", elem, ["N", 1])], [_vi("out", elem, None)], [bias, two])
    rng = np.random.default_rng(2)
    feeds = []
    for n in (1, 3, 0, 600):                                 # 600 x 4 is past the C loop's size limit
        x = (rng.standard_normal((n, 4)) * 10).astype(dtype)
        y = (rng.integers(1, 5, (n, 1))).astype(dtype)
        feeds.append({"x": x, "y": y})
    _check_runs(m, feeds, rtol=1e-6)


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
def test_pad_gather_modes_across_shapes(mode):
    pads = numpy_helper.from_array(np.array([0, 2, 3, 0, 1, 4], np.int64), "pads")
    m = _model([h.make_node("Pad", ["x", "pads"], ["y"], mode=mode)], [_vi("x", T.FLOAT, [1, "H", "W"])],
               [_vi("y", T.FLOAT, None)], [pads], opset=19)
    rng = np.random.default_rng(3)
    _check_runs(m, [{"x": rng.standard_normal((1, hh, w)).astype(np.float32)} for hh, w in [(3, 5), (4, 9), (3, 5)]])
    if mode != "wrap":  # wider than the axis: numpy's repeated reflection, as the reference
        m2 = _model([h.make_node("Pad", ["x", "pads"], ["y"], mode=mode)], [_vi("x", T.FLOAT, [2, 3])],
                    [_vi("y", T.FLOAT, None)],
                    [numpy_helper.from_array(np.array([1, 5, 2, 7], np.int64), "pads")], opset=19)
        _check_runs(m2, [{"x": rng.standard_normal((2, 3)).astype(np.float32)}])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_fast_path_across_shapes(dtype, keepdims):
    elem = T.FLOAT if dtype == np.float32 else T.DOUBLE
    axes = numpy_helper.from_array(np.array([1, -1], np.int64), "axes")
    m = _model([h.make_node("ReduceMean", ["x", "axes"], ["y"], keepdims=keepdims)], [_vi("x", elem, [2, "A", "B"])],
               [_vi("y", elem, None)], [axes], opset=18)
    rng = np.random.default_rng(4)
    feeds = [{"x": rng.standard_normal((2, a, b)).astype(dtype)} for a, b in [(4, 17), (1, 1), (3, 5), (4, 17)]]
    _check_runs(m, feeds, rtol=1e-6, atol=1e-7)
    got = engine.Session(m).run({"x": np.zeros((2, 0, 3), dtype)})["y"]   # mean of nothing is NaN
    assert got.dtype == dtype and np.isnan(got).all()


def test_unsqueeze_squeeze_cached_shapes_and_errors():
    ax = numpy_helper.from_array(np.array([0, -1], np.int64), "ax")
    m = _model([h.make_node("Unsqueeze", ["x", "ax"], ["u"]), h.make_node("Squeeze", ["u", "ax"], ["y"])],
               [_vi("x", T.FLOAT, ["A", "B"])], [_vi("u", T.FLOAT, None), _vi("y", T.FLOAT, None)], [ax], opset=13)
    rng = np.random.default_rng(5)
    _check_runs(m, [{"x": rng.standard_normal(s).astype(np.float32)} for s in [(2, 3), (1, 1), (0, 4), (2, 3)]])
    sq = _model([h.make_node("Squeeze", ["x", "ax"], ["y"])], [_vi("x", T.FLOAT, ["A", "B"])],
                [_vi("y", T.FLOAT, None)], [numpy_helper.from_array(np.array([1], np.int64), "ax")], opset=13)
    s = engine.Session(sq)
    np.testing.assert_array_equal(s.run({"x": np.ones((3, 1), np.float32)})["y"], np.ones(3, np.float32))
    with pytest.raises(engine.errors.EngineError, match="is not 1"):
        s.run({"x": np.ones((3, 2), np.float32)})


@pytest.mark.parametrize("direction", ["forward", "reverse"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("layout", [0, 1])
def test_gru_small_recurrence_in_c(direction, batch, lbr, layout):
    # one direction, Y wanted, no sequence_lens: the recurrence runs in engine._C gru_steps_f32
    rng = np.random.default_rng(6)
    S, I, H = 5, 3, 4
    w = numpy_helper.from_array((rng.standard_normal((1, 3 * H, I)) * 0.5).astype(np.float32), "W")
    r = numpy_helper.from_array((rng.standard_normal((1, 3 * H, H)) * 0.5).astype(np.float32), "R")
    b = numpy_helper.from_array((rng.standard_normal((1, 6 * H)) * 0.5).astype(np.float32), "B")
    node = h.make_node("GRU", ["x", "W", "R", "B", "", "h0"], ["y", "hn"], hidden_size=H, linear_before_reset=lbr,
                       direction=direction, layout=layout)
    xs, hs = ([S, batch, I], [1, batch, H]) if layout == 0 else ([batch, S, I], [batch, 1, H])
    m = _model([node], [_vi("x", T.FLOAT, xs), _vi("h0", T.FLOAT, hs)],
               [_vi("y", T.FLOAT, None), _vi("hn", T.FLOAT, None)], [w, r, b], opset=14)
    feeds = {"x": rng.standard_normal(xs).astype(np.float32), "h0": rng.standard_normal(hs).astype(np.float32)}
    _check_runs(m, [feeds], rtol=1e-5, atol=1e-6)


def test_gru_steps_f32_checks_its_arguments():
    from engine._C._kernels import gru_steps_f32

    f = np.zeros
    ok = dict(xw=f((2, 1, 12), np.float32), y=f((2, 1, 4), np.float32), ra=f((4, 8), np.float32),
              rb=f((4, 4), np.float32), h0=f((1, 4), np.float32))
    gru_steps_f32(*ok.values(), None, 0)
    with pytest.raises(TypeError, match="float32"):
        gru_steps_f32(*dict(ok, ra=f((4, 8))).values(), None, 0)
    with pytest.raises(ValueError, match="do not fit"):
        gru_steps_f32(*dict(ok, rb=f((4, 5), np.float32)).values(), None, 0)
    with pytest.raises(ValueError, match="rb_h"):
        gru_steps_f32(*ok.values(), f(3, np.float32), 0)


def test_slice_step_views_and_fallback():
    from engine._C._kernels import SliceStep

    log: list = []
    step = SliceStep((slice(None), slice(1, 3)), 2, _fallback(log))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    (y,) = step(x, np.array([1]), np.array([3]))
    assert np.shares_memory(y, x) and y.shape == (3, 2) and not log
    np.testing.assert_array_equal(y, x[:, 1:3])
    assert step(x.reshape(12), 1, 2) == ("fallback",) and log[0][1:] == (1, 2)   # another rank: the fallback
    # through a Session: constant starts/ends/axes/steps with the rank known at load, including negative steps
    inits = [numpy_helper.from_array(np.array(v, np.int64), n) for n, v in
             [("st", [-1, 0]), ("en", [-100, 3]), ("ax", [0, -1]), ("sp", [-2, 2])]]
    m = _model([h.make_node("Slice", ["x", "st", "en", "ax", "sp"], ["y"])], [_vi("x", T.FLOAT, ["A", "B"])],
               [_vi("y", T.FLOAT, None)], inits, opset=13)
    rng = np.random.default_rng(7)
    _check_runs(m, [{"x": rng.standard_normal(s).astype(np.float32)} for s in [(5, 4), (1, 1), (0, 3), (5, 4)]])


def test_reshape_step_caches_per_shape_and_keeps_errors():
    from engine._C._kernels import ReshapeStep

    calls: list = []

    def fb(x, *rest):
        calls.append(x.shape)
        if x.shape[-1] == 5:
            raise ValueError("bad shape")
        return (x.reshape(-1),)
    step = ReshapeStep(fb)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    for _ in range(3):
        (y,) = step(x)
        assert y.shape == (6,) and np.shares_memory(y, x)
    assert calls == [(2, 3)]                                  # the fallback ran once for this shape
    for _ in range(2):
        with pytest.raises(ValueError, match="bad shape"):    # errors are never cached
            step(np.zeros((1, 5), np.float32))
    (y,) = step(x.T)                                          # a non-contiguous input: reshape copies, as numpy
    np.testing.assert_array_equal(y, x.T.reshape(-1))
    m = _model([h.make_node("Flatten", ["x"], ["y"], axis=-1)], [_vi("x", T.FLOAT, ["A", "B", "C"])],
               [_vi("y", T.FLOAT, None)], opset=13)
    rng = np.random.default_rng(8)
    _check_runs(m, [{"x": rng.standard_normal(s).astype(np.float32)} for s in [(2, 3, 4), (1, 3, 0), (2, 3, 4)]])


def test_matmul_step_strided_rows_bias_activation_and_fallback():
    from engine._C._kernels import MatMulStep
    from engine.linalg import _activation

    rng = np.random.default_rng(9)
    w = rng.standard_normal((16, 48)).astype(np.float32)
    b = rng.standard_normal(48).astype(np.float32)
    relu = _activation(("relu",))
    log: list = []
    step = MatMulStep(w, b, relu[0], relu[1], relu[2], _fallback(log))
    big = rng.standard_normal((3, 16, 17)).astype(np.float32)
    for a in [rng.standard_normal((1, 16)).astype(np.float32), rng.standard_normal((5, 16)).astype(np.float32),
              big[0, :, 3:4].reshape(1, 16),                       # a strided (1, 16) view (vad's frame slices)
              big.reshape(3 * 16, 17)[::3, :16],                   # rows of stride 3 * 17 floats
              big[1, :, 2:7].T,                                    # (5, 16) with unit stride along the rows
              np.asfortranarray(rng.standard_normal((4, 16)).astype(np.float32)),
              rng.standard_normal((2, 3, 16)).astype(np.float32)]:
        (y,) = step(a)
        assert not log and y.shape == a.shape[:-1] + (48,) and y.dtype == np.float32
        np.testing.assert_allclose(y, np.maximum(a.astype(np.float64) @ w + b, 0), rtol=1e-5, atol=1e-5)
    for a in [rng.standard_normal(16).astype(np.float32),              # rank 1
              big.transpose(0, 2, 1)[:, :, :16],                       # 3-D, not contiguous
              big[:2, 0, :16][:, ::-1],                                # a negative stride
              rng.standard_normal((4, 16)).astype(np.float64),         # another dtype
              np.zeros((0, 16), np.float32),                           # empty
              rng.standard_normal((4, 15)).astype(np.float32)]:        # K mismatch: the fallback raises the error
        log.clear()
        assert step(a, "w") == ("fallback",) and log[0][0] is a and log[0][1] == "w"
    with pytest.raises(ValueError, match="bias"):
        MatMulStep(w, b[:4], 0, 0.0, 0.0, None)
    with pytest.raises(TypeError, match="float32"):
        MatMulStep(w.astype(np.float64), None, 0, 0.0, 0.0, None)


@pytest.mark.parametrize("shape", [(1, 16), (4, 16), (2, 3, 16), (0, 16)])
def test_matmul_with_constant_weights_through_a_session(shape):
    rng = np.random.default_rng(10)
    w = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    st = numpy_helper.from_array(np.array([1], np.int64), "st")
    en = numpy_helper.from_array(np.array([17], np.int64), "en")
    ax = numpy_helper.from_array(np.array([-1], np.int64), "ax")
    # a column slice feeds the MatMul (a strided view); MatMul + Add + Relu become one FusedMatMul with passes on
    nodes = [h.make_node("Slice", ["x", "st", "en", "ax"], ["xs"]), h.make_node("MatMul", ["xs", "w"], ["m"]),
             h.make_node("Add", ["m", "b"], ["a"]), h.make_node("Relu", ["a"], ["y"]),
             h.make_node("MatMul", ["x", "w17"], ["z"])]
    w17 = numpy_helper.from_array(rng.standard_normal((17, 5)).astype(np.float32), "w17")
    m = _model(nodes, [_vi("x", T.FLOAT, list(shape[:-1]) + [17])], [_vi("y", T.FLOAT, None), _vi("z", T.FLOAT, None)],
               [w, b, st, en, ax, w17])
    x = rng.standard_normal(shape[:-1] + (17,)).astype(np.float32)
    _check_runs(m, [{"x": x}], rtol=1e-5, atol=1e-5)
    for passes in ("all", "none"):
        s = engine.Session(m, engine.SessionOptions(passes=passes))
        out = s.run({"x": x})
        ref = ReferenceEvaluator(m).run(None, {"x": x})
        np.testing.assert_allclose(out["y"], ref[0], rtol=1e-5, atol=1e-5)


def test_mean_step_accuracy_shapes_and_fallback():
    from engine._C._kernels import MeanStep

    rng = np.random.default_rng(11)
    for shape, k in [((1, 4, 17), 2), ((1, 1, 17), 1), ((3, 5), 1), ((7,), 1), ((2, 3, 4), 3)]:
        ax = tuple(range(len(shape) - k, len(shape)))
        for keepdims in (True, False):
            step = MeanStep(k, keepdims, 4096, None)
            x = (rng.standard_normal(shape) * 100 + 3).astype(np.float32)
            (y,) = step(x)
            want = x.astype(np.float64).mean(axis=ax, keepdims=keepdims)
            assert y.dtype == np.float32 and y.shape == want.shape
            np.testing.assert_allclose(y, want, rtol=2e-7, atol=1e-6)   # summed in double: float32 rounding only
    log: list = []
    step = MeanStep(1, True, 100, _fallback(log))
    x = np.ones((4, 8), np.float32)
    for a in [x[:, ::2], x.astype(np.float64), np.ones((20, 8), np.float32), np.zeros((0, 8), np.float32),
              np.float32(1)]:
        log.clear()
        assert step(a) == ("fallback",) and len(log) == 1
    with pytest.raises(ValueError, match="at least 1"):
        MeanStep(0, True, 10, None)


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
def test_small_sigmoid_tanh_within_two_ulp(op):
    su = SmallUnary(op, None, 1 << 20)
    x = np.concatenate([np.linspace(-100, 100, 20001), [0.0, -0.0, 1e-30, -1e-30, 88.7, -88.7, 103.9, -103.9]])
    x = x.astype(np.float32)
    (y,) = su(x)
    exact = 1 / (1 + np.exp(-x.astype(np.float64))) if op == "sigmoid" else np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert y.dtype == np.float32 and np.all(np.abs(y - exact) <= 2 * ulp)
    special = np.array([np.inf, -np.inf, np.nan], np.float32)
    want = {"sigmoid": [1, 0, np.nan], "tanh": [1, -1, np.nan]}[op]
    np.testing.assert_array_equal(su(special)[0], np.array(want, np.float32))
    assert np.signbit(su(np.array([-0.0], np.float32))[0][0]) == (op == "tanh")   # tanh(-0) = -0
