"""Per-layer convolution latency: engine.Session against onnxruntime on issue 4's layers, 1 and 2 threads
(pytest-benchmark).

Run from the repository root (not part of the default `pytest` run, whose testpaths is `tests`):

    python -m pytest bench/bench_conv.py                       # all six layers, about a minute
    ENGINE_BENCH_QUICK=1 python -m pytest bench/bench_conv.py  # 3 rounds each, seconds
    python -m pytest bench/bench_conv.py -k "dw3x3 and t1"

The layers and their one-Conv models are in bench/conv_common.py (ResNet 3x3 at 56/28/14, the 7x7 stride-2 stem,
a 3x3 depthwise, a 1x1 pointwise; batch 1, with bias). Each benchmark group is one layer at one thread count
("conv 3x3_56 t1"), engine and onnxruntime side by side; ids are `test_conv[<layer>-t<threads>-<impl>]`.
`extra_info` carries layer, impl, threads, flops, isa and, for engine, the max relative error against onnxruntime
(checked before timing). bench/compare_conv.py prints the same comparison as one table with ratios and GFLOP/s.
"""
from __future__ import annotations

import functools

import conv_common as cc
import models_common as mc
import pytest

import engine

QUICK = mc.quick_from_env()
THREADS = (1, 2)
IMPLS = ("engine", "onnxruntime")


@functools.lru_cache(maxsize=None)
def _model(name: str):
    return cc.build(cc.BY_NAME[name])


@functools.lru_cache(maxsize=None)
def _reference(name: str):
    """onnxruntime's output (1 thread), the check for engine; None without onnxruntime."""
    ref = mc.ort_reference(*_model(name))
    return None if ref is None else ref[0][0]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("name", list(cc.BY_NAME))
def test_conv(benchmark, restore_engine_threads, name, threads, impl):
    layer = cc.BY_NAME[name]
    model_bytes, feeds = _model(name)
    ref = _reference(name)
    if impl == "onnxruntime" and ref is None:
        pytest.skip("onnxruntime is not installed")
    fn, out = mc.bench_fn(impl, model_bytes, feeds, threads)
    if impl == "engine" and ref is not None:
        benchmark.extra_info["max_rel_err_vs_ort"] = cc.check(layer, out["Y"], ref)
    benchmark.group = f"conv {name} t{threads}"
    benchmark.extra_info.update(layer=name, what=layer.what, impl=impl, threads=threads, flops=layer.flops(),
                                isa=engine.cpu_info()["active_isa"], quick=QUICK)
    mc.run_benchmark(benchmark, fn, QUICK)
