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
from grux.data.stream import BatchStream, seeded_rng
from grux.tasks.base import Task, length_sorted_stream, register, weighted
from grux.tasks.common import build_recurrent, recurrent_model_config, validate_recurrent_model
from grux.tasks.speech.features import FeatureSpec, log_mel, spec_augment

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
RATE = 8000


def feature_spec(t: ml_collections.ConfigDict) -> FeatureSpec:
    return FeatureSpec(rate=RATE, window_ms=t.window_ms, hop_ms=t.hop_ms, mel_bins=t.mel_bins)


def pad_audio(examples: list[dict], rows: int, bucket: int) -> dict[str, np.ndarray]:
    """``audio (rows, N)`` int16 zero-padded to a multiple of ``bucket`` samples, ``lengths``,
    ``label`` and ``weight`` (0 for the rows beyond ``examples``)."""
    n = bucket * -(-max(len(e["audio"]) for e in examples) // bucket)
    out = {"audio": np.zeros((rows, n), np.int16), "lengths": np.ones(rows, np.int32),
           "label": np.zeros(rows, np.int32), "weight": np.zeros(rows, np.float32)}
    for i, e in enumerate(examples):
        out["audio"][i, :len(e["audio"])] = e["audio"]
        out["lengths"][i] = len(e["audio"])
        out["label"][i] = e["label"]
        out["weight"][i] = 1.0
    return out


class DigitClassifier(nnx.Module):
    """Log-mel features → recurrent stack → mean over valid frames → 10 logits."""

    def __init__(self, config: ml_collections.ConfigDict, rngs: nnx.Rngs):
        t, m = config.task, config.model
        self.spec = feature_spec(t)
        self.augment = dict(freq_masks=t.freq_masks, freq_width=t.freq_width,
                            time_masks=t.time_masks, time_width=t.time_width)
        self.rnn = build_recurrent(m, t.mel_bins, rngs, bidirectional=m.bidirectional)
        self.head = nnx.Linear(m.hidden * (2 if m.bidirectional else 1), 10, rngs=rngs)

    def __call__(self, audio, lengths, rngs=None):
        feats, mask = log_mel(audio, lengths, self.spec)
        keys = (None, None) if rngs is None else tuple(jax.random.split(rngs))
        if keys[0] is not None:
            feats = spec_augment(feats, mask, keys[0], **self.augment)
        out, _ = self.rnn(feats, mask=mask, rngs=keys[1])
        m = mask[..., None].astype(out.dtype)
        pooled = (out * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
        return self.head(pooled.astype(jnp.float32))


@register
class SpokenDigitTask(Task):
    name = "spoken_digits"
    unit = "utt"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {"name": "spoken_digits", "dataset": "fsdd",
                     "test_speaker": "",       # "" official split; a speaker: held out
                     "mel_bins": 40, "window_ms": 25.0, "hop_ms": 10.0,
                     "freq_masks": 2, "freq_width": 8,   # SpecAugment in training
                     "time_masks": 2, "time_width": 10,  # (0 masks: off)
                     "bucket_samples": 2000},  # pad batches to a multiple of this
            "model": recurrent_model_config(hidden=128, num_layers=2, dropout=0.2,
                                            bidirectional=True),
        })

    @staticmethod
    def validate(config):
        t = config.task
        if t.dataset != "fsdd":
            raise ValueError(f"config.task.dataset must be 'fsdd', got {t.dataset!r}")
        if t.test_speaker and t.test_speaker not in SPEAKERS:
            raise ValueError(f"config.task.test_speaker must be '' (official split) or one of "
                             f"{SPEAKERS}, got {t.test_speaker!r}")
        for f in ("mel_bins", "bucket_samples"):
            if t[f] < 1:
                raise ValueError(f"config.task.{f} must be >= 1, got {t[f]}")
        for f in ("freq_masks", "freq_width", "time_masks", "time_width"):
            if t[f] < 0:
                raise ValueError(f"config.task.{f} must be >= 0, got {t[f]}")
        if not 0 < t.hop_ms <= t.window_ms:
            raise ValueError(f"config.task.hop_ms must be in (0, window_ms], got {t.hop_ms}")
        validate_recurrent_model(config.model)

    def __init__(self, config):
        super().__init__(config)
        self._splits: dict[str, list[dict]] | None = None

    def split(self, name: str) -> list[dict]:
        """``train``, ``validation`` or ``test`` recordings of the configured split."""
        if self._splits is None:
            from grux.data import datasets  # TFDS is imported on first data access
            every = datasets.spoken_digits("full", **data_dirs(self.config))
            held = self.config.task.test_speaker
            if held:
                val = SPEAKERS[(SPEAKERS.index(held) + 1) % len(SPEAKERS)]
                which = lambda e: ("test" if e["speaker"] == held else  # noqa: E731
                                   "validation" if e["speaker"] == val else "train")
            else:
                which = lambda e: ("test" if e["index"] < 5 else  # noqa: E731
                                   "validation" if e["index"] < 10 else "train")
            self._splits = {"train": [], "validation": [], "test": []}
            for e in every:
                self._splits[which(e)].append(e)
        return self._splits[name]

    def build_model(self, rngs):
        return DigitClassifier(self.config, rngs)

    def train_stream(self, batch_size, process_index, process_count):
        data, seed, bucket = self.split("train"), self.config.seed, self.config.task.bucket_samples
        per_epoch = len(data) // batch_size

        def global_batch(i):
            epoch, j = divmod(i, per_epoch)
            order = seeded_rng(seed, 0, epoch).permutation(len(data))
            return pad_audio([data[k] for k in order[j * batch_size:(j + 1) * batch_size]],
                             batch_size, bucket)

        return BatchStream(global_batch, batch_size, None, process_index=process_index,
                           process_count=process_count)

    def eval_streams(self, batch_size, process_index, process_count):
        bucket = self.config.task.bucket_samples
        return {split: length_sorted_stream(self.split(split), lambda e: len(e["audio"]),
                                            batch_size,
                                            lambda rows, n: pad_audio(rows, n, bucket),
                                            process_index, process_count)
                for split in ("validation", "test")}

    def loss(self, model, batch, *, rng, carry, train):
        logits = model(batch["audio"], batch["lengths"], rngs=rng if train else None)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
        correct = jnp.argmax(logits, -1) == batch["label"]
        w = batch["weight"]
        return {"loss": weighted(nll, w), "accuracy": weighted(correct, w)}, carry

    def report(self, results):
        test = results.get("test", {}).get("accuracy")
        if test is None:
            return []
        t = self.config.task
        split = f"speaker {t.test_speaker} held out" if t.test_speaker else "official split"
        return [f"test accuracy {100 * test:.2f} % ({split}, {self.config.model.cell} "
                f"{self.config.model.num_layers}x{self.config.model.hidden})"]
