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
from tests.onnx_backend.exclusions import RANDOM_OUTPUT, reason_for

ALL_CASES = load_cases()
# ENGINE_TEST_QUICK=1 (emulated CPUs, 15-35x slower) runs every 8th case: the ops are numpy code or the same C
# kernels the kernel tests sweep at every ISA, so the subset still proves dispatch without taking an hour.
CASES = [c for c in (ALL_CASES[::8] if quick() else ALL_CASES) if c.name not in RANDOM_OUTPUT]
RANDOM_CASES = [c for c in ALL_CASES if c.name in RANDOM_OUTPUT]
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


@pytest.mark.parametrize("case", RANDOM_CASES, ids=[c.name for c in RANDOM_CASES])
def test_random_output_case(case):
    """The expected values are one random draw, so check what must hold for any draw: same count, shape and
    dtype as expected, every value 0 or 1, and (when the node has a seed) the same draw on every run."""
    import engine
    from tests.onnx_backend.conformance import _normalize

    sess = engine.Session(case.model)
    seeded = any(a.name == "seed" for n in case.model.graph.node for a in n.attribute)
    for inputs, ref_outputs in case.data_sets:
        feed = [_normalize(x) for x in inputs]
        feed = dict(zip([i.name for i in sess.get_inputs()], feed))
        got = list(sess.run(feed).values())
        again = list(sess.run(feed).values())
        assert len(got) == len(ref_outputs)
        for g, a, r in zip(got, again, ref_outputs):
            r = np.asarray(r)
            assert g.shape == r.shape and g.dtype == r.dtype, (g.shape, g.dtype, r.shape, r.dtype)
            assert np.isin(g, (0, 1)).all(), "a Bernoulli draw must be 0 or 1"
            if seeded:
                np.testing.assert_array_equal(g, a)


def summary() -> str | None:
    if not RESULTS:
        return None
    n = len(RESULTS)
    ok = sum(1 for s in RESULTS.values() if s == "pass")
    full = len(ALL_CASES)
    denom = full if n + len(RANDOM_CASES) == full else n
    scope = "" if denom == full else f" (a subset of the {full} was run)"
    return (f"onnx {__import__('onnx').__version__} node conformance: {ok}/{denom} cases pass "
            f"({100.0 * ok / denom:.1f}%){scope}; "
            f"the {len(RANDOM_CASES)} random-output cases are checked by properties and not counted as passes")
