"""Plain NumPy implementations of the recurrence equations, written independently of grux.

Each works on one sequence at a time, batch-major ``(B, T, F)`` inputs, per-gate weight
matrices in PyTorch's ``(out, in)`` orientation, and an explicit Python loop over time that
stops at each sequence's length. Outputs past a sequence's length are zero.
"""
import numpy as np


def sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def gates(mat, k):
    """Split a (k·H, ...) or (k·H,) PyTorch-layout array into k gate blocks."""
    return np.split(mat, k, axis=0)


def run(cell, x, lengths, h0):
    """Drive ``h = cell(h, x_t)`` per sequence; returns outputs (B, T, H) and final states."""
    b, t, _ = x.shape
    outs, finals = [], []
    for i in range(b):
        h = h0[i] if not isinstance(h0, tuple) else tuple(s[i] for s in h0)
        ys = []
        for s in range(lengths[i]):
            h = cell(h, x[i, s])
            ys.append(h[0] if isinstance(h, tuple) else h)
        hdim = (h[0] if isinstance(h, tuple) else h).shape[-1]
        y = np.zeros((t, hdim))
        if ys:
            y[:lengths[i]] = np.stack(ys)
        outs.append(y)
        finals.append(h)
    if isinstance(finals[0], tuple):
        return np.stack(outs), tuple(np.stack(p) for p in zip(*finals))
    return np.stack(outs), np.stack(finals)


def gru_cho(p):
    """Cho et al. 2014: r,z = σ(W x + U h + b); h~ = tanh(W x + U(r⊙h) + b);
    h' = (1−z)h + z h~.  p: weight_ih (3H,F), weight_hh (3H,H), bias_ih (3H,)."""
    wr, wz, wn = gates(p["weight_ih"], 3)
    ur, uz, un = gates(p["weight_hh"], 3)
    br, bz, bn = gates(p["bias_ih"], 3)

    def cell(h, x):
        r = sig(wr @ x + ur @ h + br)
        z = sig(wz @ x + uz @ h + bz)
        hh = np.tanh(wn @ x + un @ (r * h) + bn)
        return (1 - z) * h + z * hh
    return cell


def gru_cudnn(p):
    """PyTorch nn.GRU docs: r,z = σ(W x + b_i + U h + b_h); n = tanh(W_n x + b_in +
    r(U_n h + b_hn)); h' = (1−z) n + z h."""
    wr, wz, wn = gates(p["weight_ih"], 3)
    ur, uz, un = gates(p["weight_hh"], 3)
    bir, biz, bin_ = gates(p["bias_ih"], 3)
    bhr, bhz, bhn = gates(p["bias_hh"], 3)

    def cell(h, x):
        r = sig(wr @ x + bir + ur @ h + bhr)
        z = sig(wz @ x + biz + uz @ h + bhz)
        n = np.tanh(wn @ x + bin_ + r * (un @ h + bhn))
        return (1 - z) * n + z * h
    return cell


def lstm(p):
    """PyTorch nn.LSTM docs, gate order i, f, g, o."""
    wi, wf, wg, wo = gates(p["weight_ih"], 4)
    ui, uf, ug, uo = gates(p["weight_hh"], 4)
    bi, bf, bg, bo = [a + b for a, b in zip(gates(p["bias_ih"], 4), gates(p["bias_hh"], 4))]

    def cell(state, x):
        h, c = state
        i = sig(wi @ x + ui @ h + bi)
        f = sig(wf @ x + uf @ h + bf)
        g = np.tanh(wg @ x + ug @ h + bg)
        o = sig(wo @ x + uo @ h + bo)
        c = f * c + i * g
        return o * np.tanh(c), c
    return cell


def tanh_rnn(p):
    """h' = tanh(W x + b_ih + U h + b_hh)."""
    def cell(h, x):
        return np.tanh(p["weight_ih"] @ x + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"])
    return cell


def mingru(p):
    """Feng et al. 2024: z = σ(W_z x + b_z); h~ = g(W_h x + b_h); h' = (1−z)h + z h~,
    g(v) = v + 0.5 for v ≥ 0 else σ(v)."""
    wz, wh = gates(p["weight_ih"], 2)
    bz, bh = gates(p["bias_ih"], 2)

    def cell(h, x):
        z = sig(wz @ x + bz)
        v = wh @ x + bh
        g = np.where(v >= 0, v + 0.5, sig(v))
        return (1 - z) * h + z * g
    return cell


def from_layer(layer):
    """Read a grux layer's parameters into the PyTorch ``(out, in)`` layout, float64."""
    p = {"weight_ih": np.asarray(layer.w_ih[...], np.float64).T}
    if getattr(layer, "w_hh", None) is not None:
        p["weight_hh"] = np.asarray(layer.w_hh[...], np.float64).T
    p["bias_ih"] = np.asarray(layer.b_ih[...], np.float64)
    if getattr(layer, "b_hh", None) is not None:
        p["bias_hh"] = np.asarray(layer.b_hh[...], np.float64)
    return p
