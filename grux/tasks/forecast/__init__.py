"""Time-series forecasting (``task.name="forecast"``): ETT, weather, M4 hourly, airline.

Data and protocol: :mod:`grux.tasks.forecast.data` (Informer/Autoformer windows and
train-set standardisation for ETT; one window per series for M4 hourly). A batch gives the
look-back ``x (B, L, C)`` and the target ``y (B, H, C)`` on the normalised scale.

Models: ``model.kind = "recurrent"`` (default) with ``model.decoder``, both on a grux
recurrent stack (``model.cell`` etc.):

* ``direct``: encoder over ``x``, then one linear map of the last layer's final state to all
  ``H·C`` outputs at once: ``ŷ = W h_L + b`` reshaped to ``(H, C)``.
* ``autoregressive`` (DeepAR-like, one stack): the stack reads ``x``, then continues with the
  previous value as input; each step's output ``o_t`` gives ``ŷ_{t+1} = W o_t + b``. Training
  uses teacher forcing (inputs ``y_1 .. y_{H−1}``); evaluation feeds back its own mean
  forecasts.

``model.instance_norm``: standardise every look-back by its own mean and std before the
model and map the forecast back (RevIN-like, for series that drift, e.g. airline).

``model.kind = "segrnn"``: SegRNN (Lin et al. 2023), segment-wise encoding, parallel
multi-step decoding with position and channel embeddings, channel independence and its own
reversible normalisation (``model.segment``, ``input``, ``output``, ``revin``,
``revin_scale``, ``revin_affine``, ``channel_embedding``, ``output_dropout``); see
:mod:`grux.tasks.forecast.segrnn`. Point forecasts only.

``task.loss``: the training objective of point forecasts, ``mse`` (default) or ``mae``
(a Gaussian head always trains on its NLL). ``task.sampling``: training windows drawn
``uniform``-ly with replacement (default), or in ``epochs``: each epoch one shuffled pass
over all training windows, the last partial batch dropped (the Autoformer/SegRNN loader);
batch ``i`` is then window ``perm_e[j·B .. (j+1)·B)`` with ``e, j = divmod(i, ⌊N/B⌋)``.

``model.likelihood``: ``none`` (point forecast, loss = MSE) or ``gaussian`` (each output is
``μ`` and ``σ = softplus(s) + 1e-3``, loss = Gaussian NLL; CRPS, pinball losses at
q = 0.1/0.9 and the 80 % interval coverage are reported). For the autoregressive decoder the
``σ`` of step ``h > 1`` is the one-step conditional scale given the fed-back means, an
approximation of the marginal.

Metrics (``(sum, weight)`` over every window, step and channel; formulas in
:mod:`grux.tasks.forecast.metrics`): ``loss``, ``mse``, ``mae`` on the normalised scale
(train-standardised for ETT, as in Informer), and for M4/airline ``smape`` and ``mase`` on
the original scale (``owa`` for M4). In evaluation the same code scores the baselines of
:mod:`grux.tasks.forecast.baselines` on the same windows: ``naive_*``, ``snaive_*`` (period
``task.seasonality``), ``linear_*`` (least squares on the training windows) and for M4
``naive2_*``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from grux.data.paths import data_dirs
from grux.ops.series import CENTERS
from grux.data.stream import BatchStream
from grux.tasks.forecast import metrics as fm
from grux.tasks.base import Task, register, weighted
from grux.tasks.common import build_recurrent, recurrent_model_config, validate_recurrent_model
from grux.tasks.forecast.baselines import (linear_forecast, naive_forecast,
                                           seasonal_naive_forecast)
from grux.data.m4 import HOURLY_HORIZON as M4_HORIZON
from grux.tasks.forecast.data import AIRLINE_BORDERS, SAMPLINGS, DatedSeries, M4Hourly
from grux.tasks.forecast.segrnn import INITS, INPUTS, OUTPUTS, SegRNNForecaster

ETT = ("etth1", "etth2", "ettm1", "ettm2")
DATASETS = ETT + ("weather", "m4_hourly", "airline_passengers")
RAW_METRIC_DATASETS = ("m4_hourly", "airline_passengers")
DECODERS = ("direct", "autoregressive")
LIKELIHOODS = ("none", "gaussian")
KINDS = ("recurrent", "segrnn")
LOSSES = ("mse", "mae")
SIGMA_FLOOR = 1e-3
QUANTILES = (0.1, 0.9)


def _last_layer_state(final):
    last = final[0] if isinstance(final, tuple) else final   # LSTM: (h, c)
    return last[-1]


class GaussianHead(nnx.Module):
    """``o → (μ, σ)`` per output: ``μ = W_μ o + b``, ``σ = softplus(W_σ o + b) + 1e-3``
    (``σ = None`` without a likelihood)."""

    def __init__(self, hidden: int, outputs: int, gaussian: bool, rngs: nnx.Rngs):
        self.gaussian = gaussian
        self.proj = nnx.Linear(hidden, outputs * (2 if gaussian else 1), rngs=rngs)

    def __call__(self, o):
        out = self.proj(o)
        if not self.gaussian:
            return out, None
        mu, s = jnp.split(out, 2, axis=-1)
        return mu, jax.nn.softplus(s) + SIGMA_FLOOR


class DirectForecaster(nnx.Module):
    """Recurrent encoder → final state → all ``H × C`` outputs by one linear head."""

    def __init__(self, m, channels: int, horizon: int, gaussian: bool, rngs: nnx.Rngs):
        self.horizon, self.channels = horizon, channels
        self.rnn = build_recurrent(m, channels, rngs)
        self.head = GaussianHead(m.hidden, horizon * channels, gaussian, rngs)

    def __call__(self, x, y=None, rngs=None):
        _, final = self.rnn(x, rngs=rngs)
        mu, sigma = self.head(_last_layer_state(final))
        shape = (x.shape[0], self.horizon, self.channels)
        return mu.reshape(shape), None if sigma is None else sigma.reshape(shape)


class AutoregressiveForecaster(nnx.Module):
    """One recurrent stack reads ``x`` and then its own (or, in training, the true)
    previous values; a linear head maps each output to the next value."""

    def __init__(self, m, channels: int, horizon: int, gaussian: bool, rngs: nnx.Rngs):
        self.horizon = horizon
        self.rnn = build_recurrent(m, channels, rngs)
        self.head = GaussianHead(m.hidden, channels, gaussian, rngs)

    def __call__(self, x, y=None, rngs=None):
        out, state = self.rnn(x, rngs=rngs)
        first_mu, first_sigma = self.head(out[:, -1])                 # ŷ_1 (B, C)
        if self.horizon == 1:
            return first_mu[:, None], None if first_sigma is None else first_sigma[:, None]
        if y is not None:                                             # teacher forcing
            out, _ = self.rnn(y[:, :-1], initial_state=state, rngs=rngs)
            mu, sigma = self.head(out)
        else:                                                         # free running
            graphdef, params = nnx.split((self.rnn, self.head))

            def step(carry, _):
                h, prev = carry
                rnn, head = nnx.merge(graphdef, params)
                o, h = rnn.step(prev, h)
                mu_t, sigma_t = head(o)
                return (h, mu_t), (mu_t, mu_t if sigma_t is None else sigma_t)

            _, (mu, sigma) = jax.lax.scan(step, (state, first_mu), None,
                                          length=self.horizon - 1)
            mu = jnp.swapaxes(mu, 0, 1)
            sigma = None if first_sigma is None else jnp.swapaxes(sigma, 0, 1)
        mu = jnp.concatenate([first_mu[:, None], mu], 1)
        if first_sigma is None:
            return mu, None
        return mu, jnp.concatenate([first_sigma[:, None], sigma], 1)


def point_metrics(prefix: str, y, f, w, batch, raw: bool) -> dict:
    """``{prefix}mse``, ``{prefix}mae`` on the normalised scale; with ``raw`` also
    ``{prefix}smape`` and ``{prefix}mase`` on the original scale. ``w (B, 1, 1)``."""
    out = {f"{prefix}mse": weighted(fm.squared_error(y, f), w),
           f"{prefix}mae": weighted(fm.absolute_error(y, f), w)}
    if raw:
        loc, scale = batch["loc"], batch["scale"]
        y_raw, f_raw = y * scale + loc, f * scale + loc
        out.update(raw_metrics(prefix, y_raw, f_raw, w, batch))
    return out


def raw_metrics(prefix: str, y_raw, f_raw, w, batch) -> dict:
    return {f"{prefix}smape": weighted(fm.smape_terms(y_raw, f_raw), w),
            f"{prefix}mase": weighted(fm.mase_terms(y_raw, f_raw, batch["mase_scale"]), w)}


@register
class ForecastTask(Task):
    name = "forecast"
    unit = "windows"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {"name": "forecast",
                     "dataset": "etth1",   # etth1|etth2|ettm1|ettm2|weather|m4_hourly|
                                           # airline_passengers
                     "lookback": 96,       # L: input window
                     "horizon": 24,        # H: steps forecast at once (M4 hourly: 48)
                     "seasonality": 24,    # m: seasonal naive period (and MASE/Naive2)
                     "loss": "mse",        # point-forecast objective: mse | mae
                     "sampling": "uniform",  # training windows: uniform (with
                                             # replacement) | epochs (shuffled passes)
                     },
            # instance_norm: the model sees each look-back standardised by its own mean and
            # std and its forecasts are mapped back (RevIN-like); metrics are unchanged
            "model": recurrent_model_config(
                kind="recurrent",          # recurrent (decoder: direct|autoregressive) |
                                           # segrnn (the fields below)
                decoder="direct", likelihood="none", instance_norm=False,
                # --- segrnn only (grux.tasks.forecast.segrnn); width = hidden
                segment=24,                # w: segment length, divides lookback and horizon
                input="segment",           # segment | point (point-wise ablation)
                output="parallel",         # parallel (PMF) | recurrent (RMF ablation)
                revin="last",              # subtract each look-back's last | mean | none
                revin_scale=False,         # also divide by its std (RevIN)
                revin_affine=False,        # learned per-channel gamma, beta
                channel_embedding=True,    # decoder input [position (d - d//2), channel (d//2)]
                output_dropout=0.0,        # dropout before the output projection
                init="flax",               # flax (grux defaults) | torch (PyTorch's
                                           # nn.Linear / nn.GRU defaults, as SegRNN's)
            ),
        })

    @staticmethod
    def validate(config):
        t = config.task
        if t.dataset not in DATASETS:
            raise ValueError(f"config.task.dataset must be one of {DATASETS}, got "
                             f"{t.dataset!r}")
        for field in ("lookback", "horizon", "seasonality"):
            if t[field] < 1:
                raise ValueError(f"config.task.{field} must be >= 1, got {t[field]}")
        if t.seasonality > t.lookback:
            raise ValueError(f"config.task.seasonality ({t.seasonality}) must not exceed "
                             f"config.task.lookback ({t.lookback}): seasonal naive repeats "
                             "the last season of the look-back")
        if t.dataset == "m4_hourly" and t.horizon != M4_HORIZON:
            raise ValueError(f"config.task.horizon must be {M4_HORIZON} for m4_hourly "
                             f"(the competition horizon), got {t.horizon}")
        if t.loss not in LOSSES:
            raise ValueError(f"config.task.loss must be one of {LOSSES}, got {t.loss!r}")
        if t.sampling not in SAMPLINGS:
            raise ValueError(f"config.task.sampling must be one of {SAMPLINGS}, got "
                             f"{t.sampling!r}")
        if t.sampling == "epochs" and t.dataset == "m4_hourly":
            raise ValueError("config.task.sampling='epochs' needs a dated series; m4_hourly "
                             "samples 'uniform' only")
        m = config.model
        if m.kind not in KINDS:
            raise ValueError(f"config.model.kind must be one of {KINDS}, got {m.kind!r}")
        if m.likelihood == "gaussian" and t.loss != "mse":
            raise ValueError(f"config.task.loss={t.loss!r} is for point forecasts; with "
                             "config.model.likelihood='gaussian' the loss is the NLL (leave "
                             "task.loss='mse')")
        ForecastTask._validate_segrnn(config)
        if config.model.decoder not in DECODERS:
            raise ValueError(f"config.model.decoder must be one of {DECODERS}, got "
                             f"{config.model.decoder!r}")
        if config.model.likelihood not in LIKELIHOODS:
            raise ValueError(f"config.model.likelihood must be one of {LIKELIHOODS}, got "
                             f"{config.model.likelihood!r}")
        validate_recurrent_model(config.model)

    @staticmethod
    def _validate_segrnn(config):
        m, t = config.model, config.task
        for field, allowed in (("input", INPUTS), ("output", OUTPUTS), ("revin", CENTERS),
                               ("init", INITS)):
            if m[field] not in allowed:
                raise ValueError(f"config.model.{field} must be one of {allowed}, got "
                                 f"{m[field]!r}")
        if not 0.0 <= m.output_dropout < 1.0:
            raise ValueError(f"config.model.output_dropout must be in [0, 1), got "
                             f"{m.output_dropout}")
        if m.kind != "segrnn":
            return
        if m.segment < 1:
            raise ValueError(f"config.model.segment must be >= 1, got {m.segment}")
        if t.horizon % m.segment or (m.input == "segment" and t.lookback % m.segment):
            raise ValueError(f"config.model.segment ({m.segment}) must divide "
                             f"config.task.horizon ({t.horizon})"
                             + (f" and config.task.lookback ({t.lookback})"
                                if m.input == "segment" else ""))
        if m.likelihood != "none":
            raise ValueError(f"config.model.likelihood must be 'none' with "
                             f"model.kind='segrnn' (point forecasts), got {m.likelihood!r}")
        if m.instance_norm:
            raise ValueError("config.model.instance_norm is for model.kind='recurrent'; "
                             "SegRNN normalises with config.model.revin")

    def __init__(self, config):
        super().__init__(config)
        self._data = None
        self._linear = None

    # ------------------------------------------------------------------ data
    @property
    def data(self) -> DatedSeries | M4Hourly:
        if self._data is None:
            t = self.config.task
            from grux.data import datasets  # TFDS is imported on first data access
            dirs = data_dirs(self.config)
            if t.dataset == "m4_hourly":
                self._data = M4Hourly(datasets.m4_series("test", **dirs), t.lookback,
                                      t.horizon, m=t.seasonality)
            else:
                full = datasets.series_full(t.dataset, **dirs)
                borders = full["borders"] or AIRLINE_BORDERS
                self._data = DatedSeries(full["values"], borders, t.lookback, t.horizon,
                                         m=t.seasonality,
                                         raw_metrics=t.dataset in RAW_METRIC_DATASETS,
                                         columns=full["columns"])
        return self._data

    @property
    def linear_weights(self) -> np.ndarray:
        if self._linear is None:
            self._linear = self.data.fit_linear()
        return self._linear

    @property
    def raw(self) -> bool:
        return self.config.task.dataset in RAW_METRIC_DATASETS

    def build_model(self, rngs):
        m, t = self.config.model, self.config.task
        if m.get("kind", "recurrent") == "segrnn":  # kind: absent in older runs
            return SegRNNForecaster(m, self.data.channels, t.lookback, t.horizon, rngs)
        cls = DirectForecaster if m.decoder == "direct" else AutoregressiveForecaster
        return cls(m, self.data.channels, t.horizon, m.likelihood == "gaussian", rngs)

    def train_stream(self, batch_size, process_index, process_count):
        data, seed = self.data, self.config.seed
        sampling = self.config.task.get("sampling", "uniform")     # absent in older runs
        kw = {} if sampling == "uniform" else {"sampling": sampling}  # M4: uniform only
        return BatchStream(lambda i: data.train_batch(seed, i, batch_size, **kw),
                           batch_size, None, process_index=process_index,
                           process_count=process_count)

    def eval_streams(self, batch_size, process_index, process_count):
        data = self.data
        self.linear_weights  # fit once, before evaluation traces the loss
        return {split: BatchStream(lambda i, s=split: data.eval_batch(s, i, batch_size),
                                   batch_size, -(-data.num_windows(split) // batch_size),
                                   process_index=process_index, process_count=process_count)
                for split in ("validation", "test")}

    # ------------------------------------------------------------------ loss
    def loss(self, model, batch, *, rng, carry, train):
        x, y = batch["x"], batch["y"]
        w = batch["weight"][:, None, None]
        mu, sigma = self.predict(model, x, y if train else None, rngs=rng if train else None)
        metrics = point_metrics("", y, mu, w, batch, self.raw and not train)
        if sigma is None:
            metrics["loss"] = metrics[self.config.task.get("loss", "mse")]
        else:
            metrics["loss"] = weighted(fm.gaussian_nll(y, mu, sigma), w)
            metrics["crps"] = weighted(fm.gaussian_crps(y, mu, sigma), w)
            lo, hi = (fm.gaussian_quantile(mu, sigma, q) for q in QUANTILES)
            metrics["pinball_q10"] = weighted(fm.pinball(y, lo, QUANTILES[0]), w)
            metrics["pinball_q90"] = weighted(fm.pinball(y, hi, QUANTILES[1]), w)
            metrics["coverage80"] = weighted(((y >= lo) & (y <= hi)).astype(jnp.float32), w)
        if not train:
            metrics.update(self.baseline_metrics(batch, w))
        return metrics, carry

    def predict(self, model, x, y=None, rngs=None):
        """``(μ, σ or None)`` of shape ``(B, H, C)`` for look-backs ``x`` (``y``: teacher
        forcing targets), undoing ``model.instance_norm`` if set."""
        if not self.config.model.get("instance_norm", False):  # absent in older runs
            return model(x, y, rngs=rngs)
        loc = jnp.mean(x, axis=1, keepdims=True)
        scale = jnp.maximum(jnp.std(x, axis=1, keepdims=True),
                            1e-2 * jnp.maximum(jnp.abs(loc), 1.0))
        mu, sigma = model((x - loc) / scale, None if y is None else (y - loc) / scale,
                          rngs=rngs)
        return mu * scale + loc, None if sigma is None else sigma * scale

    def baseline_forecasts(self, x) -> dict[str, jax.Array]:
        """Naive, seasonal naive and linear forecasts ``(B, H, C)`` of look-backs ``x``."""
        h = self.config.task.horizon
        return {"naive": naive_forecast(x, h),
                "snaive": seasonal_naive_forecast(x, h, self.config.task.seasonality),
                "linear": linear_forecast(x, self.linear_weights)}

    def baseline_metrics(self, batch, w) -> dict:
        out = {}
        for name, f in self.baseline_forecasts(batch["x"]).items():
            out.update(point_metrics(f"{name}_", batch["y"], f, w, batch, self.raw))
        if "naive2" in batch:
            y_raw = batch["y"] * batch["scale"] + batch["loc"]
            out.update(raw_metrics("naive2_", y_raw, batch["naive2"], w, batch))
        return out

    def summarize(self, metrics):
        out = dict(metrics)
        if "naive2_smape" in out:
            for p in ("", "naive_", "snaive_", "linear_", "naive2_"):  # naive2_owa = 1
                if f"{p}smape" in out:
                    out[f"{p}owa"] = fm.owa(out[f"{p}smape"], out[f"{p}mase"],
                                            out["naive2_smape"], out["naive2_mase"])
        return out

    def report(self, results: dict) -> list[str]:
        test = results.get("test")
        if not test:
            return []
        t, m = self.config.task, self.config.model
        if m.get("kind", "recurrent") == "segrnn":
            model = (f"SegRNN {m.cell} {m.hidden}x{m.num_layers}, segment {m.segment}, "
                     f"{m.input} input, {m.output} output, revin {m.revin}")
        else:
            model = (f"{m.cell} {m.hidden}x{m.num_layers} {m.decoder}, likelihood "
                     f"{m.likelihood}")
        lines = [f"test ({t.dataset}, look-back {t.lookback}, horizon {t.horizon}; "
                 f"{model}):"]
        names = ("mse", "mae") + (("smape", "mase", "owa") if "owa" in test else ())
        for label, p in (("model", ""), ("naive", "naive_"), ("seasonal naive", "snaive_"),
                         ("linear", "linear_")):
            lines.append(f"  {label:>14}: " + ", ".join(
                f"{n} {test[p + n]:.4f}" for n in names if p + n in test))
        return lines
