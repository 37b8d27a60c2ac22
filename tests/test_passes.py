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


def _layernorm_nodes(opset, square="pow", axis=-1, flip=False, extra=None):
    """LayerNormalization over the last axis written out as exporters of older opsets do (axes an attribute before
    opset 18, an input from 18); square: "pow" (Pow(d, 2)) or "mul" (d * d); flip: constants on the left of Mul/Add;
    extra: "mean" (the mean is read again) or "d" (x - mean is a graph output too): no fusion then."""
    def mean(src, dst):
        if opset >= 18:
            return h.make_node("ReduceMean", [src, "ax"], [dst], keepdims=1)
        return h.make_node("ReduceMean", [src], [dst], axes=[axis], keepdims=1)
    nodes = [mean("x", "mu"), h.make_node("Sub", ["x", "mu"], ["d"]),
             h.make_node("Pow", ["d", "two"], ["d2"]) if square == "pow" else h.make_node("Mul", ["d", "d"], ["d2"]),
             mean("d2", "var"), h.make_node("Add", ["var", "eps"], ["ve"]), h.make_node("Sqrt", ["ve"], ["sd"]),
             h.make_node("Div", ["d", "sd"], ["n"]),
             h.make_node("Mul", ["gamma", "n"] if flip else ["n", "gamma"], ["ng"]),
             h.make_node("Add", ["beta", "ng"] if flip else ["ng", "beta"], ["y"])]
    if extra == "mean":
        nodes.append(h.make_node("Add", ["y", "mu"], ["y2"]))
    return nodes


@pytest.mark.parametrize("opset,square,flip", [(13, "pow", False), (13, "mul", True), (18, "pow", True),
                                               (17, "mul", False)])
def test_fuse_layernorm(opset, square, flip):
    c = 24
    inits = [_c("two", np.float32(2)), _c("eps", np.float32(1e-5)), _c("ax", np.int64([-1])),
             _c("gamma", RNG.standard_normal(c).astype(np.float32)), _c("beta", RNG.standard_normal(c).astype(np.float32))]
    m = _model(_layernorm_nodes(opset, square, flip=flip), [h.make_tensor_value_info("x", T.FLOAT, ["N", 5, c])],
               [h.make_tensor_value_info("y", T.FLOAT, None)], inits, opset=opset)
    x = (RNG.standard_normal((2, 5, c)) * 3 + 1).astype(np.float32)
    on, off = _same_three_ways(m, {"x": x}, rtol=1e-5, atol=1e-5)
    assert _ops(on) == [("engine", "LayerNorm")], _ops(on)
    assert ("", "ReduceMean") in _ops(off)


@pytest.mark.parametrize("case", ["mean_read_again", "d_is_output", "not_last_axis", "gamma_not_constant"])
def test_fuse_layernorm_leaves_alone(case):
    c = 6
    inits = [_c("two", np.float32(2)), _c("eps", np.float32(1e-5)),
             _c("beta", RNG.standard_normal(c).astype(np.float32))]
    ins = [h.make_tensor_value_info("x", T.FLOAT, [3, 4, c])]
    feeds = {"x": RNG.standard_normal((3, 4, c)).astype(np.float32)}
    outs = [h.make_tensor_value_info("y2" if case == "mean_read_again" else "y", T.FLOAT, None)]
    if case == "d_is_output":
        outs.append(h.make_tensor_value_info("d", T.FLOAT, None))
    if case == "gamma_not_constant":
        ins.append(h.make_tensor_value_info("gamma", T.FLOAT, [c]))
        feeds["gamma"] = RNG.standard_normal(c).astype(np.float32)
    else:
        inits.append(_c("gamma", RNG.standard_normal(c).astype(np.float32)))
    nodes = _layernorm_nodes(13, axis=1 if case == "not_last_axis" else -1,
                             extra="mean" if case == "mean_read_again" else None)
    if case == "not_last_axis":  # normalise over axis 1 (length 4): gamma and beta broadcast along the last axis
        feeds["x"] = RNG.standard_normal((3, 4, c)).astype(np.float32)
    m = _model(nodes, ins, outs, inits, opset=13)
    on, _ = _same_three_ways(m, feeds, rtol=1e-5, atol=1e-5)
    assert ("engine", "LayerNorm") not in _ops(on), _ops(on)


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


# ------------------------------------------------------------------------------------ fuse_conv_add (residuals)
def _bn_inits(prefix, c):
    r = np.random.default_rng(len(prefix) + c)
    vals = [r.uniform(0.8, 1.2, c), r.normal(0, 0.1, c), r.normal(0, 0.1, c), r.uniform(0.8, 1.5, c)]
    return [_c(f"{prefix}_{k}", v.astype(np.float32)) for k, v in zip("sbmv", vals)]


def _bn(prefix, x, y):
    return h.make_node("BatchNormalization", [x] + [f"{prefix}_{k}" for k in "sbmv"], [y], epsilon=1e-5)


def _basic_block(x_shape, c=4, shortcut_first=False, downsample=False, bias=False):
    """A ResNet basic block as exporters write it: Conv+BN+Relu, Conv+BN, Add(., shortcut), Relu; the shortcut is
    the block input, or a strided 1x1 Conv+BN (downsample). shortcut_first: Add(shortcut, main)."""
    cin = x_shape[1] if isinstance(x_shape[1], int) else c
    s = 2 if downsample else 1
    inits = [_c("w1", RNG.standard_normal((c, cin, 3, 3)).astype(np.float32) * 0.3),
             _c("w2", RNG.standard_normal((c, c, 3, 3)).astype(np.float32) * 0.3)] + _bn_inits("bn1", c) + \
        _bn_inits("bn2", c)
    b2 = ["b2"] if bias else []
    if bias:
        inits.append(_c("b2", RNG.standard_normal(c).astype(np.float32)))
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], strides=[s, s]), _bn("bn1", "c1", "n1"),
             h.make_node("Relu", ["n1"], ["r1"]),
             h.make_node("Conv", ["r1", "w2"] + b2, ["c2"], pads=[1, 1, 1, 1]), _bn("bn2", "c2", "n2")]
    short = "x"
    if downsample:
        inits += [_c("ws", RNG.standard_normal((c, cin, 1, 1)).astype(np.float32) * 0.5)] + _bn_inits("bns", c)
        nodes += [h.make_node("Conv", ["x", "ws"], ["cs"], strides=[s, s]), _bn("bns", "cs", "ns")]
        short = "ns"
    nodes += [h.make_node("Add", [short, "n2"] if shortcut_first else ["n2", short], ["a"]),
              h.make_node("Relu", ["a"], ["y"])]
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, x_shape)],
                  [h.make_tensor_value_info("y", T.FLOAT, None)], inits)


def _fused_convs(sess):
    return [st.node for st in sess._plan.steps if st.node.op_type == "FusedConv"]


@pytest.mark.parametrize("shortcut_first", [False, True], ids=["conv_first", "shortcut_first"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_fuse_conv_add_resnet_basic_block(shortcut_first, bias):
    m = _basic_block([2, 4, 6, 6], shortcut_first=shortcut_first, bias=bias)
    on, off = _same_three_ways(m, {"x": RNG.standard_normal((2, 4, 6, 6)).astype(np.float32)}, rtol=1e-4,
                               atol=1e-5)
    # 7 nodes -> 2: Conv+BN+Relu, and Conv+BN+Add+Relu with the block input as the residual
    assert _ops(on) == [("engine", "FusedConv")] * 2, _ops(on)
    first, second = _fused_convs(on)
    assert len(first.inputs) == 3 and first.attrs["activation"] == "relu"
    assert second.inputs[3] == "x" and second.attrs["activation"] == "relu" and second.outputs == ["y"]
    assert second.inputs[2] != "" and second.inputs[2] in on._plan.consts  # the folded BN gives it a bias
    assert ("", "Add") in _ops(off) and len(_ops(off)) == 7


def test_fused_conv_residual_runs_in_the_c_epilogue(monkeypatch):
    """The fused residual reaches the C kernel's epilogue (the conv binding's residual argument), not a numpy add."""
    from engine._C import _kernels as _k

    seen = []
    orig = _k.conv2d_f32

    def spy(g, x, wp, mr, bias, z, *rest):
        seen.append(z is not None)
        return orig(g, x, wp, mr, bias, z, *rest)

    monkeypatch.setattr(_k, "conv2d_f32", spy)
    monkeypatch.setenv("ENGINE_CONV_WINOGRAD", "0")  # 4 channels would not take it anyway; be explicit
    m = _basic_block([2, 4, 6, 6], bias=True)
    on, _ = _same_three_ways(m, {"x": RNG.standard_normal((2, 4, 6, 6)).astype(np.float32)}, rtol=1e-4, atol=1e-5)
    assert True in seen and False in seen, seen


def test_fuse_conv_add_downsample_block_symbolic_batch():
    """Both Add operands are Conv+BN outputs (strided shortcut); the batch dim is symbolic and equal on both
    sides; one Session runs two batch sizes."""
    m = _basic_block(["N", 3, 8, 8], downsample=True)
    for n in (1, 3):
        on, off = _same_three_ways(m, {"x": RNG.standard_normal((n, 3, 8, 8)).astype(np.float32)}, rtol=1e-4,
                                   atol=1e-5)
    ops = _ops(on)
    assert ("", "Add") not in ops and ("", "Relu") not in ops and ("", "BatchNormalization") not in ops, ops
    assert sorted(ops) == [("", "Conv"), ("engine", "FusedConv"), ("engine", "FusedConv")], ops
    res = [n for n in _fused_convs(on) if len(n.inputs) == 4]
    assert len(res) == 1 and res[0].attrs["activation"] == "relu"


def test_fuse_conv_add_switch():
    m = _basic_block([1, 4, 5, 5])
    x = {"x": RNG.standard_normal((1, 4, 5, 5)).astype(np.float32)}
    only_act = engine.Session(m, engine.SessionOptions(passes=[p for p in ALL_PASSES if p != "fuse_conv_add"]))
    assert _ops(only_act) == [("engine", "FusedConv"), ("", "Conv"), ("", "Add"), ("", "Relu")], _ops(only_act)
    no_act = engine.Session(m, engine.SessionOptions(passes=[p for p in ALL_PASSES if p != "fuse_activation"]))
    assert _ops(no_act) == [("", "Conv"), ("", "Relu"), ("engine", "FusedConv"), ("", "Relu")], _ops(no_act)
    assert "activation" not in _fused_convs(no_act)[0].attrs
    ref = engine.Session(m, engine.SessionOptions(passes="none")).run(x)["y"]
    for s in (only_act, no_act):
        np.testing.assert_allclose(s.run(x)["y"], ref, rtol=1e-4, atol=1e-5)


def _conv_add(z_shape, x_shape=(1, 4, 5, 5), extra_reader=False, z_is_output=False):
    w = RNG.standard_normal((4, 4, 3, 3)).astype(np.float32)
    nodes = [h.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), h.make_node("Add", ["c", "z"], ["a"]),
             h.make_node("Relu", ["a"], ["y"])]
    outs = [h.make_tensor_value_info("y", T.FLOAT, None)]
    if extra_reader:
        nodes.append(h.make_node("Neg", ["c"], ["n"]))
        outs.append(h.make_tensor_value_info("n", T.FLOAT, None))
    if z_is_output:
        outs.append(h.make_tensor_value_info("c", T.FLOAT, None))
    return _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, x_shape), h.make_tensor_value_info("z", T.FLOAT,
                                                                                                      z_shape)],
                  outs, [_c("w", w)])


@pytest.mark.parametrize("case", ["second_reader", "graph_output", "z_broadcasts_conv", "z_broadcast_into_conv",
                                  "z_rank_bigger", "z_shape_unknown", "x_shape_unknown", "other_symbol"])
def test_fuse_conv_add_leaves_alone(case):
    x_shape, z_shape, kw = [1, 4, 5, 5], [1, 4, 5, 5], {}
    if case == "second_reader":
        kw["extra_reader"] = True
    elif case == "graph_output":
        kw["z_is_output"] = True
    elif case == "z_broadcasts_conv":     # Y (3, 4, 5, 5) is bigger than the conv output (1, 4, 5, 5)
        z_shape = [3, 4, 5, 5]
    elif case == "z_broadcast_into_conv":  # a per-channel Z (4, 1, 1): Y has the conv's shape, but Z broadcasts
        z_shape = [4, 1, 1]
    elif case == "z_rank_bigger":
        z_shape = [2, 1, 4, 5, 5]
    elif case == "z_shape_unknown":
        z_shape = None
    elif case == "x_shape_unknown":
        x_shape = None
    elif case == "other_symbol":          # batch "N" vs "M": may differ (M > 1 = N broadcasts the conv output)
        x_shape, z_shape = ["N", 4, 5, 5], ["M", 4, 5, 5]
    m = _conv_add(z_shape, x_shape, **kw)
    zs = {"z_broadcasts_conv": (3, 4, 5, 5), "z_broadcast_into_conv": (4, 1, 1),
          "z_rank_bigger": (2, 1, 4, 5, 5), "other_symbol": (2, 4, 5, 5)}.get(case, (1, 4, 5, 5))
    feeds = {"x": RNG.standard_normal((1, 4, 5, 5)).astype(np.float32), "z": RNG.standard_normal(zs).astype(np.float32)}
    on, _ = _same_three_ways(m, feeds, rtol=1e-5, atol=1e-5)
    assert ("", "Add") in _ops(on), _ops(on)
    assert all(len(n.inputs) == 3 for n in _fused_convs(on))


def test_fuse_conv_add_fires_on_the_plain_pattern():
    """The positive twin of the cases above (same builder): known equal shapes are fused."""
    m = _conv_add([1, 4, 5, 5])
    feeds = {"x": RNG.standard_normal((1, 4, 5, 5)).astype(np.float32),
             "z": RNG.standard_normal((1, 4, 5, 5)).astype(np.float32)}
    on, _ = _same_three_ways(m, feeds)
    assert _ops(on) == [("engine", "FusedConv")]
    (n,) = _fused_convs(on)
    assert n.inputs == ["x", "w", "", "z"] and n.attrs["activation"] == "relu"


def _fused_conv_model(z_shape, act):
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    attrs = dict(pads=[1, 1, 1, 1], kernel_shape=[3, 3])
    if act:
        attrs.update(activation="clip", act_p0=-0.5, act_p1=0.5)
    node = h.make_node("FusedConv", ["x", "w", "", "z"], ["y"], domain="engine", **attrs)
    g = h.make_graph([node], "g", [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 5, 5]),
                                   h.make_tensor_value_info("z", T.FLOAT, z_shape)],
                     [h.make_tensor_value_info("y", T.FLOAT, None)], [_c("w", w)])
    return h.make_model(g, opset_imports=[h.make_opsetid("", 17), h.make_opsetid("engine", 1)]), w


@pytest.mark.parametrize("z_shape", [(2, 4, 5, 5), (4, 1, 1)], ids=["same", "broadcast"])
@pytest.mark.parametrize("act", [False, True], ids=["noact", "clip"])
def test_fused_conv_residual_op(z_shape, act):
    """engine::FusedConv(X, W, "", Z) is act(conv(X, W) + Z) on its own, also when Z broadcasts at run time."""
    m, w = _fused_conv_model(list(z_shape), act)
    x = RNG.standard_normal((2, 3, 5, 5)).astype(np.float32)
    z = RNG.standard_normal(z_shape).astype(np.float32)
    conv = _model([h.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                  [h.make_tensor_value_info("x", T.FLOAT, [2, 3, 5, 5])],
                  [h.make_tensor_value_info("y", T.FLOAT, None)], [_c("w", w)])
    want = ReferenceEvaluator(conv).run(None, {"x": x})[0] + z
    if act:
        want = np.clip(want, -0.5, 0.5)
    z_before = z.copy()
    got = engine.Session(m).run({"x": x, "z": z})["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(z, z_before)  # the residual input is never written


def test_fold_batchnorm_drops_the_replaced_weights():
    """The Conv weights a fold replaces are not kept (the session would hold the model's weights twice), unless
    something else still reads them."""
    cw = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bn = [np.abs(RNG.standard_normal(4)).astype(np.float32) + 0.5 for _ in range(4)]
    inits = [_c("cw", cw)] + [_c(n, a) for n, a in zip(["s", "bb", "m", "v"], bn)]
    nodes = [h.make_node("Conv", ["x", "cw"], ["c"], pads=[1, 1, 1, 1]),
             h.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["y"])]
    x = {"x": RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)}
    outs = [h.make_tensor_value_info("y", T.FLOAT, None)]
    m = _model(nodes, [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 5, 5])], outs, inits)
    on, _ = _same_three_ways(m, x, rtol=1e-4, atol=1e-5)
    assert not {"cw", "s", "bb", "m", "v"} & set(on._plan.consts), sorted(on._plan.consts)
    # the scale is also read by another node: it stays, the others go
    m = _model(nodes + [h.make_node("Add", ["s", "s"], ["z"])], [h.make_tensor_value_info("x", T.FLOAT,
                                                                                              [1, 3, 5, 5])],
               outs + [h.make_tensor_value_info("z", T.FLOAT, None)], inits)
    on, _ = _same_three_ways(m, x, rtol=1e-4, atol=1e-5)
    assert "s" in on._plan.consts and not {"cw", "bb", "m", "v"} & set(on._plan.consts)
