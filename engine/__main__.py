"""Command line: `python -m engine info` prints the CPU features and the kernel each slot uses;
`python -m engine demo` runs the bundled CNN on its digit test set (predictions, accuracy, timing);
`python -m engine run MODEL` runs any ONNX model and summarizes its outputs;
`python -m engine example` runs the bundled GEMM example; `python -m engine search` enrolls embeddings into a
gallery file and searches it (see `python -m engine search --help`)."""
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
SEARCH_HELP = """Enroll embeddings into a gallery file, or search one (cosine similarity, top-k).

  python -m engine search --gallery faces.egal --enroll emb.npy [--ids ids.npy] [--dtype f16]
  python -m engine search --gallery faces.egal queries.npy [-k 5]
  python -m engine search --gallery faces.egal --model embedder.onnx images.npy [-k 5]

Embeddings are .npy arrays (n, d) (or one vector (d,)); ids an .npy of n integers (default 0..n-1, or continuing
after the gallery's largest id when --enroll adds to an existing file). With --model, the .npy holds the model's
input (e.g. face crops, N x 3 x H x W float32) and engine runs the model to get the embeddings first."""


def search_command(args) -> int:
    import numpy as np

    import engine

    def embeddings(path):
        x = np.load(path)
        if args.model:
            sess = engine.Session(args.model)
            out = sess.run({sess.get_inputs()[0].name: x})
            x = next(iter(out.values())) if len(out) == 1 else out[sess.get_outputs()[0].name]
        return x

    if args.enroll:
        import os

        emb = embeddings(args.enroll)
        ids = np.load(args.ids) if args.ids else None
        if os.path.exists(args.gallery):
            g = engine.Gallery.load(args.gallery, mmap=False)
            g.add(emb, ids)
        else:
            g = engine.Gallery(emb, ids, dtype=args.dtype)
        g.save(args.gallery)
        print(f"{args.gallery}: {g}")
        return 0
    if not args.queries:
        print("python -m engine search: give a queries .npy (or --enroll EMB.npy)", file=sys.stderr)
        return 2
    g = engine.Gallery.load(args.gallery, mmap=True)
    q = embeddings(args.queries)
    scores, ids = g.search(q, args.k)
    if scores.ndim == 1:
        scores, ids = scores[None], ids[None]
    for j in range(len(scores)):
        print(f"query {j}: " + ", ".join(f"{i} ({s:.4f})" for i, s in zip(ids[j], scores[j])))
    return 0


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
    se = sub.add_parser("search", help="enroll embeddings into a gallery file, or search it (top-k cosine)",
                        description=SEARCH_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    se.add_argument("queries", nargs="?", help=".npy of query embeddings (or model inputs with --model)")
    se.add_argument("--gallery", required=True, help="gallery file (engine.Gallery.save format)")
    se.add_argument("--enroll", help=".npy of embeddings to add to the gallery file (created if missing)")
    se.add_argument("--ids", help=".npy of integer ids for --enroll")
    se.add_argument("--dtype", choices=["f32", "f16", "i8"], default="f32", help="storage of a new gallery")
    se.add_argument("--model", help="ONNX model that turns the .npy inputs into embeddings (run by engine)")
    se.add_argument("-k", type=int, default=5, help="results per query (default 5)")
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
    if args.cmd == "search":
        return search_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
