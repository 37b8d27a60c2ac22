"""Helpers shared by tests/ and bench/: ISA forcing, seeds, float64 references and error bounds.

Not part of the public API: `force_isa` rebuilds the process-wide kernel table and is not thread-safe.
"""
from __future__ import annotations

import contextlib
import math
import os
import zlib
from typing import Iterator

import numpy as np

from engine._C import _kernels as _k

EPS32 = float(np.finfo(np.float32).eps)  # 2**-23

# Largest |d act/dx| of each activation (how far an input error can grow through it). A parameter-dependent
# entry is computed by lipschitz(). Values: sigmoid 1/4 at 0; silu max of sigma(x)(1 + x(1 - sigma(x))) ~ 1.0998
# at x ~ 2.4; gelu max of Phi(x) + x phi(x) ~ 1.1289 at x = sqrt(2); gelu_tanh about the same; hardswish x/3+1/2
# on [-3, 3] -> 1.5.
_LIPSCHITZ = {None: 1.0, "relu": 1.0, "clip": 1.0, "relu6": 1.0, "sigmoid": 0.25, "silu": 1.1, "swish": 1.1,
              "gelu": 1.13, "gelu_tanh": 1.13, "hardswish": 1.5}


def suite_seed() -> int:
    """Base seed of the test suite (ENGINE_TEST_SEED overrides the default 1234)."""
    return int(os.environ.get("ENGINE_TEST_SEED", "1234"))



def quick() -> bool:
    """ENGINE_TEST_QUICK=1 asks for shrunken sweeps (slow CPU emulation)."""
    return os.environ.get("ENGINE_TEST_QUICK", "") not in ("", "0")


def rng(*keys) -> np.random.Generator:
    """A generator seeded by the suite seed and `keys`, so each case draws the same data in every run and
    does not depend on which other cases ran before it."""
    h = zlib.crc32(repr(keys).encode())
    return np.random.default_rng([suite_seed(), h])


@contextlib.contextmanager
def force_isa(tag: str) -> Iterator[str]:
    """Runs the body with the kernel table capped at `tag`, then restores the previous level (also on error).
    Raises ValueError if `tag` is unknown or cannot run here."""
    prev = _k.active_isa()
    _k.select_isa(tag)
    try:
        yield tag
    finally:
        _k.select_isa(prev)


def parse_activation(activation) -> tuple[str | None, tuple[float, ...]]:
    """("leaky_relu", 0.2) -> ("leaky_relu", (0.2,)); applies engine.linalg's defaults."""
    from engine.linalg import ACTIVATIONS

    name, params = activation, ()
    if isinstance(activation, (tuple, list)):
        name, params = activation[0], tuple(activation[1:])
    if isinstance(name, str):
        name = name.lower()
    defaults = ACTIVATIONS[name][1]
    return name, tuple(float(p) for p in params) + tuple(defaults[len(params):])


def _erf(x: np.ndarray) -> np.ndarray:
    return np.frompyfunc(math.erf, 1, 1)(x).astype(np.float64)


def activation_ref(x, activation) -> np.ndarray:
    """The activation evaluated in float64 (NaN in, NaN out)."""
    name, p = parse_activation(activation)
    x = np.asarray(x, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        if name is None:
            return x.copy()
        if name == "relu":
            return np.where(x < 0, 0.0, x)
        if name in ("clip", "relu6"):
            lo, hi = (0.0, 6.0) if name == "relu6" else p
            return np.where(x < lo, lo, np.where(x > hi, hi, x))
        if name == "leaky_relu":
            return np.where(x >= 0, x, p[0] * x)
        if name == "sigmoid":
            return 1.0 / (1.0 + np.exp(-x))
        if name in ("silu", "swish"):
            return x / (1.0 + np.exp(-x))
        if name == "gelu":
            return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
        if name == "gelu_tanh":
            return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
        if name == "hardswish":
            return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)
    raise ValueError(f"no reference for activation {activation!r}")


def lipschitz(activation) -> float:
    name, p = parse_activation(activation)
    if name == "leaky_relu":
        return max(1.0, abs(p[0]))
    return _LIPSCHITZ[name]


def op(x: np.ndarray, trans: bool) -> np.ndarray:
    return x.T if trans else x


def gemm_ref(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, bias=None, activation=None,
             bias_row=None) -> np.ndarray:
    """activation(alpha op(a) op(b) + beta c + bias) in float64. beta == 0 ignores c (BLAS: NaN does not leak).
    `bias` is per column (length N), `bias_row` per row (length M)."""
    a64 = op(np.asarray(a, np.float64), trans_a)
    b64 = op(np.asarray(b, np.float64), trans_b)
    r = float(alpha) * (a64 @ b64) if a64.shape[1] else np.zeros((a64.shape[0], b64.shape[1]))
    if c is not None and beta != 0.0:
        r = r + float(beta) * np.asarray(c, np.float64)
    if bias is not None:
        r = r + np.asarray(bias, np.float64)[None, :]
    if bias_row is not None:
        r = r + np.asarray(bias_row, np.float64)[:, None]
    return activation_ref(r, activation)


def gemm_error_bound(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, bias=None, activation=None,
                     bias_row=None, c_mult: float = 2.0, act_atol: float = 0.0, act_rtol: float = 0.0) -> np.ndarray:
    """Elementwise bound on |float32 result - gemm_ref()|.

    A float32 dot product of length K has error <= K*eps*sum|a_p b_p| in any summation order (blocked, FMA or
    not); scaling by alpha, adding beta*c and the bias are a few more roundings of terms of that size, counted
    as 3 more in K. Through the activation the error grows by at most its Lipschitz constant; a transcendental
    activation adds its own error (act_atol + act_rtol*|ref|). The tiny absolute term covers underflow."""
    a64 = np.abs(op(np.asarray(a, np.float64), trans_a))
    b64 = np.abs(op(np.asarray(b, np.float64), trans_b))
    k = a64.shape[1]
    mag = abs(float(alpha)) * (a64 @ b64) if k else np.zeros((a64.shape[0], b64.shape[1]))
    if c is not None and beta != 0.0:
        mag = mag + abs(float(beta)) * np.abs(np.asarray(c, np.float64))
    if bias is not None:
        mag = mag + np.abs(np.asarray(bias, np.float64))[None, :]
    if bias_row is not None:
        mag = mag + np.abs(np.asarray(bias_row, np.float64))[:, None]
    bound = c_mult * (k + 3) * EPS32 * mag * lipschitz(activation) + 1e-30
    if act_atol or act_rtol:
        ref = gemm_ref(a, b, c, alpha, beta, trans_a, trans_b, bias, activation, bias_row)
        bound = bound + act_atol + act_rtol * np.abs(ref)
    return bound


def assert_within(got, ref, bound, what: str = "") -> None:
    """Asserts |got - ref| <= bound elementwise (NaN must match NaN), reporting the worst element."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    assert got.shape == ref.shape, f"{what}: shape {got.shape} != reference {ref.shape}"
    nan_got, nan_ref = np.isnan(got), np.isnan(ref)
    if not np.array_equal(nan_got, nan_ref):
        idx = np.argwhere(nan_got != nan_ref)[0]
        raise AssertionError(f"{what}: NaN mismatch at {tuple(idx)}: got {got[tuple(idx)]}, ref {ref[tuple(idx)]}")
    with np.errstate(invalid="ignore"):
        err = np.where(nan_ref | (got == ref), 0.0, np.abs(got - ref))
    bound = np.broadcast_to(np.asarray(bound, np.float64), err.shape)
    bad = err > bound
    if bad.any():
        ratio = np.where(bound > 0, err / np.where(bound > 0, bound, 1), np.inf)
        idx = tuple(np.unravel_index(np.argmax(np.where(bad, ratio, -1)), err.shape))
        raise AssertionError(f"{what}: {int(bad.sum())} of {err.size} elements out of bound; worst at {idx}: "
                             f"got {got[idx]!r}, ref {ref[idx]!r}, |err| {err[idx]:.3g} > bound {bound[idx]:.3g}")


def ulp_distance(x, y) -> np.ndarray:
    """Distance in float32 units in the last place (0 for equal values, incl. +0/-0)."""
    xi = np.asarray(x, np.float32).view(np.int32).astype(np.int64)
    yi = np.asarray(y, np.float32).view(np.int32).astype(np.int64)
    xi = np.where(xi < 0, -(xi & 0x7FFFFFFF), xi)
    yi = np.where(yi < 0, -(yi & 0x7FFFFFFF), yi)
    return np.abs(xi - yi)


def sentinel_buffer(rows: int, cols: int, pad: int = 16, fill: float = float("nan"),
                    rng_: np.random.Generator | None = None, value=None) -> tuple[np.ndarray, np.ndarray]:
    """(big, view): a rows x cols float32 view at offset (pad, pad) into a (rows+2pad) x (cols+2pad) buffer
    filled with `fill`; the view's leading dimension is cols+2pad > cols. `value` (or random data) fills the
    view."""
    big = np.full((rows + 2 * pad, cols + 2 * pad), fill, np.float32)
    view = big[pad:pad + rows, pad:pad + cols]
    if value is not None:
        view[...] = value
    elif rng_ is not None:
        view[...] = rng_.standard_normal((rows, cols), dtype=np.float32)
    return big, view


__all__ = ["EPS32", "force_isa", "quick", "rng", "activation_ref", "gemm_ref", "gemm_error_bound",
           "assert_within", "lipschitz", "ulp_distance", "sentinel_buffer", "parse_activation", "op"]
