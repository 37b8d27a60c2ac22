"""Similarity speed (pytest-benchmark): a single cosine pair against simsimd and numpy, and gallery search (1 and 64
queries, dim 512, f32 and f16 galleries of 100k and 1M rows) against faiss-cpu IndexFlatIP and numpy.

    python -m pytest bench/bench_similarity.py                       # everything (1M-row galleries: minutes)
    ENGINE_BENCH_QUICK=1 python -m pytest bench/bench_similarity.py  # 100k rows only, fewer rounds

simsimd and faiss-cpu are optional peers (the `bench` extra installs them): a missing one is skipped with a reason.
Groups: "cos d=512" holds engine / simsimd / numpy for one dimension; "search n=100000 m=64 t1" holds engine f32,
engine f16, faiss (f32 IndexFlatIP) and numpy for one gallery size, query count and thread count. extra_info
carries bytes (gallery bytes scanned per call) and flops (2 m n d), so GB/s and GFLOP/s follow from the timings;
bench/compare_similarity.py prints those against measured bandwidth and FMA peak. Every result is checked once
before it is timed. numpy's BLAS threads follow OPENBLAS_NUM_THREADS at start-up (or threadpoolctl when present).
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import engine
from sim_common import (FULL_GALLERIES, K, PAIR_DIMS, QUERY_COUNTS, QUICK_GALLERIES, check_search, faiss_index,
                        faiss_or_none, faiss_search, gallery_data, numpy_search, pair, quick_from_env,
                        simsimd_or_none)

QUICK = quick_from_env()
GALLERIES = QUICK_GALLERIES if QUICK else FULL_GALLERIES
THREADS = (1,) if QUICK else (1, 2)


@pytest.fixture
def engine_threads():
    before = engine.get_num_threads()
    yield engine.set_num_threads
    engine.set_num_threads(before)


# ---------------------------------------------------------------------------------------------- single pair
@pytest.mark.parametrize("impl", ["engine", "simsimd", "numpy"])
@pytest.mark.parametrize("dim", PAIR_DIMS)
def test_cos_pair(benchmark, impl, dim):
    a, b = pair(dim)
    ref = float(a.astype(np.float64) @ b / np.linalg.norm(a.astype(np.float64)) / np.linalg.norm(b.astype(np.float64)))
    if impl == "engine":
        fn = functools.partial(engine.cosine_similarity, a, b)
        got = fn()
    elif impl == "simsimd":
        simsimd = simsimd_or_none()
        if simsimd is None:
            pytest.skip("simsimd is not installed (pip install simsimd, or the bench extra)")
        fn = functools.partial(simsimd.cosine, a, b)  # a distance: 1 - cos
        got = 1.0 - float(fn())
    else:
        def fn():
            return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
        got = fn()
    assert abs(got - ref) < 1e-5, (impl, got, ref)
    benchmark.group = f"cos d={dim}"
    benchmark.extra_info.update(impl=impl, dim=dim, bytes=8 * dim, flops=6 * dim)
    benchmark.pedantic(fn, rounds=2000 if QUICK else 20000, iterations=10, warmup_rounds=100)


# ---------------------------------------------------------------------------------------------- gallery search
@functools.lru_cache(maxsize=1)
def _gallery(n):
    return gallery_data(n)


@functools.lru_cache(maxsize=2)
def _engine_gallery(n, dtype):
    g, _ = _gallery(n)
    return engine.Gallery(g, dtype=dtype)


@functools.lru_cache(maxsize=1)
def _faiss(n):
    return faiss_index(faiss_or_none(), _gallery(n)[0])


@pytest.mark.parametrize("threads", THREADS)
@pytest.mark.parametrize("impl", ["engine-f32", "engine-f16", "faiss", "numpy"])
@pytest.mark.parametrize("m", QUERY_COUNTS)
@pytest.mark.parametrize("n", GALLERIES)
def test_search(benchmark, engine_threads, n, m, impl, threads):
    g, qall = _gallery(n)
    q = qall[:m] if m > 1 else qall[:1]
    d = g.shape[1]
    bytes_per_row = 2 * d if impl == "engine-f16" else 4 * d
    if impl.startswith("engine"):
        engine_threads(threads)
        gal = _engine_gallery(n, impl.split("-")[1])

        def fn():
            return gal.search(q, K)
        atol = 1e-5 if impl == "engine-f32" else 1e-3
    elif impl == "faiss":
        faiss = faiss_or_none()
        if faiss is None:
            pytest.skip("faiss-cpu is not installed (pip install faiss-cpu, or the bench extra)")
        faiss.omp_set_num_threads(threads)
        idx = _faiss(n)

        def fn():
            return faiss_search(faiss, idx, q, K)
        atol = 1e-5
    else:
        def fn():
            return numpy_search(g, q, K)
        atol = 1e-5
    s, i = fn()
    check_search(impl, s, i, g, q, atol)
    benchmark.group = f"search n={n} m={m} t{threads}"
    benchmark.extra_info.update(impl=impl, n=n, m=m, d=d, threads=threads, bytes=n * bytes_per_row,
                                flops=2 * m * n * d)
    rounds = 3 if QUICK else (5 if n >= 1_000_000 else 10)
    benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
