"""Elman tanh-RNN, the baseline of Chung et al. 2014 (Table 2).

    h_t = tanh(x_t W_ih + b_ih + h_{t−1} W_hh + b_hh)

with ``w_ih: (F, H)``, ``w_hh: (H, H)``, biases ``(H,)``, as PyTorch ``nn.RNN``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from grux.ops.scan import check_scan_args, masked_scan

Array = jax.Array


def tanh_rnn_cell(h: Array, xp: Array, w_hh: Array, b_hh: Array | None) -> Array:
    """One step from ``xp = x W_ih + b_ih``: ``tanh(xp + h W_hh + b_hh)``; shapes ``(B, H)``."""
    pre = xp + h @ w_hh
    return jnp.tanh(pre if b_hh is None else pre + b_hh)


def tanh_rnn_scan(xp: Array, h0: Array, w_hh: Array, b_hh: Array | None,
                  mask: Array | None = None, *, unroll: int = 1, remat: bool = False
                  ) -> tuple[Array, Array]:
    """Run over ``xp: (T, B, H)``; returns ``(outputs (T, B, H), h_T (B, H))``.

    With a rank-3 ``w_hh (D, H, H)``, ``D`` stacked RNNs run as one scan (the shapes of
    :func:`grux.ops.scan.check_scan_args`; e.g. both directions of a bidirectional layer,
    :func:`grux.ops.bidirectional_scan`), one batched recurrent matmul per step.
    """
    mask, b_hh = check_scan_args(xp, (h0,), w_hh, b_hh, mask, blocks=1)

    def step(h, x):
        h_new = tanh_rnn_cell(h, x, w_hh, b_hh)
        return h_new, h_new

    return masked_scan(step, h0, xp, mask, unroll=unroll, remat=remat)
