"""minGRU (Feng, Tung, Ahmed, Bengio, Hajimirsadeghi 2024, "Were RNNs All We Needed?").

The gates depend on the input only, so the recurrence is linear in ``h`` and can be computed
with a parallel (associative) scan. Pre-activations come from one input projection
``[k_z, k_h] = x W + b`` with ``W: (F, 2H)``:

    z_t  = σ(k_z)
    h~_t = g(k_h),   g(x) = x + 0.5 if x ≥ 0 else σ(x)     (positive, continuous)
    h_t  = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h~_t

Log-space parallel form (numerically stable for very long sequences): with
``a_t = log(1 − z_t) = −softplus(k_z)`` and ``b_t = log z_t + log h~_t`` the scan combines
``(a₁, b₁) ∘ (a₂, b₂) = (a₁ + a₂, logaddexp(b₁ + a₂, b₂))`` so that, for all t at once,

    h_t = exp(A_t) ⊙ h_0 + exp(B_t),   A_t = Σ_{s≤t} a_s,
    B_t = log Σ_{s≤t} exp(b_s + Σ_{s<u≤t} a_u)

Everything inside ``exp`` is ≤ its own log-sum so nothing overflows; ``h_0`` enters linearly,
so it may have any sign. Masked (padded) steps use ``a = 0, b = −∞`` (identity).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from grux.ops.scan import masked_scan

Array = jax.Array


def _log_g(x: Array) -> Array:
    """``log g(x)`` computed stably: ``log(x + 0.5)`` for x ≥ 0, ``−softplus(−x)`` otherwise."""
    return jnp.where(x >= 0, jnp.log(jnp.maximum(x, 0.0) + 0.5), -jax.nn.softplus(-x))


def _g(x: Array) -> Array:
    return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def _neg_big(dtype) -> float:
    # A finite stand-in for −∞: exp() of it is 0, and it keeps gradients free of NaN.
    return float(jnp.finfo(dtype).min) / 4


def mingru_cell(h: Array, kp: Array) -> Array:
    """One sequential minGRU step. ``h: (B, H)``, ``kp = x W + b: (B, 2H)``."""
    hdim = h.shape[-1]
    z = jax.nn.sigmoid(kp[..., :hdim])
    return (1.0 - z) * h + z * _g(kp[..., hdim:])


def _check(kp, h0):
    if kp.ndim != 3 or kp.shape[-1] != 2 * h0.shape[-1]:
        raise ValueError(f"kp must have shape (T, B, 2H={2 * h0.shape[-1]}), got {kp.shape}")
    if h0.shape != (kp.shape[1], h0.shape[-1]):
        raise ValueError(f"h0 must have shape (B={kp.shape[1]}, H), got {h0.shape}")


def mingru_parallel(kp: Array, h0: Array, mask: Array | None = None) -> tuple[Array, Array]:
    """All states at once by a log-space associative scan (module docstring).

    Args:
      kp: ``(T, B, 2H)`` pre-activations ``[k_z, k_h]``.
      h0: ``(B, H)`` initial state.
      mask: optional ``(T, B)`` validity mask (padded steps keep the state, output 0).

    Returns:
      ``(outputs (T, B, H), final_state (B, H))``.
    """
    _check(kp, h0)
    hdim = h0.shape[-1]
    kz, kh = kp[..., :hdim], kp[..., hdim:]
    log_a = -jax.nn.softplus(kz)
    log_b = -jax.nn.softplus(-kz) + _log_g(kh)
    if mask is not None:
        m = mask.astype(bool)[..., None]
        log_a = jnp.where(m, log_a, 0.0)
        log_b = jnp.where(m, log_b, _neg_big(log_b.dtype))

    def combine(earlier, later):
        a1, b1 = earlier
        a2, b2 = later
        return a1 + a2, jnp.logaddexp(b1 + a2, b2)

    big_a, big_b = lax.associative_scan(combine, (log_a, log_b), axis=0)
    states = jnp.exp(big_a) * h0[None] + jnp.exp(big_b)
    out = states if mask is None else jnp.where(m, states, 0.0)
    return out, states[-1]


def mingru_sequential(kp: Array, h0: Array, mask: Array | None = None, *, unroll: int = 1
                      ) -> tuple[Array, Array]:
    """The same recurrence as :func:`mingru_parallel`, step by step (inference / reference)."""
    _check(kp, h0)

    def step(h, k):
        h_new = mingru_cell(h, k)
        return h_new, h_new

    return masked_scan(step, h0, kp, mask, unroll=unroll)
