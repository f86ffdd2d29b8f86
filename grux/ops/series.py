"""Pure array functions for series models: reversible instance normalisation, channel
folding and segmenting (SegRNN, Lin et al. 2023, arXiv:2308.11200). No Flax, no configs.

Shapes: a batch of multichannel series is ``x (B, T, C)`` (time, then channel).

* Reversible instance normalisation (RevIN, Kim et al. 2022), per series and channel over
  the time axis: ``z = ((x − loc) / s) · γ + β`` and back ``x = ((z − β) / γ) · s + loc``,
  with ``loc`` the last value ``x_T`` (``"last"``, SegRNN's default), the mean (``"mean"``)
  or 0 (``"none"``); ``s = √(var_t(x) + ε)`` when ``scale`` is set, else 1; ``γ, β (C,)``
  an optional learned affine map (``None``: identity).
* Channel folding (channel independence): ``(B, T, C) → (B·C, T)`` (row ``b·C + c``) and
  back; every channel becomes its own univariate series, read by shared weights.
* Segments: ``(..., T) → (..., T/w, w)``, segment ``k`` holding steps ``k·w .. k·w + w − 1``,
  and back.
"""
from __future__ import annotations

import jax.numpy as jnp

CENTERS = ("last", "mean", "none")
REVIN_EPS = 1e-5


def revin_stats(x, center: str = "last", scale: bool = False, eps: float = REVIN_EPS):
    """``(loc, s)``, each ``(B, 1, C)``, of ``x (B, T, C)`` (see the module docstring)."""
    x = jnp.asarray(x)
    if center not in CENTERS:
        raise ValueError(f"center must be one of {CENTERS}, got {center!r}")
    if center == "last":
        loc = x[:, -1:, :]
    elif center == "mean":
        loc = jnp.mean(x, axis=1, keepdims=True)
    else:
        loc = jnp.zeros_like(x[:, :1, :])
    s = (jnp.sqrt(jnp.var(x, axis=1, keepdims=True) + eps) if scale
         else jnp.ones_like(loc))
    return loc, s


def revin_norm(x, loc, s, gamma=None, beta=None):
    """``z = ((x − loc) / s) · γ + β``; ``x (B, T, C)``, ``loc, s (B, 1, C)``, ``γ, β (C,)``."""
    z = (jnp.asarray(x) - loc) / s
    if gamma is not None:
        z = z * gamma + beta
    return z


def revin_denorm(z, loc, s, gamma=None, beta=None, eps: float = REVIN_EPS):
    """The inverse of :func:`revin_norm`, for forecasts ``z (B, H, C)``:
    ``((z − β) / (γ + ε²)) · s + loc`` (the ``ε²`` guard of the RevIN reference code)."""
    z = jnp.asarray(z)
    if gamma is not None:
        z = (z - beta) / (gamma + eps * eps)
    return z * s + loc


def fold_channels(x):
    """``(B, T, C) → (B·C, T)``: row ``b·C + c`` is channel ``c`` of series ``b``."""
    x = jnp.asarray(x)
    b, t, c = x.shape
    return jnp.swapaxes(x, 1, 2).reshape(b * c, t)


def unfold_channels(y, channels: int):
    """``(B·C, T) → (B, T, C)``, the inverse of :func:`fold_channels`."""
    y = jnp.asarray(y)
    return jnp.swapaxes(y.reshape(-1, channels, y.shape[-1]), 1, 2)


def segment(x, w: int):
    """``(..., T) → (..., T/w, w)``: consecutive non-overlapping segments of length ``w``."""
    x = jnp.asarray(x)
    t = x.shape[-1]
    if w < 1 or t % w:
        raise ValueError(f"segment length {w} must divide the series length {t}")
    return x.reshape(*x.shape[:-1], t // w, w)


def unsegment(s):
    """``(..., n, w) → (..., n·w)``, the inverse of :func:`segment`."""
    s = jnp.asarray(s)
    return s.reshape(*s.shape[:-2], s.shape[-2] * s.shape[-1])


def decoder_queries(position, channel=None):
    """SegRNN's parallel-decoding inputs ``(C, M, d)``: for output segment ``m`` of channel
    ``c`` the concatenation ``[position[m], channel[c]]`` (``position (M, d_p)``,
    ``channel (C, d_c)``); without ``channel``, ``position[None]`` ``(1, M, d_p)``."""
    position = jnp.asarray(position)
    if channel is None:
        return position[None]
    channel = jnp.asarray(channel)
    c, m = channel.shape[0], position.shape[0]
    return jnp.concatenate([jnp.broadcast_to(position[None], (c, m, position.shape[1])),
                            jnp.broadcast_to(channel[:, None], (c, m, channel.shape[1]))],
                           axis=-1)
