"""engine.kernels.conv2d (the implicit-GEMM convolution) at every ISA level this machine runs: against the ONNX
reference evaluator with an error bound from float64, against the scalar table, canaries around the output, the
packed-weight cache across ISA changes, threads, and clear errors for bad input."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import engine
import engine.kernels as K
from engine.testing import EPS32, force_isa, quick, rng
from test_ops_kernels import CANARY, act_ref, check_canary, in_canary, onnx_conv

# (kernel, strides, pads (t, l, b, r), dilations, group)
CASES = [((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1), ((3, 3), (2, 2), (1, 1, 1, 1), (1, 1), 1),
         ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1), ((1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
         ((7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1), ((5, 5), (1, 1), (2, 2, 2, 2), (1, 1), 1),
         ((3, 3), (1, 1), (0, 0, 0, 0), (2, 2), 1), ((3, 2), (3, 1), (1, 0, 2, 1), (1, 2), 1),
         ((2, 4), (1, 3), (0, 2, 1, 0), (2, 1), 1), ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
         ((3, 3), (2, 2), (1, 0, 0, 1), (1, 1), 3), ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 4)]
ACTS = [None, "relu", ("clip", -0.5, 0.75), "silu", ("leaky_relu", 0.1), "hardswish"]
LIP = {None: 1.0, "relu": 1.0, "clip": 1.0, "silu": 1.1, "leaky_relu": 1.0, "hardswish": 1.5}


def _out_hw(hw, k, s, p, d):
    return tuple((hw[i] + p[i] + p[i + 2] - d[i] * (k[i] - 1) - 1) // s[i] + 1 for i in range(2))


def _check(got, x, w, b, z, s, p, d, group, act, what):
    pre = onnx_conv(x, w, b, s, p, d, group).astype(np.float64)
    mag = onnx_conv(np.abs(x), np.abs(w), None if b is None else np.abs(b), s, p, d, group).astype(np.float64)
    if z is not None:
        pre = pre + z
        mag = mag + np.abs(z)
    name = act[0] if isinstance(act, tuple) else act
    params = K._parse_activation(name, *(act[1:] if isinstance(act, tuple) else ()))[1:]
    ref = pre if name is None else act_ref(pre, name, *params)
    taps = w.shape[1] * w.shape[2] * w.shape[3]
    bound = LIP[name] * (taps + 3) * EPS32 * (mag + np.abs(pre)) * 2 + 4 * EPS32 * np.abs(ref) + 1e-30
    err = np.abs(got.astype(np.float64) - ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != {ref.shape}"
    assert np.all(err <= bound), f"{what}: max err/bound {np.max(err / bound):.3g}"
    return bound


@pytest.mark.parametrize("k,s,p,d,group", CASES, ids=str)
def test_conv2d(isa, k, s, p, d, group):
    g = rng("conv", k, s, p, d, group)
    # channel counts around every tile height (4, 6, 8) and image widths around tile widths (8, 16, 32)
    # (9, 32): output rows of 16 or 32 with a wider phase image (3x3, 5x5, 7x7 stride 2 padded): the tiles write y
    # directly, reading phase column q + (q // ow) * (wq - ow)
    shapes = [((1, 1), 1, 1), ((7, 9), 3, 5), ((12, 13), 5, 7), ((20, 35), 8, 13), ((17, 33), 13, 17), ((6, 5), 19, 9),
              ((9, 32), 4, 6)]
    if quick():
        shapes = shapes[1::2]
    for (hw, cg, mg), act in zip(shapes, itertools.cycle(ACTS)):
        if hw[0] + p[0] + p[2] < (k[0] - 1) * d[0] + 1 or hw[1] + p[1] + p[3] < (k[1] - 1) * d[1] + 1:
            continue
        c, m = cg * group, mg * group
        x = g.standard_normal((2, c) + hw).astype(np.float32)
        w = g.standard_normal((m, cg) + k).astype(np.float32)
        b = g.standard_normal(m).astype(np.float32) if mg % 2 else None
        oshape = (2, m) + _out_hw(hw, k, s, p, d)
        z = g.standard_normal(oshape).astype(np.float32) if cg % 2 else None
        big, out = in_canary(int(np.prod(oshape)))
        got = K.conv2d(x, w, b, s, p, d, group, act, z, out=out.reshape(oshape))
        what = f"{isa} conv hw={hw} c={c} m={m} k={k} s={s} p={p} d={d} g={group} act={act} z={z is not None}"
        check_canary(big, 16, int(np.prod(oshape)), what)
        bound = _check(got, x, w, b, z, s, p, d, group, act, what)
        with force_isa("scalar"):
            sc = K.conv2d(x, w, b, s, p, d, group, act, z)
        assert np.all(np.abs(got - sc) <= 2 * bound), what + " vs scalar"


@pytest.mark.parametrize("layer", [(64, 20, 64, 3, 1, 1), (3, 45, 16, 7, 2, 3), (96, 16, 40, 1, 1, 0), (300, 7, 30, 3, 1, 1),
                                   (48, 28, 24, 3, 2, 1), (40, 9, 270, 3, 1, 1),
                                   # few taps on a large plane: many column sub-blocks per task, a partial last tile
                                   (8, 50, 20, 1, 1, 0), (4, 45, 14, 3, 1, 1),
                                   # stems: 112-wide output rows of whole tiles, sums written straight to y
                                   (3, 224, 32, 3, 2, 1), (3, 64, 20, 7, 2, 3)], ids=str)
def test_conv2d_network_layers_threads(isa, layer):
    """Network-sized layers (several tap blocks and column chunks): one thread and two agree bitwise (the split
    never changes a sum's order) and match the reference."""
    c, h, m, k, s, p = layer
    g = rng("conv-layer", layer)
    x = g.standard_normal((1, c, h, h)).astype(np.float32)
    w = (g.standard_normal((m, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    b = g.standard_normal(m).astype(np.float32)
    cw = K.ConvWeights(w)
    engine.set_num_threads(1)
    one = K.conv2d(x, cw, b, s, p, activation="relu")
    engine.set_num_threads(2)
    two = K.conv2d(x, cw, b, s, p, activation="relu")
    assert np.array_equal(one, two)
    _check(one, x, w, b, None, (s, s), (p,) * 4, (1, 1), 1, "relu", f"{isa} layer {layer}")


@pytest.mark.parametrize("activation", [None, "relu", ("clip", 0.0, 6.0), "sigmoid", "hardswish"], ids=str)
def test_fused_epilogue_equals_separate_pass(isa, activation):
    """Without a residual the micro-kernel applies bias and activation as it stores the last tap block (AVX2);
    with one (here zeros) the driver adds it and runs the bias+activation pass: bitwise the same result, through
    the wide-output copy of a strided layer, several tap blocks (C*kh*kw > 256) and partial tiles."""
    g = rng("conv-fused", str(activation))
    for c, m, hw, k, s, p in [(3, 32, 37, 3, 2, 1), (40, 13, 15, 3, 1, 1), (7, 20, 11, 1, 1, 0), (30, 8, 9, 5, 2, 2)]:
        x = g.standard_normal((2, c, hw, hw), dtype=np.float32)
        w = K.ConvWeights(g.standard_normal((m, c, k, k), dtype=np.float32) / np.float32(np.sqrt(c * k * k)))
        bias = g.standard_normal(m, dtype=np.float32)
        fused = K.conv2d(x, w, bias=bias, strides=s, pads=p, activation=activation)
        sep = K.conv2d(x, w, bias=bias, strides=s, pads=p, activation=activation, residual=np.zeros_like(fused))
        np.testing.assert_array_equal(fused, sep, err_msg=f"{isa} {activation} c={c} m={m} k={k} s={s}")


def test_packed_weights_follow_the_isa():
    """ConvWeights packs for the active tile; after an ISA change it repacks instead of using the wrong layout."""
    g = rng("conv-repack")
    x = g.standard_normal((1, 10, 9, 9)).astype(np.float32)
    w = g.standard_normal((11, 10, 3, 3)).astype(np.float32)
    cw = K.ConvWeights(w)
    ref = onnx_conv(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    for tag in engine._C._kernels.supported_isas():
        with force_isa(tag):
            got = K.conv2d(x, cw, None, 1, 1)
            assert cw.packed()[1] == engine._C._kernels.conv_tile()[0]
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)
    wp, mr = cw.packed()
    with pytest.raises(ValueError, match="packed for a tile"):
        geo = (1, 10, 9, 9, 11, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 9, 9)
        engine._C._kernels.conv2d_f32(geo, x, wp, mr + 1, None, None, np.empty((1, 11, 9, 9), np.float32), 0)


def test_conv2d_bad_inputs():
    x = np.zeros((1, 4, 5, 5), np.float32)
    w = np.zeros((6, 4, 3, 3), np.float32)
    with pytest.raises(TypeError, match="float32"):
        K.conv2d(x.astype(np.float64), w)
    with pytest.raises(ValueError, match="channels"):
        K.conv2d(x, np.zeros((6, 3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="group"):
        K.ConvWeights(w, group=4)
    with pytest.raises(ValueError, match="bias"):
        K.conv2d(x, w, np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="residual"):
        K.conv2d(x, w, None, 1, 1, residual=np.zeros((1, 6, 4, 4), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        K.conv2d(x, np.zeros((6, 4, 7, 7), np.float32))
    with pytest.raises(ValueError, match="4-D"):
        K.conv2d(x[0], w)
    with pytest.raises(ValueError, match="out has shape"):
        K.conv2d(x, w, out=np.zeros((1, 6, 5, 5), np.float32))
    with pytest.raises(ValueError, match="unknown activation"):
        K.conv2d(x, w, activation="nope")
    with pytest.raises(ValueError, match="differs from the ConvWeights' group 2"):
        K.conv2d(x, K.ConvWeights(np.zeros((6, 2, 3, 3), np.float32), group=2), group=3)
    # an output that overlaps the input is computed through a temporary, not corrupted
    buf = np.random.default_rng(0).standard_normal(200).astype(np.float32)
    xin = buf[:100].reshape(1, 4, 5, 5)
    ww = np.ones((4, 4, 1, 1), np.float32)
    ref = K.conv2d(xin.copy(), ww)
    out = buf[:100].reshape(1, 4, 5, 5)
    K.conv2d(xin, ww, out=out)
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_conv2d_concurrent_callers():
    """Each calling thread has its own scratch (phases, wide output): concurrent calls of different shapes give the
    results of serial ones."""
    import threading

    g = rng("conv-threads")
    jobs = []
    for i, (c, h, m, k, s, p) in enumerate([(3, 40, 16, 3, 2, 1), (8, 23, 12, 5, 1, 2), (16, 12, 20, 1, 1, 0),
                                            (5, 31, 7, 3, 1, 1)]):
        x = g.standard_normal((1, c, h, h)).astype(np.float32)
        w = g.standard_normal((m, c, k, k)).astype(np.float32)
        jobs.append((x, K.ConvWeights(w), s, p))
    want = [K.conv2d(x, w, None, s, p) for x, w, s, p in jobs]
    got = [[None] * 20 for _ in jobs]

    def work(j):
        x, w, s, p = jobs[j]
        for r in range(20):
            got[j][r] = K.conv2d(x, w, None, s, p)

    ts = [threading.Thread(target=work, args=(j,)) for j in range(len(jobs))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for j in range(len(jobs)):
        for r in range(20):
            assert np.array_equal(got[j][r], want[j]), (j, r)
