"""GEMM / GEMV / bias+activation epilogue: every ISA against float64 NumPy (error bound from tolerances.py) and
against the scalar ISA, over tile-edge sizes, the kc boundary, transposes, alpha/beta, bias, activations,
strided/misaligned/transposed operands and canaries around C."""
from __future__ import annotations

import numpy as np
import pytest
import conftest
import tolerances as tol

import engine
import engine.linalg
from engine._C import _kernels as _k
from engine.testing import (assert_within, force_isa, gemm_error_bound, gemm_ref, op, quick, rng,
                            sentinel_buffer)

# Register tiles: scalar 4x4, avx2 6x16 (mr x nr). Sizes around both: 1, tile-1, tile, tile+1, and 67.
TILE_SIZES = [1, 3, 4, 5, 6, 7, 15, 16, 17, 67]
KC = 256  # K block of every ISA's blocking
if quick():
    MN_SIZES = [0, 1, 4, 5, 7, 16, 17]
    K_SIZES = [0, 1, 5, 17]
    K_BLOCK = [257]
    KB_MN = [1, 6, 17]
else:
    MN_SIZES = [0] + TILE_SIZES
    K_SIZES = [0, 1, 4, 5, 16, 17, 67]
    K_BLOCK = [255, 256, 257, 513]
    KB_MN = [1, 5, 7, 16, 17, 67]
TRANS = [(False, False), (False, True), (True, False), (True, True)]
ACTS = [None, "relu", "relu6", ("clip", -0.5, 0.25), "leaky_relu", ("leaky_relu", 0.2), ("leaky_relu", -1.5),
        "sigmoid", "silu", "gelu", "gelu_tanh", "hardswish"]
SENTINEL = np.float32(-7.75e13)


def operands(g, m, n, k, trans_a=False, trans_b=False):
    """Random A, B stored as the transpose flags say (op(A) is m x k, op(B) is k x n)."""
    a = g.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32)
    b = g.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    return a, b


def act_tol(activation):
    name = activation[0] if isinstance(activation, tuple) else activation
    return tol.activation_tol(name)


def check_gemm(got, a, b, c0=None, what="", factor=1.0, **kw):
    """got vs the float64 reference within the bound (times `factor`)."""
    atol, rtol = act_tol(kw.get("activation"))
    ref = gemm_ref(a, b, c0, **kw)
    bound = gemm_error_bound(a, b, c0, c_mult=tol.GEMM_C, act_atol=atol, act_rtol=rtol, **kw) * factor
    assert_within(got, ref, bound, what)


def gemm_on(isa_tag, a, b, c0=None, **kw):
    c = None if c0 is None else c0.copy()
    with force_isa(isa_tag):
        return engine.gemm(a, b, c, **kw)


# ---------------------------------------------------------------- sizes x transposes, vs float64 and scalar
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_sizes_vs_float64_and_scalar(isa, trans_a, trans_b):
    g = rng("sizes", trans_a, trans_b)
    for m in MN_SIZES:
        for n in MN_SIZES:
            for k in K_SIZES:
                a, b = operands(g, m, n, k, trans_a, trans_b)
                got = engine.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
                what = f"{isa} m={m} n={n} k={k} ta={trans_a} tb={trans_b}"
                assert got.shape == (m, n) and got.dtype == np.float32, what
                check_gemm(got, a, b, what=what, trans_a=trans_a, trans_b=trans_b)
                if isa != "scalar":
                    ref = gemm_on("scalar", a, b, trans_a=trans_a, trans_b=trans_b)
                    bound = gemm_error_bound(a, b, trans_a=trans_a, trans_b=trans_b, c_mult=tol.GEMM_C)
                    assert_within(got, ref, bound * tol.ISA_VS_SCALAR_FACTOR, what + " vs scalar")


@pytest.mark.parametrize("k", K_BLOCK)
@pytest.mark.parametrize("trans_a,trans_b", TRANS if not quick() else TRANS[::3])
def test_k_across_kc_block(isa, k, trans_a, trans_b):
    """K around the kc=256 block: the second K block accumulates onto the first (beta becomes 1)."""
    g = rng("kc", k, trans_a, trans_b)
    for m in KB_MN:
        for n in KB_MN:
            a, b = operands(g, m, n, k, trans_a, trans_b)
            c0 = g.standard_normal((m, n), dtype=np.float32)
            kw = dict(alpha=0.75, beta=-0.5, trans_a=trans_a, trans_b=trans_b)
            got = engine.gemm(a, b, c0.copy(), **kw)
            check_gemm(got, a, b, c0, what=f"{isa} m={m} n={n} k={k}", **kw)
            if isa != "scalar":
                ref = gemm_on("scalar", a, b, c0, **kw)
                assert_within(got, ref, 2 * gemm_error_bound(a, b, c0, c_mult=tol.GEMM_C, **kw), "vs scalar")


def test_error_bound_is_not_vacuous(isa):
    """The bound must catch a real mistake: one wrong product term (a single flipped operand) fails it."""
    g = rng("vacuous")
    a, b = operands(g, 17, 19, 300)
    got = engine.gemm(a, b)
    check_gemm(got, a, b)
    a2 = a.copy()
    a2[3, 100] += 1e-2
    with pytest.raises(AssertionError):
        check_gemm(got, a2, b)


# ---------------------------------------------------------------- alpha / beta
@pytest.mark.parametrize("alpha", [1.0, -0.5, 0.0, 2.5])
@pytest.mark.parametrize("beta", [0.0, 1.0, -1.5])
def test_alpha_beta(isa, alpha, beta):
    g = rng("ab", alpha, beta)
    shapes = [(5, 7, 3), (6, 16, 300), (17, 33, 20), (1, 40, 9), (40, 1, 9), (1, 1, 5)]
    for m, n, k in shapes:
        a, b = operands(g, m, n, k)
        c0 = g.standard_normal((m, n), dtype=np.float32)
        if beta == 0.0:
            c0[...] = np.nan  # beta == 0 must not read C: NaN must not leak
        if alpha == 0.0:
            a[0, 0] = np.nan  # alpha == 0 must not read A or B (BLAS convention)
        got = engine.gemm(a, b, c0.copy(), alpha=alpha, beta=beta)
        what = f"{isa} alpha={alpha} beta={beta} m={m} n={n} k={k}"
        assert not np.isnan(got).any(), what + ": NaN leaked"
        a_ref = np.nan_to_num(a) if alpha == 0.0 else a
        check_gemm(got, a_ref, b, None if beta == 0.0 else c0, what=what, alpha=alpha, beta=beta)


def test_beta_zero_nan_c_threads_and_transposes(isa):
    """NaN/Inf in C with beta=0 on the parallel path, with every transpose and the GEMV paths."""
    g = rng("nanc")
    for m, n, k in [(130, 150, 140), (1, 700, 300), (700, 1, 300)]:
        for ta, tb in TRANS:
            a, b = operands(g, m, n, k, ta, tb)
            c = np.full((m, n), np.nan, np.float32)
            c[::2] = np.inf
            engine.gemm(a, b, c, beta=0.0, trans_a=ta, trans_b=tb)
            assert np.isfinite(c).all(), f"{isa} {m}x{n}x{k} ta={ta} tb={tb}: C leaked into the result"
            check_gemm(c, a, b, trans_a=ta, trans_b=tb)


# ---------------------------------------------------------------- bias + activation epilogue
@pytest.mark.parametrize("activation", ACTS, ids=str)
def test_bias_activation(isa, activation):
    g = rng("act", str(activation))
    # (13, 33, 70), (9, 20, 300): a narrow last column panel (1 and 4 columns: AVX2's dot-product tail kernel)
    shapes = [(5, 7, 3), (6, 16, 17), (1, 67, 17), (67, 1, 17), (1, 1, 4), (0, 5, 3), (4, 5, 0), (13, 33, 70),
              (9, 20, 300)]
    if not quick():
        shapes += [(67, 67, 67), (17, 33, 300), (130, 150, 140)]
    for m, n, k in shapes:
        for with_bias in (False, True):
            a, b = operands(g, m, n, k)
            a *= 0.5  # keep pre-activations in the interesting range of sigmoid/gelu
            bias = g.standard_normal(n, dtype=np.float32) if with_bias else None
            c0 = g.standard_normal((m, n), dtype=np.float32)
            kw = dict(alpha=1.25, beta=0.5, bias=bias, activation=activation)
            got = engine.gemm(a, b, c0.copy(), **kw)
            check_gemm(got, a, b, c0, what=f"{isa} {activation} {m}x{n}x{k} bias={with_bias}", **kw)


@pytest.mark.parametrize("activation", ACTS, ids=str)
def test_fused_epilogue_equals_separate_pass(isa, activation):
    """Where the micro-kernel applies bias and activation as it stores the last K block (AVX2), the result is
    bitwise the one of the separate bias_act pass (a GEMM without epilogue, then a K=0 GEMM with beta=1), for row
    and column biases, partial tiles, packed and in-place A, and a K split in blocks."""
    g = rng("fused", str(activation))
    for m, n, k, trans_a in [(6, 16, 17, False), (13, 37, 40, False), (67, 49, 300, False), (20, 300, 8, True),
                             (7, 5, 3, True)]:
        a, b = operands(g, m, n, k, trans_a=trans_a)
        a *= 0.5
        for kind in ("col", "row"):
            bias = g.standard_normal(n if kind == "col" else m, dtype=np.float32)
            c0 = g.standard_normal((m, n), dtype=np.float32)
            fused = c0.copy()
            _k.gemm(a, b, fused, trans_a, False, 1.25, 0.5, bias, 1 if kind == "col" else 2,
                    *engine.linalg._activation(activation))
            sep = c0.copy()
            _k.gemm(a, b, sep, trans_a, False, 1.25, 0.5, None, 0, 0, 0.0, 0.0)
            _k.gemm(np.zeros((m, 0), np.float32), np.zeros((0, n), np.float32), sep, False, False, 1.0, 1.0, bias,
                    1 if kind == "col" else 2, *engine.linalg._activation(activation))
            np.testing.assert_array_equal(fused, sep, err_msg=f"{isa} {activation} {m}x{n}x{k} {kind} bias")


def _epilogue(x: np.ndarray, activation, bias=None) -> np.ndarray:
    """Runs only the bias+activation epilogue on x (a K=0 GEMM with beta=1 leaves C = act(C + bias))."""
    c = x.copy()
    m, n = c.shape
    engine.gemm(np.zeros((m, 0), np.float32), np.zeros((0, n), np.float32), c, beta=1.0, bias=bias,
                activation=activation)
    return c


def _special_values(g, n, extremes: bool):
    x = g.standard_normal(n, dtype=np.float32) * np.float32(4)
    specials = [np.nan, 0.0, -0.0, 1e-40, -1e-40, 6.0, -6.0, 3.0, -3.0, 0.25, -0.5, 88.0, -88.0, 100.0, -100.0]
    if extremes:
        specials[1:1] = [np.inf, -np.inf, 3e38, -3e38]
    specials = np.float32(specials)
    x[: min(n, specials.size)] = specials[:n]
    return x


def _f32_formula(x: np.ndarray, activation) -> np.ndarray:
    """The exact activations written with float32 numpy operations (same roundings as the C reference)."""
    name, p = engine.testing.parse_activation(activation)
    with np.errstate(invalid="ignore", over="ignore"):
        if name is None:
            return x.copy()
        if name == "relu":
            return np.where(x < 0, np.float32(0), x)
        if name in ("clip", "relu6"):
            lo, hi = (np.float32(0), np.float32(6)) if name == "relu6" else (np.float32(p[0]), np.float32(p[1]))
            return np.where(x < lo, lo, np.where(x > hi, hi, x)).astype(np.float32)
        if name == "leaky_relu":
            return np.where(x >= 0, x, np.float32(p[0]) * x).astype(np.float32)
    raise AssertionError(name)


def _pre_activation(x, bias):
    """What the epilogue feeds the activation: y + bias_s (0 here) + bias[j], rounded to float32 each step (so
    -0.0 becomes +0.0, as the C contract act(y + bias + bias_s) says)."""
    v = (x + np.float32(0)).astype(np.float32)
    return v if bias is None else (v + bias).astype(np.float32)


@pytest.mark.parametrize("activation", ACTS, ids=str)
def test_epilogue_alone_vs_scalar_and_float64(isa, activation):
    """The activation kernel alone on every length 1..33 (SIMD tails) and 1007, with NaN, +-0, denormals
    (and +-Inf, +-3e38 for the exact activations; see test_activation_extremes for the others): bitwise equal
    to the scalar ISA and to float32 numpy for exact activations, within the table's atol/rtol of float64 for
    the others; NaN stays NaN everywhere."""
    name = activation[0] if isinstance(activation, tuple) else activation
    exact = tol.is_exact(name)
    g = rng("epi", str(activation))
    lengths = list(range(1, 34)) + [1000 + 7] if not quick() else [1, 7, 8, 9, 16, 17, 33]
    for n in lengths:
        x = _special_values(g, n, extremes=exact).reshape(1, n)
        x = np.concatenate([x, g.standard_normal((2, n), dtype=np.float32) * np.float32(3)])
        bias = g.standard_normal(n, dtype=np.float32) * np.float32(0.1)
        for bv in (None, bias):
            got = _epilogue(x, activation, bv)
            pre = x if (bv is None and activation is None) else _pre_activation(x, bv)  # no epilogue runs
            what = f"{isa} {activation} n={n} bias={bv is not None}"
            assert np.array_equal(np.isnan(got), np.isnan(pre)), what + ": NaN in != NaN out"
            if isa != "scalar" and exact:
                with force_isa("scalar"):
                    want = _epilogue(x, activation, bv)
                assert np.array_equal(got.view(np.int32), want.view(np.int32)), what + " vs scalar (bitwise)"
            if exact:
                want = _f32_formula(pre, activation)
                assert np.array_equal(got.view(np.int32), want.view(np.int32)), what + " vs float32 formula"
            else:
                atol, rtol = tol.activation_tol(name)
                ref = engine.testing.activation_ref(pre, activation)
                assert_within(got, ref, atol + rtol * np.abs(ref), what)


_EXTREME_CASES = [pytest.param(_isa, _act, id=f"{_isa}-{_act}") for _isa in conftest.SUPPORTED_ISAS
                  for _act in ["sigmoid", "silu", "gelu", "gelu_tanh", "hardswish"]]


@pytest.mark.parametrize("isa_tag,activation", _EXTREME_CASES)
def test_activation_extremes(isa_tag, activation):
    """Transcendental activations at huge finite inputs stay within tolerance of float64 (which saturates
    correctly: sigmoid -> 0/1, silu/gelu/hardswish -> 0 or x); at +-Inf the result is the limit or NaN."""
    x = np.float32([[-np.inf, -3e38, -1e35, -1e30, -1e10, -1e4, -100.0, 100.0, 1e4, 1e10, 1e30, 1e35, 3e38, np.inf,
                     -20.0, 20.0]])
    with force_isa(isa_tag):
        got = _epilogue(x, activation)[0]
    ref = engine.testing.activation_ref(x[0].astype(np.float64), activation)
    limits = {"sigmoid": (0.0, 1.0), "silu": (0.0, np.inf), "gelu": (0.0, np.inf), "gelu_tanh": (0.0, np.inf),
              "hardswish": (0.0, np.inf)}[activation]
    atol, rtol = tol.activation_tol(activation)
    for i, xi in enumerate(x[0]):
        what = f"{isa_tag} {activation}({xi}) = {got[i]}"
        if np.isinf(xi):
            limit = limits[0] if xi < 0 else limits[1]
            ok = np.isnan(got[i]) or got[i] == limit or abs(float(got[i]) - limit) <= atol
            assert ok, what + f", expected {limit} (or NaN)"
        else:
            assert abs(float(got[i]) - ref[i]) <= atol + rtol * abs(ref[i]), what + f", expected {ref[i]}"


def test_bias_per_row(isa):
    """BIAS_ROW (one bias per output row; used by conv-style callers) through the C entry point."""
    g = rng("biasrow")
    for m, n, k in [(5, 7, 3), (67, 33, 20), (1, 40, 9), (40, 1, 9), (130, 150, 140)]:
        a, b = operands(g, m, n, k)
        bias = g.standard_normal(m, dtype=np.float32)
        c = np.empty((m, n), np.float32)
        _k.gemm(a, b, c, False, False, 1.0, 0.0, bias, _k.BIAS_ROW, 1, 0.0, 0.0)  # act 1 = relu
        check_gemm(c, a, b, what=f"{isa} {m}x{n}x{k}", bias_row=bias, activation="relu")


# ---------------------------------------------------------------- GEMV paths
def test_gemv_m1_paths(isa):
    """M == 1: x is a row of A, or (trans_a) a column of a stored K x 1 A that may be strided."""
    g = rng("gemv_m1")
    for n, k in [(1, 1), (5, 3), (16, 17), (67, 67), (700, 300), (1000 + 7, 64)]:
        for tb in (False, True):
            b = g.standard_normal((n, k) if tb else (k, n), dtype=np.float32)
            bbig, bview = sentinel_buffer(*b.shape, pad=3, value=b)  # ldb > row length
            cases = {
                "row": g.standard_normal((1, k), dtype=np.float32),
                "col_T": g.standard_normal((k, 1), dtype=np.float32),
                "strided_col_T": sentinel_buffer(k, 1, pad=2, rng_=g)[1],  # lda = 5
            }
            for label, a in cases.items():
                ta = label.endswith("_T")
                for bb in (b, bview):
                    c0 = g.standard_normal((1, n), dtype=np.float32)
                    got = engine.gemm(a, bb, c0.copy(), alpha=1.5, beta=0.5, trans_a=ta, trans_b=tb,
                                      bias=np.ones(n, np.float32), activation="relu")
                    check_gemm(got, a, b, c0, what=f"{isa} m=1 n={n} k={k} {label} tb={tb}", alpha=1.5, beta=0.5,
                               trans_a=ta, trans_b=tb, bias=np.ones(n, np.float32), activation="relu")


def test_gemv_n1_paths(isa):
    """N == 1: op(B) is a column (strided when B is a K x 1 view), C a column with ldc > 1."""
    g = rng("gemv_n1")
    for m, k in [(1, 1), (5, 3), (16, 17), (67, 67), (700, 300), (1000 + 7, 64)]:
        for ta in (False, True):
            a = g.standard_normal((k, m) if ta else (m, k), dtype=np.float32)
            for label in ("col", "strided_col", "row_T"):
                if label == "row_T":
                    b, tb = g.standard_normal((1, k), dtype=np.float32), True
                elif label == "col":
                    b, tb = g.standard_normal((k, 1), dtype=np.float32), False
                else:
                    b, tb = sentinel_buffer(k, 1, pad=2, rng_=g)[1], False
                for beta in (0.0, 0.75):
                    cbig, c = sentinel_buffer(m, 1, pad=3, fill=SENTINEL, rng_=g)  # ldc = 7
                    if beta == 0.0:
                        c[...] = np.nan
                    c0 = c.copy()
                    bias = g.standard_normal(1, dtype=np.float32)
                    engine.gemm(a, b, c, beta=beta, trans_a=ta, trans_b=tb, bias=bias, activation="silu")
                    what = f"{isa} n=1 m={m} k={k} {label} ta={ta} beta={beta}"
                    check_gemm(c, a, b, None if beta == 0 else c0, what=what, beta=beta, trans_a=ta, trans_b=tb,
                               bias=bias, activation="silu")
                    pad = cbig.copy()
                    pad[3:3 + m, 3:4] = SENTINEL
                    assert (pad == SENTINEL).all(), what + ": wrote outside C"


# ---------------------------------------------------------------- threads, canaries, layouts
@pytest.mark.parametrize("threads", [1, 2])
def test_large_shapes_parallel(isa, threads):
    """Shapes big enough for the pool (M*N*K >= 2**17), split along M, along N, and into a grid."""
    engine.set_num_threads(threads)
    g = rng("large")
    shapes = [(130, 150, 140), (400, 20, 64), (20, 400, 64), (97, 101, 513)]
    if quick():
        shapes = shapes[:3]
    for m, n, k in shapes:
        for ta, tb in (TRANS if not quick() else TRANS[:1]):
            a, b = operands(g, m, n, k, ta, tb)
            bias = g.standard_normal(n, dtype=np.float32)
            kw = dict(trans_a=ta, trans_b=tb, bias=bias, activation="silu")
            got = engine.gemm(a, b, **kw)
            check_gemm(got, a, b, what=f"{isa} threads={threads} {m}x{n}x{k} ta={ta} tb={tb}", **kw)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (3, 5, 2), (6, 16, 8), (7, 17, 9), (13, 35, 31), (67, 67, 67),
                                   (130, 150, 140), (1, 100, 20), (100, 1, 20)])
def test_canaries_around_c(isa, m, n, k):
    """C is a view with ldc > N into a sentinel-filled buffer; A and B live in NaN-padded buffers (a read past
    their logical bounds that reached the result would show up as NaN). Nothing outside C may change."""
    g = rng("canary", m, n, k)
    pad = 9
    for beta, activation in [(0.0, None), (1.5, "relu6")]:
        abig, a = sentinel_buffer(m, k, pad=pad, rng_=g)  # NaN padding
        bbig, b = sentinel_buffer(k, n, pad=pad, rng_=g)
        cbig, c = sentinel_buffer(m, n, pad=pad, fill=SENTINEL, rng_=g)
        assert c.strides[0] // 4 > n
        c0 = c.copy()
        bias = g.standard_normal(n, dtype=np.float32)
        out = engine.gemm(a, b, c, beta=beta, bias=bias, activation=activation)
        assert out is c
        check_gemm(c, a, b, c0, what=f"{isa} {m}x{n}x{k} beta={beta}", beta=beta, bias=bias, activation=activation)
        outside = cbig.copy()
        outside[pad:pad + m, pad:pad + n] = SENTINEL
        assert (outside == SENTINEL).all(), f"{isa} {m}x{n}x{k}: wrote outside C ({int((outside != SENTINEL).sum())})"
        assert np.isnan(abig[:pad]).all() and np.isnan(bbig[:, :pad]).all(), "inputs modified"


def _misaligned(g, shape):
    """A C-contiguous float32 array whose data pointer is 4 bytes past a 64-byte boundary."""
    size = int(np.prod(shape))
    raw = np.empty(size + 32, np.float32)
    start = (-raw.ctypes.data % 64) // 4 + 1
    x = raw[start:start + size].reshape(shape)
    x[...] = g.standard_normal(shape, dtype=np.float32)
    assert x.ctypes.data % 32 == 4
    return x


@pytest.mark.parametrize("m,n,k", [(7, 17, 9), (67, 67, 67), (1, 67, 33), (67, 1, 33), (130, 150, 140)])
def test_misaligned_operands(isa, m, n, k):
    g = rng("misaligned", m, n, k)
    for ta, tb in TRANS:
        a = _misaligned(g, (k, m) if ta else (m, k))
        b = _misaligned(g, (n, k) if tb else (k, n))
        c = _misaligned(g, (m, n))
        c0 = c.copy()
        bias = _misaligned(g, (n,))
        engine.gemm(a, b, c, beta=1.0, trans_a=ta, trans_b=tb, bias=bias, activation="sigmoid")
        check_gemm(c, a, b, c0, what=f"{isa} {m}x{n}x{k} ta={ta} tb={tb}", beta=1.0, trans_a=ta, trans_b=tb,
                   bias=bias, activation="sigmoid")


class _Recorder:
    """Stands in for engine._C._kernels in engine.linalg and records the arrays handed to C."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return getattr(_k, name)

    def gemm(self, a, b, c, *args, **kw):
        self.calls.append((a, b, c, args))
        return _k.gemm(a, b, c, *args, **kw)


@pytest.mark.parametrize("m,n,k", [(7, 17, 9), (67, 67, 67), (1, 40, 20), (40, 1, 20), (130, 150, 140)])
def test_transposed_views_without_copy(isa, m, n, k, monkeypatch):
    """a.T / b.T views (Fortran order) reach the kernel as the original buffers with the transpose flag flipped:
    no copy, correct result. Row-strided views (x[::2]) also pass without copy."""
    rec = _Recorder()
    monkeypatch.setattr(engine.linalg, "_k", rec)
    g = rng("views", m, n, k)
    base_a = g.standard_normal((k, m), dtype=np.float32)
    base_b = g.standard_normal((n, k), dtype=np.float32)
    a, b = base_a.T, base_b.T  # op(A)=a is m x k, F-ordered
    for ta, tb in TRANS:
        aa = a.T if ta else a  # the same buffer either way
        bb = b.T if tb else b
        rec.calls.clear()
        got = engine.gemm(aa, bb, trans_a=ta, trans_b=tb)
        check_gemm(got, aa, bb, what=f"{isa} {m}x{n}x{k} ta={ta} tb={tb}", trans_a=ta, trans_b=tb)
        (ca, cb, _, _), = rec.calls
        assert np.shares_memory(ca, base_a) and np.shares_memory(cb, base_b), "operand was copied"
    # row-strided views: every other row of a bigger matrix
    big_a = g.standard_normal((2 * m, k), dtype=np.float32)
    big_b = g.standard_normal((2 * k, n), dtype=np.float32)
    rec.calls.clear()
    got = engine.gemm(big_a[::2], big_b[::2])
    check_gemm(got, big_a[::2], big_b[::2], what=f"{isa} row-strided")
    (ca, cb, _, _), = rec.calls
    assert np.shares_memory(ca, big_a) and np.shares_memory(cb, big_b), "row-strided operand was copied"


def test_non_contiguous_and_negative_strides(isa):
    """Views no kernel can read directly (column-strided, negative strides) are copied and still correct."""
    g = rng("noncontig")
    for m, n, k in [(7, 17, 9), (67, 67, 67), (1, 33, 9), (33, 1, 9)]:
        big_a = g.standard_normal((2 * m, 2 * k), dtype=np.float32)
        big_b = g.standard_normal((2 * k, 3 * n), dtype=np.float32)
        for a in (big_a[::2, ::2], big_a[:m, :k][::-1], big_a[:m, :k][:, ::-1], big_a[::-2, ::-2]):
            for b in (big_b[::2, ::3], big_b[:k, :n][::-1, ::-1], big_b[1:k + 1, 2:n + 2].T.T):
                got = engine.gemm(a, b)
                check_gemm(got, a, b, what=f"{isa} {m}x{n}x{k} strides {a.strides} {b.strides}")
