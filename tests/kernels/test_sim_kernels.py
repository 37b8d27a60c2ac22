"""Similarity kernels (dot, sqnorm, cos, scans, f16 conversion) of the active table at every ISA level against a
float64 / int64 NumPy reference and against the scalar level. Sizes around the vector widths (8 AVX2, 16 AVX-512,
4 NEON) so that every tail path runs; misaligned views (buf[1:]) too."""
from __future__ import annotations

import numpy as np
import pytest
import tolerances as tol

from engine._C import _kernels as _k
from engine.testing import force_isa, quick, rng

W = 16
SIZES = list(range(0, 2 * W + 2)) + [3 * W - 1, 4 * W, 1007]
if quick():
    SIZES = [0, 1, 3, 7, 8, 9, 15, 16, 17, 33, 1007]
EPS = float(np.finfo(np.float32).eps)


def _vec(dtype, n, *keys, misalign=False):
    r = rng("simk", dtype, n, *keys)
    if dtype == "i8":
        x = r.integers(-128, 128, n + 1).astype(np.int8)
    else:
        x = r.standard_normal(n + 1).astype(np.float32)
        if dtype == "f16":
            x = x.astype(np.float16)
    return x[1:] if misalign else x[:n]


def _f64(x):
    return x.astype(np.float64)


@pytest.mark.parametrize("dtype", ["f32", "f16"])
@pytest.mark.parametrize("n", SIZES)
def test_dot_sqnorm_cos_float(isa, dtype, n):
    for mis in (False, True):
        a, b = _vec(dtype, n, "a", misalign=mis), _vec(dtype, n, "b", misalign=mis)
        a64, b64 = _f64(a), _f64(b)
        absum = np.abs(a64 * b64).sum()
        bound = tol.SIM_C * (n + 1) * EPS * absum + 1e-30
        got = _k.sim_kernel("dot", a, b)
        assert abs(got - a64 @ b64) <= bound, (isa, dtype, n, got, a64 @ b64)
        sq = _k.sim_kernel("sqnorm", a)
        assert abs(sq - a64 @ a64) <= tol.SIM_C * (n + 1) * EPS * (a64 @ a64) + 1e-30
        c = _k.sim_kernel("cos", a, b)
        na, nb = np.sqrt(a64 @ a64), np.sqrt(b64 @ b64)
        if na == 0 or nb == 0:
            assert c == 0.0
        else:
            ref = a64 @ b64 / (na * nb)
            assert abs(c - ref) <= tol.SIM_C * (n + 4) * EPS * (absum / (na * nb) + 1), (isa, n, c, ref)
            assert -1.0 <= c <= 1.0
        with force_isa("scalar"):
            c_s = _k.sim_kernel("cos", a, b)
            d_s = _k.sim_kernel("dot", a, b)
        assert abs(c - c_s) <= 2 * tol.SIM_C * (n + 4) * EPS * (absum / max(na * nb, 1e-30) + 1)
        assert abs(got - d_s) <= 2 * bound


@pytest.mark.parametrize("n", SIZES + [65536])
def test_i8_exact(isa, n):
    a, b = _vec("i8", n, "a", misalign=n % 2 == 1), _vec("i8", n, "b")
    ab = int(a.astype(np.int64) @ b.astype(np.int64))
    aa = int(a.astype(np.int64) @ a.astype(np.int64))
    bb = int(b.astype(np.int64) @ b.astype(np.int64))
    assert _k.sim_kernel("dot", a, b) == ab
    assert _k.sim_kernel("sqnorm", a) == aa
    c = _k.sim_kernel("cos", a, b)
    ref = 0.0 if aa == 0 or bb == 0 else ab / np.sqrt(float(aa) * float(bb))
    assert abs(c - ref) <= 1e-7
    with force_isa("scalar"):
        assert _k.sim_kernel("cos", a, b) == c  # exact integer sums: bitwise the same in every ISA


def test_i8_extreme_values(isa):
    a = np.full(65536, -128, dtype=np.int8)
    assert _k.sim_kernel("dot", a, a) == 65536 * 16384  # 2^30: the int32 limit the contract allows
    assert _k.sim_kernel("cos", a, a) == 1.0
    b = np.full(65536, 127, dtype=np.int8)
    assert _k.sim_kernel("dot", a, b) == -65536 * 128 * 127
    assert _k.sim_kernel("cos", a, b) == -1.0


@pytest.mark.parametrize("gdtype", ["f32", "f16", "i8"])
@pytest.mark.parametrize("rows", [0, 1, 3, 4, 5, 9, 37])
@pytest.mark.parametrize("d", [1, 7, 8, 9, 16, 17, 33, 128, 515])
def test_scan(isa, gdtype, rows, d):
    r = rng("scan", gdtype, rows, d)
    ld = d + 3
    if gdtype == "i8":
        big = r.integers(-128, 128, (rows, ld)).astype(np.int8)
        q = r.integers(-128, 128, d + 1).astype(np.int8)[1:]
    else:
        big = r.standard_normal((rows, ld)).astype(np.float32 if gdtype == "f32" else np.float16)
        q = r.standard_normal(d + 1).astype(np.float32)[1:]
    g = big[:, 1:d + 1]  # strided rows, misaligned start
    out = _k.sim_kernel("scan", q, g)
    if gdtype == "i8":
        np.testing.assert_array_equal(out, g.astype(np.int64) @ q.astype(np.int64))
    else:
        ref = _f64(g) @ _f64(q)
        bound = tol.SIM_C * (d + 1) * EPS * (np.abs(_f64(g)) @ np.abs(_f64(q))) + 1e-30
        assert np.all(np.abs(out - ref) <= bound), (isa, np.abs(out - ref).max())


def test_cvt_f16_f32_all_patterns(isa):
    h = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
    got = _k.sim_cvt(h)
    ref = h.astype(np.float32)
    nan = np.isnan(ref)
    np.testing.assert_array_equal(got.view(np.uint32)[~nan], ref.view(np.uint32)[~nan])
    assert np.isnan(got[nan]).all()
    with force_isa("scalar"):
        np.testing.assert_array_equal(_k.sim_cvt(h).view(np.uint32), got.view(np.uint32))


def test_cvt_f32_f16_rounding(isa):
    r = rng("cvt16")
    bits = r.integers(0, 2**32, 200_000 if not quick() else 20_000, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    # the half-way points between all neighbouring finite binary16 values (ties to even)
    h = np.arange(0, 0x7BFF, dtype=np.uint16).view(np.float16).astype(np.float64)
    h2 = np.arange(1, 0x7C00, dtype=np.uint16).view(np.float16).astype(np.float64)
    mids = ((h + h2) / 2).astype(np.float32)
    x = np.concatenate([x, mids, -mids, np.array([0, -0.0, np.inf, -np.inf, 65504, 65519.99, 65520, 1e-8, 6e-8],
                                                  dtype=np.float32)])
    got = _k.sim_cvt(x)
    with np.errstate(over="ignore"):  # overflow to inf is part of what is checked
        ref = x.astype(np.float16)  # numpy rounds to nearest even
    nan = np.isnan(x)
    np.testing.assert_array_equal(got.view(np.uint16)[~nan], ref.view(np.uint16)[~nan])
    assert np.isnan(got[nan]).all()
    with force_isa("scalar"):
        np.testing.assert_array_equal(_k.sim_cvt(x).view(np.uint16), got.view(np.uint16))
