"""engine.ops.elementwise against onnx's reference evaluator: every op, dtypes, versions, broadcasting edge
cases (0-d, empty, size-1 dims), attribute variants and the error paths."""
from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto

import engine
from engine.testing import rng
from tests.ops._util import check_node, make_model, run_engine

F = np.float32


def _x(shape, dtype=F, lo=-3.0, hi=3.0, key="x"):
    r = rng("elementwise", key, shape, str(dtype))
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        return r.integers(max(info.min, int(lo * 10)), min(info.max, int(hi * 10)) + 1, size=shape).astype(dtype)
    if np.dtype(dtype) == np.bool_:
        return r.random(shape) < 0.5
    return r.uniform(lo, hi, size=shape).astype(dtype)


# ------------------------------------------------------------------------------------------------ unary
UNARY_ANY = ["Abs", "Neg", "Sign", "Floor", "Ceil", "Round", "Exp", "Sin", "Cos", "Tan", "Atan", "Sinh", "Cosh",
             "Asinh", "Tanh", "Erf", "Sigmoid", "Relu", "Softplus", "Softsign", "Mish", "Elu", "Selu",
             "HardSigmoid", "HardSwish", "LeakyRelu", "ThresholdedRelu", "Celu", "Gelu", "Reciprocal"]


@pytest.mark.parametrize("op", UNARY_ANY)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_unary_float(op, dtype):
    x = _x((3, 5), dtype)
    if op == "Reciprocal":
        x = np.where(np.abs(x) < 0.1, dtype(0.5), x).astype(dtype)
    tol = dict(rtol=2e-3, atol=2e-3) if dtype == np.float16 else dict(rtol=1e-5, atol=1e-6)
    check_node(op, {"x": x}, **tol)


@pytest.mark.parametrize("op,lo,hi", [("Sqrt", 0, 4), ("Log", 0.01, 4), ("Asin", -1, 1), ("Acos", -1, 1),
                                      ("Acosh", 1, 5), ("Atanh", -0.99, 0.99)])
def test_unary_domain(op, lo, hi):
    check_node(op, {"x": _x((4, 3), F, lo, hi)})


@pytest.mark.parametrize("op", ["Abs", "Neg", "Sign", "Relu"])
@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64])
def test_unary_int(op, dtype):
    check_node(op, {"x": _x((2, 7), dtype, -5, 5)})


def test_unary_specials():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e30, 88.0, -104.0], F)
    for op in ["Abs", "Sigmoid", "Tanh", "Relu", "Softplus", "Exp", "Erf", "Sign", "Round", "HardSwish",
               "Softsign", "IsNaN", "IsInf"]:
        check_node(op, {"x": x})


def test_round_half_to_even():
    check_node("Round", {"x": np.array([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, -2.5001], F)})


def test_unary_empty_and_scalar():
    for x in [np.zeros((0, 3), F), np.array(0.7, F)]:
        for op in ["Relu", "Sigmoid", "Exp", "Neg", "Gelu", "LeakyRelu"]:
            check_node(op, {"x": x})


@pytest.mark.parametrize("opset", [6, 13, 14])
def test_relu_versions(opset):
    check_node("Relu", {"x": _x((2, 3))}, opset=opset)


@pytest.mark.parametrize("alpha", [0.01, 0.0, 1.0, 2.5, -0.3])
def test_leaky_relu_alpha(alpha):
    check_node("LeakyRelu", {"x": _x((4, 4))}, alpha=alpha)
    check_node("LeakyRelu", {"x": np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], F)}, alpha=alpha)


def test_activation_attributes():
    x = _x((3, 4), lo=-4, hi=4)
    check_node("Elu", {"x": x}, alpha=0.5)
    check_node("Selu", {"x": x}, alpha=1.5, gamma=2.0)
    check_node("Celu", {"x": x}, alpha=2.0)
    check_node("ThresholdedRelu", {"x": x}, alpha=0.5)
    check_node("HardSigmoid", {"x": x}, alpha=0.3, beta=0.4)
    check_node("Gelu", {"x": x}, approximate="tanh")
    check_node("Gelu", {"x": x}, approximate="none")
    check_node("IsInf", {"x": np.array([np.inf, -np.inf, 1.0, np.nan], F)}, detect_negative=0)
    check_node("IsInf", {"x": np.array([np.inf, -np.inf, 1.0, np.nan], F)}, detect_positive=0)


def test_swish():
    x = _x((3, 4))
    check_node("Swish", {"x": x}, opset=24)
    check_node("Swish", {"x": x}, opset=24, alpha=0.5)


@pytest.mark.parametrize("shapes", [((3, 4), (4,)), ((2, 3, 4), (3, 1)), ((1, 4), (1,)), ((3, 1, 2), (1, 5, 1))])
def test_prelu_broadcast(shapes):
    check_node("PRelu", {"x": _x(shapes[0]), "slope": _x(shapes[1], key="s", lo=0, hi=1)})


def test_prelu_int_opset16():
    check_node("PRelu", {"x": _x((3, 4), np.int32), "slope": np.array([2], np.int32)}, opset=16)


def test_bfloat16_unary():
    x = _x((4, 4)).astype(ml_dtypes.bfloat16)
    for op in ["Relu", "Abs", "Exp", "Tanh", "Sigmoid", "Neg"]:
        check_node(op, {"x": x}, rtol=1e-2, atol=1e-2)


def test_not_and_bitwise_not():
    check_node("Not", {"x": _x((3, 3), np.bool_)})
    for dt in [np.int8, np.uint8, np.int32, np.uint64]:
        check_node("BitwiseNot", {"x": _x((3, 3), dt, 0, 5)})


# ------------------------------------------------------------------------------------------------ binary
BCAST = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 3, 4), (3, 1)), ((1,), (2, 3)), ((), (2, 3)), ((2, 3), ()),
         ((0, 3), (3,)), ((2, 0), (1,)), ((), ()), ((4, 1, 5), (1, 3, 1))]


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "Sum", "Mean"])
@pytest.mark.parametrize("shapes", BCAST)
def test_binary_broadcast(op, shapes):
    a = _x(shapes[0], key="a")
    b = _x(shapes[1], key="b", lo=0.5, hi=3)
    expected = None
    if op == "Mean" and np.broadcast_shapes(a.shape, b.shape) != a.shape:
        # onnx's reference Mean accumulates in place into its first input and cannot broadcast it up
        expected = [((a + b) / F(2)).astype(F)]
    check_node(op, {"a": a, "b": b}, expected=expected)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int16, np.int32, np.int64, np.uint32, np.uint64,
                                   np.float16, np.float64])
def test_arith_dtypes(op, dtype):
    a = _x((3, 4), dtype, -9, 9, key="a")
    b = _x((4,), dtype, 1, 5, key="b")
    check_node(op, {"a": a, "b": b}, rtol=1e-3 if dtype == np.float16 else 1e-6)


@pytest.mark.parametrize("opset", [7, 13, 14])
def test_add_opsets(opset):
    check_node("Add", {"a": _x((2, 3)), "b": _x((3,), key="b")}, opset=opset)


def test_div_int_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 6, -6, 0, -1, 1], np.int32)
    b = np.array([2, 2, -2, -2, 3, 4, 5, 2, -3], np.int32)
    got = check_node("Div", {"a": a, "b": b})[0]
    np.testing.assert_array_equal(got, np.array([3, -3, -3, 3, 2, -1, 0, 0, 0], np.int32))
    big = np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min + 1], np.int64)
    check_node("Div", {"a": big, "b": np.array([-3, 7], np.int64)})


@pytest.mark.parametrize("types", [(np.float32, np.int32), (np.float32, np.int64), (np.float32, np.uint32),
                                   (np.int32, np.float32), (np.int64, np.float32), (np.int32, np.int32),
                                   (np.int64, np.int64), (np.float64, np.float32), (np.float32, np.float32)])
def test_pow_mixed(types):
    a = _x((3, 4), types[0], 0, 3, key="a")
    b = _x((4,), types[1], 0, 3, key="b")
    check_node("Pow", {"a": a, "b": b}, rtol=1e-5)


@pytest.mark.parametrize("e", [2.0, 0.5, 1.0, 3.0, -1.0])
def test_pow_const_exponent(e):
    check_node("Pow", {"a": _x((3, 4), F, 0.1, 3), "b": np.array(e, F)}, consts=("b",))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64])
@pytest.mark.parametrize("fmod", [0, 1])
def test_mod_int(dtype, fmod):
    a = _x((4, 5), dtype, -9, 9, key="a")
    b = _x((5,), dtype, 1, 4, key="b")
    if np.dtype(dtype).kind == "i":
        b = b * np.array([1, -1, 1, -1, 1], dtype)
    check_node("Mod", {"a": a, "b": b}, fmod=fmod)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_mod_float(dtype):
    a = np.array([5.5, -5.5, 5.5, -5.5, 0.0, 3.0], dtype)
    b = np.array([2.0, 2.0, -2.0, -2.0, 1.5, np.inf], dtype)
    check_node("Mod", {"a": a, "b": b}, fmod=1)
    check_node("Mod", {"a": a, "b": b}, fmod=0, opset=28)


def test_mod_float_fmod0_before_28_is_unsupported():
    m = make_model("Mod", {"a": np.ones(3, F), "b": np.ones(3, F)}, opset=13,
                   out_types=[(TensorProto.FLOAT, [3])], fmod=0)
    assert any("fmod" in str(p) for p in engine.check(m))


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int8, np.int32, np.int64])
def test_bitshift(direction, dtype):
    x = _x((2, 8), dtype, -12, 12, key="a")
    bits = np.dtype(dtype).itemsize * 8
    y = np.array([0, 1, 3, bits - 1, bits, bits + 3, 2, 5], dtype)
    if np.dtype(dtype).kind == "i":
        y[6] = -1
    check_node("BitShift", {"x": x, "y": y}, opset=28, direction=direction)


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.uint64])
def test_bitwise(op, dtype):
    check_node(op, {"a": _x((2, 3, 4), dtype, 0, 9, key="a"), "b": _x((3, 1), dtype, 0, 9, key="b")})


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
def test_logical(op):
    check_node(op, {"a": _x((2, 3, 4), np.bool_, key="a"), "b": _x((4,), np.bool_, key="b")})
    check_node(op, {"a": _x((2, 3), np.bool_, key="a"), "b": np.array(True)})


@pytest.mark.parametrize("op", ["Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"])
@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64, np.uint8, np.float16])
def test_compare(op, dtype):
    a = _x((3, 4), dtype, -3, 3, key="a")
    b = _x((4,), dtype, -3, 3, key="b")
    a[0, :2] = b[:2]
    check_node(op, {"a": a, "b": b})


def test_equal_strings_and_bool():
    a = np.array([["a", "b"], ["c", "d"]], dtype=object)
    b = np.array(["a", "x"], dtype=object)
    check_node("Equal", {"a": a, "b": b})
    check_node("Equal", {"a": _x((3,), np.bool_, key="a"), "b": _x((3,), np.bool_, key="b")})


# ---------------------------------------------------------------------------------------------- variadic
@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
@pytest.mark.parametrize("n", [1, 3, 4])
def test_variadic(op, n):
    shapes = [(2, 3, 4), (3, 1), (4,), ()]
    inputs = {f"x{i}": _x(shapes[i % 4], key=f"x{i}") for i in range(n)}
    check_node(op, inputs)


@pytest.mark.parametrize("op", ["Max", "Min"])
@pytest.mark.parametrize("dtype", [np.int8, np.uint16, np.int64, np.float64])
def test_max_min_dtypes(op, dtype):
    check_node(op, {"a": _x((3, 4), dtype, key="a"), "b": _x((3, 1), dtype, key="b")})


def test_max_min_nan():
    a = np.array([1.0, np.nan, 3.0], F)
    b = np.array([np.nan, 2.0, 1.0], F)
    check_node("Max", {"a": a, "b": b})
    check_node("Min", {"a": a, "b": b})


def test_where():
    c = _x((2, 3, 4), np.bool_, key="c")
    check_node("Where", {"c": c, "x": _x((3, 4), key="x"), "y": _x((4,), key="y")})
    check_node("Where", {"c": c, "x": _x((2, 3, 4), np.int64, key="x"), "y": np.array(7, np.int64)})
    check_node("Where", {"c": np.array([True, False]), "x": np.array(["a", "b"], dtype=object),
                         "y": np.array(["c", "d"], dtype=object)})


# ---------------------------------------------------------------------------------------------- Clip
def test_clip_attribute_form():
    x = _x((3, 4), lo=-5, hi=5)
    check_node("Clip", {"x": x}, opset=6, min=-1.0, max=2.0)
    check_node("Clip", {"x": x}, opset=6, min=-1.0)
    check_node("Clip", {"x": x}, opset=6)


@pytest.mark.parametrize("opset", [11, 12, 13])
@pytest.mark.parametrize("const", [True, False])
def test_clip_input_form(opset, const):
    x = _x((3, 4), lo=-5, hi=5)
    consts = ("mn", "mx") if const else ()
    check_node("Clip", {"x": x, "mn": np.array(-1, F), "mx": np.array(2, F)}, opset=opset, consts=consts)
    check_node("Clip", {"x": x, "mn": None, "mx": np.array(2, F)}, opset=opset, consts=consts)
    check_node("Clip", {"x": x, "mn": np.array(-1, F)}, opset=opset, consts=consts)
    check_node("Clip", {"x": x}, opset=opset)
    check_node("Clip", {"x": x, "mn": np.array(2, F), "mx": np.array(-1, F)}, opset=opset, consts=consts)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.uint64, np.float16, np.float64])
def test_clip_dtypes(dtype):
    x = _x((3, 4), dtype, -9, 9)
    check_node("Clip", {"x": x, "mn": np.array(1, dtype), "mx": np.array(5, dtype)}, opset=13)
    check_node("Clip", {"x": x, "mn": np.array(1, dtype)}, opset=13, consts=("mn",))


def test_clip_nan_and_empty():
    check_node("Clip", {"x": np.array([np.nan, -3, 3], F), "mn": np.array(-1, F), "mx": np.array(1, F)})
    check_node("Clip", {"x": np.zeros((0, 2), F), "mn": np.array(-1, F), "mx": np.array(1, F)})


# ---------------------------------------------------------------------------------------------- Cast
NUM = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64,
       np.float16, np.float32, np.float64, ml_dtypes.bfloat16]


def _elem(dt):
    from engine.loader import onnx_dtype
    return onnx_dtype(np.dtype(dt))


@pytest.mark.parametrize("src", NUM)
@pytest.mark.parametrize("dst", NUM)
def test_cast_numeric_pairs(src, dst):
    x = np.array([0, 1, 2, 7, 100, 3, 0, 1], np.float64)
    if np.dtype(src).kind not in "ub":
        x = x * np.array([1, -1, 1, -1, 1, -1, 1, 1])
    if np.dtype(src).kind in "fV":
        x = x + 0.25
    x = x.astype(src)
    check_node("Cast", {"x": x}, to=_elem(dst))


F8 = [ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e4m3fnuz, ml_dtypes.float8_e5m2, ml_dtypes.float8_e5m2fnuz]


@pytest.mark.parametrize("dst", F8)
@pytest.mark.parametrize("saturate", [0, 1])
@pytest.mark.parametrize("src", [np.float32, np.float16])
def test_cast_float8(dst, saturate, src):
    x = np.array([0.0, 0.3, -1.7, 448.0, 500.0, -1e5, 60000.0, np.inf, -np.inf, np.nan, 1e-6], np.float32)
    with np.errstate(over="ignore"):
        x = x.astype(src)  # float16: 1e5 becomes inf on purpose
    check_node("Cast", {"x": x}, opset=19, to=_elem(dst), saturate=saturate)
    y = x.astype(np.float32)
    y = np.where(np.isnan(y), 0, y).astype(dst)
    check_node("Cast", {"x": y}, opset=19, to=TensorProto.FLOAT)


@pytest.mark.parametrize("round_mode", ["up", "down", "nearest"])
@pytest.mark.parametrize("saturate", [0, 1])
def test_cast_e8m0(round_mode, saturate):
    x = np.array([1.0, 1.5, 3.0, 0.3, 6.0, 1e-30, 3e38, np.inf, np.nan, 0.75], np.float32)
    check_node("Cast", {"x": x}, opset=24, to=TensorProto.FLOAT8E8M0, saturate=saturate, round_mode=round_mode)


@pytest.mark.parametrize("dst", [TensorProto.INT4, TensorProto.UINT4, TensorProto.FLOAT4E2M1])
def test_cast_small_types(dst):
    x = np.array([0.0, 1.0, 2.0, 3.0, 5.0, 6.0, 1.5, 0.5], np.float32)
    check_node("Cast", {"x": x}, opset=21, to=dst)


def test_cast_strings():
    x = np.array(["1.5", "-2", "inf", "-INF", "NaN", "1e3"], dtype=object)
    check_node("Cast", {"x": x}, to=TensorProto.FLOAT)
    check_node("Cast", {"x": x}, to=TensorProto.DOUBLE)
    check_node("Cast", {"x": np.array(["12", "-3", "0"], dtype=object)}, to=TensorProto.INT64)
    check_node("Cast", {"x": np.array([1, -2, 30], np.int32)}, to=TensorProto.STRING)
    check_node("Cast", {"x": np.array([1.5, -2.25, 0.0], F)}, to=TensorProto.STRING)


@pytest.mark.parametrize("opset", [6, 9, 13, 19, 21, 23, 24, 25])
def test_cast_versions(opset):
    check_node("Cast", {"x": _x((2, 3))}, opset=opset, to=TensorProto.INT32)
    check_node("Cast", {"x": _x((2, 3), np.int64)}, opset=opset, to=TensorProto.FLOAT16)


def test_cast_empty_scalar():
    check_node("Cast", {"x": np.zeros((0, 4), F)}, to=TensorProto.INT64)
    check_node("Cast", {"x": np.array(2.5, F)}, to=TensorProto.DOUBLE)


@pytest.mark.parametrize("dst", [np.float16, np.int8, np.float64, ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn])
def test_castlike(dst):
    x = _x((3, 4), lo=-100, hi=100)
    check_node("CastLike", {"x": x, "like": np.zeros((1,), dst)})
    check_node("CastLike", {"x": x, "like": np.zeros((1,), dst)}, opset=19, saturate=0)


# ---------------------------------------------------------------------------------------------- errors
def _problems(op, inputs, opset=None, **attrs):
    m = make_model(op, inputs, opset=opset, out_types=[(TensorProto.FLOAT, None)], **attrs)
    return [str(p) for p in engine.check(m)]


def test_unsupported_attributes_are_reported():
    x = {"x": np.ones((2, 2), F)}
    assert any("approximate" in p for p in _problems("Gelu", x, approximate="fast"))
    assert any("data type" in p for p in _problems("Cast", x, to=12345))
    assert any("round_mode" in p for p in _problems("Cast", x, opset=24, to=TensorProto.FLOAT8E8M0,
                                                    round_mode="sideways"))
    assert any("direction" in p for p in _problems("BitShift", {"x": np.ones(2, np.uint8),
                                                                "y": np.ones(2, np.uint8)}, direction="UP"))
    assert any("broadcast" in p for p in _problems("Add", {"a": np.ones((2, 3), F), "b": np.ones(3, F)},
                                                   opset=6, broadcast=1))
    assert any("floating-point" in p for p in _problems("Sqrt", {"x": np.ones(2, np.int32)}))


def test_runtime_errors_are_clear():
    m = make_model("Clip", {"x": np.ones((2, 2), F), "mn": np.ones((2,), F)}, opset=13,
                   out_types=[(TensorProto.FLOAT, [2, 2])])
    with pytest.raises(engine.RunError, match="scalar"):
        run_engine(m, {"x": np.ones((2, 2), F), "mn": np.ones((2,), F)})
    m = make_model("Add", {"a": np.ones((2, 3), F), "b": np.ones((4,), F)},
                   out_types=[(TensorProto.FLOAT, None)])
    with pytest.raises((engine.RunError, engine.ModelLoadError, engine.InvalidInputError)):
        run_engine(m, {"a": np.ones((2, 3), F), "b": np.ones((4,), F)})


def test_numpy_erf_fallback_matches_math_erf():
    # the scipy-free erf engine uses when scipy is absent
    import math

    from engine.ops.elementwise import _erf_numpy

    x = np.concatenate([np.linspace(-7, 7, 4001), np.geomspace(1e-300, 1, 50), -np.geomspace(1e-10, 6, 50)])
    want = np.array([math.erf(v) for v in x])
    got = _erf_numpy(x)
    np.testing.assert_allclose(got, want, rtol=2e-15, atol=0)
    assert got.dtype == np.float64
    x32 = x.astype(F)
    g32 = _erf_numpy(x32)
    assert g32.dtype == F
    np.testing.assert_allclose(g32, np.array([math.erf(v) for v in x32.astype(np.float64)]).astype(F), rtol=1e-7,
                               atol=1e-45)
    sp = _erf_numpy(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0]))
    np.testing.assert_array_equal(sp[1:], [1.0, -1.0, 0.0, -0.0])
    assert np.isnan(sp[0]) and np.signbit(sp[4])


@pytest.mark.parametrize("op,attrs", [("Gelu", {}), ("Gelu", {"approximate": "tanh"}), ("Mish", {}),
                                      ("Softplus", {}), ("HardSwish", {}), ("Elu", {}), ("Selu", {}),
                                      ("LeakyRelu", {}), ("Softsign", {}), ("HardSigmoid", {}), ("Celu", {}),
                                      ("ThresholdedRelu", {}), ("Erf", {}), ("Round", {}), ("IsNaN", {})])
def test_bfloat16_activations(op, attrs):
    check_node(op, {"x": _x((3, 4)).astype(ml_dtypes.bfloat16)}, rtol=2e-2, atol=2e-2, **attrs)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_without_scipy(monkeypatch, dtype):
    import engine.ops.elementwise as ew

    monkeypatch.setattr(ew, "_scipy_erf", None)
    monkeypatch.setattr(ew, "_expit", None)
    x = _x((4, 5), dtype, -6, 6)
    x[0, :3] = [np.nan, np.inf, -np.inf]
    tol = dict(rtol=2e-3, atol=2e-3) if dtype == np.float16 else dict(rtol=1e-6, atol=1e-7)
    for op in ["Erf", "Gelu", "Sigmoid"]:
        check_node(op, {"x": x}, **tol)
    check_node("Swish", {"x": x}, opset=24, **tol)


@pytest.mark.parametrize("op,attrs", [("Gelu", {}), ("Gelu", {"approximate": "tanh"}), ("Mish", {}),
                                      ("Softplus", {}), ("HardSwish", {}), ("Elu", {}), ("Selu", {}),
                                      ("HardSigmoid", {}), ("Celu", {}), ("ThresholdedRelu", {}), ("Erf", {}),
                                      ("IsInf", {}), ("Cast", {"to": TensorProto.INT64}),
                                      ("Cast", {"to": TensorProto.FLOAT8E4M3FN})])
def test_rank0_inputs(op, attrs):
    check_node(op, {"x": np.array(0.7, F)}, **attrs)
    check_node(op, {"x": np.array(-1.3, F)}, **attrs)


def test_rank0_where_reference_fails():
    # onnx's reference evaluator rejects 0-d inputs for these; engine keeps the 0-d shape
    x = np.array(-3.0, F)
    check_node("Softsign", {"x": x}, expected=[np.array(-0.75, F)])
    check_node("Cast", {"x": np.array(3.0, F)}, opset=24, to=TensorProto.FLOAT8E8M0,
               expected=[np.array(4.0, F).astype(ml_dtypes.float8_e8m0fnu)])
    for op in ["Div", "Mod", "Pow", "BitShift"]:
        attrs = {"direction": "LEFT"} if op == "BitShift" else {}
        check_node(op, {"a": np.array(-7 if op != "BitShift" else 5, np.int32), "b": np.array(2, np.int32)},
                   **attrs)


def test_cast_bad_string_is_a_clear_error():
    m = make_model("Cast", {"x": np.array(["1.5", "abc"], dtype=object)}, out_types=[(TensorProto.FLOAT, [2])],
                   to=TensorProto.FLOAT)
    with pytest.raises(engine.RunError, match="string"):
        run_engine(m, {"x": np.array(["1.5", "abc"], dtype=object)})


def test_cast_1_names_the_type():
    x = np.array([1.5, -2.5, 7.0], F)
    m = make_model("Cast", {"x": x}, opset=1, out_types=[(TensorProto.INT32, [3])], to="INT32")
    got = run_engine(m, {"x": x})[0]
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, [1, -2, 7])
    m = make_model("Cast", {"x": x}, opset=1, out_types=[(TensorProto.INT32, [3])], to="NOT_A_TYPE")
    assert any("NOT_A_TYPE" in str(p) for p in engine.check(m))
