"""Command line: `python -m engine info` prints the CPU features and the kernel each slot uses;
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine", description=__doc__)
    sub = p.add_subparsers(dest="cmd")
    sub.add_parser("info", help="print CPU features and the kernel table")
    ex = sub.add_parser("example", help="run the bundled GEMM example (checks against numpy, prints GFLOP/s)")
    ex.add_argument("--size", type=int, default=1024)
    args = p.parse_args(argv)
    if args.cmd in (None, "info"):
        print_info()
        return 0
    if args.cmd == "example":
        from engine.example import run_example

        return run_example(args.size)
    return 2


if __name__ == "__main__":
    sys.exit(main())
