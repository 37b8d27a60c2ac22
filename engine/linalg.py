"""Matrix products on engine's GEMM kernels: numpy-compatible `matmul` and BLAS-style `gemm`."""
from __future__ import annotations

import numpy as np

from engine._C import _kernels as _k

# name -> (C activation id, default parameters)
ACTIVATIONS = {
    None: (0, ()),
    "relu": (1, ()),
    "clip": (2, (float("-inf"), float("inf"))),
    "relu6": (2, (0.0, 6.0)),
    "leaky_relu": (3, (0.01,)),
    "sigmoid": (4, ()),
    "silu": (5, ()),
    "swish": (5, ()),
    "gelu": (6, ()),
    "gelu_tanh": (7, ()),
    "hardswish": (8, ()),
}


def _activation(activation) -> tuple[int, float, float]:
    """Parses "relu", ("leaky_relu", 0.1), ("clip", lo, hi) ... into (id, p0, p1)."""
    name, params = activation, ()
    if isinstance(activation, (tuple, list)):
        if not activation:
            raise ValueError("activation: empty tuple")
        name, params = activation[0], tuple(activation[1:])
    if isinstance(name, str):
        name = name.lower()
    if name not in ACTIVATIONS:
        known = ", ".join(repr(k) for k in ACTIVATIONS if k is not None)
        raise ValueError(f"unknown activation {name!r}; known: None, {known}")
    kind, defaults = ACTIVATIONS[name]
    if len(params) > len(defaults):
        raise ValueError(f"activation {name!r} takes at most {len(defaults)} parameter(s), got {len(params)}")
    params = tuple(float(p) for p in params) + defaults[len(params):]
    if name == "clip" and params[0] > params[1]:
        raise ValueError(f"activation clip: min {params[0]} is greater than max {params[1]}")
    params = params + (0.0,) * (2 - len(params))
    return kind, params[0], params[1]


def _check_f32(x, name: str, fn: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a numpy.ndarray, got {type(x).__name__}")
    if x.dtype != np.float32:
        raise TypeError(f"{fn}: {name} has dtype {x.dtype}, expected float32")
    return x


def _as_matrix(x: np.ndarray) -> tuple[np.ndarray, bool]:
    """A 2-D float32 array as (array usable by the kernel, transposed?), without copying when one of the last
    two axes is unit-strided."""
    r, c = x.shape
    s0, s1 = x.strides
    if (s1 == 4 or c <= 1) and (r <= 1 or (s0 > 0 and s0 % 4 == 0 and s0 // 4 >= c)):
        return x, False
    if (s0 == 4 or r <= 1) and (c <= 1 or (s1 > 0 and s1 % 4 == 0 and s1 // 4 >= r)):
        return x.T, True
    return np.ascontiguousarray(x), False


def gemm(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, bias=None, activation=None):
    """C = activation(alpha * op(A) @ op(B) + beta * C + bias) in float32.

    op(X) is X or X.T (trans_a / trans_b). `c`, when given, is read (scaled by beta) and overwritten in place,
    BLAS style, and returned; otherwise a new array is returned. `bias` is a vector of N (added to each row).
    `activation` is None, a name ("relu", "relu6", "clip", "leaky_relu", "sigmoid", "silu", "gelu",
    "gelu_tanh", "hardswish") or a tuple with parameters: ("clip", lo, hi), ("leaky_relu", alpha).
    """
    a = _check_f32(a, "a", "gemm")
    b = _check_f32(b, "b", "gemm")
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"gemm: a and b must be 2-D, got a.ndim={a.ndim}, b.ndim={b.ndim}")
    m, k = (a.shape[1], a.shape[0]) if trans_a else a.shape
    kb, n = (b.shape[1], b.shape[0]) if trans_b else b.shape
    if k != kb:
        raise ValueError(f"gemm: op(a) is {m}x{k} but op(b) is {kb}x{n}: inner dimensions {k} and {kb} differ")
    kind, p0, p1 = _activation(activation)
    if c is None:
        c = np.empty((m, n), np.float32)
        beta = 0.0
    else:
        c = _check_f32(c, "c", "gemm")
        if c.shape != (m, n):
            raise ValueError(f"gemm: c has shape {c.shape}, expected {(m, n)}")
        if not c.flags.writeable:
            raise ValueError("gemm: c is read-only")
        if c.size and ((c.strides[1] != 4 and n > 1) or (m > 1 and c.strides[0] < 4 * n)):
            raise ValueError("gemm: c must be row-major with a unit-stride last axis (it is written in place)")
    if bias is not None:
        bias = np.ascontiguousarray(_check_f32(np.asarray(bias) if np.isscalar(bias) else bias, "bias", "gemm"))
        if bias.ndim != 1 or bias.shape[0] != n:
            raise ValueError(f"gemm: bias has shape {bias.shape}, expected ({n},)")
    a2, ta = _as_matrix(a)
    b2, tb = _as_matrix(b)
    _k.gemm(a2, b2, c, bool(trans_a) ^ ta, bool(trans_b) ^ tb, float(alpha), float(beta), bias,
            _k.BIAS_COL if bias is not None else _k.BIAS_NONE, kind, p0, p1)
    return c


def _offsets(x: np.ndarray, batch_shape: tuple[int, ...]) -> np.ndarray:
    """Element offsets of every matrix of x (broadcast to batch_shape) from its first matrix."""
    nb = len(batch_shape)
    nd = x.ndim - 2
    strides = (0,) * (nb - nd) + tuple(0 if x.shape[i] == 1 else x.strides[i] // 4 for i in range(nd))
    off = np.zeros(batch_shape, np.int64)
    for axis, (size, st) in enumerate(zip(batch_shape, strides)):
        if st and size > 1:
            shape = [1] * nb
            shape[axis] = size
            off = off + np.arange(size, dtype=np.int64).reshape(shape) * st
    return np.ascontiguousarray(off.reshape(-1))


def _prepare(x: np.ndarray) -> np.ndarray:
    """Makes the last two axes of x usable by the kernel (one of them unit-strided, positive strides)."""
    s = x.strides
    if any(st < 0 for st in s) or any(st % 4 for st in s):
        return np.ascontiguousarray(x)
    r, c = x.shape[-2:]
    if (s[-1] == 4 or c <= 1) and (r <= 1 or s[-2] // 4 >= c):
        return x
    if (s[-2] == 4 or r <= 1) and (c <= 1 or s[-1] // 4 >= r):
        return x
    return np.ascontiguousarray(x)


def matmul(a, b, out=None):
    """numpy.matmul for float32 arrays on engine's kernels: 1-D, 2-D and batched with broadcasting."""
    a = _check_f32(a, "a", "matmul")
    b = _check_f32(b, "b", "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: operands must have at least one dimension (use * for scalars)")
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    m, k = a2.shape[-2:]
    kb, n = b2.shape[-2:]
    if k != kb:
        raise ValueError(f"matmul: a has shape {a.shape} and b has shape {b.shape}: "
                         f"the contracted dimensions {k} and {kb} differ")
    try:
        batch = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dimensions of a {a.shape[:-2]} and b {b.shape[:-2]} do not broadcast") from None
    full = batch + (m, n)
    shape = batch + ((m,) if a.ndim > 1 else ()) + ((n,) if b.ndim > 1 else ())
    if out is not None:
        out = _check_f32(out, "out", "matmul")
        if out.shape != shape:
            raise ValueError(f"matmul: out has shape {out.shape}, expected {shape}")
        if not out.flags.writeable:
            raise ValueError("matmul: out is read-only")
    target = out if out is not None and out.flags.c_contiguous and not np.shares_memory(out, a) \
        and not np.shares_memory(out, b) else np.empty(shape, np.float32)
    c = target.reshape(full)
    if c.size:
        a2 = _prepare(a2)
        b2 = _prepare(b2)
        nb = len(batch)
        ma, ta = _as_matrix(a2[(0,) * (a2.ndim - 2)])  # _prepare made these views usable: no copy here
        mb, tb = _as_matrix(b2[(0,) * (b2.ndim - 2)])
        if not batch:
            _k.gemm(ma, mb, c, ta, tb)
        else:
            c_off = np.arange(int(np.prod(batch)), dtype=np.int64) * (m * n)
            _k.gemm_batch(ma, mb, c[(0,) * nb], ta, tb, _offsets(a2, batch), _offsets(b2, batch), c_off)
    if out is not None and target is not out:
        np.copyto(out, target)
        return out
    return target
