"""The bundled example: a matrix product and a fused dense layer on engine's kernels, checked against
numpy in float64, with timings. Run it with `python -m engine example`."""
from __future__ import annotations

import time

import numpy as np


def _best(fn, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run_example(n: int = 1024) -> int:
    import engine

    if n < 1:
        print("example: --size must be positive")
        return 2
    print(f"engine {engine.__version__}: active ISA {engine.cpu_info()['active_isa']}, "
          f"{engine.get_num_threads()} thread(s)")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = engine.matmul(a, b)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    err = float(np.max(np.abs(c - ref)) / np.max(np.abs(ref)))
    t_eng = _best(lambda: engine.matmul(a, b))
    t_np = _best(lambda: a @ b)
    gf = 2.0 * n ** 3 / 1e9
    print(f"matmul {n}x{n}x{n}: max rel error vs float64 {err:.2e}; engine {gf / t_eng:7.1f} GFLOP/s, "
          f"numpy {gf / t_np:7.1f} GFLOP/s (ratio engine/numpy speed {t_np / t_eng:.2f})")
    # A dense layer y = gelu(x W^T + b), as in a transformer MLP, with the bias and activation fused.
    x = rng.standard_normal((128, 384), dtype=np.float32)
    w = rng.standard_normal((1536, 384), dtype=np.float32) * 0.05
    bias = rng.standard_normal(1536, dtype=np.float32)
    y = engine.gemm(x, w, trans_b=True, bias=bias, activation="gelu")
    from math import erf

    z = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    yref = 0.5 * z * (1 + np.vectorize(erf)(z / np.sqrt(2)))
    derr = float(np.max(np.abs(y - yref)))
    print(f"dense 128x384 -> 1536 with fused bias + GELU: max abs error vs float64 {derr:.2e}")
    ok = err < 1e-5 and derr < 1e-3
    print("example: OK" if ok else "example: MISMATCH")
    return 0 if ok else 1
