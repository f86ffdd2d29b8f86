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

Chunked form (:func:`mingru_chunked`): the same recurrence in linear space,
``h_t = α_t ⊙ h_{t−1} + β_t`` with ``α_t = 1 − z_t ∈ (0, 1)`` and ``β_t = z_t ⊙ h~_t``. No
division and no ``exp`` of a sum appear, so it cannot overflow (products of numbers in
(0, 1) can only underflow to 0, the exact limit of forgetting). The ``T`` steps are cut into
``T/c`` chunks of ``c``. One scan of ``c`` steps runs inside all chunks at once (vectorised
over chunks), composing ``(Α_j, Β_j)`` with ``h_j = Α_j ⊙ h_start + Β_j``. A second scan of
``T/c`` steps then carries the state across the chunk ends, and every state follows from its
chunk's start. That is ``c + T/c`` dependent steps instead of ``T``, each wider. The backward
pass is the same machinery run in reverse (a custom VJP): the total state gradient obeys the
linear recurrence ``d_t = g_t + α_{t+1} ⊙ d_{t+1}``, after which
``∂α_t = d_t ⊙ h_{t−1}``, ``∂β_t = d_t`` and ``∂h_0 = α_1 ⊙ d_1``.
"""
from __future__ import annotations

import functools

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


def _linear_chunked(alpha: Array, beta: Array, h0: Array, chunk: int, reverse: bool) -> Array:
    """All states of ``h_t = α_t ⊙ h_{t−1} + β_t`` (``T`` a multiple of ``chunk``), by the
    two short scans of the module docstring; ``reverse`` runs from ``t = T`` down to 1 (then
    ``h0`` is the state after the last step)."""
    t, b, hdim = alpha.shape
    n = t // chunk
    a4 = alpha.reshape(n, chunk, b, hdim).swapaxes(0, 1)       # (chunk, n, B, H)
    b4 = beta.reshape(n, chunk, b, hdim).swapaxes(0, 1)

    def within(carry, ab):                                   # all chunks, one position
        ca, cb = carry
        a, bb = ab
        new = (ca * a, cb * a + bb)
        return new, new

    ones = jnp.ones((n, b, hdim), alpha.dtype)
    _, (big_a, big_b) = lax.scan(within, (ones, jnp.zeros_like(ones)), (a4, b4),
                                 reverse=reverse)
    end = 0 if reverse else -1                               # the whole chunk, composed

    def across(h, whole):
        a_c, b_c = whole
        return a_c * h + b_c, h                              # carry the end, emit the start

    _, starts = lax.scan(across, h0, (big_a[end], big_b[end]), reverse=reverse)
    return (big_a * starts[None] + big_b).swapaxes(0, 1).reshape(t, b, hdim)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _linear_scan(alpha, beta, h0, chunk):
    return _linear_chunked(alpha, beta, h0, chunk, False)


def _linear_scan_fwd(alpha, beta, h0, chunk):
    states = _linear_chunked(alpha, beta, h0, chunk, False)
    return states, (alpha, states, h0)


def _linear_scan_bwd(chunk, res, g):
    alpha, states, h0 = res
    a_next = jnp.concatenate([alpha[1:], jnp.zeros_like(alpha[:1])], axis=0)
    d = _linear_chunked(a_next, g, jnp.zeros_like(h0), chunk, True)
    h_prev = jnp.concatenate([h0[None], states[:-1]], axis=0)
    return d * h_prev, d, alpha[0] * d[0]


_linear_scan.defvjp(_linear_scan_fwd, _linear_scan_bwd)


def mingru_chunked(kp: Array, h0: Array, mask: Array | None = None, *, chunk: int = 64
                   ) -> tuple[Array, Array]:
    """The same recurrence as :func:`mingru_parallel` by chunks of ``chunk`` steps (module
    docstring, "Chunked form"), with its own backward pass. ``T`` need not be a multiple of
    ``chunk``: the tail is padded with identity steps. Same arguments and returns as
    :func:`mingru_parallel`."""
    _check(kp, h0)
    if chunk < 1:
        raise ValueError(f"minGRU chunk must be >= 1, got {chunk}")
    t = kp.shape[0]
    hdim = h0.shape[-1]
    kz, kh = kp[..., :hdim], kp[..., hdim:]
    alpha = jax.nn.sigmoid(-kz)                       # 1 − z
    beta = jax.nn.sigmoid(kz) * _g(kh)                # z ⊙ h~
    if mask is not None:
        m = mask.astype(bool)[..., None]
        alpha = jnp.where(m, alpha, 1.0)              # padded steps: the identity
        beta = jnp.where(m, beta, 0.0)
    chunk = min(chunk, t)
    padded = -(-t // chunk) * chunk
    if padded != t:
        pad = ((0, padded - t), (0, 0), (0, 0))
        alpha = jnp.pad(alpha, pad, constant_values=1.0)
        beta = jnp.pad(beta, pad)
    states = _linear_scan(alpha, beta, h0.astype(alpha.dtype), chunk)
    final = states[-1]                                # identity padding keeps the last state
    states = states[:t]
    out = states if mask is None else jnp.where(m, states, 0.0)
    return out, final


def mingru_sequential(kp: Array, h0: Array, mask: Array | None = None, *, unroll: int = 1
                      ) -> tuple[Array, Array]:
    """The same recurrence as :func:`mingru_parallel`, step by step (inference / reference)."""
    _check(kp, h0)

    def step(h, k):
        h_new = mingru_cell(h, k)
        return h_new, h_new

    return masked_scan(step, h0, kp, mask, unroll=unroll)
