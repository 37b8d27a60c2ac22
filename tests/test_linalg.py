"""engine.matmul against numpy.matmul (shapes, broadcasting, out=, strides, errors) and the engine.gemm API."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import tolerances as tol

import engine
from engine.linalg import ACTIVATIONS
from engine.testing import assert_within, gemm_error_bound, gemm_ref, quick, rng

try:
    import hypothesis
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # hypothesis is optional: the deterministic sweep below always runs
    hypothesis = None


def matmul_bound(a, b):
    """The GEMM bound for every matrix of a broadcast matmul (same shape as numpy.matmul's result)."""
    a64, b64 = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64))
    k = a.shape[-1]
    return tol.GEMM_C * (k + 3) * np.finfo(np.float32).eps * np.matmul(a64, b64) + 1e-30


def check_matmul(a, b, got, what=""):
    want_shape = np.matmul(np.zeros(a.shape, np.float32), np.zeros(b.shape, np.float32)).shape
    assert got.shape == want_shape, f"{what}: shape {got.shape}, numpy gives {want_shape}"
    assert got.dtype == np.float32, what
    ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
    assert_within(got, ref, matmul_bound(a, b), what)


def randn(g, shape):
    return g.standard_normal(shape, dtype=np.float32)


# ------------------------------------------------------------------ shapes (deterministic sweep, always runs)
SHAPE_PAIRS = [
    ((3,), (3,)), ((0,), (0,)), ((5,), (5, 4)), ((4, 5), (5,)), ((1,), (1, 7)), ((7, 1), (1,)),
    ((2, 3), (3, 4)), ((1, 1), (1, 1)), ((6, 16), (16, 17)), ((67, 33), (33, 5)),
    ((0, 3), (3, 4)), ((3, 0), (0, 4)), ((3, 4), (4, 0)), ((2, 0, 3), (3, 4)), ((2, 5, 0), (0, 4)),
    ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((2, 3, 4), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 6)),
    ((1, 3, 4), (7, 4, 2)), ((4, 1, 2, 3), (1, 5, 3, 2)), ((3,), (2, 3, 4)), ((2, 3, 4), (4,)),
    ((0, 3, 4), (4, 5)), ((1, 3, 4), (0, 4, 5)), ((3, 1, 5, 6), (1, 0, 6, 2)), ((64, 8, 8), (64, 8, 8)),
    ((4, 70, 40), (40, 60)), ((3, 130, 150), (150, 140)),
]


@pytest.mark.parametrize("sa,sb", SHAPE_PAIRS, ids=str)
def test_matmul_shapes(sa, sb):
    g = rng("mm", sa, sb)
    a, b = randn(g, sa), randn(g, sb)
    check_matmul(a, b, engine.matmul(a, b), f"{sa} @ {sb}")


def test_matmul_every_isa(isa):
    g = rng("mm_isa")
    for sa, sb in SHAPE_PAIRS[::3]:
        a, b = randn(g, sa), randn(g, sb)
        check_matmul(a, b, engine.matmul(a, b), f"{isa} {sa} @ {sb}")


if hypothesis is not None:
    from hypothesis.extra.numpy import mutually_broadcastable_shapes

    # numpy.matmul's gufunc signature: optional m and p give the 1-D cases.
    _MATMUL_SHAPES = mutually_broadcastable_shapes(signature="(m?,n),(n,p?)->(m?,p?)", max_dims=3, min_side=0,
                                                   max_side=9)

    @settings(max_examples=40 if quick() else 200, deadline=None, derandomize=True)
    @given(_MATMUL_SHAPES, st.booleans(), st.booleans())
    def test_matmul_hypothesis_broadcasting(shapes, ta, tb):
        sa, sb = shapes.input_shapes
        g = rng("hyp", sa, sb)
        a, b = randn(g, sa), randn(g, sb)
        if ta and a.ndim >= 2:  # a transposed view with the same logical shape
            a = np.ascontiguousarray(np.swapaxes(a, -1, -2)).swapaxes(-1, -2)
        if tb and b.ndim >= 2:
            b = np.ascontiguousarray(np.swapaxes(b, -1, -2)).swapaxes(-1, -2)
        check_matmul(a, b, engine.matmul(a, b), f"{a.shape} @ {b.shape}")
else:
    def test_matmul_hypothesis_broadcasting():
        pytest.skip("hypothesis is not installed (optional); the deterministic sweeps cover broadcasting")


# ------------------------------------------------------------------ layouts
def _layouts(g, shape):
    """The same logical matrix (or stack) in several memory layouts."""
    x = randn(g, shape)
    yield "c", x
    yield "f", np.asfortranarray(x)
    if x.ndim >= 2:
        yield "T-view", np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
    big = np.zeros(tuple(2 * s for s in shape), np.float32)
    sl = tuple(slice(None, None, 2) for _ in shape)
    big[sl] = x
    yield "step2", big[sl]
    yield "neg", np.ascontiguousarray(x[(slice(None, None, -1),) * x.ndim])[(slice(None, None, -1),) * x.ndim]
    if x.ndim >= 2:
        yield "neg-rows", np.ascontiguousarray(x[..., ::-1, :])[..., ::-1, :]
    raw = np.empty(x.size + 1, np.float32)
    mis = raw[1:].reshape(shape)
    mis[...] = x
    yield "misaligned", mis


@pytest.mark.parametrize("sa,sb", [((7, 9), (9, 5)), ((67, 33), (33, 17)), ((3, 7, 9), (9, 5)),
                                   ((2, 6, 16), (2, 16, 17)), ((9,), (9, 4)), ((4, 9), (9,))], ids=str)
def test_matmul_non_contiguous_and_negative_strides(sa, sb):
    g = rng("layouts", sa, sb)
    for (la, a), (lb, b) in itertools.product(list(_layouts(g, sa)), list(_layouts(g, sb))):
        check_matmul(a, b, engine.matmul(a, b), f"{sa}[{la}] @ {sb}[{lb}]")


def test_matmul_broadcast_views_with_zero_strides():
    """np.broadcast_to views (stride 0 over the batch) are read in place."""
    g = rng("bcast0")
    a = np.broadcast_to(randn(g, (5, 7)), (3, 5, 7))
    b = randn(g, (3, 7, 4))
    check_matmul(a, b, engine.matmul(a, b), "broadcast_to")
    check_matmul(b.transpose(0, 2, 1), a.transpose(0, 2, 1), engine.matmul(b.transpose(0, 2, 1),
                                                                            a.transpose(0, 2, 1)), "T")


# ------------------------------------------------------------------ out=
def test_matmul_out():
    g = rng("out")
    a, b = randn(g, (2, 5, 7)), randn(g, (7, 4))
    out = np.full((2, 5, 4), np.nan, np.float32)
    res = engine.matmul(a, b, out=out)
    assert res is out
    check_matmul(a, b, out, "out=")
    # 1-D results
    v = randn(g, (7,))
    out1 = np.empty((2, 5), np.float32)
    assert engine.matmul(a, v, out=out1) is out1
    check_matmul(a, v, out1, "out= 1-D b")
    # a non-contiguous out (every other row of a bigger buffer) receives the result and keeps its padding
    big = np.full((2, 10, 4), 123.0, np.float32)
    res = engine.matmul(a, b, out=big[:, ::2])
    check_matmul(a, b, res, "strided out")
    assert (big[:, 1::2] == 123.0).all()
    # empty out
    assert engine.matmul(randn(g, (0, 3)), randn(g, (3, 4)), out=np.empty((0, 4), np.float32)).shape == (0, 4)


@pytest.mark.parametrize("which", ["a", "b"])
def test_matmul_out_aliases_input(which):
    """out may be one of the inputs (square case): the result equals the one computed without aliasing."""
    g = rng("alias", which)
    for n in (5, 67, 130):
        a, b = randn(g, (n, n)), randn(g, (n, n))
        want = engine.matmul(a, b)
        a2, b2 = a.copy(), b.copy()
        out = a2 if which == "a" else b2
        res = engine.matmul(a2, b2, out=out)
        assert res is out
        np.testing.assert_array_equal(res, want)
    # partial overlap: out is a shifted view of the same buffer as a
    buf = randn(g, (12, 6))
    a, b = buf[:6].copy(), randn(g, (6, 6))
    view_a = buf[:6]
    want = engine.matmul(a, b)
    res = engine.matmul(view_a, b, out=buf[3:9])
    np.testing.assert_array_equal(res, want)


# ------------------------------------------------------------------ errors
def test_matmul_wrong_dtype():
    a = np.ones((2, 3), np.float64)
    b = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match=r"\ba\b.*float64"):
        engine.matmul(a, b)
    with pytest.raises(TypeError, match=r"\bb\b.*int32"):
        engine.matmul(b.T, np.ones((3, 2), np.int32))
    with pytest.raises(TypeError, match="ndarray"):
        engine.matmul([[1.0]], np.ones((1, 1), np.float32))


def test_matmul_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(4, 5\)"):
        engine.matmul(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        engine.matmul(np.ones(3, np.float32), np.ones(4, np.float32))
    with pytest.raises(ValueError, match="broadcast"):
        engine.matmul(np.ones((2, 3, 4), np.float32), np.ones((3, 4, 5), np.float32))


def test_matmul_zero_dim_input():
    with pytest.raises(ValueError, match="dimension"):
        engine.matmul(np.array(2.0, np.float32), np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="dimension"):
        engine.matmul(np.ones((2, 2), np.float32), np.ones((), np.float32))


def test_matmul_bad_out():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"out.*shape.*\(2, 5\).*\(2, 4\)"):
        engine.matmul(a, b, out=np.empty((2, 5), np.float32))
    with pytest.raises(TypeError, match=r"out.*float64"):
        engine.matmul(a, b, out=np.empty((2, 4), np.float64))
    ro = np.empty((2, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        engine.matmul(a, b, out=ro)


# ------------------------------------------------------------------ engine.gemm API
def check_gemm(got, a, b, c0=None, **kw):
    name = kw.get("activation")
    name = name[0] if isinstance(name, tuple) else name
    atol, rtol = tol.activation_tol(name)
    ref = gemm_ref(a, b, c0, **kw)
    assert_within(got, ref, gemm_error_bound(a, b, c0, c_mult=tol.GEMM_C, act_atol=atol, act_rtol=rtol, **kw))


def test_gemm_in_place_with_beta():
    g = rng("gemm_api")
    a, b = randn(g, (5, 7)), randn(g, (7, 6))
    c = randn(g, (5, 6))
    c0 = c.copy()
    res = engine.gemm(a, b, c, alpha=0.5, beta=2.0)
    assert res is c
    check_gemm(c, a, b, c0, alpha=0.5, beta=2.0)
    # c=None: a new array, beta ignored
    res = engine.gemm(a, b, beta=3.0)
    assert res is not c and res.shape == (5, 6)
    check_gemm(res, a, b)


@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (False, True), (True, False), (True, True)])
def test_gemm_trans_flags(trans_a, trans_b):
    g = rng("gemm_t", trans_a, trans_b)
    a = randn(g, (7, 5) if trans_a else (5, 7))
    b = randn(g, (6, 7) if trans_b else (7, 6))
    res = engine.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
    check_gemm(res, a, b, trans_a=trans_a, trans_b=trans_b)
    with pytest.raises(ValueError, match="inner dimensions"):
        engine.gemm(a, b, trans_a=not trans_a, trans_b=trans_b)


@pytest.mark.parametrize("activation", [None, "relu", "RELU", "relu6", "clip", ("clip", 0, 6), ("clip", -1.0, 0.5),
                                        "leaky_relu", ("leaky_relu", 0.2), ["leaky_relu", 0.3], "sigmoid", "silu",
                                        "swish", "gelu", "gelu_tanh", "hardswish"], ids=str)
def test_gemm_activation_names_and_tuples(activation):
    g = rng("gemm_act", str(activation))
    a, b = randn(g, (6, 9)), randn(g, (9, 17))
    bias = randn(g, (17,))
    res = engine.gemm(a, b, bias=bias, activation=activation)
    act = activation
    if isinstance(act, str):
        act = act.lower()
    elif isinstance(act, list):
        act = tuple(act)
    check_gemm(res, a, b, bias=bias, activation=act)


def test_activation_table_is_all_tested():
    """Every name in engine.linalg.ACTIVATIONS has a tolerance entry (so a new activation gets tested)."""
    assert set(ACTIVATIONS) <= set(tol.ACTIVATION)


def test_gemm_bad_arguments():
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"unknown activation 'tanhh'.*relu.*gelu"):
        engine.gemm(a, b, activation="tanhh")
    with pytest.raises(ValueError, match="unknown activation"):
        engine.gemm(a, b, activation=("nope", 1))
    with pytest.raises(ValueError, match="at most 1"):
        engine.gemm(a, b, activation=("leaky_relu", 0.1, 0.2))
    with pytest.raises(ValueError, match="greater than max"):
        engine.gemm(a, b, activation=("clip", 6, 0))
    with pytest.raises(ValueError, match="empty"):
        engine.gemm(a, b, activation=())
    with pytest.raises(ValueError, match=r"bias.*\(3,\).*\(4,\)"):
        engine.gemm(a, b, bias=np.ones(3, np.float32))
    with pytest.raises(TypeError, match=r"bias.*float64"):
        engine.gemm(a, b, bias=np.ones(4))
    with pytest.raises(ValueError, match=r"c has shape \(4, 2\)"):
        engine.gemm(a, b, np.zeros((4, 2), np.float32))
    with pytest.raises(TypeError, match=r"\bc\b.*float64"):
        engine.gemm(a, b, np.zeros((2, 4)))
    ro = np.zeros((2, 4), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        engine.gemm(a, b, ro)
    with pytest.raises(ValueError, match="row-major"):
        engine.gemm(a, b, np.zeros((4, 2), np.float32).T)
    with pytest.raises(ValueError, match="2-D"):
        engine.gemm(np.ones(3, np.float32), b)
    with pytest.raises(TypeError, match=r"\ba\b.*float16"):
        engine.gemm(a.astype(np.float16), b)


def test_gemm_batch_binding_checks_offsets():
    """The batched binding takes element offsets from Python: one that would leave the array raises, no C access."""
    from engine._C import _kernels as _k

    a = np.ones((3, 4, 5), np.float32)
    b = np.ones((3, 5, 6), np.float32)
    c = np.zeros((3, 4, 6), np.float32)
    offs = [np.arange(3, dtype=np.int64) * x[0].size for x in (a, b, c)]
    _k.gemm_batch(a[0], b[0], c[0], False, False, *offs)
    assert np.all(c == 5)
    for i, name in enumerate("abc"):
        bad = list(offs)
        bad[i] = bad[i] + 1  # the last problem's matrix runs one element past the end
        with pytest.raises(ValueError, match=f"problem 2 of {name}"):
            _k.gemm_batch(a[0], b[0], c[0], False, False, *bad)
        bad[i] = offs[i] - 1  # the first starts one element before the array
        with pytest.raises(ValueError, match=f"problem 0 of {name}"):
            _k.gemm_batch(a[0], b[0], c[0], False, False, *bad)
