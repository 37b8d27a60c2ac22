"""GEMM speed table: engine against numpy and onnxruntime, per shape, for 1 and 2 threads.

    python bench/compare_gemm.py                     # all shapes, 1 and 2 threads (about 5 minutes)
    python bench/compare_gemm.py --quick             # smoke subset (ENGINE_BENCH_QUICK=1 does the same)
    python bench/compare_gemm.py --threads 1 --shapes inference --markdown

Columns: engine GFLOP/s and its fraction of the FMA peak measured in the same worker (engine's FMA probe with as
many cores busy as threads; --peak-gflops overrides it), numpy (A @ B on its BLAS),
ORT(in) = onnxruntime MatMul with A and B both graph inputs (B is packed on every call, the same work engine does),
ORT(pp) = onnxruntime MatMul with B an initializer (ORT pre-packs the weights once, as it does for real models),
eng/ORT(in) and eng/ORT(pp) = engine speed / that ORT speed (> 1: engine is faster), eng/np = engine / numpy.

Each thread count runs in its own subprocess, because numpy's OpenBLAS reads OPENBLAS_NUM_THREADS only when numpy
is imported. Within a shape the implementations are timed in rounds that rotate their order, so load from other
processes and clock drift hit all of them alike; each sample (after quiet.warm_up: the previous implementation's
threads idle, then 20 ms of untimed calls) times enough back-to-back calls to last about --sample-ms, and the table
shows the best (default) or the median sample. Every output is checked against a float64 reference before any
timing. Times include the Python call and allocating the output, for all implementations.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("engine") is None:  # run from a source checkout: use the in-place build
    sys.path.insert(1, str(HERE.parent))

BIG_FLOPS = 1e8  # shapes with at least this many flops get a line in the 2-thread / 1-thread speedup table
SHAPE_BUDGET_S = 8.0  # cap on the timed seconds per shape (all implementations together): bounds the big squares
MIN_ROUNDS = 3


# --- worker: one thread count, in its own process ----------------------------------------------------------------

def _once(fn, args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _time_shape(shape, threads: int, repeat: int, sample_s: float) -> dict:
    import numpy as np

    import engine
    from gemm_common import check_result, make_inputs, ort_matmul_inputs, ort_matmul_prepacked, reference
    from quiet import warm_up

    a, b = make_inputs(shape)
    ref, scale = reference(a, b)
    fns = {"engine": (engine.matmul, (a, b)), "numpy": (np.matmul, (a, b))}
    try:
        fns["ort_inputs"] = (ort_matmul_inputs(shape, threads), (a, b))
        fns["ort_prepacked"] = (ort_matmul_prepacked(shape, threads, b), (a,))
    except ImportError:
        pass  # the parent prints n/a for the ORT columns
    inner, per_sample = {}, {}
    for name, (fn, args) in fns.items():
        t0 = time.perf_counter()
        c = fn(*args)
        first = time.perf_counter() - t0
        check_result(name, c, ref, scale)  # once, before timing; the call doubles as the first warm-up
        est = max(min(first, _once(fn, args)), 1e-7)
        inner[name] = max(1, int(sample_s / est))
        per_sample[name] = inner[name] * est
    rounds = max(MIN_ROUNDS, min(repeat, int(SHAPE_BUDGET_S / sum(per_sample.values()))))
    # A sample stops early once it has run this long (calls can get far slower than the estimate when other
    # processes take the cores) and is then the mean of the calls it made; the rounds stop at twice the budget.
    sample_cap = 5 * sample_s
    t_shape = time.perf_counter()

    samples = {name: [] for name in fns}
    names = list(fns)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(rounds):
            if r >= MIN_ROUNDS and time.perf_counter() - t_shape > 2 * SHAPE_BUDGET_S:
                break
            for name in names[r % len(names):] + names[:r % len(names)]:
                fn, args = fns[name]
                warm_up(fn, *args)  # the previous implementation's threads go quiet (onnxruntime, OpenBLAS spin)
                done = 0
                t0 = now = time.perf_counter()
                while done < inner[name] and now - t0 < sample_cap:
                    fn(*args)
                    done += 1
                    now = time.perf_counter()
                samples[name].append((now - t0) / done)
    finally:
        if gc_was:
            gc.enable()
    return {"shape": list(shape), "samples": samples, "inner": inner, "rounds": len(samples["engine"])}


def worker(args) -> None:
    """Times every shape at one thread count and prints one JSON document on stdout."""
    import engine
    import gemm_common as gc_

    engine.set_num_threads(args.threads)
    meta = {
        "threads": args.threads,
        "engine_threads": engine.get_num_threads(),
        "isa": engine.cpu_info()["active_isa"],
        "usable_cpus": engine.cpu_info()["usable_cpus"],
        "numpy_blas": gc_.numpy_blas_name(),
        "numpy_threads": gc_.numpy_blas_threads(),
        "openblas_env": os.environ.get("OPENBLAS_NUM_THREADS"),
        "loadavg_start": os.getloadavg()[0],
        # per-core peak with args.threads cores busy, measured before and after the shapes (the larger one)
        "fma_peak": gc_.measured_peak(args.threads),
    }
    try:
        import onnxruntime

        meta["ort"] = onnxruntime.__version__
    except ImportError:
        meta["ort"] = None
    results = []
    t_start = time.perf_counter()
    for shape in SHAPE_LISTS[args.shapes](args.quick):
        t0 = time.perf_counter()
        res = _time_shape(tuple(shape), args.threads, args.repeat, args.sample_ms / 1e3)
        res["seconds"] = time.perf_counter() - t0
        results.append(res)
        print(f"  t{args.threads} {gc_.shape_id(shape):>14}: {res['rounds']} rounds, {res['seconds']:.1f} s",
              file=sys.stderr, flush=True)
    meta["seconds"] = time.perf_counter() - t_start
    meta["loadavg_end"] = os.getloadavg()[0]
    meta["fma_peak"] = max(meta["fma_peak"], gc_.measured_peak(args.threads))
    json.dump({"meta": meta, "results": results}, sys.stdout)


def _shape_list(which):
    def pick(quick: bool):
        import gemm_common as gc_

        if quick:
            return [s for s in gc_.QUICK_SHAPES if s in gc_.SHAPE_SETS[which]]
        return list(gc_.SHAPE_SETS[which])
    return pick


SHAPE_LISTS = {k: _shape_list(k) for k in ("square", "inference", "all")}


# --- parent: run the workers, print the tables ---------------------------------------------------------------------

def run_worker(threads: int, args) -> dict:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ENGINE_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--threads", str(threads),
           "--shapes", args.shapes, "--repeat", str(args.repeat), "--sample-ms", str(args.sample_ms)]
    if args.quick:
        cmd.append("--quick")
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"compare_gemm: the {threads}-thread worker failed (exit {proc.returncode}); "
                         "its error is printed above")
    return json.loads(proc.stdout)


def _stat(samples, how: str) -> float:
    return min(samples) if how == "best" else statistics.median(samples)


def _gflops(res: dict, impl: str, how: str):
    s = res["samples"].get(impl)
    if not s:
        return None
    m, n, k = res["shape"]
    return 2.0 * m * n * k / _stat(s, how) / 1e9


def _fmt(x, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def _ratio(x, y):
    return None if x is None or y is None or y == 0 else x / y


def _table(headers, rows, markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" for _ in headers) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:>{w}}}" for w in widths)
    lines = [fmt.format(*headers), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*r) for r in rows]
    return "\n".join(lines)


def default_peak(isa: str):
    """(per-core GFLOP/s, explanation) from the ISA's flops/cycle and /proc/cpuinfo's cpu MHz."""
    from gemm_common import FLOPS_PER_CYCLE, cpu_mhz

    mhz = cpu_mhz()
    fpc = FLOPS_PER_CYCLE.get(isa)
    if mhz is None or fpc is None:
        return None, f"no peak: unknown clock or ISA {isa!r} (pass --peak-gflops)"
    peak = fpc * mhz / 1e3
    return peak, (f"peak assumed {peak:.1f} GFLOP/s per core = {fpc} flops/cycle ({isa}: 2 FMA pipes x "
                  f"{fpc // 4 if isa != 'scalar' else 1} float32 lanes x 2) x {mhz / 1e3:.3f} GHz "
                  "(/proc/cpuinfo cpu MHz)")


def main(argv=None) -> int:
    import gemm_common as gc_

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    p.add_argument("--shapes", choices=("square", "inference", "all"), default="all")
    p.add_argument("--repeat", type=int, default=None,
                   help="timed rounds per shape (default 40, --quick 5); big shapes get fewer (at least "
                        f"{MIN_ROUNDS}) so one shape takes at most about {SHAPE_BUDGET_S:.0f} s")
    p.add_argument("--sample-ms", type=float, default=None,
                   help="each sample repeats the call until it lasts about this long (default 2, --quick 1); short "
                        "samples give the best-of statistic more chances to fall between other processes' slices")
    p.add_argument("--stat", choices=("best", "median"), default="best",
                   help="which sample each figure is from (default best: least disturbed by other load)")
    p.add_argument("--quick", action="store_true", default=None,
                   help="smoke subset of shapes and fewer rounds (also ENGINE_BENCH_QUICK=1)")
    p.add_argument("--markdown", action="store_true", help="print markdown tables")
    p.add_argument("--peak-gflops", type=float, default=None,
                   help="per-core float32 peak in GFLOP/s; default: measured with engine's FMA probe in each worker")
    p.add_argument("--json", metavar="PATH", help="also write the raw samples as JSON")
    p.add_argument("--load-json", metavar="PATH", help="print the tables of a run saved with --json instead of "
                   "measuring (with --markdown, --stat, --peak-gflops, --threads as you like)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick is None:
        args.quick = gc_.quick_from_env()
    if args.repeat is None:
        args.repeat = 5 if args.quick else 40
    if args.sample_ms is None:
        args.sample_ms = 1.0 if args.quick else 2.0
    if args.repeat < 1:
        p.error(f"--repeat must be at least 1, got {args.repeat}")
    if args.sample_ms <= 0:
        p.error(f"--sample-ms must be positive, got {args.sample_ms}")
    if args.peak_gflops is not None and args.peak_gflops <= 0:
        p.error(f"--peak-gflops must be positive, got {args.peak_gflops}")

    if args.worker:
        args.threads = int(args.threads)
        worker(args)
        return 0

    try:
        thread_counts = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        p.error(f"--threads must be comma-separated whole numbers, got {args.threads!r}")
    if not thread_counts or any(t < 1 or t > 1024 for t in thread_counts):
        p.error(f"--threads must list numbers from 1 to 1024, got {args.threads!r}")

    if args.load_json:  # re-print a saved run (e.g. as markdown) without measuring again
        with open(args.load_json) as f:
            saved = json.load(f)
        runs = {int(t): r for t, r in saved["runs"].items() if int(t) in thread_counts}
        if not runs:
            p.error(f"{args.load_json} has no run for --threads {args.threads}")
        thread_counts = [t for t in thread_counts if t in runs]
        wall = saved.get("wall_seconds", float("nan"))
    else:
        wall0 = time.perf_counter()
        runs = {}
        for t in thread_counts:
            print(f"running {t}-thread worker ...", file=sys.stderr, flush=True)
            runs[t] = run_worker(t, args)
        wall = time.perf_counter() - wall0

    isa = runs[thread_counts[0]]["meta"]["isa"]

    def peak_of(t: int):
        """(per-core peak, how it was obtained) for the t-thread run."""
        if args.peak_gflops is not None:
            return args.peak_gflops, gc_.peak_note(args.peak_gflops, isa, "given with --peak-gflops")
        measured = runs[t]["meta"].get("fma_peak")
        if measured:
            return measured, gc_.peak_note(measured, isa, f"measured in the {t}-thread worker with {t} core(s) busy")
        return default_peak(isa)  # a --load-json file from before the peak was measured
    md = args.markdown

    def say(line: str = "", note: bool = False) -> None:
        print(f"- {line}" if md and note else line)

    stat_name = "best of the samples" if args.stat == "best" else "median sample"
    meta0 = runs[thread_counts[0]]["meta"]
    say(f"GEMM float32, C = A @ B (A MxK, B KxN), GFLOP/s = 2MNK / time ({stat_name}; higher is better)", note=True)
    say(f"engine ISA {isa}; numpy {meta0['numpy_blas']}; onnxruntime {meta0['ort'] or 'not installed'}", note=True)
    say("ORT(in): MatMul with A and B graph inputs (packs B every call, same work as engine); "
        "ORT(pp): B an initializer, pre-packed once at session creation", note=True)
    say("eng/ORT(in), eng/ORT(pp), eng/np: engine GFLOP/s divided by that column's (> 1 means engine is faster)",
        note=True)

    headers = ["M x N x K", "engine", "% peak", "numpy", "ORT(in)", "ORT(pp)", "eng/ORT(in)", "eng/ORT(pp)",
               "eng/np"]
    for t in thread_counts:
        meta = runs[t]["meta"]
        peak, peak_line = peak_of(t)
        rows = []
        over = False
        for res in runs[t]["results"]:
            e, n_, oi, op = (_gflops(res, i, args.stat) for i in gc_.IMPLS)
            frac = None if peak is None or e is None else e / (peak * t)
            over |= frac is not None and frac > 1
            rows.append([gc_.shape_id(res["shape"]), _fmt(e, ".1f"), _fmt(None if frac is None else 100 * frac, ".0f"),
                         _fmt(n_, ".1f"), _fmt(oi, ".1f"), _fmt(op, ".1f"), _fmt(_ratio(e, oi), ".2f"),
                         _fmt(_ratio(e, op), ".2f"), _fmt(_ratio(e, n_), ".2f")])
        say("")
        title = (f"{t} thread{'s' if t > 1 else ''} (engine {meta['engine_threads']}, ORT intra-op {t}, "
                 f"numpy OpenBLAS {meta['numpy_threads']}); GFLOP/s; % peak of {t} core(s); "
                 f"worker {meta['seconds']:.0f} s, "
                 f"1-min load average {meta['loadavg_start']:.1f} -> {meta['loadavg_end']:.1f}")
        say(f"**{title}**\n" if md else title)
        say(peak_line, note=True)
        if md:
            say("")
        say(_table(headers, rows, md))
        notes = []
        if meta["numpy_threads"] not in (None, t):
            notes.append(f"note: numpy used {meta['numpy_threads']} BLAS threads, not {t}")
        busy = max(meta["loadavg_start"], meta["loadavg_end"]) - t  # load from other processes, roughly
        if busy > meta["usable_cpus"] - t + 0.5:
            notes.append(f"note: the machine was busy (load average up to {busy + t:.1f} on {meta['usable_cpus']} "
                         f"CPUs): {t}-thread figures include waiting for cores that other processes hold; "
                         "re-run when it is quiet")
        if t > meta["usable_cpus"]:
            notes.append(f"note: only {meta['usable_cpus']} CPU(s) usable: {t} threads oversubscribe")
        if over:
            notes.append("note: above 100% of the peak: the core ran faster during the shapes than during the probe")
        if notes and md:
            say("")  # a markdown table ends at a blank line
        for line in notes:
            say(line, note=True)

    if 1 in runs and len(runs) > 1:
        for t in thread_counts:
            if t == 1:
                continue
            rows = []
            by_shape1 = {tuple(r["shape"]): r for r in runs[1]["results"]}
            for res in runs[t]["results"]:
                r1 = by_shape1.get(tuple(res["shape"]))
                m, n, k = res["shape"]
                if r1 is None or 2 * m * n * k < BIG_FLOPS:
                    continue
                row = [gc_.shape_id(res["shape"])]
                for impl in gc_.IMPLS:
                    g1, gt = _gflops(r1, impl, args.stat), _gflops(res, impl, args.stat)
                    row.append(_fmt(_ratio(gt, g1), ".2f"))
                rows.append(row)
            if rows:
                say("")
                title = f"{t}-thread / 1-thread speedup, shapes with >= {BIG_FLOPS:.0e} flops"
                say(f"**{title}**\n" if md else title)
                say(_table(["M x N x K", "engine", "numpy", "ORT(in)", "ORT(pp)"], rows, md))
    say("")
    per_worker = ", ".join(f"{t} thread(s): {runs[t]['meta']['seconds']:.0f} s" for t in thread_counts)
    say(f"total wall time {wall:.0f} s ({per_worker})" if wall == wall else f"worker times ({per_worker})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"wall_seconds": wall, "runs": runs}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
