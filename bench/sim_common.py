"""Shared pieces of the similarity benchmarks (bench_similarity.py, compare_similarity.py): data, the peers
(simsimd, faiss-cpu, numpy) behind availability checks, a result check against float64, and the memory bandwidth
measurement the gallery scans are compared with."""
from __future__ import annotations

import os
import time

import numpy as np

PAIR_DIMS = (128, 512, 1536)
DIM = 512
QUICK_GALLERIES = (100_000,)
FULL_GALLERIES = (100_000, 1_000_000)
QUERY_COUNTS = (1, 64)
K = 10


def quick_from_env() -> bool:
    return os.environ.get("ENGINE_BENCH_QUICK", "") not in ("", "0")


def simsimd_or_none():
    """simsimd if installed (a bench-only peer, see pyproject.toml's bench extra), else None."""
    try:
        import simsimd
    except ImportError:
        return None
    return simsimd


def faiss_or_none():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def pair(dim: int, seed: int = 0):
    r = np.random.default_rng([seed, dim])
    a, b = r.standard_normal((2, dim), dtype=np.float32)
    return a, b


def gallery_data(n: int, d: int = DIM, m: int = 64, seed: int = 0):
    """n unit rows (float32) and m queries, the first half near-duplicates of gallery rows 0..m/2-1."""
    r = np.random.default_rng([seed, n, d])
    g = r.standard_normal((n, d), dtype=np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q = r.standard_normal((m, d), dtype=np.float32)
    h = m // 2
    q[:h] = g[:h] + 0.05 * q[:h]
    return g, q


def numpy_search(g: np.ndarray, q: np.ndarray, k: int):
    """The plain numpy answer: normalize the queries, one matrix product, argpartition, sort the k."""
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    s = qn @ g.T
    part = np.argpartition(-s, k - 1, axis=1)[:, :k]
    ps = np.take_along_axis(s, part, 1)
    order = np.argsort(-ps, axis=1)
    return np.take_along_axis(ps, order, 1), np.take_along_axis(part, order, 1)


def faiss_index(faiss, g: np.ndarray):
    idx = faiss.IndexFlatIP(g.shape[1])
    idx.add(g)
    return idx


def faiss_search(faiss, idx, q: np.ndarray, k: int):
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    return idx.search(qn, k)


def check_search(name: str, scores, ids, g: np.ndarray, q: np.ndarray, atol: float) -> None:
    """The top-1 of each near-duplicate query is its source row, and every returned score is the float64 cosine
    of the row it names (within atol)."""
    scores, ids = np.asarray(scores), np.asarray(ids)
    h = len(q) // 2
    if h and not (ids[:h, 0] == np.arange(h)).all():
        raise AssertionError(f"{name}: near-duplicate queries did not find their source rows")
    qn = q.astype(np.float64) / np.linalg.norm(q.astype(np.float64), axis=1, keepdims=True)
    rows = g[ids.reshape(-1)].astype(np.float64).reshape(ids.shape + (g.shape[1],))
    true = np.einsum("mkd,md->mk", rows, qn)
    err = np.abs(true - scores).max()
    if err > atol:
        raise AssertionError(f"{name}: scores differ from float64 by {err:.3g} (> {atol})")


CLOCK = time.perf_counter  # compare_similarity.py --clock cpu switches to time.process_time


def best_time(fn, repeat: int = 5, min_time: float = 0.0) -> float:
    """Smallest per-call time over `repeat` batches, on CLOCK. A batch is as many calls as take min_time (found by
    doubling), so the clock is read once per batch (reading the CPU-time clock costs about a microsecond). A call
    slower than 0.5 s is timed only twice."""
    clock = CLOCK
    n = 1
    while True:
        t0 = clock()
        for _ in range(n):
            fn()
        dt = clock() - t0
        if dt >= min_time:
            break
        n *= 2
    best = dt / n
    for _ in range(min(repeat, 2) - 1 if best > 0.5 else repeat - 1):
        t0 = clock()
        for _ in range(n):
            fn()
        best = min(best, (clock() - t0) / n)
    return best


def best_times_alternating(fns: dict, repeat: int = 5) -> dict:
    """{name: smallest time of one call of fns[name]} on CLOCK, the functions taking turns: each round times one
    call of each, after the process's threads have gone quiet (another library's pool still spinning from its last
    call, OpenBLAS's or faiss's OpenMP threads, would share the cores with the next one). A slow drift of the
    machine then touches every column alike, where timing one library's calls in a block and the next's later
    compared two different moments. Rounds: `repeat`, or 2 once every call takes more than 0.5 s."""
    from quiet import wait_until_quiet

    clock = CLOCK
    best = {name: float("inf") for name in fns}
    r = 0
    while r < repeat and (r < 2 or min(best.values()) <= 0.5):
        for name, fn in fns.items():
            wait_until_quiet()
            t0 = clock()
            fn()
            best[name] = min(best[name], clock() - t0)
        r += 1
    return best


def measure_bandwidth(mbytes: int = 1024, repeat: int = 5) -> dict:
    """Single-thread read bandwidth in GB/s over an array of `mbytes` MiB (far larger than any cache), two ways:
    numpy's BLAS dot of the array with itself (a vectorized read loop) and engine's AVX2/AVX-512/NEON squared-norm
    kernel (a plain C read loop). Returns both and the larger as "best" (what a streaming scan can hope for)."""
    import engine  # noqa: F401  (initializes the kernel table)
    from engine._C import _kernels as _k

    x = np.ones(mbytes * (1 << 20) // 4, dtype=np.float32)
    t_np = best_time(lambda: np.dot(x, x), repeat)
    before = engine.get_num_threads()
    t_c = best_time(lambda: _k.sim_kernel("sqnorm", x), repeat)  # one call: always one thread
    engine.set_num_threads(before)
    res = {"numpy_dot": x.nbytes / t_np / 1e9, "c_read": x.nbytes / t_c / 1e9, "mbytes": mbytes}
    res["best"] = max(res["numpy_dot"], res["c_read"])
    return res
