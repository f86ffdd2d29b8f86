"""Polyphonic music: batching and the NLL-per-time-step definition of Boulanger-Lewandowski
et al. 2012 / Chung et al. 2014, checked against a plain NumPy computation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grux.tasks.base import weighted
from grux.tasks.music import bucket_length, nll_per_step, pad_batch


def test_bucket_lengths():
    assert [bucket_length(t) for t in (1, 32, 33, 100, 129)] == [32, 32, 64, 128, 256]


def test_pad_batch_shifts_inputs_and_masks_padding(rng):
    rolls = [rng.integers(0, 2, (5, 88)).astype(np.uint8),
             rng.integers(0, 2, (3, 88)).astype(np.uint8)]
    b = pad_batch(rolls, rows=3)
    assert b["inputs"].shape == (3, 32, 88)
    np.testing.assert_array_equal(b["inputs"][0, 0], 0)             # x_0 = 0
    np.testing.assert_array_equal(b["inputs"][0, 1:5], rolls[0][:4])
    np.testing.assert_array_equal(b["targets"][1, :3], rolls[1])
    np.testing.assert_array_equal(b["mask"].sum(1), [5, 3, 0])      # third row: padding only


def test_nll_is_summed_over_keys_and_averaged_over_all_steps_of_the_split(rng):
    rolls = [rng.integers(0, 2, (t, 88)).astype(np.uint8) for t in (4, 7, 2)]
    b = pad_batch(rolls, rows=4)
    logits = rng.normal(size=b["targets"].shape).astype(np.float32)
    total, steps = weighted(nll_per_step(jnp.asarray(logits), jnp.asarray(b["targets"])),
                            b["mask"])
    # reference: −Σ log p(x_t | x_<t) over every step of every piece, / number of steps
    ref_sum, ref_steps = 0.0, 0
    for i, r in enumerate(rolls):
        p = 1.0 / (1.0 + np.exp(-logits[i, :len(r)].astype(np.float64)))
        ref_sum += -np.sum(r * np.log(p) + (1 - r) * np.log(1 - p))
        ref_steps += len(r)
    assert float(steps) == ref_steps == 13
    assert float(total) / float(steps) == pytest.approx(ref_sum / ref_steps, rel=1e-5)


def test_evaluation_also_scores_without_each_pieces_first_frame(rng):
    """``nll_after_first_frame`` (Bai et al. 2018: predict x_2..x_T from x_1..x_{T−1}, divide
    by Σ (T − 1)), checked through the task's loss on a real model against NumPy."""
    from flax import nnx

    from grux.tasks.music import MusicTask
    config = MusicTask.default_config()
    config.model.hidden = 8
    config.seed = 0
    task = MusicTask(config)
    model = task.build_model(nnx.Rngs(0))
    rolls = [rng.integers(0, 2, (t, 88)).astype(np.uint8) for t in (4, 7, 2)]
    b = pad_batch(rolls, rows=4)
    metrics, _ = task.loss(model, b, rng=None, carry=None, train=False)
    logits = np.asarray(model(b["inputs"], b["mask"]), np.float64)
    per_step = []                                  # per piece: NLL of each of its frames
    for i, r in enumerate(rolls):
        p = 1.0 / (1.0 + np.exp(-logits[i, :len(r)]))
        per_step.append(-np.sum(r * np.log(p) + (1 - r) * np.log(1 - p), axis=1))
    total, steps = metrics["nll_after_first_frame"]
    assert float(steps) == 3 + 6 + 1
    assert float(total) / float(steps) == pytest.approx(
        sum(s[1:].sum() for s in per_step) / 10, rel=1e-5)
    total, steps = metrics["loss"]
    assert float(total) / float(steps) == pytest.approx(
        sum(s.sum() for s in per_step) / 13, rel=1e-5)
    train_metrics, _ = task.loss(model, b, rng=None, carry=None, train=True)
    assert set(train_metrics) == {"loss"}          # training windows may start mid-piece


def test_uninformed_model_scores_88_ln2_per_step():
    b = pad_batch([np.ones((3, 88), np.uint8)], rows=1)
    total, steps = weighted(nll_per_step(jnp.zeros((1, 32, 88)), jnp.asarray(b["targets"])),
                            b["mask"])
    assert float(total / steps) == pytest.approx(88 * np.log(2), rel=1e-6)



@pytest.mark.parametrize("variational", [False, True])
def test_input_and_output_dropout_train_only_and_variational_masks_span_time(variational):
    import jax
    from flax import nnx

    from grux.tasks.music import MusicModel, MusicTask
    m = MusicTask.default_config().model
    m.hidden, m.input_dropout, m.output_dropout = 8, 0.5, 0.5
    m.variational_dropout = variational
    model = MusicModel(m, nnx.Rngs(0))
    x = jnp.ones((3, 20, 88))
    mask = jnp.ones((3, 20), bool)
    plain = model.head(model.rnn(x, mask=mask)[0])
    np.testing.assert_allclose(model(x, mask), plain, atol=1e-6)      # evaluation: no dropout
    assert not np.allclose(model(x, mask, rngs=jax.random.key(1)), plain)
    kept = model.in_drop(x, rngs=jax.random.key(2)) != 0               # (3, 20, 88)
    assert 0.3 < float(kept.mean()) < 0.7
    same_over_time = bool((kept == kept[:, :1]).all())
    assert same_over_time == variational


def test_dropout_fields_are_checked():
    from grux.tasks.music import MusicTask
    c = MusicTask.default_config()
    c.model.output_dropout = 1.0
    with pytest.raises(ValueError, match="config.model.output_dropout"):
        MusicTask.validate(c)


def test_transpose_moves_every_note_by_one_shift_within_the_keyboard(rng):
    """Brute force: every shift the range allows keeps all notes on the 88 keys, every
    excluded shift in [-limit, limit] would lose one, and ``u`` picks each allowed shift
    for an equal share of [0, 1)."""
    from grux.tasks.music import transpose, transpose_range
    roll = np.zeros((6, 88), np.uint8)
    roll[rng.integers(0, 6, 20), rng.integers(3, 84, 20)] = 1
    roll[0, 3], roll[1, 83] = 1, 1                       # lowest key 3, highest 83
    limit = 6
    lo, hi = transpose_range(roll, limit)
    t, k = np.nonzero(roll)
    for s in range(-limit, limit + 1):
        assert (lo <= s <= hi) == bool(((k + s >= 0) & (k + s < 88)).all())
    seen = []
    for u in (np.arange(1000) + 0.5) / 1000:
        out = transpose(roll, limit, float(u))
        s = int(np.nonzero(out[0])[0].min()) - 3       # where the lowest note went
        want = np.zeros_like(roll)
        want[t, k + s] = 1
        np.testing.assert_array_equal(out, want)
        seen.append(s)
    counts = np.bincount(np.asarray(seen) - lo)
    assert list(range(lo, hi + 1)) == sorted(set(seen)) and counts.max() - counts.min() <= 1
    silent = np.zeros((4, 88), np.uint8)
    assert transpose_range(silent, 2) == (-2, 2)


def test_transposed_training_batches_are_shifted_pieces_and_reproducible(rng):
    from grux.tasks.music import MusicTask
    config = MusicTask.default_config()
    config.seed, config.task.transpose = 0, 3
    task = MusicTask(config)
    pieces = [rng.integers(0, 2, (t, 88)).astype(np.uint8) * (np.arange(88) % 7 == 0)
              for t in (5, 9, 7, 6)]
    for p in pieces:
        p[:, 40] = 1                                       # every piece has notes
    task._splits["train"] = pieces
    stream = task.train_stream(2, 0, 1)
    shifts = set()
    for i in range(8):
        b, again = stream.global_batch(i), stream.global_batch(i)
        np.testing.assert_array_equal(b["targets"], again["targets"])  # pure in the index
        for row in range(2):
            n = int(b["mask"][row].sum())
            target = b["targets"][row, :n]
            matches = [s for s in range(-3, 4) for p in pieces if len(p) == n
                       and np.array_equal(target, np.roll(p, s, axis=1))]
            assert matches, "a training row is not a transposed training piece"
            shifts.add(matches[0])
            np.testing.assert_array_equal(b["inputs"][row, 1:n], target[:-1])
    assert len(shifts) > 1                                  # not always the same shift
    c = MusicTask.default_config()
    c.task.transpose = -1
    with pytest.raises(ValueError, match="config.task.transpose"):
        MusicTask.validate(c)


def test_weight_dropout_field_is_checked():
    from grux.tasks.music import MusicTask
    c = MusicTask.default_config()
    c.model.weight_dropout = 1.0
    with pytest.raises(ValueError, match="config.model.weight_dropout"):
        MusicTask.validate(c)
    c.model.weight_dropout, c.model.cell = 0.3, "mingru"
    with pytest.raises(ValueError, match="config.model.weight_dropout"):
        MusicTask.validate(c)


def test_context_window_holds_the_last_frames_causally(rng):
    """Against a NumPy loop: block j of step t is the input of step t - j (0 before the
    start); and a model reading 3 frames leaves its logits before a changed input step
    as they were and changes them at that step and every later one."""
    from flax import nnx

    from grux.tasks.music import MusicModel, MusicTask, context_window
    x = rng.normal(size=(2, 6, 5)).astype(np.float32)
    got = np.asarray(context_window(jnp.asarray(x), 3))
    ref = np.zeros((2, 6, 15), np.float32)
    for t in range(6):
        for j in range(3):
            if t - j >= 0:
                ref[:, t, 5 * j:5 * (j + 1)] = x[:, t - j]
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(context_window(jnp.asarray(x), 1), x)

    m = MusicTask.default_config().model
    m.hidden, m.context_frames = 8, 3
    model = MusicModel(m, nnx.Rngs(0))
    assert model.rnn.layers[0].w_ih[...].shape[0] == 3 * 88
    inputs = jnp.asarray(rng.integers(0, 2, (1, 10, 88)).astype(np.float32))
    mask = jnp.ones((1, 10), bool)
    base = np.asarray(model(inputs, mask))
    moved = np.asarray(model(inputs.at[0, 4].set(1 - inputs[0, 4]), mask))
    np.testing.assert_array_equal(moved[0, :4], base[0, :4])          # causal
    assert np.abs(moved[0, 4:] - base[0, 4:]).max(axis=-1).min() > 0  # then every later step


def test_context_frames_field_is_checked():
    from grux.tasks.music import MusicTask
    c = MusicTask.default_config()
    c.model.context_frames = 0
    with pytest.raises(ValueError, match="config.model.context_frames"):
        MusicTask.validate(c)


@pytest.mark.parametrize("activation,phi", [("tanh", np.tanh),
                                            ("relu", lambda z: np.maximum(z, 0))])
def test_deep_output_is_the_two_layer_map_of_the_stack_outputs(rng, activation, phi):
    """``model.output_hidden`` > 0: logits ``W_2 φ(W_1 h_t + b_1) + b_2`` of the stack's
    outputs ``h_t`` (NumPy in float64), dropout on ``h_t`` and on ``φ(·)`` in training only;
    0 keeps the plain head ``W h_t + b``."""
    from flax import nnx

    from grux.tasks.music import MusicModel, MusicTask
    m = MusicTask.default_config().model
    m.hidden, m.output_hidden, m.output_activation, m.output_dropout = 8, 6, activation, 0.5
    model = MusicModel(m, nnx.Rngs(0))
    inputs = jnp.asarray(rng.integers(0, 2, (2, 7, 88)).astype(np.float32))
    mask = jnp.ones((2, 7), bool)
    h = np.asarray(model.rnn(inputs, mask=mask)[0], np.float64)
    w1, b1 = (np.asarray(v[...], np.float64) for v in (model.deep.kernel, model.deep.bias))
    w2, b2 = (np.asarray(v[...], np.float64) for v in (model.head.kernel, model.head.bias))
    assert w1.shape == (8, 6) and w2.shape == (6, 88)
    np.testing.assert_allclose(model(inputs, mask), phi(h @ w1 + b1) @ w2 + b2,
                               rtol=1e-5, atol=1e-5)
    key = jax.random.key(3)
    assert np.abs(np.asarray(model(inputs, mask, rngs=key)) - model(inputs, mask)).max() > 0.1

    m.output_hidden = 0
    plain = MusicModel(m, nnx.Rngs(0))
    assert plain.deep is None and plain.head.kernel[...].shape == (8, 88)
    h = np.asarray(plain.rnn(inputs, mask=mask)[0], np.float64)
    np.testing.assert_allclose(plain(inputs, mask), h @ np.asarray(plain.head.kernel[...])
                               + np.asarray(plain.head.bias[...]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("field,value", [("output_hidden", -1),
                                         ("output_activation", "sigmoid")])
def test_deep_output_fields_are_checked(field, value):
    from grux.tasks.music import MusicTask
    c = MusicTask.default_config()
    c.model[field] = value
    with pytest.raises(ValueError, match=f"config.model.{field}"):
        MusicTask.validate(c)
