"""Per-layer convolution table: engine against onnxruntime on the convolution layers of issue 4, 1 and 2 threads.

    python bench/compare_conv.py                     # all six layers, 1 and 2 threads (about 40 s)
    python bench/compare_conv.py --quick             # smoke run, a few seconds (ENGINE_BENCH_QUICK=1 does the same)
    python bench/compare_conv.py --layers 3x3_56,dw3x3_56 --threads 1 --markdown

Each layer (bench/conv_common.py: ResNet's 3x3 convolutions at 56, 28 and 14, its 7x7 stride-2 stem, a 3x3
depthwise and a 1x1 pointwise, all with a bias, batch 1) is a one-Conv ONNX model, run by engine.Session (pool size
via engine.set_num_threads) and by an onnxruntime InferenceSession (all graph optimizations, intra_op_num_threads =
threads, sequential). engine's output is checked against onnxruntime's before timing. Both are then timed in
alternating rounds (models_common.time_alternating: the order flips every round, so load from other processes hits
both alike); a sample is the mean of back-to-back calls lasting about --sample-ms, and the table shows the best
sample (--stat median for the median). engine/ORT is engine's time over onnxruntime's: below 1 engine is faster.
GFLOP/s counts 2 x multiply-adds of the convolution. The title gives the 1-minute load average at the start and
the end: on a busy machine the 2-thread figures measure waiting for a core more than the convolution.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conv_common as cc  # noqa: E402
import models_common as mc  # noqa: E402


def measure(args) -> dict:
    import engine

    ort_version = mc.ort_version()
    layers = [cc.BY_NAME[n] for n in args.layers.split(",")] if args.layers else list(cc.LAYERS)
    threads_list = [int(t) for t in args.threads.split(",")]
    threads_before = engine.get_num_threads()
    meta = mc.run_meta(args.quick)
    results = []
    t_all = time.perf_counter()
    try:
        for layer in layers:
            model_bytes, feeds = cc.build(layer)
            for threads in threads_list:
                t0 = time.perf_counter()
                row = {"layer": layer.name, "threads": threads, "flops": layer.flops(), "engine": None, "ort": None,
                       "max_rel_err": None, "note": ""}
                fns = {}
                ref = None
                if ort_version is not None:
                    ort_sess = mc.ort_session(model_bytes, threads)
                    fns["ort"] = mc.ort_fn(ort_sess, feeds)
                    ref = ort_sess.run(None, feeds)[0]
                eng_sess = mc.engine_session(model_bytes, threads)
                fns["engine"] = mc.engine_fn(eng_sess, feeds)
                got = fns["engine"]()["Y"]
                if ref is not None:
                    row["max_rel_err"] = cc.check(layer, got, ref)  # a wrong answer stops the run: no time for it
                row.update(mc.time_runtimes(fns, threads, args))
                results.append(row)
                print(f"  {layer.name} t{threads}: {len(row['engine']['samples'])} rounds, "
                      f"{time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    finally:
        engine.set_num_threads(threads_before)
    return {"meta": mc.end_meta(meta, t_all), "results": results}


def _fmt(x, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def report(data: dict, stat: str, markdown: bool) -> str:
    meta = data["meta"]
    headers = ["layer", "what", "threads", "engine ms", "ORT ms", "engine/ORT", "engine GFLOP/s", "ORT GFLOP/s",
               "max rel err"]
    rows = []
    for r in data["results"]:
        e = r["engine"][stat] if r["engine"] else None
        o = r["ort"][stat] if r["ort"] else None
        layer = cc.BY_NAME.get(r["layer"])
        rows.append([r["layer"], layer.what if layer else "", str(r["threads"]), _fmt(None if e is None else e * 1e3,
                     ".3f"), _fmt(None if o is None else o * 1e3, ".3f"),
                     _fmt(e / o if e and o else None, ".2f"), _fmt(r["flops"] / e / 1e9 if e else None, ".1f"),
                     _fmt(r["flops"] / o / 1e9 if o else None, ".1f"),
                     "n/a" if r["max_rel_err"] is None else f"{r['max_rel_err']:.1e}"])
    title = (f"Conv layers, batch 1, with bias: {'best' if stat == 'best' else 'median'} of the timed samples"
             f"{' (quick smoke run)' if meta['quick'] else ''}; engine {meta['engine']} ISA {meta['isa']}, "
             f"onnxruntime {meta['onnxruntime'] or 'not installed'}, {meta['usable_cpus']} usable CPU(s), "
             f"1-min load average {meta['loadavg_start']:.2f} -> {meta['loadavg_end']:.2f}, {meta['seconds']:.0f} s; "
             "engine/ORT < 1: engine faster")
    lines = mc.table(title, headers, rows, markdown)
    busy = max(meta["loadavg_start"], meta["loadavg_end"])
    if busy >= 0.5:
        lines.append(f"\nnote: 1-min load average up to {busy:.2f} on {meta['usable_cpus']} CPU(s): other processes "
                     "were using the cores, so the figures (the 2-thread ones most) partly measure waiting for a core; "
                     "re-run when the machine is quiet.")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", default=mc.quick_from_env(),
                   help="short time budget (CI smoke run; ENGINE_BENCH_QUICK=1)")
    p.add_argument("--layers", default="", help="comma-separated subset of: " + ",".join(cc.BY_NAME))
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--budget", type=float, default=None,
                   help="timed seconds per layer and thread count, both runtimes together (default 2, quick 0.2)")
    p.add_argument("--max-rounds", type=int, default=None, help="cap on the timed rounds (default 200, quick 5)")
    p.add_argument("--sample-ms", type=float, default=None,
                   help="each sample repeats the call until it lasts about this long (default 2, quick 1)")
    p.add_argument("--stat", choices=("best", "median"), default="best",
                   help="which sample the table shows (default best: the least disturbed by other load)")
    p.add_argument("--markdown", action="store_true", help="markdown table")
    p.add_argument("--json", metavar="PATH", help="also write the raw samples here")
    p.add_argument("--load-json", metavar="PATH", help="re-print a saved run without measuring")
    args = p.parse_args(argv)
    unknown = [n for n in args.layers.split(",") if n and n not in cc.BY_NAME]
    if unknown:
        p.error(f"unknown layer(s) {unknown}; choose from {list(cc.BY_NAME)}")
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        p.error(f"--threads must be comma-separated whole numbers, got {args.threads!r}")
    if not threads or any(t < 1 or t > 1024 for t in threads):
        p.error(f"--threads must list numbers from 1 to 1024, got {args.threads!r}")
    if args.budget is None:
        args.budget = 0.2 if args.quick else 2.0
    if args.max_rounds is None:
        args.max_rounds = 5 if args.quick else 200
    if args.sample_ms is None:
        args.sample_ms = 1.0 if args.quick else 2.0
    if args.budget <= 0 or args.sample_ms <= 0 or args.max_rounds < 1:
        p.error("--budget and --sample-ms must be positive, --max-rounds at least 1")
    if args.load_json:
        data = json.loads(Path(args.load_json).read_text())
    else:
        data = measure(args)
        if args.json:
            Path(args.json).write_text(json.dumps(data))
    print(report(data, args.stat, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
