"""1x1 stride-1 unpadded convolutions on small planes run as one GEMM per image (W @ X, the activations read in
place, no im2col), with bias, residual and activation in the GEMM's epilogue; larger planes, strides and pads stay
on the implicit GEMM. Each case is checked against onnx's ReferenceEvaluator."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.ops import accel
from tests.ops.test_conv_paths import calls  # noqa: F401  (fixture: counts the kernel bindings reached)
from tests.ops.test_nn import _run_both, rnd


def _pointwise_model(n, c, m, h, w, act=None, residual=False, bias=True, strides=(1, 1), pads=(0, 0, 0, 0)):
    x = rnd(n, c, h, w)
    wt = (rnd(m, c, 1, 1) / np.sqrt(c)).astype(np.float32)
    inits = [numpy_helper.from_array(wt, "w")]
    conv_in = ["x", "w"]
    if bias:
        inits.append(numpy_helper.from_array(rnd(m), "b"))
        conv_in.append("b")
    nodes = [helper.make_node("Conv", conv_in, ["c"], strides=list(strides), pads=list(pads))]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)]
    feeds = {"x": x}
    last = "c"
    if residual:
        oh, ow = (h + pads[0] + pads[2] - 1) // strides[0] + 1, (w + pads[1] + pads[3] - 1) // strides[1] + 1
        z = rnd(n, m, oh, ow)
        ins.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, z.shape))
        feeds["z"] = z
        nodes.append(helper.make_node("Add", ["c", "z"], ["a"]))
        last = "a"
    if act == "relu6":
        inits += [numpy_helper.from_array(np.array(0, np.float32), "lo"),
                  numpy_helper.from_array(np.array(6, np.float32), "hi")]
        nodes.append(helper.make_node("Clip", [last, "lo", "hi"], ["y"]))
    elif act is not None:
        nodes.append(helper.make_node(act, [last], ["y"]))
    else:
        nodes.append(helper.make_node("Identity", [last], ["y"]))
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, feeds


def _close(got, want):
    assert len(got) == len(want) == 1
    assert got[0].shape == want[0].shape
    np.testing.assert_allclose(got[0], want[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("n,c,m,h,w", [(1, 16, 24, 7, 7), (2, 33, 17, 5, 9), (1, 3, 70, 1, 1), (3, 8, 8, 28, 28),
                                       (1, 1, 5, 6, 6)])
@pytest.mark.parametrize("act,residual", [(None, False), ("Relu", False), ("relu6", False), ("Relu", True),
                                          (None, True), ("Sigmoid", True)])
def test_pointwise_gemm_path(calls, n, c, m, h, w, act, residual):  # noqa: F811
    model, feeds = _pointwise_model(n, c, m, h, w, act, residual)
    got, want = _run_both(model, feeds)
    _close(got, want)
    assert calls["gemm"] == n and calls["conv2d"] == 0, calls


def test_pointwise_without_bias(calls):  # noqa: F811
    model, feeds = _pointwise_model(2, 12, 20, 9, 9, "Relu", residual=True, bias=False)
    got, want = _run_both(model, feeds)
    _close(got, want)
    assert calls["gemm"] == 2 and calls["conv2d"] == 0, calls


@pytest.mark.parametrize("strides,pads", [((2, 2), (0, 0, 0, 0)), ((1, 1), (1, 0, 0, 1))])
def test_pointwise_strided_or_padded_stays_implicit(calls, strides, pads):  # noqa: F811
    model, feeds = _pointwise_model(1, 10, 12, 8, 8, "Relu", strides=strides, pads=pads)
    got, want = _run_both(model, feeds)
    _close(got, want)
    assert calls["gemm"] == 0 and calls["conv2d"] == 1, calls


def test_pointwise_large_plane_stays_implicit(calls):  # noqa: F811
    side = int(np.sqrt(accel.POINTWISE_GEMM_MAX_PIXELS)) + 2  # just over the limit
    model, feeds = _pointwise_model(1, 8, 16, side, side, "Relu", residual=True)
    got, want = _run_both(model, feeds)
    _close(got, want)
    assert calls["gemm"] == 0 and calls["conv2d"] == 1, calls


def test_pointwise_plan_follows_the_input_shape(calls):  # noqa: F811
    """A dynamic-size input: the same node takes the GEMM on a small image and the implicit GEMM on a large one."""
    import engine

    model, _ = _pointwise_model(1, 6, 10, 4, 4, "Relu")
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_param = "W"
    sess = engine.Session(model)
    from onnx.reference import ReferenceEvaluator

    ref = ReferenceEvaluator(model)
    for side, path in ((6, "gemm"), (40, "conv2d"), (5, "gemm")):
        before = dict(calls)
        x = rnd(1, 6, side, side)
        got = sess.run(None, {"x": x})
        np.testing.assert_allclose(got[0], ref.run(None, {"x": x})[0], rtol=1e-4, atol=1e-4)
        assert calls[path] == before[path] + 1, (side, calls)
