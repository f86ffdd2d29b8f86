"""Batched, jit-compilable autoregressive decoding: greedy search and beam search.

Both work on any model through a step function

    step_fn(state, prev_tokens (N,)) -> (log_probs (N, V), new_state)

where every leaf of ``state`` leads with the ``N`` rows being decoded (``N = B`` for greedy,
``N = B·K`` for a beam of ``K``: use :func:`tile_beams` to repeat each row ``K`` times). Both
run a ``lax.while_loop`` over at most ``max_len`` steps that stops as soon as every row has
produced ``eos``, so they compile once per ``(N, max_len)`` and can sit inside ``jax.jit``.

Outputs are ``(B, max_len)`` token arrays that contain ``eos`` and are ``pad`` after it.
``pad`` and ``bos`` are never generated.

Length normalisation (Wu et al. 2016, GNMT): a hypothesis ``Y`` is ranked by

    score(Y) = log p(Y | X) / lp(|Y|),   lp(n) = ((5 + n) / 6) ** alpha

(``|Y|`` counts ``eos``; ``alpha = 0`` ranks by the plain log-probability).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from jax import lax

StepFn = Callable[[Any, jax.Array], tuple[jax.Array, Any]]
NEG_INF = -jnp.inf


def length_penalty(length: jax.Array, alpha: float) -> jax.Array:
    """GNMT ``lp(n) = ((5 + n) / 6) ** alpha`` (1 for ``alpha = 0``)."""
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


def tile_beams(tree: Any, beam: int) -> Any:
    """Repeat every leaf's rows ``beam`` times: ``(B, ...) → (B·beam, ...)``, row ``b·beam + k``
    a copy of row ``b``."""
    return jax.tree.map(lambda x: jnp.repeat(x, beam, axis=0), tree)


def _forbid(log_probs: jax.Array, ids: tuple[int, ...]) -> jax.Array:
    for i in ids:
        log_probs = log_probs.at[..., i].set(NEG_INF)
    return log_probs


def greedy_search(step_fn: StepFn, state: Any, batch: int, *, bos: int, eos: int, pad: int,
                  max_len: int) -> tuple[jax.Array, jax.Array]:
    """Arg-max decoding: ``y_t = argmax_y log p(y | y_<t, X)`` until ``eos`` or ``max_len``.

    Returns ``(tokens (B, max_len), log_prob (B,))``, the log-probability of each output
    (``eos`` included)."""
    def cond(c):
        t, _, _, finished, _, _ = c
        return (t < max_len) & ~jnp.all(finished)

    def body(c):
        t, tokens, prev, finished, logp_sum, state = c
        log_probs, state = step_fn(state, prev)
        log_probs = _forbid(log_probs.astype(jnp.float32), (pad, bos))
        tok = jnp.argmax(log_probs, axis=-1).astype(jnp.int32)
        gain = jnp.take_along_axis(log_probs, tok[:, None], axis=-1)[:, 0]
        tok = jnp.where(finished, pad, tok)
        logp_sum = logp_sum + jnp.where(finished, 0.0, gain)
        tokens = tokens.at[:, t].set(tok)
        return t + 1, tokens, tok, finished | (tok == eos), logp_sum, state

    init = (jnp.int32(0), jnp.full((batch, max_len), pad, jnp.int32),
            jnp.full((batch,), bos, jnp.int32), jnp.zeros((batch,), bool),
            jnp.zeros((batch,), jnp.float32), state)
    _, tokens, _, _, logp_sum, _ = lax.while_loop(cond, body, init)
    return tokens, logp_sum


def beam_search(step_fn: StepFn, state: Any, batch: int, beam: int, *, bos: int, eos: int,
                pad: int, max_len: int, alpha: float = 0.0
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Beam search with length normalisation.

    ``state`` leads with ``B·beam`` rows (:func:`tile_beams`). At step ``t`` every live
    hypothesis of a row is extended by every token; a finished hypothesis (it ended in
    ``eos``) has one extension, itself (``pad``, score and length unchanged). The ``beam``
    candidates of highest normalised score ``log p / lp(length)`` survive; as the live ones
    all have length ``t + 1`` they are ranked by log-probability among themselves, and the
    finished ones compete with them by normalised score. Stops when every hypothesis of every
    row has finished, or after ``max_len`` steps.

    Returns ``(tokens (B, max_len), score (B,), log_prob (B,))`` of each row's best
    hypothesis by normalised score.
    """
    k = beam

    def cond(c):
        return (c[0] < max_len) & ~jnp.all(c[3])

    def body(c):
        t, tokens, prev, finished, scores, lengths, state = c
        log_probs, new_state = step_fn(state, prev)
        v = log_probs.shape[-1]
        log_probs = _forbid(log_probs.astype(jnp.float32), (pad, bos)).reshape(batch, k, v)
        only_pad = jnp.where(jnp.arange(v) == pad, 0.0, NEG_INF)
        log_probs = jnp.where(finished[..., None], only_pad, log_probs)
        cand = scores[..., None] + log_probs                                  # (B, K, V)
        cand_len = jnp.where(finished, lengths, t + 1)[..., None]
        norm = cand / length_penalty(jnp.broadcast_to(cand_len, cand.shape), alpha)
        _, idx = lax.top_k(norm.reshape(batch, k * v), k)                     # (B, K)
        src, tok = idx // v, (idx % v).astype(jnp.int32)
        scores = jnp.take_along_axis(cand.reshape(batch, k * v), idx, axis=1)
        was_done = jnp.take_along_axis(finished, src, axis=1)
        lengths = jnp.where(was_done, jnp.take_along_axis(lengths, src, axis=1), t + 1)
        tokens = jnp.take_along_axis(tokens, src[..., None], axis=1).at[:, :, t].set(tok)
        rows = (jnp.arange(batch)[:, None] * k + src).reshape(-1)
        state = jax.tree.map(lambda x: x[rows], new_state)
        finished = was_done | (tok == eos)
        return t + 1, tokens, tok.reshape(-1), finished, scores, lengths, state

    first = jnp.where(jnp.arange(k) == 0, 0.0, NEG_INF)  # one live hypothesis at the start
    init = (jnp.int32(0), jnp.full((batch, k, max_len), pad, jnp.int32),
            jnp.full((batch * k,), bos, jnp.int32), jnp.zeros((batch, k), bool),
            jnp.broadcast_to(first, (batch, k)), jnp.zeros((batch, k), jnp.int32), state)
    _, tokens, _, _, scores, lengths, _ = lax.while_loop(cond, body, init)
    norm = scores / length_penalty(lengths, alpha)
    best = jnp.argmax(norm, axis=1)
    pick = lambda x: jnp.take_along_axis(x, best.reshape((batch,) + (1,) * (x.ndim - 1)),
                                         axis=1)[:, 0]
    return pick(tokens), pick(norm), pick(scores)


def strip(tokens, eos: int, pad: int) -> list[list[int]]:
    """Host-side: each row's ids up to (not including) the first ``eos``, without ``pad``."""
    out = []
    for row in jax.device_get(tokens).tolist():
        ids = []
        for i in row:
            if i == eos:
                break
            if i != pad:
                ids.append(i)
        out.append(ids)
    return out
