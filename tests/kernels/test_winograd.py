"""engine.kernels.winograd_weights / conv2d_winograd (Winograd F(4x4, 3x3), issue 4) at every ISA this CPU runs,
against a float64 direct convolution, over odd sizes, H or W < 4, asymmetric pads 0..2, channel counts 1..70 that are
not multiples of 8, with and without bias, every activation kind, 1 and 2 threads, a batch, both driver modes (tile
blocks as tasks; one block with the steps split), and bad inputs.

Error bound (elementwise, before the activation). Winograd computes y = A^T [sum_c (G g_c G^T) .* (B^T d_c B)] A
with every matrix product and the channel sum rounded in float32. The standard bound for a computed sum of k terms
(|fl(sum) - sum| <= gamma_k sum |terms|, gamma_k ~ k eps) applied along the chain gives

    |y_hat - y| <= (IC + 20) eps * ( |A^T| [ sum_c (|G| |g_c| |G^T|) .* (|B^T| |d_c| |B|) ] |A| ) + eps |y + b|

where IC bounds the channel sum's depth and 20 covers the rest: the filter transform rounded once (1), the input
transform (each entry a sum of <= 4 scaled terms per direction: 3 + 3, plus the exact-or-rounded scalings 2),
the product (1), the output transform (<= 5 terms per direction: 4 + 4, plus scalings 2), the bias add (the last
term). The magnitude term is the same chain on absolute values, computed here in float64. It is much larger than
sum |w x| (the transforms' entries reach 5 and 8, so it is the right size for Winograd's error, which grows with
them) but a misplaced or missing tap still gives an error well above it; the realistic-data test below also checks
the error against a fixed fraction of the output scale. After the activation: the bound is carried through the
activation's local slope (its change over +-bound, computed in float64) plus its own tolerance (tolerances.py)."""
from __future__ import annotations

import numpy as np
import pytest
import tolerances as tol

import engine
import engine.kernels as K
from engine._C import _kernels as _k
from engine.testing import EPS32, quick, rng
from test_ops_kernels import act_ref

BT = np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
               [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], np.float64)
G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
              [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64)
AT = np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], np.float64)

# every activation id, with parameters where it takes them
ACTS = [None, "relu", ("leaky_relu", 0.1), ("clip", -0.5, 0.75), ("clip", 0.0, 6.0), "sigmoid", "tanh", "silu", "gelu",
        "gelu_tanh", ("hardsigmoid", 0.2, 0.5), "hardswish", ("elu", 0.7), "softplus", "exp"]
assert {K._parse_activation(a if not isinstance(a, tuple) else a[0])[0] for a in ACTS} == set(range(_k.ACT_COUNT))


def direct(x, w, b, pads):
    """float64 direct 3x3 convolution (ONNX Conv: cross-correlation), x (N, C, H, W), pads (t, l, b, r)."""
    pt, pl, pb, pr = pads
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow = xp.shape[2] - 2, xp.shape[3] - 2
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for a in range(3):
        for c in range(3):
            y += np.einsum("oi,nihw->nohw", w[:, :, a, c].astype(np.float64), xp[:, :, a:a + oh, c:c + ow])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def wino_magnitude(x, w, pads):
    """|A^T| [sum_c (|G||g||G^T|) .* (|B^T||d||B|)] |A| per output, in float64 (see the module docstring)."""
    pt, pl, pb, pr = pads
    n, c, h, wd = x.shape
    oh, ow = h + pt + pb - 2, wd + pl + pr - 2
    th, tw = -(-oh // 4), -(-ow // 4)
    xp = np.zeros((n, c, 4 * th + 2, 4 * tw + 2))
    xp[:, :, pt:pt + h, pl:pl + wd] = np.abs(x)  # the extra bottom/right rows are the tiles' zero fill
    win = np.lib.stride_tricks.sliding_window_view(xp, (6, 6), axis=(2, 3))[:, :, ::4, ::4]  # n c th tw 6 6
    v = np.einsum("ik,ncyxkl,jl->ncyxij", np.abs(BT), win, np.abs(BT))
    u = np.einsum("ik,ockl,jl->ocij", np.abs(G), np.abs(w.astype(np.float64)), np.abs(G))
    m = np.einsum("ncyxij,ocij->noyxij", v, u)
    y = np.einsum("ai,noyxij,bj->noyaxb", np.abs(AT), m, np.abs(AT)).reshape(n, -1, 4 * th, 4 * tw)
    return y[:, :, :oh, :ow]


def act_parts(act):
    if act is None:
        return None, None, None
    if isinstance(act, tuple):
        return act[0], *(list(act[1:]) + [None] * (3 - len(act)))
    return act, None, None


def check(got, x, w, b, pads, act, what, ic, residual=None):
    z = direct(x, w, b, pads)
    if residual is not None:  # added after the bias, before the activation; rounding it adds eps |z| (below)
        z = z + residual.astype(np.float64)
    pre = (ic + 20) * EPS32 * wino_magnitude(x, w, pads) + EPS32 * np.abs(z) + 1e-30
    name, p0, p1 = act_parts(act)
    if name is None:
        ref, bound = z, pre
    else:
        cid, q0, q1 = K._parse_activation(name, p0, p1)
        ref = act_ref(z, name, q0, q1)
        with np.errstate(over="ignore", invalid="ignore"):
            slope = np.maximum(np.abs(act_ref(z + pre, name, q0, q1) - ref), np.abs(act_ref(z - pre, name, q0, q1) - ref))
        t = tol.OPS_ACTIVATION[name]
        atol, rtol = (0.0, 0.0) if t == tol.EXACT else t
        bound = 1.5 * slope + atol + rtol * np.abs(ref) + 1e-30
    err = np.abs(got.astype(np.float64) - ref)
    assert got.shape == ref.shape, f"{what}: shape {got.shape}, expected {ref.shape}"
    assert np.all(np.isfinite(got)), f"{what}: non-finite output"
    assert np.all(err <= bound), f"{what}: max err/bound {np.max(err / bound):.3g} at {np.unravel_index(np.argmax(err / bound), err.shape)}"
    return float(np.max(err / bound))


# (N, IC, OC, H, W, pads (t, l, b, r))
CASES = [
    (1, 1, 1, 1, 1, (1, 1, 1, 1)),
    (1, 3, 5, 9, 11, (1, 1, 1, 1)),
    (1, 7, 9, 3, 2, (2, 0, 1, 2)),      # H, W < 4; asymmetric pads
    (1, 17, 13, 2, 7, (2, 1, 2, 0)),
    (1, 8, 16, 13, 13, (0, 0, 0, 0)),   # no padding, partial tiles
    (1, 70, 33, 10, 9, (1, 2, 0, 1)),
    (1, 33, 70, 17, 5, (2, 2, 2, 2)),
    (1, 1, 70, 4, 4, (0, 1, 1, 0)),
    (1, 70, 1, 6, 3, (0, 0, 0, 1)),
    (2, 5, 6, 7, 8, (1, 0, 2, 1)),      # a batch of two images
    (1, 40, 24, 45, 37, (1, 1, 1, 1)),  # many tile blocks: blocks are pool tasks
    (1, 24, 40, 18, 30, (1, 1, 1, 1)),  # 40 tiles in blocks of 32: the 8-tile tail joins the last block
    (1, 150, 130, 7, 6, (1, 1, 1, 1)),  # one block with 2 threads: steps split over channels / positions
    (1, 40, 48, 26, 26, (1, 1, 1, 1)),  # 49 tiles in 3 blocks of 16: uneven on 2 threads, so the steps are split
]
# for the bitwise test: at 2 threads, 4 blocks as tasks; one block, steps split; 3 blocks, steps split
THREAD_CASES = {"blocks_as_tasks": CASES[10], "one_block": CASES[12], "uneven_blocks": CASES[13]}
RESIDUAL_CASES = {"small": CASES[1], "batch": CASES[9], **THREAD_CASES}
if quick():
    CASES = CASES[:6] + CASES[9:10] + CASES[11:12] + CASES[13:14]


def problem(key, case):
    """Input x, weights w (scaled by 1/sqrt(fan-in)), bias b and u = winograd_weights(w) of a case, seeded by key."""
    n, ic, oc, h, wd, _ = case
    g = rng(key, case)
    x = g.standard_normal((n, ic, h, wd)).astype(np.float32)
    w = (g.standard_normal((oc, ic, 3, 3)) / np.sqrt(9 * ic)).astype(np.float32)
    b = g.standard_normal(oc).astype(np.float32)
    return g, x, w, b, K.winograd_weights(w)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "n{}_ic{}_oc{}_{}x{}_p{}".format(*c[:5], "".join(map(str, c[5]))))
def test_conv2d_winograd(isa, case):
    n, ic, oc, h, wd, pads = case
    _, x, w, b, u = problem("wino", case)
    worst = 0.0
    for i, act in enumerate(ACTS):
        bias = b if i % 2 == 0 else None
        threads = 1 + i % 2
        engine.set_num_threads(threads)
        got = K.conv2d_winograd(x, u, bias, pads, activation=act)
        worst = max(worst, check(got, x, w, bias, pads, act, f"{isa} {case} act={act} bias={bias is not None} "
                                 f"threads={threads}", ic))
    # 1 and 2 threads, with a preallocated out holding garbage
    for threads in (1, 2):
        engine.set_num_threads(threads)
        out = np.full((n, oc, h + pads[0] + pads[2] - 2, wd + pads[1] + pads[3] - 2), np.nan, np.float32)
        K.conv2d_winograd(x, u, b, pads, out=out)
        check(out, x, w, b, pads, None, f"{isa} {case} out= threads={threads}", ic)


@pytest.mark.parametrize("case", list(RESIDUAL_CASES.values()), ids=list(RESIDUAL_CASES))
def test_residual(isa, case):
    """y = act(conv + bias + residual) from the output transform, in every driver mode and for a batch: the residual
    is read at each output's own position (a transposed or shifted residual fails the bound)."""
    n, ic, oc, h, wd, pads = case
    g, x, w, b, u = problem("wino-res", case)
    oh, ow = h + pads[0] + pads[2] - 2, wd + pads[1] + pads[3] - 2
    r = (3 * g.standard_normal((n, oc, oh, ow))).astype(np.float32)
    for i, act in enumerate([None, "relu", ("clip", 0.0, 6.0), "silu"]):
        bias = b if i % 2 == 0 else None
        for threads in (1, 2):
            engine.set_num_threads(threads)
            got = K.conv2d_winograd(x, u, bias, pads, activation=act, residual=r)
            check(got, x, w, bias, pads, act, f"{isa} {case} act={act} residual threads={threads}", ic, residual=r)
    with pytest.raises(ValueError, match="residual has shape"):
        K.conv2d_winograd(x, u, b, pads, residual=r[:, :1])
    with pytest.raises(TypeError, match="residual has dtype"):
        K.conv2d_winograd(x, u, b, pads, residual=r.astype(np.float64))


@pytest.mark.parametrize("case", list(THREAD_CASES.values()), ids=list(THREAD_CASES))
def test_one_vs_two_threads_bitwise(isa, case):
    """Both driver modes run the same transforms and GEMM kernels in the same order per output, so the pool size
    (which picks the mode: blocks as tasks, or each step split) does not change a bit of the result."""
    pads = case[5]
    _, x, _, b, u = problem("wino-bits", case)
    got = {}
    for threads in (1, 2):
        engine.set_num_threads(threads)
        got[threads] = K.conv2d_winograd(x, u, b, pads, activation="relu")
    assert np.array_equal(got[1].view(np.int32), got[2].view(np.int32)), f"{isa} {case}: 1 and 2 threads differ"


def test_weights_transform():
    g = rng("wino-u")
    w = g.standard_normal((7, 5, 3, 3)).astype(np.float32)
    u = K.winograd_weights(w)
    assert u.shape == (36, 7, 5) and u.dtype == np.float32
    exact = np.einsum("ik,ockl,jl->ijoc", G, w.astype(np.float64), G).reshape(36, 7, 5)
    mag = np.einsum("ik,ockl,jl->ijoc", np.abs(G), np.abs(w.astype(np.float64)), np.abs(G)).reshape(36, 7, 5)
    # computed in float64 and rounded once: within half an ulp plus the float64 sums' error
    assert np.all(np.abs(u - exact) <= 0.5 * EPS32 * np.abs(exact) + 1e-12 * mag)


def test_realistic_error_vs_output_scale(isa):
    """He-initialized weights on N(0, 1) inputs at the ResNet channel counts: the max error is about 1e-5 of the
    output scale (max |y|), a few times that of im2col + GEMM; 5e-5 is the bar (measured on Zen 3: see the report
    in bench/compare_winograd.py's output, 'wino err')."""
    sizes = [(64, 12), (128, 10), (256, 7), (512, 5)] if not quick() else [(64, 12), (256, 7)]
    for c, hw in sizes:
        g = rng("wino-real", c)
        x = g.standard_normal((1, c, hw, hw)).astype(np.float32)
        w = (g.standard_normal((c, c, 3, 3)) * np.sqrt(2.0 / (9 * c))).astype(np.float32)
        b = (g.standard_normal(c) * 0.1).astype(np.float32)
        y = K.conv2d_winograd(x, K.winograd_weights(w), b, 1)
        ref = direct(x, w, b, (1, 1, 1, 1))
        rel = np.abs(y - ref).max() / np.abs(ref).max()
        assert rel < 5e-5, f"{isa} c={c}: max error {rel:.3g} of the output scale"


def test_empty_batch_and_zero_weights():
    u = K.winograd_weights(np.zeros((4, 3, 3, 3), np.float32))
    assert not u.any()
    y = K.conv2d_winograd(np.zeros((0, 3, 5, 5), np.float32), u, None, 1)
    assert y.shape == (0, 4, 5, 5)
    b = np.arange(4, dtype=np.float32)
    y = K.conv2d_winograd(np.ones((1, 3, 5, 5), np.float32), u, b, 1, activation="relu")
    assert np.array_equal(y, np.broadcast_to(b[None, :, None, None], (1, 4, 5, 5)))


def test_bad_inputs():
    w = np.zeros((4, 3, 3, 3), np.float32)
    u = K.winograd_weights(w)
    x = np.zeros((1, 3, 5, 5), np.float32)
    with pytest.raises(ValueError, match=r"\(OC, IC, 3, 3\)"):
        K.winograd_weights(np.zeros((4, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(OC, IC, 3, 3\)"):
        K.winograd_weights(np.zeros((4, 3, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        K.winograd_weights(w.astype(np.float64))
    with pytest.raises(ValueError, match="no filters"):
        K.winograd_weights(np.zeros((0, 3, 3, 3), np.float32))
    with pytest.raises(TypeError, match="float32"):
        K.conv2d_winograd(x.astype(np.float64), u)
    with pytest.raises(TypeError, match="numpy"):
        K.conv2d_winograd(x.tolist(), u)
    with pytest.raises(ValueError, match="4-D"):
        K.conv2d_winograd(x[0], u)
    with pytest.raises(ValueError, match="36, OC, IC"):
        K.conv2d_winograd(x, w)
    with pytest.raises(ValueError, match="input channels"):
        K.conv2d_winograd(np.zeros((1, 2, 5, 5), np.float32), u)
    with pytest.raises(ValueError, match="bias has shape"):
        K.conv2d_winograd(x, u, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="smaller than the 3x3 kernel"):
        K.conv2d_winograd(np.zeros((1, 3, 2, 5), np.float32), u, None, 0)
    with pytest.raises(ValueError, match="pads must be >= 0"):
        K.conv2d_winograd(x, u, None, (-1, 0, 0, 0))
    with pytest.raises(ValueError, match="pads must be"):
        K.conv2d_winograd(x, u, None, (1, 1, 1))
    with pytest.raises(ValueError, match="unknown activation"):
        K.conv2d_winograd(x, u, None, 1, activation="swoosh")
    with pytest.raises(ValueError, match="out has shape"):
        K.conv2d_winograd(x, u, None, 1, out=np.empty((1, 4, 3, 3), np.float32))
    ro = np.empty((1, 4, 5, 5), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        K.conv2d_winograd(x, u, None, 1, out=ro)
    # the binding checks element counts itself (a wrong size never reaches C)
    with pytest.raises(ValueError, match="elements"):
        _k.wino_conv_f32(x, u[:, :2].copy(), None, np.empty((1, 4, 5, 5), np.float32), 1, 3, 5, 5, 4, (1, 1, 1, 1))
    with pytest.raises(ValueError, match="smaller than the 3x3"):
        _k.wino_conv_f32(x, u, None, np.empty((1, 4, 5, 5), np.float32), 1, 3, 1, 5, 4, (0, 0, 0, 0))


def test_out_aliasing_input():
    """out sharing memory with x goes through a temporary (same result as without out)."""
    g = rng("wino-alias")
    buf = g.standard_normal(1 * 4 * 6 * 6).astype(np.float32)
    x = buf.reshape(1, 4, 6, 6)
    u = K.winograd_weights(g.standard_normal((4, 4, 3, 3)).astype(np.float32))
    want = K.conv2d_winograd(x.copy(), u, None, 1)
    got = K.conv2d_winograd(x, u, None, 1, out=x)
    assert np.array_equal(got, want)
