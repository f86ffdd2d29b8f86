"""Forecast error measures as pure functions of arrays (NumPy or JAX inputs; ``jnp`` math).

Every function returns the *pointwise* terms, shape of the broadcast inputs, so the caller
decides the averaging: the forecasting task turns them into ``(sum, weight)`` pairs over all
windows, steps and channels, which gives the usual means exactly.

Notation: ``y`` the actual value, ``f`` the point forecast, ``μ, σ`` a Gaussian forecast,
``Φ, φ`` the standard normal cdf and pdf.

* squared error ``(y − f)²`` and absolute error ``|y − f|`` (MSE / MAE once averaged; on ETT
  they are computed on train-standardised values, as in Informer/Autoformer).
* sMAPE term (M4): ``200 · |y − f| / (|y| + |f|)`` (0 where ``y = f = 0``); the M4 sMAPE of a
  series is the mean over its horizon, the score the mean over series.
* MASE term (M4): ``|y − f| / s`` with the series' in-sample seasonal-naive scale
  ``s = mean_{t>m} |h_t − h_{t−m}|`` (:func:`mase_scale`, ``m`` = 24 for hourly).
* OWA (M4): ``½ (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2)`` of the overall means.
* Gaussian NLL ``½ log(2π σ²) + (y − μ)² / (2σ²)``.
* Gaussian CRPS, closed form (Gneiting & Raftery 2007): with ``z = (y − μ)/σ``,
  ``CRPS = σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π]``.
* Pinball (quantile) loss of the ``q``-quantile forecast ``f_q``:
  ``max(q (y − f_q), (q − 1)(y − f_q))``; for a Gaussian ``f_q = μ + σ Φ⁻¹(q)``.
"""
from __future__ import annotations

import math
from statistics import NormalDist

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

M4_SEASONALITY_HOURLY = 24


def squared_error(y, f):
    """``(y − f)²``, elementwise."""
    return (jnp.asarray(y) - jnp.asarray(f)) ** 2


def absolute_error(y, f):
    """``|y − f|``, elementwise."""
    return jnp.abs(jnp.asarray(y) - jnp.asarray(f))


def smape_terms(y, f):
    """M4 sMAPE terms ``200 |y − f| / (|y| + |f|)`` in percent; 0 where both are 0."""
    y, f = jnp.asarray(y), jnp.asarray(f)
    denom = jnp.abs(y) + jnp.abs(f)
    safe = jnp.where(denom > 0, denom, 1.0)
    return jnp.where(denom > 0, 200.0 * jnp.abs(y - f) / safe, 0.0)


def mase_scale(history: np.ndarray, m: int) -> float:
    """In-sample seasonal-naive MAE ``mean_{t=m+1..n} |h_t − h_{t−m}|`` of a 1-D history.

    Raises ValueError when the history has ``≤ m`` values (no seasonal difference)."""
    h = np.asarray(history, np.float64)
    if h.ndim != 1 or len(h) <= m:
        raise ValueError(f"mase_scale needs a 1-D history longer than m={m}, got shape "
                         f"{h.shape}")
    return float(np.mean(np.abs(h[m:] - h[:-m])))


def mase_terms(y, f, scale):
    """``|y − f| / scale``; ``scale`` broadcasts against ``y`` (one per series)."""
    return absolute_error(y, f) / jnp.asarray(scale)


def owa(smape: float, mase: float, smape_naive2: float, mase_naive2: float) -> float:
    """M4 overall weighted average ``½ (sMAPE/sMAPE_Naive2 + MASE/MASE_Naive2)``."""
    return 0.5 * (smape / smape_naive2 + mase / mase_naive2)


def gaussian_nll(y, mu, sigma):
    """``½ log(2πσ²) + (y − μ)²/(2σ²)``, elementwise (nats)."""
    y, mu, sigma = jnp.asarray(y), jnp.asarray(mu), jnp.asarray(sigma)
    return 0.5 * jnp.log(2.0 * math.pi * sigma ** 2) + (y - mu) ** 2 / (2.0 * sigma ** 2)


def normal_pdf(z):
    """``φ(z) = exp(−z²/2) / √(2π)``."""
    return jnp.exp(-0.5 * jnp.square(z)) / math.sqrt(2.0 * math.pi)


@jax.custom_jvp
def normal_cdf(z):
    """``Φ(z) = ½ erfc(−z/√2)``, with the derivative ``φ(z)`` given explicitly.

    Why not ``jax.scipy.stats.norm.cdf``: on jax 0.12 the JVP of ``erf``/``erfc`` evaluates
    ``exp(−x²)`` through ``lax.polynomial`` with constant (non-varying) coefficients, which
    ``shard_map``'s varying-axes check rejects ("Primitive polynomial requires varying manual
    axes to match") as soon as the loss is differentiated inside the sharded train step.
    The derivative written with ``jnp.exp`` has no such constants and is exact."""
    return 0.5 * lax.erfc(-z / math.sqrt(2.0))


@normal_cdf.defjvp
def _normal_cdf_jvp(primals, tangents):
    (z,), (dz,) = primals, tangents
    return normal_cdf(z), normal_pdf(z) * dz


def gaussian_crps(y, mu, sigma):
    """Closed-form CRPS of ``N(μ, σ²)`` at ``y``: ``σ [z(2Φ(z) − 1) + 2φ(z) − 1/√π]``."""
    y, mu, sigma = jnp.asarray(y), jnp.asarray(mu), jnp.asarray(sigma)
    z = (y - mu) / sigma
    return sigma * (z * (2.0 * normal_cdf(z) - 1.0) + 2.0 * normal_pdf(z)
                    - 1.0 / math.sqrt(math.pi))


def pinball(y, f_q, q: float):
    """Quantile loss ``max(q (y − f_q), (q − 1)(y − f_q))``, elementwise."""
    d = jnp.asarray(y) - jnp.asarray(f_q)
    return jnp.maximum(q * d, (q - 1.0) * d)


def gaussian_quantile(mu, sigma, q: float):
    """``μ + σ Φ⁻¹(q)``."""
    return jnp.asarray(mu) + jnp.asarray(sigma) * NormalDist().inv_cdf(q)
