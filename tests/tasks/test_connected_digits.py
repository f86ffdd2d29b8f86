"""Connected digits: the generator against the recordings it is made of, determinism from
(seed, split, index), resumable training batches, padding invariance of the CTC model, the
evaluator against the error-rate function, and a short training run whose error rate falls."""
import jax.numpy as jnp
import numpy as np
import pytest


def connected_config(data_dir, **task_fields):
    from grux.train import base_config
    c = base_config("connected_digits")
    c.data_dir = str(data_dir)
    c.model.hidden, c.model.num_layers, c.model.dropout = 16, 1, 0.0
    c.task.conv_channels, c.task.eval_examples = 16, 40
    for k, v in task_fields.items():
        c.task[k] = v
    return c


@pytest.fixture(scope="module")
def task(data_dir):
    from grux.tasks.speech.connected import ConnectedDigitsTask
    return ConnectedDigitsTask(connected_config(data_dir))


def test_utterances_are_the_recordings_they_name(data_dir, monkeypatch):
    from grux.tasks.speech import connected
    monkeypatch.setattr(connected, "DITHER", 0.0)
    quiet = connected.ConnectedDigitsTask(connected_config(
        data_dir, level_db=0.0, noise_prob=0.0, pause_min_ms=100.0, pause_max_ms=200.0))
    lengths = set()
    for k in range(30):
        u = quiet.utterance("test", k, seed=5)
        audio, pool = u["audio"], quiet.pool("test")[u["speaker"]]
        assert 1 <= len(u["labels"]) <= 7 and len(u["segments"]) == len(u["labels"])
        lengths.add(len(u["labels"]))
        covered = np.zeros(len(audio), bool)
        for (lo, hi), label in zip(u["segments"], u["labels"]):
            assert any(len(r) == hi - lo and np.array_equal(r, audio[lo:hi])
                       for r in pool[label - 1]), (k, label)
            covered[lo:hi] = True
        assert not audio[~covered].any()                 # silence and pauses
        gaps = np.diff(np.array(u["segments"]).ravel())[1::2]
        assert np.all((gaps >= 800) & (gaps <= 1600))    # 100-200 ms at 8 kHz
    assert len(lengths) >= 5
    # official split: test utterances only use test recordings (index 0-4)
    test_files = {e["audio"].tobytes() for e in quiet.split_recordings("test")}
    u = quiet.utterance("test", 3, seed=5)
    assert all(u["audio"][lo:hi].tobytes() in test_files for lo, hi in u["segments"])


def test_generation_is_a_function_of_seed_split_and_index(task, data_dir):
    from grux.tasks.speech.connected import ConnectedDigitsTask
    a, b = task.utterance("train", 17, seed=3), task.utterance("train", 17, seed=3)
    assert np.array_equal(a["audio"], b["audio"]) and a["labels"] == b["labels"]
    assert not np.array_equal(a["audio"], task.utterance("train", 18, seed=3)["audio"])
    assert not np.array_equal(a["audio"], task.utterance("train", 17, seed=4)["audio"])
    assert not np.array_equal(a["audio"], task.utterance("validation", 17, seed=3)["audio"])
    # evaluation sets are fixed by task.data_seed, whatever the training seed
    other = ConnectedDigitsTask(connected_config(data_dir))
    other.config.seed = 99
    assert all(np.array_equal(x["audio"], y["audio"])
               for x, y in zip(task.examples("test"), other.examples("test")))
    held = ConnectedDigitsTask(connected_config(data_dir, test_speaker="lucas"))
    assert {u["speaker"] for u in held.examples("test")} == {"lucas"}
    assert "lucas" not in {held.utterance("train", k, 0)["speaker"] for k in range(50)}


def test_training_batches_resume_from_their_index(task):
    s1 = task.train_stream(8, 0, 1)
    batches = [next(s1) for _ in range(task.config.task.chunk_batches + 3)]
    s2 = task.train_stream(8, 0, 1)
    s2.set_state({"position": len(batches) - 2})
    for want in batches[-2:]:
        got = next(s2)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    for b in batches:      # sorted chunks: a batch is padded to its own longest utterance
        longest = int(b["lengths"].max())
        assert b["audio"].shape[1] - longest < task.config.task.bucket_samples
        assert np.all(b["label_lengths"] >= 1) and np.all(b["weight"] == 1)


def test_ctc_model_padding_never_changes_the_outputs(task):
    from flax import nnx
    model = task.build_model(nnx.Rngs(0))
    examples = task.examples("validation")[:4]
    run = nnx.jit(lambda m, a, n: m(a, n))
    batch = task.pad(examples, 6)
    logits, mask = run(model, jnp.asarray(batch["audio"]), jnp.asarray(batch["lengths"]))
    for i, e in enumerate(examples):
        alone = task.pad([e], 1)
        one, one_mask = run(model, jnp.asarray(alone["audio"]), jnp.asarray(alone["lengths"]))
        n = int(one_mask.sum())
        assert int(mask[i].sum()) == n == -(-(-(-int(1 + (len(e["audio"]) - 200) // 80) // 2)) // 2)
        np.testing.assert_allclose(logits[i, :n], one[0, :n], rtol=2e-4, atol=2e-5)


def test_evaluator_scores_what_the_recognizer_decodes(task):
    from flax import nnx

    from grux.tasks.speech import ctc
    from grux.tasks.speech.ctc_task import CtcEvaluator
    from grux.tasks.speech.error_rates import error_rates
    from grux.tasks.speech.recognizer import Recognizer
    model = task.build_model(nnx.Rngs(1))
    ev = CtcEvaluator(task)
    pred = ev.predict(model, "test", range(10))
    lp = Recognizer(model).log_probs([e["audio"] for e in task.examples("test")[:10]])
    assert pred == [ctc.greedy_decode(x, len(x)) for x in lp]
    assert ev.score("test", pred) == error_rates(
        [e["labels"] for e in task.examples("test")[:10]], pred)
    task.config.task.beam_size = 4
    try:
        beamed = ev.predict(model, "test", range(3))
    finally:
        task.config.task.beam_size = 1
    assert beamed == [ctc.prefix_beam_search(x, len(x), 4)[0][0] for x in lp[:3]]
