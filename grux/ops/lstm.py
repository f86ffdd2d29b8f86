"""LSTM (Hochreiter & Schmidhuber 1997, with forget gate, Gers et al. 2000).

Parameter layout, gate order i, f, g, o as in PyTorch ``nn.LSTM``:

    w_ih : (F, 4H), w_hh : (H, 4H), b_ih : (4H,), b_hh : (4H,)

Equations (``xp_t = x_t W_ih + b_ih`` is computed for all steps before the scan):

    [ĩ, f̃, g̃, õ] = xp_t + h_{t−1} W_hh + b_hh
    c_t = σ(f̃) ⊙ c_{t−1} + σ(ĩ) ⊙ tanh(g̃)
    h_t = σ(õ) ⊙ tanh(c_t)

The state is the pair ``(h, c)``, each ``(B, H)``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from grux.ops.scan import check_scan_args, masked_scan, sigmoid

Array = jax.Array


def lstm_cell(state: tuple[Array, Array], xp: Array, w_hh: Array, b_hh: Array | None
              ) -> tuple[Array, Array]:
    """One LSTM step. ``state=(h, c)`` each ``(B, H)``; ``xp: (B, 4H)``. Returns ``(h, c)``."""
    h, c = state
    hdim = h.shape[-1]
    pre = xp + h @ w_hh
    if b_hh is not None:
        pre = pre + b_hh
    i = sigmoid(pre[..., :hdim])
    f = sigmoid(pre[..., hdim:2 * hdim])
    g = jnp.tanh(pre[..., 2 * hdim:3 * hdim])
    o = sigmoid(pre[..., 3 * hdim:])
    c_new = f * c + i * g
    return o * jnp.tanh(c_new), c_new


def lstm_scan(xp: Array, state0: tuple[Array, Array], w_hh: Array, b_hh: Array | None,
              mask: Array | None = None, *, unroll: int = 1, remat: bool = False
              ) -> tuple[Array, tuple[Array, Array]]:
    """Run an LSTM over ``xp: (T, B, 4H)`` from ``state0=(h0, c0)``.

    Returns ``(outputs h_t: (T, B, H), (h_T, c_T))``; masking as in :mod:`grux.ops.scan`.
    With a rank-3 ``w_hh (D, H, 4H)``, ``D`` stacked LSTMs run as one scan (the shapes of
    :func:`grux.ops.scan.check_scan_args`; e.g. both directions of a bidirectional layer,
    :func:`grux.ops.bidirectional_scan`), one batched recurrent matmul per step.
    """
    h0, c0 = state0
    mask, b_hh = check_scan_args(xp, (h0, c0), w_hh, b_hh, mask, blocks=4, names=("h0", "c0"))

    def step(state, x):
        new = lstm_cell(state, x, w_hh, b_hh)
        return new, new[0]

    return masked_scan(step, (h0, c0), xp, mask, unroll=unroll, remat=remat)
