"""Forecasting: protocol windows and splits, metrics, baselines, models, and a real ETTh1 run.

References are computed independently here: window rows by hand from the Informer
``border1s/border2s`` formulas, metrics from their definitions on small numbers, CRPS by
numerical integration, the linear baseline with ``np.linalg.lstsq`` on the full design
matrix, and the M4 baselines against the published M4 hourly scores.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from grux.tasks.forecast import metrics as fm
from grux.tasks.forecast import AutoregressiveForecaster, DirectForecaster, ForecastTask
from grux.tasks.forecast.baselines import (fit_linear, linear_forecast,
                                           multiplicative_seasonal_indices, naive2_forecast,
                                           naive_forecast, seasonal_naive_forecast,
                                           seasonality_test, series_windows)
from grux.tasks.forecast.data import DatedSeries, window_range, window_starts
from grux.train import base_config
from grux.train.config import ConfigError, validate


# ------------------------------------------------------------------ windows and splits
def test_windows_on_a_tiny_series_by_hand():
    values = np.stack([np.arange(20.0), 100 + 2 * np.arange(20.0)], 1)
    borders = {"train": (0, 10), "validation": (10, 15), "test": (15, 20)}
    s = DatedSeries(values, borders, lookback=3, horizon=2, m=1)
    # train windows start at 0..5 (10 − 3 − 2 + 1 = 6); validation reads rows [7, 15),
    # test [12, 20): the look-back reaches 3 rows back into the previous split.
    np.testing.assert_array_equal(s.starts["train"], [0, 1, 2, 3, 4, 5])
    np.testing.assert_array_equal(s.starts["validation"], [7, 8, 9, 10])
    np.testing.assert_array_equal(s.starts["test"], [12, 13, 14, 15])
    # standardised with rows 0..9 only: channel 0 mean 4.5, population std √8.25
    np.testing.assert_allclose(s.mean, [4.5, 109.0])
    np.testing.assert_allclose(s.std, [math.sqrt(8.25), 2 * math.sqrt(8.25)])
    b = s.eval_batch("test", 0, 8)
    z = (np.arange(20.0) - 4.5) / math.sqrt(8.25)
    np.testing.assert_allclose(b["x"][0, :, 0], z[[12, 13, 14]], rtol=1e-6)
    np.testing.assert_allclose(b["y"][0, :, 0], z[[15, 16]], rtol=1e-6)
    np.testing.assert_allclose(b["x"][3, :, 1], z[[15, 16, 17]], rtol=1e-6)  # same z-scores
    np.testing.assert_allclose(b["y"][3, :, 0], z[[18, 19]], rtol=1e-6)      # last rows
    np.testing.assert_array_equal(b["weight"], [1, 1, 1, 1, 0, 0, 0, 0])     # padding
    assert b["x"].shape == (8, 3, 2) and b["y"].shape == (8, 2, 2)


def test_window_errors_name_the_problem():
    with pytest.raises(ValueError, match="before the look-back"):
        window_range({"train": (0, 5), "validation": (5, 8)}, "validation", 6)
    with pytest.raises(ValueError, match="no window"):
        window_starts(0, 5, 3, 3)
    with pytest.raises(ValueError, match="constant"):
        DatedSeries(np.ones((20, 1)), {"train": (0, 10), "validation": (10, 15),
                                       "test": (15, 20)}, 3, 2, m=1)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def _task(data_dir, tfds_dir, **task):
    c = base_config("forecast")
    c.data_dir, c.tfds_dir = str(data_dir), tfds_dir
    for k, v in task.items():
        setattr(c.task, k, v)
    return ForecastTask(c)


@pytest.mark.parametrize("horizon", [24, 720])
def test_etth1_windows_match_the_informer_loader(data_dir, tfds_dir, horizon):
    task = _task(data_dir, tfds_dir, dataset="etth1", lookback=96, horizon=horizon)
    d, seq_len = task.data, 96
    border1s = [0, 12 * 30 * 24 - seq_len, 12 * 30 * 24 + 4 * 30 * 24 - seq_len]
    border2s = [12 * 30 * 24, 12 * 30 * 24 + 4 * 30 * 24, 12 * 30 * 24 + 8 * 30 * 24]
    for k, split in enumerate(("train", "validation", "test")):
        assert window_range(d.borders, split, seq_len) == (border1s[k], border2s[k])
        n = border2s[k] - border1s[k] - seq_len - horizon + 1     # Informer __len__
        assert d.num_windows(split) == n
        np.testing.assert_array_equal(d.starts[split][[0, -1]],
                                      [border1s[k], border1s[k] + n - 1])
    assert d.num_windows("test") == 2881 - horizon                # 2857 for H = 24
    # standardisation from rows [0, 8640) only
    raw = d.raw.astype(np.float64)
    np.testing.assert_allclose(d.mean, raw[:8640].mean(0))
    np.testing.assert_allclose(d.std, raw[:8640].std(0))
    assert not np.allclose(d.mean, raw[:14400].mean(0), rtol=1e-3)
    z = (raw - raw[:8640].mean(0)) / raw[:8640].std(0)
    first = d.eval_batch("test", 0, 4)                            # x rows 11424..11519
    np.testing.assert_allclose(first["x"][0], z[11424:11520], atol=1e-5)
    np.testing.assert_allclose(first["y"][0], z[11520:11520 + horizon], atol=1e-5)
    n = d.num_windows("test")
    last = d.eval_batch("test", n - 1, 1)                         # y ends at row 14400
    np.testing.assert_allclose(last["y"][0], z[14400 - horizon:14400], atol=1e-5)
    np.testing.assert_allclose(d.eval_batch("validation", 0, 1)["x"][0], z[8544:8640],
                               atol=1e-5)


def test_ettm1_borders_are_four_times_the_hourly_ones(data_dir, tfds_dir):
    d = _task(data_dir, tfds_dir, dataset="ettm1", lookback=96, horizon=24,
              seasonality=96).data
    m = 30 * 24 * 4
    assert window_range(d.borders, "validation", 96) == (12 * m - 96, 16 * m)
    assert window_range(d.borders, "test", 96) == (16 * m - 96, 20 * m)
    assert d.num_windows("train") == 12 * m - 96 - 24 + 1


# ------------------------------------------------------------------ metrics
def test_point_metrics_by_hand():
    y, f = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 1.0])
    assert float(jnp.mean(fm.squared_error(y, f))) == pytest.approx((1 + 0 + 9) / 3)
    assert float(jnp.mean(fm.absolute_error(y, f))) == pytest.approx((1 + 0 + 3) / 3)
    s = np.asarray(fm.smape_terms(np.array([100.0, 0.0, -5.0]), np.array([110.0, 0.0, 5.0])))
    np.testing.assert_allclose(s, [200 * 10 / 210, 0.0, 200.0], rtol=1e-6)
    hist = np.array([1.0, 2, 3, 4, 5, 6])                 # |h_t − h_{t−2}| = 2 everywhere
    assert fm.mase_scale(hist, 2) == pytest.approx(2.0)
    mase = fm.mase_terms(np.array([7.0, 8.0]), np.array([6.0, 10.0]), fm.mase_scale(hist, 2))
    assert float(jnp.mean(mase)) == pytest.approx((1 / 2 + 2 / 2) / 2)
    assert fm.owa(10.0, 1.0, 20.0, 4.0) == pytest.approx(0.5 * (0.5 + 0.25))
    with pytest.raises(ValueError, match="longer than m=24"):
        fm.mase_scale(np.ones(24), 24)


def test_gaussian_nll_crps_and_pinball():
    assert float(fm.gaussian_nll(1.0, 0.0, 2.0)) == pytest.approx(
        0.5 * math.log(2 * math.pi * 4) + 1 / 8, rel=1e-6)
    # CRPS at y = μ: σ (2φ(0) − 1/√π); elsewhere ∫ (F(t) − 1{t ≥ y})² dt numerically
    assert float(fm.gaussian_crps(0.0, 0.0, 1.5)) == pytest.approx(
        1.5 * (2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi)), rel=1e-5)
    t = np.linspace(-30, 30, 600001)
    for y, mu, sigma in [(1.3, 0.2, 0.7), (-2.0, 1.0, 2.5)]:
        cdf = np.array([0.5 * (1 + math.erf((v - mu) / (sigma * math.sqrt(2)))) for v in
                        t[::1000]])
        cdf = np.interp(t, t[::1000], cdf)
        integral = np.trapezoid((cdf - (t >= y)) ** 2, t)
        assert float(fm.gaussian_crps(y, mu, sigma)) == pytest.approx(integral, rel=2e-3)
    assert float(fm.pinball(1.0, 0.5, 0.9)) == pytest.approx(0.45)
    assert float(fm.pinball(0.0, 0.5, 0.9)) == pytest.approx(0.05)
    assert float(fm.gaussian_quantile(1.0, 2.0, 0.9)) == pytest.approx(1 + 2 * 1.2815516)


def test_normal_cdf_and_its_derivative_match_scipy():
    from scipy.stats import norm
    z = np.linspace(-9.0, 9.0, 721)
    np.testing.assert_allclose(fm.normal_cdf(jnp.asarray(z, jnp.float32)), norm.cdf(z),
                               atol=2e-7)
    np.testing.assert_allclose(jax.vmap(jax.grad(fm.normal_cdf))(jnp.asarray(z, jnp.float32)),
                               norm.pdf(z), atol=1e-7, rtol=1e-5)


def test_gaussian_metrics_differentiate_inside_shard_map():
    """The sharded train step differentiates the loss with its metrics; every forecast
    measure must trace there (jax 0.12 rejected the erf JVP inside shard_map)."""
    from jax.sharding import PartitionSpec as P
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("data",))
    n = 4 * len(jax.devices())
    rng = np.random.default_rng(0)
    y, mu = (jnp.asarray(rng.normal(size=(n, 3)), jnp.float32) for _ in range(2))
    log_sigma = jnp.asarray(rng.normal(size=(n, 3)) * 0.3, jnp.float32)

    def loss(mu, log_sigma, y):
        sigma = jnp.exp(log_sigma)
        terms = [fm.gaussian_nll(y, mu, sigma), fm.gaussian_crps(y, mu, sigma),
                 fm.pinball(y, fm.gaussian_quantile(mu, sigma, 0.9), 0.9),
                 fm.squared_error(y, mu), fm.absolute_error(y, mu),
                 fm.smape_terms(y, mu), fm.mase_terms(y, mu, 2.0)]
        return sum(jnp.sum(t) for t in terms)

    sharded = jax.jit(jax.shard_map(
        lambda *a: jnp.stack(jax.grad(loss, argnums=(0, 1))(*a)),
        mesh=mesh, in_specs=(P("data"),) * 3, out_specs=P(None, "data")))
    got = sharded(mu, log_sigma, y)
    want = jnp.stack(jax.grad(loss, argnums=(0, 1))(mu, log_sigma, y))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ baselines
def test_naive_and_seasonal_naive_by_hand():
    x = np.arange(10.0).reshape(1, 5, 2)               # rows (0,1) (2,3) (4,5) (6,7) (8,9)
    np.testing.assert_array_equal(naive_forecast(x, 3)[0], [[8, 9]] * 3)
    np.testing.assert_array_equal(seasonal_naive_forecast(x, 5, 2)[0],
                                  [[6, 7], [8, 9], [6, 7], [8, 9], [6, 7]])
    with pytest.raises(ValueError, match="m <= look-back"):
        seasonal_naive_forecast(x, 3, 6)


def test_linear_baseline_is_least_squares(rng):
    series = np.cumsum(rng.normal(size=300))
    lookback, horizon = 12, 5
    windows = np.lib.stride_tricks.sliding_window_view(series, lookback + horizon)
    design = np.concatenate([windows[:, :lookback], np.ones((len(windows), 1))], 1)
    ref = np.linalg.lstsq(design, windows[:, lookback:], rcond=None)[0]
    w = fit_linear(series_windows(series, lookback, horizon, chunk=7))
    np.testing.assert_allclose(w, ref, rtol=1e-4, atol=1e-4)
    x = windows[:3, :lookback]
    np.testing.assert_allclose(linear_forecast(x[..., None], w)[..., 0], design[:3] @ ref,
                               rtol=1e-4, atol=1e-4)
    # DatedSeries fits one W shared by all channels on the standardised train rows
    values = np.stack([series, 3 * series[::-1] + 1], 1)
    d = DatedSeries(values, {"train": (0, 200), "validation": (200, 250),
                             "test": (250, 300)}, lookback, horizon, m=1)
    rows = [np.lib.stride_tricks.sliding_window_view(d.values[:200, c], lookback + horizon)
            for c in range(2)]
    rows = np.concatenate(rows)
    a = np.concatenate([rows[:, :lookback], np.ones((len(rows), 1))], 1)
    np.testing.assert_allclose(d.fit_linear(), np.linalg.lstsq(a, rows[:, lookback:],
                                                               rcond=None)[0], atol=1e-4)


def test_naive2_on_an_exactly_multiplicative_series(rng):
    m, season = 6, np.array([0.5, 1.0, 1.5, 1.2, 0.8, 1.0])
    x = 40.0 * season[np.arange(60) % m]
    np.testing.assert_allclose(multiplicative_seasonal_indices(x, m), season, rtol=1e-12)
    assert seasonality_test(x, m)
    np.testing.assert_allclose(naive2_forecast(x, 9, m), 40.0 * season[np.arange(60, 69) % m])
    noise = rng.normal(size=200) + 10
    assert not seasonality_test(noise, 24)
    np.testing.assert_array_equal(naive2_forecast(noise, 4, 24), [noise[-1]] * 4)
    assert not seasonality_test(x[:17], m)                # fewer than 3 seasons


def test_m4_hourly_baselines_reproduce_the_published_scores(data_dir, tfds_dir):
    """Naive / seasonal naive / Naive2 through the task's own evaluation code; published M4
    hourly values (Makridakis et al. 2020): 43.003/11.608, 13.912/1.193, 18.383/2.395."""
    task = _task(data_dir, tfds_dir, dataset="m4_hourly", lookback=168, horizon=48)
    batch = task.data.split_batch("test")
    pairs = task.baseline_metrics(batch, batch["weight"][:, None, None])
    got = task.summarize({k: float(s) / float(w) for k, (s, w) in pairs.items()})
    assert got["naive_smape"] == pytest.approx(43.003, abs=6e-4)
    assert got["naive_mase"] == pytest.approx(11.608, abs=6e-4)
    assert got["snaive_smape"] == pytest.approx(13.912, abs=6e-4)
    assert got["snaive_mase"] == pytest.approx(1.193, abs=6e-4)
    assert got["naive2_smape"] == pytest.approx(18.383, abs=6e-4)
    assert got["naive2_mase"] == pytest.approx(2.395, abs=6e-4)
    assert got["naive_owa"] == pytest.approx(0.5 * (43.003 / 18.383 + 11.608 / 2.395), 1e-3)
    assert len(batch["x"]) == 414 and batch["x"].shape[1:] == (168, 1)


# ------------------------------------------------------------------ models and config
@pytest.mark.parametrize("cls", [DirectForecaster, AutoregressiveForecaster])
@pytest.mark.parametrize("gaussian", [False, True])
def test_model_shapes(cls, gaussian):
    m = base_config("forecast").model
    model = cls(m, channels=3, horizon=5, gaussian=gaussian, rngs=nnx.Rngs(0))
    x, y = jnp.ones((2, 7, 3)), jnp.ones((2, 5, 3))
    for target in (None, y):
        mu, sigma = model(x, target)
        assert mu.shape == (2, 5, 3)
        assert (sigma is None) == (not gaussian)
        if gaussian:
            assert sigma.shape == (2, 5, 3) and bool(jnp.all(sigma > 0))


def test_autoregressive_free_running_equals_teacher_forcing_on_its_own_forecasts(rng):
    m = base_config("forecast").model
    model = AutoregressiveForecaster(m, channels=2, horizon=6, gaussian=True,
                                     rngs=nnx.Rngs(1))
    x = jnp.asarray(rng.normal(size=(3, 9, 2)), jnp.float32)
    mu_free, sigma_free = model(x)
    mu_tf, sigma_tf = model(x, mu_free)          # teacher-forced with its own means
    np.testing.assert_allclose(mu_tf, mu_free, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sigma_tf, sigma_free, rtol=1e-5, atol=1e-5)
    # and the first step does not depend on the target at all
    mu_other, _ = model(x, mu_free + 1.0)
    np.testing.assert_allclose(mu_other[:, 0], mu_free[:, 0], rtol=1e-6)
    assert not np.allclose(mu_other[:, 1:], mu_free[:, 1:])


def test_instance_norm_is_scale_equivariant(rng):
    c = base_config("forecast")
    c.model.instance_norm = True
    task = ForecastTask(c)
    model = DirectForecaster(c.model, channels=2, horizon=4, gaussian=True, rngs=nnx.Rngs(0))
    x = jnp.asarray(rng.normal(size=(2, 10, 2)) + 5, jnp.float32)
    mu, sigma = task.predict(model, x)
    mu2, sigma2 = task.predict(model, 3 * x - 7)
    np.testing.assert_allclose(mu2, 3 * mu - 7, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sigma2, 3 * sigma, rtol=1e-4)


@pytest.mark.parametrize("field,value,match", [
    ("task.dataset", "ettx", "config.task.dataset"),
    ("model.decoder", "seq2seq", "config.model.decoder"),
    ("model.likelihood", "poisson", "config.model.likelihood"),
    ("task.seasonality", 200, "config.task.seasonality"),
    ("task.horizon", 0, "config.task.horizon"),
])
def test_config_errors_name_the_field(field, value, match):
    c = base_config("forecast")
    section, name = field.split(".")
    setattr(c[section], name, value)
    with pytest.raises((ValueError, ConfigError), match=match):
        validate(c)


def test_m4_needs_horizon_48():
    c = base_config("forecast")
    c.task.dataset, c.task.horizon, c.task.lookback = "m4_hourly", 24, 168
    with pytest.raises((ValueError, ConfigError), match="must be 48"):
        validate(c)


def test_config_files_load():
    from cli_runs import experiment_config

    c = experiment_config("ett", "ettm2,336,autoregressive,gaussian")
    assert (c.task.dataset, c.task.horizon, c.task.seasonality) == ("ettm2", 336, 96)
    assert (c.model.decoder, c.model.likelihood) == ("autoregressive", "gaussian")
    with pytest.raises(ValueError, match="dataset"):
        experiment_config("ett", "etth3,24")
    for name, arg in (("ett", "etth1,720"), ("m4_hourly", ""), ("airline", "")):
        validate(experiment_config(name, arg))


# ------------------------------------------------------------------ real training run
def test_loss_decreases_on_etth1_through_the_trainer_and_plot(data_dir, tfds_dir, tmp_path):
    from grux.infer.plot_forecast import main as plot_main
    from grux.train import train_and_evaluate
    from grux.train.writers import read_metrics
    c = base_config("forecast")
    c.data_dir, c.tfds_dir = str(data_dir), tfds_dir
    c.task.horizon = 24
    c.model.hidden, c.model.likelihood = 32, "gaussian"
    c.batch_size, c.eval.batch_size, c.num_train_steps = 32, 512, 120
    c.optimizer.learning_rate = 3e-3
    c.eval.every_steps = c.checkpoint.every_steps = 120
    c.eval.metric = "validation/mse"
    c.log.every_steps, c.log.tensorboard, c.log.progress = 20, False, False
    summary = train_and_evaluate(c, str(tmp_path))
    curve = [r["loss"] for r in read_metrics(tmp_path) if r.get("split") == "train"]
    assert curve[-1] < curve[0] - 0.3, curve                 # Gaussian NLL, from ~1.4 nats
    test = summary["final"]["test"]
    assert test["mse"] < 1.2 and 0 < test["crps"] < test["mae"]
    assert 0.3 < test["coverage80"] <= 1.0
    # baselines scored by the same reduction: the linear one equals a direct NumPy check
    task = ForecastTask(c)
    d, w = task.data, task.linear_weights
    xs = d.values[d.starts["test"][:, None] + np.arange(96)]
    ys = d.values[d.starts["test"][:, None] + 96 + np.arange(24)]
    pred = np.einsum("nlc,lh->nhc", xs, w[:-1]) + w[-1][:, None]
    assert test["linear_mse"] == pytest.approx(np.mean((pred - ys) ** 2), rel=1e-4)
    assert test["naive_mse"] == pytest.approx(np.mean((xs[:, -1:] - ys) ** 2), rel=1e-4)
    out = tmp_path / "plot.png"
    assert plot_main(["--workdir", str(tmp_path), "--windows", "0,2856", "--channel", "OT",
                      "--out", str(out)]) == 0
    assert out.stat().st_size > 5000
    with pytest.raises(SystemExit, match="1"):
        plot_main(["--workdir", str(tmp_path), "--windows", "2857", "--output", str(out)])


@pytest.mark.slow
@pytest.mark.parametrize("config", ["m4_hourly:autoregressive,gaussian", "airline:"])
def test_m4_and_airline_configs_train(data_dir, tfds_dir, tmp_path, config):
    from cli_runs import experiment_config
    from grux.train import train_and_evaluate
    name, _, arg = config.partition(":")
    c = experiment_config(name, arg)
    c.data_dir, c.tfds_dir = str(data_dir), tfds_dir
    c.num_train_steps = c.eval.every_steps = c.checkpoint.every_steps = 40
    c.log.every_steps, c.log.tensorboard, c.log.progress = 10, False, False
    test = train_and_evaluate(c, str(tmp_path))["final"]["test"]
    assert np.isfinite(test["smape"]) and np.isfinite(test["mase"])
    if name == "m4_hourly":
        assert test["naive2_owa"] == pytest.approx(1.0)
        assert test["snaive_smape"] == pytest.approx(13.912, abs=6e-4)
        assert np.isfinite(test["crps"]) and np.isfinite(test["owa"])
