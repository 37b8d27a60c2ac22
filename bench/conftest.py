"""Prints what the GEMM benchmarks run on in the pytest header; the fixture restoring engine's pool size after a
benchmark case (bench_models.py, bench_conv.py)."""
from __future__ import annotations

import pytest


@pytest.fixture
def restore_engine_threads():
    """engine's pool size as it was before the case (models_common.engine_session sets it: process-wide)."""
    import engine

    before = engine.get_num_threads()
    yield
    engine.set_num_threads(before)


def pytest_report_header(config):
    import engine
    from gemm_common import cpu_mhz, numpy_blas_name, numpy_blas_threads, quick_from_env, threadpoolctl_limits

    info = engine.cpu_info()
    numpy_note = ("installed: numpy threads follow each group" if threadpoolctl_limits() else
                  "not installed: numpy keeps its start-up thread count")
    lines = [f"engine {engine.__version__}: active ISA {info['active_isa']}, {info['usable_cpus']} usable CPU(s), "
             f"cpu MHz {cpu_mhz()}",
             f"numpy: {numpy_blas_name()}, {numpy_blas_threads()} BLAS thread(s) at start; threadpoolctl {numpy_note}"]
    try:
        import onnxruntime

        lines.append(f"onnxruntime {onnxruntime.__version__}")
    except ImportError:
        lines.append("onnxruntime not installed: its columns are skipped")
    if quick_from_env():
        lines.append("ENGINE_BENCH_QUICK=1: smoke subset of shapes, 3 rounds each")
    return lines
