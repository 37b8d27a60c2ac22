"""onnx's node conformance cases (onnx.backend.test, kind="node"), one pytest case each, compared the way
onnx's runner compares. Cases engine does not pass are listed in `exclusions.py` with the reason; they run
as strict xfails, so a case that starts passing must be removed from the list. The count is printed at the end
of the session (see tests/conftest.py)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine.testing import quick
from tests.onnx_backend.conformance import load_cases, run_case
from tests.onnx_backend.exclusions import reason_for

ALL_CASES = load_cases()
# ENGINE_TEST_QUICK=1 (emulated CPUs, 15-35x slower) runs every 8th case: the ops are numpy code or the same C
# kernels the kernel tests sweep at every ISA, so the subset still proves dispatch without taking an hour.
CASES = ALL_CASES[::8] if quick() else ALL_CASES
RESULTS: dict[str, str] = {}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_node_case(case):
    why = reason_for(case.name)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status, detail = run_case(case)
    RESULTS[case.name] = status
    if why is not None:
        if status == "pass":
            pytest.fail(f"listed as failing ({why}) but passes now: remove it from tests/onnx_backend/exclusions.py")
        pytest.xfail(why)
    assert status == "pass", f"{status}: {detail}"


def summary() -> str | None:
    if not RESULTS:
        return None
    n = len(RESULTS)
    ok = sum(1 for s in RESULTS.values() if s == "pass")
    full = len(ALL_CASES)
    scope = "" if n == full else f" (of the {n} run here)"
    return (f"onnx {__import__('onnx').__version__} node conformance: {ok}/{n} cases pass "
            f"({100.0 * ok / n:.1f}%){scope}; the release has {full} node cases")
