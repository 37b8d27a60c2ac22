"""Recurrent ops: LSTM, GRU, RNN (opset 1 through 22; see engine.ops._registry for the conventions).

How a run is organised (the same for the three ops):
- the builder parses the attributes and, when W/R/B/P are constants (the usual case), lays the weights out once:
  the input weights of every direction side by side and transposed, `Wt` (input, D*G*H), with the input and
  recurrent biases folded into one vector where the equations allow it, and the recurrent weights transposed,
  `Rt` (D, H, G*H) (D directions, G gates, H hidden units);
- per run, ONE GEMM computes the input projections of every time step and direction (`X @ Wt + bias` through
  engine's GEMM for float32), then the recurrence does one small matmul per step and direction and the gate
  math with vectorised numpy, every direction in the same step (the reverse direction reads its inputs
  time-reversed, per batch entry when `sequence_lens` is given, so each step treats all directions alike);
- batch entries past their `sequence_lens` keep their state and write zeros to Y, so Y_h/Y_c hold the state of
  the last valid step, as onnxruntime does.

Activation parameters (`activation_alpha`/`activation_beta`) are consumed in order by the activations that take
them (LeakyRelu, ThresholdedRelu, Elu: alpha; HardSigmoid, Affine, ScaledTanh: alpha and beta), as onnxruntime
does; an activation without a value left takes the ONNX default of the standalone op. `clip` bounds every gate's
pre-activation; LSTM `input_forget` couples the gates as f = 1 - i.
"""
from __future__ import annotations

import numpy as np

from engine._C import _kernels as _k
from engine.linalg import ACTIVATIONS as _GEMM_ACTS
from engine.ops._registry import NodeCtx, Unsupported, register


_kgemm = _k.gemm                       # c = act(a @ b + beta c + bias) in place; checks its arguments
_BIAS_COL = _k.BIAS_COL
_BIAS_NONE = _k.BIAS_NONE
_SIGMOID = _GEMM_ACTS["sigmoid"][0]

# ---------------------------------------------------------------------------------------------------------
# activations: each writes its result into its argument (a scratch array owned by the op) and returns it

def _sigmoid(x):
    # 0.5 * (1 + tanh(x / 2)): no overflow for large |x|, unlike 1 / (1 + exp(-x))
    np.multiply(x, 0.5, out=x)
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5
    return x


def _tanh(x):
    return np.tanh(x, out=x)


def _relu(x):
    return np.maximum(x, 0, out=x)


def _make_act(name: str, alpha, beta):
    if name == "sigmoid":
        return _sigmoid
    if name == "tanh":
        return _tanh
    if name == "relu":
        return _relu
    if name == "hardsigmoid":
        def f(x):
            x *= alpha
            x += beta
            return np.clip(x, 0.0, 1.0, out=x)
        return f
    if name == "affine":
        def f(x):
            x *= alpha
            x += beta
            return x
        return f
    if name == "leakyrelu":
        def f(x):
            return np.multiply(x, np.where(x >= 0, 1.0, alpha).astype(x.dtype), out=x)
        return f
    if name == "thresholdedrelu":
        def f(x):
            x[x <= alpha] = 0
            return x
        return f
    if name == "scaledtanh":
        def f(x):
            x *= beta
            np.tanh(x, out=x)
            x *= alpha
            return x
        return f
    if name == "elu":
        def f(x):
            neg = x < 0
            x[neg] = alpha * np.expm1(x[neg])
            return x
        return f
    if name == "softsign":
        def f(x):
            return np.divide(x, 1.0 + np.abs(x), out=x)
        return f
    if name == "softplus":
        def f(x):
            return np.logaddexp(x, 0.0, out=x)
        return f
    raise AssertionError(name)


# name (lower case) -> default (alpha, beta) of the parameters it takes (empty: none)
_ACT_PARAMS = {
    "sigmoid": (), "tanh": (), "relu": (), "softsign": (), "softplus": (),
    "leakyrelu": (0.01,), "thresholdedrelu": (1.0,), "elu": (1.0,),
    "hardsigmoid": (0.2, 0.5), "affine": (1.0, 0.0), "scaledtanh": (1.0, 1.0),
}

_DEFAULT_ACTS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _parse_activations(ctx: NodeCtx, op: str, n_dir: int) -> list[list]:
    """One list of activation callables per direction (f, g, h for LSTM; f, g for GRU; f for RNN)."""
    per_dir = len(_DEFAULT_ACTS[op])
    names = ctx.attr("activations", None)
    if names is None:
        names = list(_DEFAULT_ACTS[op]) * n_dir
    else:
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
        if len(names) == per_dir and n_dir == 2:
            names = names * 2
        if len(names) != per_dir * n_dir:
            raise Unsupported(f"{op} with {n_dir} direction(s) needs {per_dir * n_dir} activations, got "
                              f"{len(names)}: {names}")
    alphas = list(ctx.attr("activation_alpha", []) or [])
    betas = list(ctx.attr("activation_beta", []) or [])
    ai = bi = 0
    funcs = []
    for n in names:
        key = n.lower()
        if key not in _ACT_PARAMS:
            raise Unsupported(f"{op}: unknown activation {n!r} (known: Sigmoid, Tanh, Relu, HardSigmoid, Affine, "
                              "LeakyRelu, ThresholdedRelu, ScaledTanh, Elu, Softsign, Softplus)")
        defaults = _ACT_PARAMS[key]
        alpha = beta = None
        if len(defaults) >= 1:
            alpha = float(alphas[ai]) if ai < len(alphas) else defaults[0]
            ai += ai < len(alphas)
        if len(defaults) == 2:
            beta = float(betas[bi]) if bi < len(betas) else defaults[1]
            bi += bi < len(betas)
        funcs.append((key, alpha, beta))
    out = []
    for d in range(n_dir):
        out.append([(spec, _make_act(*spec)) for spec in funcs[d * per_dir:(d + 1) * per_dir]])
    return out


def _applier(acts: list[list], k: int):
    """The k-th activation applied to a (D, ...) array: once when every direction uses the same function."""
    specs = [a[k][0] for a in acts]
    fns = [a[k][1] for a in acts]
    if all(s == specs[0] for s in specs):
        f0 = fns[0]
        return f0

    def apply(x):
        for d, f in enumerate(fns):
            f(x[d])
        return x
    return apply


# ---------------------------------------------------------------------------------------------------------
# weight layout


def _prepare_weights(op: str, W, R, B, P, n_dir: int, hidden: int, dtype, linear_before_reset: bool):
    """Checks the weight shapes and lays them out for the run (see the module docstring)."""
    G = _GATES[op]
    GH = G * hidden
    W = np.asarray(W)
    R = np.asarray(R)
    if W.ndim != 3 or W.shape[0] != n_dir or W.shape[1] != GH:
        raise ValueError(f"{op}: W has shape {list(W.shape)}, expected [{n_dir}, {GH}, input_size]")
    if R.shape != (n_dir, GH, hidden):
        raise ValueError(f"{op}: R has shape {list(R.shape)}, expected [{n_dir}, {GH}, {hidden}]")
    n_in = W.shape[2]
    Wt = np.ascontiguousarray(W.astype(dtype, copy=False).transpose(2, 0, 1).reshape(n_in, n_dir * GH))
    Rt = np.ascontiguousarray(R.astype(dtype, copy=False).transpose(0, 2, 1))         # (D, H, GH)
    bias = np.zeros((n_dir, GH), dtype)
    rb_h = None                                                                         # GRU linear_before_reset
    if B is not None:
        B = np.asarray(B)
        if B.shape != (n_dir, 2 * GH):
            raise ValueError(f"{op}: B has shape {list(B.shape)}, expected [{n_dir}, {2 * GH}]")
        B = B.astype(dtype, copy=False)
        bias = B[:, :GH] + B[:, GH:]
        if op == "GRU" and linear_before_reset:
            bias[:, 2 * hidden:] = B[:, 2 * hidden:GH]                                 # Wb_h only
            rb_h = np.ascontiguousarray(B[:, GH + 2 * hidden:].reshape(n_dir, 1, hidden))
    if op == "GRU" and linear_before_reset and rb_h is None:
        rb_h = np.zeros((n_dir, 1, hidden), dtype)
    peep = None
    if P is not None:
        P = np.asarray(P)
        if P.shape != (n_dir, 3 * hidden):
            raise ValueError(f"{op}: P has shape {list(P.shape)}, expected [{n_dir}, {3 * hidden}]")
        P = P.astype(dtype, copy=False).reshape(n_dir, 3, 1, hidden)
        peep = (np.ascontiguousarray(P[:, 0]), np.ascontiguousarray(P[:, 1]), np.ascontiguousarray(P[:, 2]))
    # the recurrent weights split into the sigmoid gates (LSTM i, o, f; GRU z, r) and the rest, contiguous
    cut = {"LSTM": 3 * hidden, "GRU": 2 * hidden, "RNN": hidden}[op]
    Rs = (np.ascontiguousarray(Rt[:, :, :cut]), np.ascontiguousarray(Rt[:, :, cut:]))
    return n_in, Wt, np.ascontiguousarray(bias.reshape(-1)), Rt, rb_h, peep, Rs


# ---------------------------------------------------------------------------------------------------------
# the builder


def _build(ctx: NodeCtx, op: str):
    direction = ctx.attr_str("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise Unsupported(f"{op}: unknown direction {direction!r}")
    n_dir = 2 if direction == "bidirectional" else 1
    rev = [direction == "reverse"] if n_dir == 1 else [False, True]
    layout = int(ctx.attr("layout", 0)) if ctx.version >= 14 else 0
    if layout not in (0, 1):
        raise Unsupported(f"{op}: layout must be 0 or 1, got {layout}")
    clip = ctx.attr("clip", None)
    if clip is not None:
        clip = float(clip)
        if not clip > 0:
            raise Unsupported(f"{op}: clip must be positive, got {clip}")
    input_forget = bool(ctx.attr("input_forget", 0)) if op == "LSTM" else False
    lbr = bool(ctx.attr("linear_before_reset", 0)) if op == "GRU" else False
    if op == "GRU" and ctx.version < 3 and lbr:
        raise Unsupported("GRU-1 has no linear_before_reset")
    hidden_attr = ctx.attr("hidden_size", None)
    acts = _parse_activations(ctx, op, n_dir)
    A = [_applier(acts, k) for k in range(len(_DEFAULT_ACTS[op]))]
    dt_in = ctx.in_dtype(0)
    if dt_in is not None and dt_in not in (np.float16, np.float32, np.float64):
        raise Unsupported(f"{op}: input type {dt_in} is not float16/float32/float64")
    n_inputs = ctx.n_inputs
    if op == "LSTM" and n_inputs > 8 or op != "LSTM" and n_inputs > 6:
        raise Unsupported(f"{op}: too many inputs ({n_inputs})")
    # the fast step: float32, default activations, no clip/peepholes/input_forget: the sigmoid gates come out of
    # engine's GEMM epilogue, accumulated onto the input projections in place
    default_acts = all([spec for spec, _ in a] == [(n.lower(), None, None) for n in _DEFAULT_ACTS[op]] for a in acts)
    fast_ok = default_acts and clip is None and not input_forget and not (op == "LSTM" and ctx.has_input(7))
    want_y, want_h = ctx.has_output(0), ctx.has_output(1)
    want_c = op == "LSTM" and ctx.has_output(2)
    n_out = ctx.n_outputs

    def hidden_of(R):
        h = int(np.shape(R)[-1])
        if hidden_attr is not None and int(hidden_attr) != h:
            raise ValueError(f"{op}: hidden_size={hidden_attr} but R has shape {list(np.shape(R))}")
        return h

    const_w = None
    cW, cR = ctx.const(1), ctx.const(2)
    cB = ctx.const(3)
    cP = ctx.const(7) if op == "LSTM" else None
    if cW is not None and cR is not None and (cB is not None or not ctx.has_input(3)) \
            and (op != "LSTM" or cP is not None or not ctx.has_input(7)):
        cdt = np.float64 if dt_in == np.float64 else np.float32
        try:
            const_w = (cdt,) + _prepare_weights(op, cW, cR, cB, cP, n_dir, hidden_of(cR), cdt, lbr)
        except ValueError as e:
            raise Unsupported(str(e)) from None

    def run(X, W, R, B=None, seq_lens=None, h0=None, c0=None, P=None):
        if X.ndim != 3:
            raise ValueError(f"{op}: X must be 3-D, got shape {list(X.shape)}")
        cdt = np.float64 if X.dtype == np.float64 else np.float32
        if const_w is not None and const_w[0] == cdt:
            _, n_in, Wt, bias, Rt, rb_h, peep, Rs = const_w
        else:
            n_in, Wt, bias, Rt, rb_h, peep, Rs = _prepare_weights(op, W, R, B, P, n_dir, hidden_of(R), cdt, lbr)
        H = Rt.shape[1]
        GH = Rt.shape[2]
        if layout == 0:
            S, NB = X.shape[0], X.shape[1]
        else:
            NB, S = X.shape[0], X.shape[1]
        if X.shape[2] != n_in:
            raise ValueError(f"{op}: X has {X.shape[2]} features but W expects {n_in}")

        # one GEMM for the input projections of every step and direction: (S*NB or NB*S, D*GH)
        x2 = X.reshape(-1, n_in)
        if cdt == np.float32:
            xw = np.empty((x2.shape[0], Wt.shape[1]), np.float32)
            if xw.size:
                _kgemm(np.ascontiguousarray(x2, dtype=np.float32), Wt, xw, False, False, 1.0, 0.0, bias,
                       _BIAS_COL, 0, 0.0, 0.0)
        else:
            xw = x2.astype(cdt, copy=False) @ Wt + bias
        if layout == 0:
            xw = xw.reshape(S, NB, n_dir, GH).transpose(0, 2, 1, 3)                      # (S, D, NB, GH)
        else:
            xw = xw.reshape(NB, S, n_dir, GH).transpose(1, 2, 0, 3)

        # sequence lengths -> per step validity mask and the time order of the reverse direction
        lens = None
        if seq_lens is not None:
            lens = np.asarray(seq_lens).astype(np.int64).reshape(-1)
            if lens.shape[0] != NB:
                raise ValueError(f"{op}: sequence_lens has {lens.shape[0]} entries for batch size {NB}")
            if lens.size and (lens.min() < 0 or lens.max() > S):
                raise ValueError(f"{op}: sequence_lens values must be in [0, {S}], got {lens.tolist()}")
            if np.all(lens == S):
                lens = None
        if lens is not None:
            steps = np.arange(S)[:, None]
            valid = steps < lens[None, :]                                                  # (S, NB)
            # reverse order per batch entry: step t reads time len-1-t (an involution on each prefix)
            ridx = np.where(valid, lens[None, :] - 1 - steps, steps)
            bidx = np.arange(NB)[None, :]
            vmask = valid[:, None, :, None]                                                # (S, 1, NB, 1)
        if any(rev):
            xp = np.empty((S, n_dir, NB, GH), cdt)
            for d in range(n_dir):
                if not rev[d]:
                    xp[:, d] = xw[:, d]
                elif lens is None:
                    xp[:, d] = xw[::-1, d]
                else:
                    xp[:, d] = xw[ridx, d, bidx]
            xw = xp

        # initial state, as (D, NB, H)
        def state(v, name):
            if v is None:
                return np.zeros((n_dir, NB, H), cdt)
            v = np.asarray(v)
            if layout == 1:
                if v.shape != (NB, n_dir, H):
                    raise ValueError(f"{op}: {name} has shape {list(v.shape)}, expected [{NB}, {n_dir}, {H}]")
                v = v.transpose(1, 0, 2)
            elif v.shape != (n_dir, NB, H):
                raise ValueError(f"{op}: {name} has shape {list(v.shape)}, expected [{n_dir}, {NB}, {H}]")
            return np.ascontiguousarray(v, dtype=cdt)                                     # never written in place

        h = state(h0, "initial_h")
        c = state(c0, "initial_c") if op == "LSTM" else None
        Y = np.empty((S, n_dir, NB, H), cdt) if want_y else None

        def mm(hh, Rp):
            """hh (D, NB, H) @ Rp (D, H, n) per direction: engine's GEMM for float32 (numpy's BLAS may start its
            own threads), numpy otherwise."""
            if cdt != np.float32 or NB == 0:
                return np.matmul(hh, Rp)
            out = np.empty((n_dir, NB, Rp.shape[2]), np.float32)
            for d in range(n_dir):
                _kgemm(np.ascontiguousarray(hh[d]), Rp[d], out[d], False, False, 1.0, 0.0, None, _BIAS_NONE, 0,
                       0.0, 0.0)
            return out

        def rmul(hh):
            return mm(hh, Rt)

        if op == "GRU" and not lbr:
            Rzr, Rh = Rs

        fast = fast_ok and cdt == np.float32 and peep is None and NB > 0
        if fast:
            Ra, Rb = Rs
            H2, H3 = 2 * H, 3 * H
        direct = want_y and lens is None              # the fast step writes H straight into Y[t]
        if fast and direct and n_dir == 1 and op == "GRU":
            # the small-GRU case (voice activity, wake words): per step the numpy version is ~10 calls of pure call
            # overhead, so the whole recurrence runs in C (the same GEMMs with the sigmoid epilogue, then the
            # candidate, tanh and the update per element)
            x1 = xw[:, 0]
            if not x1.flags.c_contiguous:
                x1 = np.ascontiguousarray(x1)            # layout 1 with a batch: a scratch copy
            _k.gru_steps_f32(x1, Y[:, 0], Ra[0], Rb[0], h[0], rb_h[0, 0] if lbr else None, _SIGMOID)
            if S:
                h = Y[S - 1]
            S_loop = 0
        else:
            S_loop = S
        for t in range(S_loop):
            xt = xw[t]
            if fast:
                yt = Y[t] if direct else None
                g = xt                                   # (D, NB, GH) view of scratch: overwritten in place
                if op == "LSTM":
                    for d in range(n_dir):
                        gd, hd = g[d], h[d]
                        _kgemm(hd, Ra[d], gd[:, :H3], False, False, 1.0, 1.0, None, _BIAS_NONE, _SIGMOID, 0.0, 0.0)
                        _kgemm(hd, Rb[d], gd[:, H3:], False, False, 1.0, 1.0, None, _BIAS_NONE, 0, 0.0, 0.0)
                    gc = g[..., H3:]
                    np.tanh(gc, out=gc)
                    gc *= g[..., :H]
                    cn = g[..., H2:H3] * c
                    cn += gc
                    hn = np.tanh(cn, out=yt)
                    hn *= g[..., H:H2]
                elif op == "GRU":
                    for d in range(n_dir):
                        _kgemm(h[d], Ra[d], g[d][:, :H2], False, False, 1.0, 1.0, None, _BIAS_NONE, _SIGMOID,
                               0.0, 0.0)
                    z, r = g[..., :H], g[..., H:H2]
                    hh = g[..., H2:]
                    if not lbr:
                        rh = r * h
                        for d in range(n_dir):
                            _kgemm(rh[d], Rb[d], g[d][:, H2:], False, False, 1.0, 1.0, None, _BIAS_NONE, 0, 0.0, 0.0)
                    else:
                        tmp = np.empty((n_dir, NB, H), np.float32)
                        for d in range(n_dir):
                            _kgemm(h[d], Rb[d], tmp[d], False, False, 1.0, 0.0, rb_h[d, 0], _BIAS_COL, 0, 0.0, 0.0)
                        tmp *= r
                        hh += tmp
                    np.tanh(hh, out=hh)
                    hn = np.subtract(h, hh, out=yt)
                    hn *= z
                    hn += hh
                else:
                    for d in range(n_dir):
                        _kgemm(h[d], Ra[d], g[d], False, False, 1.0, 1.0, None, _BIAS_NONE, 0, 0.0, 0.0)
                    hn = np.tanh(g, out=yt)
            elif op == "LSTM":
                g = rmul(h)
                g += xt
                gi, go, gf, gc = g[..., :H], g[..., H:2 * H], g[..., 2 * H:3 * H], g[..., 3 * H:]
                if peep is not None:
                    gi += peep[0] * c
                    gf += peep[2] * c
                    if clip is not None:                      # o is clipped below, once its peephole is in
                        for v in (gi, gf, gc):
                            np.clip(v, -clip, clip, out=v)
                    A[0](gi)
                    if input_forget:
                        np.subtract(1.0, gi, out=gf)
                    else:
                        A[0](gf)
                else:
                    if clip is not None:
                        np.clip(g, -clip, clip, out=g)
                    if input_forget:
                        A[0](g[..., :2 * H])
                        np.subtract(1.0, gi, out=gf)
                    else:
                        A[0](g[..., :3 * H])
                A[1](gc)
                cn = gf * c
                gc *= gi
                cn += gc
                if peep is not None:
                    go += peep[1] * cn
                    if clip is not None:
                        np.clip(go, -clip, clip, out=go)
                    A[0](go)
                hn = A[2](cn.copy())
                hn *= go
            elif op == "GRU":
                if lbr:
                    hr = rmul(h)
                    g = hr[..., :2 * H]
                    g += xt[..., :2 * H]
                    if clip is not None:
                        np.clip(g, -clip, clip, out=g)
                    A[0](g)
                    z, r = g[..., :H], g[..., H:]
                    hh = hr[..., 2 * H:]
                    hh += rb_h
                    hh *= r
                    hh += xt[..., 2 * H:]
                else:
                    g = mm(h, Rzr)
                    g += xt[..., :2 * H]
                    if clip is not None:
                        np.clip(g, -clip, clip, out=g)
                    A[0](g)
                    z, r = g[..., :H], g[..., H:]
                    rh = r * h
                    hh = mm(rh, Rh)
                    hh += xt[..., 2 * H:]
                if clip is not None:
                    np.clip(hh, -clip, clip, out=hh)
                A[1](hh)
                # Ht = (1 - z) * hh + z * h = hh + z * (h - hh)
                hn = h - hh
                hn *= z
                hn += hh
            else:
                hn = rmul(h)
                hn += xt
                if clip is not None:
                    np.clip(hn, -clip, clip, out=hn)
                A[0](hn)
            if lens is None:
                h = hn
                if op == "LSTM":
                    c = cn
                if want_y and not (fast and direct):
                    Y[t] = hn
            else:
                m = vmask[t]
                h = np.where(m, hn, h)
                if op == "LSTM":
                    c = np.where(m, cn, c)
                if want_y:
                    np.multiply(hn, m, out=Y[t])

        if direct and S:
            h = h.copy()                                 # a view of Y[S-1], which the reversal below rewrites
        outs = []
        dt_out = X.dtype
        if want_y:
            for d in range(n_dir):
                if rev[d]:
                    Y[:, d] = Y[::-1, d] if lens is None else Y[ridx, d, bidx]
            y = Y.transpose(2, 0, 1, 3) if layout == 1 else Y
            outs.append(np.ascontiguousarray(y, dtype=dt_out))
        else:
            outs.append(None)

        def final(v):
            v = v.transpose(1, 0, 2) if layout == 1 else v
            return np.ascontiguousarray(v, dtype=dt_out)
        if n_out > 1:
            outs.append(final(h) if want_h else None)
        if n_out > 2:
            outs.append(final(c) if want_c else None)
        return tuple(outs[:n_out])

    if op == "LSTM":
        return run

    def run_gru_rnn(X, W, R, B=None, seq_lens=None, h0=None):
        return run(X, W, R, B, seq_lens, h0)
    return run_gru_rnn


@register("LSTM", shape_inputs=())
def lstm(ctx: NodeCtx):
    return _build(ctx, "LSTM")


@register("GRU", shape_inputs=())
def gru(ctx: NodeCtx):
    return _build(ctx, "GRU")


@register("RNN", shape_inputs=())
def rnn(ctx: NodeCtx):
    return _build(ctx, "RNN")
