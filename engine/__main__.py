"""Command line: `python -m engine info` prints the CPU features and the kernel each slot uses;
`python -m engine demo` runs the bundled CNN on its digit test set (predictions, accuracy, timing);
`python -m engine run MODEL` runs any ONNX model and summarizes its outputs;
`python -m engine example` runs the bundled GEMM example."""
from __future__ import annotations

import argparse
import sys


def print_info() -> None:
    import engine

    info = engine.cpu_info()
    print(f"engine {engine.__version__} on {info['arch']}")
    print(f"  active ISA:     {info['active_isa']} (CPU max {info['max_isa']}; compiled: "
          f"{', '.join(info['compiled_isas'])}; runnable here: {', '.join(info['supported_isas'])})")
    print(f"  threads:        {info['num_threads']} (usable CPUs {info['usable_cpus']})")
    feats = [k for k, v in info["features"].items() if v]
    print(f"  CPU features:   {' '.join(feats) if feats else '(none detected)'}")
    print("  kernels:")
    for row in engine.kernel_info():
        print(f"    {row['kernel']:<16} {row['isa']}")


def _run_doc() -> str:
    from engine import cli_run

    return cli_run.__doc__


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    sub = p.add_subparsers(dest="cmd")
    sub.add_parser("info", help="print CPU features and the kernel table")
    ex = sub.add_parser("example", help="run the bundled GEMM example (checks against numpy, prints GFLOP/s)")
    ex.add_argument("--size", type=int, default=1024)
    de = sub.add_parser("demo", help="run the bundled CNN on its held-out digit images: predictions, accuracy, "
                        "timing (and onnxruntime's, when installed)")
    de.add_argument("--batch", type=int, default=100, help="images per run (default 100)")
    de.add_argument("--runs", type=int, default=50, help="runs of the batch-1 latency measurement (default 50)")
    de.add_argument("--threads", type=int, default=None, help="engine threads (default: engine's pool size)")
    de.add_argument("--min-accuracy", type=float, default=0.97,
                    help="exit with status 1 below this accuracy (default 0.97; the model reaches 0.997)")
    de.add_argument("--images", type=int, default=None, help="use only the first N test images (default: all 1000)")
    de.add_argument("--no-compare", action="store_true", help="do not run onnxruntime even if installed")
    ru = sub.add_parser("run", help="run an ONNX model: inputs from .npy files or random, output shapes and "
                        "summaries, timing", description=_run_doc())
    ru.add_argument("model", metavar="MODEL", help="path of an .onnx file")
    ru.add_argument("--input", "-i", action="append", metavar="NAME=FILE.npy",
                    help="an input's values (repeatable); FILE.npz alone gives every array in it by name")
    ru.add_argument("--output", "-o", action="append", metavar="NAME", help="compute only these outputs (repeatable)")
    ru.add_argument("--dim", action="append", metavar="NAME=SIZE",
                    help="size of a symbolic dimension for random inputs (repeatable; default 1)")
    ru.add_argument("--threads", type=int, default=None, help="engine threads (default: engine's pool size)")
    ru.add_argument("--repeat", type=int, default=5, help="timed runs after the first (default 5)")
    ru.add_argument("--save", metavar="OUT.npz", help="write the outputs to this .npz file")
    ru.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    ru.add_argument("--compare", action="store_true",
                    help="also run onnxruntime on the same inputs and print the largest difference per output")
    args = p.parse_args(argv)
    if args.cmd in (None, "info"):
        print_info()
        return 0
    if args.cmd == "example":
        from engine.example import run_example

        return run_example(args.size)
    if args.cmd == "demo":
        from engine.demo import run_demo

        return run_demo(batch=args.batch, runs=args.runs, threads=args.threads, min_accuracy=args.min_accuracy,
                        compare=not args.no_compare, limit=args.images)
    if args.cmd == "run":
        from engine.cli_run import run_model

        return run_model(args.model, inputs=args.input, outputs=args.output, dims=args.dim, threads=args.threads,
                         repeat=args.repeat, save=args.save, seed=args.seed, compare=args.compare)
    return 2


if __name__ == "__main__":
    sys.exit(main())
