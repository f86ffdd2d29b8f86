"""Speech building blocks against independent references: log-mel features against a direct
NumPy implementation of the same formulas (per utterance, unpadded), SpecAugment's masks,
the CTC loss against brute-force summation over every alignment, and greedy / prefix beam
decoding against exhaustive search."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grux.tasks.speech import ctc
from grux.tasks.speech.features import (FeatureSpec, log_mel, mel_filterbank, resample,
                                        spec_augment, speed_perturb)


def numpy_log_mel(x, spec: FeatureSpec):
    """One utterance, the module docstring's steps written out with NumPy loops."""
    x = np.asarray(x, np.float64) / 32768.0
    y = x.copy()
    y[1:] = x[1:] - spec.preemphasis * x[:-1]
    w, s = spec.window, spec.hop
    n_frames = 1 + max(len(y) - w, 0) // s
    y = np.pad(y, (0, max(0, (n_frames - 1) * s + w - len(y))))
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(w) / w)
    fmax = spec.fmax or spec.rate / 2
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = 700 * (10 ** (np.linspace(mel(spec.fmin), mel(fmax), spec.mel_bins + 2) / 2595) - 1)
    out = np.zeros((n_frames, spec.mel_bins))
    for f in range(n_frames):
        frame = y[f * s:f * s + w] * hann
        power = np.abs(np.fft.rfft(frame, n=spec.n_fft)) ** 2
        freqs = np.arange(len(power)) * spec.rate / spec.n_fft
        for m in range(spec.mel_bins):
            lo, mid, hi = edges[m:m + 3]
            tri = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0,
                          None)
            out[f, m] = np.log(power @ tri + 1e-6)
    return (out - out.mean(0)) / np.sqrt(out.var(0) + 1e-5)


def test_log_mel_matches_numpy_and_padding_changes_nothing(rng):
    spec = FeatureSpec(mel_bins=20)
    lengths = np.array([4000, 1234, 150, 2999])     # 150 < one window: a single frame
    audio = rng.integers(-20000, 20000, size=(4, 4000)).astype(np.int16)
    feats, mask = jax.jit(lambda a, n: log_mel(a, n, spec))(audio, lengths)
    assert feats.shape == (4, 1 + (4000 - 200) // 80, 20)
    for b, n in enumerate(lengths):
        want = numpy_log_mel(audio[b, :n], spec)
        assert int(mask[b].sum()) == len(want)
        np.testing.assert_allclose(feats[b, :len(want)], want, rtol=2e-3, atol=2e-3)
        assert float(jnp.abs(feats[b, len(want):]).max(initial=0.0)) == 0.0
        alone, _ = log_mel(audio[b:b + 1, :n], jnp.asarray([n]), spec)
        np.testing.assert_allclose(feats[b, :len(want)], alone[0], rtol=1e-4, atol=1e-4)


def test_resample_equals_numpy_interpolation(rng):
    lengths = np.array([1000, 377, 1, 999])
    audio = rng.integers(-30000, 30000, size=(4, 1000)).astype(np.int16)
    alpha = np.array([0.9, 1.13, 1.0, 1.2], np.float32)
    y, n = jax.jit(resample, static_argnums=3)(audio, lengths, alpha, 1200)
    for b in range(4):
        x = audio[b, :lengths[b]] / 32768.0
        want_n = int(np.floor((lengths[b] - 1) / np.float32(alpha[b]))) + 1
        assert int(n[b]) == want_n
        pos = np.arange(want_n, dtype=np.float32) * np.float32(alpha[b])  # as in float32
        np.testing.assert_allclose(y[b, :want_n], np.interp(pos, np.arange(len(x)), x),
                                   atol=1e-5)
        assert float(jnp.abs(y[b, want_n:]).max(initial=0.0)) == 0.0
    # random speeds stay in range and a slowed-down utterance is never cut
    y, n = speed_perturb(audio, lengths, jax.random.key(0), 0.8, 1.25)
    assert y.shape == (4, 1250)
    assert np.all(np.asarray(n) >= np.floor((lengths - 1) / 1.25) + 1)
    assert np.all(np.asarray(n) <= np.floor((lengths - 1) / 0.8) + 1)


def test_mel_filterbank_triangles():
    spec = FeatureSpec(mel_bins=10)
    fb = mel_filterbank(spec)
    assert fb.shape == (spec.n_fft // 2 + 1, 10)
    assert np.all(fb >= 0) and np.all(fb.max(0) > 0.5) and np.all(fb <= 1)
    centres = np.argmax(fb, axis=0)
    assert np.all(np.diff(centres) > 0)            # increasing centre frequencies
    with pytest.raises(ValueError, match="fmin < fmax"):
        mel_filterbank(FeatureSpec(fmin=5000))


def test_spec_augment_masks_inside_valid_frames_only():
    feats = jnp.ones((3, 50, 16))
    mask = jnp.arange(50)[None] < jnp.array([[50], [30], [10]])
    feats = feats * mask[..., None]
    out = spec_augment(feats, mask, jax.random.PRNGKey(0), freq_masks=2, freq_width=4,
                       time_masks=2, time_width=10, max_time_fraction=0.2)
    out = np.asarray(out)
    assert np.all(out[~np.asarray(mask)] == 0)      # padding stays zero
    zero_cols = (out == 0).all(axis=1)              # frequency bands zeroed in every frame
    assert zero_cols.sum(axis=1).max() <= 8
    for b, n in enumerate((50, 30, 10)):
        zero_frames = (out[b, :n] == 0).all(axis=1).sum()
        assert zero_frames <= 2 * min(10, int(0.2 * n))
    again = spec_augment(feats, mask, jax.random.PRNGKey(0), freq_masks=2, freq_width=4,
                         time_masks=2, time_width=10, max_time_fraction=0.2)
    np.testing.assert_array_equal(out, again)
    assert (out == 0).sum() > (~np.asarray(mask)).sum() * 16   # something was masked


def brute_force_nll(log_probs, labels):
    """−log Σ over every path of the frames whose collapse is ``labels``."""
    t, k = log_probs.shape
    total = -np.inf
    for path in itertools.product(range(k), repeat=t):
        if ctc.collapse(path) == list(labels):
            total = np.logaddexp(total, sum(log_probs[i, s] for i, s in enumerate(path)))
    return -total


def test_ctc_loss_equals_brute_force_over_alignments(rng):
    k, t_max = 3, 5
    logits = rng.normal(size=(4, t_max, k)).astype(np.float32)
    frames = np.array([5, 4, 3, 5])
    labels = np.array([[1, 2, 0], [1, 1, 0], [2, 0, 0], [1, 2, 1]])
    label_lengths = np.array([2, 2, 1, 3])
    frame_mask = (np.arange(t_max)[None] < frames[:, None]).astype(np.float32)
    got = ctc.ctc_loss(jnp.asarray(logits), jnp.asarray(frame_mask), jnp.asarray(labels),
                       jnp.asarray(label_lengths))
    lp = np.asarray(jax.nn.log_softmax(logits, -1), np.float64)
    for b in range(4):
        want = brute_force_nll(lp[b, :frames[b]], labels[b, :label_lengths[b]])
        assert float(got[b]) == pytest.approx(want, rel=1e-4), b


def test_ctc_loss_gradient_empty_and_impossible_labels(rng):
    """Gradients against optax's independent implementation; an empty label sequence is the
    all-blank path; more labels than frames is (about) impossible, with finite gradients."""
    import optax
    logits = jnp.asarray(rng.normal(size=(3, 6, 4)), jnp.float32)
    labels = jnp.asarray([[1, 3, 3], [2, 0, 0], [0, 0, 0]])
    lengths = jnp.asarray([3, 1, 0])
    mask = jnp.asarray(np.arange(6)[None] < np.array([[6], [4], [5]]), jnp.float32)
    pad = (jnp.arange(3)[None] >= lengths[:, None]).astype(jnp.float32)
    ours = jax.grad(lambda x: ctc.ctc_loss(x, mask, labels, lengths).sum())(logits)
    theirs = jax.grad(lambda x: optax.ctc_loss(x, 1 - mask, labels, pad).sum())(logits)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
    lp = jax.nn.log_softmax(logits, -1)
    empty = ctc.ctc_loss(logits, mask, labels, lengths)[2]
    assert float(empty) == pytest.approx(-float(lp[2, :5, 0].sum()), rel=1e-5)
    short = jnp.asarray(np.arange(6)[None] < 2, jnp.float32)    # 2 frames for 3 labels
    loss, grad = jax.value_and_grad(
        lambda x: ctc.ctc_loss(x, short, labels[:1], lengths[:1]).sum())(logits[:1])
    assert float(loss) > 1e29 and bool(jnp.all(jnp.isfinite(grad)))


def test_greedy_decoding_by_hand():
    one_hot = np.log(np.eye(4)[[1, 1, 0, 1, 2, 2, 3, 0]] * 0.97 + 0.01)
    assert ctc.greedy_decode(one_hot, 8) == [1, 1, 2, 3]
    assert ctc.greedy_decode(one_hot, 3) == [1]
    assert ctc.collapse([0, 0, 0]) == []


def exhaustive_best(log_probs):
    """The label sequence with the highest total probability, by enumerating every path."""
    t, k = log_probs.shape
    scores = {}
    for path in itertools.product(range(k), repeat=t):
        y = tuple(ctc.collapse(path))
        scores[y] = np.logaddexp(scores.get(y, -np.inf),
                                 sum(log_probs[i, s] for i, s in enumerate(path)))
    best = max(scores, key=scores.get)
    return list(best), scores[best], scores


@pytest.mark.parametrize("seed", range(6))
def test_prefix_beam_search_equals_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    lp = np.asarray(jax.nn.log_softmax(rng.normal(size=(5, 3)) * 2.0, -1), np.float64)
    best, score, scores = exhaustive_best(lp)
    hyps = ctc.prefix_beam_search(lp, 5, beam=64)     # holds every prefix: exact
    assert hyps[0][0] == best and hyps[0][1] == pytest.approx(score, abs=1e-9)
    for y, s in hyps:
        assert s == pytest.approx(scores[tuple(y)], abs=1e-9)
    # on peaked frame distributions a beam of one finds the best path's labels
    peaked = np.log(np.eye(3)[rng.integers(0, 3, size=6)] * 0.98 + 0.01 / 1.0)
    assert ctc.prefix_beam_search(peaked, 6, beam=1)[0][0] == ctc.greedy_decode(peaked, 6)


# ------------------------------------------------------------------ isolated digits task
def digit_config(data_dir, **task_fields):
    from grux.train import base_config
    c = base_config("spoken_digits")
    c.data_dir = str(data_dir)
    c.model.hidden, c.model.num_layers, c.model.dropout = 16, 1, 0.0
    for k, v in task_fields.items():
        c.task[k] = v
    return c


def test_digit_splits_official_and_speaker_independent(data_dir):
    from grux.tasks.speech.digits import SpokenDigitTask
    task = SpokenDigitTask(digit_config(data_dir))
    sizes = {s: len(task.split(s)) for s in ("train", "validation", "test")}
    assert sizes == {"train": 2400, "validation": 300, "test": 300}
    assert {e["index"] for e in task.split("test")} == set(range(5))
    assert {e["index"] for e in task.split("validation")} == set(range(5, 10))
    held = SpokenDigitTask(digit_config(data_dir, test_speaker="theo"))
    spk = {s: {e["speaker"] for e in held.split(s)} for s in ("train", "validation", "test")}
    assert spk["test"] == {"theo"} and spk["validation"] == {"yweweler"}
    assert len(spk["train"]) == 4 and not spk["train"] & (spk["test"] | spk["validation"])
    assert [len(held.split(s)) for s in ("train", "validation", "test")] == [2000, 500, 500]


@pytest.mark.parametrize("options", [{}, {"pooling": "max"},
                                     {"pooling": "meanmax", "conv_layers": 1}])
def test_digit_model_padding_never_changes_the_logits(data_dir, options):
    from flax import nnx

    from grux.tasks.speech.digits import SpokenDigitTask, pad_examples
    task = SpokenDigitTask(digit_config(data_dir, bucket_samples=500, **options))
    model = task.build_model(nnx.Rngs(0))
    examples = task.split("test")[:5]
    run = nnx.jit(lambda m, a, n: m(a, n))
    batch = pad_examples(examples, 8, 500)
    together = run(model, jnp.asarray(batch["audio"]), jnp.asarray(batch["lengths"]))
    for i, e in enumerate(examples):
        alone = pad_examples([e], 1, 1)
        logits = run(model, jnp.asarray(alone["audio"]), jnp.asarray(alone["lengths"]))
        np.testing.assert_allclose(together[i], logits[0], rtol=2e-4, atol=2e-5)


def test_digit_loss_falls_through_the_trainer(data_dir, tmp_path):
    from grux.train import train_and_evaluate
    from grux.train.writers import read_metrics
    c = digit_config(data_dir)
    c.batch_size, c.num_train_steps, c.optimizer.learning_rate = 32, 60, 1e-2
    c.eval.every_steps = c.checkpoint.every_steps = 60
    c.eval.metric, c.eval.mode = "validation/accuracy", "max"
    c.log.every_steps, c.log.tensorboard, c.log.progress = 10, False, False
    summary = train_and_evaluate(c, str(tmp_path))
    curve = [r["loss"] for r in read_metrics(tmp_path) if r.get("split") == "train"]
    assert curve[-1] < curve[0] - 0.5, curve          # from ln 10 ≈ 2.30
    assert summary["final"]["validation"]["accuracy"] > 0.3   # chance: 0.1


@pytest.mark.parametrize("field,value,message", [
    ("pooling", "median", "config.task.pooling must be one of"),
    ("conv_layers", 5, "config.task.conv_layers must be in 0..4"),
    ("test_speaker", "alice", "config.task.test_speaker must be"),
])
def test_digit_config_errors_name_the_field(data_dir, field, value, message):
    from grux.tasks.speech.digits import SpokenDigitTask
    with pytest.raises(ValueError, match=message):
        SpokenDigitTask.validate(digit_config(data_dir, **{field: value}))
