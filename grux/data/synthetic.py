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
