"""Make engine's bundled demo: a small CNN that reads 16x16 digit images, and a held-out test set for it.

    python scripts/make_demo_model.py            # writes engine/data/demo_cnn.onnx and engine/data/demo_digits.npz
    python scripts/make_demo_model.py --check    # makes both in memory and compares them with the committed files

Nothing is downloaded and only numpy and onnx are needed:
- The data set is rendered here: ten digits from a hand-written 5x7 bitmap font (two glyph variants per digit),
  each drawn with a random affine map (scale, aspect, rotation, shear, shift), a random stroke thickness,
  random ink and background levels and pixel noise, anti-aliased (2x2 supersampling) and stored as uint8.
- The CNN is trained here, in numpy (hand-written forward and backward passes, im2col convolutions, Adam):
  Conv3x3(1->16) -> BatchNormalization -> Relu -> MaxPool2 -> Conv3x3(16->32) -> Relu -> MaxPool2 -> Flatten ->
  Gemm(512->10) -> Softmax.
- It is exported with onnx.helper: opset 17, IR version 8, input "image" float32 [N, 1, 16, 16] (pixels / 255),
  output "probs" float32 [N, 10].

Everything is seeded and single-threaded (BLAS threads are pinned to 1 before numpy loads), so two runs on one
machine write byte-identical files. Another BLAS or CPU may round differently during training and end with
slightly different weights; the committed files are the reference (`--check` says whether this machine
reproduces them).
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one core, and the same summation order on every run

import argparse  # noqa: E402
import io  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402

import numpy as np  # noqa: E402

SIZE = 16  # images are SIZE x SIZE
N_TRAIN = 16000
N_TEST = 1000
SEED = 20261121
DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "engine", "data")
MODEL_FILE = "demo_cnn.onnx"
DATA_FILE = "demo_digits.npz"

# ---------------------------------------------------------------------------------------------------------------
# The font: 5 columns x 7 rows per glyph, two variants per digit ('#' = ink).
GLYPHS = {
    0: ["""
.###.
#...#
#..##
#.#.#
##..#
#...#
.###.""", """
.###.
#...#
#...#
#...#
#...#
#...#
.###."""],
    1: ["""
..#..
.##..
..#..
..#..
..#..
..#..
.###.""", """
..#..
.##..
#.#..
..#..
..#..
..#..
..#.."""],
    2: ["""
.###.
#...#
....#
...#.
..#..
.#...
#####""", """
.###.
#...#
....#
..##.
.#...
#....
#####"""],
    3: ["""
#####
...#.
..#..
...#.
....#
#...#
.###.""", """
.###.
#...#
....#
..##.
....#
#...#
.###."""],
    4: ["""
...#.
..##.
.#.#.
#..#.
#####
...#.
...#.""", """
#..#.
#..#.
#..#.
#####
...#.
...#.
...#."""],
    5: ["""
#####
#....
####.
....#
....#
#...#
.###.""", """
#####
#....
#....
####.
....#
....#
####."""],
    6: ["""
..##.
.#...
#....
####.
#...#
#...#
.###.""", """
.###.
#....
#....
####.
#...#
#...#
.###."""],
    7: ["""
#####
....#
...#.
..#..
.#...
.#...
.#...""", """
#####
....#
...#.
.###.
..#..
.#...
.#..."""],
    8: ["""
.###.
#...#
#...#
.###.
#...#
#...#
.###.""", """
.###.
#...#
.#.#.
..#..
.#.#.
#...#
.###."""],
    9: ["""
.###.
#...#
#...#
.####
....#
...#.
.##..""", """
.###.
#...#
#...#
.####
....#
....#
.###."""],
}
PAD = 2  # zero border around each glyph bitmap, so sampling outside it reads background


def glyph_bank() -> np.ndarray:
    """All glyphs as float32 [10, 2, 7 + 2 PAD, 5 + 2 PAD] (digit, variant, row, column), 1.0 = ink."""
    bank = np.zeros((10, 2, 7 + 2 * PAD, 5 + 2 * PAD), np.float32)
    for d, variants in GLYPHS.items():
        for v, text in enumerate(variants):
            rows = text.strip().splitlines()
            assert len(rows) == 7 and all(len(r) == 5 for r in rows), (d, v)
            bank[d, v, PAD:PAD + 7, PAD:PAD + 5] = np.array([[c == "#" for c in r] for r in rows], np.float32)
    return bank


def render_digits(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` random digit images, uint8 [count, SIZE, SIZE], and their labels, uint8 [count]."""
    bank = glyph_bank()
    labels = rng.integers(0, 10, count)
    variant = rng.integers(0, 2, count)
    # The forward map glyph -> image is A = R(rot) @ Shear(sh) @ diag(sx, sy); sample with its inverse.
    sy = rng.uniform(1.35, 1.8, count)  # image pixels per glyph unit (a glyph is 7 units tall)
    sx = sy * rng.uniform(0.8, 1.25, count)
    rot = np.deg2rad(rng.uniform(-15, 15, count))
    sh = rng.uniform(-0.25, 0.25, count)
    tx = rng.uniform(-1.6, 1.6, count)
    ty = rng.uniform(-1.3, 1.3, count)
    c, s = np.cos(rot), np.sin(rot)
    a = np.empty((count, 2, 2))
    a[:, 0, 0], a[:, 0, 1] = c * sx, (c * sh - s) * sy
    a[:, 1, 0], a[:, 1, 1] = s * sx, (s * sh + c) * sy
    ainv = np.linalg.inv(a)
    # 2x2 sub-pixel sample points, centred on the image centre.
    sub = (np.arange(2 * SIZE) + 0.5) / 2.0 - SIZE / 2.0
    py, px = np.meshgrid(sub, sub, indexing="ij")
    dx = px[None] - tx[:, None, None]
    dy = py[None] - ty[:, None, None]
    gx = ainv[:, 0, 0, None, None] * dx + ainv[:, 0, 1, None, None] * dy + 2.5 + PAD - 0.5
    gy = ainv[:, 1, 0, None, None] * dx + ainv[:, 1, 1, None, None] * dy + 3.5 + PAD - 0.5
    h, w = bank.shape[2:]
    gx = np.clip(gx, 0, w - 1.001)
    gy = np.clip(gy, 0, h - 1.001)
    x0, y0 = np.floor(gx).astype(np.intp), np.floor(gy).astype(np.intp)
    fx, fy = gx - x0, gy - y0
    g = bank[labels, variant]  # [count, h, w]
    n = np.arange(count)[:, None, None]
    val = ((1 - fy) * ((1 - fx) * g[n, y0, x0] + fx * g[n, y0, x0 + 1])
           + fy * ((1 - fx) * g[n, y0 + 1, x0] + fx * g[n, y0 + 1, x0 + 1]))
    # Stroke thickness: the threshold on the interpolated bitmap (low = bold), with a soft edge.
    thr = rng.uniform(0.2, 0.5, count)[:, None, None]
    ink = np.clip((val - thr) / 0.2 + 0.5, 0.0, 1.0)
    ink = ink.reshape(count, SIZE, 2, SIZE, 2).mean(axis=(2, 4))
    bg = rng.uniform(0.0, 0.25, count)[:, None, None]
    fg = rng.uniform(0.65, 1.0, count)[:, None, None]
    noise = rng.normal(0.0, 1.0, (count, SIZE, SIZE)) * rng.uniform(0.02, 0.12, count)[:, None, None]
    img = bg + (fg - bg) * ink + noise
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8), labels.astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# The CNN in numpy. Activations are NHWC during training; the export converts to ONNX's NCHW.
C1, C2, NCLS = 16, 32, 10
BN_EPS = 1e-5


def im2col3(x: np.ndarray) -> np.ndarray:
    """3x3, stride 1, pad 1 patches of NHWC x: [N*H*W, 9*C], column order (ky, kx, c)."""
    n, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = np.empty((n, h, w, 9, c), x.dtype)
    for ky in range(3):
        for kx in range(3):
            cols[:, :, :, ky * 3 + kx, :] = xp[:, ky:ky + h, kx:kx + w, :]
    return cols.reshape(n * h * w, 9 * c)


def col2im3(dcols: np.ndarray, shape: tuple) -> np.ndarray:
    """The adjoint of im2col3: sums patch gradients back into an NHWC gradient of `shape`."""
    n, h, w, c = shape
    d = dcols.reshape(n, h, w, 9, c)
    dxp = np.zeros((n, h + 2, w + 2, c), dcols.dtype)
    for ky in range(3):
        for kx in range(3):
            dxp[:, ky:ky + h, kx:kx + w, :] += d[:, :, :, ky * 3 + kx, :]
    return dxp[:, 1:-1, 1:-1, :]


def maxpool2(x: np.ndarray):
    n, h, w, c = x.shape
    r = x.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)
    idx = r.argmax(axis=-1)  # one winner per window (ties after Relu are common: a mask would double count)
    return np.take_along_axis(r, idx[..., None], -1)[..., 0], idx


def maxpool2_back(dy: np.ndarray, idx: np.ndarray) -> np.ndarray:
    n, h2, w2, c = dy.shape
    d = np.zeros((n, h2, w2, c, 4), dy.dtype)
    np.put_along_axis(d, idx[..., None], dy[..., None], -1)
    return d.reshape(n, h2, w2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, 2 * h2, 2 * w2, c)


def init_params(rng: np.random.Generator) -> dict:
    def he(fan_in, shape):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    flat = (SIZE // 4) * (SIZE // 4) * C2
    return {
        "w1": he(9, (9, C1)), "b1": np.zeros(C1, np.float32),
        "gamma": np.ones(C1, np.float32), "beta": np.zeros(C1, np.float32),
        "w2": he(9 * C1, (9 * C1, C2)), "b2": np.zeros(C2, np.float32),
        "w3": he(flat, (flat, NCLS)) * np.float32(0.5), "b3": np.zeros(NCLS, np.float32),
    }


def forward(p: dict, x: np.ndarray, bn: dict, train: bool):
    """x: float32 NHWC [N, S, S, 1] in [0, 1]. Returns logits and the cache for backward."""
    n = x.shape[0]
    cols1 = im2col3(x)
    z1 = cols1 @ p["w1"] + p["b1"]  # [N*S*S, C1]
    if train:
        mu, var = z1.mean(0), z1.var(0)
        bn["mean"] = 0.9 * bn["mean"] + 0.1 * mu
        bn["var"] = 0.9 * bn["var"] + 0.1 * var * (z1.shape[0] / (z1.shape[0] - 1))
    else:
        mu, var = bn["mean"], bn["var"]
    inv = (1.0 / np.sqrt(var + BN_EPS)).astype(z1.dtype)
    zh = (z1 - mu) * inv
    a1 = np.maximum(zh * p["gamma"] + p["beta"], 0)
    h1, idx1 = maxpool2(a1.reshape(n, SIZE, SIZE, C1))
    cols2 = im2col3(h1)
    z2 = cols2 @ p["w2"] + p["b2"]
    a2 = np.maximum(z2, 0)
    h2, idx2 = maxpool2(a2.reshape(n, SIZE // 2, SIZE // 2, C2))
    f = h2.reshape(n, -1)
    logits = f @ p["w3"] + p["b3"]
    return logits, (cols1, zh, inv, a1, idx1, h1.shape, cols2, a2, idx2, f)


def backward(p: dict, cache, dlogits: np.ndarray) -> dict:
    cols1, zh, inv, a1, idx1, h1_shape, cols2, a2, idx2, f = cache
    n = dlogits.shape[0]
    g = {"w3": f.T @ dlogits, "b3": dlogits.sum(0)}
    dh2 = (dlogits @ p["w3"].T).reshape(n, SIZE // 4, SIZE // 4, C2)
    da2 = maxpool2_back(dh2, idx2).reshape(-1, C2)
    dz2 = da2 * (a2 > 0)
    g["w2"], g["b2"] = cols2.T @ dz2, dz2.sum(0)
    dh1 = col2im3(dz2 @ p["w2"].T, h1_shape)
    da1 = maxpool2_back(dh1, idx1).reshape(-1, C1)
    dbn = da1 * (a1 > 0)
    g["gamma"], g["beta"] = (dbn * zh).sum(0), dbn.sum(0)
    dzh = dbn * p["gamma"]
    m = dzh.shape[0]
    dz1 = inv / m * (m * dzh - dzh.sum(0) - zh * (dzh * zh).sum(0))
    g["w1"], g["b1"] = cols1.T @ dz1, dz1.sum(0)
    return g


def to_input(images_u8: np.ndarray) -> np.ndarray:
    """uint8 [N, S, S] -> the model's float32 input [N, 1, S, S] in [0, 1] (what `engine demo` feeds)."""
    return (images_u8.astype(np.float32) / np.float32(255.0))[:, None, :, :]


def predict(p: dict, bn: dict, images_u8: np.ndarray, batch: int = 500) -> np.ndarray:
    out = []
    for i in range(0, len(images_u8), batch):
        x = to_input(images_u8[i:i + batch]).transpose(0, 2, 3, 1)
        out.append(forward(p, x, bn, train=False)[0])
    return np.concatenate(out)


def train(train_x: np.ndarray, train_y: np.ndarray, rng: np.random.Generator, epochs: int, log) -> tuple:
    p = init_params(rng)
    bn = {"mean": np.zeros(C1, np.float32), "var": np.ones(C1, np.float32)}
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v2 = {k: np.zeros_like(v) for k, v in p.items()}
    b1, b2, eps, wd = 0.9, 0.999, 1e-8, 1e-4
    bs = 64
    steps_per_epoch = len(train_x) // bs
    total = epochs * steps_per_epoch
    step = 0
    for ep in range(epochs):
        order = rng.permutation(len(train_x))
        loss_sum, correct = 0.0, 0
        for i in range(steps_per_epoch):
            sel = order[i * bs:(i + 1) * bs]
            x = to_input(train_x[sel]).transpose(0, 2, 3, 1)
            y = train_y[sel].astype(np.intp)
            logits, cache = forward(p, x, bn, train=True)
            z = logits - logits.max(1, keepdims=True)
            prob = np.exp(z)
            prob /= prob.sum(1, keepdims=True)
            loss_sum += float(-np.log(prob[np.arange(bs), y] + 1e-12).mean())
            correct += int((prob.argmax(1) == y).sum())
            d = prob
            d[np.arange(bs), y] -= 1.0
            grads = backward(p, cache, (d / bs).astype(np.float32))
            step += 1
            lr = 3e-3 * 0.5 * (1 + np.cos(np.pi * step / total))  # cosine decay to 0
            for k in p:
                gk = grads[k] + (wd * p[k] if k.startswith("w") else 0)
                m[k] = b1 * m[k] + (1 - b1) * gk
                v2[k] = b2 * v2[k] + (1 - b2) * gk * gk
                mh = m[k] / (1 - b1 ** step)
                vh = v2[k] / (1 - b2 ** step)
                p[k] = (p[k] - lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)
        log(f"  epoch {ep + 1}/{epochs}: loss {loss_sum / steps_per_epoch:.4f}, "
            f"train accuracy {correct / (steps_per_epoch * bs):.4f}")
    return p, bn


# ---------------------------------------------------------------------------------------------------------------
# Export.
def export_onnx(p: dict, bn: dict, doc: str) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def conv_w(w, cin, cout):  # (ky, kx, c) x o  ->  o x c x ky x kx
        return np.ascontiguousarray(w.reshape(3, 3, cin, cout).transpose(3, 2, 0, 1))

    s4 = SIZE // 4
    # Training flattens NHWC (h, w, c); ONNX's Flatten of NCHW gives (c, h, w). Gemm computes X @ W^T (transB=1).
    w3 = p["w3"].reshape(s4, s4, C2, NCLS).transpose(3, 2, 0, 1).reshape(NCLS, -1)
    inits = {
        "conv1.weight": conv_w(p["w1"], 1, C1), "conv1.bias": p["b1"],
        "bn1.scale": p["gamma"], "bn1.bias": p["beta"],
        "bn1.mean": bn["mean"].astype(np.float32), "bn1.var": bn["var"].astype(np.float32),
        "conv2.weight": conv_w(p["w2"], C1, C2), "conv2.bias": p["b2"],
        "fc.weight": np.ascontiguousarray(w3), "fc.bias": p["b3"],
    }
    conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1])
    pool = dict(kernel_shape=[2, 2], strides=[2, 2])
    nodes = [
        helper.make_node("Conv", ["image", "conv1.weight", "conv1.bias"], ["conv1"], name="conv1", **conv),
        helper.make_node("BatchNormalization", ["conv1", "bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"], ["bn1"],
                         name="bn1", epsilon=BN_EPS),
        helper.make_node("Relu", ["bn1"], ["relu1"], name="relu1"),
        helper.make_node("MaxPool", ["relu1"], ["pool1"], name="pool1", **pool),
        helper.make_node("Conv", ["pool1", "conv2.weight", "conv2.bias"], ["conv2"], name="conv2", **conv),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("MaxPool", ["relu2"], ["pool2"], name="pool2", **pool),
        helper.make_node("Flatten", ["pool2"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "demo_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", NCLS])],
        initializer=[numpy_helper.from_array(v.astype(np.float32), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="engine scripts/make_demo_model.py", producer_version="1",
                              doc_string=doc)
    model.ir_version = 8  # onnxruntime 1.31 reads IR <= 10; 8 is what opset 17 shipped with
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def npz_bytes(arrays: dict) -> bytes:
    """An .npz (np.load reads it) with fixed zip timestamps: np.savez stamps the current time, so it is not
    byte-reproducible."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            b = io.BytesIO()
            np.lib.format.write_array(b, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, b.getvalue(), compresslevel=9)
    return buf.getvalue()


def make(epochs: int, log=print) -> tuple[bytes, bytes, dict]:
    t0 = time.perf_counter()
    rng = np.random.default_rng(SEED)
    train_x, train_y = render_digits(N_TRAIN, rng)
    test_x, test_y = render_digits(N_TEST, rng)
    log(f"rendered {N_TRAIN} training and {N_TEST} test images ({SIZE}x{SIZE}) in {time.perf_counter() - t0:.1f} s")
    t1 = time.perf_counter()
    p, bn = train(train_x, train_y, rng, epochs, log)
    train_s = time.perf_counter() - t1
    acc = float((predict(p, bn, test_x).argmax(1) == test_y).mean())
    log(f"trained {epochs} epochs in {train_s:.1f} s; held-out test accuracy {acc:.4f}")
    doc = (f"engine's demo model, made by scripts/make_demo_model.py (numpy + onnx, seed {SEED}). A CNN that "
           f"classifies {SIZE}x{SIZE} grayscale images of the digits 0-9, rendered procedurally from a 5x7 bitmap "
           f"font with random affine jitter, stroke thickness, contrast and noise. Input 'image': float32 "
           f"[N, 1, {SIZE}, {SIZE}], pixel values / 255. Output 'probs': float32 [N, 10] class probabilities. "
           f"Trained in numpy ({N_TRAIN} images, {epochs} epochs, Adam); accuracy on the {N_TEST} held-out images "
           f"in demo_digits.npz: {acc:.4f}.")
    model = export_onnx(p, bn, doc)
    data = npz_bytes({"images": test_x, "labels": test_y})
    return model, data, {"accuracy": acc, "train_seconds": train_s, "p": p, "bn": bn,
                         "test_x": test_x, "test_y": test_y}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=DATA_DIR, help="directory to write into (default: engine/data)")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--check", action="store_true",
                    help="do not write: compare what this run makes with the files in --out (exit 1 if different)")
    args = ap.parse_args(argv)
    model, data, info = make(args.epochs)
    # The exported graph must compute what the numpy model computes (catches layout slips in the export).
    ref = predict(info["p"], info["bn"], info["test_x"])
    ref = np.exp(ref - ref.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: the export is not cross-checked")
    else:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        got = sess.run(["probs"], {"image": to_input(info["test_x"])})[0]
        diff = float(np.abs(got - ref).max())
        print(f"onnxruntime {ort.__version__} on the exported model: max |probs - numpy| = {diff:.2e}, accuracy "
              f"{float((got.argmax(1) == info['test_y']).mean()):.4f}")
        if diff > 1e-4:
            print("export mismatch", file=sys.stderr)
            return 1
    files = {MODEL_FILE: model, DATA_FILE: data}
    if args.check:
        same = True
        for name, blob in files.items():
            path = os.path.join(args.out, name)
            old = None
            if os.path.exists(path):
                with open(path, "rb") as f:
                    old = f.read()
            print(f"{path}: {'identical' if old == blob else 'DIFFERENT'} ({len(blob)} bytes made)")
            same &= old == blob
        return 0 if same else 1
    os.makedirs(args.out, exist_ok=True)
    for name, blob in files.items():
        path = os.path.join(args.out, name)
        with open(path, "wb") as f:
            f.write(blob)
        print(f"wrote {path} ({len(blob)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
