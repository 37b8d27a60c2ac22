"""Shared fixtures: the `isa` fixture runs a test once per ISA level this build and CPU support, with the kernel
table forced to that level for the test body. ENGINE_TEST_SEED sets the data seed, ENGINE_TEST_QUICK=1 shrinks
the sweeps (slow CPU emulation)."""
from __future__ import annotations

import os

import pytest

import engine
from engine._C import _kernels as _k
from engine.testing import force_isa, quick, suite_seed

# Levels the tests sweep: every level this CPU runs, up to the ENGINE_ISA cap when one is set (so a CI job
# with ENGINE_ISA=scalar really tests only the scalar path; ENGINE_ISA=avx2 tests scalar and avx2).
_ALL = _k.supported_isas()
SUPPORTED_ISAS = _ALL[:_ALL.index(_k.active_isa()) + 1] if os.environ.get("ENGINE_ISA") else _ALL


def pytest_report_header(config):
    info = engine.cpu_info()
    return [f"engine: active ISA {info['active_isa']}, supported {info['supported_isas']}, compiled "
            f"{info['compiled_isas']}, threads {info['num_threads']}; ENGINE_TEST_SEED={suite_seed()} "
            f"ENGINE_TEST_QUICK={int(quick())} ENGINE_ISA={os.environ.get('ENGINE_ISA', '')!r}"]


@pytest.fixture(params=SUPPORTED_ISAS)
def isa(request):
    """The ISA level under test; the kernel table is capped at it for the test body and restored after."""
    with force_isa(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _restore_runtime():
    """No test leaks a changed ISA or pool size into the next one."""
    isa_before = _k.active_isa()
    threads_before = engine.get_num_threads()
    yield
    if _k.active_isa() != isa_before:
        _k.select_isa(isa_before)
    if engine.get_num_threads() != threads_before:
        engine.set_num_threads(threads_before)


def pytest_terminal_summary(terminalreporter):
    """Prints the onnx node conformance count when those cases ran."""
    import sys

    mod = next((m for name, m in list(sys.modules.items()) if name.endswith("test_conformance")
                and hasattr(m, "summary")), None)
    line = mod.summary() if mod is not None else None
    if line:
        terminalreporter.write_sep("=", line)
