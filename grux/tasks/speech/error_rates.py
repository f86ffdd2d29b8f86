"""Recognition error rates from the Levenshtein edit distance.

``edit_distance(ref, hyp)`` is the least number of substitutions, deletions and insertions
turning ``ref`` into ``hyp`` (Wagner & Fischer 1974). Corpus-level rates divide the summed
distances by the summed reference lengths (as NIST sclite and ``jiwer`` do), so long
utterances weigh more than short ones; the sentence error rate is the fraction of
utterances with any error.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance between two sequences of hashable tokens."""
    ref, hyp = list(ref), list(hyp)
    if not ref or not hyp:
        return len(ref) + len(hyp)
    prev = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        cur = np.empty_like(prev)
        cur[0] = i
        sub = prev[:-1] + np.array([r != h for h in hyp])
        # deletions and substitutions first, then insertions left to right
        cur[1:] = np.minimum(sub, prev[1:] + 1)
        for j in range(1, len(cur)):
            cur[j] = min(cur[j], cur[j - 1] + 1)
        prev = cur
    return int(prev[-1])


def error_rates(refs: Sequence[Sequence], hyps: Sequence[Sequence],
                words: bool = True, separator=None) -> dict[str, float]:
    """``token_error_rate`` (edits / reference tokens), ``sentence_error_rate`` and, with
    ``words``, ``word_error_rate``: tokens split into words at ``separator`` (``None``:
    every token is a word, as for digit strings, so the two rates agree)."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    edits = total = wrong = w_edits = w_total = 0
    for ref, hyp in zip(refs, hyps):
        ref, hyp = list(ref), list(hyp)
        edits += edit_distance(ref, hyp)
        total += len(ref)
        wrong += ref != hyp
        if words:
            rw, hw = split_words(ref, separator), split_words(hyp, separator)
            w_edits += edit_distance(rw, hw)
            w_total += len(rw)
    out = {"token_error_rate": edits / max(total, 1),
           "sentence_error_rate": wrong / max(len(refs), 1)}
    if words:
        out["word_error_rate"] = w_edits / max(w_total, 1)
    return out


def split_words(tokens: Sequence, separator=None) -> list[tuple]:
    """Words of a token sequence: maximal runs between ``separator`` tokens (empty runs
    dropped); every token alone when ``separator`` is ``None``."""
    if separator is None:
        return [(t,) for t in tokens]
    out, cur = [], []
    for t in tokens:
        if t == separator:
            if cur:
                out.append(tuple(cur))
            cur = []
        else:
            cur.append(t)
    if cur:
        out.append(tuple(cur))
    return out
