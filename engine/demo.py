"""The bundled demo: a small CNN (engine/data/demo_cnn.onnx) classifies the 1000 held-out 16x16 digit images in
engine/data/demo_digits.npz on engine's ONNX executor, and prints a few predictions, the accuracy and the
timing, next to onnxruntime's when it is installed. Run it with `python -m engine demo`.

Both files are made by scripts/make_demo_model.py (a procedurally rendered digit set, a CNN trained in numpy;
see the model's doc_string). The exit status is 1 when the accuracy falls below --min-accuracy or engine's
probabilities differ from onnxruntime's by more than 1e-3, so CI notices a broken executor.
"""
from __future__ import annotations

import os
import statistics
import time

import numpy as np

MODEL_FILE = "demo_cnn.onnx"
DATA_FILE = "demo_digits.npz"
_SHADES = " .:-=+*#%@"
MAX_PROB_DIFF = 1e-3  # engine vs onnxruntime, float32 probabilities


def data_path(name: str) -> str:
    """Path of a file bundled in engine/data (the wheel ships them as package data)."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", name)


def load_test_set() -> tuple[np.ndarray, np.ndarray]:
    """The held-out test set: images uint8 [N, 16, 16], labels uint8 [N]."""
    with np.load(data_path(DATA_FILE)) as z:
        return z["images"], z["labels"]


def to_input(images_u8: np.ndarray) -> np.ndarray:
    """uint8 images [N, H, W] -> the model's input, float32 [N, 1, H, W] with pixel values / 255."""
    return (images_u8.astype(np.float32) / np.float32(255.0))[:, None, :, :]


def ascii_image(img: np.ndarray) -> list[str]:
    """One text line per pixel row, two characters per pixel (terminal cells are about twice as tall as wide).
    The median (background) level maps to blank and the brightest pixel to '@', so noise does not hide the digit."""
    f = img.astype(np.float64)
    lo, hi = float(np.median(f)), float(f.max())
    level = np.clip((f - lo) / max(hi - lo, 1.0), 0.0, 1.0)
    idx = np.minimum((level * len(_SHADES)).astype(int), len(_SHADES) - 1)
    return ["".join(_SHADES[i] * 2 for i in row) for row in idx]


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms"


class _Runner:
    """Runs the model over the test set and times it; `fn(x) -> probs` is engine's or onnxruntime's session."""

    def __init__(self, fn):
        self.fn = fn

    def predict_all(self, x: np.ndarray, batch: int) -> tuple[np.ndarray, list[float]]:
        self.fn(x[:batch])  # warm-up: first-call set-up (memory plans, thread start) is not what we time
        probs, times = [], []
        for i in range(0, len(x), batch):
            t = time.perf_counter()
            probs.append(self.fn(x[i:i + batch]))
            times.append(time.perf_counter() - t)
        return np.concatenate(probs), times

    def latency1(self, x1: np.ndarray, runs: int) -> float:
        self.fn(x1)
        ts = []
        for _ in range(runs):
            t = time.perf_counter()
            self.fn(x1)
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)


def _report(name: str, probs: np.ndarray, labels: np.ndarray, times: list[float], batch: int, lat1: float,
            runs: int) -> float:
    acc = float((probs.argmax(1) == labels).mean())
    n = len(labels)
    per_batch = statistics.median(times)
    print(f"{name}: accuracy {round(acc * n)}/{n} = {acc:.4f}")
    print(f"{' ' * len(name)}  batch of {batch}: median {_fmt_ms(per_batch)} per batch, "
          f"{per_batch / batch * 1e6:.1f} us per image ({n / sum(times):,.0f} images/s over the set)")
    print(f"{' ' * len(name)}  batch of 1: median latency {_fmt_ms(lat1)} over {runs} runs")
    return acc


def run_demo(batch: int = 100, runs: int = 50, threads: int | None = None, min_accuracy: float = 0.97,
             show: int = 2, compare: bool = True, limit: int | None = None) -> int:
    import engine

    if batch < 1 or runs < 1 or (limit is not None and limit < 1):
        print("demo: --batch, --runs and --images must be positive")
        return 2
    if threads is not None:
        if threads < 1:
            print("demo: --threads must be positive")
            return 2
        engine.set_num_threads(threads)
    nthreads = engine.get_num_threads()
    model_path = data_path(MODEL_FILE)
    images, labels = load_test_set()
    if limit is not None:  # the first `limit` images (a quick run, e.g. under CPU emulation)
        images, labels = images[:limit], labels[:limit]
    x = to_input(images)
    batch = min(batch, len(labels))
    print(f"engine {engine.__version__} demo: a small CNN classifying {images.shape[1]}x{images.shape[2]} digit "
          f"images ({os.path.getsize(model_path) / 1024:.0f} KB model, {len(labels)} held-out test images)")
    print(f"  active ISA {engine.cpu_info()['active_isa']}, {nthreads} thread(s); model {model_path}")

    try:
        sess = engine.Session(model_path)
    except engine.EngineError as e:  # e.g. an op the executor does not implement yet: say so, no traceback
        print(f"demo: engine cannot load the demo model: {e}")
        print("demo: FAILED")
        return 1
    def decl(v):
        dims = "?" if v.shape is None else "[" + ", ".join("?" if d is None else str(d) for d in v.shape) + "]"
        return f"{v.name} {'?' if v.dtype is None else np.dtype(v.dtype).name} {dims}"

    ins = ", ".join(decl(i) for i in sess.inputs)
    outs = ", ".join(decl(o) for o in sess.outputs)
    print(f"  inputs: {ins}  ->  outputs: {outs}")
    in_name, out_name = sess.inputs[0].name, sess.outputs[0].name

    def eng_fn(xb):
        return sess.run({in_name: xb}, [out_name])[out_name]

    runner = _Runner(eng_fn)
    probs, times = runner.predict_all(x, batch)
    pred = probs.argmax(1)
    conf = probs.max(1)

    # A few predictions, with pictures of the first images and of any the model got wrong.
    wrong = np.flatnonzero(pred != labels)
    first = list(range(min(show, len(labels))))
    pics = first + [int(i) for i in wrong if i not in first][:show]
    width = 2 * images.shape[2]
    for k in range(0, len(pics), 2):  # two pictures per row: fits an 80-column terminal
        row = pics[k:k + 2]
        cols = [ascii_image(images[i]) for i in row]
        print()
        heads = [f"#{i} true {labels[i]} pred {pred[i]} ({conf[i]:.2f}){' WRONG' if pred[i] != labels[i] else ''}"
                 for i in row]
        print("   ".join(h[:width].ljust(width) for h in heads).rstrip())
        for r in range(images.shape[1]):
            print("   ".join(c[r] for c in cols).rstrip())
    k = min(12, len(labels))
    print()
    print("  image     " + " ".join(f"{i:>5}" for i in range(k)))
    print("  true      " + " ".join(f"{labels[i]:>5}" for i in range(k)))
    print("  predicted " + " ".join(f"{pred[i]:>5}" for i in range(k)))
    print("  confidence" + " ".join(f"{conf[i]:>5.2f}" for i in range(k)))
    print()

    lat1 = runner.latency1(x[:1], runs)
    acc = _report("engine", probs, labels, times, batch, lat1, runs)
    ok = acc >= min_accuracy
    if not ok:
        print(f"demo: accuracy {acc:.4f} is below the sanity threshold {min_accuracy}: engine computes the model "
              "wrongly")

    if compare:
        try:
            import onnxruntime as ort
        except ImportError:
            print("onnxruntime is not installed: no comparison (pip install onnxruntime)")
        else:
            so = ort.SessionOptions()
            so.intra_op_num_threads = nthreads
            osess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])

            def ort_fn(xb):
                return osess.run([out_name], {in_name: xb})[0]

            o_runner = _Runner(ort_fn)
            oprobs, otimes = o_runner.predict_all(x, batch)
            olat1 = o_runner.latency1(x[:1], runs)
            _report(f"onnxruntime {ort.__version__}", oprobs, labels, otimes, batch, olat1, runs)
            diff = float(np.abs(probs.astype(np.float64) - oprobs).max())
            agree = int((oprobs.argmax(1) == pred).sum())
            print(f"engine vs onnxruntime: max |probs difference| {diff:.2e}, same prediction on {agree}/{len(pred)}; "
                  f"engine time / onnxruntime time: batch of {batch} "
                  f"{statistics.median(times) / statistics.median(otimes):.2f}, batch of 1 {lat1 / olat1:.2f} "
                  "(below 1 = engine faster)")
            if not diff <= MAX_PROB_DIFF:
                print(f"demo: engine's probabilities differ from onnxruntime's by {diff:.2e} (> {MAX_PROB_DIFF})")
                ok = False
    print("demo: OK" if ok else "demo: FAILED")
    return 0 if ok else 1
