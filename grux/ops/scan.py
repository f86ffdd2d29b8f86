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


def check_scan_args(xp: Array, states: tuple[Array, ...], w_hh: Array, b_hh: Array | None,
                    mask: Array | None, blocks: int, names: tuple[str, ...] = ("h0",)
                    ) -> tuple[Array | None, Array | None]:
    """Validate a recurrent scan's arguments; return ``(mask, b_hh)`` normalised.

    Two layouts (``G = blocks``, the gate blocks of the cell; ``H`` from the state):

    * one recurrence: ``xp (T, B, G·H)``, each state ``(B, H)``, ``w_hh (H, G·H)``,
      ``b_hh (G·H,)``, ``mask (T, B)``;
    * ``D`` stacked independent recurrences run as one (e.g. the two directions of a
      bidirectional layer, :func:`bidirectional_scan`), recognised by a rank-3 ``w_hh``:
      ``xp (T, D, B, G·H)``, each state ``(D, B, H)``, ``w_hh (D, H, G·H)``,
      ``b_hh (D, G·H)``, ``mask (T, B)`` (shared by all ``D``) or ``(T, D, B)``.

    The returned mask has shape ``xp.shape[:-1]`` (a shared one is broadcast over ``D``) and
    the returned bias broadcasts against ``(..., B, G·H)`` (``(D, 1, G·H)`` when stacked).
    """
    hdim = states[0].shape[-1]
    gname, g = (f"{blocks}H" if blocks > 1 else "H"), blocks * hdim
    stacked = w_hh.ndim == 3
    d = w_hh.shape[0] if stacked else None
    if stacked:
        if xp.ndim != 4 or xp.shape[1] != d or xp.shape[-1] != g:
            raise ValueError(f"xp must have shape (T, D={d}, B, {gname}={g}) for {d} stacked "
                             f"recurrences, got {xp.shape}")
    elif xp.ndim != 3 or xp.shape[-1] != g:
        raise ValueError(f"xp must have shape (T, B, {gname}={g}), got {xp.shape}")
    lead = xp.shape[1:-1]                      # (B,) or (D, B)
    if w_hh.shape != lead[:-1] + (hdim, g):
        want = f"(D={d}, {hdim}, {g})" if stacked else f"({hdim}, {g})"
        raise ValueError(f"w_hh must have shape {want}, got {w_hh.shape}")
    if b_hh is not None and b_hh.shape != lead[:-1] + (g,):
        want = f"(D={d}, {g})" if stacked else f"({g},)"
        raise ValueError(f"b_hh must have shape {want}, got {b_hh.shape}")
    dims = ("D", "B", "H") if stacked else ("B", "H")
    for name, s in zip(names, states):
        if s.shape != lead + (hdim,):
            want = ", ".join(f"{k}={v}" for k, v in zip(dims, lead + (hdim,)))
            raise ValueError(f"{name} must have shape ({want}), got {s.shape}")
    if mask is not None:
        if stacked and mask.shape == xp.shape[:1] + xp.shape[2:3]:
            mask = jnp.broadcast_to(mask[:, None], xp.shape[:-1])
        if mask.shape != xp.shape[:-1]:
            want = "(T, B) or (T, D, B)" if stacked else "(T, B)"
            raise ValueError(f"mask must have shape {want}={xp.shape[:-1]}, got {mask.shape}")
    if stacked and b_hh is not None:
        b_hh = b_hh[:, None, :]
    return mask, b_hh


def bidirectional_scan(
    scan: Callable[[Array, Any, Array | None], tuple[Array, Any]],
    xp_fwd: Array,
    xp_bwd: Array,
    state_fwd: Any,
    state_bwd: Any,
    mask: Array | None = None,
) -> tuple[Array, Array, Any, Any]:
    """Both directions of a bidirectional recurrent layer as ONE scan of half the steps.

    With ``ρ`` the reversal of each sequence within its own length
    (:func:`reverse_within_lengths`, ``len_b = Σ_t mask[t, b]``; ``mask`` is a prefix mask),
    the two-scan form

        y→, s→ = scan→(xp→, s0→)          y←, s← = scan←(ρ(xp←), s0←),  outputs ρ(y←)

    runs as one scan over a leading direction axis of size 2:

        [Y→ | Y←], [s→ | s←] = scan(stack(xp→, ρ(xp←)) (T, 2, B, G·H), stack(s0→, s0←))
        outputs y→ = Y→,  y← = ρ(Y←)

    where ``scan`` is a stacked-direction scan (e.g. :func:`grux.ops.gru_scan` with
    ``w_hh (2, H, G·H)``): per step the two recurrent matmuls are one ``(2, B, H) × (2, H,
    G·H)`` batched matmul, so there are ``T`` sequential steps instead of ``2T`` with twice
    the work in each. After ``ρ`` both directions' valid steps form the same prefix, so one
    ``(T, B)`` mask serves both; the reverse direction reads each sequence from its own
    last valid step, and its final state is taken after each sequence's first step.

    Args:
      scan: ``(xp (T, 2, B, G·H), state (leaves (2, B, H)), mask (T, B) or None) ->
        (outputs (T, 2, B, H), final state (leaves (2, B, H)))``.
      xp_fwd, xp_bwd: ``(T, B, G·H)`` input projections of each direction, in time order
        (the reverse direction is reversed here).
      state_fwd, state_bwd: initial states (pytrees of ``(B, H)`` leaves).
      mask: optional ``(T, B)`` prefix validity mask.

    Returns:
      ``(outputs_fwd (T, B, H), outputs_bwd (T, B, H), final_fwd, final_bwd)``, outputs in
      the original time order, exactly what the two separate scans return.
    """
    lengths = None if mask is None else mask.astype(jnp.int32).sum(0)
    xp = jnp.stack([xp_fwd, reverse_within_lengths(xp_bwd, lengths)], axis=1)
    state = jax.tree.map(lambda f, b: jnp.stack([f, b]), state_fwd, state_bwd)
    out, final = scan(xp, state, mask)
    return (out[:, 0], reverse_within_lengths(out[:, 1], lengths),
            jax.tree.map(lambda s: s[0], final), jax.tree.map(lambda s: s[1], final))


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
      mask: optional ``(T, B)`` validity mask (see module docstring for the convention);
        ``(T, D, B)`` for ``D`` stacked recurrences (state leaves ``(D, B, ...)``).
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
        keep = lambda new, old: jnp.where(m.reshape(m.shape + (1,) * (new.ndim - m.ndim)),
                                          new, old)
        new_c = jax.tree_util.tree_map(keep, new_c, c)
        y = jnp.where(m.reshape(m.shape + (1,) * (y.ndim - m.ndim)), y, jnp.zeros_like(y))
        return new_c, y

    final, ys = lax.scan(masked_body, carry, (xs, mask.astype(bool)), unroll=unroll)
    return ys, final
