"""End-to-end model latency: engine.Session.run against onnxruntime, 1 and 2 threads (pytest-benchmark).

Run from the repository root (not part of the default `pytest` run, whose testpaths is `tests`):

    python -m pytest bench/bench_models.py                       # full-size models, about a minute
    ENGINE_BENCH_QUICK=1 python -m pytest bench/bench_models.py  # small stand-ins, 3 rounds each, seconds
    python -m pytest bench/bench_models.py -k "bert and t1"

Models (tests/model_zoo.py BENCH_MODELS, built in memory with fixed seeds): resnet18, resnet50, mobilenetv2,
bert_small and vad (a ~470-node voice-activity model where per-node overhead dominates). Each benchmark group is one
model at one thread count ("model resnet18 t1"), so engine and onnxruntime sit side by side in one table. Test ids
are `test_model[<model>-t<threads>-<impl>]`.

engine: engine.Session(model).run(feeds), pool size set with engine.set_num_threads(threads).
onnxruntime: InferenceSession with all graph optimizations, intra_op_num_threads = threads,
inter_op_num_threads = 1, sequential execution; sess.run(None, feeds).
Before timing, engine's outputs are checked against onnxruntime's (max relative error 1e-4, same argmax).
bench/compare_models.py prints the engine / onnxruntime ratios of the same measurements in one table.
"""
from __future__ import annotations

import functools

import pytest

import models_common as mc

import engine

QUICK = mc.quick_from_env()
MODELS = list(mc.specs(QUICK))
THREADS = (1, 2)
IMPLS = ("engine", "onnxruntime")


@functools.lru_cache(maxsize=None)
def _reference(name: str):
    """onnxruntime's outputs (1 thread) and output names, the check for every implementation of the model."""
    return mc.ort_reference(*mc.load(name, QUICK))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("name", MODELS)
def test_model(benchmark, restore_engine_threads, name, threads, impl):
    model_bytes, feeds = mc.load(name, QUICK)
    ref = _reference(name)
    if impl == "onnxruntime" and ref is None:
        pytest.skip("onnxruntime is not installed")
    try:
        fn, out = mc.bench_fn(impl, model_bytes, feeds, threads)
    except engine.UnsupportedModelError as e:
        pytest.skip(f"engine cannot run {name} yet: {mc.describe_unsupported(e)}")
    if impl == "engine" and ref is not None:
        benchmark.extra_info["max_rel_err_vs_ort"] = mc.check_outputs(name, out, *ref)
    benchmark.group = f"model {name} t{threads}"
    benchmark.extra_info.update(model=name, what=mc.WHAT.get(name, name), impl=impl, threads=threads,
                                isa=engine.cpu_info()["active_isa"], quick=QUICK)
    mc.run_benchmark(benchmark, fn, QUICK)
