"""Quantization ops on single-node models, against onnx.reference.ReferenceEvaluator (bit-exact for integer
outputs), plus the cases where the reference is not the spec (per-row zero points of MatMulInteger: an explicit
int64 formula) and the error paths."""
from __future__ import annotations

import zlib

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import engine
from engine.errors import RunError, UnsupportedModelError


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def _model(op, inputs: list, consts: dict, attrs=None, opset=21, n_out=1, out_types=None):
    """`inputs`: list of (name, array or None); names in `consts` become initializers, None -> absent input."""
    names = [n if a is not None else "" for n, a in inputs]
    while names and names[-1] == "":
        names.pop()
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, **(attrs or {}))
    g_in = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in inputs if a is not None and n not in consts]
    g_out = [helper.make_tensor_value_info(o, (out_types or [TensorProto.UNDEFINED] * n_out)[i], None)
             for i, o in enumerate(outs)]
    inits = [numpy_helper.from_array(consts[n], n) for n, a in inputs if a is not None and n in consts]
    m = helper.make_model(helper.make_graph([node], "g", g_in, g_out, inits),
                          opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 10
    return m


def _check(op, inputs, attrs=None, opset=21, const=(), n_out=1, exact=True, expected=None):
    consts = {n: a for n, a in inputs if n in const and a is not None}
    feeds = {n: a for n, a in inputs if a is not None and n not in consts}
    m = _model(op, inputs, consts, attrs, opset, n_out)
    got = engine.Session(m.SerializeToString()).run(feeds)
    exp = expected if expected is not None else ReferenceEvaluator(m).run(None, feeds)
    for i, e in enumerate(exp):
        g = got[f"y{i}"]
        e = np.asarray(e)
        assert g.dtype == e.dtype, (i, g.dtype, e.dtype)
        assert g.shape == e.shape, (i, g.shape, e.shape)
        if exact:
            np.testing.assert_array_equal(g.astype(np.float64), e.astype(np.float64))
        else:
            np.testing.assert_allclose(g.astype(np.float64), e.astype(np.float64), rtol=1e-6, atol=1e-6)
    return got


def _ties(n, key):
    """Values whose quotient by 0.5 lands on exact halves (ties), integers and out-of-range values."""
    r = _rng("ties", n, key)
    base = r.integers(-300, 300, n) * 0.25          # multiples of 0.25: x / 0.5 = k / 2, half of them ties
    return base.astype(np.float32)


# ---------------------------------------------------------------------------------------------------------
# QuantizeLinear


@pytest.mark.parametrize("zp_dtype", [np.uint8, np.int8, np.uint16, np.int16, ml_dtypes.uint4, ml_dtypes.int4,
                                      ml_dtypes.uint2, ml_dtypes.int2])
def test_quantize_per_tensor_ties_and_saturation(zp_dtype):
    x = _ties(64, str(zp_dtype)).reshape(4, 16)
    zp = np.array(1 if np.dtype(zp_dtype).name.startswith("u") else -1, zp_dtype)
    _check("QuantizeLinear", [("x", x), ("s", np.array(0.5, np.float32)), ("zp", zp)], opset=25)


@pytest.mark.parametrize("opset", [10, 13, 19])
def test_quantize_old_opsets(opset):
    x = _ties(24, opset).reshape(2, 3, 4)
    _check("QuantizeLinear", [("x", x), ("s", np.array(0.5, np.float32)), ("zp", np.array(3, np.uint8))],
           opset=opset)


def test_quantize_no_zero_point_defaults_to_uint8():
    _check("QuantizeLinear", [("x", _ties(12, "nozp")), ("s", np.array(0.5, np.float32))], opset=13)


def test_quantize_output_dtype_without_zero_point():
    _check("QuantizeLinear", [("x", _ties(12, "od")), ("s", np.array(0.5, np.float32))],
           attrs={"output_dtype": TensorProto.INT16}, opset=21)


@pytest.mark.parametrize("axis", [1, -1, 0])
def test_quantize_per_axis(axis):
    x = _ties(60, axis).reshape(3, 4, 5)
    n = x.shape[axis]
    s = (np.arange(n, dtype=np.float32) + 1) * 0.25
    zp = np.arange(n, dtype=np.int8) - 2
    _check("QuantizeLinear", [("x", x), ("s", s), ("zp", zp)], attrs={"axis": axis}, opset=13, const=("s", "zp"))


@pytest.mark.parametrize("block,shape_s", [(2, (3, 2)), (3, (3, 2))])   # 4 along axis 1: 3 -> remainder block
def test_quantize_blocked(block, shape_s):
    x = _ties(12, block).reshape(3, 4)
    r = _rng("blk", block)
    s = r.uniform(0.2, 1.0, shape_s).astype(np.float32)
    zp = r.integers(-3, 3, shape_s).astype(np.int8)
    _check("QuantizeLinear", [("x", x), ("s", s), ("zp", zp)], attrs={"axis": 1, "block_size": block}, opset=21)


def test_quantize_int32_and_float16_inputs():
    x = np.arange(-20, 20, dtype=np.int32)
    _check("QuantizeLinear", [("x", x), ("s", np.array(4.0, np.float32)), ("zp", np.array(2, np.int8))], opset=21)
    xh = _ties(20, "f16").astype(np.float16)
    _check("QuantizeLinear", [("x", xh), ("s", np.array(0.5, np.float16)), ("zp", np.array(2, np.uint8))], opset=21)


@pytest.mark.parametrize("dt", [ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.float8_e4m3fnuz,
                                ml_dtypes.float8_e5m2fnuz])
@pytest.mark.parametrize("saturate", [0, 1])
def test_quantize_float8(dt, saturate):
    x = np.array([0.0, 1.0, -1.5, 3.1, 1e6, -1e6, 448.0, 500.0, 57344.0, 1e-3, np.inf, -np.inf, np.nan],
                 np.float32)
    _check("QuantizeLinear", [("x", x), ("s", np.array(2.0, np.float32)), ("zp", np.zeros((), dt))],
           attrs={"saturate": saturate}, opset=21)


def test_quantize_float4():
    x = np.array([0.0, 0.4, 0.75, -1.3, 2.6, 5.1, 100.0, -100.0], np.float32)
    _check("QuantizeLinear", [("x", x), ("s", np.array(1.0, np.float32)),
                              ("zp", np.zeros((), ml_dtypes.float4_e2m1fn))], opset=23)


def test_quantize_precision_attribute():
    x = np.array([1.0, 2.0, 3.0, 1000.3], np.float32)
    _check("QuantizeLinear", [("x", x), ("s", np.array(0.1, np.float32)), ("zp", np.array(0, np.int16))],
           attrs={"precision": TensorProto.FLOAT16}, opset=23)


def test_quantize_empty():
    x = np.zeros((0, 3), np.float32)
    _check("QuantizeLinear", [("x", x), ("s", np.array(0.5, np.float32)), ("zp", np.array(1, np.uint8))], opset=13)


def test_quantize_bad_per_axis_scale_raises():
    x = np.ones((2, 3), np.float32)
    m = _model("QuantizeLinear", [("x", x), ("s", np.ones(4, np.float32))], {}, {"axis": 1}, 13)
    with pytest.raises(RunError, match="per-axis"):
        engine.Session(m.SerializeToString()).run({"x": x, "s": np.ones(4, np.float32)})


def test_quantize_output_dtype_conflict_is_unsupported():
    x = np.ones((2, 3), np.float32)
    m = _model("QuantizeLinear", [("x", x), ("s", np.array(1.0, np.float32)), ("zp", np.array(0, np.uint8))],
               {"s": np.array(1.0, np.float32), "zp": np.array(0, np.uint8)}, {"output_dtype": TensorProto.INT8}, 21)
    with pytest.raises(UnsupportedModelError, match="output_dtype"):
        engine.Session(m.SerializeToString())


# ---------------------------------------------------------------------------------------------------------
# DequantizeLinear


@pytest.mark.parametrize("dt", [np.uint8, np.int8, np.int16, np.uint16, ml_dtypes.int4, ml_dtypes.uint4])
def test_dequantize_per_axis(dt):
    r = _rng("dq", str(dt))
    info = ml_dtypes.iinfo(dt)
    x = r.integers(info.min, info.max + 1, (3, 4)).astype(dt)
    zp = r.integers(info.min, info.max + 1, 4).astype(dt)
    s = r.uniform(0.1, 2, 4).astype(np.float32)
    _check("DequantizeLinear", [("x", x), ("s", s), ("zp", zp)], attrs={"axis": -1}, opset=21, exact=False)


@pytest.mark.parametrize("opset", [10, 13])
def test_dequantize_old_opsets_and_int32(opset):
    # the reference has no DequantizeLinear before opset 19: the spec's formula, (x - zero_point) * scale
    x = np.arange(-10, 10, dtype=np.int32).reshape(4, 5)
    _check("DequantizeLinear", [("x", x), ("s", np.array(0.25, np.float32))], opset=opset,
           expected=[x.astype(np.float32) * np.float32(0.25)])
    xu = np.arange(20, dtype=np.uint8).reshape(4, 5)
    _check("DequantizeLinear", [("x", xu), ("s", np.array(0.25, np.float32)), ("zp", np.array(7, np.uint8))],
           opset=opset, expected=[(xu.astype(np.float32) - 7) * np.float32(0.25)])
    if opset == 13:
        s = np.array([0.5, 1.0, 2.0, 4.0], np.float32)
        _check("DequantizeLinear", [("x", xu), ("s", s), ("zp", np.array([1, 2, 3, 4], np.uint8))],
               attrs={"axis": 0}, opset=opset,
               expected=[(xu.astype(np.float32) - np.array([[1], [2], [3], [4]], np.float32)) * s[:, None]])


def test_dequantize_blocked_float16_scale():
    r = _rng("dqb")
    x = r.integers(-128, 128, (2, 5)).astype(np.int8)
    s = r.uniform(0.1, 1, (2, 2)).astype(np.float16)
    zp = r.integers(-5, 5, (2, 2)).astype(np.int8)
    _check("DequantizeLinear", [("x", x), ("s", s), ("zp", zp)], attrs={"axis": 1, "block_size": 3}, opset=21,
           exact=False)


def test_dequantize_output_dtype():
    x = np.arange(10, dtype=np.uint8)
    _check("DequantizeLinear", [("x", x), ("s", np.array(0.5, np.float32))],
           attrs={"output_dtype": TensorProto.FLOAT16}, opset=23, exact=False)


def test_dequantize_float8():
    x = np.array([0.0, 1.5, -448.0, 3.25], np.float32).astype(ml_dtypes.float8_e4m3fn)
    _check("DequantizeLinear", [("x", x), ("s", np.array(2.0, np.float32))], opset=21, exact=False)


def test_dequantize_zero_point_type_mismatch_raises():
    x = np.arange(4, dtype=np.uint8)
    zp = np.array(1, np.int8)
    m = _model("DequantizeLinear", [("x", x), ("s", np.array(1.0, np.float32)), ("zp", zp)], {}, None, 21)
    with pytest.raises(RunError, match="x_zero_point has type"):
        engine.Session(m.SerializeToString()).run({"x": x, "s": np.array(1.0, np.float32), "zp": zp})


# ---------------------------------------------------------------------------------------------------------
# DynamicQuantizeLinear


@pytest.mark.parametrize("kind", ["mixed", "positive", "negative", "zeros", "ties"])
def test_dynamic_quantize(kind):
    r = _rng("dyn", kind)
    x = {"mixed": r.standard_normal((3, 7)), "positive": r.uniform(1, 5, (10,)),
         "negative": -r.uniform(1, 5, (2, 5)), "zeros": np.zeros((4,)),
         "ties": np.array([0.0, 2.55, 5.1, 1.275, -2.55])}[kind].astype(np.float32)
    _check("DynamicQuantizeLinear", [("x", x)], opset=11, n_out=3)


# ---------------------------------------------------------------------------------------------------------
# MatMulInteger / QLinearMatMul


@pytest.mark.parametrize("shapes", [((3, 5), (5, 4)), ((2, 3, 5), (5, 4)), ((2, 1, 3, 5), (3, 5, 2)),
                                    ((5,), (5, 4)), ((3, 5), (5,))])
@pytest.mark.parametrize("types", [(np.uint8, np.int8), (np.int8, np.uint8), (np.uint8, np.uint8)])
def test_matmul_integer(shapes, types):
    r = _rng("mmi", shapes, str(types))
    a = r.integers(np.iinfo(types[0]).min, np.iinfo(types[0]).max + 1, shapes[0]).astype(types[0])
    b = r.integers(np.iinfo(types[1]).min, np.iinfo(types[1]).max + 1, shapes[1]).astype(types[1])
    azp = np.array(r.integers(0, 20), types[0])
    bzp = np.array(r.integers(0, 20), types[1])
    _check("MatMulInteger", [("a", a), ("b", b), ("azp", azp), ("bzp", bzp)], opset=10, const=("b", "bzp"))
    _check("MatMulInteger", [("a", a), ("b", b)], opset=10)


def test_matmul_integer_per_row_and_per_column_zero_points():
    r = _rng("mmi-rows")
    a = r.integers(0, 256, (3, 6)).astype(np.uint8)
    b = r.integers(-128, 128, (6, 4)).astype(np.int8)
    azp = r.integers(0, 256, 3).astype(np.uint8)
    bzp = r.integers(-128, 128, 4).astype(np.int8)
    want = (a.astype(np.int64) - azp.astype(np.int64)[:, None]) @ (b.astype(np.int64) - bzp.astype(np.int64))
    _check("MatMulInteger", [("a", a), ("b", b), ("azp", azp), ("bzp", bzp)], opset=10,
           expected=[want.astype(np.int32)])


def test_matmul_integer_mismatch_raises():
    a = np.ones((2, 3), np.uint8)
    b = np.ones((4, 2), np.uint8)
    m = _model("MatMulInteger", [("a", a), ("b", b)], {}, None, 10)
    with pytest.raises(Exception, match="do not match|MatMulInteger"):
        engine.Session(m.SerializeToString()).run({"a": a, "b": b})


@pytest.mark.parametrize("opset", [10, 21])
@pytest.mark.parametrize("types", [(np.uint8, np.uint8, np.uint8), (np.int8, np.int8, np.int8),
                                   (np.uint8, np.int8, np.int8)])
@pytest.mark.parametrize("per_col", [False, True])
def test_qlinear_matmul(opset, types, per_col):
    r = _rng("qmm", opset, str(types), per_col)
    ta, tb, ty = types
    a = r.integers(np.iinfo(ta).min, np.iinfo(ta).max + 1, (2, 3, 8)).astype(ta)
    b = r.integers(np.iinfo(tb).min, np.iinfo(tb).max + 1, (8, 5)).astype(tb)
    bs = (r.uniform(0.001, 0.01, 5) if per_col else np.array(0.004)).astype(np.float32)
    bzp = (r.integers(0, 10, 5) if per_col else np.array(3)).astype(tb)
    ins = [("a", a), ("as", np.array(0.02, np.float32)), ("azp", np.array(5, ta)), ("b", b), ("bs", bs),
           ("bzp", bzp), ("ys", np.array(0.05, np.float32)), ("yzp", np.array(2, ty))]
    _check("QLinearMatMul", ins, opset=opset, const=("b", "bs", "bzp"))


# ---------------------------------------------------------------------------------------------------------
# ConvInteger / QLinearConv


@pytest.mark.parametrize("cfg", [
    dict(x=(1, 2, 6, 6), w=(3, 2, 3, 3), attrs={}),
    dict(x=(2, 4, 7, 5), w=(6, 2, 3, 2), attrs={"group": 2, "pads": [1, 0, 2, 1], "strides": [2, 1]}),
    dict(x=(1, 3, 9, 8), w=(4, 3, 3, 3), attrs={"dilations": [2, 1], "auto_pad": "SAME_UPPER"}),
    dict(x=(1, 3, 8, 8), w=(4, 3, 2, 2), attrs={"strides": [2, 2], "auto_pad": "SAME_LOWER"}),
    dict(x=(2, 2, 10), w=(3, 2, 3), attrs={"pads": [2, 1], "strides": [3]}),
    dict(x=(1, 2, 4, 4, 3), w=(2, 2, 2, 2, 2), attrs={"auto_pad": "VALID"}),
])
@pytest.mark.parametrize("per_channel", [False, True])
def test_conv_integer(cfg, per_channel):
    r = _rng("convi", str(cfg), per_channel)
    x = r.integers(0, 256, cfg["x"]).astype(np.uint8)
    w = r.integers(0, 256, cfg["w"]).astype(np.uint8)
    M = cfg["w"][0]
    wzp = (r.integers(0, 256, M) if per_channel else np.array(r.integers(0, 256))).astype(np.uint8)
    xzp = np.array(r.integers(0, 256), np.uint8)
    ins = [("x", x), ("w", w), ("xzp", xzp), ("wzp", wzp)]
    expected = None
    if per_channel and len(cfg["x"]) != 4 and cfg["attrs"].get("group", 1) == 1:
        # the reference expands a per-channel w_zero_point for 2-D convolutions only: run it one output channel
        # at a time (a per-tensor zero point each) and stack
        parts = []
        for m in range(M):
            mm = _model("ConvInteger", [("x", x), ("w", w[m:m + 1]), ("xzp", xzp), ("wzp", wzp[m])], {},
                        cfg["attrs"], 10)
            parts.append(ReferenceEvaluator(mm).run(None, {"x": x, "w": w[m:m + 1], "xzp": xzp, "wzp": wzp[m]})[0])
        expected = [np.concatenate(parts, axis=1)]
    _check("ConvInteger", ins, attrs=cfg["attrs"], opset=10, const=("w", "wzp"), expected=expected)


@pytest.mark.parametrize("cfg", [
    dict(x=(1, 2, 6, 6), w=(3, 2, 3, 3), attrs={"pads": [1, 1, 1, 1]}),
    dict(x=(2, 4, 7, 5), w=(6, 2, 3, 2), attrs={"group": 2, "strides": [2, 1]}),
    dict(x=(1, 4, 6, 6), w=(4, 1, 3, 3), attrs={"group": 4, "auto_pad": "SAME_UPPER"}),   # depthwise
])
@pytest.mark.parametrize("types", [(np.uint8, np.uint8, np.uint8), (np.int8, np.int8, np.int8),
                                   (np.uint8, np.int8, np.uint8)])
@pytest.mark.parametrize("per_channel,bias", [(False, False), (True, True)])
def test_qlinear_conv(cfg, types, per_channel, bias):
    r = _rng("qconv", str(cfg), str(types), per_channel)
    tx, tw, ty = types
    x = r.integers(np.iinfo(tx).min, np.iinfo(tx).max + 1, cfg["x"]).astype(tx)
    w = r.integers(np.iinfo(tw).min, np.iinfo(tw).max + 1, cfg["w"]).astype(tw)
    M = cfg["w"][0]
    ws = (r.uniform(0.001, 0.01, M) if per_channel else np.array(0.004)).astype(np.float32)
    wzp = (np.zeros(M) if per_channel else np.array(r.integers(0, 5))).astype(tw)
    ins = [("x", x), ("xs", np.array(0.03, np.float32)), ("xzp", np.array(r.integers(0, 10), tx)), ("w", w),
           ("ws", ws), ("wzp", wzp), ("ys", np.array(0.2, np.float32)), ("yzp", np.array(4, ty)),
           ("B", r.integers(-500, 500, M).astype(np.int32) if bias else None)]
    _check("QLinearConv", ins, attrs=cfg["attrs"], opset=10, const=("w", "ws", "wzp", "B"))


def test_qlinear_conv_bad_bias_raises():
    x = np.ones((1, 1, 3, 3), np.uint8)
    w = np.ones((2, 1, 1, 1), np.uint8)
    one = np.array(1.0, np.float32)
    z = np.array(0, np.uint8)
    ins = [("x", x), ("xs", one), ("xzp", z), ("w", w), ("ws", one), ("wzp", z), ("ys", one), ("yzp", z),
           ("B", np.zeros(3, np.int32))]
    m = _model("QLinearConv", ins, {}, None, 10)
    with pytest.raises(RunError, match="B must be int32"):
        engine.Session(m.SerializeToString()).run({n: a for n, a in ins})


def test_conv_integer_channel_mismatch_raises():
    x = np.ones((1, 3, 4, 4), np.uint8)
    w = np.ones((2, 2, 3, 3), np.uint8)
    m = _model("ConvInteger", [("x", x), ("w", w)], {}, None, 10)
    with pytest.raises(RunError, match="channels"):
        engine.Session(m.SerializeToString()).run({"x": x, "w": w})


def test_float8_e8m0_scales():
    x = np.array([1.0, 2.5, -3.0, 100.0, 7.0], np.float32)
    _check("QuantizeLinear", [("x", x), ("s", np.array(2.0, ml_dtypes.float8_e8m0fnu)), ("zp", np.array(0, np.int8))],
           opset=25)
    xd = np.array([1, 2, -3, 100], np.int8)
    _check("DequantizeLinear", [("x", xd), ("s", np.array(0.5, ml_dtypes.float8_e8m0fnu))],
           attrs={"output_dtype": TensorProto.FLOAT}, opset=25, exact=False)


def test_qlinear_matmul_float8():
    # the reference handles integer types only: the spec's formula, saturating into float8e4m3fn
    r = _rng("qmm-f8")
    f8 = ml_dtypes.float8_e4m3fn
    a = (r.standard_normal((3, 4)) * 4).astype(f8)
    b = (r.standard_normal((4, 2)) * 4).astype(f8)
    one = np.array(1.0, np.float32)
    ys = np.array(0.05, np.float32)
    want = (a.astype(np.float64) @ b.astype(np.float64)) / np.float64(ys)
    want = np.clip(want, -448, 448).astype(np.float32).astype(f8)
    _check("QLinearMatMul", [("a", a), ("as", one), ("azp", np.zeros((), f8)), ("b", b), ("bs", one),
                             ("bzp", np.zeros((), f8)), ("ys", ys), ("yzp", np.zeros((), f8))], opset=21,
           expected=[want])


def test_matmul_integer_long_k_is_exact():
    # |a| * |b| up to 255 * 255 with K = 700: float32 partial sums would pass 2**24, so K is split into chunks
    r = _rng("long-k")
    a = r.integers(200, 256, (2, 3, 700)).astype(np.uint8)
    b = r.integers(200, 256, (700, 5)).astype(np.uint8)
    _check("MatMulInteger", [("a", a), ("b", b)], opset=10)
    want = a.astype(np.int64) @ b.astype(np.int64)
    assert want.max() > 2 ** 24
    x = r.integers(0, 256, (1, 80, 3, 3)).astype(np.uint8)
    w = r.integers(0, 256, (2, 80, 3, 3)).astype(np.uint8)
    _check("ConvInteger", [("x", x), ("w", w)], opset=10)


def test_quantize_scalar_input():
    # a 0-d division gives a numpy scalar: the op must still return a 0-d array of the right type
    _check("QuantizeLinear", [("x", np.array(2.5, np.float32)), ("s", np.array(1.0, np.float32)),
                              ("zp", np.array(3, np.int8))], opset=13)
    _check("QuantizeLinear", [("x", np.array(-2.5, np.float32)), ("s", np.array(1.0, np.float32))], opset=13)
