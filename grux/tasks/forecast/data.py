"""Forecasting windows: splits, normalisation and batches, as pure NumPy on the host.

**Dated series** (ETT, weather, airline passengers), the Informer/Autoformer protocol. With
split rows ``[start, stop)`` (ETTh: train [0, 8640), validation [8640, 11520), test
[11520, 14400), i.e. 12/4/4 months of 30 days; ETTm the same ×4), look-back ``L`` and horizon
``H``, a split's windows cover rows ``[b1, b2)`` with

    b1 = start − L   (validation, test: the look-back may reach into the previous split)
    b1 = start = 0   (train)
    b2 = stop

and window ``i = 0 .. (b2 − b1) − L − H`` reads ``x = v[b1+i : b1+i+L]``,
``y = v[b1+i+L : b1+i+L+H]`` (Informer's ``border1s/border2s`` and ``__len__ = len − L − H
+ 1``). Values are standardised per channel with the mean and (population, ddof 0) standard
deviation of the train rows only; errors are measured on that scale.

**M4 hourly**: 414 series. ``test``: look-back = the last ``L`` values of the full history,
target = the official 48; ``validation``: the same one step back (history[:−48] →
history[−48:]); training windows lie inside history[:−48]. Each window is normalised by its
own look-back mean and standard deviation (``loc``, ``scale``, floored at
``1e-2 · max(|mean|, 1)``); metrics are computed after undoing it, on the original scale.

Batches are dicts of float32 arrays: ``x (B, L, C)``, ``y (B, H, C)`` (normalised),
``loc, scale (B, 1, C)`` (original = normalised · scale + loc), ``weight (B,)`` (0 for
padding rows), and where sMAPE/MASE are reported ``mase_scale (B, 1, C)`` (in-sample
seasonal-naive MAE of the history before the forecast origin) and ``naive2 (B, H, C)`` (the
M4 Naive2 forecast on the original scale).
"""
from __future__ import annotations

import numpy as np

from grux.data.stream import seeded_rng
from grux.tasks.forecast.baselines import fit_linear, naive2_forecast, series_windows
from grux.tasks.forecast.metrics import mase_scale

SPLITS = ("train", "validation", "test")
SAMPLINGS = ("uniform", "epochs")
# Airline passengers (144 months, no standard split): 1949-1957 / 1958 / 1959-1960.
AIRLINE_BORDERS = {"train": (0, 108), "validation": (108, 120), "test": (120, 144)}


def window_range(borders: dict[str, tuple[int, int]], split: str, lookback: int
                 ) -> tuple[int, int]:
    """``(b1, b2)``: the rows a split's windows read (see the module docstring)."""
    if split not in borders:
        raise ValueError(f"unknown split {split!r}; splits: {sorted(borders)}")
    start, stop = borders[split]
    b1 = start - lookback if start > 0 else 0
    if b1 < 0:
        raise ValueError(f"split {split!r} starts at row {start}, before the look-back of "
                         f"{lookback} rows fits")
    return b1, stop


def window_starts(b1: int, b2: int, lookback: int, horizon: int) -> np.ndarray:
    """First rows ``b1 .. b2 − L − H`` of every window inside ``[b1, b2)``."""
    n = (b2 - b1) - lookback - horizon + 1
    if n < 1:
        raise ValueError(f"rows [{b1}, {b2}) hold no window of look-back {lookback} + "
                         f"horizon {horizon}")
    return np.arange(b1, b1 + n)


def standardise_stats(values: np.ndarray, train: tuple[int, int]
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and population std (ddof 0) of the train rows ``[a, b)``."""
    v = np.asarray(values, np.float64)[train[0]:train[1]]
    mean, std = v.mean(0), v.std(0)
    if np.any(std == 0):
        raise ValueError(f"channels {np.flatnonzero(std == 0).tolist()} are constant on the "
                         "train rows: cannot standardise")
    return mean, std


def _pad(batch: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """Pad every leaf to ``rows`` rows by repeating row 0 (weight 0 for the copies)."""
    n = len(batch["weight"])
    if n == rows:
        return batch
    out = {k: np.concatenate([v, np.repeat(v[:1], rows - n, 0)]) for k, v in batch.items()}
    out["weight"][n:] = 0.0
    return out


class DatedSeries:
    """Windows of one multichannel series with split borders (ETT, weather, airline).

    ``raw_metrics``: also give each window ``mase_scale`` (seasonality ``m``) and the Naive2
    forecast, from all rows before its forecast origin."""

    def __init__(self, values: np.ndarray, borders: dict[str, tuple[int, int]],
                 lookback: int, horizon: int, *, m: int, raw_metrics: bool = False,
                 columns: list[str] | None = None):
        self.raw = np.asarray(values, np.float32)
        self.columns = list(columns or [f"c{i}" for i in range(self.raw.shape[1])])
        self.borders, self.lookback, self.horizon, self.m = borders, lookback, horizon, m
        self.mean, self.std = standardise_stats(self.raw, borders["train"])
        self.values = ((self.raw - self.mean) / self.std).astype(np.float32)
        self.channels = self.raw.shape[1]
        self.raw_metrics = raw_metrics
        self.starts = {s: window_starts(*window_range(borders, s, lookback), lookback, horizon)
                       for s in SPLITS}
        self._epoch: tuple = (None, None)

    def num_windows(self, split: str) -> int:
        return len(self.starts[split])

    def batch(self, starts: np.ndarray, rows: int | None = None, *, raw_metrics: bool = True
              ) -> dict[str, np.ndarray]:
        """The windows starting at ``starts``, padded to ``rows`` rows (``mase_scale`` and
        ``naive2`` only if ``raw_metrics`` and the series was built with them)."""
        starts = np.asarray(starts)
        lh = self.lookback + self.horizon
        win = self.values[starts[:, None] + np.arange(lh)]          # (B, L+H, C)
        b = len(starts)
        out = {"x": win[:, :self.lookback], "y": win[:, self.lookback:],
               "loc": np.broadcast_to(self.mean.astype(np.float32), (b, 1, self.channels)).copy(),
               "scale": np.broadcast_to(self.std.astype(np.float32), (b, 1, self.channels)).copy(),
               "weight": np.ones(b, np.float32)}
        if self.raw_metrics and raw_metrics:
            origins = starts + self.lookback
            out["mase_scale"] = np.array(
                [[[mase_scale(self.raw[:o, c], self.m) for c in range(self.channels)]]
                 for o in origins], np.float32)
            out["naive2"] = np.array(
                [np.stack([naive2_forecast(self.raw[:o, c], self.horizon, self.m)
                           for c in range(self.channels)], -1) for o in origins], np.float32)
        return _pad(out, rows or b)

    def train_batch(self, seed: int, index: int, rows: int, sampling: str = "uniform"
                    ) -> dict[str, np.ndarray]:
        """Batch ``index`` of the training stream: ``sampling="uniform"``, windows drawn
        uniformly with replacement; ``"epochs"``, see :meth:`epoch_windows`."""
        if sampling == "epochs":
            pick = self.epoch_windows(seed, index, rows)
        elif sampling == "uniform":
            pick = seeded_rng(seed, 0, index).integers(0, self.num_windows("train"), rows)
        else:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        return self.batch(self.starts["train"][pick], raw_metrics=False)

    def steps_per_epoch(self, rows: int) -> int:
        """Full batches of ``rows`` training windows in one epoch, ``⌊N / rows⌋``."""
        n = self.num_windows("train")
        if n < rows:
            raise ValueError(f"{n} training windows make no batch of {rows}")
        return n // rows

    def epoch_windows(self, seed: int, index: int, rows: int) -> np.ndarray:
        """Training-window indices of batch ``index`` in epochs: epoch ``e`` is the
        permutation ``seeded_rng(seed, 3, e)`` of all ``N`` windows cut into ``⌊N/rows⌋``
        batches (the last partial batch dropped), ``e, j = divmod(index, ⌊N/rows⌋)``."""
        epoch, j = divmod(index, self.steps_per_epoch(rows))
        cached = self._epoch                       # one epoch's permutation, kept
        if cached[0] != (seed, epoch):
            cached = ((seed, epoch), seeded_rng(seed, 3, epoch).permutation(
                self.num_windows("train")))
            self._epoch = cached
        return cached[1][j * rows:(j + 1) * rows]

    def eval_batch(self, split: str, index: int, rows: int) -> dict[str, np.ndarray]:
        return self.batch(self.starts[split][index * rows:(index + 1) * rows], rows)

    def fit_linear(self) -> np.ndarray:
        """The linear baseline's ``W (L+1, H)`` on the standardised train windows, shared
        by all channels."""
        a, b = self.borders["train"]
        return fit_linear(chunk for c in range(self.channels)
                          for chunk in series_windows(self.values[a:b, c], self.lookback,
                                                      self.horizon))


def window_norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-window ``loc, scale`` over the time axis ``-2`` of ``x (..., L, C)``: mean and std
    floored at ``1e-2 · max(|mean|, 1)``."""
    loc = x.mean(-2, keepdims=True)
    floor = 1e-2 * np.maximum(np.abs(loc), 1.0)
    return loc, np.maximum(x.std(-2, keepdims=True), floor)


class M4Hourly:
    """Windows of the M4 hourly series (see the module docstring)."""

    channels = 1
    columns = ["value"]

    def __init__(self, series: list[dict], lookback: int, horizon: int, *, m: int):
        self.lookback, self.horizon, self.m = lookback, horizon, m
        self.ids = [s["id"] for s in series]
        self.history = [np.asarray(s["train"], np.float32) for s in series]
        self.future = [np.asarray(s["test"], np.float32) for s in series]
        if any(len(f) != horizon for f in self.future):
            raise ValueError(f"M4 hourly test horizons are 48 values; horizon={horizon}")
        self.train_part = [h[:-horizon] for h in self.history]
        short = [i for i, h in zip(self.ids, self.train_part) if len(h) < lookback + horizon]
        if short:
            raise ValueError(f"look-back {lookback} too long: series {short[:3]} have fewer "
                             f"than look-back + horizon values before the validation part")
        self.eval = {"validation": [(h[:-horizon], h[-horizon:]) for h in self.history],
                     "test": list(zip(self.history, self.future))}
        self._eval_cache: dict[str, dict[str, np.ndarray]] = {}

    def num_windows(self, split: str) -> int:
        return len(self.ids)

    @staticmethod
    def _normalised(xw: np.ndarray, yw: np.ndarray) -> dict[str, np.ndarray]:
        loc, scale = window_norm(xw)
        return {"x": (xw - loc) / scale, "y": (yw - loc) / scale, "loc": loc, "scale": scale,
                "weight": np.ones(len(xw), np.float32)}

    def split_batch(self, split: str) -> dict[str, np.ndarray]:
        """All 414 evaluation windows of ``split`` (one per series), cached."""
        if split not in self._eval_cache:
            pairs = self.eval[split]
            xw = np.stack([h[-self.lookback:] for h, _ in pairs])[..., None]
            yw = np.stack([f for _, f in pairs])[..., None]
            out = self._normalised(xw, yw)
            out["mase_scale"] = np.array([mase_scale(h, self.m) for h, _ in pairs],
                                         np.float32)[:, None, None]
            out["naive2"] = np.stack([naive2_forecast(h, self.horizon, self.m)
                                      for h, _ in pairs])[..., None]
            self._eval_cache[split] = {k: v.astype(np.float32) for k, v in out.items()}
        return self._eval_cache[split]

    def eval_batch(self, split: str, index: int, rows: int) -> dict[str, np.ndarray]:
        full = self.split_batch(split)
        part = {k: v[index * rows:(index + 1) * rows] for k, v in full.items()}
        return _pad({k: v.copy() for k, v in part.items()}, rows)

    def train_batch(self, seed: int, index: int, rows: int) -> dict[str, np.ndarray]:
        """Batch ``index``: a series uniformly, then a window of it uniformly."""
        rng = seeded_rng(seed, 0, index)
        pick = rng.integers(0, len(self.ids), rows)
        lh = self.lookback + self.horizon
        wins = np.stack([self.train_part[i][s:s + lh] for i, s in zip(
            pick, (rng.random(rows) * [len(self.train_part[i]) - lh + 1 for i in pick])
            .astype(int))])[..., None]
        out = self._normalised(wins[:, :self.lookback], wins[:, self.lookback:])
        return {k: v.astype(np.float32) for k, v in out.items()}

    def fit_linear(self) -> np.ndarray:
        """Linear baseline ``W (L+1, H)`` on every training window, each normalised by its
        own look-back (as the model sees it)."""
        def chunks():
            for h in self.train_part:
                for xw, yw in series_windows(h, self.lookback, self.horizon):
                    loc, scale = window_norm(xw[..., None])
                    yield (xw - loc[..., 0]) / scale[..., 0], (yw - loc[..., 0]) / scale[..., 0]
        return fit_linear(chunks())
