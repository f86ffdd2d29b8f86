"""Connectionist temporal classification (Graves et al. 2006): the loss on padded batches
and host-side decoding.

Labels ``1 … K−1``, blank ``0``. A path ``π`` (one symbol per frame) maps to a label
sequence by merging repeats and then dropping blanks; ``p(y|x) = Σ_{π → y} Π_t p_t(π_t)``.

* :func:`ctc_loss`: ``−log p(y|x)`` per utterance with optax's forward algorithm, frame and
  label lengths respected (padding never scored).
* :func:`greedy_decode`: the most likely path, merged (best-path decoding).
* :func:`prefix_beam_search`: CTC prefix beam search over label prefixes, each carried with
  its probability of ending in a blank and in a non-blank, so that the paths of a prefix are
  summed rather than the best one taken.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax

BLANK = 0


def ctc_loss(logits, frame_mask, labels, label_lengths):
    """``−log p(labels | x)`` per utterance, ``(B,)``. ``logits (B, T, K)``, ``frame_mask
    (B, T)`` 1 on real frames, ``labels (B, N)`` right-padded, ``label_lengths (B,)``."""
    n = labels.shape[1]
    label_pad = (jnp.arange(n)[None] >= label_lengths[:, None]).astype(jnp.float32)
    return optax.ctc_loss(logits.astype(jnp.float32), 1.0 - frame_mask.astype(jnp.float32),
                          labels, label_pad, blank_id=BLANK)


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
