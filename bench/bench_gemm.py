"""GEMM speed: engine.matmul against numpy and onnxruntime, per shape and thread count (pytest-benchmark).

Run from the repository root (not part of the default `pytest` run, whose testpaths is `tests`):

    python -m pytest bench/bench_gemm.py                       # everything, about 2-3 minutes
    ENGINE_BENCH_QUICK=1 python -m pytest bench/bench_gemm.py  # smoke subset, a few seconds

Each benchmark group is one shape at one thread count ("gemm 784x128x1152 t1"), so the four implementations of
that case sit side by side in one table:

    engine         engine.matmul(A, B)
    numpy          A @ B
    ort_inputs     onnxruntime MatMul with A and B both graph inputs: B is packed on every call, the same work
                   engine does. engine / ort_inputs is the like-for-like ratio.
    ort_prepacked  onnxruntime MatMul with B an initializer: ORT packs the weights once when the session is built,
                   which is what it does for real models. engine / ort_prepacked is the ratio a user of either sees
                   on a model today (engine has no pre-packing yet).

Threads: engine via engine.set_num_threads, onnxruntime via SessionOptions (intra_op_num_threads = threads,
inter_op_num_threads = 1, sequential execution). numpy's OpenBLAS reads OPENBLAS_NUM_THREADS once, at import; when
threadpoolctl is installed (it is not a dependency) it is used to set the count per test, otherwise numpy runs
with whatever thread count it started with in every group, and extra_info records the count it really used
(`threads`) next to the one the group asked for (`threads_requested`). For a clean 1-thread numpy column, start
pytest with OPENBLAS_NUM_THREADS=1, or use bench/compare_gemm.py, which runs each thread count in its own process.

Every implementation's output is checked against a float64 reference once before it is timed. Timings include
the Python call and allocating the output, for all four implementations alike.
"""
from __future__ import annotations

import contextlib
import functools

import pytest

import engine
from gemm_common import (ALL_SHAPES, IMPL_DOC, IMPLS, QUICK_SHAPES, check_result, flops, make_inputs,
                         numpy_blas_threads, ort_matmul_inputs, ort_matmul_prepacked, quick_from_env, reference,
                         shape_id, threadpoolctl_limits)

QUICK = quick_from_env()
SHAPES = QUICK_SHAPES if QUICK else ALL_SHAPES
THREADS = (1, 2)


@functools.lru_cache(maxsize=2)
def _data(shape):
    a, b = make_inputs(shape)
    ref, scale = reference(a, b)
    return a, b, ref, scale


@pytest.fixture
def engine_threads():
    """Restores engine's pool size after the test."""
    before = engine.get_num_threads()
    yield engine.set_num_threads
    engine.set_num_threads(before)


def _run(benchmark, fn, *args):
    if QUICK:  # a few rounds are enough to see that everything runs
        return benchmark.pedantic(fn, args=args, rounds=3, iterations=1, warmup_rounds=1)
    return benchmark(fn, *args)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_gemm(benchmark, engine_threads, shape, threads, impl):
    usable = engine.cpu_info()["usable_cpus"]
    if threads > usable:
        pytest.skip(f"{threads} threads asked for but only {usable} CPU(s) are usable here")
    if impl.startswith("ort"):
        pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install onnxruntime)")
        pytest.importorskip("onnx", reason="onnx is not installed; it builds the one-node MatMul model for ORT")

    a, b, ref, scale = _data(shape)
    m, n, k = shape
    benchmark.group = f"gemm {shape_id(shape)} t{threads}"
    info = {"impl": impl, "what": IMPL_DOC[impl], "M": m, "N": n, "K": k, "flops": flops(shape),
            "threads_requested": threads, "threads": threads}

    if impl == "engine":
        engine_threads(threads)
        info["isa"] = engine.cpu_info()["active_isa"]
        fn, args = engine.matmul, (a, b)
    elif impl == "numpy":
        def fn(x, y):
            return x @ y
        args = (a, b)
    elif impl == "ort_inputs":
        fn, args = ort_matmul_inputs(shape, threads), (a, b)
    else:
        fn, args = ort_matmul_prepacked(shape, threads, b), (a,)

    with contextlib.ExitStack() as stack:
        if impl == "numpy":
            limits = threadpoolctl_limits()
            if limits is not None:  # threadpool_limits sets the count on creation and restores it on exit
                stack.enter_context(limits(limits=threads, user_api="blas"))
            actual = numpy_blas_threads()
            info["threads"] = actual if actual is not None else "unknown"
            info["threads_control"] = ("threadpoolctl" if limits is not None else
                                       "none: numpy's default BLAS threads (threadpoolctl is not installed and "
                                       "OPENBLAS_NUM_THREADS is only read at import)")
        benchmark.extra_info.update(info)
        check_result(impl, fn(*args), ref, scale)  # once, before timing
        _run(benchmark, fn, *args)

    stats = getattr(benchmark, "stats", None)
    if stats is not None and getattr(stats, "stats", None) is not None and stats.stats.median > 0:
        benchmark.extra_info["gflops_median"] = round(flops(shape) / stats.stats.median / 1e9, 2)
