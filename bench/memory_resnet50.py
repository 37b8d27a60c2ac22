"""Peak memory of one ResNet-50 inference: engine against onnxruntime, each in its own subprocess.

    python bench/memory_resnet50.py                  # 1 thread, about 20 s
    python bench/memory_resnet50.py --threads 2 --markdown
    python bench/memory_resnet50.py --quick          # the small test-size bottleneck ResNet: a smoke run

A first child builds ResNet-50 with tests/model_zoo.py (fixed seed; the same model as bench model "resnet50") and
writes it and its 1x3x224x224 input to a temporary directory (not the parent: Linux carries a process's peak RSS
over fork and exec, so the parent stays small). Three children then run one after the other, each in a
fresh interpreter, and report their own peak resident set size (resource.getrusage(RUSAGE_SELF).ru_maxrss):
- baseline: imports numpy, onnx, engine, onnxruntime and bench/models_common.py and reads the input;
- engine: the same, then engine.Session(model path) and one run;
- onnxruntime: the same, then an InferenceSession(model path) (all graph optimizations, as bench/compare_models.py
  sets it up) and one run.
The model is a file, not built in each child: building it in memory (protobuf plus numpy copies of 100 MB of
weights) sets a high-water mark of its own that would hide what the sessions cost. The table gives each child's
peak and the peak above the baseline's: what loading the model and one inference cost.
Sizes that explain the figures: the weights (initializers), the constants engine's plan holds, and the largest set
of activations alive at once in engine's plan (each value lives from the step that produces it to the last step
that reads it; views share their base's bytes; kernel temporaries such as im2col buffers are not included).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = ("baseline", "engine", "onnxruntime")
MB = 1 << 20


def _rss_now() -> int:
    """Current resident set size in bytes (VmRSS of /proc/self/status), or -1 where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def _peak_rss() -> int:
    """Peak resident set size of this process in bytes (ru_maxrss is in KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def _root(a):
    import numpy as np

    while isinstance(getattr(a, "base", None), np.ndarray):
        a = a.base
    return a


def _nbytes(values) -> int:
    """Bytes of the distinct buffers behind `values` (a view counts as its base, once)."""
    import numpy as np

    seen = {}
    for v in values:
        if isinstance(v, np.ndarray):
            r = _root(v)
            seen[id(r)] = r.nbytes
    return sum(seen.values())


def live_activations(sess, feeds) -> dict:
    """Runs the session's plan step by step (the order engine runs it in) and returns the largest total size of the
    activations alive at once: after a step's outputs exist and before the values it read last are released."""
    plan = sess._plan
    env = list(plan.template)
    for s, name in zip(plan.input_slots, plan.input_names):
        env[s] = feeds[name]
    produced = set(plan.input_slots)
    peak, at = _nbytes(env[s] for s in produced), "(inputs)"
    for fn, ins, outs, frees, step in plan.program:
        res = fn(*[env[s] if s >= 0 else None for s in ins])
        for s, v in zip(outs, res):
            if s >= 0:
                env[s] = v
                produced.add(s)
        live = _nbytes(env[s] for s in produced if env[s] is not None)
        if live > peak:
            peak, at = live, step.node.label()
        for s in frees:
            env[s] = None
    return {"peak_live_bytes": peak, "peak_at": at, "steps": len(plan.program),
            "plan_constant_bytes": _nbytes(v for v in plan.template if v is not None)}


def _models_common():
    """bench/models_common.py (imported on first use: the parent process stays small)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import models_common

    return models_common


def child(kind: str, threads: int, workdir: str) -> dict:
    """One measurement; runs in a fresh interpreter (--child)."""
    import numpy as np
    import onnx  # noqa: F401
    import onnxruntime

    import engine

    mc = _models_common()  # in every child, before the first figure: all three carry the same modules
    engine.set_num_threads(threads)
    model = os.path.join(workdir, "model.onnx")
    feeds = dict(np.load(os.path.join(workdir, "inputs.npz")))
    gc.collect()
    out = {"kind": kind, "threads": threads, "rss_before_session": _rss_now(), "onnxruntime": onnxruntime.__version__,
           "engine_path": os.path.dirname(os.path.dirname(engine.__file__))}
    # both get the file's path and read it themselves
    if kind == "engine":
        sess = mc.engine_session(model, threads)
        sess.run(feeds)
    elif kind == "onnxruntime":
        sess = mc.ort_session(model, threads)
        sess.run(None, feeds)
    out["rss_after_run"] = _rss_now()
    out["peak_rss"] = _peak_rss()
    if kind == "engine":  # after the peak is taken: this second, instrumented run adds its own allocations
        out.update(live_activations(sess, feeds))
    return out


def prepare(workdir: str, quick: bool) -> dict:
    """Builds the model (tests/model_zoo.py) and writes it and its input to `workdir`; returns its sizes."""
    import numpy as np

    model_bytes, feeds = _models_common().load("resnet50", quick)
    import onnx

    weights = sum(int(np.prod(t.dims, dtype=np.int64)) * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.data_type))
                  .itemsize for t in onnx.load_from_string(model_bytes).graph.initializer)
    Path(workdir, "model.onnx").write_bytes(model_bytes)
    np.savez(os.path.join(workdir, "inputs.npz"), **feeds)
    return {"weight_bytes": weights, "model_bytes": len(model_bytes), "quick": quick,
            "inputs": {k: list(v.shape) for k, v in feeds.items()}}


def run_child(kind: str, args, workdir: str) -> dict:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "ENGINE_NUM_THREADS"):
        env[var] = str(args.threads)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--threads", str(args.threads),
           "--workdir", workdir]
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"memory_resnet50: the {kind} child failed (exit {proc.returncode}); its error is above")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(x) -> str:
    return "n/a" if x is None or x < 0 else f"{x / MB:.1f}"


def report(info: dict, runs: dict, markdown: bool) -> str:
    mc = _models_common()
    base = runs["baseline"]
    eng = runs.get("engine", {})
    headers = ["child", "peak RSS MB", "peak - baseline MB", "RSS before session MB", "RSS after run MB"]
    rows = []
    for kind in KINDS:
        r = runs.get(kind)
        if r is None:
            continue
        rows.append([kind, _mb(r["peak_rss"]), "-" if kind == "baseline" else _mb(r["peak_rss"] - base["peak_rss"]),
                     _mb(r["rss_before_session"]), _mb(r["rss_after_run"])])
    what = ("the small test-size bottleneck ResNet (--quick)" if info["quick"] else "ResNet-50") + \
        f", input {' '.join('x'.join(map(str, s)) for s in info['inputs'].values())}"
    title = (f"Peak RSS of loading and one inference, {what}, {base['threads']} thread(s); engine from "
             f"{base['engine_path']}, onnxruntime {base['onnxruntime']}; each row a fresh subprocess")
    lines = mc.table(title, headers, rows, markdown, left_first=True)
    lines += ["", f"weights (initializers): {_mb(info['weight_bytes'])} MB; model file {_mb(info['model_bytes'])} MB"]
    if eng:
        lines.append(f"engine plan: constants held {_mb(eng['plan_constant_bytes'])} MB; largest set of simultaneously "
                     f"live activations {_mb(eng['peak_live_bytes'])} MB (at {eng['peak_at']}, of {eng['steps']} "
                     "steps)")
    return "\n".join(lines)


def main(argv=None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1, help="threads for both runtimes (default 1)")
    p.add_argument("--quick", action="store_true", help="the small test-size model instead (smoke run)")
    p.add_argument("--markdown", action="store_true", help="markdown table")
    p.add_argument("--json", metavar="PATH", help="also write the raw figures here")
    p.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    p.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if not 1 <= args.threads <= 1024:
        p.error(f"--threads must be from 1 to 1024, got {args.threads}")
    if args.child:
        print(json.dumps(child(args.child, args.threads, args.workdir)))
        return 0
    if args.prepare:
        print(json.dumps(prepare(args.workdir, args.quick)))
        return 0
    with tempfile.TemporaryDirectory(prefix="engine-mem-") as workdir:
        # the model is built in a child too: Linux carries a process's peak RSS over fork and exec, so children of
        # a parent that had built the model would all report at least the parent's peak
        cmd = [sys.executable, str(Path(__file__).resolve()), "--prepare", "--workdir", workdir]
        proc = subprocess.run(cmd + (["--quick"] if args.quick else []), stdout=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"memory_resnet50: building the model failed (exit {proc.returncode}); see above")
        info = json.loads(proc.stdout.strip().splitlines()[-1])
        runs = {}
        for kind in KINDS:
            print(f"running the {kind} child ...", file=sys.stderr, flush=True)
            runs[kind] = run_child(kind, args, workdir)
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "runs": runs}))
    print(report(info, runs, args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
