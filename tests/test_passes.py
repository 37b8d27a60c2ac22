"""Graph passes (engine.passes): each rewrites what it should, leaves alone what it must not, and gives the same
results as the unoptimised graph (checked against onnx's ReferenceEvaluator too)."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh
from onnx.reference import ReferenceEvaluator

import engine
from engine.passes import ALL_PASSES, enabled_passes

RNG = np.random.default_rng(0)


def _c(name, a):
    return nh.from_array(np.asarray(a), name)


def _model(nodes, inputs, outputs, inits, opset=17):
    g = h.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _ops(sess):
    return [(st.node.domain, st.node.op_type) for st in sess._plan.steps]


def _same_three_ways(m, feeds, rtol=1e-5, atol=1e-6):
    on = engine.Session(m)
    off = engine.Session(m, engine.SessionOptions(passes="none"))
    a, b = on.run(feeds), off.run(feeds)
    ref = ReferenceEvaluator(m).run(None, feeds)
    for (k, va), vr in zip(a.items(), ref):
        np.testing.assert_allclose(va, b[k], rtol=rtol, atol=atol, err_msg=f"{k}: passes on vs off")
        np.testing.assert_allclose(va, vr, rtol=rtol, atol=atol, err_msg=f"{k}: vs ReferenceEvaluator")
    return on, off


def _gelu_nodes(variant: int):
    """Three ways exporters write x * 0.5 * (1 + erf(x / sqrt 2))."""
    if variant == 0:  # PyTorch: Div, Erf, Add, Mul(x), Mul(0.5)
        return [h.make_node("Div", ["x", "sqrt2"], ["d"]), h.make_node("Erf", ["d"], ["e"]),
                h.make_node("Add", ["e", "one"], ["a"]), h.make_node("Mul", ["x", "a"], ["m"]),
                h.make_node("Mul", ["m", "half"], ["y"])]
    if variant == 1:  # 0.5 first, constants on the left
        return [h.make_node("Mul", ["x", "rsqrt2"], ["d"]), h.make_node("Erf", ["d"], ["e"]),
                h.make_node("Add", ["one", "e"], ["a"]), h.make_node("Mul", ["half", "x"], ["hx"]),
                h.make_node("Mul", ["hx", "a"], ["y"])]
    return [h.make_node("Div", ["x", "sqrt2"], ["d"]), h.make_node("Erf", ["d"], ["e"]),  # used twice: no fusion
            h.make_node("Add", ["e", "one"], ["a"]), h.make_node("Mul", ["x", "a"], ["m"]),
            h.make_node("Mul", ["m", "half"], ["y0"]), h.make_node("Add", ["y0", "e"], ["y"])]


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_fuse_gelu_and_into_matmul(variant):
    w = RNG.standard_normal((8, 6)).astype(np.float32)
    b = RNG.standard_normal(6).astype(np.float32)
    pre = [h.make_node("MatMul", ["inp", "w"], ["t"]), h.make_node("Add", ["t", "b"], ["x"])]
    inits = [_c("w", w), _c("b", b), _c("sqrt2", np.float32(2 ** 0.5)), _c("rsqrt2", np.float32(2 ** -0.5)),
             _c("one", np.float32(1)), _c("half", np.float32(0.5))]
    m = _model(pre + _gelu_nodes(variant), [h.make_tensor_value_info("inp", T.FLOAT, ["N", 3, 8])],
               [h.make_tensor_value_info("y", T.FLOAT, None)], inits)
    on, off = _same_three_ways(m, {"inp": RNG.standard_normal((2, 3, 8)).astype(np.float32)})
    if variant < 2:
        assert _ops(on) == [("engine", "FusedMatMul")], _ops(on)
        assert on._plan.steps[0].node.attrs["activation"] == "gelu"
    else:
        assert ("", "Erf") in _ops(on)
    assert ("", "Erf") in _ops(off)


def test_fold_batchnorm_and_fuse_relu_into_conv():
    cw = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bn = [np.abs(RNG.standard_normal(4)).astype(np.float32) + 0.5 for _ in range(4)]
    m = _model([h.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]),
                h.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["d"], epsilon=1e-3),
                h.make_node("Relu", ["d"], ["y"])],
               [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 7, 7])], [h.make_tensor_value_info("y", T.FLOAT, None)],
               [_c("cw", cw)] + [_c(n, a) for n, a in zip(["s", "bb", "m", "v"], bn)])
    on, _ = _same_three_ways(m, {"x": RNG.standard_normal((2, 3, 7, 7)).astype(np.float32)}, rtol=1e-4, atol=1e-5)
    assert _ops(on) == [("engine", "FusedConv")]


def test_values_read_elsewhere_are_not_fused():
    w = RNG.standard_normal((4, 4)).astype(np.float32)
    m = _model([h.make_node("MatMul", ["x", "w"], ["t"]), h.make_node("Relu", ["t"], ["y"]),
                h.make_node("Identity", ["t"], ["t_out"])],
               [h.make_tensor_value_info("x", T.FLOAT, [2, 4])],
               [h.make_tensor_value_info("y", T.FLOAT, None), h.make_tensor_value_info("t_out", T.FLOAT, None)],
               [_c("w", w)])
    on, _ = _same_three_ways(m, {"x": RNG.standard_normal((2, 4)).astype(np.float32)})
    assert ("", "Relu") in _ops(on) and ("", "MatMul") in _ops(on)


def test_drop_identity_and_dropout():
    m = _model([h.make_node("Identity", ["x"], ["a"]), h.make_node("Dropout", ["a"], ["b"], ratio=0.3),
                h.make_node("Relu", ["b"], ["y"])],
               [h.make_tensor_value_info("x", T.FLOAT, [5])], [h.make_tensor_value_info("y", T.FLOAT, None)], [],
               opset=11)
    on, off = _same_three_ways(m, {"x": RNG.standard_normal(5).astype(np.float32)})
    assert _ops(on) == [("", "Relu")] and len(_ops(off)) == 3


def test_pass_switches(monkeypatch):
    assert enabled_passes("all") == list(ALL_PASSES)
    assert enabled_passes("none") == []
    assert enabled_passes(["fuse_gelu"]) == ["fuse_gelu"]
    with pytest.raises(ValueError, match="unknown pass"):
        enabled_passes(["nope"])
    monkeypatch.setenv("ENGINE_DISABLE_PASSES", "fuse_activation,drop_identity")
    assert "fuse_activation" not in enabled_passes("all") and "fuse_gelu" in enabled_passes("all")
    monkeypatch.setenv("ENGINE_DISABLE_PASSES", "all")
    assert enabled_passes("all") == []
    monkeypatch.setenv("ENGINE_DISABLE_PASSES", "bogus")
    with pytest.raises(ValueError, match="ENGINE_DISABLE_PASSES"):
        enabled_passes("all")
