"""`python -m engine run MODEL`: run any ONNX model on engine and print what went in, what came out and how long
it took.

Inputs come from .npy files (`--input name=file.npy`, or `--input file.npz` holding arrays named after the
inputs); an input with no file gets random values of its declared dtype and shape, with symbolic dimensions set
by `--dim name=size` (default 1). Mistakes on the command line (a missing file, an unknown input or output name,
bad `name=value` syntax, an input array the model rejects) print one clear line and exit with status 2; a model
that fails to load or run exits with status 1.
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np


class UsageError(Exception):
    """A mistake on the command line: reported without a traceback, exit status 2."""


def _split_pair(spec: str, option: str, what: str) -> tuple[str, str]:
    name, sep, value = spec.partition("=")
    if not sep or not name or not value:
        raise UsageError(f"{option} {spec!r}: expected {what}")
    return name, value


def _load_array(path: str, option: str) -> np.ndarray | dict:
    if not os.path.isfile(path):
        raise UsageError(f"{option}: no such file: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any reader error is the user's file, say which and why
        raise UsageError(f"{option}: cannot read {path} as a numpy .npy/.npz file ({type(e).__name__}: {e})") from None
    if isinstance(data, np.lib.npyio.NpzFile):
        with data:
            return {k: data[k] for k in data.files}
    return data


def parse_dims(specs: list[str]) -> dict[str, int]:
    dims = {}
    for spec in specs or []:
        name, value = _split_pair(spec, "--dim", "NAME=SIZE, e.g. --dim N=8")
        try:
            size = int(value)
        except ValueError:
            size = -1
        if size < 0:
            raise UsageError(f"--dim {spec!r}: the size must be a whole number >= 0")
        dims[name] = size
    return dims


def read_inputs(specs: list[str], declared: list) -> dict[str, np.ndarray]:
    """`--input` values -> {input name: array}; names are checked against the model's inputs."""
    names = [i.name for i in declared]
    out: dict[str, np.ndarray] = {}

    def add(name, arr, where):
        if name not in names:
            raise UsageError(f"--input {where}: the model has no input named {name!r} (its inputs: "
                             f"{', '.join(names) or 'none'})")
        if name in out:
            raise UsageError(f"--input {where}: input {name!r} is given twice")
        out[name] = arr

    for spec in specs or []:
        if "=" not in spec and spec.endswith(".npz"):
            arrays = _load_array(spec, "--input")
            for k, v in arrays.items():
                add(k, v, f"{spec} (array {k!r})")
            continue
        name, path = _split_pair(spec, "--input", "NAME=FILE.npy (or a FILE.npz holding arrays named after the inputs)")
        arr = _load_array(path, f"--input {spec}")
        if isinstance(arr, dict):
            if name in arr:
                arr = arr[name]
            elif len(arr) == 1:
                arr = next(iter(arr.values()))
            else:
                raise UsageError(f"--input {spec}: {path} holds {len(arr)} arrays ({', '.join(arr)}) and none is "
                                 f"named {name!r}")
        add(name, arr, spec)
    return out


def _shape_str(shape) -> str:
    if shape is None:
        return "unknown rank"
    return "[" + ", ".join(str(d) if d is not None else "?" for d in shape) + "]"


def random_input(info, dims: dict[str, int], rng: np.random.Generator, used: set) -> tuple[np.ndarray, str]:
    """Random values of the input's declared dtype and shape; returns the array and a note of what was chosen."""
    kind = getattr(info, "kind", "tensor")
    if kind != "tensor" or info.dtype is None or info.shape is None:
        what = (f"is a {kind}" if kind != "tensor" else "has no declared dtype" if info.dtype is None
                else "has no declared shape")
        raise UsageError(f"input {info.name!r} {what}, so it cannot be filled with random values: give it a file "
                         f"with --input {info.name}=FILE.npy")
    shape, notes = [], []
    for d in info.shape:
        if isinstance(d, (int, np.integer)) and d >= 0:
            shape.append(int(d))
        else:
            key = d if isinstance(d, str) and d else None
            size = dims.get(key, 1) if key is not None else 1
            if key is not None:
                used.add(key)
            notes.append(f"{key if key is not None else '?'}={size}"
                         + ("" if key in dims else " (default; set it with --dim)" if key else " (unnamed dim)"))
            shape.append(size)
    dt = np.dtype(info.dtype)
    if dt.kind == "f":
        arr = rng.standard_normal(shape).astype(dt)
    elif dt.kind in "iu":
        arr = rng.integers(0, 10, shape).astype(dt)
    elif dt.kind == "b":
        arr = rng.random(shape) < 0.5
    else:
        raise UsageError(f"input {info.name!r} has dtype {dt}, which cannot be filled with random values: give it a "
                         f"file with --input {info.name}=FILE.npy")
    note = "random " + ("standard normal" if dt.kind == "f" else "integers 0..9" if dt.kind in "iu" else "booleans")
    if notes:
        note += ", symbolic dims " + ", ".join(notes)
    return arr, note


def _dtype_str(dt) -> str:
    return "?" if dt is None else str(np.dtype(dt))


def summarize(a: np.ndarray) -> str:
    a = np.asarray(a)
    if a.size == 0:
        return "empty"
    if a.dtype.kind == "b":
        return f"{int(a.sum())} of {a.size} true"
    if a.dtype.kind not in "iuf":
        return f"dtype {a.dtype}"
    s = ""
    v = a
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        bad = a.size - int(finite.sum())
        if bad:
            s = f", {bad} not finite ({int(np.isnan(a).sum())} NaN)"
            v = a[finite]
        if v.size == 0:
            return "no finite values" + s
    v64 = v.astype(np.float64)
    txt = f"min {v64.min():.6g}, max {v64.max():.6g}, mean {v64.mean():.6g}" + s
    if a.ndim == 2 and a.shape[1] > 1:
        am = a.argmax(axis=1)
        shown = ", ".join(str(int(i)) for i in am[:10]) + (", ..." if len(am) > 10 else "")
        txt += f"; argmax per row [{shown}]"
    return txt


def _fmt_t(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.3f} s"


def run_model(model: str, inputs=None, outputs=None, dims=None, threads=None, repeat: int = 5,
              save: str | None = None, seed: int = 0, compare: bool = False) -> int:
    try:
        return _run(model, inputs, outputs, dims, threads, repeat, save, seed, compare)
    except UsageError as e:
        print(f"engine run: error: {e}", file=sys.stderr)
        return 2


def _run(model, input_specs, output_names, dim_specs, threads, repeat, save, seed, compare) -> int:
    import engine

    if not os.path.isfile(model):
        raise UsageError(f"no such model file: {model}")
    if repeat < 0:
        raise UsageError("--repeat must be >= 0")
    if threads is not None:
        if threads < 1:
            raise UsageError("--threads must be >= 1")
        engine.set_num_threads(threads)
    dims = parse_dims(dim_specs)
    if save is not None and not os.path.isdir(os.path.dirname(os.path.abspath(save))):
        raise UsageError(f"--save {save}: the directory does not exist")

    t = time.perf_counter()
    try:
        sess = engine.Session(model)
    except Exception as e:  # noqa: BLE001 - report any load failure as one line
        print(f"engine run: error: cannot load {model}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    t_load = time.perf_counter() - t

    declared_out = [o.name for o in sess.outputs]
    for name in output_names or []:
        if name not in declared_out:
            raise UsageError(f"--output {name}: the model has no output named {name!r} (its outputs: "
                             f"{', '.join(declared_out)})")
    feeds = read_inputs(input_specs, sess.inputs)
    rng = np.random.default_rng(seed)
    notes, used_dims = {}, set()
    for info in sess.inputs:
        if info.name in feeds:
            notes[info.name] = "from --input"
        else:
            feeds[info.name], notes[info.name] = random_input(info, dims, rng, used_dims)
    unused = sorted(set(dims) - used_dims)
    if unused:
        raise UsageError(f"--dim {unused[0]}: no randomly filled input has a symbolic dimension named {unused[0]!r}")

    print(f"engine {engine.__version__}: {model} (loaded in {_fmt_t(t_load)}; active ISA "
          f"{engine.cpu_info()['active_isa']}, {engine.get_num_threads()} thread(s))")
    print("inputs:")
    for info in sess.inputs:
        a = np.asarray(feeds[info.name])
        declared = f"{_dtype_str(info.dtype)} {_shape_str(info.shape)}"
        print(f"  {info.name}: {a.dtype} {list(a.shape)} (declared {declared}; {notes[info.name]})")
        print(f"      {summarize(a)}")
        if (info.dtype is not None and a.dtype != np.dtype(info.dtype)) or (info.shape is not None and (
                a.ndim != len(info.shape) or any(isinstance(d, (int, np.integer)) and d >= 0 and d != s
                                                 for d, s in zip(info.shape, a.shape)))):
            print(f"      warning: this does not match the declared {declared}")

    names = list(output_names) if output_names else None
    try:
        t = time.perf_counter()
        result = sess.run(feeds, names)
        t_first = time.perf_counter() - t
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            sess.run(feeds, names)
            times.append(time.perf_counter() - t)
    except engine.InvalidInputError as e:  # an input file of the wrong dtype or shape
        raise UsageError(f"the inputs do not fit the model: {e}") from None
    except Exception as e:  # noqa: BLE001 - report any run failure as one line
        print(f"engine run: error: running the model failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1

    print("outputs:")
    for name, a in result.items():
        a = np.asarray(a)
        print(f"  {name}: {a.dtype} {list(a.shape)}")
        print(f"      {summarize(a)}")
    timing = f"first run {_fmt_t(t_first)}"
    if times:
        timing += f"; then {len(times)} runs: median {_fmt_t(statistics.median(times))}, min {_fmt_t(min(times))}"
    print(f"time: {timing}")

    status = 0
    if compare:
        status = _compare(model, feeds, result, engine.get_num_threads())
    if save is not None:
        np.savez(save, **{k: np.asarray(v) for k, v in result.items()})
        print(f"saved {len(result)} output(s) to {save}")
    return status


def _compare(model, feeds, result, threads) -> int:
    try:
        import onnxruntime as ort
    except ImportError:
        print("--compare: onnxruntime is not installed")
        return 1
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    try:
        osess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        ref = dict(zip(result, osess.run(list(result), feeds)))
    except Exception as e:  # noqa: BLE001
        print(f"--compare: onnxruntime could not run the model: {type(e).__name__}: {e}")
        return 1
    print(f"onnxruntime {ort.__version__} on the same inputs:")
    for name, a in result.items():
        a, r = np.asarray(a), np.asarray(ref[name])
        if a.shape != r.shape or a.dtype != r.dtype:
            print(f"  {name}: MISMATCH: engine {a.dtype} {list(a.shape)}, onnxruntime {r.dtype} {list(r.shape)}")
            continue
        if a.dtype.kind in "iufb" and a.size:
            d = np.abs(a.astype(np.float64) - r.astype(np.float64))
            scale = float(np.abs(r.astype(np.float64)).max()) if a.dtype.kind == "f" else 0.0
            print(f"  {name}: max |engine - onnxruntime| {np.nanmax(d):.3g}"
                  + (f" (largest |value| {scale:.3g})" if a.dtype.kind == "f" else ""))
        else:
            print(f"  {name}: {'equal' if np.array_equal(a, r) else 'DIFFERENT'}")
    return 0
