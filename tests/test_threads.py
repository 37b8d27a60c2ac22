"""The thread pool: sizing, idle cost, determinism across thread counts, fork safety, GIL release, concurrent
callers."""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import tolerances as tol

import engine
from engine._C import _kernels as _k
from engine.testing import assert_within, gemm_error_bound, gemm_ref, quick, rng

from test_dispatch import run_py

# set by tools/python-under-cpu and tools/aarch64-python (qemu-user: 10-40x slower, no threads in a forked child)
EMULATED = bool(os.environ.get("PYTHON_UNDER_CPU") or os.environ.get("AARCH64_PYTHON_CPU"))
# qemu-user 7.2 aborts a forked child of a multi-threaded process as soon as the child creates a thread
# ("qemu_plugin_vcpu_init_hook: assertion failed"; reproduced with plain threading + os.fork, no engine involved).
# Under emulation the forked children therefore run with one thread: that still checks the pool's locks are
# usable in the child; the parallel child path is covered by the native run.
CHILD_THREADS = 1 if EMULATED else 2
BIG = 160 if quick() else 384  # a GEMM big enough for the pool and long enough to observe


def _operands(n=BIG, seed="threads"):
    g = rng(seed, n)
    return g.standard_normal((n, n), dtype=np.float32), g.standard_normal((n, n), dtype=np.float32)


def _check(c, a, b, **kw):
    assert_within(c, gemm_ref(a, b, **kw), gemm_error_bound(a, b, c_mult=tol.GEMM_C, **kw))


def test_set_get_num_threads():
    engine.set_num_threads(1)
    assert engine.get_num_threads() == 1
    engine.set_num_threads(3)
    assert engine.get_num_threads() == 3
    a, b = _operands(200)
    _check(engine.matmul(a, b), a, b)  # 3 threads on 2 CPUs still works
    assert _k.pool_live_workers() == 2
    engine.set_num_threads(1)
    assert _k.pool_live_workers() == 0  # shrinking stops the workers
    for bad in (0, -1, 1025, 2.0, "2", None, True):
        with pytest.raises(ValueError, match="set_num_threads"):
            engine.set_num_threads(bad)
    assert engine.get_num_threads() == 1


def test_idle_pool_uses_no_cpu():
    """After a parallel GEMM the workers sleep: 0.5 s of idle wall time costs (almost) no process CPU time.
    The bound is loose (20% of the wall time) so a loaded machine cannot make it flaky, and still fails for a
    single spinning worker (~100%)."""
    engine.set_num_threads(2)
    a, b = _operands()
    engine.matmul(a, b)
    assert _k.pool_live_workers() == 1
    time.sleep(0.05)  # past the bounded spin (~20 us, much longer under emulation)
    for attempt in range(3):
        t0, w0 = os.times(), time.monotonic()
        time.sleep(0.5)
        t1, w1 = os.times(), time.monotonic()
        cpu = (t1.user - t0.user) + (t1.system - t0.system)
        if cpu < 0.2 * (w1 - w0):
            break
    assert cpu < 0.2 * (w1 - w0), f"idle pool used {cpu:.3f} s CPU in {w1 - w0:.3f} s"
    assert _k.pool_live_workers() == 1


def _idle_cpu_fraction() -> float:
    """Process CPU time over 0.5 s of sleeping, as a fraction of the wall time (best of 3, against a busy host)."""
    best = 1.0
    for _ in range(3):
        t0, w0 = os.times(), time.monotonic()
        time.sleep(0.5)
        t1, w1 = os.times(), time.monotonic()
        best = min(best, ((t1.user - t0.user) + (t1.system - t0.system)) / (w1 - w0))
        if best < 0.2:
            break
    return best


def test_pool_sleeps_after_a_session_run_even_a_failed_one():
    """Session.run holds the pool (its workers spin between the plan's parallel regions, not just 50 us) and
    releases it when the run ends, also when a step raises: afterwards the workers sleep again."""
    from onnx import TensorProto, helper, numpy_helper

    engine.set_num_threads(2)
    g = np.random.default_rng(3)
    w = g.standard_normal((256, 256)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["t"]), helper.make_node("Reshape", ["t", "shape"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [256, 256]),
         helper.make_tensor_value_info("shape", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    sess = engine.Session(model)
    x = g.standard_normal((256, 256)).astype(np.float32)
    assert sess.run({"x": x, "shape": np.int64([128, 512])})["y"].shape == (128, 512)
    assert _k.pool_live_workers() == 1
    time.sleep(0.05)
    cpu = _idle_cpu_fraction()
    assert cpu < 0.2, f"idle pool after a run used {cpu:.0%} of a CPU"
    with pytest.raises(Exception):
        sess.run({"x": x, "shape": np.int64([3, 5])})  # the Reshape step fails inside the plan
    time.sleep(0.05)
    cpu = _idle_cpu_fraction()
    assert cpu < 0.2, f"idle pool after a failed run used {cpu:.0%} of a CPU"


@pytest.mark.parametrize("shape", [(384, 384, 384), (1, 4096, 300), (4096, 1, 300), (250, 40, 300), (40, 250, 300),
                                   (97, 101, 513), (50, 273, 300)], ids=str)
def test_one_vs_two_threads_bitwise(isa, shape):
    """Threads compute disjoint blocks of C with the same kernels and the same K order: bitwise equal."""
    m, n, k = shape
    if quick():
        m, n, k = min(m, 130), min(n, 2048), min(k, 260)
    g = rng("bitwise", shape)
    a = g.standard_normal((m, k), dtype=np.float32)
    b = g.standard_normal((k, n), dtype=np.float32)
    bias = g.standard_normal(n, dtype=np.float32)
    results = []
    for threads in (1, 2):
        engine.set_num_threads(threads)
        results.append(engine.gemm(a, b, bias=bias, activation="gelu_tanh"))
        results.append(engine.gemm(b, a, trans_a=True, trans_b=True))
    assert np.array_equal(results[0].view(np.int32), results[2].view(np.int32)), "1 vs 2 threads differ"
    assert np.array_equal(results[1].view(np.int32), results[3].view(np.int32)), "1 vs 2 threads differ (T)"
    _check(results[1], b, a, trans_a=True, trans_b=True)


def test_batched_matmul_threads_bitwise():
    g = rng("batch")
    a = g.standard_normal((16, 40, 30), dtype=np.float32)
    b = g.standard_normal((30, 50), dtype=np.float32)
    engine.set_num_threads(1)
    r1 = engine.matmul(a, b)
    engine.set_num_threads(2)
    r2 = engine.matmul(a, b)
    assert np.array_equal(r1, r2)


_CHILD_CODE = """
import numpy as np, engine
a = np.arange(256 * 200, dtype=np.float32).reshape(256, 200) % 7 - 3
b = np.arange(200 * 192, dtype=np.float32).reshape(200, 192) % 5 - 2
c = engine.matmul(a, b)
ok = np.array_equal(c, (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32))
"""  # small integers: every partial sum is exact, so the result must be exactly right


def _wait_child(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"forked child {pid} hung (deadlock in the pool after fork?)")


def test_fork_after_parallel_gemm():
    """The parent's workers do not exist in a forked child: the child must rebuild the pool, not wait on them."""
    engine.set_num_threads(2)
    ns: dict = {}
    exec(_CHILD_CODE, ns)
    assert ns["ok"] and _k.pool_live_workers() == 1
    pid = os.fork()
    if pid == 0:  # child: no pytest machinery, just the answer in the exit code
        code = 1
        try:
            if EMULATED:
                engine.set_num_threads(CHILD_THREADS)
            ns2: dict = {}
            exec(_CHILD_CODE, ns2)
            code = 0 if ns2["ok"] and _k.pool_live_workers() == CHILD_THREADS - 1 else 3
        finally:
            os._exit(code)
    assert _wait_child(pid, 120 if EMULATED else 20) == 0
    exec(_CHILD_CODE, ns)  # the parent's pool still works
    assert ns["ok"]


def _mp_child(conn):
    if EMULATED:
        engine.set_num_threads(CHILD_THREADS)
    ns: dict = {}
    exec(_CHILD_CODE, ns)
    conn.send((bool(ns["ok"]), _k.pool_live_workers()))  # a Pipe: unlike Queue.put, no feeder thread (see above)


def test_multiprocessing_fork_context():
    engine.set_num_threads(2)
    ns: dict = {}
    exec(_CHILD_CODE, ns)
    ctx = mp.get_context("fork")
    pipes = [ctx.Pipe(duplex=False) for _ in range(2)]
    procs = [ctx.Process(target=_mp_child, args=(w,)) for _, w in pipes]
    for p in procs:
        p.start()
    results = []
    for r, _ in pipes:
        assert r.poll(120 if EMULATED else 30), "a forked child did not report"
        results.append(r.recv())
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert results == [(True, CHILD_THREADS - 1)] * 2


def test_gil_released_during_gemm():
    """A Python thread keeps counting while the main thread is inside a long GEMM call."""
    engine.set_num_threads(1)
    # Size the GEMM so one call takes at least ~20 ms on this machine (native or emulated).
    n = 128
    while True:
        a, b = _operands(n, "gil")
        t0 = time.perf_counter()
        engine.matmul(a, b)
        if time.perf_counter() - t0 > 0.02 or n >= 2048:
            break
        n *= 2
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        t.start()
        time.sleep(0.01)
        before = counter[0]
        t0 = time.perf_counter()
        engine.matmul(a, b)
        elapsed = time.perf_counter() - t0
        during = counter[0] - before
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    assert elapsed > 0.005, "GEMM too short to tell"
    assert during > 1000, f"counter advanced by {during} during a {elapsed * 1e3:.1f} ms GEMM: GIL held?"


def test_concurrent_python_threads():
    """Several Python threads calling matmul at once (they queue for the pool) all get correct results."""
    engine.set_num_threads(2)
    shapes = [(64, 70, 80), (200, 150, 100), (1, 500, 300), (300, 1, 200), (8, 7, 6), (130, 130, 130)]
    g = rng("concurrent")
    cases = [(g.standard_normal((m, k), dtype=np.float32), g.standard_normal((k, n), dtype=np.float32))
             for m, n, k in shapes]
    want = [engine.matmul(a, b) for a, b in cases]
    errors: list = []
    rounds = 3 if quick() else 10

    def worker(i):
        try:
            for r in range(rounds):
                a, b = cases[(i + r) % len(cases)]
                got = engine.matmul(a, b)
                if not np.array_equal(got, want[(i + r) % len(cases)]):
                    errors.append((i, r))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
        assert not t.is_alive(), "deadlock"
    assert not errors, errors


def test_no_thread_started_at_import_fresh_process():
    r = run_py("import engine\nfrom engine._C import _kernels as k\nimport numpy as np\n"
               "engine.matmul(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))\n"
               "print(k.pool_live_workers())\n"
               "engine.matmul(np.ones((300, 300), np.float32), np.ones((300, 300), np.float32))\n"
               "print(k.pool_live_workers())", ENGINE_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", "1"]  # none after import and a small (serial) GEMM; 1 after a big one

