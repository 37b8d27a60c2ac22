"""engine.ops.tensor against onnx.reference.ReferenceEvaluator: single-node models over the attribute/input
forms of every opset (attribute-era and input-era variants), negative axes, empty tensors and dtypes the
conformance cases miss; constant inputs (initializers, precomputed in the builder) and dynamic inputs both;
and the error paths (a clear exception, never a crash)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import engine
from engine.errors import UnsupportedModelError

RNG = np.random.default_rng(1234)


def _model(op, inputs, n_out, attrs, opset, consts, domain=""):
    names = [("" if v is None else k) for k, v in inputs.items()]
    outs = [f"y{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, domain=domain, **attrs)
    g_in, inits, feeds = [], [], {}
    for k, v in inputs.items():
        if v is None:
            continue
        v = np.asarray(v)
        if k in consts:
            inits.append(numpy_helper.from_array(v, k))
        else:
            g_in.append(helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape))
            feeds[k] = v
    g_out = [helper.make_value_info(o, onnx.TypeProto()) for o in outs]
    graph = helper.make_graph([node], "t", g_in, g_out, initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8 if opset < 21 else 10
    return m, feeds


def _compare(ref, got, rtol, atol, what):
    assert len(ref) == len(got), what
    for r, g in zip(ref, got):
        r, g = np.asarray(r), np.asarray(g)
        if r.dtype.kind in "UO":                       # onnx strings: engine uses object arrays
            assert g.dtype == object and g.shape == r.shape, what
            assert g.tolist() == r.tolist(), what
            continue
        assert g.dtype == r.dtype, f"{what}: dtype {g.dtype} != {r.dtype}"
        assert g.shape == r.shape, f"{what}: shape {g.shape} != {r.shape}"
        if r.dtype.kind in "fc":
            np.testing.assert_allclose(g, r, rtol=rtol, atol=atol, err_msg=what)
        else:
            np.testing.assert_array_equal(g, r, err_msg=what)


def _need(op, opset):
    """Skips (with the reason) when the installed onnx is too old for the op/opset the case needs."""
    if opset > onnx.defs.onnx_opset_version() or not onnx.defs.has(op):
        pytest.skip(f"onnx {onnx.__version__} does not know {op} at opset {opset}")


def check(op, inputs, attrs=None, opset=18, n_out=1, consts=(), rtol=1e-5, atol=1e-6, both=True):
    """Runs the node on engine and the reference; with both=True also with every non-first input constant."""
    attrs = attrs or {}
    _need(op, opset)
    variants = [tuple(consts)]
    if both:
        variants.append(tuple(k for k in list(inputs)[1:] if inputs[k] is not None))
    for cs in variants:
        m, feeds = _model(op, inputs, n_out, attrs, opset, cs)
        ref = ReferenceEvaluator(m).run(None, feeds)
        got = engine.Session(m).run(None, feeds)
        _compare(ref, got, rtol, atol, f"{op}-{opset} {attrs} consts={cs}")
    return got


def run_engine(op, inputs, attrs=None, opset=18, n_out=1, consts=()):
    _need(op, opset)
    m, feeds = _model(op, inputs, n_out, attrs or {}, opset, consts)
    return engine.Session(m).run(None, feeds)


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def i64(*v):
    return np.array(v, dtype=np.int64)


# ------------------------------------------------------------------------------------------------ shape ops

@pytest.mark.parametrize("shape,allowzero,opset", [
    ((4, 0, -1), 0, 13), ((-1,), 0, 13), ((0, 0, 4), 0, 14), ((2, 3, 0), 1, 14), ((0, -1), 0, 21)])
def test_reshape(shape, allowzero, opset):
    x = f32(2, 3, 4) if allowzero == 0 else np.zeros((3, 0, 2), np.float32)
    if allowzero:
        shape = (3, 2, 0)
    attrs = {"allowzero": allowzero} if opset >= 14 else {}
    check("Reshape", {"x": x, "s": i64(*shape)}, attrs, opset=opset)


def test_reshape_returns_view_and_opset5_attr_free():
    x = f32(2, 3, 4)
    m, feeds = _model("Reshape", {"x": x, "s": i64(6, -1)}, 1, {}, 13, ("s",))
    s = engine.Session(m)
    y = s.run(feeds)["y0"]
    assert y.shape == (6, 4) and not np.shares_memory(y, feeds["x"])  # a graph output never aliases an input
    (v,) = s._plan.steps[0].fn(x, np.array([6, -1], np.int64))  # inside the graph Reshape is a view, no copy
    assert v.shape == (6, 4) and np.shares_memory(v, feeds["x"])


def test_transpose_concat_flatten():
    x = f32(2, 3, 4)
    check("Transpose", {"x": x})
    check("Transpose", {"x": x}, {"perm": [1, 2, 0]})
    check("Concat", {"a": x, "b": f32(2, 1, 4), "c": np.zeros((2, 0, 4), np.float32)}, {"axis": -2}, both=False)
    check("Concat", {"a": x}, {"axis": 0}, opset=7)
    for axis in (0, 1, -1, 3):
        check("Flatten", {"x": x}, {"axis": axis}, opset=13)
    check("Flatten", {"x": x}, {}, opset=9)


@pytest.mark.parametrize("opset,inputs,attrs,n_out", [
    (11, {}, {"axis": 1, "split": [1, 2]}, 2),
    (11, {}, {"axis": -1}, 2),
    (13, {"split": i64(2, 0, 1)}, {"axis": 1}, 3),
    (18, {}, {"axis": 2, "num_outputs": 3}, 3),          # 8 = 3 + 3 + 2
    (18, {}, {"axis": 1, "num_outputs": 3}, 3),
])
def test_split(opset, inputs, attrs, n_out):
    x = f32(2, 3, 8)
    check("Split", {"x": x, **inputs}, attrs, opset=opset, n_out=n_out)


@pytest.mark.parametrize("starts,ends,axes,steps", [
    ([1, 0], [3, -1], [0, 2], None),
    ([-1], [-10 ** 12], [1], [-1]),
    ([10], [0], [-1], [-2]),
    ([0, 1], [2 ** 62, 2 ** 62], None, [2, 3]),
    ([5], [2], [0], [1]),                                 # empty result
    ([-100], [100], [2], [3]),
])
def test_slice(starts, ends, axes, steps):
    x = f32(4, 5, 6)
    ins = {"x": x, "starts": i64(*starts), "ends": i64(*ends),
           "axes": None if axes is None else i64(*axes), "steps": None if steps is None else i64(*steps)}
    if axes is None and steps is not None:
        ins["axes"] = i64(*range(len(starts)))
    check("Slice", ins, opset=13)


def test_slice_opset1_attrs():
    x = f32(4, 5, 6)
    check("Slice", {"x": x}, {"starts": [1, -3], "ends": [100, -1], "axes": [0, -1]}, opset=9)
    check("Slice", {"x": x}, {"starts": [1], "ends": [3]}, opset=1)


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_unsqueeze(opset):
    x = f32(1, 3, 1, 2)
    if opset < 13:
        check("Squeeze", {"x": x}, {"axes": [0, -2]}, opset=opset)
        check("Squeeze", {"x": x}, {}, opset=opset)
        check("Unsqueeze", {"x": x}, {"axes": [-1, 0, 3]}, opset=opset)
    else:
        check("Squeeze", {"x": x, "axes": i64(0, -2)}, opset=opset)
        check("Squeeze", {"x": x, "axes": None}, opset=opset)
        check("Unsqueeze", {"x": x, "axes": i64(-1, 0, 3)}, opset=opset)
        check("Unsqueeze", {"x": np.array(3.0, np.float32), "axes": i64(0)}, opset=opset)


def test_unsqueeze_squeeze_are_views():
    x = f32(3, 2)
    m, feeds = _model("Unsqueeze", {"x": x, "a": i64(1)}, 1, {}, 13, ("a",))
    s = engine.Session(m)
    y = s.run(feeds)["y0"]
    assert y.shape == (3, 1, 2) and not np.shares_memory(y, feeds["x"])  # a graph output never aliases an input
    for _ in range(2):  # inside the graph: a view (the second call uses the shape cached per input shape)
        (v,) = s._plan.steps[0].fn(x, np.array([1], np.int64))
        assert v.shape == (3, 1, 2) and np.shares_memory(v, x)
    m, feeds = _model("Squeeze", {"x": x.reshape(3, 1, 2), "a": i64(-2)}, 1, {}, 13, ("a",))
    s = engine.Session(m)
    for _ in range(2):
        (v,) = s._plan.steps[0].fn(feeds["x"], np.array([-2], np.int64))
        assert v.shape == (3, 2) and np.shares_memory(v, feeds["x"])
        with pytest.raises(ValueError, match="is not 1"):
            s._plan.steps[0].fn(x.reshape(1, 3, 2), np.array([-2], np.int64))


def test_expand_tile():
    check("Expand", {"x": f32(3, 1), "s": i64(2, 1, 4)}, opset=13)
    check("Expand", {"x": f32(2, 3), "s": i64(3)}, opset=8)
    check("Expand", {"x": np.arange(3, dtype=np.int32), "s": i64(0, 3)}, opset=13)
    check("Tile", {"x": f32(2, 3), "r": i64(2, 1)}, opset=13)
    check("Tile", {"x": np.arange(4, dtype=np.int64).reshape(2, 2), "r": i64(0, 3)}, opset=13)


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge", "wrap"])
def test_pad_modes(mode):
    x = f32(3, 4)
    check("Pad", {"x": x, "pads": i64(1, 2, 2, 1), "v": np.array(1.5, np.float32)}, {"mode": mode}, opset=19)
    # negative pads crop (the reference cannot do it: compare with numpy)
    y = run_engine("Pad", {"x": x, "pads": i64(0, -1, 1, 2)}, {"mode": mode}, opset=19)[0]
    np.testing.assert_array_equal(y, np.pad(x[:, 1:], [(0, 1), (0, 2)], mode=mode))
    check("Pad", {"x": f32(2, 3, 4), "pads": i64(1, 2, 1, 0), "v": None, "axes": i64(0, -1)}, {"mode": mode},
          opset=19)


def test_pad_old_forms_and_ints():
    x = f32(2, 3)
    check("Pad", {"x": x}, {"pads": [0, 1, 1, 0], "value": 2.0}, opset=2)
    check("Pad", {"x": x}, {"pads": [1, 1, 1, 1], "mode": "reflect"}, opset=2)
    check("Pad", {"x": x, "p": i64(1, 0, 0, 2)}, {"mode": "edge"}, opset=11)
    xi = np.arange(6, dtype=np.int32).reshape(2, 3)
    check("Pad", {"x": xi, "p": i64(1, 1, 1, 1), "v": np.array(7, np.int32)}, opset=13)


# ------------------------------------------------------------------------------------------------ gather/scatter

def test_gather():
    x = f32(5, 4, 3)
    check("Gather", {"x": x, "i": i64(0, -1, 2)}, {"axis": 0})
    check("Gather", {"x": x, "i": np.array([[1, -2], [0, 3]], np.int32)}, {"axis": 1})
    check("Gather", {"x": x, "i": np.array(-1, np.int64)}, {"axis": -1})
    check("Gather", {"x": x, "i": np.zeros((0,), np.int64)}, {"axis": 2})
    # Gather(Shape(x), 0) pattern: a constant scalar index on 1-D data gives a 0-d array, not a numpy scalar
    y = run_engine("Gather", {"x": i64(4, 5, 6), "i": np.array(-2, np.int64)}, {"axis": 0}, consts=("i",))[0]
    assert type(y) is np.ndarray and y.shape == () and y == 5
    check("GatherElements", {"x": f32(2, 4), "i": np.array([[0, -1], [2, 1]], np.int64)}, {"axis": 1})
    # indices smaller than data off the axis (allowed by the spec; the reference cannot): numpy oracle
    x2 = f32(3, 4)
    y = run_engine("GatherElements", {"x": x2, "i": np.array([[0, -1], [2, 1]], np.int64)}, {"axis": 1})[0]
    np.testing.assert_array_equal(y, [[x2[0, 0], x2[0, 3]], [x2[1, 2], x2[1, 1]]])
    check("GatherElements", {"x": f32(3, 4), "i": np.array([[0, 2, 1, -3]], np.int64)}, {"axis": 0})
    check("GatherND", {"x": f32(2, 3, 4), "i": np.array([[0, 1], [1, -1]], np.int64)})
    check("GatherND", {"x": f32(2, 3, 4), "i": np.array([[[1], [0]], [[2], [1]]], np.int64)}, {"batch_dims": 1})
    check("GatherND", {"x": f32(2, 3, 4), "i": np.array([[1, 2], [0, 3]], np.int64)}, {"batch_dims": 1})


@pytest.mark.parametrize("red", ["none", "add", "mul", "max", "min"])
def test_scatter(red):
    x = f32(4, 5)
    attrs = {} if red == "none" else {"reduction": red}
    check("ScatterND", {"x": x, "i": np.array([[1], [3]], np.int64), "u": f32(2, 5)}, attrs)
    if red != "none":       # duplicate indices accumulate (with reduction none their order is unspecified)
        check("ScatterND", {"x": x, "i": np.array([[1, 2], [-1, 0], [1, 2]], np.int64), "u": f32(3)}, attrs)
    check("ScatterElements", {"x": x, "i": np.array([[0, -1], [3, 3]], np.int64), "u": f32(2, 2)},
          {"axis": 1, **attrs})
    check("ScatterElements", {"x": x, "i": np.array([[1, 2, 0, 1, 1]], np.int64), "u": f32(1, 5)},
          {"axis": 0, **attrs})


def test_scatter_opset9():
    ins = {"x": f32(3, 3), "i": np.array([[1, 0, 2]], np.int64), "u": f32(1, 3)}
    m, feeds = _model("ScatterElements", ins, 1, {"axis": 0}, 11, ())
    ref = ReferenceEvaluator(m).run(None, feeds)
    _compare(ref, run_engine("Scatter", ins, {"axis": 0}, opset=9), 0, 0, "Scatter-9")


# ------------------------------------------------------------------------------------------------ generators

def test_shape_size_constant_of_shape():
    x = f32(2, 3, 4, 5)
    check("Shape", {"x": x}, opset=13)
    for s, e in ((1, None), (-2, None), (0, -1), (3, 1), (-100, 100)):
        attrs = {"start": s} if e is None else {"start": s, "end": e}
        check("Shape", {"x": x}, attrs, opset=21)
    check("Size", {"x": x}, opset=13)
    check("Size", {"x": np.zeros((0, 3), np.float32)}, opset=13)
    check("ConstantOfShape", {"s": i64(2, 3)}, opset=9)
    check("ConstantOfShape", {"s": i64(2, 0)}, {"value": numpy_helper.from_array(np.array([7], np.int32))})
    check("ConstantOfShape", {"s": np.zeros((0,), np.int64)},
          {"value": numpy_helper.from_array(np.array([1.5], np.float64))})


@pytest.mark.parametrize("args", [(0, 10, 3), (10, 0, -3), (5, 5, 1), (1.0, 2.5, 0.25), (-2.5, 2.0, 0.7)])
def test_range(args):
    dt = np.int64 if isinstance(args[0], int) else np.float32
    s, l, d = (np.array(a, dtype=dt) for a in args)
    check("Range", {"s": s, "l": l, "d": d}, opset=11)


def test_eyelike_onehot_trilu():
    check("EyeLike", {"x": f32(3, 4)}, {"k": 1})
    check("EyeLike", {"x": f32(4, 3)}, {"k": -2, "dtype": TensorProto.INT32})
    ind = np.array([[0, 2], [-1, 5]], np.int64)
    vals = np.array([0.5, 2.0], np.float32)
    for axis in (-1, 0, 1):
        check("OneHot", {"i": ind, "d": np.array(4, np.int64), "v": vals}, {"axis": axis}, opset=11)
    check("OneHot", {"i": np.array([1.0, 3.0], np.float32), "d": np.array(4.0, np.float32),
                     "v": np.array([0, 1], np.int32)}, opset=9)
    x = f32(2, 4, 5)
    for upper in (0, 1):
        for k in (None, -1, 2, 10):
            ins = {"x": x, "k": None if k is None else np.array(k, np.int64)}
            check("Trilu", ins, {"upper": upper}, opset=14)


@pytest.mark.parametrize("largest,axis", [(1, -1), (0, 1), (1, 0)])
def test_topk(largest, axis):
    x = np.array([[3, 1, 3, 2], [5, 5, 0, 5], [1, 2, 2, 1]], np.float32)   # ties: lower index first
    check("TopK", {"x": x, "k": i64(2)}, {"axis": axis, "largest": largest}, opset=11, n_out=2)
    check("TopK", {"x": x.astype(np.int32), "k": i64(3)}, {"axis": axis, "largest": largest}, opset=11, n_out=2)


def test_topk_old_forms():
    x = f32(3, 5)
    check("TopK", {"x": x}, {"k": 2}, opset=1, n_out=2)
    check("TopK", {"x": x, "k": i64(5)}, {"axis": 1}, opset=10, n_out=2)
    check("TopK", {"x": np.array([3, 1, 2], np.uint8), "k": i64(2)}, {}, opset=11, n_out=2)


def test_nonzero_unique_compress():
    x = np.array([[0, 1, 2], [3, 0, 0]], np.float32)
    check("NonZero", {"x": x}, opset=13)
    check("NonZero", {"x": np.zeros((0, 2), np.int32)}, opset=13)
    u = np.array([2, 1, 1, 3, 4, 3, 2], np.int64)
    check("Unique", {"x": u}, {"sorted": 1}, opset=11, n_out=4)
    check("Unique", {"x": u}, {"sorted": 0}, opset=11, n_out=4)
    m = np.array([[1, 0, 0], [1, 0, 0], [2, 3, 4]], np.float32)
    check("Unique", {"x": m}, {"sorted": 1, "axis": 0}, opset=11, n_out=4)
    check("Unique", {"x": m}, {"sorted": 0, "axis": -1}, opset=11, n_out=4)
    c = f32(3, 4)
    check("Compress", {"x": c, "c": np.array([True, False, True])}, {"axis": 0}, opset=11)
    check("Compress", {"x": c, "c": np.array([False, True])}, {"axis": -1}, opset=11)
    check("Compress", {"x": c, "c": np.array([True, False, True, True, False])}, opset=11)


def test_depth_space():
    x = f32(1, 8, 2, 3)
    check("DepthToSpace", {"x": x}, {"blocksize": 2}, opset=11)
    check("DepthToSpace", {"x": x}, {"blocksize": 2, "mode": "CRD"}, opset=11)
    check("DepthToSpace", {"x": x}, {"blocksize": 2}, opset=1)
    check("SpaceToDepth", {"x": f32(2, 3, 4, 6)}, {"blocksize": 2}, opset=13)


# ------------------------------------------------------------------------------------------------ Resize

@pytest.mark.parametrize("mode,ctm,extra", [
    ("nearest", "asymmetric", {"nearest_mode": "floor"}),
    ("nearest", "half_pixel", {"nearest_mode": "round_prefer_ceil"}),
    ("nearest", "align_corners", {"nearest_mode": "ceil"}),
    ("linear", "half_pixel", {}),
    ("linear", "pytorch_half_pixel", {}),
    ("linear", "align_corners", {}),
    ("cubic", "asymmetric", {"cubic_coeff_a": -0.5}),
    ("cubic", "half_pixel", {"exclude_outside": 1}),
])
@pytest.mark.parametrize("scale", [0.6, 1.7])
def test_resize_scales_opset13(mode, ctm, extra, scale):
    x = f32(1, 2, 5, 7)
    attrs = {"mode": mode, "coordinate_transformation_mode": ctm, **extra}
    check("Resize", {"x": x, "roi": None, "scales": np.array([1, 1, scale, 1 / scale], np.float32)}, attrs,
          opset=13, atol=1e-5)


def test_resize_sizes_axes_antialias_opset19():
    x = f32(1, 2, 9, 8)
    for mode in ("linear", "cubic"):
        check("Resize", {"x": x, "roi": None, "scales": None, "sizes": i64(4, 5)},
              {"mode": mode, "antialias": 1, "axes": [2, 3]}, opset=19, atol=1e-5)
    for pol in ("not_larger", "not_smaller"):
        check("Resize", {"x": x, "roi": None, "scales": None, "sizes": i64(5, 11)},
              {"mode": "nearest", "axes": [3, 2], "keep_aspect_ratio_policy": pol}, opset=19)
    # (scale 0.5 on 9 rows hits an exact-integer source coordinate where the reference's vectorized window
    # rounds to the wrong tap and returns ~0 instead of row 1: avoid that case here)
    check("Resize", {"x": x, "roi": None, "scales": np.array([1.5, 0.6], np.float32)},
          {"mode": "linear", "coordinate_transformation_mode": "half_pixel_symmetric", "axes": [3, 2]}, opset=19,
          atol=1e-5)


def test_resize_tf_crop_and_uint8():
    x = f32(1, 1, 6, 6)
    roi = np.array([0, 0, 0.2, 0.1, 1, 1, 0.9, 1.2], np.float32)
    check("Resize", {"x": x, "roi": roi, "scales": np.zeros(0, np.float32), "sizes": i64(1, 1, 4, 5)},
          {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize", "extrapolation_value": 3.0},
          opset=11, atol=1e-5)
    xu = (RNG.integers(0, 255, (1, 1, 4, 5))).astype(np.uint8)
    check("Resize", {"x": xu, "roi": None, "scales": np.array([1, 1, 1.5, 2.3], np.float32)},
          {"mode": "cubic"}, opset=13)


def test_upsample_opset7_9():
    x = f32(1, 1, 2, 3)
    m, feeds = _model("Upsample", {"x": x}, 1, {"scales": [1.0, 1.0, 2.0, 3.0], "mode": "nearest"}, 7, ())
    y = engine.Session(m).run(feeds)["y0"]
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, 2, axis=2), 3, axis=3))
    check("Upsample", {"x": x, "s": np.array([1, 1, 2, 2], np.float32)}, {"mode": "nearest"}, opset=9)
    # linear Upsample is Resize-10 semantics (asymmetric): x[i/2] interpolated
    m, feeds = _model("Upsample", {"x": np.array([[0, 2, 4]], np.float32)}, 1,
                      {"scales": [1.0, 2.0], "mode": "linear"}, 7, ())
    np.testing.assert_allclose(engine.Session(m).run(feeds)["y0"], [[0, 1, 2, 3, 4, 4]])


def test_resize_opset10():
    x = np.array([[[[1, 2], [3, 4]]]], np.float32)
    y = run_engine("Resize", {"x": x, "s": np.array([1, 1, 2, 2], np.float32)}, {"mode": "nearest"}, opset=10)[0]
    np.testing.assert_array_equal(y, np.repeat(np.repeat(x, 2, axis=2), 2, axis=3))


# ------------------------------------------------------------------------------------------------ misc ops

def test_einsum_det():
    check("Einsum", {"a": f32(2, 3, 4), "b": f32(2, 4, 5)}, {"equation": "bij,bjk->bik"}, both=False, atol=1e-5)
    check("Einsum", {"a": f32(3, 3)}, {"equation": "ii->i"})
    check("Einsum", {"a": f32(3, 4), "b": f32(4), "c": f32(3)}, {"equation": "ij, j, i -> "}, both=False, atol=1e-5)
    check("Det", {"x": f32(2, 3, 3)}, atol=1e-5)


def test_dropout():
    x = f32(3, 4)
    y, mask = run_engine("Dropout", {"x": x}, {"ratio": 0.3}, opset=7, n_out=2)   # Dropout-7: mask is T
    assert mask.dtype == np.float32 and (mask == 1).all() and np.array_equal(y, x)
    check("Dropout", {"x": x}, {}, opset=13, n_out=2)
    check("Dropout", {"x": x, "r": np.array(0.4, np.float32), "t": np.array(True)}, {"seed": 3}, opset=13, n_out=2,
          both=False)
    a = run_engine("Dropout", {"x": x, "r": np.array(0.5, np.float32), "t": np.array(True)}, {}, opset=13, n_out=2)
    assert a[1].dtype == np.bool_ and set(np.unique(a[0][~a[1]])) <= {0.0}


def test_random_ops():
    check("RandomUniform", {}, {"shape": [3, 4], "seed": 2.0, "low": -1.0, "high": 3.0}, both=False)
    check("RandomNormal", {}, {"shape": [5], "seed": 1.0, "dtype": TensorProto.DOUBLE}, both=False)
    check("RandomNormalLike", {"x": f32(2, 3)}, {"seed": 4.0, "mean": 2.0}, both=False)
    check("RandomUniformLike", {"x": f32(2, 3)}, {"seed": 4.0, "dtype": TensorProto.DOUBLE}, both=False)
    check("Bernoulli", {"x": RNG.random(8).astype(np.float32)}, {"seed": 5.0}, opset=15, both=False)
    y = run_engine("Multinomial", {"x": np.log(np.array([[0.0001, 0.9999], [0.9999, 0.0001]], np.float32))},
                   {"sample_size": 50}, opset=7)[0]
    assert y.dtype == np.int32 and y.shape == (2, 50) and y[0].mean() > 0.9 and y[1].mean() < 0.1


def test_nms():
    boxes = np.array([[[0, 0, 1, 1], [0, 0.1, 1, 1.1], [0, -0.1, 1, 0.9], [0, 10, 1, 11], [0, 10.1, 1, 11.1],
                       [0, 100, 1, 101]]], np.float32)
    scores = np.array([[[0.9, 0.75, 0.6, 0.95, 0.5, 0.3], [0.9, 0.9, 0.9, 0.1, 0.2, 0.3]]], np.float32)
    base = {"b": boxes, "s": scores, "m": i64(3), "iou": np.array([0.5], np.float32)}
    check("NonMaxSuppression", {**base, "st": np.array([0.0], np.float32)}, opset=11)
    check("NonMaxSuppression", base, opset=11)
    cb = np.array([[[0.5, 0.5, 1, 1], [0.5, 0.6, 1, 1], [0.5, 10.5, 1, 1]]], np.float32)
    check("NonMaxSuppression", {"b": cb, "s": np.array([[[0.9, 0.8, 0.7]]], np.float32), "m": i64(10),
                                "iou": np.array([0.5], np.float32)}, {"center_point_box": 1}, opset=11)


def test_spatial_misc():
    check("CenterCropPad", {"x": f32(5, 6, 3), "s": i64(3, 9)}, {"axes": [0, -2]})
    check("CenterCropPad", {"x": f32(4, 3), "s": i64(7, 2)})
    x = f32(4, 3, 2)
    check("ReverseSequence", {"x": x, "l": i64(4, 1, 3)}, {"batch_axis": 1, "time_axis": 0}, opset=10)
    check("ReverseSequence", {"x": np.swapaxes(x, 0, 1).copy(), "l": i64(2, 4, 0)},
          {"batch_axis": 0, "time_axis": 1}, opset=10)
    check("Col2Im", {"x": f32(2, 3 * 4, 9), "i": i64(4, 5), "b": i64(2, 2)},
          {"strides": [2, 1], "pads": [1, 0, 1, 0], "dilations": [1, 2]})
    for align in (0, 1):
        check("AffineGrid", {"t": f32(2, 2, 3), "s": i64(2, 3, 4, 5)}, {"align_corners": align}, opset=20)
        check("AffineGrid", {"t": f32(1, 3, 4), "s": i64(1, 1, 2, 3, 4)}, {"align_corners": align}, opset=20)


@pytest.mark.parametrize("mode,pad", [("linear", "zeros"), ("nearest", "border"), ("cubic", "reflection"),
                                      ("cubic", "zeros"), ("linear", "reflection"), ("nearest", "reflection")])
@pytest.mark.parametrize("align", [0, 1])
def test_grid_sample(mode, pad, align):
    x = f32(1, 2, 4, 5)
    g = (RNG.random((1, 3, 6, 2)) * 2.6 - 1.3).astype(np.float32)
    check("GridSample", {"x": x, "g": g}, {"mode": mode, "padding_mode": pad, "align_corners": align}, opset=20,
          both=False, atol=1e-5)
    old = {"linear": "bilinear", "cubic": "bicubic", "nearest": "nearest"}[mode]
    m, feeds = _model("GridSample", {"x": x, "g": g}, 1, {"mode": mode, "padding_mode": pad, "align_corners": align},
                      20, ())
    got = run_engine("GridSample", {"x": x, "g": g}, {"mode": old, "padding_mode": pad, "align_corners": align},
                     opset=16)
    _compare(ReferenceEvaluator(m).run(None, feeds), got, 1e-5, 1e-5, "GridSample-16")


def test_grid_sample_3d():
    x = f32(1, 2, 3, 4, 5)
    g = (RNG.random((1, 2, 3, 2, 3)) * 2.4 - 1.2).astype(np.float32)
    check("GridSample", {"x": x, "g": g}, {"mode": "linear"}, opset=20, both=False, atol=1e-5)


def test_roi_align_opset10_is_output_half_pixel():
    # RoiAlign-10 has no coordinate_transformation_mode: it is opset 16's 'output_half_pixel' (the reference
    # evaluator applies half_pixel at opset 10, so compare with its opset-16 form)
    x = f32(1, 2, 6, 7)
    ins = {"x": x, "r": np.array([[0.5, 1, 5, 4.5], [1, 0, 3, 3]], np.float32), "b": i64(0, 0)}
    attrs = {"output_height": 2, "output_width": 3, "spatial_scale": 0.9}
    m, feeds = _model("RoiAlign", ins, 1, {**attrs, "coordinate_transformation_mode": "output_half_pixel"}, 16, ())
    _compare(ReferenceEvaluator(m).run(None, feeds), run_engine("RoiAlign", ins, attrs, opset=10), 1e-5, 1e-5,
             "RoiAlign-10")


@pytest.mark.parametrize("opset,mode", [(16, "avg"), (16, "max")])
def test_roi_align(opset, mode):
    x = f32(2, 3, 8, 9)
    rois = np.array([[0, 0, 7, 7], [1.5, 2.2, 6.3, 5.1], [-2, -1, 3, 12]], np.float32)
    bi = i64(0, 1, 1)
    check("RoiAlign", {"x": x, "r": rois, "b": bi},
          {"mode": mode, "output_height": 3, "output_width": 2, "spatial_scale": 0.8, "sampling_ratio": 0}, opset=opset,
          atol=1e-5, both=False)
    check("RoiAlign", {"x": x, "r": rois, "b": bi}, {"mode": mode, "sampling_ratio": 2}, opset=opset, atol=1e-5,
          both=False)


def test_spectral():
    sig = f32(2, 16, 1)
    check("DFT", {"x": sig}, {}, opset=17, atol=1e-4)
    check("DFT", {"x": f32(2, 10, 2), "n": np.array(12, np.int64)}, {"onesided": 0, "inverse": 1}, opset=17,
          atol=1e-4)
    check("DFT", {"x": sig, "n": np.array(8, np.int64)}, {"onesided": 1}, opset=17, atol=1e-4)
    check("DFT", {"x": f32(3, 4, 6, 2), "n": None, "a": np.array(-2, np.int64)}, {}, opset=20, atol=1e-4)
    check("DFT", {"x": f32(3, 4, 6, 2), "n": None, "a": np.array(1, np.int64)}, {"inverse": 1}, opset=20, atol=1e-4)
    check("DFT", {"x": f32(2, 5, 2), "n": np.array(8, np.int64), "a": np.array(1, np.int64)},
          {"inverse": 1, "onesided": 1}, opset=20, atol=1e-4)
    check("STFT", {"x": f32(1, 32, 1), "step": np.array(4, np.int64), "w": np.hanning(8).astype(np.float32)}, {},
          opset=17, atol=1e-4)
    check("STFT", {"x": f32(2, 20, 2), "step": np.array(3, np.int64), "w": None, "l": np.array(6, np.int64)},
          {"onesided": 0}, opset=17, atol=1e-4)
    for op in ("HannWindow", "HammingWindow", "BlackmanWindow"):
        for periodic in (0, 1):
            check(op, {"n": np.array(10, np.int64)}, {"periodic": periodic}, opset=17, atol=1e-6)
    check("MelWeightMatrix", {"a": np.array(8, np.int64), "b": np.array(64, np.int64), "c": np.array(8000, np.int64),
                              "d": np.array(0.0, np.float32), "e": np.array(4000.0, np.float32)}, {}, opset=17)


def test_string_ops():
    s = np.array(["Monday", "tuesday", "and", "The", "end"], dtype=object)
    check("StringNormalizer", {"x": s}, {"case_change_action": "UPPER", "stopwords": ["the", "AND"]}, opset=10)
    check("StringNormalizer", {"x": s.reshape(1, -1)},
          {"case_change_action": "LOWER", "is_case_sensitive": 1, "stopwords": ["The"]}, opset=10)
    check("StringConcat", {"a": s, "b": np.array(["!"], dtype=object)}, opset=20)
    check("RegexFullMatch", {"x": s}, {"pattern": r"[A-Z]\w+"}, opset=20)
    check("StringSplit", {"x": np.array(["a b  c", "", "x-y-z"], dtype=object)}, {"delimiter": "-"}, opset=20,
          n_out=2)
    check("StringSplit", {"x": np.array([["a b  c", " d "]], dtype=object)}, {"maxsplit": 1}, opset=20, n_out=2)


# ------------------------------------------------------------------------------------------------ errors

@pytest.mark.parametrize("op,inputs,attrs,opset", [
    ("Reshape", {"x": np.zeros((2, 3), np.float32), "s": i64(4, -1)}, {}, 13),
    ("Reshape", {"x": np.zeros((2, 3), np.float32), "s": i64(-1, -1)}, {}, 13),
    ("Gather", {"x": np.zeros((2, 3), np.float32), "i": i64(5)}, {"axis": 0}, 13),
    ("GatherElements", {"x": np.zeros((2, 3), np.float32), "i": np.array([[3]], np.int64)}, {"axis": 1}, 13),
    ("ScatterND", {"x": np.zeros(3, np.float32), "i": np.array([[7]], np.int64), "u": np.zeros(1, np.float32)}, {}, 13),
    ("Slice", {"x": np.zeros((4,), np.float32), "s": i64(0), "e": i64(3), "a": i64(0), "st": i64(0)}, {}, 13),
    ("Split", {"x": np.zeros((5,), np.float32), "sp": i64(2, 2)}, {}, 13),
    ("Squeeze", {"x": np.zeros((2, 3), np.float32), "a": i64(0)}, {}, 13),
    ("Transpose", {"x": np.zeros((2, 3), np.float32)}, {"perm": [0, 1, 2]}, 13),
    ("TopK", {"x": np.zeros((2, 3), np.float32), "k": i64(4)}, {}, 11),
    ("Expand", {"x": np.zeros((2, 3), np.float32), "s": i64(4, 3)}, {}, 13),
    ("Range", {"a": np.array(0, np.int64), "b": np.array(5, np.int64), "c": np.array(0, np.int64)}, {}, 11),
    ("Resize", {"x": np.zeros((1, 1, 2, 2), np.float32), "r": None, "sc": np.array([1, 1, 2], np.float32)}, {}, 13),
])
def test_bad_input_raises(op, inputs, attrs, opset):
    with pytest.raises((engine.errors.EngineError, ValueError, IndexError)) as e:
        run_engine(op, inputs, attrs, opset=opset)
    assert op in str(e.value) or "node" in str(e.value)


@pytest.mark.parametrize("op,inputs,attrs,opset", [
    ("Pad", {"x": np.zeros((2,), np.float32), "p": i64(1, 1)}, {"mode": "mirror"}, 13),
    ("Pad", {"x": np.zeros((2,), np.float32), "p": i64(1, 1)}, {"mode": "wrap"}, 18),
    ("Resize", {"x": np.zeros((1, 1, 2, 2), np.float32), "r": None, "sc": np.array([1, 1, 2, 2], np.float32)},
     {"mode": "area"}, 13),
    ("Resize", {"x": np.zeros((1, 1, 2, 2), np.float32), "r": None, "sc": np.array([1, 1, 2, 2], np.float32)},
     {"mode": "nearest", "antialias": 1}, 18),
    ("GridSample", {"x": np.zeros((1, 1, 2, 2), np.float32), "g": np.zeros((1, 1, 1, 2), np.float32)},
     {"padding_mode": "wrap"}, 16),
])
def test_unsupported_variants_are_reported(op, inputs, attrs, opset):
    m, _ = _model(op, inputs, 1, attrs, opset, ())
    with pytest.raises(UnsupportedModelError):
        engine.Session(m)


@pytest.mark.parametrize("mode,axis", [("linear", -2), ("circular", 2), ("linear", 1)])
def test_tensor_scatter(mode, axis):
    past = f32(2, 3, 6, 4)
    shp = list(past.shape)
    shp[axis] = 2
    upd = f32(*shp)
    w = i64(0, 1) if axis == 1 else (i64(1, 5) if mode == "circular" else i64(1, 4))   # 5, 6 -> 5, 0 wraps
    check("TensorScatter", {"p": past, "u": upd, "w": w}, {"mode": mode, "axis": axis}, opset=24)
    check("TensorScatter", {"p": past, "u": upd, "w": None}, {"mode": mode, "axis": axis}, opset=24)
    if mode == "linear":
        with pytest.raises(Exception, match="exceeds the cache length"):
            run_engine("TensorScatter", {"p": past, "u": upd, "w": i64(0, past.shape[axis] - 1)},
                       {"mode": mode, "axis": axis}, opset=24)


def test_max_roi_pool_hand_example():
    # no reference implementation exists: a hand-computed case (4x4 ramp, whole-image ROI, 2x2 bins -> the
    # bottom-right element of each 2x2 block; a half-scale ROI; an ROI partly outside the image)
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    rois = np.array([[0, 0, 0, 3, 3], [0, 0, 0, 3, 3], [0, 2, 2, 9, 9]], np.float32)
    y = run_engine("MaxRoiPool", {"x": x, "r": rois[:1]}, {"pooled_shape": [2, 2]}, opset=1)[0]
    np.testing.assert_array_equal(y, [[[[5, 7], [13, 15]]]])
    y = run_engine("MaxRoiPool", {"x": x, "r": rois[1:2]}, {"pooled_shape": [1, 2], "spatial_scale": 0.5},
                   opset=1)[0]                      # ROI rounds to [0, 0, 2, 2] (1.5 -> 2): 3 rows, 2 bins of 1.5
    np.testing.assert_array_equal(y, [[[[9, 10]]]])
    y = run_engine("MaxRoiPool", {"x": x, "r": rois[2:]}, {"pooled_shape": [2, 2]}, opset=1)[0]
    np.testing.assert_array_equal(y, [[[[15, 0], [0, 0]]]])


def test_empty_tensors():
    e = np.zeros((0, 3, 2), np.float32)
    check("Transpose", {"x": e}, {"perm": [2, 0, 1]})
    check("Slice", {"x": e, "s": i64(1), "e": i64(3), "a": i64(1)}, opset=13)
    check("Gather", {"x": e, "i": i64(1, 0)}, {"axis": 1})
    check("Concat", {"a": e, "b": e}, {"axis": 0}, both=False)
    check("Split", {"x": e, "s": i64(1, 2)}, {"axis": 1}, opset=13, n_out=2)
    ys = run_engine("Split", {"x": np.arange(4.0, dtype=np.float32), "s": np.zeros(0, np.int64)}, {}, opset=13,
                    n_out=2)                        # an empty split input = not given (reference cannot run it)
    assert [y.tolist() for y in ys] == [[0, 1], [2, 3]]
    check("TopK", {"x": f32(2, 3), "k": i64(0)}, {"axis": 1}, opset=11, n_out=2)
    check("Pad", {"x": e, "p": i64(0, 0, 1, 1, 1, 0)}, {"mode": "constant"}, opset=13)
    check("Reshape", {"x": e, "s": i64(-1, 6)}, {}, opset=13)
    check("Reshape", {"x": e, "s": i64(0, 3, 1, 2)}, {}, opset=13)
    check("Resize", {"x": np.zeros((0, 1, 2, 2), np.float32), "r": None, "s": np.array([1, 1, 2, 2], np.float32)},
          {"mode": "linear"}, opset=13)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_resize_dense_path_and_nonfinite_fallback(mode):
    # big enough for the banded-matmul path (short axes, >= 4096 elements); with a nan the tap path is used,
    # so the nan stays local (a matmul would spread it over whole rows)
    x = f32(1, 4, 32, 40)
    sc = np.array([1, 1, 1.75, 0.55], np.float32)
    check("Resize", {"x": x, "roi": None, "scales": sc}, {"mode": mode}, opset=13, atol=1e-4, both=False)
    x[0, 1, 5, 7] = np.nan          # (not inf: the reference saturates inf to float32 max when casting back)
    m, feeds = _model("Resize", {"x": x, "roi": None, "scales": sc}, 1, {"mode": mode}, 13, ())
    ref = ReferenceEvaluator(m).run(None, feeds)[0]
    got = engine.Session(m).run(None, feeds)[0]
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-4, atol=1e-4)


def test_exported_attention_shape_chain_two_signatures():
    # the Shape -> Gather -> Unsqueeze -> Concat -> Reshape -> Transpose -> Slice chain of exported
    # transformers, run on one session with two input shapes (exercises shape_inputs / shape specialization)
    N = helper.make_node
    c = {"zero": i64(0), "one": i64(1), "four": i64(4), "m1": i64(-1), "ax0": i64(0), "two": i64(2)}
    nodes = [N("Shape", ["x"], ["s"]),
             N("Gather", ["s", "zs"], ["b"], axis=0), N("Gather", ["s", "os"], ["t"], axis=0),
             N("Unsqueeze", ["b", "ax0"], ["b1"]), N("Unsqueeze", ["t", "ax0"], ["t1"]),
             N("Concat", ["b1", "t1", "four", "m1"], ["shp"], axis=0),
             N("Reshape", ["x", "shp"], ["r"]),
             N("Transpose", ["r"], ["tr"], perm=[0, 2, 1, 3]),
             N("Slice", ["tr", "one", "t1", "two"], ["y"]),
             N("Flatten", ["y"], ["f"], axis=2),
             N("Split", ["f"], ["p", "q"], axis=-1, num_outputs=2)]
    inits = [numpy_helper.from_array(v, k) for k, v in c.items()]
    inits += [numpy_helper.from_array(np.array(0, np.int64), "zs"), numpy_helper.from_array(np.array(1, np.int64),
                                                                                              "os")]
    g = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "S", 16])],
                          [helper.make_value_info(n, onnx.TypeProto()) for n in ("f", "p", "q")], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    sess = engine.Session(m)
    ref = ReferenceEvaluator(m)
    for shape in ((2, 5, 16), (1, 3, 16), (2, 5, 16)):
        x = f32(*shape)
        _compare(ref.run(None, {"x": x}), sess.run(None, {"x": x}), 0, 0, f"chain {shape}")
