"""Isolated spoken digits (Free Spoken Digit Dataset): log-mel features computed in the step,
a (bidirectional) recurrent stack over the frames, mean pooling over each utterance's own
frames, a softmax over the ten digits.

Splits (``task.test_speaker``):

* ``""``, the official split: recording index 0–4 of every speaker and digit = test (300),
  5–9 = validation (300, carved from the official train part), 10–49 = train (2,400);
* a speaker's name, speaker-independent: that speaker's 500 recordings = test, the next
  speaker's (in sorted order, cyclically) = validation, the other four speakers = train.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from grux.data.paths import data_dirs
from grux.tasks.base import (Task, length_bucketed_stream, length_sorted_stream, register,
                             weighted)
from grux.tasks.common import build_recurrent, recurrent_model_config, validate_recurrent_model
from grux.tasks.speech.acoustic import (ConvSubsampling, augment_of, ctc_model_fields,
                                       feature_spec, front_end_fields, pad_audio,
                                       validate_front_end)
from grux.tasks.speech.features import speech_features

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
RATE = 8000


def pad_examples(examples: list[dict], rows: int, bucket: int) -> dict[str, np.ndarray]:
    """:func:`~grux.tasks.speech.acoustic.pad_audio` of the recordings plus ``label``."""
    out = pad_audio([e["audio"] for e in examples], rows, bucket)
    out["label"] = np.zeros(rows, np.int32)
    out["label"][:len(examples)] = [e["label"] for e in examples]
    return out


def fsdd_splits(config: ml_collections.ConfigDict) -> dict[str, list[dict]]:
    """``train``/``validation``/``test`` recordings of ``config.task.test_speaker``'s split
    (module docstring)."""
    from grux.data import datasets  # TFDS is imported on first data access
    every = datasets.spoken_digits("full", **data_dirs(config))
    held = config.task.test_speaker
    if held:
        val = SPEAKERS[(SPEAKERS.index(held) + 1) % len(SPEAKERS)]
        which = lambda e: ("test" if e["speaker"] == held else  # noqa: E731
                           "validation" if e["speaker"] == val else "train")
    else:
        which = lambda e: ("test" if e["index"] < 5 else  # noqa: E731
                           "validation" if e["index"] < 10 else "train")
    splits: dict[str, list[dict]] = {"train": [], "validation": [], "test": []}
    for e in every:
        splits[which(e)].append(e)
    return splits


def validate_test_speaker(t: ml_collections.ConfigDict) -> None:
    if t.dataset != "fsdd":
        raise ValueError(f"config.task.dataset must be 'fsdd', got {t.dataset!r}")
    if t.test_speaker and t.test_speaker not in SPEAKERS:
        raise ValueError(f"config.task.test_speaker must be '' (official split) or one of "
                         f"{SPEAKERS}, got {t.test_speaker!r}")


POOLING = ("mean", "max", "meanmax")


class DigitClassifier(nnx.Module):
    """Log-mel features → optional strided convolutions (``task.conv_layers``, as in the CTC
    model) → recurrent stack → pooling over each utterance's valid frames (``task.pooling``:
    mean, max, or both concatenated) → 10 logits."""

    def __init__(self, config: ml_collections.ConfigDict, rngs: nnx.Rngs):
        t, m = config.task, config.model
        self.spec, self.augment = feature_spec(t, RATE), augment_of(t)
        self.pooling = t.pooling
        self.conv = ConvSubsampling(t.mel_bins, t.conv_channels, t.conv_layers, rngs)
        features = t.conv_channels if t.conv_layers else t.mel_bins
        self.rnn = build_recurrent(m, features, rngs, bidirectional=m.bidirectional)
        width = m.hidden * (2 if m.bidirectional else 1) * (2 if t.pooling == "meanmax" else 1)
        self.head = nnx.Linear(width, 10, rngs=rngs)

    def __call__(self, audio, lengths, rngs=None):
        k_feat, k_rnn = (None, None) if rngs is None else tuple(jax.random.split(rngs))
        feats, mask = speech_features(audio, lengths, self.spec, self.augment, k_feat)
        feats, mask = self.conv(feats, mask)
        out, _ = self.rnn(feats, mask=mask, rngs=k_rnn)
        out = out.astype(jnp.float32)
        m = mask[..., None]
        pooled = []
        if self.pooling in ("mean", "meanmax"):
            pooled.append(jnp.where(m, out, 0.0).sum(1) / jnp.maximum(m.sum(1), 1))
        if self.pooling in ("max", "meanmax"):
            pooled.append(jnp.where(m, out, -jnp.inf).max(1))
        return self.head(jnp.concatenate(pooled, -1))


@register
class SpokenDigitTask(Task):
    name = "spoken_digits"
    unit = "utt"
    rate = RATE
    words = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {"name": "spoken_digits", "dataset": "fsdd",
                     "test_speaker": "",       # "" official split; a speaker: held out
                     **front_end_fields(), **ctc_model_fields(conv_layers=0),
                     "pooling": "mean",        # over frames: mean, max, meanmax
                     "bucket_samples": 2000},  # pad batches to a multiple of this
            "model": recurrent_model_config(hidden=128, num_layers=2, dropout=0.2,
                                            bidirectional=True),
        })

    @staticmethod
    def validate(config):
        validate_test_speaker(config.task)
        validate_front_end(config.task)
        if config.task.pooling not in POOLING:
            raise ValueError(f"config.task.pooling must be one of {POOLING}, got "
                             f"{config.task.pooling!r}")
        if not 0 <= config.task.conv_layers <= 4:
            raise ValueError(f"config.task.conv_layers must be in 0..4, got "
                             f"{config.task.conv_layers}")
        if config.task.bucket_samples < 1:
            raise ValueError(f"config.task.bucket_samples must be >= 1, got "
                             f"{config.task.bucket_samples}")
        validate_recurrent_model(config.model)

    def __init__(self, config):
        super().__init__(config)
        self._splits: dict[str, list[dict]] | None = None

    def split(self, name: str) -> list[dict]:
        """``train``, ``validation`` or ``test`` recordings of the configured split."""
        if self._splits is None:
            self._splits = fsdd_splits(self.config)
        return self._splits[name]

    def build_model(self, rngs):
        return DigitClassifier(self.config, rngs)

    def train_stream(self, batch_size, process_index, process_count):
        t = self.config.task
        return length_bucketed_stream(
            self.split("train"), lambda e: len(e["audio"]), batch_size,
            lambda rows, n: pad_examples(rows, n, t.bucket_samples), self.config.seed,
            process_index, process_count, chunk_batches=t.chunk_batches)

    def eval_streams(self, batch_size, process_index, process_count):
        bucket = self.config.task.bucket_samples
        return {split: length_sorted_stream(self.split(split), lambda e: len(e["audio"]),
                                            batch_size,
                                            lambda rows, n: pad_examples(rows, n, bucket),
                                            process_index, process_count)
                for split in ("validation", "test")}

    def loss(self, model, batch, *, rng, carry, train):
        logits = model(batch["audio"], batch["lengths"], rngs=rng if train else None)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        correct = jnp.argmax(logits, -1) == batch["label"]
        w = batch["weight"]
        return {"loss": weighted(nll, w), "accuracy": weighted(correct, w)}, carry

    def transcribe(self, recognizer, audio: list[np.ndarray]) -> list[str]:
        """The most likely digit's word for each recording."""
        return [self.words[int(np.argmax(lp))] for lp in recognizer.log_probs(audio)]

    def report(self, results):
        test = results.get("test", {}).get("accuracy")
        if test is None:
            return []
        t = self.config.task
        split = f"speaker {t.test_speaker} held out" if t.test_speaker else "official split"
        return [f"test accuracy {100 * test:.2f} % ({split}, {self.config.model.cell} "
                f"{self.config.model.num_layers}x{self.config.model.hidden})"]
