"""What every speech task shares: the config fields of the front end (features and
augmentation), the padded-audio batch, and the CTC acoustic model.

CTC acoustic model (DeepSpeech2-style, Amodei et al. 2016, with GRUs):

    log-mel (+ speed perturbation, SpecAugment in training)
    → ``conv_layers`` × [1-D convolution over time, kernel 3, stride 2, ``conv_channels``
      channels, GELU]            (each halves the frame rate: 100 → 50 → 25 frames/s)
    → (bidirectional) recurrent stack (any grux cell)
    → linear map to the labels plus the CTC blank (index 0).

The convolutions pad one zero frame on the left and right explicitly (not ``SAME``, whose
left padding depends on the padded length), so that an utterance's outputs do not depend on
how much its batch is padded; frame ``t`` of a layer reads input frames ``2t − 1 … 2t + 1``,
and an utterance of ``n`` frames keeps ``⌈n/2⌉``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from grux.tasks.common import build_recurrent
from grux.tasks.speech.features import Augment, FeatureSpec, speech_features


def front_end_fields(**overrides) -> dict:
    """``config.task`` fields of the features and the training augmentation."""
    fields = {"mel_bins": 40, "window_ms": 25.0, "hop_ms": 10.0,
              "normalize": "meanvar",                  # per utterance: meanvar, mean, none
              "speed_min": 1.0, "speed_max": 1.0,      # speed perturbation (1, 1: off)
              "freq_masks": 2, "freq_width": 8,        # SpecAugment in training
              "time_masks": 2, "time_width": 10,       # (0 masks: off)
              "chunk_batches": 20}                     # train batches sorted by length per chunk
    fields.update(overrides)
    return fields


def validate_front_end(t: ml_collections.ConfigDict) -> None:
    for f in ("mel_bins", "chunk_batches"):
        if t[f] < 1:
            raise ValueError(f"config.task.{f} must be >= 1, got {t[f]}")
    for f in ("freq_masks", "freq_width", "time_masks", "time_width"):
        if t[f] < 0:
            raise ValueError(f"config.task.{f} must be >= 0, got {t[f]}")
    if t.normalize not in ("meanvar", "mean", "none"):
        raise ValueError(f"config.task.normalize must be 'meanvar', 'mean' or 'none', got "
                         f"{t.normalize!r}")
    if not 0 < t.hop_ms <= t.window_ms:
        raise ValueError(f"config.task.hop_ms must be in (0, window_ms], got {t.hop_ms}")
    if not 0.5 <= t.speed_min <= t.speed_max <= 2.0:
        raise ValueError(f"config.task.speed_min/speed_max must satisfy 0.5 <= speed_min <= "
                         f"speed_max <= 2, got {t.speed_min}, {t.speed_max}")


def feature_spec(t: ml_collections.ConfigDict, rate: int) -> FeatureSpec:
    return FeatureSpec(rate=rate, window_ms=t.window_ms, hop_ms=t.hop_ms, mel_bins=t.mel_bins,
                       normalize=t.normalize)


def augment_of(t: ml_collections.ConfigDict) -> Augment:
    return Augment(speed_min=t.speed_min, speed_max=t.speed_max, freq_masks=t.freq_masks,
                   freq_width=t.freq_width, time_masks=t.time_masks, time_width=t.time_width)


def pad_audio(audio: list[np.ndarray], rows: int, bucket: int) -> dict[str, np.ndarray]:
    """``audio (rows, N)`` int16 zero-padded to a multiple of ``bucket`` samples (few distinct
    shapes, few compilations), ``lengths`` (1 for the empty rows beyond ``audio``) and
    ``weight`` (1 real, 0 padding row)."""
    n = bucket * -(-max(len(a) for a in audio) // bucket)
    out = {"audio": np.zeros((rows, n), np.int16), "lengths": np.ones(rows, np.int32),
           "weight": np.zeros(rows, np.float32)}
    for i, a in enumerate(audio):
        out["audio"][i, :len(a)] = a
        out["lengths"][i] = len(a)
        out["weight"][i] = 1.0
    return out


def pad_labels(labels: list[list[int]], rows: int) -> dict[str, np.ndarray]:
    """``labels (rows, L)`` right-padded with 0 (at least 1 column) and ``label_lengths``."""
    width = max([1] + [len(y) for y in labels])
    out = {"labels": np.zeros((rows, width), np.int32),
           "label_lengths": np.zeros(rows, np.int32)}
    for i, y in enumerate(labels):
        out["labels"][i, :len(y)] = y
        out["label_lengths"][i] = len(y)
    return out


class ConvSubsampling(nnx.Module):
    """``layers`` × (conv over time, kernel 3, stride 2, explicit one-frame zero padding on
    both sides, GELU); see the module docstring."""

    def __init__(self, in_features: int, channels: int, layers: int, rngs: nnx.Rngs):
        self.convs = nnx.List([
            nnx.Conv(in_features if i == 0 else channels, channels, kernel_size=(3,),
                     strides=(2,), padding=((1, 1),), rngs=rngs) for i in range(layers)])

    def __call__(self, x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        frames = mask.sum(1).astype(jnp.int32)
        for conv in self.convs:
            x = jax.nn.gelu(conv(x))
            frames = (frames + 1) // 2
            mask = jnp.arange(x.shape[1])[None] < frames[:, None]
            x = x * mask[..., None].astype(x.dtype)
        return x, mask


def ctc_model_fields(**overrides) -> dict:
    """``config.task`` fields of the CTC model's front end (besides :func:`front_end_fields`)."""
    fields = {"conv_layers": 2, "conv_channels": 128}
    fields.update(overrides)
    return fields


class CtcAcousticModel(nnx.Module):
    """Padded waveforms → ``(logits (B, T', num_labels + 1), frame_mask (B, T'))``; label 0
    is the CTC blank."""

    def __init__(self, config: ml_collections.ConfigDict, rate: int, num_labels: int,
                 rngs: nnx.Rngs):
        t, m = config.task, config.model
        self.spec, self.augment = feature_spec(t, rate), augment_of(t)
        self.conv = ConvSubsampling(t.mel_bins, t.conv_channels, t.conv_layers, rngs)
        features = t.conv_channels if t.conv_layers else t.mel_bins
        self.rnn = build_recurrent(m, features, rngs, bidirectional=m.bidirectional)
        self.head = nnx.Linear(m.hidden * (2 if m.bidirectional else 1), num_labels + 1,
                               rngs=rngs)

    def __call__(self, audio, lengths, rngs=None):
        k_feat, k_rnn = (None, None) if rngs is None else tuple(jax.random.split(rngs))
        x, mask = speech_features(audio, lengths, self.spec, self.augment, k_feat)
        x, mask = self.conv(x, mask)              # the identity for conv_layers = 0
        out, _ = self.rnn(x, mask=mask, rngs=k_rnn)
        return self.head(out.astype(jnp.float32)), mask
