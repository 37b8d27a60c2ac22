"""engine.cosine_similarity, engine.cdist, engine.l2_normalize and engine.Gallery at every ISA level against
float64 NumPy references: tails (dimensions that are no multiple of the vector width), zero vectors, k larger
than the gallery, empty galleries, duplicate ids, f16/i8 error bounds, persistence (mmap, corrupt files) and
clear errors for bad input."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tolerances as tol

import engine
from engine.testing import quick, rng

EPS = float(np.finfo(np.float32).eps)
DIMS = [1, 7, 17, 33, 128, 515] if not quick() else [7, 33, 128]


def _unit(x):
    x = x.astype(np.float64)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def _cos_bound(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = a.shape[-1]
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return tol.SIM_C * (d + 4) * EPS * (np.abs(a * b).sum(-1) / np.where(den > 0, den, 1) + 1)


# ------------------------------------------------------------------------------------------ cosine_similarity
@pytest.mark.parametrize("d", DIMS)
def test_cosine_pair_and_rows(isa, d):
    r = rng("cos", d)
    a, b = r.standard_normal((2, 9, d)).astype(np.float32)
    ref = (_unit(a) * _unit(b)).sum(-1)
    got = engine.cosine_similarity(a[3], b[3])
    assert isinstance(got, float)
    assert abs(got - ref[3]) <= _cos_bound(a[3], b[3])
    rows = engine.cosine_similarity(a, b)
    assert rows.shape == (9,) and rows.dtype == np.float32
    assert np.all(np.abs(rows - ref) <= _cos_bound(a, b))
    # strided / misaligned views give the same answers
    big = np.zeros((9, d + 3), np.float32)
    big[:, 1:d + 1] = a
    np.testing.assert_array_equal(engine.cosine_similarity(big[:, 1:d + 1], b), rows)
    assert engine.cosine_similarity(big[3, 1:d + 1], b[3]) == got
    assert engine.cosine_similarity(list(map(float, a[3])), list(map(float, b[3]))) == got


def test_cosine_zero_vectors(isa):
    z = np.zeros(33, np.float32)
    x = np.ones(33, np.float32)
    assert engine.cosine_similarity(z, x) == 0.0
    assert engine.cosine_similarity(z, z) == 0.0
    for dt in (np.float16, np.int8):
        assert engine.cosine_similarity(z.astype(dt), x.astype(dt)) == 0.0
    rows = engine.cosine_similarity(np.stack([z, x]), np.stack([x, x]))
    np.testing.assert_array_equal(rows, [0.0, 1.0])
    assert engine.cosine_similarity(np.zeros(0, np.float32), np.zeros(0, np.float32)) == 0.0
    assert not np.isnan(engine.cdist(np.stack([z, x]), np.stack([z, x]))).any()


def test_cosine_identical_and_opposite_are_clamped(isa):
    a = rng("clamp").standard_normal(515).astype(np.float32)
    assert engine.cosine_similarity(a, a) <= 1.0
    assert engine.cosine_similarity(a, -a) >= -1.0
    assert abs(engine.cosine_similarity(a, a) - 1.0) < 1e-6


@pytest.mark.parametrize("d", [128, 512])
def test_cosine_f16_i8_error_bounds(isa, d):
    r = rng("lowp", d)
    a, b = r.standard_normal((2, 400, d)).astype(np.float32)
    ref = (_unit(a) * _unit(b)).sum(-1)
    got16 = engine.cosine_similarity(a.astype(np.float16), b.astype(np.float16))
    assert np.abs(got16 - ref).max() <= tol.F16_COS_ATOL
    qa = np.clip(np.rint(a * (127 / np.abs(a).max(1, keepdims=True))), -127, 127).astype(np.int8)
    qb = np.clip(np.rint(b * (127 / np.abs(b).max(1, keepdims=True))), -127, 127).astype(np.int8)
    got8 = engine.cosine_similarity(qa, qb)
    assert np.abs(got8 - ref).max() <= tol.I8_COS_ATOL
    # the i8 cosine itself is exact up to the final rounding
    qa64, qb64 = qa.astype(np.int64), qb.astype(np.int64)
    exact = (qa64 * qb64).sum(1) / np.sqrt((qa64 ** 2).sum(1) * (qb64 ** 2).sum(1))
    assert np.abs(got8 - exact).max() <= 1e-7


def test_cosine_errors():
    a = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="dimension mismatch"):
        engine.cosine_similarity(a, np.ones(9, np.float32))
    with pytest.raises(ValueError, match="dimension mismatch"):
        engine.cosine_similarity(np.ones((3, 8), np.float32), np.ones((4, 8), np.float32))
    with pytest.raises(TypeError, match="unsupported dtype float64"):
        engine.cosine_similarity(a.astype(np.float64), a.astype(np.float64))
    with pytest.raises(TypeError, match="unsupported dtype int32"):
        engine.cosine_similarity(a.astype(np.int32), a.astype(np.int32))
    with pytest.raises(TypeError, match="differ in dtype"):
        engine.cosine_similarity(a, a.astype(np.float16))
    with pytest.raises(ValueError, match="3-D"):
        engine.cosine_similarity(np.ones((2, 2, 2), np.float32), np.ones((2, 2, 2), np.float32))
    with pytest.raises(TypeError, match="numpy array"):
        engine.cosine_similarity("abc", a)
    with pytest.raises(ValueError, match="65536"):
        engine.cosine_similarity(np.ones(65537, np.int8), np.ones(65537, np.int8))


# ------------------------------------------------------------------------------------------ cdist / normalize
@pytest.mark.parametrize("metric", ["cosine", "dot", "l2sq"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 50, 33), (7, 13, 17), (40, 30, 128)])
def test_cdist(isa, metric, shape):
    m, n, d = shape
    r = rng("cdist", metric, shape)
    A = r.standard_normal((m, d)).astype(np.float32)
    B = r.standard_normal((n, d)).astype(np.float32)
    A[0] = 0  # a zero row
    a64, b64 = A.astype(np.float64), B.astype(np.float64)
    dot = a64 @ b64.T
    absd = np.abs(a64) @ np.abs(b64.T)
    got = engine.cdist(A, B, metric)
    assert got.shape == (m, n) and got.dtype == np.float32
    if metric == "dot":
        ref, bound = dot, tol.SIM_C * (d + 3) * EPS * absd + 1e-30
    elif metric == "cosine":
        ref = _unit(a64) @ _unit(b64).T
        den = np.outer(np.linalg.norm(a64, axis=1), np.linalg.norm(b64, axis=1))
        bound = tol.SIM_C * (d + 6) * EPS * (absd / np.where(den > 0, den, 1) + 1)
    else:
        na, nb = (a64 ** 2).sum(1), (b64 ** 2).sum(1)
        ref = np.maximum(na[:, None] + nb[None] - 2 * dot, 0)
        bound = tol.SIM_C * (d + 4) * EPS * (na[:, None] + nb[None] + 2 * absd) + 1e-30
    assert np.all(np.abs(got - ref) <= bound), np.abs(got - ref).max()
    out = np.empty((m, n), np.float32)
    assert engine.cdist(A, B, metric, out=out) is out
    np.testing.assert_array_equal(out, got)
    np.testing.assert_array_equal(engine.cdist(A.astype(np.float16), B.astype(np.float16), metric),
                                  engine.cdist(A.astype(np.float16).astype(np.float32),
                                               B.astype(np.float16).astype(np.float32), metric))


def test_cdist_errors():
    A = np.ones((3, 8), np.float32)
    with pytest.raises(ValueError, match="dimension mismatch"):
        engine.cdist(A, np.ones((3, 9), np.float32))
    with pytest.raises(ValueError, match="unknown metric"):
        engine.cdist(A, A, "manhattan")
    with pytest.raises(TypeError, match="unsupported dtype"):
        engine.cdist(A.astype(np.float64), A)
    with pytest.raises(ValueError, match="out must be"):
        engine.cdist(A, A, out=np.empty((3, 4), np.float32))
    assert engine.cdist(np.ones((0, 8), np.float32), A).shape == (0, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_l2_normalize(isa, dtype):
    r = rng("l2n", dtype)
    x = r.standard_normal((6, 37)).astype(dtype)
    x[2] = 0
    y = engine.l2_normalize(x)
    ref = _unit(x.astype(np.float64))
    atol = 4 * (37 + 2) * EPS if dtype == np.float32 else 2 ** -10
    np.testing.assert_allclose(y.astype(np.float64), ref, atol=atol, rtol=0)
    assert (y[2] == 0).all()
    v = engine.l2_normalize(x[1])
    np.testing.assert_array_equal(v, y[1])
    with pytest.raises(TypeError):
        engine.l2_normalize(x.astype(np.int8))


# ------------------------------------------------------------------------------------------ Gallery
def _brute(G, Q, k, normalize=True):
    G64, Q64 = (_unit(G), _unit(Q)) if normalize else (G.astype(np.float64), Q.astype(np.float64))
    S = Q64 @ G64.T
    order = np.lexsort((np.broadcast_to(np.arange(len(G)), S.shape), -S), axis=1)[:, :k]
    return np.take_along_axis(S, order, 1), order, S


def _check_search(scores, rows, G, Q, k, atol, normalize=True):
    ref_s, ref_r, S = _brute(G, Q, k, normalize)
    assert scores.shape == ref_s.shape
    # returned scores are the true similarities of the returned rows, and sorted best first
    true = np.take_along_axis(S, rows, 1)
    assert np.all(np.abs(scores - true) <= atol), np.abs(scores - true).max()
    assert np.all(np.diff(scores, axis=1) <= 0)
    # the k-th best score matches (a near-tie may swap rows, never change the scores much)
    assert np.all(np.abs(scores - ref_s) <= 2 * atol + tol.SEARCH_TIE_ATOL)
    for j in range(len(Q)):
        assert len(set(rows[j])) == len(rows[j])


# m=1 and 3 use the per-query scan; 8 the GEMM path for f32 (scan for f16); 19 the GEMM path for f32 and f16
@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
@pytest.mark.parametrize("m", [1, 3, 8, 19])
@pytest.mark.parametrize("d", [7, 33, 128])
def test_gallery_search_vs_bruteforce(isa, dtype, m, d):
    r = rng("gal", dtype, m, d)
    n = 1000 if quick() else 2500
    G = r.standard_normal((n, d)).astype(np.float32)
    Q = np.concatenate([G[:m // 2] + 0.05 * r.standard_normal((m // 2, d)).astype(np.float32),
                        r.standard_normal((m - m // 2, d)).astype(np.float32)])
    g = engine.Gallery(G, dtype=dtype)
    k = 10
    scores, ids = g.search(Q, k)
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and scores.shape == (m, k)
    atol = {"f32": tol.SIM_C * (d + 8) * EPS * 4, "f16": tol.F16_COS_ATOL, "i8": tol.I8_COS_ATOL}[dtype]
    if dtype == "f32":
        _check_search(scores, ids, G, Q, k, atol)
    else:
        # low-precision galleries: the returned scores are near the float64 ones of those rows, the best
        # match of each near-duplicate query is found
        ref_s, ref_r, S = _brute(G, Q, k)
        true = np.take_along_axis(S, ids, 1)
        assert np.all(np.abs(scores - true) <= atol)
        assert np.all(np.abs(scores[:, 0] - ref_s[:, 0]) <= 2 * atol)
    if m // 2:
        np.testing.assert_array_equal(ids[:m // 2, 0], np.arange(m // 2))
    s1, i1 = g.search(Q[0], k)
    assert s1.shape == (k,)
    np.testing.assert_array_equal(i1, ids[0])


def test_gallery_threads_and_ties(isa):
    r = rng("threads")
    n, d = 9000, 40  # several tasks of >= 2048 rows, blocks with a tail
    G = r.standard_normal((n, d)).astype(np.float32)
    G[5000] = G[10]  # exact duplicates: a tie must go to the lower row, whatever the split
    G[8999] = G[10]
    Q = np.stack([G[10], r.standard_normal(d).astype(np.float32)] * 6)  # 12 queries: GEMM path
    g = engine.Gallery(G)
    results = []
    for threads in (1, 2):
        engine.set_num_threads(threads)
        for qs in (Q, Q[:2]):
            results.append(g.search(qs, 7))
    for (s_a, i_a), (s_b, i_b) in [(results[0], results[2]), (results[1], results[3])]:
        np.testing.assert_array_equal(i_a, i_b)
        np.testing.assert_array_equal(s_a, s_b)
    s, i = results[0]
    assert list(i[0, :3]) == [10, 5000, 8999]
    _check_search(s, i, G, Q, 7, tol.SIM_C * (d + 8) * EPS * 4)
    s2, i2 = results[1]
    np.testing.assert_array_equal(i2, i[:2])
    np.testing.assert_allclose(s2, s[:2], atol=tol.SIM_C * (d + 8) * EPS * 4)


def test_gallery_k_larger_than_gallery_and_empty(isa):
    G = rng("small").standard_normal((5, 16)).astype(np.float32)
    g = engine.Gallery(G)
    s, i = g.search(G[:2], k=50)
    assert s.shape == (2, 5) and sorted(i[0]) == [0, 1, 2, 3, 4]
    e = engine.Gallery(dim=16)
    assert len(e) == 0
    s, i = e.search(G[:3], k=4)
    assert s.shape == (3, 0) and i.shape == (3, 0)
    s, i = e.search(G[0], k=4)
    assert s.shape == (0,)
    e.add(G[:2], ids=[7, 8])
    s, i = e.search(G[1], k=1)
    assert i[0] == 8 and abs(s[0] - 1) < 1e-6


def test_gallery_duplicate_ids_and_remove(isa):
    r = rng("dup")
    G = r.standard_normal((6, 24)).astype(np.float32)
    g = engine.Gallery(G, ids=[1, 2, 2, 3, 3, 3])
    s, i = g.search(G[4], k=6)
    assert sorted(i.tolist()) == [1, 2, 2, 3, 3, 3]
    assert i[0] == 3
    assert g.remove(3) == 3 and len(g) == 3
    s, i = g.search(G[4], k=6)
    assert sorted(i.tolist()) == [1, 2, 2]
    assert g.remove([42]) == 0
    g.add(G[4], ids=[3])
    assert len(g) == 4 and g.search(G[4], k=1)[1][0] == 3
    g.add(G[:2])  # default ids continue after the largest
    assert g.ids[-2:].tolist() == [4, 5]


def test_gallery_inner_product(isa):
    r = rng("ip")
    G = r.standard_normal((300, 20)).astype(np.float32)
    Q = r.standard_normal((4, 20)).astype(np.float32)
    s, i = engine.Gallery(G, normalize=False).search(Q, 5)
    _check_search(s, i, G, Q, 5, tol.SIM_C * 30 * EPS * 40, normalize=False)
    s8, i8 = engine.Gallery(G, dtype="i8", normalize=False).search(Q, 5)
    ref = (Q.astype(np.float64) @ G.T.astype(np.float64))
    assert np.all(np.abs(s8 - np.take_along_axis(ref, i8, 1)) <= 0.05 * np.abs(ref).max())


def test_gallery_zero_vectors(isa):
    G = np.zeros((4, 9), np.float32)
    G[1] = 1
    for dt in ("f32", "f16", "i8"):
        g = engine.Gallery(G, dtype=dt)
        s, i = g.search(np.zeros(9, np.float32), 4)
        assert not np.isnan(s).any() and (s == 0).all()
        s, i = g.search(np.ones(9, np.float32), 4)
        assert i[0] == 1 and abs(s[0] - 1) < 1e-2 and (s[1:] == 0).all()


def test_gallery_errors():
    G = np.ones((3, 8), np.float32)
    with pytest.raises(ValueError, match="unsupported gallery dtype"):
        engine.Gallery(G, dtype="f64")
    g = engine.Gallery(G)
    with pytest.raises(ValueError, match="dimension mismatch"):
        g.search(np.ones(9, np.float32))
    with pytest.raises(ValueError, match="dimension mismatch"):
        g.add(np.ones((2, 9), np.float32))
    with pytest.raises(TypeError, match="unsupported dtype"):
        g.search(np.ones(8, np.int32))
    with pytest.raises(TypeError, match="unsupported dtype"):
        g.add(np.ones((1, 8), np.int16))
    with pytest.raises(ValueError, match="k must be"):
        g.search(np.ones(8, np.float32), k=0)
    with pytest.raises(ValueError, match="NaN"):
        g.search(np.full(8, np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        g.add(np.full((1, 8), np.inf, np.float32))
    with pytest.raises(ValueError, match="ids must be"):
        g.add(np.ones((2, 8), np.float32), ids=[1])
    with pytest.raises(TypeError, match="ids must be integers"):
        g.add(np.ones((1, 8), np.float32), ids=[1.5])
    with pytest.raises(ValueError, match="overflow float16"):
        engine.Gallery(np.full((1, 8), 1e6, np.float32), dtype="f16", normalize=False)
    with pytest.raises(ValueError, match="limited to dimension"):
        engine.Gallery(dim=70000, dtype="i8")


@pytest.mark.parametrize("dtype", ["f32", "f16", "i8"])
@pytest.mark.parametrize("mmap", [True, False])
def test_gallery_save_load(tmp_path, dtype, mmap):
    r = rng("save", dtype)
    G = r.standard_normal((37, 20)).astype(np.float32)
    g = engine.Gallery(G, ids=np.arange(100, 137), dtype=dtype)
    p = tmp_path / "g.egal"
    g.save(p)
    assert os.path.getsize(p) % 64 == 0
    h = engine.Gallery.load(p, mmap=mmap)
    assert len(h) == 37 and h.dtype == dtype and h.normalize and h.dim == 20
    if mmap:
        assert isinstance(h.embeddings.base, np.memmap) or isinstance(h._emb, np.memmap)
    np.testing.assert_array_equal(h.ids, g.ids)
    np.testing.assert_array_equal(h.embeddings, g.embeddings)
    Q = G[:5]
    for a, b in zip(g.search(Q, 4), h.search(Q, 4)):
        np.testing.assert_array_equal(a, b)
    before = p.read_bytes()
    h.add(G[:1], ids=[999])  # a mapped gallery copies itself first; the file is not written
    h.remove([100])
    assert len(h) == 37 and p.read_bytes() == before
    e = tmp_path / "empty.egal"
    engine.Gallery(dim=5, dtype=dtype).save(e)
    assert len(engine.Gallery.load(e)) == 0


def test_gallery_load_rejects_bad_files(tmp_path):
    g = engine.Gallery(np.ones((4, 8), np.float32))
    p = tmp_path / "g.egal"
    g.save(p)
    data = p.read_bytes()
    cases = {
        "bad magic": b"NOTAGALL" + data[8:],
        "format version 7": data[:8] + (7).to_bytes(4, "little") + data[12:],
        "unknown dtype code": data[:12] + (9).to_bytes(4, "little") + data[16:],
        "truncated": data[:-64],
        "truncated header": data[:30],
    }
    for what, blob in cases.items():
        q = tmp_path / "bad.egal"
        q.write_bytes(blob)
        with pytest.raises(ValueError, match=what):
            engine.Gallery.load(q)
    with pytest.raises(FileNotFoundError):
        engine.Gallery.load(tmp_path / "missing.egal")


def test_gemm_path_off_switch_gives_the_same_results(tmp_path):
    """ENGINE_SIM_GEMM_MIN_QUERIES=0 (read once per process) turns the GEMM path off: the scan path must return the
    same rows and scores within the float32 bound."""
    import subprocess
    import sys

    r = rng("offswitch")
    G = r.standard_normal((3000, 77)).astype(np.float32)
    Q = r.standard_normal((24, 77)).astype(np.float32)
    np.save(tmp_path / "G.npy", G)
    np.save(tmp_path / "Q.npy", Q)
    code = ("import numpy as np, engine, sys; d = sys.argv[1]; G = np.load(d + '/G.npy'); Q = np.load(d + '/Q.npy');"
            "s, i = engine.Gallery(G).search(Q, 9); np.save(d + '/s.npy', s); np.save(d + '/i.npy', i)")
    env = dict(os.environ, ENGINE_SIM_GEMM_MIN_QUERIES="0")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, check=True, cwd=root)
    s_scan, i_scan = np.load(tmp_path / "s.npy"), np.load(tmp_path / "i.npy")
    s, i = engine.Gallery(G).search(Q, 9)  # 24 queries: the GEMM path in this process
    np.testing.assert_allclose(s, s_scan, atol=tol.SIM_C * 85 * EPS * 4)
    same = (i == i_scan).mean()
    assert same > 0.99, same  # only near-ties may swap


@pytest.mark.parametrize("what", ["search", "cdist", "rows"])
def test_gil_released(what):
    """A Python thread keeps counting while the main thread is inside a long similarity call."""
    import sys
    import threading
    import time

    engine.set_num_threads(1)
    r = rng("gil", what)
    n = 20000

    def make(n):
        G = r.standard_normal((n, 128)).astype(np.float32)
        g = engine.Gallery(G) if what == "search" else None
        Q = G[:64]
        return {"search": lambda: g.search(Q, 5), "cdist": lambda: engine.cdist(Q, G),
                "rows": lambda: engine.cosine_similarity(G, G)}[what]

    def fastest(fn):  # the best of two calls: the first may pay page faults, either may wait for a busy core
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    fn = make(n)
    while fastest(fn) < 0.02 and n < 640000:  # size the call so it takes at least ~20 ms here (native or emulated)
        n *= 2
        fn = make(n)
    counter = [0]
    stop = threading.Event()

    def count():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=count)
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    try:
        t.start()
        time.sleep(0.01)
        before = counter[0]
        t0 = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t0
        during = counter[0] - before
    finally:
        stop.set()
        t.join()
        sys.setswitchinterval(old)
    assert elapsed > 0.005, "call too short to tell"
    assert during > 1000, f"counter advanced by {during} during a {elapsed * 1e3:.1f} ms {what}: GIL held?"


def test_cli_search(tmp_path, capsys):
    from engine.__main__ import main

    r = rng("cli")
    E = r.standard_normal((40, 24)).astype(np.float32)
    np.save(tmp_path / "E.npy", E)
    np.save(tmp_path / "ids.npy", np.arange(500, 540))
    np.save(tmp_path / "Q.npy", E[[3, 7]])
    gal = str(tmp_path / "g.egal")
    assert main(["search", "--gallery", gal, "--enroll", str(tmp_path / "E.npy"), "--ids", str(tmp_path / "ids.npy"),
                 "--dtype", "f16"]) == 0
    assert main(["search", "--gallery", gal, str(tmp_path / "Q.npy"), "-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2].startswith("query 0: 503 (1.0") and out[-1].startswith("query 1: 507 (1.0")
    assert engine.Gallery.load(gal).dtype == "f16"


def test_concurrent_searches_from_python_threads():
    """Several Python threads searching one gallery at once (they share the pool) get the single-threaded answers."""
    from concurrent.futures import ThreadPoolExecutor

    engine.set_num_threads(2)
    r = rng("concurrent")
    G = r.standard_normal((6000, 48)).astype(np.float32)
    Qs = [r.standard_normal((m, 48)).astype(np.float32) for m in (1, 3, 12, 40)]
    g = engine.Gallery(G)
    want = [g.search(q, 6) for q in Qs]
    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(lambda q: g.search(q, 6), Qs * 5))
    for j, (s, i) in enumerate(got):
        np.testing.assert_array_equal(i, want[j % 4][1])
        np.testing.assert_array_equal(s, want[j % 4][0])
