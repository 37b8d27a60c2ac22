"""Which C path a Conv takes, and that each gives the reference's answer: 1-D convolutions as height-1 2-D ones on
the implicit GEMM, 3x3 stride-1 layers with enough channels on Winograd (and its switch), the residual of a fused
Conv + Add (+ Relu) on either path, and the numpy fallback where no C path applies."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import engine
import engine.kernels as K
from tests.ops.test_nn import _model, _run_both, rnd


@pytest.fixture
def calls(monkeypatch):
    """Counts the kernel bindings the Conv ops reach."""
    from engine._C import _kernels as _k

    return _count_calls(monkeypatch, ((_k, "conv2d_f32", "conv2d"), (_k, "wino_conv_f32", "winograd"),
                                      (_k, "dwconv2d_f32", "depthwise"), (_k, "gemm", "gemm"),
                                      (_k, "im2col_f32", "im2col")))


def _count_calls(monkeypatch, targets):
    """Replaces each (module, function name, key) of `targets` with a spy that counts its calls under `key`;
    returns the dict of counts."""
    seen = {key: 0 for _, _, key in targets}
    for mod, name, key in targets:
        orig = getattr(mod, name)

        def spy(*a, _orig=orig, _key=key, **kw):
            seen[_key] += 1
            return _orig(*a, **kw)
        monkeypatch.setattr(mod, name, spy)
    return seen


def _close(got, want, rtol=1e-4, atol=1e-4):
    for g, w in zip(got, want):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


@pytest.mark.parametrize("k,s,p,d,g,auto_pad", [(3, 1, (1, 1), 1, 1, None), (5, 2, (2, 1), 1, 1, None),
                                                (3, 1, (0, 0), 2, 1, None), (4, 3, (0, 0), 1, 2, "SAME_UPPER"),
                                                (3, 1, (1, 1), 1, 6, None), (1, 1, (0, 0), 1, 1, None),
                                                (7, 2, (0, 0), 1, 1, "SAME_LOWER")])
def test_conv1d_runs_as_2d(calls, k, s, p, d, g, auto_pad):
    c, m = 6, 6 if g == 6 else 10
    x, w, b = rnd(2, c, 37), rnd(m, c // g, k), rnd(m)
    attrs = dict(strides=[s], dilations=[d], group=g)
    if auto_pad:
        attrs["auto_pad"] = auto_pad
    else:
        attrs["pads"] = list(p)
    m_, feeds = _model("Conv", [x, w, b], consts=(1, 2), **attrs)
    got, want = _run_both(m_, feeds)
    _close(got, want)
    if (k, s, g) == (1, 1, 1):  # a 1x1 stride-1 layer: the pointwise GEMM, one call per image
        assert calls["gemm"] == x.shape[0] and calls["conv2d"] + calls["depthwise"] == 0, calls
    else:
        assert calls["conv2d"] + calls["depthwise"] == 1, calls


def _conv_add_relu(x_shape, w_shape, pads, group=1, residual=True, z_first=False):
    """Conv (stride 1, W and B initializers, W scaled by 1/sqrt(fan-in)) [+ Add of a graph input Z] + Relu on an
    input X of `x_shape` (1-D or 2-D by the rank of `w_shape`). z_first: the Add is Z + conv, not conv + Z.
    Returns (model, feeds)."""
    x = rnd(*x_shape)
    w = (rnd(*w_shape) / np.sqrt(np.prod(w_shape[1:]))).astype(np.float32)
    b = rnd(w_shape[0])
    nsp = len(w_shape) - 2
    out_sp = [x_shape[2 + i] + pads[i] + pads[i + nsp] - w_shape[2 + i] + 1 for i in range(nsp)]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=list(pads), group=group)]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)]
    feeds = {"x": x}
    last = "c"
    if residual:
        z = rnd(x_shape[0], w_shape[0], *out_sp)
        ins.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, z.shape))
        feeds["z"] = z
        nodes.append(helper.make_node("Add", ["z", "c"] if z_first else ["c", "z"], ["a"]))
        last = "a"
    nodes.append(helper.make_node("Relu", [last], ["y"]))
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model, feeds


@pytest.mark.parametrize("residual", [False, True], ids=["plain", "residual"])
def test_winograd_path_and_switch(calls, monkeypatch, residual):
    model, feeds = _conv_add_relu((1, 40, 16, 16), (36, 40, 3, 3), (1, 1, 1, 1), residual=residual)
    got, want = _run_both(model, feeds)
    # Winograd's transforms cost accuracy: ~1e-5 of the output scale (kernels.conv2d_winograd)
    _close(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want[0]).max()))
    assert calls["winograd"] == 1 and calls["conv2d"] == 0, calls
    monkeypatch.setenv("ENGINE_CONV_WINOGRAD", "0")
    got0, _ = _run_both(model, feeds)
    assert calls["winograd"] == 1 and calls["conv2d"] == 1, calls
    _close(got0, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("c,m,hw", [(16, 40, 16), (40, 36, 7)], ids=["few_channels", "small_map"])
def test_winograd_not_where_it_loses(calls, c, m, hw):
    model, feeds = _conv_add_relu((1, c, hw, hw), (m, c, 3, 3), (1, 1, 1, 1))
    got, want = _run_both(model, feeds)
    _close(got, want, rtol=1e-5, atol=1e-5)
    assert calls["winograd"] == 0 and calls["conv2d"] == 1, calls


@pytest.mark.parametrize("n,stride,residual", [(1, 1, False), (2, 1, True), (2, 2, False), (1, 2, True)], ids=str)
def test_col_gemm_path_for_large_weights_on_small_maps(calls, monkeypatch, n, stride, residual):
    """A 3x3 layer with at least COL_GEMM_MIN_WEIGHTS weights and a 7x7 output: im2col + one GEMM per image (the weights
    read in place, nothing packed), with bias, residual and Relu as the reference gives them."""
    from engine._C import _kernels as _k
    from engine.ops import accel

    packs = _count_calls(monkeypatch, ((_k, "conv2d_pack_f32", "pack"),))
    c, m = 128, 912  # 912 * 128 * 9 = 1,050,624 weights: just above the threshold
    assert m * c * 9 >= accel.COL_GEMM_MIN_WEIGHTS > (m - 16) * c * 9
    hw = 7 * stride
    x, w, b = rnd(n, c, hw, hw), (rnd(m, c, 3, 3) / np.sqrt(c * 9)).astype(np.float32), rnd(m)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[stride, stride])]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)]
    feeds = {"x": x}
    last = "c"
    if residual:
        feeds["z"] = rnd(n, m, 7, 7)
        ins.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, feeds["z"].shape))
        nodes.append(helper.make_node("Add", ["c", "z"], ["a"]))
        last = "a"
    nodes.append(helper.make_node("Relu", [last], ["y"]))
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    got, want = _run_both(model, feeds)
    _close(got, want, rtol=1e-4, atol=1e-4)
    assert calls["im2col"] == n and calls["gemm"] == n and calls["conv2d"] == 0, calls
    assert packs["pack"] == 0, "the im2col path reads the weights as they are"


def test_col_gemm_not_below_the_weight_threshold(calls):
    """The same 7x7 map with fewer weights (256 -> 256, 590k) stays on the implicit GEMM, which wins there."""
    model, feeds = _conv_add_relu((1, 256, 7, 7), (256, 256, 3, 3), (1, 1, 1, 1), residual=False)
    got, want = _run_both(model, feeds)
    _close(got, want, rtol=1e-4, atol=1e-4)
    assert calls["conv2d"] == 1 and calls["im2col"] == 0, calls


def test_conv3d_and_float64_stay_on_numpy(calls):
    m_, feeds = _model("Conv", [rnd(1, 2, 5, 5, 5), rnd(3, 2, 3, 3, 3)], consts=(1,), pads=[1] * 6)
    got, want = _run_both(m_, feeds)
    _close(got, want)
    m_, feeds = _model("Conv", [rnd(1, 2, 7, dtype=np.float64), rnd(3, 2, 3, dtype=np.float64)], consts=(1,))
    got, want = _run_both(m_, feeds)
    _close(got, want, rtol=1e-12, atol=1e-12)
    # (the im2col path of the 3-D case may reach the plain GEMM binding: that is the fallback)
    assert (calls["conv2d"], calls["winograd"], calls["depthwise"]) == (0, 0, 0), calls


def test_conv1d_residual_relu_fused(calls):
    """Conv1d + Add + Relu (an audio residual block) becomes one FusedConv whose residual and activation are applied
    by the height-1 2-D kernel."""
    model, feeds = _conv_add_relu((2, 6, 41), (8, 6, 3), (1, 1))
    sess = engine.Session(model)
    assert [st.node.op_type for st in sess._plan.steps] == ["FusedConv"]
    got, want = _run_both(model, feeds)
    _close(got, want, rtol=1e-5, atol=1e-5)
    assert calls["conv2d"] >= 1


def test_depthwise_residual_relu_fused(calls):
    """A depthwise Conv + Add + Relu: the direct kernel, then the residual, then the activation (in that order)."""
    model, feeds = _conv_add_relu((1, 12, 9, 11), (12, 1, 3, 3), (1, 1, 1, 1), group=12, z_first=True)
    assert [st.node.op_type for st in engine.Session(model)._plan.steps] == ["FusedConv"]
    got, want = _run_both(model, feeds)
    _close(got, want, rtol=1e-5, atol=1e-5)
    assert calls["depthwise"] == 1 and calls["conv2d"] == 0, calls


# ------------------------------------------------------------------------------ weights prepared at build
@pytest.fixture
def prep(monkeypatch):
    """Counts the weight preparations: implicit-GEMM packing, Winograd's filter transform and ConvTranspose's
    rearrangement for its GEMM."""
    from engine._C import _kernels as _k
    from engine.ops import accel_convt

    return _count_calls(monkeypatch, ((_k, "conv2d_pack_f32", "pack"), (_k, "wino_weights_f32", "wino"),
                                      (accel_convt, "convt_weights", "convt")))


def _conv_stack(hw):
    """x (1, 40, hw, hw) -> 3x3 Conv 40->36 + Relu (Winograd on a 16x16 map) -> 3x3 stride-2 Conv 36->24 + Relu
    (implicit GEMM) -> depthwise 3x3 -> 1x1 Conv 24->24 (pointwise GEMM on small maps) -> ConvTranspose 24->8 (k 2,
    stride 2). `hw` an int: a static input; a str: symbolic H and W. The first two become FusedConvs, whose numpy
    fallback holds an accelerated Conv of its own."""
    ws = {"w1": rnd(36, 40, 3, 3) / np.sqrt(360), "w2": rnd(24, 36, 3, 3) / np.sqrt(324), "w3": rnd(24, 1, 3, 3),
          "w5": rnd(24, 24, 1, 1) / np.sqrt(24), "w4": rnd(24, 8, 2, 2)}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in ws.items()]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a0"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a0"], ["a"]),
             helper.make_node("Conv", ["a", "w2"], ["b0"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["b0"], ["b"]),
             helper.make_node("Conv", ["b", "w3"], ["c0"], pads=[1, 1, 1, 1], group=24),
             helper.make_node("Conv", ["c0", "w5"], ["c"]),
             helper.make_node("ConvTranspose", ["c", "w4"], ["y"], strides=[2, 2])]
    ins = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 40, hw, hw])]
    graph = helper.make_graph(nodes, "g", ins, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def _check_runs(model, sess, sizes, prep, tol_scale=1.0):
    """Runs `sess` twice per input size: results as the reference's, and not one weight preparation."""
    from onnx.reference import ReferenceEvaluator

    built = dict(prep)
    for hw in sizes:
        x = rnd(1, 40, hw, hw)
        want = ReferenceEvaluator(model).run(None, {"x": x})
        for _ in range(2):
            got = sess.run(None, {"x": x})
            # Winograd's transforms cost accuracy: ~1e-5 of the output scale (kernels.conv2d_winograd)
            _close(got, want, rtol=1e-4, atol=1e-4 * tol_scale * float(np.abs(want[0]).max()))
    assert prep == built, f"weights prepared during Session.run: {prep} after building {built}"


def test_weights_prepared_at_build_static_shape(calls, prep):
    """With the input size fixed by the model, the session prepares each layer's weights for the path it will take
    (the Winograd layer needs no GEMM packing, the pointwise one none) while it is built; runs prepare nothing."""
    model = _conv_stack(16)
    sess = engine.Session(model)
    assert [st.node.op_type for st in sess._plan.steps] == ["FusedConv", "FusedConv", "Conv", "Conv", "ConvTranspose"]
    assert prep == {"pack": 1, "wino": 1, "convt": 1}, prep
    _check_runs(model, sess, [16], prep)
    assert calls["winograd"] == 2 and calls["conv2d"] == 2 and calls["depthwise"] == 2, calls


def test_weights_prepared_at_build_dynamic_shape(calls, prep):
    """With H and W symbolic, the Winograd-eligible layer gets both its transform and its GEMM packing at build (and
    the 1x1 layer its GEMM packing, for maps too big for the pointwise GEMM): a 16x16 input takes Winograd, an 8x8 one
    (8x8 outputs: too few pixels) the implicit GEMM, and neither run packs."""
    model = _conv_stack("hw")
    sess = engine.Session(model)
    assert prep == {"pack": 3, "wino": 1, "convt": 1}, prep
    _check_runs(model, sess, [16, 8], prep)
    assert calls["winograd"] == 2 and calls["conv2d"] == 2 + 4, calls


def test_isa_change_repacks_gemm_weights(prep):
    """The packed layout depends on the micro-kernel's tile: after an ISA switch (a test hook) the GEMM weights are
    repacked once, on the next run, and the results stay right."""
    from engine._C import _kernels as _k
    from engine.testing import force_isa

    tiles = {}
    for isa in _k.supported_isas():
        with force_isa(isa):
            tiles[isa] = _k.conv_tile()[0]
    if len(set(tiles.values())) < 2:
        pytest.skip(f"every ISA level this CPU runs has the same conv tile: {tiles}")
    isa_a, isa_b = next((a, b) for a in tiles for b in tiles if tiles[a] != tiles[b])
    model = _conv_stack(16)
    with force_isa(isa_a):
        sess = engine.Session(model)
    n_pack = prep["pack"]
    with force_isa(isa_b):
        x = rnd(1, 40, 16, 16)
        got = sess.run(None, {"x": x})
        assert prep["pack"] == n_pack + 1, prep
        sess.run(None, {"x": x})
        assert prep["pack"] == n_pack + 1, prep
    from onnx.reference import ReferenceEvaluator

    want = ReferenceEvaluator(model).run(None, {"x": x})
    _close(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want[0]).max()))
