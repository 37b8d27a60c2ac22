"""Smoke test for an INSTALLED engine wheel (scripts/check_wheel.sh copies it to a scratch dir as a pytest file).

Not the test suite (that is tests/): it checks what can go wrong in packaging alone. The extension loads
from site-packages, the dispatcher sees the CPU, every ISA level compiled into the wheel and runnable here
computes a GEMM that matches numpy (float64 reference), bias + activation epilogues work, and bad input
raises a Python exception. It is used when tests/ is absent and for the oldest-numpy check (numpy 1.23.5,
the floor in pyproject.toml), where onnx and onnxruntime are not installed.
"""
import os
import sysconfig

import numpy as np
import pytest

import engine
from engine._C import _kernels


@pytest.mark.skipif(os.environ.get("ENGINE_EXPECT_INSTALLED") != "1",
                    reason="ENGINE_EXPECT_INSTALLED=1 not set (check_wheel.sh sets it; in-place runs import the source tree)")
def test_imported_from_site_packages():
    assert engine.__file__.startswith(sysconfig.get_paths()["platlib"]), engine.__file__


def test_cpu_info_is_consistent():
    info = engine.cpu_info()
    assert info["active_isa"] in info["supported_isas"]
    assert set(info["supported_isas"]) <= set(info["compiled_isas"])
    assert "scalar" in info["supported_isas"]
    forced = os.environ.get("ENGINE_ISA")
    assert info["active_isa"] == (forced or info["max_isa"]) or info["max_isa"] not in info["compiled_isas"]
    rows = engine.kernel_info()
    assert rows and all(r["isa"] in info["supported_isas"] for r in rows)


@pytest.fixture(params=_kernels.supported_isas())
def isa(request):
    before = _kernels.active_isa()
    _kernels.select_isa(request.param)
    yield request.param
    _kernels.select_isa(before)


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (1, 37, 19), (7, 5, 3), (33, 65, 17), (128, 96, 130)])
def test_matmul_matches_numpy(isa, m, k, n):
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    got = engine.matmul(a, b)
    assert got.shape == (m, n) and got.dtype == np.float32
    tol = 1e-5 * k * np.abs(a).max() * np.abs(b).max() + 1e-6
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol)


def test_gemm_epilogue(isa):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((20, 30), dtype=np.float32)
    b = rng.standard_normal((30, 25), dtype=np.float32)
    bias = rng.standard_normal(25, dtype=np.float32)
    got = engine.gemm(a, b, bias=bias, activation="relu")
    ref = np.maximum(a.astype(np.float64) @ b + bias, 0)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)


def test_bad_input_raises():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(ValueError):
        engine.matmul(a, np.ones((5, 2), np.float32))
    with pytest.raises(ValueError):
        engine.gemm(a, np.ones((4, 2), np.float32), activation="no-such-activation")
