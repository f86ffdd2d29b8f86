"""Scan drivers shared by every recurrent cell.

All functions here are time-major: sequences are ``(T, B, ...)``. Module code converts
batch-major ``(B, T, F)`` inputs before calling in.

Masking convention (used by every cell in :mod:`grux.ops`): with a validity mask
``m_t ∈ {0, 1}`` of shape ``(T, B)``, a step ``h'_t = cell(h_{t-1}, x_t)`` becomes

    h_t = m_t · h'_t + (1 − m_t) · h_{t−1}        (padded steps carry the state through)
    y_t = m_t · h_t                                (padded outputs are zero)

so the final carry is the state at each sequence's true end.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

Array = jax.Array


def sigmoid(x: Array) -> Array:
    """Logistic function written as ``0.5·tanh(0.5·x) + 0.5``.

    Mathematically identical to ``1/(1+exp(−x))``; one transcendental instead of an exp and a
    division, which is measurably faster inside XLA:CPU scan bodies (see shared NOTES).
    """
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _vma(x) -> frozenset:
    """The ``shard_map`` axes ``x`` varies over (``aval.vma`` or, in JAX ≥ 0.10,
    ``aval.manual_axis_type.varying``)."""
    aval = jax.typeof(x)
    vma = getattr(aval, "vma", None)
    if vma is None:
        vma = getattr(getattr(aval, "manual_axis_type", None), "varying", None)
    return frozenset(vma or ())


def match_vma(tree: Any, *like: Any) -> Any:
    """Mark ``tree``'s leaves as varying over the same ``shard_map`` axes as ``like``.

    Inside ``jax.shard_map`` a scan carry that starts replicated (e.g. a zero initial state)
    but becomes device-varying after one step is a type error; casting the initial carry to
    the inputs' varying axes fixes it. Outside ``shard_map`` this is the identity.
    """
    want = frozenset().union(*(_vma(l) for l in jax.tree.leaves(like)))
    if not want:
        return tree

    def cast(x):
        missing = tuple(sorted(want - _vma(x)))
        return lax.pcast(x, missing, to="varying") if missing else x

    return jax.tree.map(cast, tree)


def lengths_to_mask(lengths: Array, max_len: int) -> Array:
    """``(B,)`` integer lengths → ``(B, T)`` boolean mask, ``mask[b, t] = t < lengths[b]``."""
    check_lengths(lengths)
    return jnp.arange(max_len)[None, :] < lengths[:, None]


def check_lengths(lengths: Array, batch: int | None = None) -> None:
    """Validate a lengths vector: integer dtype, rank 1, optional batch size."""
    lengths = jnp.asarray(lengths) if not isinstance(lengths, jax.Array) else lengths
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(
            f"lengths must have an integer dtype, got {lengths.dtype}; "
            "pass e.g. jnp.array([...], dtype=jnp.int32)")
    if lengths.ndim != 1:
        raise ValueError(f"lengths must have shape (batch,), got shape {lengths.shape}")
    if batch is not None and lengths.shape[0] != batch:
        raise ValueError(f"lengths has {lengths.shape[0]} entries but the batch has {batch}")


def reverse_within_lengths(x: Array, lengths: Array | None) -> Array:
    """Reverse each sequence of a time-major ``(T, B, ...)`` array inside its true length.

    ``out[t, b] = x[len_b − 1 − t, b]`` for ``t < len_b`` and ``out[t, b] = x[t, b]``
    (the padding stays where it is) otherwise. With ``lengths=None`` this is ``x[::-1]``.
    The map is an involution, so applying it twice restores ``x``.
    """
    if lengths is None:
        return x[::-1]
    t = jnp.arange(x.shape[0])[:, None]
    idx = jnp.where(t < lengths[None, :], lengths[None, :] - 1 - t, t)  # (T, B)
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, idx, axis=0)


def masked_scan(
    step: Callable[[Any, Any], tuple[Any, Array]],
    carry: Any,
    xs: Any,
    mask: Array | None = None,
    *,
    unroll: int = 1,
    remat: bool = False,
) -> tuple[Array, Any]:
    """Run ``carry, y_t = step(carry, x_t)`` over the leading (time) axis of ``xs``.

    Args:
      step: pure cell function ``(carry, x_t) -> (new_carry, y_t)``.
      carry: initial state pytree, leaves ``(B, ...)``.
      xs: per-step inputs pytree, leaves ``(T, B, ...)``.
      mask: optional ``(T, B)`` validity mask (see module docstring for the convention).
      unroll: ``lax.scan`` unroll factor.
      remat: rematerialise the step in the backward pass (``jax.checkpoint``), trading
        compute for activation memory.

    Returns:
      ``(ys, final_carry)`` with ``ys`` stacked ``(T, B, ...)``.
    """
    body = jax.checkpoint(step) if remat else step
    carry = match_vma(carry, xs, mask)
    if mask is None:
        def scan_body(c, x):
            return body(c, x)
        final, ys = lax.scan(scan_body, carry, xs, unroll=unroll)
        return ys, final

    def masked_body(c, inp):
        x, m = inp
        new_c, y = body(c, x)
        keep = lambda new, old: jnp.where(m.reshape(m.shape + (1,) * (new.ndim - 1)), new, old)
        new_c = jax.tree_util.tree_map(keep, new_c, c)
        y = jnp.where(m.reshape(m.shape + (1,) * (y.ndim - 1)), y, jnp.zeros_like(y))
        return new_c, y

    final, ys = lax.scan(masked_body, carry, (xs, mask.astype(bool)), unroll=unroll)
    return ys, final
