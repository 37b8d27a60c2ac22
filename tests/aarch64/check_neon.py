"""Fast NEON check for emulated aarch64 CI (tests/aarch64/run.sh runs it under qemu for several CPU models).

Not a pytest module: a self-contained script, small enough to run in well under a minute per CPU model under
qemu-aarch64, that exits nonzero on any failure and prints `N passed, N failed` as its last line.

The parent process (no numpy needed) starts one child per ENGINE_ISA setting, because the variable is read at
import:
  * ENGINE_ISA=neon and ENGINE_ISA=scalar: the dispatch table reports that ISA for every kernel slot, the
    detected CPU features agree with the emulated model (asimddp present or absent), and engine.gemm /
    engine.matmul match a float64 numpy reference on odd shapes (tile edges of both the 8x12 NEON and 4x4
    scalar micro-kernels, GEMV paths, several K blocks), transposes, alpha/beta, bias, every activation,
    strided output with untouched padding, NaN propagation, and a dense activation sweep;
  * ENGINE_ISA=avx2 and ENGINE_ISA=bogus: `import engine` raises ImportError naming the valid values.

Usage: python tests/aarch64/check_neon.py [--isa neon|scalar] (the --isa form is the child; run from the repo
root so that `engine` is the in-place build). The expected dotprod support of the emulated CPU comes from
AARCH64_PYTHON_CPU (set by shared/tools/aarch64-python); models not listed below are not checked.
ENGINE_TEST_SEED changes the random inputs; CHECK_NEON_VERBOSE=1 prints the measured activation errors.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # the in-place build of this checkout, not an installed engine

# qemu-aarch64 models -> whether their HWCAP has asimddp (shared/tools/README.md, qemu 7.2)
DOTPROD = {"cortex-a53": False, "cortex-a57": False, "cortex-a72": False, "neoverse-n1": True,
           "cortex-a76": True, "max": True, "a64fx": False}
ISAS = ("neon", "scalar")
EPS32 = 2.0 ** -24  # unit roundoff of float32


class Checker:
    def __init__(self, tag: str):
        self.tag = tag
        self.passed = 0
        self.failed = 0

    def check(self, ok: bool, name: str, detail: str = "") -> bool:
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print(f"FAIL [{self.tag}] {name}{': ' + detail if detail else ''}", flush=True)
        return ok


# ---------------------------------------------------------------------------------------------------------
# child: numeric checks for one ISA


def act_ref(x, name, params):
    """float64 reference of each activation and its Lipschitz constant (error propagation from the GEMM)."""
    import numpy as np
    from math import erf, sqrt

    if name is None:
        return x, 1.0
    if name == "relu":
        return np.maximum(x, 0.0), 1.0
    if name in ("clip", "relu6"):
        lo, hi = params
        return np.minimum(np.maximum(x, lo), hi), 1.0
    if name == "leaky_relu":
        (a,) = params
        return np.where(x >= 0, x, a * x), max(1.0, abs(a))
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    sig = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if name == "sigmoid":
        return sig, 0.25
    if name in ("silu", "swish"):
        return x * sig, 1.1
    if name == "gelu":
        verf = np.vectorize(erf, otypes=[np.float64])
        return 0.5 * x * (1.0 + verf(x / sqrt(2.0))), 1.13
    if name == "gelu_tanh":
        return 0.5 * x * (1.0 + np.tanh(sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3))), 1.13
    if name == "hardswish":
        return x * np.clip(x / 6.0 + 0.5, 0.0, 1.0), 1.5
    raise ValueError(name)


# activation spellings passed to engine.gemm -> (name, params for the reference)
ACTS = [
    (None, None, ()),
    ("relu", "relu", ()),
    ("relu6", "relu6", (0.0, 6.0)),
    (("clip", -0.5, 0.75), "clip", (-0.5, 0.75)),
    ("leaky_relu", "leaky_relu", (0.01,)),
    (("leaky_relu", 0.2), "leaky_relu", (0.2,)),
    ("sigmoid", "sigmoid", ()),
    ("silu", "silu", ()),
    ("swish", "swish", ()),
    ("gelu", "gelu", ()),
    ("gelu_tanh", "gelu_tanh", ()),
    ("hardswish", "hardswish", ()),
]
# transcendental approximations (SIMD) and libm (scalar): error allowed on top of the propagated GEMM error
# (STYLE.md: atol = rtol = 1e-6 against float64). hardswish differs from C only by FMA rounding.
ACT_RTOL = {"sigmoid": 1e-6, "silu": 1e-6, "swish": 1e-6, "gelu": 1e-6, "gelu_tanh": 1e-6, "hardswish": 1e-6}
ACT_ATOL = 1e-6


def gemm_case(ck, rng, m, n, k, ta=False, tb=False, alpha=1.0, beta=0.0, bias=False, act=ACTS[0], with_c=None,
              ldc_pad=0, nan_c=False):
    import numpy as np

    import engine

    spelled, name, params = act
    a = rng.standard_normal((k, m) if ta else (m, k)).astype(np.float32)
    b = (rng.standard_normal((n, k) if tb else (k, n)) / np.sqrt(max(k, 1))).astype(np.float32)
    opa = a.T.astype(np.float64) if ta else a.astype(np.float64)
    opb = b.T.astype(np.float64) if tb else b.astype(np.float64)
    bv = rng.standard_normal(n).astype(np.float32) if bias else None
    with_c = (beta != 0.0) if with_c is None else with_c
    sentinel = np.float32(-12345.0)
    c0 = c = None
    if with_c:
        buf = np.full((m, n + ldc_pad), sentinel, np.float32)
        c = buf[:, :n]
        c[...] = rng.standard_normal((m, n)).astype(np.float32)
        if nan_c and c.size:
            c.flat[:: max(1, c.size // 5)] = np.nan
        if beta == 0.0 and not nan_c:
            c[...] = np.nan  # beta == 0 must never read C
        c0 = c.copy()
    label = (f"gemm m={m} n={n} k={k} ta={int(ta)} tb={int(tb)} alpha={alpha} beta={beta} bias={int(bias)} "
             f"act={spelled} ldc_pad={ldc_pad}{' nan_c' if nan_c else ''}")
    try:
        out = engine.gemm(a, b, c, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb, bias=bv, activation=spelled)
    except Exception as e:  # noqa: BLE001 - any exception is a failure of this case
        return ck.check(False, label, f"raised {type(e).__name__}: {e}")
    pre = alpha * (opa @ opb)
    mag = abs(alpha) * (np.abs(opa) @ np.abs(opb))
    if with_c and beta != 0.0:
        pre = pre + beta * c0.astype(np.float64)
        mag = mag + abs(beta) * np.abs(c0.astype(np.float64))
    if bv is not None:
        pre = pre + bv.astype(np.float64)
        mag = mag + np.abs(bv.astype(np.float64))
    ref, lip = act_ref(pre, name, params)
    tol = lip * 2.0 * (k + 4) * EPS32 * mag + ACT_ATOL + ACT_RTOL.get(name, 0.0) * np.abs(ref)
    got = out.astype(np.float64)
    if got.shape != (m, n):
        return ck.check(False, label, f"shape {got.shape}")
    nan_ref = np.isnan(ref)
    if not ck.check(np.array_equal(np.isnan(got), nan_ref), label + " [NaN positions]",
                    f"{int(np.isnan(got).sum())} NaN in result, {int(nan_ref.sum())} expected"):
        return False
    err = np.where(nan_ref, 0.0, np.abs(got - np.where(nan_ref, 0.0, ref)))
    bad = err > np.where(nan_ref, 0.0, tol)
    ok = ck.check(not bad.any(), label,
                  f"{int(bad.sum())} of {bad.size} outside tolerance, worst err {err.max():.3g}" if bad.any() else "")
    if ldc_pad and with_c:
        ok &= ck.check(bool((buf[:, n:] == sentinel).all()), label + " [padding beyond ldc untouched]")
    return ok


def activation_sweep(ck, isa):
    """Every activation on a dense grid of inputs, through gemm with k=1 and b=1 (so C holds x exactly)."""
    import numpy as np

    import engine

    x = np.concatenate([np.linspace(-12.0, 12.0, 1201), [0.0, 1e-30, -1e-30, 60.0, -60.0, 95.0, -95.0, 3.0, -3.0,
                                                          6.0, -6.0]]).astype(np.float32)
    # C = 0 + x * 1 is x exactly. (A -0.0 cannot reach the activation this way: the epilogue adds the row bias,
    # +0.0 when there is none, as the scalar reference does.)
    xe = x
    a = x.reshape(-1, 1)
    b = np.ones((1, 1), np.float32)
    for spelled, name, params in ACTS:
        got = engine.gemm(a, b, activation=spelled).ravel()
        got64 = got.astype(np.float64)
        ref, _ = act_ref(xe.astype(np.float64), name, params)
        tol = ACT_ATOL + ACT_RTOL.get(name, 0.0) * np.abs(ref)
        err = np.abs(got64 - ref)
        bad = err > tol
        w = int(np.argmax(err - tol))
        ck.check(not bad.any(), f"activation sweep {spelled}",
                 f"{int(bad.sum())} bad, worst x={xe[w]!r} got={got[w]!r} ref={ref[w]!r}" if bad.any() else "")
        if os.environ.get("CHECK_NEON_VERBOSE"):
            ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
            big = np.abs(ref) > 1e-6
            print(f"  [{isa}] {spelled}: max abs err {err.max():.3g}, max rel err (|ref|>1e-6) "
                  f"{(err[big] / np.abs(ref[big])).max() if big.any() else 0:.3g}, max ulp {(err / ulp).max():.1f}")
        # exact activations follow the C reference's comparisons (and one float32 multiply) bit for bit
        exact = {"relu": lambda v: np.where(v < 0, np.float32(0.0), v),
                 "relu6": lambda v: np.where(v < 0, np.float32(0.0), np.where(v > 6, np.float32(6.0), v)),
                 "clip": lambda v: np.where(v < np.float32(params[0]), np.float32(params[0]),
                                            np.where(v > np.float32(params[1]), np.float32(params[1]), v)),
                 "leaky_relu": lambda v: np.where(v >= 0, v, (np.float32(params[0]) * v).astype(np.float32))}
        if name in exact:
            want = exact[name](xe).astype(np.float32)
            ck.check(np.array_equal(got.view(np.uint32), want.view(np.uint32)),
                     f"activation sweep {spelled} bit-exact",
                     f"{int((got.view(np.uint32) != want.view(np.uint32)).sum())} differ")
    # Huge finite inputs saturate (float64 reference, same tolerance); at +-inf the result is the limit or NaN
    # (scalar silu(-inf) = -inf / (1 + inf) is NaN). Before exp_neon flushed to 0 below its range,
    # silu(-3e38) was -3.5 and silu(-inf) -inf.
    big = np.float32([-3e38, -1e35, -1e30, -1e10, -1e4, -100.0, 100.0, 1e4, 1e10, 1e30, 1e35, 3e38])
    limits = {"sigmoid": (0.0, 1.0), "silu": (0.0, np.inf), "swish": (0.0, np.inf), "gelu": (0.0, np.inf),
              "gelu_tanh": (0.0, np.inf), "hardswish": (0.0, np.inf)}
    for spelled, name, params in ACTS:
        if name not in limits:
            continue
        got = engine.gemm(big.reshape(-1, 1), b, activation=spelled).ravel().astype(np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            ref, _ = act_ref(big.astype(np.float64), name, params)
        err = np.abs(got - ref)
        bad = ~(err <= ACT_ATOL + ACT_RTOL[name] * np.abs(ref))
        ck.check(not bad.any(), f"activation {spelled} at huge inputs",
                 f"x={big[bad].tolist()} got={got[bad].tolist()} ref={ref[bad].tolist()}" if bad.any() else "")
        inf = engine.gemm(np.float32([[-np.inf], [np.inf]]), b, activation=spelled).ravel()
        ok = all(np.isnan(g) or g == lim for g, lim in zip(inf, limits[name]))
        ck.check(ok, f"activation {spelled} at -inf, +inf gives the limits {limits[name]} or NaN", f"got {inf}")
    # NaN in -> NaN out for every activation (the SIMD range clamps must not swallow it)
    xn = np.array([[np.nan], [1.0], [-np.nan], [2.0], [np.nan]], np.float32)
    for spelled, name, _ in ACTS:
        got = engine.gemm(xn, b, activation=spelled).ravel()
        ck.check(np.array_equal(np.isnan(got), np.isnan(xn.ravel())), f"NaN propagation {spelled}", f"got {got}")


def matmul_cases(ck, rng):
    import numpy as np

    import engine

    def cmp(label, got, a, b):
        ref = np.matmul(a.astype(np.float64), b.astype(np.float64))
        k = a.shape[-1]
        mag = np.matmul(np.abs(a.astype(np.float64)), np.abs(b.astype(np.float64)))
        ok = got.shape == ref.shape and got.dtype == np.float32
        if not ck.check(ok, label, f"shape/dtype {got.shape} {got.dtype} vs {ref.shape}"):
            return
        err = np.abs(got - ref)
        tol = 2.0 * (k + 2) * EPS32 * mag + 1e-30
        ck.check(bool((err <= tol).all()), label, f"worst err {err.max():.3g}")

    f = np.float32
    a = rng.standard_normal((9, 13)).astype(f)
    b = rng.standard_normal((13, 25)).astype(f)
    cmp("matmul 2-D", engine.matmul(a, b), a, b)
    cmp("matmul a.T @ b", engine.matmul(a.T.copy().T, b), a, b)
    at = rng.standard_normal((13, 9)).astype(f)
    cmp("matmul transposed view a", engine.matmul(at.T, b), at.T, b)
    bt = rng.standard_normal((25, 13)).astype(f)
    cmp("matmul transposed view b", engine.matmul(a, bt.T), a, bt.T)
    v = rng.standard_normal(13).astype(f)
    cmp("matmul 1-D x 2-D", engine.matmul(v, b), v, b)
    cmp("matmul 2-D x 1-D", engine.matmul(a, v), a, v)
    cmp("matmul 1-D x 1-D", engine.matmul(v, v), v, v)
    big = rng.standard_normal((17, 40)).astype(f)
    cmp("matmul strided (copy path)", engine.matmul(big[:, ::3][:, :13], b), big[:, ::3][:, :13], b)
    ba = rng.standard_normal((3, 1, 7, 9)).astype(f)
    bb = rng.standard_normal((4, 9, 13)).astype(f)
    cmp("matmul batched broadcast", engine.matmul(ba, bb), ba, bb)
    bm = rng.standard_normal((5, 1, 33)).astype(f)
    bn = rng.standard_normal((5, 33, 70)).astype(f)
    cmp("matmul batched gemv", engine.matmul(bm, bn), bm, bn)
    # a constant weight in a model's MatMul (MatMulStep): pre-packed in this ISA's panel layout (nr 12 on NEON)
    # once the product has >= 16 rows; K over two K blocks, N no multiple of nr, a column view of A
    from engine._C import _kernels as _k

    w = rng.standard_normal((300, 70)).astype(f)
    step = _k.MatMulStep(w, None, 0, 0.0, 0.0, None)
    for rows in (3, 16, 41):
        x = rng.standard_normal((rows, 300)).astype(f)
        cmp(f"MatMulStep prepacked rows={rows}", step(x)[0], x, w)
    xt = rng.standard_normal((300, 20)).astype(f)
    cmp("MatMulStep prepacked, transposed A", step(xt.T)[0], xt.T, w)
    out = np.full((9, 25), np.nan, f)
    r = engine.matmul(a, b, out=out)
    ck.check(r is out, "matmul out= returns out")
    cmp("matmul out=", out, a, b)
    # bad input: clear Python exceptions, no crash
    for label, fn, exc in [
        ("matmul shape mismatch", lambda: engine.matmul(a, a), ValueError),
        ("matmul float64", lambda: engine.matmul(a.astype(np.float64), b), TypeError),
        ("gemm bias length", lambda: engine.gemm(a, b, bias=np.zeros(3, f)), ValueError),
        ("gemm unknown activation", lambda: engine.gemm(a, b, activation="tanhh"), ValueError),
    ]:
        try:
            fn()
            ck.check(False, label, f"no {exc.__name__} raised")
        except exc:
            ck.check(True, label)


def run_child(isa: str) -> int:
    t0 = time.time()
    ck = Checker(isa)
    import platform

    import numpy as np

    import engine
    from engine._C import _kernels as _k

    info = engine.cpu_info()
    ck.check(platform.machine() == "aarch64", "running on aarch64", platform.machine())
    ck.check(info["active_isa"] == isa, "ENGINE_ISA sets the active ISA", info["active_isa"])
    ck.check(info["max_isa"] == "neon", "CPU max ISA is neon", info["max_isa"])
    ck.check(info["compiled_isas"] == ["scalar", "neon"], "compiled ISA groups", str(info["compiled_isas"]))
    ck.check(info["supported_isas"] == ["scalar", "neon"], "runnable ISA levels", str(info["supported_isas"]))
    slots = engine.kernel_info()
    ck.check(len(slots) >= 3 and all(s["isa"] == isa for s in slots), f"every kernel slot is {isa}", str(slots))
    feats = info["features"]
    ck.check(feats.get("neon") is True, "feature neon detected")
    ck.check(not any(feats.get(x) for x in ("avx", "avx2", "fma", "avx512f", "sse4.2")), "no x86 features reported")
    cpu = os.environ.get("AARCH64_PYTHON_CPU", "")
    if cpu in DOTPROD:
        ck.check(feats.get("asimddp") is DOTPROD[cpu], f"asimddp {'present' if DOTPROD[cpu] else 'absent'} on {cpu}",
                 f"detected asimddp={feats.get('asimddp')}")
    elif cpu:
        print(f"note: CPU model {cpu!r} has no expected-feature entry; asimddp detection not checked")
    print(f"[{isa}] cpu={cpu or '?'} features: {' '.join(k for k, v in feats.items() if v)}; "
          f"kernels: {', '.join(s['kernel'] + '=' + s['isa'] for s in slots)}", flush=True)

    t_import = time.time() - t0
    laps = []

    def lap(name):
        laps.append((name, time.time()))

    seed = int(os.environ.get("ENGINE_TEST_SEED", "20261121"))
    rng = np.random.default_rng(seed)
    lap('setup')
    # 1. shape sweep around the tile edges: NEON 8x12 (and 4x4 scalar), k blocks of 256, GEMV paths (m or n == 1)
    ms, ns, ks = (1, 7, 8, 9, 17, 67), (1, 11, 12, 13, 25, 67), (1, 3, 4, 5, 67, 300)
    for m in ms:
        for n in ns:
            for k in ks:
                for ta in (False, True):
                    for tb in (False, True):
                        gemm_case(ck, rng, m, n, k, ta, tb)
    # every transpose combination on a few shapes, with alpha/beta and a strided C (ldc > n)
    for m, n, k in ((9, 13, 5), (1, 67, 33), (67, 1, 33), (16, 24, 257), (1, 1, 7)):
        for ta in (False, True):
            for tb in (False, True):
                gemm_case(ck, rng, m, n, k, ta, tb, alpha=0.75, beta=0.5, ldc_pad=3)
    lap('shape sweep')
    # 2. alpha/beta grid (beta == 0 with a NaN-filled C checks that C is not read)
    for alpha in (1.0, -0.5, 0.0):
        for beta in (0.0, 1.0, -2.0):
            for m, n, k in ((8, 12, 9), (23, 37, 19), (1, 45, 21), (45, 1, 21)):
                gemm_case(ck, rng, m, n, k, alpha=alpha, beta=beta, with_c=True, ldc_pad=1)
    lap('alpha/beta')
    # 3. every activation with bias, alpha, beta, on the blocked path and both GEMV paths
    for act in ACTS:
        for m, n, k in ((9, 13, 5), (1, 67, 33), (67, 1, 33), (17, 25, 300)):
            gemm_case(ck, rng, m, n, k, ta=m == 17, tb=n == 1, alpha=1.5, beta=0.5, bias=True, act=act)
        gemm_case(ck, rng, 10, 14, 6, beta=1.0, act=act, nan_c=True)  # NaN in C must come out as NaN
    lap('activations')
    # 4. GEMV tails (k % 4, n % 4, n across the 512-column block) and larger blocked shapes (mc, nc, threads)
    for n, k in ((1, 1), (2, 2), (3, 5), (5, 6), (6, 7), (7, 9), (513, 3), (1037, 10)):
        gemm_case(ck, rng, 1, n, k, beta=1.0)
        gemm_case(ck, rng, 1, n, k, tb=True)
        gemm_case(ck, rng, n, 1, k, ta=True, beta=1.0)
    gemm_case(ck, rng, 200, 70, 40, beta=0.5, bias=True, act=ACTS[1])  # M > mc (128): several A blocks, 2 threads
    gemm_case(ck, rng, 20, 4100, 3, tb=True)  # N > nc (4080): several B blocks
    # M == 0 and K == 0 are left out: on this branch the bindings reject the zero strides numpy gives empty
    # arrays (engine/_C/_kernels.pyx::_ld; fixed on h-tests); nothing NEON-specific runs for them anyway.
    lap('gemv tails + large')
    # 5. a dense activation sweep and NaN propagation
    activation_sweep(ck, isa)
    lap('activation sweep')
    # 6. matmul
    matmul_cases(ck, rng)
    lap('matmul')
    parts = ", ".join(f"{n} {t - laps[i - 1][1]:.1f}" for i, (n, t) in enumerate(laps) if i)
    print(f"[{isa}] {ck.passed} passed, {ck.failed} failed in {time.time() - t0:.1f} s (imports {t_import:.1f}; "
          f"{parts})", flush=True)
    print(f"child-result {ck.passed} {ck.failed}", flush=True)
    return 1 if ck.failed else 0


# ---------------------------------------------------------------------------------------------------------
# parent


def child_env(isa: str) -> dict:
    env = dict(os.environ)
    env["ENGINE_ISA"] = isa
    return env


def run_parent() -> int:
    t0 = time.time()
    ck = Checker("parent")
    root = ROOT
    for isa in ISAS:
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--isa", isa], cwd=root, env=child_env(isa),
                           capture_output=True, text=True)
        lines = r.stdout.splitlines()
        for line in lines:
            if not line.startswith("child-result"):
                print(line)
        if r.stderr.strip():
            print(r.stderr.rstrip(), file=sys.stderr)
        res = [ln.split() for ln in lines if ln.startswith("child-result")]
        if res:
            ck.passed += int(res[-1][1])
            ck.failed += int(res[-1][2])
        ck.check(r.returncode == 0 and bool(res), f"child ENGINE_ISA={isa} exits 0 and reports", f"exit {r.returncode}")
    # ENGINE_ISA naming a level this build/CPU cannot run, or no level at all: ImportError listing valid ones
    for bad, why in (("avx2", "cannot run here"), ("bogus", "not a known ISA level")):
        code = "import engine\nprint('imported')"
        r = subprocess.run([sys.executable, "-c", code], cwd=root, env=child_env(bad), capture_output=True, text=True)
        err = r.stderr.strip().splitlines()
        last = err[-1] if err else ""
        ck.check(r.returncode != 0 and last.startswith("ImportError") and why in last
                 and "valid values on this CPU: scalar, neon" in last,
                 f"ENGINE_ISA={bad} raises ImportError listing valid values", last or r.stdout.strip())
        if last:
            print(f"ENGINE_ISA={bad}: {last}")
    print(f"total time {time.time() - t0:.1f} s (cpu={os.environ.get('AARCH64_PYTHON_CPU', '?')})")
    print(f"{ck.passed} passed, {ck.failed} failed")
    return 1 if ck.failed else 0


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--isa" and argv[1] in ISAS:
        return run_child(argv[1])
    if argv:
        print(__doc__)
        print(f"{0} passed, {1} failed")
        return 2
    import platform

    if platform.machine() != "aarch64":
        print(f"check_neon.py checks the aarch64 build; this is {platform.machine()} "
              "(run it through tests/aarch64/run.sh, which uses shared/tools/aarch64-python)")
        print("0 passed, 1 failed")
        return 2
    return run_parent()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
