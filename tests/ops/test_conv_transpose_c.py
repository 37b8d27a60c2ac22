"""ConvTranspose on the C path (engine.ops.accel_convt -> engine.kernels_convt -> csrc/kernels/convt): single-node
models against onnx.reference over strides, pads, output_padding, dilations, groups, kernels 1-5, odd sizes,
batch 2, channels that are not multiples of 8, bias or not, output_shape and auto_pad; a check that the C driver
really ran (its binding is wrapped with a counter); the C path against the numpy path where onnx.reference cannot
run; col2im alone against a numpy scatter-add; every ISA level this CPU runs (the `isa` fixture), threaded vs
serial, the column block size, and bad input.

onnx.reference's ConvTranspose is wrong for group > 1 (it slices W's input-channel axis by M/group, crashes when
M/group != C/group, and adds B[0] to every group's channels), so for groups the oracle runs it once per group
with group=1 on the group's slices of X, W and B and concatenates (tested below on a depthwise case whose bias
shows the difference)."""
from __future__ import annotations

import itertools
import os

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

import engine
import engine.kernels_convt as KC
import engine.ops.accel_convt as A
from engine._C import _kernels as _k
from engine.testing import EPS32, quick, rng

OPSET = 17


# ---------------------------------------------------------------------------------------------- helpers
def make_model(x_shape, w, b, attrs, w_const=True, b_const=True, dtype=TensorProto.FLOAT, opset=OPSET):
    ins = ["x", "w"] + (["b"] if b is not None else [])
    init, vi = [], [helper.make_tensor_value_info("x", dtype, x_shape)]
    for name, val, const in (("w", w, w_const), ("b", b, b_const)):
        if val is None:
            continue
        if const:
            init.append(numpy_helper.from_array(val, name))
        else:
            vi.append(helper.make_tensor_value_info(name, dtype, val.shape))
    node = helper.make_node("ConvTranspose", ins, ["y"], **attrs)
    g = helper.make_graph([node], "g", vi, [helper.make_tensor_value_info("y", dtype, None)], initializer=init)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def reference(x, w, b, attrs):
    """onnx.reference, group by group (see the module docstring)."""
    group = attrs.get("group", 1)
    a1 = {k: v for k, v in attrs.items() if k != "group"}
    if group == 1:
        return _ref1(x, w, b, a1)
    c, mg = w.shape[:2]
    cg = c // group
    outs = [_ref1(x[:, g * cg:(g + 1) * cg], w[g * cg:(g + 1) * cg], None if b is None else b[g * mg:(g + 1) * mg], a1)
            for g in range(group)]
    return np.concatenate(outs, axis=1)


def _ref1(x, w, b, attrs):
    m = make_model(x.shape, w, b, attrs, w_const=False, b_const=False)
    feeds = {"x": x, "w": w}
    if b is not None:
        feeds["b"] = b
    return ReferenceEvaluator(m).run(None, feeds)[0]


@pytest.fixture
def c_calls(monkeypatch):
    """Counts the calls of the C driver's binding made by the op."""
    calls = []
    orig = A._convt2d

    def wrapped(*args):
        calls.append(args[-1])
        return orig(*args)
    monkeypatch.setattr(A, "_convt2d", wrapped)
    return calls


def engine_run(x, w, b, attrs, **kw):
    m = make_model(x.shape, w, b, attrs, **kw)
    feeds = {"x": x}
    if not kw.get("w_const", True):
        feeds["w"] = w
    if b is not None and not kw.get("b_const", True):
        feeds["b"] = b
    return engine.Session(m).run(None, feeds)[0]


def numpy_path(x, w, b, attrs, monkeypatch):
    """The same node on engine's numpy implementation (the C wrapper declines every node)."""
    with monkeypatch.context() as mp:
        mp.setattr(A, "_fast", lambda ctx, base: None)
        return engine_run(x, w, b, attrs)


def magnitude(x, w, b, attrs):
    return reference(np.abs(x), np.abs(w), None if b is None else np.abs(b), attrs).astype(np.float64)


def assert_close(got, x, w, b, attrs, want=None, what="", mag=None):
    """|got - ref| <= (C/group + taps + 2) eps (|b| + sum |w x|) elementwise, the sum of magnitudes from the same
    oracle on |x|, |w|, |b|."""
    if want is None:
        want = reference(x, w, b, attrs)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == np.float32
    if mag is None:
        mag = magnitude(x, w, b, attrs)
    terms = w.shape[0] // attrs.get("group", 1) + w.shape[2] * w.shape[3] + 2
    bound = terms * EPS32 * mag + 1e-30
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= bound), f"{what}: max err/bound {np.max(err / bound):.3g}"


# ---------------------------------------------------------------------------------------------- the sweep
def _cases():
    """A seeded selection from the attribute space (every value of each axis appears), plus fixed corner cases."""
    g = np.random.default_rng(1234)
    cases = []
    kinds = ["plain", "pads", "output_padding", "output_shape", "SAME_UPPER", "SAME_LOWER", "VALID"]
    groups = [(1, 3, 5), (1, 9, 7), (2, 6, 4), (2, 10, 6), ("dw", 5, 5), ("dw", 12, 12), (3, 9, 3)]
    for i in range(36 if not quick() else 14):
        k = (int(g.integers(1, 6)), int(g.integers(1, 6)))
        s = (int(g.integers(1, 4)), int(g.integers(1, 4)))
        d = (int(g.integers(1, 3)), int(g.integers(1, 3)))
        grp, c, m = groups[i % len(groups)]
        hw = (int(g.integers(1, 10)), int(g.integers(1, 12)))
        cases.append(dict(k=k, s=s, d=d, group=grp, c=c, m=m, hw=hw, kind=kinds[i % len(kinds)], bias=bool(i % 3),
                          n=2 if i % 2 else 1, seed=i))
    return cases


def _attrs(case, r):
    k, s, d, kind = case["k"], case["s"], case["d"], case["kind"]
    group = case["c"] if case["group"] == "dw" else case["group"]
    a = {"strides": list(s), "dilations": list(d), "group": group}
    if case["seed"] % 4 == 0:
        a["kernel_shape"] = list(k)
    natural = [s[i] * (case["hw"][i] - 1) + (k[i] - 1) * d[i] + 1 for i in range(2)]
    if kind == "pads":  # pads that leave a non-empty output
        p = [int(r.integers(0, max(1, natural[i % 2] // 2))) for i in range(4)]
        a["pads"] = p
    elif kind == "output_padding":
        a["output_padding"] = [int(r.integers(0, max(s[i], d[i]))) for i in range(2)]
        a["pads"] = [int(r.integers(0, 2)) for _ in range(4)]
        if any(natural[i] + a["output_padding"][i] - a["pads"][i] - a["pads"][i + 2] < 1 for i in range(2)):
            a["pads"] = [0, 0, 0, 0]
    elif kind == "output_shape":  # the natural size or one more (the spec, onnx.reference and ORT agree there;
        # other sizes: test_c_path_matches_numpy_path)
        a["output_shape"] = [natural[i] + (int(r.integers(0, 2)) if s[i] > 1 else 0) for i in range(2)]
    elif kind in ("SAME_UPPER", "SAME_LOWER", "VALID"):
        a["auto_pad"] = kind
    return a


@pytest.mark.parametrize("case", _cases(), ids=lambda c: f"{c['kind']}-g{c['group']}-k{c['k']}-s{c['s']}-d{c['d']}")
def test_sweep_against_reference(case, c_calls):
    r = rng("convt-sweep", case["seed"])
    attrs = _attrs(case, r)
    group = attrs["group"]
    c, m = case["c"], case["m"]
    x = r.standard_normal((case["n"], c) + case["hw"]).astype(np.float32)
    w = r.standard_normal((c, m // group) + case["k"]).astype(np.float32)
    b = r.standard_normal(m).astype(np.float32) if case["bias"] else None
    got = engine_run(x, w, b, attrs)
    assert len(c_calls) == 1, "the C driver did not run"
    assert_close(got, x, w, b, attrs, what=str(attrs))


# named corner cases: each a reason the sweep might miss
CORNERS = {
    "decoder_k4s2p1": ((1, 16, 7, 9), 8, dict(kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1]), True),
    "k2s2": ((2, 12, 5, 5), 6, dict(kernel_shape=[2, 2], strides=[2, 2]), True),
    "1x1_direct": ((2, 5, 4, 6), 7, dict(kernel_shape=[1, 1]), True),
    "1x1_direct_groups": ((2, 6, 4, 6), 4, dict(kernel_shape=[1, 1], group=2), True),
    "1x1_strided": ((1, 5, 4, 6), 3, dict(kernel_shape=[1, 1], strides=[2, 3]), True),
    "1x1_output_padding": ((1, 5, 4, 6), 3, dict(kernel_shape=[1, 1], strides=[2, 2], output_padding=[1, 1]), True),
    "kernel_larger_than_input": ((1, 3, 2, 1), 4, dict(kernel_shape=[5, 4], strides=[1, 2]), True),
    "pads_eat_everything_but_one": ((1, 2, 3, 3), 2, dict(kernel_shape=[3, 3], pads=[2, 2, 2, 2]), True),
    "dilation3_stride3": ((2, 3, 4, 5), 5, dict(kernel_shape=[3, 2], strides=[3, 3], dilations=[3, 2]), False),
    "depthwise_bias": ((2, 6, 5, 7), 6, dict(kernel_shape=[3, 3], strides=[2, 2], group=6, pads=[1, 1, 1, 1]), True),
    "output_shape_4d": ((1, 3, 4, 4), 2, dict(kernel_shape=[3, 3], strides=[2, 2], output_shape=[1, 2, 9, 9]), True),
    "wide_odd": ((1, 9, 3, 37), 11, dict(kernel_shape=[3, 5], strides=[2, 2], pads=[0, 2, 1, 1]), True),
}


@pytest.mark.parametrize("name", list(CORNERS))
def test_corner_cases(name, c_calls):
    xs, m, attrs, bias = CORNERS[name]
    r = rng("convt-corner", name)
    group = attrs.get("group", 1)
    x = r.standard_normal(xs).astype(np.float32)
    w = r.standard_normal((xs[1], m // group) + tuple(attrs["kernel_shape"])).astype(np.float32)
    b = r.standard_normal(m).astype(np.float32) if bias else None
    got = engine_run(x, w, b, attrs)
    assert len(c_calls) == 1
    ref_attrs = dict(attrs)
    if len(attrs.get("output_shape", ())) == 4:  # engine takes (N, C, H, W) too; onnx.reference only (H, W)
        ref_attrs["output_shape"] = attrs["output_shape"][2:]
    assert_close(got, x, w, b, ref_attrs, what=name)


def test_reference_group_workaround_is_needed():
    """The per-group oracle above exists because onnx.reference adds B[0] to every group: if onnx fixes that, the
    workaround can go (this test then fails and says so)."""
    r = rng("convt-refbug")
    x = r.standard_normal((1, 4, 3, 3)).astype(np.float32)
    w = r.standard_normal((4, 1, 2, 2)).astype(np.float32)
    b = np.array([1, 2, 3, 4], np.float32)
    a = {"group": 4}
    whole = ReferenceEvaluator(make_model(x.shape, w, b, a)).run(None, {"x": x})[0]
    per_group = reference(x, w, b, a)
    nobias = reference(x, w, None, a)
    assert np.allclose(per_group - nobias, b.reshape(1, 4, 1, 1), atol=1e-5)
    assert not np.allclose(whole, per_group, atol=1e-3), "onnx.reference fixed group>1 bias: drop the workaround"


# --------------------------------------------------------------- runtime W / B, where the reference cannot run
def test_runtime_weights_and_bias(c_calls):
    r = rng("convt-runtime")
    x = r.standard_normal((2, 6, 5, 4)).astype(np.float32)
    w = r.standard_normal((6, 2, 3, 3)).astype(np.float32)
    b = r.standard_normal(4).astype(np.float32)
    attrs = dict(strides=[2, 1], pads=[1, 0, 0, 1], group=2)
    for w_const, b_const in [(False, True), (True, False), (False, False)]:
        got = engine_run(x, w, b, attrs, w_const=w_const, b_const=b_const)
        assert_close(got, x, w, b, attrs, what=f"w_const={w_const} b_const={b_const}")
    assert len(c_calls) == 3


@pytest.mark.parametrize("attrs", [
    dict(strides=[2, 2], output_shape=[9, 9], auto_pad="SAME_UPPER"),   # negative total padding, odd
    dict(strides=[2, 2], output_shape=[10, 8], auto_pad="SAME_LOWER"),
    dict(strides=[2, 2], output_shape=[12, 11]),                        # larger than natural: zero rows at the end
    dict(strides=[2, 2], output_shape=[6, 5], pads=[0, 1, 1, 0]),       # output_shape with pads (numpy path rules)
    dict(strides=[3, 2], output_shape=[5, 6], auto_pad="VALID"),
    dict(strides=[2, 2], output_shape=[7, 4]),                          # smaller than natural: pads split
    dict(strides=[3, 3], output_shape=[13, 11]),                        # 2 larger than natural
], ids=str)
def test_c_path_matches_numpy_path(attrs, c_calls, monkeypatch):
    """Geometries onnx.reference rejects or gets wrong: the C path must agree with engine's numpy path, which owns
    the op's semantics."""
    r = rng("convt-vs-numpy", str(attrs))
    x = r.standard_normal((2, 3, 4, 3)).astype(np.float32)
    w = r.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = r.standard_normal(2).astype(np.float32)
    got = engine_run(x, w, b, attrs)
    assert len(c_calls) == 1
    want = numpy_path(x, w, b, attrs, monkeypatch)
    assert len(c_calls) == 1, "the numpy path ran the C driver"
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_empty_inputs(c_calls, monkeypatch):
    r = rng("convt-empty")
    w = r.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = r.standard_normal(2).astype(np.float32)
    for xs in [(0, 3, 4, 4), (1, 3, 0, 4), (2, 3, 0, 0)]:
        x = np.zeros(xs, np.float32)
        got = engine_run(x, w, b, dict(strides=[2, 2]))
        want = numpy_path(x, w, b, dict(strides=[2, 2]), monkeypatch)
        assert got.shape == want.shape, xs
        np.testing.assert_array_equal(got, want)
    assert len(c_calls) == 3


# ---------------------------------------------------------------------------------------------- fallbacks
def test_other_dtypes_and_ranks_use_numpy(c_calls):
    r = rng("convt-fallback")
    x = r.standard_normal((1, 2, 4, 4))
    w = r.standard_normal((2, 3, 3, 3))
    got = engine_run(x, w, None, dict(strides=[2, 2]), dtype=TensorProto.DOUBLE)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, _ref1(x, w, None, dict(strides=[2, 2])), rtol=1e-12, atol=1e-12)
    x1 = r.standard_normal((1, 2, 5)).astype(np.float32)
    w1 = r.standard_normal((2, 3, 3)).astype(np.float32)
    got1 = engine_run(x1, w1, None, dict(strides=[2]))
    np.testing.assert_allclose(got1, _ref1(x1, w1, None, dict(strides=[2])), rtol=1e-5, atol=1e-5)
    assert c_calls == []


def test_bad_input_raises():
    r = rng("convt-bad")
    w = r.standard_normal((3, 2, 3, 3)).astype(np.float32)
    m = make_model((1, 3, 4, 4), w, None, dict(strides=[2, 2]))
    s = engine.Session(m)
    with pytest.raises(Exception, match="channels|shape"):
        s.run(None, {"x": np.zeros((1, 4, 4, 4), np.float32)})


# ---------------------------------------------------------------------------------------------- kernels
def col2im_ref(col, c, hw, ohw, k, s, p, d, bias):
    """The scatter-add in float64, tap by tap."""
    h, w = hw
    oh, ow = ohw
    y = np.zeros((c, oh, ow)) + (0.0 if bias is None else bias.astype(np.float64).reshape(c, 1, 1))
    col = col.astype(np.float64).reshape(c, k[0], k[1], h, w)
    for a, b_ in itertools.product(range(k[0]), range(k[1])):
        for i in range(h):
            oy = i * s[0] + a * d[0] - p[0]
            if not 0 <= oy < oh:
                continue
            for j in range(w):
                ox = j * s[1] + b_ * d[1] - p[1]
                if 0 <= ox < ow:
                    y[:, oy, ox] += col[:, a, b_, i, j]
    return y


COL2IM_CASES = [  # c, (h, w), (oh, ow), k, s, begin pads, d
    (3, (4, 5), (10, 12), (3, 3), (2, 2), (0, 0), (1, 1)),
    (2, (5, 3), (11, 7), (4, 4), (2, 2), (1, 1), (1, 1)),
    (5, (3, 7), (9, 20), (2, 5), (3, 3), (1, 2), (2, 1)),
    (1, (6, 6), (8, 8), (1, 1), (1, 1), (-1, -1), (1, 1)),   # negative pads: the output starts before the taps
    (4, (3, 4), (5, 6), (3, 3), (1, 1), (2, 0), (1, 2)),
    (2, (4, 4), (3, 3), (5, 5), (1, 2), (4, 3), (1, 1)),     # output smaller than the taps' span
    (3, (1, 1), (2, 2), (2, 2), (1, 1), (0, 0), (1, 1)),
    (2, (0, 3), (4, 4), (2, 2), (1, 1), (0, 0), (1, 1)),     # no columns: planes are the bias
]


@pytest.mark.parametrize("case", COL2IM_CASES, ids=str)
def test_col2im_against_numpy(case):
    c, hw, ohw, k, s, p, d = case
    r = rng("col2im", case)
    col = r.standard_normal((c * k[0] * k[1], hw[0] * hw[1])).astype(np.float32)
    for bias in (None, r.standard_normal(c).astype(np.float32)):
        got = KC.col2im(col, hw, ohw, k, s, p, d, bias)
        want = col2im_ref(col, c, hw, ohw, k, s, p, d, bias)
        taps = k[0] * k[1] + 1
        mag = col2im_ref(np.abs(col), c, hw, ohw, k, s, p, d, None if bias is None else np.abs(bias))
        assert got.shape == (c,) + ohw
        assert np.all(np.abs(got - want) <= taps * EPS32 * mag), case


def test_col2im_canaries_and_threads():
    """Writes stay inside `out` and results do not depend on the thread count (channels are split, the order of
    the adds is not)."""
    r = rng("col2im-canary")
    c, hw, ohw, k, s, p, d = 37, (20, 21), (41, 43), (3, 3), (2, 2), (1, 1), (1, 1)
    col = r.standard_normal((c * 9, hw[0] * hw[1])).astype(np.float32)
    bias = r.standard_normal(c).astype(np.float32)
    n = c * ohw[0] * ohw[1]
    big = np.full(n + 64, -7.75e13, np.float32)
    out = big[32:32 + n].reshape((c,) + ohw)
    engine.set_num_threads(2)
    KC.col2im(col, hw, ohw, k, s, p, d, bias, out=out)
    assert np.all(big[:32] == np.float32(-7.75e13)) and np.all(big[32 + n:] == np.float32(-7.75e13))
    engine.set_num_threads(1)
    serial = KC.col2im(col, hw, ohw, k, s, p, d, bias)
    np.testing.assert_array_equal(out, serial)


def _conv_case(seed, group=1, n=2, c=12, m=10, hw=(9, 11), k=(4, 3), s=(2, 2), pads=(1, 1, 2, 0), d=(1, 2)):
    r = rng("convt-kernel", seed)
    x = r.standard_normal((n, c) + hw).astype(np.float32)
    w = r.standard_normal((c, m // group) + k).astype(np.float32)
    b = r.standard_normal(m).astype(np.float32)
    attrs = dict(strides=list(s), pads=list(pads), dilations=list(d), group=group)
    return x, w, b, attrs


@pytest.mark.parametrize("group", [1, 2, 12])
def test_conv_transpose2d_every_isa(isa, group):
    """The GEMM under the driver runs on each ISA's micro-kernel: check each against the reference."""
    m = 12 if group == 12 else 10
    x, w, b, attrs = _conv_case(("isa", group), group=group, m=m)
    got = KC.conv_transpose2d(x, w, b, attrs["strides"], attrs["pads"], attrs["dilations"], group=group)
    assert_close(got, x, w, b, attrs, what=f"{isa} group={group}")


def test_column_blocks(monkeypatch):
    """The result does not depend on how many input rows a column block holds (beyond rounding): whole image (0),
    one row per block (1 KiB), a few rows, the default."""
    x, w, b, attrs = _conv_case("blocks", group=2, hw=(13, 10))
    want, mag = reference(x, w, b, attrs), magnitude(x, w, b, attrs)
    for block_kb in ["0", "1", "7", "256"]:
        monkeypatch.setenv("ENGINE_CONVT_BLOCK_KB", block_kb)
        got = KC.conv_transpose2d(x, w, b, attrs["strides"], attrs["pads"], attrs["dilations"], group=2)
        assert_close(got, x, w, b, attrs, want=want, mag=mag, what=f"block {block_kb} KiB")


def test_threads_agree():
    x, w, b, attrs = _conv_case("threads", n=1, c=24, m=8, hw=(21, 19))
    wt = KC.convt_weights(w)
    engine.set_num_threads(1)
    one = KC.conv_transpose2d(x, w, b, attrs["strides"], attrs["pads"], attrs["dilations"], packed=wt)
    engine.set_num_threads(2)
    two = KC.conv_transpose2d(x, w, b, attrs["strides"], attrs["pads"], attrs["dilations"], packed=wt)
    np.testing.assert_allclose(one, two, rtol=1e-6, atol=1e-6)
    assert_close(two, x, w, b, attrs)


def test_kernel_bad_arguments():
    r = rng("convt-args")
    x = r.standard_normal((1, 4, 3, 3)).astype(np.float32)
    w = r.standard_normal((4, 2, 2, 2)).astype(np.float32)
    with pytest.raises(TypeError, match="float32"):
        KC.conv_transpose2d(x.astype(np.float64), w)
    with pytest.raises(ValueError, match="channels"):
        KC.conv_transpose2d(x[:, :3], w)
    with pytest.raises(ValueError, match="group"):
        KC.conv_transpose2d(x, w, group=3)
    with pytest.raises(ValueError, match="bias"):
        KC.conv_transpose2d(x, w, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="packed"):
        KC.conv_transpose2d(x, w, packed=np.zeros((1, 8, 3), np.float32))
    with pytest.raises(ValueError, match="negative"):
        KC.conv_transpose2d(x, w, pads=(5, 0, 5, 0))
    with pytest.raises(ValueError, match="auto_pad"):
        KC.conv_transpose2d(x, w, auto_pad="SAME")
    with pytest.raises(ValueError, match="strides"):
        KC.conv_transpose2d(x, w, strides=0)
    col = np.zeros((8, 9), np.float32)
    with pytest.raises(ValueError, match="col must be"):
        KC.col2im(col, (3, 4), (5, 5), (2, 2))
    with pytest.raises(ValueError, match="out has shape"):
        KC.col2im(col, (3, 3), (5, 5), (2, 2), out=np.zeros((2, 5, 4), np.float32))
    # the bindings check sizes themselves: a wrong geometry raises instead of reading past the arrays
    y = np.zeros((1, 2, 4, 4), np.float32)
    wt = KC.convt_weights(w)
    with pytest.raises(ValueError, match="elements"):
        _k.convt2d_f32(x, wt, None, y, 1, 4, 2, 1, (3, 3, 9, 9, 2, 2, 1, 1, 1, 1, 0, 0))
    with pytest.raises(ValueError, match="elements"):
        _k.convt2d_f32(x, wt, None, np.zeros((1, 2, 4, 4), np.float32), 2, 4, 2, 1, (3, 3, 4, 4, 2, 2, 1, 1, 1, 1, 0, 0))
    with pytest.raises(ValueError, match=">= 1"):
        _k.col2im_f32(col, None, np.zeros((2, 5, 5), np.float32), 2, (3, 3, 5, 5, 2, 2, 0, 1, 1, 1, 0, 0))
    with pytest.raises(ValueError, match="multiples"):
        _k.convt2d_f32(x, wt, None, y, 1, 4, 2, 3, (3, 3, 4, 4, 2, 2, 1, 1, 1, 1, 0, 0))
    with pytest.raises(OverflowError):
        _k.col2im_f32(np.zeros(0, np.float32), None, np.zeros(0, np.float32), 0,
                      (3, 3, 5, 5, 1 << 62, 2, 1, 1, 1, 1, 0, 0))


@pytest.mark.parametrize("opset", [1, 11, 22])
def test_every_version(opset, c_calls):
    """ConvTranspose-1, -11 and -22 have the same attributes and semantics; each takes the C path."""
    r = rng("convt-version", opset)
    x = r.standard_normal((2, 4, 5, 6)).astype(np.float32)
    w = r.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = r.standard_normal(6).astype(np.float32)
    attrs = dict(strides=[2, 2], pads=[1, 0, 0, 1], output_padding=[1, 0], group=2)
    got = engine.Session(make_model(x.shape, w, b, attrs, opset=opset)).run(None, {"x": x})[0]
    assert len(c_calls) == 1
    assert_close(got, x, w, b, attrs, what=f"opset {opset}")
