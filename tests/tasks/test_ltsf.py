"""Long-horizon forecasting (configs/ltsf.py) and the SegRNN model (grux.tasks.forecast.segrnn).

References are computed independently: window counts and rows from the split borders (ETT
12/4/4 months of 30 days; weather int(0.7 n) / int(0.2 n) of the CSV's own row count), values
from the CSV files standardised by NumPy; parallel decoding against a Python loop of single
``Recurrent.step`` calls from the encoder state; recurrent decoding against a loop of stack
calls; RevIN against its definition.
"""
import csv
import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from grux.ops.series import (CENTERS, fold_channels, revin_denorm, revin_norm, revin_stats,
                             segment, unfold_channels, unsegment)
from grux.tasks.forecast import ForecastTask
from grux.tasks.forecast.segrnn import SegRNNForecaster
from grux.train import base_config
from grux.train.config import ConfigError, validate


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("tfds"))


def ltsf(arg, data_dir=None, tfds_dir=None):
    from cli_runs import experiment_config
    c = experiment_config("ltsf", arg)
    if data_dir is not None:
        c.data_dir, c.tfds_dir = str(data_dir), tfds_dir
    return c


def read_csv(path):
    with (gzip.open(path, "rt", encoding="latin-1") if str(path).endswith(".gz")
          else open(path)) as f:
        rows = list(csv.reader(f))[1:]
    return np.array([[float(v) for v in r[1:]] for r in rows])


# ------------------------------------------------------------------ protocol: windows
@pytest.mark.parametrize("dataset,horizon", [("etth1", 96), ("etth1", 720), ("weather", 336)])
def test_window_counts_and_borders(data_dir, tfds_dir, dataset, horizon):
    raw = read_csv(data_dir / ("ett/ETTh1.csv" if dataset == "etth1"
                               else "weather/weather.csv.gz"))
    n, L, H = len(raw), 96, horizon
    if dataset == "etth1":
        b = [0, 8640, 11520, 14400]                           # 12/4/4 months of 30 days
    else:
        tr, te = int(0.7 * n), int(0.2 * n)                   # Autoformer 70/10/20 %
        b = [0, tr, n - te, n]
        assert (n, tr, te) == (52696, 36887, 10539)
    config = ltsf(f"{dataset},{horizon}", data_dir, tfds_dir)
    task = ForecastTask(config)
    d = task.data
    want = {"train": b[1] - L - H + 1, "validation": b[2] - b[1] - H + 1,
            "test": b[3] - b[2] - H + 1}
    assert {s: d.num_windows(s) for s in want} == want
    z = (raw - raw[:b[1]].mean(0)) / raw[:b[1]].std(0)
    for split, k in (("train", 0), ("validation", 1), ("test", 2)):
        first = d.eval_batch(split, 0, 1)
        last = d.eval_batch(split, want[split] - 1, 1)
        start = max(b[k] - L, 0)                              # look-back reaches back L rows
        np.testing.assert_allclose(first["x"][0], z[start:start + L], atol=2e-5)
        np.testing.assert_allclose(last["y"][0], z[b[k + 1] - H:b[k + 1]], atol=2e-5)
    # the config's epoch length is this data's: ⌊training windows / batch⌋
    assert config.eval.every_steps == want["train"] // config.batch_size
    if dataset == "etth1":  # (weather's streams would fit its linear baseline: slow)
        # every test window is scored once: ⌈N/B⌉ batches, the last padded with weight 0
        stream = task.eval_streams(256, 0, 1)["test"]
        batches = [stream.global_batch(i) for i in range(stream.num_batches)]
        assert stream.num_batches == -(-want["test"] // 256)
        assert sum(bt["weight"].sum() for bt in batches) == want["test"]
        assert batches[-1]["weight"].sum() == want["test"] - 256 * (stream.num_batches - 1)
        real = np.concatenate([bt["y"][bt["weight"] > 0] for bt in batches])
        np.testing.assert_allclose(real[-1], z[b[3] - H:b[3]], atol=2e-5)


def test_epoch_sampling_is_a_shuffled_pass_dropping_the_last_partial_batch(data_dir,
                                                                          tfds_dir):
    d = ForecastTask(ltsf("etth1,96", data_dir, tfds_dir)).data
    n, rows = d.num_windows("train"), 256
    spe = d.steps_per_epoch(rows)
    assert spe == n // rows == 33
    epoch0 = np.concatenate([d.epoch_windows(7, i, rows) for i in range(spe)])
    epoch1 = np.concatenate([d.epoch_windows(7, spe + i, rows) for i in range(spe)])
    assert len(np.unique(epoch0)) == len(epoch0) == spe * rows      # no repeats
    assert not np.array_equal(epoch0, epoch1)                       # reshuffled
    np.testing.assert_array_equal(d.epoch_windows(7, 5, rows), epoch0[5 * rows:6 * rows])
    b = d.train_batch(7, 3, rows, sampling="epochs")
    np.testing.assert_array_equal(b["x"], d.batch(d.starts["train"][epoch0[3 * rows:4 * rows]])
                                  ["x"])


# ------------------------------------------------------------------ pure functions
def test_fold_and_segment_round_trip_by_index(rng):
    x = rng.normal(size=(3, 96, 7)).astype(np.float32)
    f = np.asarray(fold_channels(x))
    assert f.shape == (21, 96)
    np.testing.assert_array_equal(f[2 * 7 + 5], x[2, :, 5])          # row b·C + c
    s = np.asarray(segment(f, 24))
    assert s.shape == (21, 4, 24)
    np.testing.assert_array_equal(s[9, 2], f[9, 48:72])               # segment k = k·w..
    np.testing.assert_array_equal(np.asarray(unfold_channels(unsegment(s), 7)), x)
    with pytest.raises(ValueError, match="divide"):
        segment(f, 25)


@pytest.mark.parametrize("center", CENTERS)
@pytest.mark.parametrize("scale", [False, True])
@pytest.mark.parametrize("affine", [False, True])
def test_revin_round_trips_and_matches_its_definition(rng, center, scale, affine):
    x = (rng.normal(size=(4, 96, 3)) * [1, 10, 0.5] + [5, -3, 10]).astype(np.float32)
    gamma, beta = ((rng.uniform(0.5, 2, 3), rng.normal(size=3)) if affine else (None, None))
    loc, s = revin_stats(x, center, scale)
    z = np.asarray(revin_norm(x, loc, s, gamma, beta))
    want_loc = {"last": x[:, -1:], "mean": x.mean(1, keepdims=True), "none": 0 * x[:, :1]}
    want_s = np.sqrt(x.var(1, keepdims=True) + 1e-5) if scale else 1.0
    want = (x - want_loc[center]) / want_s
    if affine:
        want = want * gamma + beta
    np.testing.assert_allclose(z, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(revin_denorm(z, loc, s, gamma, beta)), x,
                               rtol=1e-5, atol=1e-3)


# ------------------------------------------------------------------ the model
def model_config(cell="gru", hidden=16, num_layers=1, **fields):
    c = base_config("forecast")
    m = c.model
    m.kind, m.cell, m.hidden, m.num_layers, m.segment = "segrnn", cell, hidden, num_layers, 24
    m.formulation = "cudnn"
    for k, v in fields.items():
        setattr(m, k, v)
    return m


def encoder_state(model, x):
    """Reference encoder: subtract the last value, fold, segment, embed, run the stack."""
    z = np.asarray(x) - np.asarray(x)[:, -1:]
    b, L, c = z.shape
    series = np.swapaxes(z, 1, 2).reshape(b * c, L)
    tokens = series.reshape(b * c, L // model.in_w, model.in_w)
    return model.rnn(jax.nn.relu(model.embed(jnp.asarray(tokens))))


def to_output(segments, x, w):
    """``segments[m] (B·C, w)`` + the last value → ``(B, H, C)``."""
    b, _, c = x.shape
    out = np.zeros((b, len(segments) * w, c), np.float32)
    for m, seg in enumerate(segments):
        out[:, m * w:(m + 1) * w, :] = np.swapaxes(np.asarray(seg).reshape(b, c, w), 1, 2)
    return out + np.asarray(x)[:, -1:]


@pytest.mark.parametrize("cell,layers,formulation", [
    ("gru", 1, "cudnn"), ("gru", 2, "cudnn"), ("gru", 2, "cho"), ("lstm", 2, "cudnn"),
    ("tanh", 1, "cudnn"), ("mingru", 1, "cudnn")])
def test_parallel_decoding_equals_one_step_per_output_segment(rng, cell, layers, formulation):
    m = model_config(cell, num_layers=layers, formulation=formulation)
    model = SegRNNForecaster(m, 3, 96, 96, nnx.Rngs(1))
    x = jnp.asarray(rng.normal(size=(2, 96, 3)), jnp.float32)
    _, state = encoder_state(model, x)
    pos, chan = np.asarray(model.position[...]), np.asarray(model.channel[...])
    assert pos.shape == (4, 8) and chan.shape == (3, 8)
    segments = []
    for k in range(4):                                    # output segment k, on its own
        q = np.stack([np.concatenate([pos[k], chan[n % 3]]) for n in range(6)])
        o, _ = model.rnn.step(jnp.asarray(q), state)
        segments.append(model.head(o))
    y, sigma = model(x)
    assert sigma is None and y.shape == (2, 96, 3)
    np.testing.assert_allclose(np.asarray(y), to_output(segments, x, 24), atol=2e-5)


@pytest.mark.parametrize("input_", ["segment", "point"])
def test_recurrent_decoding_feeds_back_each_predicted_segment(rng, input_):
    m = model_config("gru", input=input_, output="recurrent")
    model = SegRNNForecaster(m, 2, 96, 72, nnx.Rngs(2))
    assert model.position is None
    x = jnp.asarray(rng.normal(size=(2, 96, 2)), jnp.float32)
    out, state = encoder_state(model, x)
    segments = [model.head(out[:, -1])]
    for _ in range(2):
        prev = np.asarray(segments[-1]).reshape(4, 24 // model.in_w, model.in_w)
        out, state = model.rnn(jax.nn.relu(model.embed(jnp.asarray(prev))), initial_state=state)
        segments.append(model.head(out[:, -1]))
    np.testing.assert_allclose(np.asarray(model(x)[0]), to_output(segments, x, 24), atol=2e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_torch_init_draws_pytorch_default_ranges(cell):
    """``model.init = "torch"``: every embedding / head parameter in U(±1/√fan_in) and every
    stack parameter in U(±1/√d), spread over that range (a uniform's std is bound/√3), biases
    included; the grux default (LeCun normal, orthogonal, zero biases) is not."""
    d, w = 256, 24
    torch_init = SegRNNForecaster(model_config(cell, hidden=d, init="torch"), 3, 96, 96,
                                  nnx.Rngs(0))
    default = SegRNNForecaster(model_config(cell, hidden=d), 3, 96, 96, nnx.Rngs(0))
    for module, bound in ((lambda m: m.embed, w ** -0.5), (lambda m: m.head, d ** -0.5),
                          (lambda m: m.rnn, d ** -0.5)):
        leaves = jax.tree.leaves(nnx.state(module(torch_init), nnx.Param))
        assert len(leaves) >= 2                                       # weights and biases
        for x in map(np.asarray, leaves):
            assert np.abs(x).max() <= bound
            assert np.abs(x).max() > 0.95 * bound
            np.testing.assert_allclose(x.std(), bound / np.sqrt(3), rtol=0.15)
        flax_leaves = map(np.asarray, jax.tree.leaves(nnx.state(module(default), nnx.Param)))
        assert any(np.abs(x).max() > bound or not x.any() for x in flax_leaves)
    for name in ("position", "channel"):                              # N(0, 1) in both
        np.testing.assert_allclose(np.asarray(getattr(torch_init, name)[...]).std(), 1.0,
                                   rtol=0.15)


def test_channel_independence_with_permuted_channel_embeddings(rng):
    model = SegRNNForecaster(model_config(revin_affine=True), 4, 96, 48, nnx.Rngs(3))
    model.gamma[...] = jnp.asarray(rng.uniform(0.5, 2, 4), jnp.float32)
    model.beta[...] = jnp.asarray(rng.normal(size=4), jnp.float32)
    x = jnp.asarray(rng.normal(size=(3, 96, 4)), jnp.float32)
    y = np.asarray(model(x)[0])
    perm = np.array([2, 0, 3, 1])
    permuted = SegRNNForecaster(model_config(revin_affine=True), 4, 96, 48, nnx.Rngs(3))
    nnx.update(permuted, nnx.state(model))
    # without permuting the per-channel parameters the forecasts differ ...
    assert not np.allclose(np.asarray(permuted(x[..., perm])[0]), y[..., perm], atol=1e-3)
    # ... with the channel embedding rows and the affine gamma, beta permuted too, they are
    # the permuted forecasts: shared weights, nothing else knows which channel is which
    for p in (permuted.channel, permuted.gamma, permuted.beta):
        p[...] = p[...][perm]
    np.testing.assert_allclose(np.asarray(permuted(x[..., perm])[0]), y[..., perm], atol=2e-5)
    # and channel c's forecast reads channel c only
    x2 = x.at[:, :, 0].add(3.0 * jnp.asarray(rng.normal(size=(3, 96)), jnp.float32))
    y2 = np.asarray(model(x2)[0])
    np.testing.assert_allclose(y2[..., 1:], y[..., 1:], atol=2e-5)
    assert not np.allclose(y2[..., 0], y[..., 0], atol=1e-3)


def test_revin_makes_forecasts_shift_and_scale_equivariant(rng):
    x = jnp.asarray(rng.normal(size=(2, 96, 3)), jnp.float32)
    shift = jnp.asarray([10.0, -4.0, 0.5])
    last = SegRNNForecaster(model_config(revin="last"), 3, 96, 48, nnx.Rngs(4))
    np.testing.assert_allclose(np.asarray(last(x + shift)[0]),
                               np.asarray(last(x)[0] + shift), atol=1e-4)
    scaled = SegRNNForecaster(model_config(revin="mean", revin_scale=True), 3, 96, 48,
                              nnx.Rngs(4))
    np.testing.assert_allclose(np.asarray(scaled(3 * x + shift)[0]),
                               np.asarray(3 * scaled(x)[0] + shift), atol=1e-3)
    none = SegRNNForecaster(model_config(revin="none"), 3, 96, 48, nnx.Rngs(4))
    assert not np.allclose(np.asarray(none(x + shift)[0]), np.asarray(none(x)[0] + shift),
                           atol=1e-2)


# ------------------------------------------------------------------ config
@pytest.mark.parametrize("field,value,match", [
    ("model.segment", 48, r"config\.model\.segment \(48\) must divide config\.task\.horizon "
                          r"\(72\)"),
    ("model.input", "points", "config.model.input"),
    ("model.output", "pmf", "config.model.output"),
    ("model.revin", "std", "config.model.revin"),
    ("model.kind", "segRNN", "config.model.kind"),
    ("model.likelihood", "gaussian", "config.model.likelihood"),
    ("model.instance_norm", True, "config.model.instance_norm"),
    ("model.output_dropout", 1.0, "config.model.output_dropout"),
    ("model.init", "pytorch", "config.model.init"),
    ("task.loss", "l1", "config.task.loss"),
    ("task.sampling", "epoch", "config.task.sampling"),
])
def test_config_errors_name_the_field(field, value, match):
    c = ltsf("etth1,96")
    c.task.horizon = 72
    c.model.segment = 24
    section, name = field.split(".")
    setattr(c[section], name, value)
    with pytest.raises((ValueError, ConfigError), match=match) as e:
        validate(c)
    assert "\n" not in str(e.value)


def test_config_file_settings_and_errors():
    for d in ("etth1", "etth2", "ettm1", "ettm2", "weather"):
        for h in (96, 192, 336, 720):
            validate(ltsf(f"{d},{h}"))
    c = ltsf("ettm2,336")
    assert (c.model.segment, c.optimizer.learning_rate, c.batch_size) == (48, 1e-4, 256)
    assert c.num_train_steps == 30 * c.eval.every_steps == 30 * ((34560 - 96 - 336 + 1) // 256)
    assert (c.optimizer.decay_start, c.optimizer.decay_every) == (3 * c.eval.every_steps,
                                                                  c.eval.every_steps)
    assert ltsf("weather,96").batch_size == 64
    for bad in ("etth3,96", "etth1", "etth1,96,x"):
        with pytest.raises(ValueError, match="<dataset>,<horizon>"):
            ltsf(bad)


# ------------------------------------------------------------------ real data
def test_loss_falls_on_etth1_and_mae_loss_is_selectable(data_dir, tfds_dir, tmp_path):
    from grux.train import train_and_evaluate
    from grux.train.writers import read_metrics
    c = ltsf("etth1,96", data_dir, tfds_dir)
    c.model.hidden, c.model.output_dropout, c.batch_size = 32, 0.1, 32
    c.optimizer.learning_rate, c.optimizer.schedule = 3e-3, "constant"
    c.num_train_steps = c.eval.every_steps = c.checkpoint.every_steps = 60
    c.log.every_steps, c.log.tensorboard, c.log.progress = 10, False, False
    summary = train_and_evaluate(c, str(tmp_path))
    curve = [r["loss"] for r in read_metrics(tmp_path) if r.get("split") == "train"]
    assert curve[-1] < 0.8 * curve[0], curve
    test = summary["final"]["test"]
    assert test["mse"] < test["naive_mse"] and test["mse"] < 0.6, test
    assert {"snaive_mse", "linear_mse", "naive_mae"} <= set(test)
    # task.loss = mae: the objective is the MAE pair
    c.task.loss = "mae"
    task = ForecastTask(c)
    model = task.build_model(nnx.Rngs(0))
    metrics, _ = task.loss(model, task.data.eval_batch("test", 0, 8), rng=None, carry={},
                           train=False)
    assert metrics["loss"][0] == metrics["mae"][0] != metrics["mse"][0]
