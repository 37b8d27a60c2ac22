"""engine.ops.reduce against onnx's reference evaluator: Reduce* in their attribute and input forms, keepdims,
noop_with_empty_axes, negative axes, empty inputs; ArgMax/ArgMin; CumSum; the Softmax family in the opset < 13
(2-D coercion) and >= 13 forms; LpNormalization; MeanVarianceNormalization; and the error paths."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto

import engine
from engine.testing import rng
from tests.ops._util import check_node, make_model, run_engine

F = np.float32
REDUCE = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
          "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]
INPUT_FROM = {"ReduceSum": 13}  # axes become an input at this version; 18 for the others


def _x(shape, dtype=F, lo=0.2, hi=2.0, key="x"):
    r = rng("reduce", key, shape, str(dtype))
    if np.dtype(dtype).kind in "iu":
        return r.integers(int(lo), int(hi) + 1, size=shape).astype(dtype)
    return r.uniform(lo, hi, size=shape).astype(dtype)


def _reduce(op, x, axes, opset, keepdims=1, noop=None, const=True, **kw):
    attrs = {"keepdims": keepdims}
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    if opset >= INPUT_FROM.get(op, 18):
        inputs = {"x": x, "axes": None if axes is None else np.array(axes, np.int64)}
        return check_node(op, inputs, opset=opset, consts=("axes",) if const else (), **attrs, **kw)
    if axes is not None:
        attrs["axes"] = list(axes)
    return check_node(op, {"x": x}, opset=opset, **attrs, **kw)


@pytest.mark.parametrize("op", REDUCE)
@pytest.mark.parametrize("opset", [11, 18])
@pytest.mark.parametrize("axes", [None, (1,), (0, 2), (-3, -1)])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_axes(op, opset, axes, keepdims):
    x = _x((3, 4, 5))
    _reduce(op, x, axes, opset, keepdims, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", REDUCE)
def test_reduce_opset13(op):
    # ReduceSum takes axes as an input from 13, the others still as an attribute until 18
    x = _x((3, 4, 5))
    _reduce(op, x, (-1,), 13, 1, rtol=1e-5, atol=1e-5)
    _reduce(op, x, (0, 2), 13, 0, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", REDUCE)
def test_reduce_dynamic_axes_and_noop(op):
    x = _x((2, 3, 4))
    _reduce(op, x, (0, -1), 18, const=False, rtol=1e-5)
    _reduce(op, x, (), 18, noop=1, rtol=1e-5)
    _reduce(op, x, (), 18, noop=0, rtol=1e-5)
    _reduce(op, x, None, 18, noop=1, rtol=1e-5)


@pytest.mark.parametrize("op", REDUCE)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_empty(op, keepdims):
    x = np.zeros((2, 0, 3), F)
    _reduce(op, x, (1,), 18, keepdims)
    _reduce(op, x, (2,), 18, keepdims)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceMean", "ReduceL1",
                                "ReduceSumSquare"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.float16, np.float64])
def test_reduce_dtypes(op, dtype):
    x = _x((3, 4), dtype, 1, 4)
    expected = None
    if op == "ReduceSumSquare" and np.dtype(dtype).kind in "iu":
        # the output keeps the input type (T -> T); onnx's reference widens integers through np.sum
        expected = [np.sum(x * x, axis=1, keepdims=True, dtype=dtype)]
    _reduce(op, x, (1,), 18, rtol=2e-3 if dtype == np.float16 else 1e-6, expected=expected)


def test_reduce_rank0_and_bool():
    _reduce("ReduceSum", np.array(2.5, F), None, 18)
    _reduce("ReduceMax", np.array([[True, False], [False, False]]), (1,), 20)
    _reduce("ReduceMin", np.array([[True, False], [True, True]]), (0,), 20)


def test_reduce_max_nan():
    _reduce("ReduceMax", np.array([[1.0, np.nan], [2.0, 3.0]], F), (1,), 18)


def test_reduce_logsumexp_large():
    x = np.array([[1000.0, 1000.0], [-1000.0, 0.0]], F)
    _reduce("ReduceLogSumExp", x, (1,), 18)
    # all -inf: log(sum(exp)) = log(0) = -inf (onnx's reference shifts by -inf and gives NaN)
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]], F)
    _reduce("ReduceLogSumExp", x, (1,), 18, expected=[np.array([[-np.inf], [0.0]], F)])


def test_reduce_bfloat16():
    x = _x((3, 4)).astype(ml_dtypes.bfloat16)
    _reduce("ReduceSum", x, (1,), 18, rtol=2e-2)
    _reduce("ReduceMean", x, (0,), 18, rtol=2e-2)


@pytest.mark.parametrize("op", ["ArgMax", "ArgMin"])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("last", [0, 1])
def test_argmax(op, axis, keepdims, last):
    x = _x((3, 4, 2), np.int32, 0, 3)  # ties on purpose
    check_node(op, {"x": x}, axis=axis, keepdims=keepdims, select_last_index=last)


@pytest.mark.parametrize("opset", [11, 12, 13])
def test_argmax_versions(opset):
    check_node("ArgMax", {"x": _x((3, 4))}, opset=opset)
    check_node("ArgMin", {"x": _x((3, 4))}, opset=opset, axis=1, keepdims=0)


@pytest.mark.parametrize("exclusive", [0, 1])
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, -1])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.float64])
def test_cumsum(exclusive, reverse, axis, dtype):
    x = _x((3, 4), dtype, 1, 9)
    check_node("CumSum", {"x": x, "axis": np.array(axis, np.int64)}, exclusive=exclusive, reverse=reverse)


def test_cumsum_const_axis_and_int32_axis():
    x = _x((2, 3, 4))
    check_node("CumSum", {"x": x, "axis": np.array(2, np.int32)}, consts=("axis",), exclusive=1)
    check_node("CumSum", {"x": np.zeros((0, 3), F), "axis": np.array(0, np.int64)})


def _softmax_2d(x, axis, kind):
    """Opset < 13 semantics: flatten to (prod(shape[:axis]), prod(shape[axis:])), act on rows."""
    axis = axis % x.ndim
    m = x.reshape(int(np.prod(x.shape[:axis])), -1).astype(np.float64)
    if kind == "Hardmax":
        y = np.zeros_like(m)
        y[np.arange(m.shape[0]), m.argmax(axis=1)] = 1
    else:
        e = np.exp(m - m.max(axis=1, keepdims=True))
        y = e / e.sum(axis=1, keepdims=True)
        if kind == "LogSoftmax":
            y = np.log(y)
    return y.reshape(x.shape).astype(x.dtype)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, None])
def test_softmax_13(op, axis):
    x = _x((2, 3, 4), lo=-3, hi=3)
    attrs = {} if axis is None else {"axis": axis}
    check_node(op, {"x": x}, opset=13, **attrs)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize("opset", [1, 11])
@pytest.mark.parametrize("axis", [0, 1, 2, -1, None])
def test_softmax_legacy_coerces_to_2d(op, opset, axis):
    # onnx's reference evaluator applies the opset-13 single-axis rule to every version, so the spec's 2-D
    # rule is checked against a float64 numpy version of it
    x = _x((2, 3, 4), lo=-3, hi=3)
    attrs = {} if axis is None else {"axis": axis}
    want = _softmax_2d(x, 1 if axis is None else axis, op)
    check_node(op, {"x": x}, opset=opset, expected=[want], rtol=1e-5, atol=1e-6, **attrs)


def test_softmax_2d_legacy_matches_reference():
    check_node("Softmax", {"x": _x((3, 5), lo=-3, hi=3)}, opset=11)


def test_softmax_dtypes_and_specials():
    check_node("Softmax", {"x": _x((3, 4), np.float16, -3, 3)}, rtol=1e-3, atol=1e-3)
    check_node("Softmax", {"x": _x((3, 4), np.float64, -3, 3)})
    check_node("Softmax", {"x": np.array([[1000.0, 0.0], [-np.inf, 0.0]], F)})
    # exact -1000 where onnx's reference takes log(softmax) and gets -inf
    check_node("LogSoftmax", {"x": np.array([[1000.0, 0.0], [-1000.0, 0.0]], F)},
               expected=[np.array([[0.0, -1000.0], [-1000.0, 0.0]], F)])
    check_node("Softmax", {"x": np.zeros((0, 3), F)})
    check_node("Hardmax", {"x": np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], F)})


@pytest.mark.parametrize("p", [1, 2])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_lp_normalization(p, axis):
    x = _x((3, 4), lo=0.1, hi=2)  # the reference's p=1 omits abs(); positive data keeps it comparable
    x[1] = 0  # zero-norm rows give 0, not NaN
    check_node("LpNormalization", {"x": x}, p=p, axis=axis)


def test_lp_normalization_p1_uses_abs():
    x = np.array([[1.0, -3.0]], F)
    got = check_node("LpNormalization", {"x": x}, p=1, axis=1, expected=[np.array([[0.25, -0.75]], F)])
    assert np.all(np.isfinite(got[0]))


@pytest.mark.parametrize("axes", [None, [0, 2, 3], [1], [2, 3], [-1]])
@pytest.mark.parametrize("opset", [9, 13])
def test_mvn(axes, opset):
    x = _x((2, 3, 4, 5), lo=-2, hi=2)
    attrs = {} if axes is None else {"axes": axes}
    check_node("MeanVarianceNormalization", {"x": x}, opset=opset, rtol=1e-4, atol=1e-5, **attrs)


# ---------------------------------------------------------------------------------------------- errors
def test_reduce_bad_axes():
    for axes, msg in [([5], "out of range"), ([1, -1], "repeat")]:
        inputs = {"x": np.ones((2, 3), F), "axes": np.array(axes, np.int64)}
        m = make_model("ReduceSum", inputs, opset=13, out_types=[(TensorProto.FLOAT, None)])
        with pytest.raises(engine.RunError, match=msg):
            run_engine(m, inputs)
        m = make_model("ReduceSum", inputs, opset=13, consts=("axes",), out_types=[(TensorProto.FLOAT, None)])
        with pytest.raises((engine.RunError, engine.UnsupportedModelError), match=msg):
            run_engine(m, {"x": inputs["x"]})
    m = make_model("ReduceMean", {"x": np.ones((2, 3), F)}, opset=18, out_types=[(TensorProto.FLOAT, None)],
                   axes=[1])
    assert any("attribute" in str(p) for p in engine.check(m))


def test_argmax_empty_axis_and_softmax_axis_errors():
    m = make_model("ArgMax", {"x": np.zeros((0, 3), F)}, out_types=[(TensorProto.INT64, None)])
    with pytest.raises(engine.RunError, match="empty"):
        run_engine(m, {"x": np.zeros((0, 3), F)})
    m = make_model("Softmax", {"x": np.ones((2, 3), F)}, out_types=[(TensorProto.FLOAT, None)], axis=4)
    with pytest.raises((engine.RunError, engine.ModelLoadError), match="axis"):
        run_engine(m, {"x": np.ones((2, 3), F)})
    m = make_model("LpNormalization", {"x": np.ones((2, 3), F)}, out_types=[(TensorProto.FLOAT, None)], p=3)
    assert any("p=3" in str(p) for p in engine.check(m))
