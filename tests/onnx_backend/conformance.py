"""onnx's node conformance cases run on engine, case by case, compared the way onnx's own runner compares
(`onnx.backend.test.runner.Runner.assert_similar_outputs`: same count, shape and dtype, allclose with the
case's rtol/atol, strings equal).

As a script it prints a summary and the failures:
    python -m tests.onnx_backend.conformance [--filter SUBSTRING] [--show N] [--failures-only]
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
import warnings
from collections import Counter

import numpy as np

CASE_TIMEOUT_S = 20


def load_cases():
    import onnx.backend.test.loader as loader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return loader.load_model_tests(kind="node")


def _normalize(x):
    from onnx.backend.test.runner import _normalize_tensor  # same conversion onnx's runner applies

    return _normalize_tensor(x)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout(f"case took longer than {CASE_TIMEOUT_S} s")


def run_case(case) -> tuple[str, str]:
    """('pass' | 'unsupported' | 'fail' | 'error', detail)."""
    import engine
    from engine.backend import EngineBackend
    from onnx.backend.test.runner import Runner

    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(CASE_TIMEOUT_S)
    try:
        try:
            rep = EngineBackend.prepare(case.model)
        except engine.UnsupportedModelError as e:
            return "unsupported", "; ".join(str(p) for p in e.problems)
        except Exception as e:
            return "error", f"prepare: {type(e).__name__}: {e}"
        for inputs, ref_outputs in case.data_sets:
            try:
                outs = rep.run([_normalize(x) for x in inputs])
            except Exception as e:
                return "error", f"run: {type(e).__name__}: {e}"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    Runner.assert_similar_outputs([_normalize(x) for x in ref_outputs], list(outs), case.rtol,
                                                  case.atol, model_dir=case.name)
            except AssertionError as e:
                return "fail", " ".join(str(e).split())[:400]
            except Exception as e:
                return "fail", f"{type(e).__name__}: {e}"[:400]
        return "pass", ""
    finally:
        if use_alarm:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--filter", default="", help="only cases whose name contains this")
    ap.add_argument("--show", type=int, default=50, help="failures to print (0: none, -1: all)")
    ap.add_argument("--failures-only", action="store_true", help="print only failing case names (for scripts)")
    args = ap.parse_args(argv)
    cases = [c for c in load_cases() if args.filter in c.name]
    counts: Counter = Counter()
    bad = []
    t0 = time.perf_counter()
    np.seterr(all="ignore")
    for c in cases:
        status, detail = run_case(c)
        counts[status] += 1
        if status != "pass":
            bad.append((c.name, status, detail))
    dt = time.perf_counter() - t0
    if args.failures_only:
        for name, status, detail in bad:
            print(f"{name}\t{status}\t{detail}")
        return 0
    shown = bad if args.show < 0 else bad[:args.show]
    for name, status, detail in shown:
        print(f"{status:11s} {name}: {detail[:300]}")
    n = len(cases)
    print(f"\nonnx node conformance: {counts['pass']}/{n} pass ({100.0 * counts['pass'] / max(n, 1):.1f}%), "
          f"{counts['unsupported']} unsupported, {counts['fail']} wrong, {counts['error']} errors, {dt:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
