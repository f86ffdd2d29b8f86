"""Forecast-vs-actual plots of a trained forecasting model, as PNG (matplotlib, Agg); the
command is ``grux-plot-forecast`` (:mod:`grux.infer.plot_forecast`).

One panel per chosen evaluation window: the look-back, the actual continuation, the model's
forecast (with its 80 % interval when the model has a Gaussian likelihood) and the naive and
linear baselines, all on the scale the metrics use (train-standardised for ETT, the original
one for M4 and airline). Windows are indices into the split's windows (M4: series index).
"""
from __future__ import annotations

import jax
import numpy as np

from grux.tasks.forecast.metrics import gaussian_quantile


def window_forecasts(task, model, split: str, windows: list[int]) -> dict[str, np.ndarray]:
    """``x (n, L, C)``, ``y, mu, naive, linear (n, H, C)`` and ``lo, hi`` (80 % interval or
    None) for the chosen windows, on the metrics' scale (original scale when the task
    reports sMAPE/MASE)."""
    data = task.data
    n = data.num_windows(split)
    bad = [w for w in windows if not 0 <= w < n]
    if bad:
        raise ValueError(f"windows {bad} out of range: split {split!r} has {n} windows")
    rows = [data.eval_batch(split, w, 1) for w in windows]
    batch = {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}
    mu, sigma = jax.jit(lambda x: task.predict(model, x))(batch["x"])
    out = {"x": batch["x"], "y": batch["y"], "mu": np.asarray(mu)}
    out.update({k: np.asarray(v) for k, v in task.baseline_forecasts(batch["x"]).items()})
    out["lo"] = None if sigma is None else np.asarray(gaussian_quantile(mu, sigma, 0.1))
    out["hi"] = None if sigma is None else np.asarray(gaussian_quantile(mu, sigma, 0.9))
    if task.raw:
        for k, v in list(out.items()):
            if v is not None:
                out[k] = v * batch["scale"] + batch["loc"]
    return out


def plot_forecasts(task, model, step: int, out: str, *, split: str = "test", windows=(0,),
                   channel: str | int = -1) -> str:
    """Write the PNG ``out`` for ``windows`` of ``split`` with ``model`` (trained to
    ``step``) of a forecasting ``task``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(task.data.columns)
    if isinstance(channel, str) and not channel.lstrip("-").isdigit():
        if channel not in names:
            raise ValueError(f"unknown channel {channel!r}; channels: {names}")
        c = names.index(channel)
    else:
        c = int(channel)
        if not -len(names) <= c < len(names):
            raise ValueError(f"channel {c} out of range: the series has {len(names)} "
                             f"channels {names}")
    f = window_forecasts(task, model, split, list(windows))
    lookback, horizon = f["x"].shape[1], f["y"].shape[1]
    fig, axes = plt.subplots(len(windows), 1, figsize=(10, 2.8 * len(windows)), squeeze=False)
    past, future = np.arange(-lookback, 0), np.arange(horizon)
    for ax, i, w in zip(axes[:, 0], range(len(windows)), windows):
        ax.plot(past, f["x"][i, :, c], color="0.4", lw=1, label="look-back")
        ax.plot(future, f["y"][i, :, c], color="k", lw=1.2, label="actual")
        ax.plot(future, f["mu"][i, :, c], color="C0", lw=1.4, label="grux")
        if f["lo"] is not None:
            ax.fill_between(future, f["lo"][i, :, c], f["hi"][i, :, c], color="C0",
                            alpha=0.25, label="80% interval")
        ax.plot(future, f["naive"][i, :, c], color="C1", lw=1, ls="--", label="naive")
        ax.plot(future, f["linear"][i, :, c], color="C2", lw=1, ls=":", label="linear")
        ax.axvline(-0.5, color="0.7", lw=0.8)
        ax.set_title(f"{task.config.task.dataset} {split} window {w}, {names[c]}", fontsize=9)
    axes[0, 0].legend(fontsize=7, ncol=6, loc="upper left")
    axes[-1, 0].set_xlabel(f"steps from the forecast origin (checkpoint step {step})")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
