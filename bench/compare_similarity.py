"""Similarity speed against the bar of issue 5, in one run: ratios against simsimd, numpy and faiss-cpu, GB/s
against the measured memory bandwidth and GFLOP/s against the FMA peak.

    python bench/compare_similarity.py               # 1 and 2 threads, galleries of 100k and 1M rows (~3-5 min)
    python bench/compare_similarity.py --quick       # CI smoke test: 1 thread, 100k rows, fewer repeats (< 60 s)
    python bench/compare_similarity.py --threads 2 --galleries 100000 --peak-gflops 98
    python bench/compare_similarity.py --quick --clock cpu   # on a busy shared machine: CPU time, 1 thread

Each thread count runs in its own process with OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / ENGINE_NUM_THREADS set
before numpy, faiss and engine are imported, so every library really uses that many threads.

Sections:
1. single pair (1 thread): cosine of two float32 vectors (d = 128, 512, 1536), engine.cosine_similarity against
   simsimd.cosine and numpy (a @ b / (|a| |b|)), with the Python call included for all three; the bar is
   engine / simsimd <= 1.0.
2. memory bandwidth: one thread reading a 1 GiB array (256 MiB with --quick) two ways (numpy's BLAS dot, engine's
   C squared-norm read loop); the larger is "BW".
3. gallery search (dim 512, k = 10): engine.Gallery f32 and f16 against faiss IndexFlatIP (f32) and numpy (matrix
   product + argpartition), for 1 and 64 queries. GB/s = gallery bytes / time (f16 reads half the bytes); % BW for
   the one-query scans (bar: >= 80% with one thread); GFLOP/s = 2 m n d / time and % of the FMA peak (bar: >= 60%
   for 64 queries); speedups engine / faiss and engine / numpy (bar: >= 1.0 each).
The FMA peak per core is measured in the same process with engine's FMA probe (independent FMA chains of the active
ISA's widest vectors, as many threads at once as the run uses; the best of the measurements before and after the
searches), unless --peak-gflops gives it. --clock cpu times with the process's CPU time instead of the wall clock (1 thread
only): on a shared machine whose cores are oversubscribed, wall time also counts the time the benchmark waited for
a core, CPU time does not (other processes still compete for memory bandwidth and caches, which lowers every
column, the bandwidth measurement included). Peers that are not installed are skipped with a note. Every result is
checked against float64 before it is timed; the searches are timed taking turns (engine f32, engine f16, faiss,
numpy, again), each call after the process's threads have gone quiet. Exit status 0 even when a bar is missed (this is a report, not a gate).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def _child(args) -> int:
    import numpy as np

    sys.path.insert(0, HERE)
    import engine
    from gemm_common import measured_peak, peak_note
    from sim_common import (DIM, K, PAIR_DIMS, best_time, best_times_alternating, check_search, faiss_index,
                            faiss_or_none, faiss_search, gallery_data, measure_bandwidth, numpy_search, pair,
                            simsimd_or_none)

    t = args.child
    quick = args.quick
    if args.clock == "cpu":
        import time

        import sim_common

        sim_common.CLOCK = time.process_time
    out = {"threads": t, "isa": engine.cpu_info()["active_isa"], "notes": [], "clock": args.clock}
    assert engine.get_num_threads() == t, (engine.get_num_threads(), t)
    isa = out["isa"]
    if args.peak_gflops:
        out["peak"] = args.peak_gflops
        out["peak_note"] = peak_note(args.peak_gflops, isa, "given with --peak-gflops")
    else:
        out["peak"] = measured_peak(t)
    simsimd = simsimd_or_none()
    faiss = faiss_or_none()
    if simsimd is None:
        out["notes"].append("simsimd not installed: its column is skipped (pip install simsimd)")
    if faiss is None:
        out["notes"].append("faiss-cpu not installed: its column is skipped (pip install faiss-cpu)")
    else:
        faiss.omp_set_num_threads(t)

    # 1. single pair
    if t == 1 and not args.no_pair:
        rows = []
        for d in PAIR_DIMS:
            a, b = pair(d)
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            ref = float(a64 @ b64 / np.linalg.norm(a64) / np.linalg.norm(b64))
            cs = engine.cosine_similarity
            assert abs(cs(a, b) - ref) < 1e-5
            reps = 3 if quick else 7
            te = best_time(lambda: cs(a, b), reps, 0.02 if quick else 0.1)
            tn = best_time(lambda: float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))), reps, 0.02 if quick else 0.1)
            ts = None
            if simsimd is not None:
                sc = simsimd.cosine
                assert abs(1 - float(sc(a, b)) - ref) < 1e-4
                ts = best_time(lambda: sc(a, b), reps, 0.02 if quick else 0.1)
            rows.append({"d": d, "engine": te, "simsimd": ts, "numpy": tn})
        out["pair"] = rows

    # 2. bandwidth
    out["bw"] = measure_bandwidth(256 if quick else 1024, 3 if quick else 5)

    # 3. search
    res = []
    reps = 3 if quick else 5
    for n in args.galleries:
        g, qall = gallery_data(n, DIM, 64)
        gals = {dt: engine.Gallery(g, dtype=dt) for dt in ("f32", "f16")}
        idx = faiss_index(faiss, g) if faiss is not None else None
        for m in (1, 64):
            q = qall[:m]
            # every implementation is checked against float64 first (which also warms it up), then they are timed
            # taking turns (best_times_alternating)
            fns = {}
            for dt, gal in gals.items():
                s, i = gal.search(q, K)
                check_search(f"engine {dt}", s, i, g, q, 1e-5 if dt == "f32" else 1e-3)
                fns[f"engine_{dt}"] = lambda gal=gal: gal.search(q, K)
            if idx is not None:
                s, i = faiss_search(faiss, idx, q, K)
                check_search("faiss", s, i, g, q, 1e-5)
                fns["faiss"] = lambda: faiss_search(faiss, idx, q, K)
            s, i = numpy_search(g, q, K)
            check_search("numpy", s, i, g, q, 1e-5)
            fns["numpy"] = lambda: numpy_search(g, q, K)
            row = {"n": n, "m": m, "faiss": None}
            row.update(best_times_alternating(fns, reps))
            res.append(row)
        del gals, idx, g, qall
    out["search"] = res
    if not args.peak_gflops:  # the searches may have run at another clock than the first probe: keep the faster
        out["peak"] = max(out["peak"], measured_peak(t))
        out["peak_note"] = peak_note(out["peak"], isa, f"measured with {t} core(s) busy, before and after the searches")
    print("@@JSON@@" + json.dumps(out))
    return 0


def _fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)


def _table(headers, rows, markdown):
    cols = [[str(h)] + [str(r[i]) for r in rows] for i, h in enumerate(headers)]
    w = [max(len(c) for c in col) for col in cols]
    lines = []
    if markdown:
        lines.append("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(headers)) + " |")
        lines.append("|" + "|".join("-" * (x + 2) for x in w) + "|")
        for r in rows:
            lines.append("| " + " | ".join(str(v).ljust(w[i]) for i, v in enumerate(r)) + " |")
    else:
        lines.append("  ".join(h.rjust(w[i]) for i, h in enumerate(headers)))
        for r in rows:
            lines.append("  ".join(str(v).rjust(w[i]) for i, v in enumerate(r)))
    return "\n".join(lines)


def _report(o, markdown) -> list[str]:
    t = o["threads"]
    verdicts = []
    print(f"\n=== {t} thread(s), ISA {o['isa']}, {o['clock']} clock")
    for n in o["notes"]:
        print("note: " + n)
    if "pair" in o:
        print("\nsingle pair cosine, float32, time per call in ns (Python call included); ratio engine/peer (<= 1 is "
              "engine faster)")
        rows = []
        for r in o["pair"]:
            e, s, nmp = r["engine"], r["simsimd"], r["numpy"]
            rows.append([r["d"], _fmt(e * 1e9, ".0f"), _fmt(s * 1e9 if s else None, ".0f"), _fmt(nmp * 1e9, ".0f"),
                         _fmt(e / s if s else None), _fmt(e / nmp)])
            if s:
                verdicts.append((f"pair d={r['d']}: engine/simsimd {e / s:.2f} (bar <= 1.0)", e / s <= 1.0))
        print(_table(["d", "engine", "simsimd", "numpy", "eng/simsimd", "eng/numpy"], rows, markdown))
    bw = o["bw"]
    print(f"\nmemory bandwidth, 1 thread, {bw['mbytes']} MiB read: numpy dot {bw['numpy_dot']:.1f} GB/s, C read loop "
          f"{bw['c_read']:.1f} GB/s -> BW = {bw['best']:.1f} GB/s")
    peak = o["peak"]
    print(o["peak_note"] + (f"; {t} core(s): {peak * t:.1f} GFLOP/s" if peak else ""))
    print("\ngallery search, d=512, k=10: time in ms; engine GB/s (% of BW) and GFLOP/s (% of FMA peak of the cores "
          "used); speedup = peer time / engine time (>= 1 is engine faster)")
    rows = []
    for r in o["search"]:
        n, m = r["n"], r["m"]
        for dt in ("f32", "f16"):
            te = r[f"engine_{dt}"]
            nbytes = n * 512 * (4 if dt == "f32" else 2)
            gbs = nbytes / te / 1e9
            gfl = 2 * m * n * 512 / te / 1e9
            pbw = gbs / bw["best"] * 100
            ppk = gfl / (peak * t) * 100 if peak else None
            sf = r["faiss"] / te if r["faiss"] else None
            sn = r["numpy"] / te
            rows.append([n, m, dt, _fmt(te * 1e3), _fmt(gbs, ".1f"), _fmt(pbw, ".0f"), _fmt(gfl, ".1f"),
                         _fmt(ppk, ".0f"),
                         _fmt(r["faiss"] * 1e3 if r["faiss"] else None), _fmt(r["numpy"] * 1e3), _fmt(sf), _fmt(sn)])
            if sf is not None:
                verdicts.append((f"search n={n} m={m} {dt} t{t}: engine vs faiss {sf:.2f}x (bar >= 1.0)", sf >= 1.0))
            verdicts.append((f"search n={n} m={m} {dt} t{t}: engine vs numpy {sn:.2f}x (bar >= 1.0)", sn >= 1.0))
            if m == 1 and t == 1:
                verdicts.append((f"search n={n} m=1 {dt}: {pbw:.0f}% of measured bandwidth (bar >= 80%)", pbw >= 80))
            if m == 64 and ppk is not None:
                verdicts.append((f"search n={n} m=64 {dt} t{t}: {ppk:.0f}% of FMA peak (bar >= 60%)", ppk >= 60))
    print(_table(["n", "m", "dtype", "engine ms", "GB/s", "%BW", "GFLOP/s", "%peak", "faiss ms", "numpy ms",
                  "vs faiss", "vs numpy"], rows, markdown))
    return verdicts


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="1 thread, 100k rows, fewer repeats: finishes in < 60 s")
    p.add_argument("--threads", type=int, nargs="+", default=None, help="thread counts (default 1 2; --quick: 1)")
    p.add_argument("--galleries", type=int, nargs="+", default=None,
                   help="gallery sizes (default 100000 1000000; --quick: 100000)")
    p.add_argument("--peak-gflops", type=float, default=None, help="per-core float32 FMA peak in GFLOP/s")
    p.add_argument("--markdown", action="store_true", help="tables in Markdown")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                   help="wall time (default) or the process's CPU time (1 thread only; for busy shared machines)")
    p.add_argument("--no-pair", action="store_true", help="skip the single-pair section")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.galleries is None:
        args.galleries = [100_000] if args.quick else [100_000, 1_000_000]
    if any(n < 64 for n in args.galleries):
        p.error("--galleries: each gallery needs at least 64 rows")
    if args.peak_gflops is not None and args.peak_gflops <= 0:
        p.error("--peak-gflops must be positive")
    if args.child is not None:
        return _child(args)
    threads = args.threads or ([1] if args.quick or args.clock == "cpu" else [1, 2])
    if args.clock == "cpu" and threads != [1]:
        p.error("--clock cpu measures one thread only (CPU time of several threads adds up)")
    verdicts = []
    for t in threads:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(t), OMP_NUM_THREADS=str(t), ENGINE_NUM_THREADS=str(t),
                   MKL_NUM_THREADS=str(t))
        cmd = [sys.executable, os.path.abspath(__file__), "--child", str(t), "--galleries", *map(str, args.galleries)]
        if args.quick:
            cmd.append("--quick")
        if args.peak_gflops:
            cmd += ["--peak-gflops", str(args.peak_gflops)]
        if args.no_pair:
            cmd.append("--no-pair")
        cmd += ["--clock", args.clock]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            print(f"compare_similarity: the {t}-thread run failed (exit {r.returncode})", file=sys.stderr)
            return 1
        line = [x for x in r.stdout.splitlines() if x.startswith("@@JSON@@")][-1]
        verdicts += _report(json.loads(line[len("@@JSON@@"):]), args.markdown)
    print("\nbar of issue 5:")
    for text, ok in verdicts:
        print(f"  [{'met' if ok else 'MISSED'}] {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
