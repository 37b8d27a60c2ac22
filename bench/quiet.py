"""Waiting out another runtime's spinning threads before a timed sample (compare_models.py, compare_conv.py and
compare_gemm.py alternate engine with onnxruntime and numpy in one process).

onnxruntime's intra-op pool keeps spinning after a run returns: on this 2-CPU machine a MobileNetV2 run at 2
threads left about 50 ms of busy CPU behind it, whatever the gap to the next call. An engine sample taken in that
window shares a core with the spinner (MobileNetV2, engine at 2 threads: 10 ms alone, up to 25 ms right after an
onnxruntime run), so a 2-thread comparison measured the interference instead of the runtime. Each runtime is
meant to be timed as its users run it: alone, one call after another.

After the wait, both runtimes start from idle cores, and one untimed call is not enough to leave that state on this
virtual machine: a 1.5 ms conv layer at 2 threads ran up to 2x slower in the first calls after 50 ms of idle than
in a loop, while the runtime timed second had idled only 5 ms. So warm_up() runs the function for WARM_S before
every sample, the same for both.
"""
from __future__ import annotations

import time

SLICE_S = 0.005  # one look: sleep this long and see how much CPU the process used meanwhile
BUSY_FRACTION = 0.1  # quiet once the process used less than this share of one CPU during a slice
MAX_WAIT_S = 0.5  # give up after this long (a pool that never sleeps would otherwise stall the benchmark)
WARM_S = 0.02  # untimed calls before each sample, at least one


def wait_until_quiet(max_wait_s: float = MAX_WAIT_S) -> float:
    """Sleeps in SLICE_S steps until this process's threads (all of them: time.process_time counts every thread)
    use less than BUSY_FRACTION of a CPU, or max_wait_s has passed. Returns the seconds waited."""
    t_start = time.perf_counter()
    while True:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(SLICE_S)
        cpu, now = time.process_time() - cpu0, time.perf_counter()
        if cpu < BUSY_FRACTION * (now - wall0) or now - t_start >= max_wait_s:
            return now - t_start


def warm_up(fn, *args) -> None:
    """Waits until the process is quiet, then calls fn(*args) untimed for at least WARM_S seconds (at least once)."""
    wait_until_quiet()
    t_end = time.perf_counter() + WARM_S
    fn(*args)
    while time.perf_counter() < t_end:
        fn(*args)
