"""Gated Recurrent Unit: both formulations, one code path.

Parameter layout (shared by both formulations, gate order r, z, n as in PyTorch):

    w_ih : (F, 3H)   input weights       [W_r | W_z | W_n]
    w_hh : (H, 3H)   recurrent weights   [U_r | U_z | U_n]
    b_ih : (3H,)     input bias          [b_r | b_z | b_n]   (b_in for "cudnn")
    b_hh : (3H,)     recurrent bias      [b_hr | b_hz | b_hn] ("cudnn" only; ``None`` for "cho")

``formulation="cho"`` (Cho et al. 2014, eqs. 5-8; reset applied *before* the matmul):

    r   = σ(W_r x + U_r h + b_r)
    z   = σ(W_z x + U_z h + b_z)
    h~  = tanh(W_n x + U_n (r ⊙ h) + b_n)
    h_t = (1 − z) ⊙ h_{t−1} + z ⊙ h~

``formulation="cudnn"`` (cuDNN / PyTorch ``nn.GRU`` / Keras ``reset_after=True`` / flax linen
``GRUCell``; reset applied *after* the matmul, two bias vectors):

    r   = σ(W_r x + b_ir + U_r h + b_hr)
    z   = σ(W_z x + b_iz + U_z h + b_hz)
    n   = tanh(W_n x + b_in + r ⊙ (U_n h + b_hn))
    h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

Note the opposite roles of ``z`` in the two update equations; each follows its source.

The input projection ``x W_ih + b_ih`` for all time steps and gates is one matmul done before
the scan (:func:`grux.ops.scan`-style drivers receive it as ``xp``). Inside the scan,
"cudnn" does one fused ``(B,H)×(H,3H)`` matmul per step; "cho" must do two, because the
candidate's matmul consumes ``r ⊙ h`` and ``r`` needs ``U_r h`` first.

:func:`gru_scan` has two interchangeable backward passes:

* ``backward="custom"`` (default): a ``jax.custom_vjp`` whose reverse scan carries only
  ``∂L/∂h`` and emits the gate pre-activation gradients; ``∂L/∂U``, ``∂L/∂b_hh`` are then
  computed after the scan as single matmuls over all ``T·B`` rows (as cuDNN does), and
  ``∂L/∂xp`` flows to the hoisted input projection, whose own autodiff is likewise one matmul.
* ``backward="autodiff"``: plain reverse-mode differentiation of ``lax.scan``.

Both run unchanged on ``D`` stacked independent GRUs (a rank-3 ``w_hh (D, H, 3H)``; the two
directions of a bidirectional layer, :func:`grux.ops.bidirectional_scan`): each step's
recurrent matmul ``h W_hh`` becomes one ``(D, B, H) × (D, H, 3H)`` batched matmul, the
custom backward's reverse scan carries ``∂L/∂h`` of all ``D``, and ``∂W_hh``, ``∂b_hh`` stay
one matmul / sum per direction over its ``T·B`` rows.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from grux.ops.scan import check_scan_args, masked_scan, match_vma, sigmoid

Array = jax.Array
FORMULATIONS = ("cho", "cudnn")
BACKWARDS = ("custom", "autodiff")


def check_formulation(formulation: str) -> None:
    if formulation not in FORMULATIONS:
        raise ValueError(f"GRU formulation must be one of {FORMULATIONS}, got {formulation!r}")


def gru_cell(h: Array, xp: Array, w_hh: Array, b_hh: Array | None, formulation: str) -> Array:
    """One GRU step from a pre-projected input.

    Args:
      h: ``(B, H)`` previous state ``h_{t−1}``.
      xp: ``(B, 3H)`` input projection ``x_t W_ih + b_ih`` (gate order r, z, n).
      w_hh: ``(H, 3H)``; b_hh: ``(3H,)`` for "cudnn", ``None`` for "cho".
      formulation: "cho" or "cudnn" (equations in the module docstring).

    Returns:
      ``(B, H)`` new state ``h_t``.
    """
    return _step(h, *_split3(xp), w_hh, b_hh, formulation)[0]


def gru_step(h, x, w_ih, w_hh, b_ih, b_hh, formulation: str) -> Array:
    """One GRU step from a raw input ``x: (B, F)``: ``gru_cell(h, x W_ih + b_ih, ...)``."""
    return gru_cell(h, x @ w_ih + b_ih, w_hh, b_hh, formulation)


def _step(h, xr, xz, xn, w_hh, b_hh, formulation):
    """Forward step on pre-split input projections.

    Returns ``(h_new, hp)`` where ``hp: (B, 3H)`` holds the recurrent pre-activations
    ``[U_r h + b_hr, U_z h + b_hz, U_n h + b_hn]`` ("cudnn") or
    ``[U_r h, U_z h, U_n (r ⊙ h)]`` ("cho"); with ``xp`` they determine every gate, so they
    are the only per-step residual the custom backward pass keeps.
    """
    hdim = h.shape[-1]
    if formulation == "cudnn":
        hp = h @ w_hh
        if b_hh is not None:
            hp = hp + b_hh
        r = sigmoid(xr + hp[..., :hdim])
        z = sigmoid(xz + hp[..., hdim:2 * hdim])
        n = jnp.tanh(xn + r * hp[..., 2 * hdim:])
        return n + z * (h - n), hp          # (1 − z)·n + z·h
    hrz = h @ w_hh[..., :2 * hdim]
    r = sigmoid(xr + hrz[..., :hdim])
    z = sigmoid(xz + hrz[..., hdim:])
    hn = (r * h) @ w_hh[..., 2 * hdim:]
    n = jnp.tanh(xn + hn)
    # (a state broadcast against several inputs, as in SegRNN's parallel decoder, gives
    # ``hrz`` fewer rows than ``hn``; in a scan the two shapes agree and this is a no-op)
    hrz = jnp.broadcast_to(hrz, hn.shape[:-1] + hrz.shape[-1:])
    return h + z * (n - h), jnp.concatenate([hrz, hn], axis=-1)   # (1 − z)·h + z·n


def _gates(xr, xz, xn, hp, formulation):
    """Gate activations ``(r, z, n)`` from input and recurrent pre-activations (any shape)."""
    hdim = xr.shape[-1]
    r = sigmoid(xr + hp[..., :hdim])
    z = sigmoid(xz + hp[..., hdim:2 * hdim])
    if formulation == "cudnn":
        n = jnp.tanh(xn + r * hp[..., 2 * hdim:])
    else:
        n = jnp.tanh(xn + hp[..., 2 * hdim:])
    return r, z, n


def _split3(xp):
    hdim = xp.shape[-1] // 3
    return xp[..., :hdim], xp[..., hdim:2 * hdim], xp[..., 2 * hdim:]


def _mat(a, w):
    """``(T, B, K) @ (K, N)`` as one 2-D matmul over all ``T·B`` rows; stacked directions
    ``(T, D, B, K) @ (D, K, N)`` as one such matmul per direction."""
    if w.ndim == 3:
        return jnp.stack([_mat(a[:, d], w[d]) for d in range(w.shape[0])], axis=1)
    return (a.reshape(-1, a.shape[-1]) @ w).reshape(a.shape[:-1] + (w.shape[-1],))


def _outer(a, b):
    """``Σ_{t,b} a[t,b,:]ᵀ b[t,b,:]`` as one 2-D matmul: ``(T,B,K),(T,B,N) -> (K,N)``;
    stacked directions ``(T,D,B,K),(T,D,B,N) -> (D,K,N)`` as one such matmul per direction
    (the same arithmetic as the unstacked scan's; the matmuls are large, nothing to gain
    from batching them)."""
    if a.ndim == 4:
        return jnp.stack([_outer(a[:, d], b[:, d]) for d in range(a.shape[1])])
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def _bias_grad(dhp, b_hh):
    """``∂L/∂b_hh`` from ``∂L/∂hp``: summed over time and batch, to ``b_hh``'s shape
    (``(3H,)``, or ``(D, 1, 3H)`` for stacked directions)."""
    if b_hh is None:
        return None
    if b_hh.ndim == 1:
        return dhp.sum(axis=(0, 1))
    return jnp.stack([dhp[:, d].sum(axis=(0, 1)) for d in range(dhp.shape[1])])[:, None, :]


def _recurrent_preacts(xp, h_prev, w_hh, b_hh, formulation):
    """Recompute ``hp`` for all steps at once from the states (used with ``remat``)."""
    hdim = h_prev.shape[-1]
    if formulation == "cudnn":
        hp = _mat(h_prev, w_hh)
        return hp if b_hh is None else hp + b_hh
    hrz = _mat(h_prev, w_hh[..., :2 * hdim])
    r = sigmoid(xp[..., :hdim] + hrz[..., :hdim])
    return jnp.concatenate([hrz, _mat(r * h_prev, w_hh[..., 2 * hdim:])], axis=-1)


def _forward(xp, h0, w_hh, b_hh, mask, formulation, unroll, keep_hp):
    """Forward scan. Returns states ``(T,B,H)``, final state, and ``hp`` if ``keep_hp``."""
    xs = _split3(xp)
    has_mask = mask is not None

    def body(h, inp):
        (xr, xz, xn), mt = inp if has_mask else (inp, None)
        h_new, hp = _step(h, xr, xz, xn, w_hh, b_hh, formulation)
        if has_mask:
            h_new = h + mt * (h_new - h)
        return h_new, ((h_new, hp) if keep_hp else h_new)

    final, out = lax.scan(body, h0, (xs, mask[..., None]) if has_mask else xs, unroll=unroll)
    if keep_hp:
        return out[0], final, out[1]
    return out, final, None


def _outputs(states, mask):
    return states if mask is None else states * mask[..., None]


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7))
def _gru_scan_custom(xp, h0, w_hh, b_hh, mask, formulation, unroll, remat):
    states, final, _ = _forward(xp, h0, w_hh, b_hh, mask, formulation, unroll, False)
    return _outputs(states, mask), final


def _custom_fwd(xp, h0, w_hh, b_hh, mask, formulation, unroll, remat):
    states, final, hp = _forward(xp, h0, w_hh, b_hh, mask, formulation, unroll, not remat)
    return (_outputs(states, mask), final), (xp, h0, w_hh, b_hh, mask, states, hp)


def _custom_bwd(formulation, unroll, remat, saved, cotangents):
    """Reverse scan carrying only ``∂L/∂h``; weight gradients as matmuls afterwards.

    Per step, with ``G = ∂L/∂h_t`` (masked steps pass ``G`` straight to ``h_{t−1}``):
      cudnn: ∂n = G(1−z), ∂z = G(h−n), ∂ñ = ∂n(1−n²), ∂r̃ = ∂ñ·hp_n·r(1−r), ∂z̃ = ∂z·z(1−z),
             ∂h_{t−1} = G·z + [∂r̃, ∂z̃, ∂ñ·r] U_hhᵀ
      cho:   ∂z = G(n−h), ∂n = G·z, ∂ñ = ∂n(1−n²), ∂(r⊙h) = ∂ñ U_nᵀ, ∂r̃ = ∂(r⊙h)·h·r(1−r),
             ∂h_{t−1} = G(1−z) + ∂(r⊙h)·r + [∂r̃, ∂z̃] U_rzᵀ
    and ``∂xp_t = [∂r̃, ∂z̃, ∂ñ]``.
    """
    xp, h0, w_hh, b_hh, mask, states, hp = saved
    g_out, g_final = cotangents
    hdim = h0.shape[-1]
    h_prev = jnp.concatenate([h0[None], states[:-1]], axis=0)  # (T, B, H)
    if remat:
        hp = _recurrent_preacts(xp, h_prev, w_hh, b_hh, formulation)
    has_mask = mask is not None
    w_t = jnp.swapaxes(w_hh, -1, -2)
    w_n_t, w_rz_t = w_t[..., 2 * hdim:, :], w_t[..., :2 * hdim, :]

    def body(dh, inp):
        if has_mask:
            g, hprev, xpt, hpt, mt = inp
            tot = dh + g * mt
            gc = tot * mt
        else:
            g, hprev, xpt, hpt = inp
            gc = dh + g
        xr, xz, xn = _split3(xpt)
        r, z, n = _gates(xr, xz, xn, hpt, formulation)
        passthrough = (tot - gc) if has_mask else 0.0    # masked steps: G flows to h_{t−1}
        if formulation == "cudnn":
            dn_pre = gc * (1.0 - z) * (1.0 - n * n)
            dz_pre = gc * (hprev - n) * z * (1.0 - z)
            dr_pre = dn_pre * hpt[..., 2 * hdim:] * r * (1.0 - r)
            dhp = jnp.concatenate([dr_pre, dz_pre, dn_pre * r], -1)
            return gc * z + dhp @ w_t + passthrough, (dhp, dn_pre)
        dn_pre = gc * z * (1.0 - n * n)
        dz_pre = gc * (n - hprev) * z * (1.0 - z)
        drh = dn_pre @ w_n_t
        dr_pre = drh * hprev * r * (1.0 - r)
        dh_prev = (gc * (1.0 - z) + drh * r + passthrough
                   + jnp.concatenate([dr_pre, dz_pre], -1) @ w_rz_t)
        return dh_prev, jnp.concatenate([dr_pre, dz_pre, dn_pre], -1)

    xs = (g_out, h_prev, xp, hp) + ((mask[..., None],) if has_mask else ())
    g_final = match_vma(g_final, xs, w_hh, b_hh)
    dh0, emitted = lax.scan(body, g_final, xs, reverse=True, unroll=unroll)

    # Weight gradients: single matmuls over all T·B rows.
    if formulation == "cudnn":
        dhp, dn_pre = emitted          # dhp = ∂L/∂hp; ∂xp differs only in the n block
        dxp = jnp.concatenate([dhp[..., :2 * hdim], dn_pre], -1)
        dw_hh = _outer(h_prev, dhp)
        db_hh = _bias_grad(dhp, b_hh)
    else:
        dxp = emitted
        r = sigmoid(xp[..., :hdim] + hp[..., :hdim])
        dw_hh = jnp.concatenate([_outer(h_prev, dxp[..., :2 * hdim]),
                                 _outer(r * h_prev, dxp[..., 2 * hdim:])], axis=-1)
        db_hh = None
    dmask = None if mask is None else jnp.zeros_like(mask)
    return dxp, dh0, dw_hh, db_hh, dmask


_gru_scan_custom.defvjp(_custom_fwd, _custom_bwd)


def gru_scan(
    xp: Array,
    h0: Array,
    w_hh: Array,
    b_hh: Array | None,
    mask: Array | None = None,
    *,
    formulation: str = "cudnn",
    backward: str = "custom",
    unroll: int = 1,
    remat: bool = False,
) -> tuple[Array, Array]:
    """Run a GRU over a whole pre-projected sequence (time-major).

    Args:
      xp: ``(T, B, 3H)`` input projections ``x_t W_ih + b_ih`` for every step.
      h0: ``(B, H)`` initial state.
      w_hh: ``(H, 3H)`` recurrent weights; b_hh: ``(3H,)`` or ``None`` (must be ``None`` for
        "cho", whose recurrent bias would be redundant with ``b_ih``).
      mask: optional ``(T, B)`` validity mask; padded steps carry the state through and
        produce zero outputs (see :mod:`grux.ops.scan`).
      formulation: "cho" or "cudnn".
      backward: "custom" (cuDNN-style VJP, default) or "autodiff".
      unroll: scan unroll factor.
      remat: do not store gate activations for the backward pass; recompute them.

    Stacked directions: with a rank-3 ``w_hh (D, H, 3H)`` the scan runs ``D`` independent
    GRUs together (the two directions of a bidirectional layer, see
    :func:`grux.ops.bidirectional_scan`): ``xp (T, D, B, 3H)``, ``h0 (D, B, H)``,
    ``b_hh (D, 3H)``, ``mask (T, B)`` (shared) or ``(T, D, B)``; outputs ``(T, D, B, H)``,
    final state ``(D, B, H)``. Every step's recurrent matmul is then one ``(D, B, H) ×
    (D, H, 3H)`` batched matmul, and the custom backward's weight gradients are matmuls
    batched over ``D``; the arithmetic of each direction is that of the unstacked scan.

    Returns:
      ``(outputs (T, B, H), final_state (B, H))``.
    """
    check_formulation(formulation)
    if backward not in BACKWARDS:
        raise ValueError(f"backward must be one of {BACKWARDS}, got {backward!r}")
    if formulation == "cho" and b_hh is not None:
        raise ValueError("the 'cho' GRU has no recurrent bias; pass b_hh=None")
    mask, b_hh = check_scan_args(xp, (h0,), w_hh, b_hh, mask, blocks=3)
    if mask is not None:
        mask = mask.astype(xp.dtype)
    # Inside shard_map all operands must vary over the same axes (a replicated weight's
    # cotangent is then summed over devices by the transpose of this cast).
    xp, h0, w_hh, b_hh, mask = match_vma((xp, h0, w_hh, b_hh, mask), xp, h0, w_hh, b_hh, mask)
    if backward == "custom":
        return _gru_scan_custom(xp, h0, w_hh, b_hh, mask, formulation, unroll, remat)

    def step(h, x):
        h_new = gru_cell(h, x, w_hh, b_hh, formulation)
        return h_new, h_new

    return masked_scan(step, h0, xp, mask, unroll=unroll, remat=remat)
