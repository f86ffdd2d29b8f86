"""Elman tanh-RNN, the baseline of Chung et al. 2014 (Table 2).

    h_t = tanh(x_t W_ih + b_ih + h_{t−1} W_hh + b_hh)

with ``w_ih: (F, H)``, ``w_hh: (H, H)``, biases ``(H,)``, as PyTorch ``nn.RNN``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from grux.ops.scan import masked_scan

Array = jax.Array


def tanh_rnn_cell(h: Array, xp: Array, w_hh: Array, b_hh: Array | None) -> Array:
    """One step from ``xp = x W_ih + b_ih``: ``tanh(xp + h W_hh + b_hh)``; shapes ``(B, H)``."""
    pre = xp + h @ w_hh
    return jnp.tanh(pre if b_hh is None else pre + b_hh)


def tanh_rnn_scan(xp: Array, h0: Array, w_hh: Array, b_hh: Array | None,
                  mask: Array | None = None, *, unroll: int = 1, remat: bool = False
                  ) -> tuple[Array, Array]:
    """Run over ``xp: (T, B, H)``; returns ``(outputs (T, B, H), h_T (B, H))``."""
    hdim = h0.shape[-1]
    if xp.ndim != 3 or xp.shape[-1] != hdim:
        raise ValueError(f"xp must have shape (T, B, H={hdim}), got {xp.shape}")
    if w_hh.shape != (hdim, hdim):
        raise ValueError(f"w_hh must have shape ({hdim}, {hdim}), got {w_hh.shape}")

    def step(h, x):
        h_new = tanh_rnn_cell(h, x, w_hh, b_hh)
        return h_new, h_new

    return masked_scan(step, h0, xp, mask, unroll=unroll, remat=remat)
