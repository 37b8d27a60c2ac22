"""Shared by the model and conv benchmarks (bench_models.py, compare_models.py, bench_conv.py, compare_conv.py,
memory_resnet50.py): the benchmark models, sessions for engine and onnxruntime, the output check done before any
timing, the pytest-benchmark case set-up, alternating timed rounds, the run metadata and the table layout.

The models come from tests/model_zoo.py (onnx.helper builders with fixed seeds, nothing downloaded):
BENCH_MODELS holds the full sizes (ResNet-18 and ResNet-50 224x224, MobileNetV2 224x224, BERT-small 4 layers x 512
hidden x 8 heads at sequence 128 with a 30522-token vocabulary, and the ~470-node voice-activity model),
BENCH_MODELS_QUICK small stand-ins of the same families for smoke runs (ENGINE_BENCH_QUICK=1 or --quick).

Run from the repository root. Importing this module puts tests/ on sys.path (for model_zoo and tolerances) and,
when engine is not installed, the repository root (the in-place build).
"""
from __future__ import annotations

import functools
import gc
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(1, str(ROOT / "tests"))
if importlib.util.find_spec("engine") is None:  # source checkout: use the in-place build
    sys.path.insert(1, str(ROOT))

import model_zoo as mz  # noqa: E402
import quiet  # noqa: E402
from quiet import warm_up  # noqa: E402
import numpy as np  # noqa: E402
import tolerances as tol  # noqa: E402

WHAT = {
    "resnet18": "ResNet-18, 1x3x224x224, 1000 classes (BatchNormalization unfused in the file)",
    "resnet50": "ResNet-50 (bottleneck blocks), 1x3x224x224, 1000 classes (BatchNormalization unfused in the file)",
    "mobilenetv2": "MobileNetV2 1.0, 1x3x224x224, 1000 classes",
    "bert_small": "BERT-small encoder: 4 layers, hidden 512, 8 heads, FFN 2048, batch 1, seq 128",
    "vad": "voice-activity model: ~470 tiny nodes (STFT Conv1d, Slice/Concat, GRU, unrolled GRU cell), 512 samples",
}


def quick_from_env() -> bool:
    return os.environ.get("ENGINE_BENCH_QUICK", "") not in ("", "0")


def specs(quick: bool) -> dict:
    """name -> (family, build kwargs, input dims)."""
    return mz.BENCH_MODELS_QUICK if quick else mz.BENCH_MODELS


@functools.lru_cache(maxsize=None)
def load(name: str, quick: bool):
    """(model bytes, feeds) of a benchmark model; built once per process (full sizes take a second or two)."""
    family, kwargs, dims = specs(quick)[name]
    model = mz.build(family, **kwargs)
    feeds = mz.make_inputs(family, model, 0, **dims)
    return model.SerializeToString(), feeds


def ort_session(model_bytes: bytes, threads: int):
    """onnxruntime as its users run it: all graph optimizations, `threads` intra-op threads, one inter-op thread,
    sequential execution. Raises ImportError when onnxruntime is not installed."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def engine_session(model_bytes: bytes, threads: int):
    """An engine.Session with the pool at `threads` (engine.set_num_threads is process-wide: callers that time
    several thread counts set it again before each)."""
    import engine

    engine.set_num_threads(threads)
    return engine.Session(model_bytes)


def ort_fn(sess, feeds):
    return lambda: sess.run(None, feeds)


def engine_fn(sess, feeds):
    return lambda: sess.run(feeds)


def ort_version() -> str | None:
    """onnxruntime's version, None when it is not installed."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def ort_reference(model_bytes: bytes, feeds: dict):
    """onnxruntime's outputs (1 thread) and output names: the check for every implementation of a model; None when
    onnxruntime is not installed."""
    try:
        sess = ort_session(model_bytes, 1)
    except ImportError:
        return None
    return sess.run(None, feeds), [o.name for o in sess.get_outputs()]


def bench_fn(impl: str, model_bytes: bytes, feeds: dict, threads: int):
    """(fn, first outputs) for a pytest-benchmark case: `impl` "engine" (a Session with the pool at `threads`) or
    "onnxruntime" (as ort_session sets it up), run once before timing (warm-up, and the outputs to check).
    engine.UnsupportedModelError and ImportError (no onnxruntime) reach the caller."""
    if impl == "onnxruntime":
        fn = ort_fn(ort_session(model_bytes, threads), feeds)
    else:
        fn = engine_fn(engine_session(model_bytes, threads), feeds)
    return fn, fn()


def run_benchmark(benchmark, fn, quick: bool) -> None:
    """Times `fn` with pytest-benchmark: 3 rounds after one warm-up in quick runs, its own calibration otherwise."""
    if quick:
        benchmark.pedantic(fn, rounds=3, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)


def check_outputs(name: str, engine_out: dict, ort_out: list, ort_names: list) -> float:
    """engine's outputs against onnxruntime's (same run, before timing): max relative error per output within
    tolerances.MODEL_FP32_REL and identical argmax for classifier outputs. Returns the largest error."""
    worst = 0.0
    family = specs(False).get(name, specs(True).get(name))[0]
    for oname, ref in zip(ort_names, ort_out):
        got = np.asarray(engine_out[oname], np.float64)
        ref = np.asarray(ref, np.float64)
        if got.shape != ref.shape:
            raise AssertionError(f"{name} {oname}: engine shape {got.shape}, onnxruntime {ref.shape}")
        err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), tol.MODEL_TINY))
        if not err <= tol.MODEL_FP32_REL:
            raise AssertionError(f"{name} {oname}: max relative error {err:.3g} > {tol.MODEL_FP32_REL}")
        if oname in mz.CLASSIFIER_OUTPUTS.get(family, ()) and not np.array_equal(got.argmax(-1), ref.argmax(-1)):
            raise AssertionError(f"{name} {oname}: argmax differs from onnxruntime's")
        worst = max(worst, err)
    return worst


def describe_unsupported(err) -> str:
    """'N nodes: Conv x12, Relu x8 (op not implemented by engine)...' from an engine.UnsupportedModelError."""
    import collections

    problems = getattr(err, "problems", None)
    if not problems:
        return " ".join(str(err).split())[:300]
    by_reason: dict = {}
    for p in problems:
        by_reason.setdefault(p.reason, collections.Counter())[p.op_type] += 1
    return f"{len(problems)} node(s): " + "; ".join(
        f"{reason}: " + ", ".join(f"{op} x{n}" if n > 1 else op for op, n in ops.most_common())
        for reason, ops in by_reason.items())


MIN_ROUNDS = 3


def time_alternating(fns: dict, budget_s: float, sample_s: float, max_rounds: int) -> dict:
    """Alternating timed rounds of every function in `fns` (the order flips every round, so other processes' load
    and clock drift hit all alike), at least MIN_ROUNDS, about `budget_s` in all; each sample is the mean of
    back-to-back calls lasting about `sample_s`, after a wait for the other runtime's threads to go quiet and
    untimed calls of the same function for quiet.WARM_S (quiet.warm_up). Returns name -> list of per-call seconds,
    one per round.

    The wait keeps one runtime's threads out of the other's sample: onnxruntime's pool spins for tens of
    milliseconds after each run, and a 2-thread engine run started then shares a core with that spinner
    (MobileNetV2 on 2 threads: 10 ms alone, up to 25 ms right after an onnxruntime run on this machine). The warm-up
    then starts both from the same state. The timed calls measure each runtime as its users run it, one after the
    other."""
    inner, per_round = {}, 0.0
    for name, fn in fns.items():
        t0 = time.perf_counter()
        fn()
        est = max(time.perf_counter() - t0, 1e-7)
        inner[name] = max(1, int(sample_s / est))
        per_round += inner[name] * est + quiet.SLICE_S + max(est, quiet.WARM_S)
    rounds = max(MIN_ROUNDS, min(max_rounds, int(budget_s / max(per_round, 1e-9))))
    samples = {name: [] for name in fns}
    names = list(fns)
    gc_was = gc.isenabled()
    gc.disable()
    t_start = time.perf_counter()
    try:
        for r in range(rounds):
            if r >= MIN_ROUNDS and time.perf_counter() - t_start > 2 * budget_s:
                break  # much slower than estimated (a busy machine): stop at twice the budget
            for name in (names if r % 2 == 0 else names[::-1]):
                fn = fns[name]
                warm_up(fn)  # untimed: the other runtime's threads go quiet, this one's threads and caches warm
                t0 = time.perf_counter()
                for _ in range(inner[name]):
                    fn()
                samples[name].append((time.perf_counter() - t0) / inner[name])
    finally:
        if gc_was:
            gc.enable()
    return samples


def time_runtimes(fns: dict, threads: int, args) -> dict:
    """Times `fns` (name -> call) with time_alternating under args.budget, args.sample_ms and args.max_rounds, with
    engine's pool at `threads` (set again: another session's set-up may have changed it). Returns name ->
    {"samples": per-call seconds of each round, "median", "best"}."""
    import engine

    engine.set_num_threads(threads)
    samples = time_alternating(fns, args.budget, args.sample_ms / 1e3, args.max_rounds)
    return {k: {"samples": s, "median": statistics.median(s), "best": min(s)} for k, s in samples.items()}


def run_meta(quick: bool, **extra) -> dict:
    """The header of a comparison run: engine's version and ISA, usable CPUs, onnxruntime's version, quick, `extra`
    and the 1-minute load average at the start (end_meta adds the duration and the load average at the end)."""
    import engine

    info = engine.cpu_info()
    return {"engine": engine.__version__, "isa": info["active_isa"], "usable_cpus": info["usable_cpus"],
            "onnxruntime": ort_version(), "quick": quick, **extra, "loadavg_start": os.getloadavg()[0]}


def end_meta(meta: dict, t_start: float) -> dict:
    meta["seconds"] = time.perf_counter() - t_start
    meta["loadavg_end"] = os.getloadavg()[0]
    return meta


def table(title: str, headers: list, rows: list, markdown: bool, left_first: bool = False) -> list:
    """The lines of a report table under `title`: markdown (columns right-aligned, the first left-aligned if
    `left_first`) or plain text (every column right-aligned to its widest cell, a dashed rule under the header)."""
    if markdown:
        rule = ("|---|" + "|".join("---:" for _ in headers[1:]) + "|" if left_first else
                "|" + "|".join("---:" for _ in headers) + "|")
        return [title, "", "| " + " | ".join(headers) + " |", rule] + ["| " + " | ".join(r) + " |" for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    return [title, "", fmt.format(*headers), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows]
