"""Reference forecasters, scored by the same code as the models (``grux.tasks.forecast``).

Shapes: look-back windows ``x (..., L, C)`` (time, then channel), forecasts ``(..., H, C)``.

* naive: ``f_h = x_L`` (the last value), for every step ``h = 1..H``.
* seasonal naive with period ``m``: ``f_h = x_{L − m + ((h − 1) mod m) + 1}``, i.e. the last
  season repeated.
* linear: ``f = [x_1 … x_L, 1] W`` with one ``W ∈ R^{(L+1)×H}`` shared by all channels, fitted
  by least squares on the training windows (normal equations ``(XᵀX) W = XᵀY`` accumulated
  in float64 over chunks of windows, so long series never need the full design matrix).
* Naive2 (M4 benchmark, the R code of the M4 competition): if the in-sample history passes
  the 90 % autocorrelation seasonality test at lag ``m``, divide it by the classical
  multiplicative decomposition's seasonal indices, forecast its last value flat and
  multiply the last season's indices back on; otherwise plain naive.
"""
from __future__ import annotations

import math
from typing import Iterable

import jax.numpy as jnp
import numpy as np


def naive_forecast(x, horizon: int):
    """``(..., L, C) → (..., H, C)``: the last value repeated."""
    x = jnp.asarray(x)
    return jnp.repeat(x[..., -1:, :], horizon, axis=-2)


def seasonal_naive_forecast(x, horizon: int, m: int):
    """``(..., L, C) → (..., H, C)``: ``f_h = x_{L−m+((h−1) mod m)+1}`` (1-based)."""
    x = jnp.asarray(x)
    length = x.shape[-2]
    if not 1 <= m <= length:
        raise ValueError(f"seasonal naive needs 1 <= m <= look-back {length}, got m={m}")
    idx = length - m + np.arange(horizon) % m
    return jnp.take(x, jnp.asarray(idx), axis=-2)


def linear_forecast(x, weights):
    """``(..., L, C) → (..., H, C)``: ``f = [x, 1] W`` per channel, ``W (L+1, H)``."""
    x = jnp.asarray(x)
    w = jnp.asarray(weights, x.dtype)
    return jnp.einsum("...lc,lh->...hc", x, w[:-1]) + w[-1][:, None]


def fit_linear(chunks: Iterable[tuple[np.ndarray, np.ndarray]], ridge: float = 0.0
               ) -> np.ndarray:
    """Least-squares ``W (L+1, H)`` of ``Y ≈ [X, 1] W`` over chunks ``(X (n, L), Y (n, H))``.

    Solves ``(AᵀA + ridge·I) W = AᵀY`` with ``A = [X, 1]`` in float64 (``ridge`` = 0: plain
    least squares; ``lstsq`` on the normal equations if ``AᵀA`` is singular)."""
    ata = aty = None
    for x, y in chunks:
        a = np.concatenate([np.asarray(x, np.float64), np.ones((len(x), 1))], axis=1)
        y = np.asarray(y, np.float64)
        ata = a.T @ a if ata is None else ata + a.T @ a
        aty = a.T @ y if aty is None else aty + a.T @ y
    if ata is None:
        raise ValueError("fit_linear got no training windows")
    ata = ata + ridge * np.eye(len(ata))
    try:
        w = np.linalg.solve(ata, aty)
    except np.linalg.LinAlgError:
        w = np.linalg.lstsq(ata, aty, rcond=None)[0]
    return w.astype(np.float32)


def series_windows(series: np.ndarray, lookback: int, horizon: int, chunk: int = 4096):
    """Chunks ``(X (n, L), Y (n, H))`` of every window of a 1-D series, in order (contiguous
    copies of at most ``chunk`` windows)."""
    s = np.asarray(series)
    n = len(s) - lookback - horizon + 1
    view = np.lib.stride_tricks.sliding_window_view(s, lookback + horizon)
    for i in range(0, max(n, 0), chunk):
        block = np.ascontiguousarray(view[i:min(i + chunk, n)])
        yield block[:, :lookback], block[:, lookback:]


# ------------------------------------------------------------------- M4 Naive2 (R code)
def acf(x: np.ndarray, k: int) -> float:
    """Sample autocorrelation at lag ``k`` as R's ``acf``:
    ``Σ_{t=1}^{n−k} (x_t − x̄)(x_{t+k} − x̄) / Σ_t (x_t − x̄)²``."""
    x = np.asarray(x, np.float64)
    d = x - x.mean()
    return float(np.sum(d[:len(d) - k] * d[k:]) / np.sum(d * d))


def seasonality_test(x: np.ndarray, m: int) -> bool:
    """M4's ``SeasonalityTest``: seasonal iff ``|r_m| > 1.645 √((1 + 2 Σ_{k<m} r_k²) / n)``.

    False when ``n < 3m`` or when lag ``m`` exceeds R's default ``acf`` lag range
    ``⌊10 log₁₀ n⌋`` (R yields NA there, which the M4 code treats as not seasonal)."""
    n = len(x)
    if m <= 1 or n < 3 * m or m > min(int(math.floor(10 * math.log10(n))), n - 1):
        return False
    r = np.array([acf(x, k) for k in range(1, m + 1)])
    limit = 1.645 / math.sqrt(n) * math.sqrt(1.0 + 2.0 * np.sum(r[:m - 1] ** 2))
    return bool(abs(r[m - 1]) > limit)


def multiplicative_seasonal_indices(x: np.ndarray, m: int) -> np.ndarray:
    """R ``decompose(type="multiplicative")``'s seasonal figure ``(m,)``, phase of ``x[0]``.

    Trend: centred moving average (weights ``[½, 1, …, 1, ½]/m`` for even ``m``, ``1/m`` for
    odd), undefined at the ends; ratio ``x/trend``; figure ``i`` = mean of the defined ratios
    at positions ``≡ i (mod m)``; normalised to mean 1."""
    x = np.asarray(x, np.float64)
    w = (np.r_[0.5, np.ones(m - 1), 0.5] / m) if m % 2 == 0 else np.ones(m) / m
    half = len(w) // 2
    trend = np.full(len(x), np.nan)
    trend[half:len(x) - half] = np.convolve(x, w[::-1], mode="valid")
    ratio = x / trend
    figure = np.array([np.nanmean(ratio[i::m]) for i in range(m)])
    return figure / figure.mean()


def naive2_forecast(history: np.ndarray, horizon: int, m: int) -> np.ndarray:
    """M4 Naive2 forecast ``(H,)`` from a 1-D in-sample history (see the module docstring)."""
    x = np.asarray(history, np.float64)
    if seasonality_test(x, m):
        figure = multiplicative_seasonal_indices(x, m)
        seasonal = figure[np.arange(len(x)) % m]
        last_season = seasonal[len(x) - m:]
        si_out = last_season[np.arange(horizon) % m]
        return (x[-1] / seasonal[-1]) * si_out
    return np.full(horizon, x[-1])
