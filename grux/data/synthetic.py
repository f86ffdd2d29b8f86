"""Synthetic sequence tasks that need no files."""
from __future__ import annotations

import numpy as np


def adding_problem(rng: np.random.Generator, batch: int, length: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The adding problem (Hochreiter & Schmidhuber 1997, as in Le et al. 2015).

    Each sequence has two channels: values ``u_t ~ U(0, 1)`` and a marker channel with
    exactly two ones, one in each half of the sequence. The target is the sum of the two
    marked values. Predicting the constant 1 gives MSE ``Var(u₁ + u₂) = 1/6 ≈ 0.167``; a model
    must remember a value across up to ``length`` steps to do better.

    Returns:
      ``x: (batch, length, 2)`` float32 and ``y: (batch,)`` float32.
    """
    if length < 2:
        raise ValueError(f"adding problem needs length >= 2, got {length}")
    values = rng.uniform(0.0, 1.0, (batch, length)).astype(np.float32)
    half = length // 2
    first = rng.integers(0, half, batch)
    second = rng.integers(half, length, batch)
    markers = np.zeros((batch, length), np.float32)
    rows = np.arange(batch)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), y.astype(np.float32)


def copy_problem(rng: np.random.Generator, batch: int, delay: int, *, symbols: int = 8,
                 length: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

    Tokens: ``0`` blank, ``1..symbols`` data, ``symbols + 1`` the "go" marker. The input is
    ``length`` random data symbols, ``delay − 1`` blanks, the marker, then ``length`` blanks;
    the target is blank everywhere except the last ``length`` steps, which must repeat the
    data symbols. A model that outputs blanks and then random symbols has cross-entropy
    ``length · log(symbols) / (delay + 2·length)`` per step.

    Returns:
      ``x, y: (batch, delay + 2·length)`` int32.
    """
    if delay < 1 or length < 1 or symbols < 2:
        raise ValueError(f"copy problem needs delay >= 1, length >= 1 and symbols >= 2, got "
                         f"{delay}, {length}, {symbols}")
    total = delay + 2 * length
    data = rng.integers(1, symbols + 1, (batch, length))
    x = np.zeros((batch, total), np.int32)
    y = np.zeros((batch, total), np.int32)
    x[:, :length] = data
    x[:, length + delay - 1] = symbols + 1
    y[:, -length:] = data
    return x, y


_WORDS = ("the a one this that cat dog bird fish man woman child sees hears likes eats finds "
          "red big small old new quickly slowly and but near under over").split()


def synthetic_text(seed: int, lines: int) -> list[str]:
    """A deterministic toy corpus for smoke tests: ``lines`` sentences from a fixed random
    word-level Markov chain (first order, 5 likely successors per word), so a language model
    can learn it well below the uniform ``log(|V|)``."""
    table = np.random.default_rng(12345)  # the chain is the same for every seed
    successors = {w: table.choice(len(_WORDS), 5, replace=False) for w in _WORDS}
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(lines):
        w = _WORDS[rng.integers(len(_WORDS))]
        words = [w]
        for _ in range(rng.integers(4, 12)):
            w = _WORDS[successors[w][rng.integers(5)]]
            words.append(w)
        out.append(" " + " ".join(words))
    return out
