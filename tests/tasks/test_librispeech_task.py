"""The librispeech CTC task on a tiny fixture corpus in the LibriSpeech layout: labels from
transcripts, evaluation examples, a length-bucketed lazy training stream, a documented-size
sharded training step (configs/librispeech.py) and a transcription of the right kind."""
import numpy as np
import pytest
from librispeech_fixture import fixture_subsets, write_corpus

from grux.data.builders import librispeech as ls


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    return root, write_corpus(root), tmp_path_factory.mktemp("tfds")


@pytest.fixture
def librispeech_config(corpus, monkeypatch):
    """``configs/librispeech.py`` pointed at the fixture corpus (three subsets)."""
    from cli_runs import experiment_config
    root, written, prepared = corpus
    monkeypatch.setattr(ls.Librispeech, "subsets", lambda self: fixture_subsets())
    config = experiment_config("librispeech")
    config.data_dir, config.tfds_dir = str(root), str(prepared)
    return config


def test_labels_alphabet_and_errors():
    from grux.tasks.speech.librispeech import ALPHABET, encode
    assert len(ALPHABET) == 28 and encode("IT'S A") == [11, 22, 2, 21, 1, 3]
    with pytest.raises(ValueError, match="not in the LibriSpeech alphabet"):
        encode("CAFÉ")


def test_examples_and_training_stream(librispeech_config, corpus):
    from grux.tasks.speech.librispeech import LibrispeechTask, encode
    _, written, _ = corpus
    task = LibrispeechTask(librispeech_config)
    dev = task.examples("validation")
    want = [written["dev-clean"][k] for k in sorted(written["dev-clean"],
                                                     key=lambda k: tuple(map(int, k.split("-"))))]
    assert len(dev) == len(want) == 5
    for e, (samples, text) in zip(dev, want):
        np.testing.assert_array_equal(e["audio"], samples)
        assert e["labels"] == encode(text) and task.text(e["labels"]) == text
    stream = task.train_stream(2, 0, 1)
    seen = []
    for _ in range(2):          # one epoch of the 7 training utterances in batches of 2 = 3
        for _ in range(3):
            b = next(stream)
            assert b["audio"].shape[0] == 2 and b["audio"].shape[1] % 16000 == 0
            seen += [tuple(b["audio"][i, :n]) for i, n in enumerate(b["lengths"])]
    train = {tuple(s) for s, _ in written["train-clean-100"].values()}
    assert set(seen) <= train and len(set(seen[:6])) == 6


def test_documented_config_takes_a_sharded_step_and_transcribes(librispeech_config, tmp_path):
    import jax
    from flax import nnx

    from grux.tasks.speech.librispeech import ALPHABET, LibrispeechTask
    from grux.tasks.speech.recognizer import Recognizer
    from grux.train import parallel, validate
    from grux.train.trainer import _Trainer
    config = librispeech_config
    config.batch_size = config.eval.batch_size = 2
    mesh = parallel.make_mesh()
    validate(config, device_count=mesh.devices.size)
    task = LibrispeechTask(config)
    trainer = _Trainer(config, task, mesh, str(tmp_path), True)
    try:
        batch = parallel.global_batch(next(trainer.train_data), mesh)
        state, pairs = trainer.train_step(trainer.state, batch)
        pairs = parallel.to_host(pairs)
        assert np.isfinite(float(pairs["loss"][0])) and float(pairs["loss"][1]) == 2
        stream = trainer.eval_data["validation"]
        metrics, _ = trainer.eval_step(state["params"],
                                       parallel.global_batch(stream.global_batch(0), mesh),
                                       trainer.eval_carry)
        assert all(np.isfinite(float(w)) for _, w in jax.device_get(metrics).values())
    finally:
        trainer.close()
    model = task.build_model(nnx.Rngs(0))
    texts = task.transcribe(Recognizer(model, bucket=16000),
                            [e["audio"] for e in task.examples("test")[:2]])
    assert len(texts) == 2 and all(set(t) <= set(ALPHABET) for t in texts)
    assert jax.device_count() >= 1
