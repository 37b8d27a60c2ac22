"""Cosine similarity, distance matrices and face-embedding search (1:N matching).

``cosine_similarity(a, b)``, ``cdist(A, B, metric)`` and ``Gallery`` run on engine's SIMD kernels (scalar, AVX2,
AVX-512, NEON; ``csrc/kernels/sim/``) with the GIL released and engine's thread pool.

Conventions
-----------
- dtypes: float32, float16 (stored as float16, accumulated in float32) and int8 (accumulated in int32, vectors of
  at most 65536 elements). Anything else (float64 included) is a ``TypeError``: convert explicitly, so no copy
  happens behind your back.
- A zero vector has cosine similarity 0 with everything (never NaN); L2-normalizing a zero row leaves it zero.
  Cosines are clamped to [-1, 1].
- ``Gallery.search`` returns ``min(k, len(gallery))`` results per query, best first; equal scores are ordered by
  enrollment order. An empty gallery gives arrays of shape ``(n_queries, 0)``.
- Ids are int64 and need not be unique: a person may be enrolled with several embeddings, each result row is
  one enrolled embedding, and ``remove(id)`` removes every row carrying that id.

Gallery file format (version 1), little-endian, written by ``Gallery.save`` and checked by ``Gallery.load``::

    offset  size  field
    0       8     magic b"ENGGALRY"
    8       4     uint32 format version (1)
    12      4     uint32 dtype code: 0 float32, 1 float16, 2 int8
    16      8     uint64 n, number of rows
    24      8     uint64 d, dimension
    32      4     uint32 flags: bit 0 = rows are L2-normalized (cosine gallery)
    36      4     uint32 header size = 64 (where the data starts)
    40      8     uint64 total file size in bytes
    48      16    zero padding
    64      n*d*itemsize   embeddings, row-major, padded with zeros to a multiple of 64 bytes
    ...     8*n   ids, int64, padded to 64 bytes
    ...     4*n   int8 only: per-row float32 score factor (1/|row| when normalized, else the dequantization
                  scale), padded to 64 bytes

Every section starts on a 64-byte boundary, so ``Gallery.load(path, mmap=True)`` maps the embeddings straight
from the file (read-only: ``add``/``remove`` on a mapped gallery first copy it into memory; the file is never
written). A wrong magic, an unknown version or dtype, or a size that does not match the header raises
``ValueError`` naming the file and the problem.
"""
from __future__ import annotations

import os
import struct

import numpy as np

from engine._C import _kernels as _k

__all__ = ["cosine_similarity", "cdist", "l2_normalize", "Gallery"]

_DTYPES = {"f32": np.dtype(np.float32), "f16": np.dtype(np.float16), "i8": np.dtype(np.int8)}
_CODES = {"f32": 0, "f16": 1, "i8": 2}
_MAGIC = b"ENGGALRY"
_VERSION = 1
_HEADER = struct.Struct("<8sIIQQIIQ16x")
assert _HEADER.size == 64
_I8_MAX_N = _k.SIM_I8_MAX_N


def _as_array(x, name: str) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (list, tuple)):  # plain Python numbers: float32 is the natural reading
        return np.asarray(x, dtype=np.float32)
    raise TypeError(f"{name} must be a numpy array (or a list of numbers), got {type(x).__name__}")


def _check_dtype(x: np.ndarray, name: str) -> None:
    if x.dtype not in (np.float32, np.float16, np.int8):
        raise TypeError(f"{name} has unsupported dtype {x.dtype}: use float32, float16 or int8 "
                        f"(e.g. {name}.astype(np.float32))")


def _cosine_general(a, b):
    a = _as_array(a, "a")
    b = _as_array(b, "b")
    _check_dtype(a, "a")
    _check_dtype(b, "b")
    if a.dtype != b.dtype:
        raise TypeError(f"a and b differ in dtype ({a.dtype} vs {b.dtype})")
    if a.shape != b.shape:
        raise ValueError(f"dimension mismatch: a has shape {a.shape}, b has shape {b.shape}")
    if a.ndim == 1:
        return _k.sim_cos_pair(np.ascontiguousarray(a), np.ascontiguousarray(b))
    if a.ndim != 2:
        raise ValueError(f"cosine_similarity takes vectors or 2-D batches, got {a.ndim}-D")
    out = np.empty(a.shape[0], dtype=np.float32)
    return _k.sim_rowwise_cos(_rows(a), _rows(b), out)


def _rows(x: np.ndarray) -> np.ndarray:
    """x with a unit-strided last axis and a positive row stride (copied only when needed)."""
    if x.ndim == 2 and x.shape[0] > 0 and x.shape[1] > 0:
        s = x.strides
        if (x.shape[1] == 1 or s[1] == x.itemsize) and (x.shape[0] == 1 or s[0] >= x.shape[1] * x.itemsize):
            return x
    return np.ascontiguousarray(x)


_k._set_sim_general(_cosine_general)
# The public function is the Cython one (see its docstring): a Python wrapper would double the call overhead
# of the single-pair case.
cosine_similarity = _k.cosine_similarity_fast


def l2_normalize(x, out=None) -> np.ndarray:
    """Rows of x (2-D, or one vector) divided by their L2 norm; zero rows stay zero. float32 or float16."""
    x = _as_array(x, "x")
    _check_dtype(x, "x")
    if x.dtype == np.int8:
        raise TypeError("l2_normalize takes float32 or float16 (an int8 row cannot hold a unit vector)")
    x2 = x[None, :] if x.ndim == 1 else x
    if x2.ndim != 2:
        raise ValueError(f"l2_normalize takes a vector or a 2-D array, got {x.ndim}-D")
    if out is None:
        out = np.empty(x.shape, dtype=x.dtype)
    elif not isinstance(out, np.ndarray) or out.shape != x.shape or out.dtype != x.dtype:
        raise ValueError(f"out must be an array of shape {x.shape} and dtype {x.dtype}")
    o2 = out[None, :] if out.ndim == 1 else out
    if x2.size:
        _k.sim_l2norm_rows(_rows(x2), o2)
    return out


def cdist(A, B, metric: str = "cosine", out=None) -> np.ndarray:
    """Pairwise matrix of shape (len(A), len(B)) between the rows of A and B (2-D, same width).

    metric: "cosine" (cosine similarity, 0 for zero rows), "dot" (inner product) or "l2sq" (squared Euclidean
    distance, clamped at 0). float32 in and out; float16 inputs are widened to float32 first. out: optional
    preallocated float32 array of that shape (C-contiguous rows).
    """
    if metric not in ("cosine", "dot", "l2sq"):
        raise ValueError(f"unknown metric {metric!r}; use 'cosine', 'dot' or 'l2sq'")
    A = _as_array(A, "A")
    B = _as_array(B, "B")
    for x, name in ((A, "A"), (B, "B")):
        if x.dtype not in (np.float32, np.float16):
            raise TypeError(f"cdist: {name} has unsupported dtype {x.dtype}: use float32 or float16")
        if x.ndim != 2:
            raise ValueError(f"cdist: {name} must be 2-D, got shape {x.shape}")
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"cdist: dimension mismatch: A has {A.shape[1]} columns, B has {B.shape[1]}")
    A = _rows(A.astype(np.float32, copy=False))
    B = _rows(B.astype(np.float32, copy=False))
    shape = (A.shape[0], B.shape[0])
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape:
        raise ValueError(f"cdist: out must be a float32 array of shape {shape}")
    if out.size == 0:
        return out
    if A.shape[1] == 0:  # empty vectors: dot 0, cosine 0, distance 0
        out[...] = 0.0
        return out
    return _k.sim_cdist(A, B, metric, out)


def _quantize_rows(x: np.ndarray, normalized: bool):
    """float32 rows -> (int8 rows, float32 per-row score factors). Symmetric per-row scale 127 / max|x|; the
    factor is 1/|q| (the exact cosine of the quantized rows) for a normalized gallery, else the dequantization
    scale max|x| / 127 (so int dot * factors approximates the float dot)."""
    amax = np.abs(x).max(axis=1) if x.shape[1] else np.zeros(len(x), np.float32)
    scale = np.where(amax > 0, 127.0 / np.where(amax > 0, amax, 1), 0).astype(np.float32)
    q = np.clip(np.rint(x * scale[:, None]), -127, 127).astype(np.int8)
    if normalized:
        sq = (q.astype(np.int32) ** 2).sum(axis=1).astype(np.float64)
        f = np.where(sq > 0, 1.0 / np.sqrt(np.where(sq > 0, sq, 1)), 0.0)
    else:
        f = np.where(amax > 0, amax / 127.0, 0.0)
    return q, f.astype(np.float32)


class Gallery:
    """A set of enrolled embeddings searched by cosine similarity (or inner product with normalize=False).

    Gallery(embeddings, ids=None, dtype="f32"|"f16"|"i8", normalize=True): embeddings is (n, d) (float32,
    float16 or float64 are accepted here and converted once at enrollment); ids default to 0..n-1. With
    normalize=True rows are L2-normalized at enrollment and queries at search time, so scores are cosine
    similarities; with normalize=False scores are raw inner products.
    """

    def __init__(self, embeddings=None, ids=None, dtype: str = "f32", normalize: bool = True, *,
                 dim: int | None = None):
        if dtype not in _DTYPES:
            raise ValueError(f"unsupported gallery dtype {dtype!r}; use 'f32', 'f16' or 'i8'")
        self.dtype = dtype
        self.normalize = bool(normalize)
        if embeddings is None:
            if dim is None:
                raise ValueError("Gallery() needs embeddings or dim=")
            self._dim = int(dim)
            if self._dim < 1:
                raise ValueError(f"dim must be >= 1, got {dim}")
        else:
            e = np.asarray(embeddings) if not isinstance(embeddings, np.ndarray) else embeddings
            if e.ndim != 2:
                raise ValueError(f"embeddings must be 2-D (n, d), got shape {e.shape}")
            if dim is not None and dim != e.shape[1]:
                raise ValueError(f"dim={dim} does not match the embeddings' dimension {e.shape[1]}")
            self._dim = int(e.shape[1])
            if self._dim < 1:
                raise ValueError("embeddings must have at least one column")
        if dtype == "i8" and self._dim > _I8_MAX_N:
            raise ValueError(f"int8 galleries are limited to dimension {_I8_MAX_N}")
        self._n = 0
        self._emb = np.empty((0, self._dim), dtype=_DTYPES[dtype])
        self._ids = np.empty(0, dtype=np.int64)
        self._scale = np.empty(0, dtype=np.float32) if dtype == "i8" else None
        if embeddings is not None:
            self.add(embeddings, ids)

    # ---- properties
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def ids(self) -> np.ndarray:
        """The id of each row (read-only view)."""
        v = self._ids[: self._n]
        v.flags.writeable = False
        return v

    @property
    def embeddings(self) -> np.ndarray:
        """The stored rows (normalized if normalize=True; int8 quantized for dtype 'i8'), read-only view."""
        v = self._emb[: self._n]
        v.flags.writeable = False
        return v

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"Gallery(n={self._n}, dim={self._dim}, dtype={self.dtype!r}, normalize={self.normalize})"

    # ---- enrollment
    def _prepare(self, emb) -> tuple[np.ndarray, np.ndarray | None]:
        e = emb if isinstance(emb, np.ndarray) else np.asarray(emb)
        if e.ndim == 1:
            e = e[None, :]
        if e.ndim != 2:
            raise ValueError(f"embeddings must be (n, d) or (d,), got shape {e.shape}")
        if e.shape[1] != self._dim:
            raise ValueError(f"dimension mismatch: the gallery has dimension {self._dim}, got {e.shape[1]}")
        if e.dtype not in (np.float32, np.float16, np.float64):
            raise TypeError(f"embeddings have unsupported dtype {e.dtype}: use float32, float16 or float64")
        if e.size and not np.isfinite(e).all():
            raise ValueError("embeddings contain NaN or infinity")
        if self.dtype == "f16":
            if self.normalize:  # normalize in float32, then round once to float16
                return l2_normalize(e.astype(np.float32)).astype(np.float16), None
            with np.errstate(over="ignore"):
                x = e.astype(np.float16)
            if x.size and not np.isfinite(x).all():
                raise ValueError("embeddings overflow float16 (|x| > 65504); normalize them or use dtype='f32'")
            return x, None
        x = np.array(e, dtype=np.float32)
        if self.normalize and len(x):
            l2_normalize(x, out=x)
        if self.dtype == "i8":
            return _quantize_rows(x, self.normalize)
        return x, None

    def _ensure_capacity(self, extra: int) -> None:
        need = self._n + extra
        if need <= len(self._emb) and self._emb.flags.writeable:
            return
        cap = max(need, 2 * len(self._emb), 16)
        emb = np.zeros((cap, self._dim), dtype=self._emb.dtype)
        emb[: self._n] = self._emb[: self._n]
        ids = np.empty(cap, dtype=np.int64)
        ids[: self._n] = self._ids[: self._n]
        self._emb, self._ids = emb, ids
        if self._scale is not None:
            sc = np.empty(cap, dtype=np.float32)
            sc[: self._n] = self._scale[: self._n]
            self._scale = sc

    def add(self, emb, ids=None) -> None:
        """Enrolls rows (n, d) (or one vector) with their ids (default: continuing from the largest id + 1)."""
        x, sc = self._prepare(emb)
        n = len(x)
        if ids is None:
            start = int(self._ids[: self._n].max()) + 1 if self._n else 0
            idv = np.arange(start, start + n, dtype=np.int64)
        else:
            idv = np.asarray(ids)
            if idv.ndim == 0:
                idv = idv[None]
            if idv.ndim != 1 or len(idv) != n:
                raise ValueError(f"ids must be a 1-D sequence of {n} integers, got shape {idv.shape}")
            if n and idv.dtype.kind not in "iu":
                raise TypeError(f"ids must be integers, got dtype {idv.dtype}")
            idv = idv.astype(np.int64)
        if n == 0:
            return
        self._ensure_capacity(n)
        self._emb[self._n: self._n + n] = x
        self._ids[self._n: self._n + n] = idv
        if self._scale is not None:
            self._scale[self._n: self._n + n] = sc
        self._n += n

    def remove(self, ids) -> int:
        """Removes every row whose id is in ids; returns how many rows were removed (unknown ids are ignored)."""
        idv = np.atleast_1d(np.asarray(ids))
        if idv.size and idv.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got dtype {idv.dtype}")
        if self._n == 0 or idv.size == 0:
            return 0
        keep = ~np.isin(self._ids[: self._n], idv.astype(np.int64))
        removed = int(self._n - keep.sum())
        if removed:
            emb = self._emb[: self._n][keep]  # a copy: also detaches a memory-mapped gallery from its file
            self._ids = self._ids[: self._n][keep].copy()
            if self._scale is not None:
                self._scale = self._scale[: self._n][keep].copy()
            self._emb = np.ascontiguousarray(emb)
            self._n = len(self._ids)
        return removed

    # ---- search
    def search(self, queries, k: int = 10):
        """Top-k rows for each query: (scores, ids), each of shape (n_queries, min(k, len(self))), best first.

        queries: (m, d) or one vector (d,) of float32 (float16/float64 are converted). Scores are cosine
        similarities (normalize=True) or inner products. One vector gives 1-D results.
        """
        q = queries if isinstance(queries, np.ndarray) else np.asarray(queries, dtype=np.float32)
        single = q.ndim == 1
        if single:
            q = q[None, :]
        if q.ndim != 2:
            raise ValueError(f"queries must be (m, d) or (d,), got shape {q.shape}")
        if q.shape[1] != self._dim:
            raise ValueError(f"dimension mismatch: the gallery has dimension {self._dim}, queries have {q.shape[1]}")
        if q.dtype not in (np.float32, np.float16, np.float64):
            raise TypeError(f"queries have unsupported dtype {q.dtype}: use float32, float16 or float64")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        q = np.ascontiguousarray(q, dtype=np.float32)
        if q.size and not np.isfinite(q).all():
            raise ValueError("queries contain NaN or infinity")
        kk = min(int(k), self._n)
        m = q.shape[0]
        scores = np.empty((m, kk), dtype=np.float32)
        rows = np.empty((m, kk), dtype=np.int64)
        if kk and m:
            g = self._emb[: self._n]
            sc = self._scale[: self._n] if self._scale is not None else None
            _k.sim_search(g, sc, q, kk, self.normalize, scores, rows)
        ids = self._ids[rows] if kk and m else np.empty((m, kk), dtype=np.int64)
        if single:
            return scores[0], ids[0]
        return scores, ids

    # ---- persistence
    def save(self, path) -> None:
        """Writes the gallery to path (format in the module docstring); atomically replaces an existing file."""
        n, d = self._n, self._dim
        emb = np.ascontiguousarray(self._emb[:n])
        sections = [emb.tobytes(), np.ascontiguousarray(self._ids[:n]).tobytes()]
        if self._scale is not None:
            sections.append(np.ascontiguousarray(self._scale[:n]).tobytes())
        total = 64 + sum(_pad64(len(s)) for s in sections)
        header = _HEADER.pack(_MAGIC, _VERSION, _CODES[self.dtype], n, d, 1 if self.normalize else 0, 64, total)
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(header)
            for s in sections:
                f.write(s)
                f.write(b"\0" * (_pad64(len(s)) - len(s)))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path, mmap: bool = True) -> "Gallery":
        """Reads a gallery written by save(). mmap=True maps the embeddings from the file (read-only, shared
        with the page cache) instead of reading them into memory."""
        path = os.fspath(path)
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(64)
        if len(head) < 64:
            raise ValueError(f"{path}: not an engine gallery file (truncated header: {len(head)} bytes)")
        magic, ver, code, n, d, flags, hsize, total = _HEADER.unpack(head)
        if magic != _MAGIC:
            raise ValueError(f"{path}: not an engine gallery file (bad magic {magic!r})")
        if ver != _VERSION:
            raise ValueError(f"{path}: unsupported gallery format version {ver} (this engine reads version {_VERSION})")
        names = {v: k for k, v in _CODES.items()}
        if code not in names:
            raise ValueError(f"{path}: unknown dtype code {code}")
        dtype = names[code]
        if hsize != 64 or d < 1 or flags & ~1:
            raise ValueError(f"{path}: corrupt header (header size {hsize}, dim {d}, flags {flags:#x})")
        isz = _DTYPES[dtype].itemsize
        emb_bytes = n * d * isz
        want = 64 + _pad64(emb_bytes) + _pad64(8 * n) + (_pad64(4 * n) if dtype == "i8" else 0)
        if total != want or size != want:
            raise ValueError(f"{path}: truncated or corrupt gallery file ({size} bytes on disk, header says {total}, "
                             f"{n} rows of dimension {d} {dtype} need {want})")
        g = cls(dtype=dtype, normalize=bool(flags & 1), dim=int(d))
        off_ids = 64 + _pad64(emb_bytes)
        off_sc = off_ids + _pad64(8 * n)
        if n:
            if mmap:
                emb = np.memmap(path, dtype=_DTYPES[dtype], mode="r", offset=64, shape=(n, d))
            else:
                emb = np.fromfile(path, dtype=_DTYPES[dtype], count=n * d, offset=64).reshape(n, d)
            ids = np.fromfile(path, dtype=np.int64, count=n, offset=off_ids)
            g._emb, g._ids, g._n = emb, ids, int(n)
            if dtype == "i8":
                g._scale = np.fromfile(path, dtype=np.float32, count=n, offset=off_sc)
        return g


def _pad64(x: int) -> int:
    return (x + 63) // 64 * 64
