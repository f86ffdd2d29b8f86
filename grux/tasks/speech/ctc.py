"""Connectionist temporal classification (Graves et al. 2006): the loss on padded batches
and host-side decoding.

Labels ``1 … K−1``, blank ``0``. A path ``π`` (one symbol per frame) maps to a label
sequence by merging repeats and then dropping blanks; ``p(y|x) = Σ_{π → y} Π_t p_t(π_t)``.

* :func:`ctc_loss`: ``−log p(y|x)`` per utterance by the forward algorithm, frame and
  label lengths respected (padding never scored).
* :func:`greedy_decode`: the most likely path, merged (best-path decoding).
* :func:`prefix_beam_search`: CTC prefix beam search over label prefixes, each carried with
  its probability of ending in a blank and in a non-blank, so that the paths of a prefix are
  summed rather than the best one taken.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

BLANK = 0


NEG = -1e30   # log 0, finite so that gradients of impossible paths stay 0 rather than NaN


def ctc_loss(logits, frame_mask, labels, label_lengths):
    """``−log p(labels | x)`` per utterance, ``(B,)``. ``logits (B, T, K)``, ``frame_mask
    (B, T)`` 1 on real frames (a prefix), ``labels (B, N)`` right-padded, ``label_lengths
    (B,)``.

    The forward algorithm (Graves et al. 2006, eq. 5-8) over the extended label sequence
    ``z = (∅, y₁, ∅, y₂, …, y_L, ∅)`` of ``S = 2N + 1`` symbols, in log space:
    ``α₀(s) = log p₀(z_s)`` for ``s < 2``; ``α_t(s) = log p_t(z_s) + logsumexp(α_{t−1}(s),
    α_{t−1}(s−1), α_{t−1}(s−2) if z_s ≠ ∅ and z_s ≠ z_{s−2})``; frames beyond an
    utterance's length leave ``α`` unchanged; ``−log p = −logsumexp(α(2L), α(2L−1))``.
    Written here rather than taken from optax because optax's scan starts from a constant
    carry, which ``shard_map``'s varying-axis check rejects; this one starts from the data.
    An impossible alignment (fewer frames than labels need) gives a loss of about 1e30."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    b, t, _ = logp.shape
    n = labels.shape[1]
    s = 2 * n + 1
    z = jnp.zeros((b, s), labels.dtype).at[:, 1::2].set(labels)
    lp = jnp.take_along_axis(logp, jnp.broadcast_to(z[:, None, :], (b, t, s)), axis=2)
    pos = jnp.arange(s)[None]
    skip = (pos % 2 == 1) & (pos >= 3)
    skip = skip & (z != jnp.roll(z, 2, axis=1))           # y_k ≠ y_{k−1}: may skip the blank
    alpha0 = jnp.where(pos < 2, lp[:, 0], NEG)
    shift = lambda a, k: jnp.pad(a, ((0, 0), (k, 0)), constant_values=NEG)[:, :s]  # noqa: E731

    def step(alpha, inputs):
        lp_t, real = inputs
        prev = jnp.logaddexp(alpha, shift(alpha, 1))
        prev = jnp.where(skip, jnp.logaddexp(prev, shift(alpha, 2)), prev)
        new = jnp.maximum(prev + lp_t, NEG)
        return jnp.where(real[:, None] > 0, new, alpha), None

    mask = frame_mask.astype(jnp.float32)
    alpha, _ = jax.lax.scan(step, alpha0, (jnp.swapaxes(lp[:, 1:], 0, 1), mask[:, 1:].T))
    end = 2 * label_lengths[:, None]
    last = jnp.take_along_axis(alpha, end, 1)[:, 0]
    before = jnp.where(label_lengths > 0,
                       jnp.take_along_axis(alpha, jnp.maximum(end - 1, 0), 1)[:, 0], NEG)
    return -jnp.logaddexp(last, before)


def collapse(path) -> list[int]:
    """Merge repeats, then drop blanks."""
    out, prev = [], None
    for s in path:
        s = int(s)
        if s != prev and s != BLANK:
            out.append(s)
        prev = s
    return out


def greedy_decode(log_probs: np.ndarray, length: int) -> list[int]:
    """Best-path decoding of one utterance's ``(T, K)`` scores over its first ``length``
    frames."""
    return collapse(np.argmax(np.asarray(log_probs)[:length], axis=-1))


def _logsumexp(*xs):
    m = max(xs)
    return m if m == -np.inf else m + np.log(sum(np.exp(x - m) for x in xs))


def prefix_beam_search(log_probs: np.ndarray, length: int, beam: int = 8
                       ) -> list[tuple[list[int], float]]:
    """CTC prefix beam search over the first ``length`` frames of ``(T, K)`` log
    probabilities: the ``beam`` best label sequences with their log probabilities, best
    first (exact ``log p(y|x)`` when the beam holds every prefix)."""
    lp = np.asarray(log_probs, np.float64)[:length]
    k = lp.shape[1]
    beams = {(): (0.0, -np.inf)}                  # prefix → (log p ending blank, non-blank)
    for t in range(lp.shape[0]):
        nxt: dict[tuple, list[float]] = {}

        def add(prefix, pb, pnb):
            cur = nxt.setdefault(prefix, [-np.inf, -np.inf])
            cur[0], cur[1] = _logsumexp(cur[0], pb), _logsumexp(cur[1], pnb)

        for prefix, (pb, pnb) in beams.items():
            total = _logsumexp(pb, pnb)
            add(prefix, total + lp[t, BLANK], -np.inf)          # a blank keeps the prefix
            last = prefix[-1] if prefix else None
            for c in range(1, k):
                if c == last:
                    add(prefix, -np.inf, pnb + lp[t, c])         # repeat merges
                    add(prefix + (c,), -np.inf, pb + lp[t, c])   # new c after a blank
                else:
                    add(prefix + (c,), -np.inf, total + lp[t, c])
        possible = [kv for kv in nxt.items() if _logsumexp(*kv[1]) > -np.inf]
        ranked = sorted(possible, key=lambda kv: -_logsumexp(*kv[1]))[:beam]
        beams = {p: tuple(v) for p, v in ranked}
    return [(list(p), float(_logsumexp(*v))) for p, v in beams.items()]
