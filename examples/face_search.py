"""Face search end to end (1:N matching): an ONNX embedding model run by engine, its embeddings enrolled in an
engine.Gallery, then queried.

    python examples/face_search.py                     # engine runs the model; f32 gallery
    python examples/face_search.py --dtype f16 -k 3    # float16 gallery, top-3
    python examples/face_search.py --gallery-file /tmp/faces.egal   # save, reload memory-mapped, then search
    python examples/face_search.py --runtime onnxruntime            # the same model on onnxruntime instead
    python examples/face_search.py --model my_embedder.onnx --input-size 112   # your own model (NCHW float32)

Without --model the script builds a small embedding network with onnx.helper (fixed seed; --arch mlp: Flatten,
Gemm -> 256, Relu, Gemm -> 256, Relu, Gemm -> 128-d; --arch conv: Conv 3->16, Relu, Conv 16->32 stride 2, Relu,
AveragePool 4x4, Flatten, Gemm -> 128-d) and synthetic "face" images: every identity is a
random smooth image, and its photos are that image with a brightness/contrast change and sensor noise.
Two photos of each identity are enrolled; the queries are new photos of some identities plus unknown people.
A query is a match when its best cosine similarity reaches --threshold (default: halfway between the typical
same-identity and different-identity scores of this network), otherwise "unknown".

Pipeline, as in a real face system: detect/crop (here: the synthetic crops), embed (the ONNX model), L2-normalize
and compare with the gallery by cosine similarity (Gallery does both), top-k. Exit status 0 when every known query
finds its identity first and no unknown query is accepted; 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def build_embedder(size: int = 32, dim: int = 128, arch: str = "mlp", seed: int = 0):
    """A small, fixed-seed embedding model (onnx ModelProto): image (N,3,size,size) float32 -> (N,dim).

    arch "mlp": Flatten, Gemm -> 256, Relu, Gemm -> 256, Relu, Gemm -> dim.
    arch "conv": Conv 3->16, Relu, Conv 16->32 stride 2, Relu, AveragePool 4x4, Flatten, Gemm -> dim."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    r = np.random.default_rng(seed)

    def he(*shape):
        fan_in = int(np.prod(shape[1:]))
        return (r.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    def init(name, a):
        inits.append(numpy_helper.from_array(a, name))
        return name

    inits: list = []
    if arch == "conv":
        s2 = (size + 1) // 2  # after the stride-2 conv
        pooled = s2 // 4
        nodes = [
            helper.make_node("Conv", ["image", init("w1", he(16, 3, 3, 3)), init("b1", np.zeros(16, np.float32))],
                             ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["c1"], ["r1"]),
            helper.make_node("Conv", ["r1", init("w2", he(32, 16, 3, 3)), init("b2", np.zeros(32, np.float32))],
                             ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[2, 2]),
            helper.make_node("Relu", ["c2"], ["r2"]),
            helper.make_node("AveragePool", ["r2"], ["p"], kernel_shape=[4, 4], strides=[4, 4]),
            helper.make_node("Flatten", ["p"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", init("w3", he(dim, 32 * pooled * pooled)),
                                      init("b3", np.zeros(dim, np.float32))], ["embedding"], transB=1),
        ]
    elif arch == "mlp":
        n_in = 3 * size * size
        nodes = [
            helper.make_node("Flatten", ["image"], ["f"], axis=1),
            helper.make_node("Gemm", ["f", init("w1", he(256, n_in)), init("b1", np.zeros(256, np.float32))], ["h1"],
                             transB=1),
            helper.make_node("Relu", ["h1"], ["r1"]),
            helper.make_node("Gemm", ["r1", init("w2", he(256, 256)), init("b2", np.zeros(256, np.float32))], ["h2"],
                             transB=1),
            helper.make_node("Relu", ["h2"], ["r2"]),
            helper.make_node("Gemm", ["r2", init("w3", he(dim, 256)), init("b3", np.zeros(dim, np.float32))],
                             ["embedding"], transB=1),
        ]
    else:
        raise ValueError(f"unknown arch {arch!r}")
    graph = helper.make_graph(nodes, f"face_embedder_{arch}",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, size, size])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="engine-example")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def synthetic_faces(n_ids: int, size: int, seed: int = 1):
    """One smooth random base image per identity, and a function drawing a new "photo" of identity i."""
    r = np.random.default_rng(seed)
    low = r.standard_normal((n_ids, 3, 4, 4)).astype(np.float32)
    base = low.repeat((size + 3) // 4, axis=2).repeat((size + 3) // 4, axis=3)[:, :, :size, :size]
    base += 0.1 * r.standard_normal(base.shape).astype(np.float32)  # texture

    def photo(i, rng):
        img = base[i] * rng.uniform(0.8, 1.2) + rng.uniform(-0.1, 0.1)  # exposure
        return (img + 0.15 * rng.standard_normal(img.shape)).astype(np.float32)  # sensor noise

    return photo


def make_runner(model, runtime: str):
    """embed(images) -> (N, dim) float32 with the chosen runtime."""
    if runtime == "engine":
        import engine

        problems = engine.check(model)
        if problems:
            raise SystemExit("engine cannot run this model yet:\n" + "\n".join(f"  {p}" for p in problems) +
                             "\n(try --runtime onnxruntime, or --arch mlp)")
        sess = engine.Session(model)
        name = sess.get_inputs()[0].name
        out = sess.get_outputs()[0].name
        return lambda x: sess.run({name: x})[out]
    import onnxruntime as ort

    data = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda x: sess.run(None, {name: x})[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runtime", choices=["engine", "onnxruntime"], default="engine",
                   help="what runs the embedding model (default engine)")
    p.add_argument("--model", help="an ONNX embedding model (one NCHW float32 input, one (N, d) output); default: "
                   "the built-in network")
    p.add_argument("--arch", choices=["mlp", "conv"], default="mlp",
                   help="built-in network: mlp (Flatten/Gemm/Relu, default) or conv (Conv/Relu/AveragePool/Gemm)")
    p.add_argument("--input-size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--identities", type=int, default=50, help="people enrolled (default 50)")
    p.add_argument("--unknown", type=int, default=5, help="queries of people not enrolled (default 5)")
    p.add_argument("--queries", type=int, default=10, help="queries of enrolled people (default 10)")
    p.add_argument("--dtype", choices=["f32", "f16", "i8"], default="f32", help="gallery storage (default f32)")
    p.add_argument("-k", type=int, default=3, help="results per query (default 3)")
    p.add_argument("--threshold", type=float, default=None, help="match threshold on cosine similarity")
    p.add_argument("--gallery-file", help="save the gallery here, then search the reloaded (memory-mapped) copy")
    args = p.parse_args(argv)
    if args.identities < 1 or args.queries < 0 or args.unknown < 0 or args.k < 1 or args.input_size < 8:
        p.error("need --identities >= 1, --queries/--unknown >= 0, -k >= 1, --input-size >= 8")
    args.queries = min(args.queries, args.identities)

    import engine

    model = args.model or build_embedder(args.input_size, arch=args.arch)
    embed = make_runner(model, args.runtime)
    photo = synthetic_faces(args.identities + args.unknown, args.input_size)
    rng = np.random.default_rng(2)

    # enroll: two photos per identity, ids = person numbers (duplicates on purpose: one row per photo)
    people = np.repeat(np.arange(args.identities), 2)
    t0 = time.perf_counter()
    enroll = embed(np.stack([photo(i, rng) for i in people]))
    t_embed = time.perf_counter() - t0
    gallery = engine.Gallery(enroll, ids=people, dtype=args.dtype)
    print(f"embedding model run by {args.runtime}: {len(people)} photos -> {enroll.shape[1]}-d embeddings in "
          f"{t_embed * 1e3:.1f} ms; {gallery}")
    if args.gallery_file:
        gallery.save(args.gallery_file)
        gallery = engine.Gallery.load(args.gallery_file, mmap=True)
        print(f"saved to {args.gallery_file} ({os.path.getsize(args.gallery_file)} bytes), reloaded memory-mapped")

    # threshold: halfway between same-person and different-person similarity of fresh photos
    if args.threshold is None:
        a = embed(np.stack([photo(i, rng) for i in range(min(args.identities, 20))]))
        b = embed(np.stack([photo(i, rng) for i in range(min(args.identities, 20))]))
        same = engine.cosine_similarity(a, b)
        diff = engine.cosine_similarity(a, np.roll(b, 1, axis=0)) if len(a) > 1 else same - 1
        args.threshold = float((np.median(same) + np.percentile(diff, 99)) / 2)
        print(f"threshold {args.threshold:.3f} (same person: median {np.median(same):.3f}; different people: "
              f"99th percentile {np.percentile(diff, 99):.3f})")

    known = rng.choice(args.identities, args.queries, replace=False)
    unknown = args.identities + np.arange(args.unknown)
    who = np.concatenate([known, unknown])
    q = embed(np.stack([photo(i, rng) for i in who]))
    t0 = time.perf_counter()
    scores, ids = gallery.search(q, k=args.k)
    t_search = time.perf_counter() - t0
    print(f"searched {len(q)} queries in {t_search * 1e3:.2f} ms\n")
    errors = 0
    for j, person in enumerate(who):
        enrolled = person < args.identities
        hit = scores[j, 0] >= args.threshold
        answer = f"person {ids[j, 0]}" if hit else "unknown"
        ok = (hit and ids[j, 0] == person) if enrolled else not hit
        errors += not ok
        top = ", ".join(f"{i}:{s:.3f}" for i, s in zip(ids[j], scores[j]))
        truth = f"person {person}" if enrolled else "not enrolled"
        print(f"query {j:2d} ({truth:>12}): {answer:<10} {'ok' if ok else 'WRONG'}   top-{args.k} [{top}]")
    print(f"\n{len(who) - errors}/{len(who)} queries answered correctly")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
