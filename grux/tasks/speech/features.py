"""Speech features computed inside the jit-compiled step from padded waveforms and their
lengths, so an accelerator is not held back by host-side feature code.

For a batch ``audio (B, N)`` (padded with anything) and ``lengths (B,)``:

1. pre-emphasis ``y_n = x_n − a·x_{n−1}`` (``a = preemphasis``; ``y_0 = x_0``);
2. frames of ``W = round(rate·window_ms/1000)`` samples every ``S = round(rate·hop_ms/1000)``
   (25 ms / 10 ms by default), frame ``f`` covering samples ``[f·S, f·S + W)``; an utterance
   of ``n ≥ W`` samples has ``1 + ⌊(n − W)/S⌋`` frames, a shorter one 1 (zero-padded);
3. a periodic Hann window, ``|rfft|²`` with ``n_fft`` = the next power of two ≥ ``W``;
4. ``mel_bins`` triangular filters equally spaced on the HTK mel scale
   ``m(f) = 2595·log10(1 + f/700)`` between ``fmin`` and ``fmax`` (default: rate / 2);
5. ``log(mel energy + 1e-6)``;
6. per-utterance normalisation (``normalize``): each bin's mean (``"mean"``) or mean and
   standard deviation (``"meanvar"``, the default) over the utterance's own frames removed
   (padding frames excluded, and set to 0); ``"none"`` keeps the log energies.

:func:`speed_perturb` resamples each waveform by a random factor (Ko et al. 2015), which
changes tempo, pitch and formant frequencies together, a cheap stand-in for new speakers.

:func:`spec_augment` masks (Park et al. 2019) ``freq_masks`` bands of up to ``freq_width``
bins and ``time_masks`` spans of up to ``time_width`` frames (at most ``max_time_fraction``
of an utterance's frames each) to zero, inside each utterance's valid frames, in training.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

LOG_FLOOR = 1e-6


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    rate: int = 8000
    window_ms: float = 25.0
    hop_ms: float = 10.0
    mel_bins: int = 40
    fmin: float = 20.0
    fmax: float = 0.0          # 0: rate / 2
    preemphasis: float = 0.97
    normalize: str = "meanvar"   # per utterance: "meanvar", "mean" or "none"

    @property
    def window(self) -> int:
        return int(round(self.rate * self.window_ms / 1000))

    @property
    def hop(self) -> int:
        return int(round(self.rate * self.hop_ms / 1000))

    @property
    def n_fft(self) -> int:
        return 1 << (self.window - 1).bit_length()

    def num_frames(self, num_samples):
        """Frames of an utterance of ``num_samples`` samples (NumPy or JAX integers)."""
        lib = jnp if isinstance(num_samples, jax.Array) else np
        extra = lib.maximum(num_samples - self.window, 0) // self.hop
        return 1 + extra


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, np.float64) / 2595.0) - 1.0)


def mel_filterbank(spec: FeatureSpec) -> np.ndarray:
    """``(n_fft/2 + 1, mel_bins)`` triangular filters (peak 1) on the HTK mel scale."""
    fmax = spec.fmax or spec.rate / 2
    if not 0 <= spec.fmin < fmax <= spec.rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= rate/2, got fmin={spec.fmin}, "
                         f"fmax={fmax}, rate={spec.rate}")
    edges = mel_to_hz(np.linspace(hz_to_mel(spec.fmin), hz_to_mel(fmax), spec.mel_bins + 2))
    freqs = np.arange(spec.n_fft // 2 + 1) * spec.rate / spec.n_fft
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lo) / (mid - lo)
    down = (hi - freqs[None]) / (hi - mid)
    return np.maximum(0.0, np.minimum(up, down)).T.astype(np.float32)


def log_mel(audio: jax.Array, lengths: jax.Array, spec: FeatureSpec
            ) -> tuple[jax.Array, jax.Array]:
    """``(features (B, F, mel_bins), frame_mask (B, F))`` of padded ``audio (B, N)``
    (int16 or float samples) with true ``lengths (B,)``; ``F`` frames of the padded length.
    Padding frames are 0 in the features and 0 in the mask."""
    x = audio.astype(jnp.float32)
    if jnp.issubdtype(audio.dtype, jnp.integer):
        x = x / 32768.0
    b, n = x.shape
    valid = jnp.arange(n)[None] < lengths[:, None]
    x = jnp.where(valid, x, 0.0)
    if spec.preemphasis:
        x = jnp.concatenate([x[:, :1], x[:, 1:] - spec.preemphasis * x[:, :-1]], axis=1)
        x = jnp.where(valid, x, 0.0)
    w, s = spec.window, spec.hop
    frames = int(spec.num_frames(n))
    need = (frames - 1) * s + w
    x = jnp.pad(x, ((0, 0), (0, max(0, need - n))))
    idx = jnp.arange(frames)[:, None] * s + jnp.arange(w)[None]
    hann = 0.5 - 0.5 * jnp.cos(2 * jnp.pi * jnp.arange(w) / w)          # periodic
    power = jnp.abs(jnp.fft.rfft(x[:, idx] * hann, n=spec.n_fft)) ** 2  # (B, F, n_fft/2+1)
    mel = jnp.log(power @ jnp.asarray(mel_filterbank(spec)) + LOG_FLOOR)
    mask = jnp.arange(frames)[None] < spec.num_frames(lengths.astype(jnp.int32))[:, None]
    m = mask[..., None].astype(mel.dtype)
    if spec.normalize not in ("meanvar", "mean", "none"):
        raise ValueError(f"normalize must be 'meanvar', 'mean' or 'none', got "
                         f"{spec.normalize!r}")
    if spec.normalize != "none":
        count = jnp.maximum(m.sum(1, keepdims=True), 1.0)
        mean = (mel * m).sum(1, keepdims=True) / count
        mel = mel - mean
        if spec.normalize == "meanvar":
            var = ((mel * m) ** 2).sum(1, keepdims=True) / count
            mel = mel / jnp.sqrt(var + 1e-5)
    return mel * m, mask


def spec_augment(features: jax.Array, mask: jax.Array, key: jax.Array, *,
                 freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2,
                 time_width: int = 10, max_time_fraction: float = 0.2) -> jax.Array:
    """Zero random frequency bands and time spans of ``features (B, F, M)`` (see the module
    docstring); the spans stay inside each utterance's valid frames (``mask (B, F)``)."""
    b, f, m = features.shape
    kf, kt = jax.random.split(key)
    out = features
    bins = jnp.arange(m)[None]
    for k in jax.random.split(kf, freq_masks):
        k1, k2 = jax.random.split(k)
        width = jax.random.randint(k1, (b, 1), 0, freq_width + 1)
        start = jax.random.randint(k2, (b, 1), 0, m) % jnp.maximum(m - width + 1, 1)
        band = (bins >= start) & (bins < start + width)
        out = jnp.where(band[:, None, :], 0.0, out)
    valid = mask.sum(1, keepdims=True)
    limit = jnp.minimum(time_width, jnp.floor(max_time_fraction * valid).astype(jnp.int32))
    steps = jnp.arange(f)[None]
    for k in jax.random.split(kt, time_masks):
        k1, k2 = jax.random.split(k)
        width = jnp.floor(jax.random.uniform(k1, (b, 1)) * (limit + 1)).astype(jnp.int32)
        room = jnp.maximum(valid - width + 1, 1)
        start = jnp.floor(jax.random.uniform(k2, (b, 1)) * room).astype(jnp.int32)
        span = (steps >= start) & (steps < start + width)
        out = jnp.where(span[..., None], 0.0, out)
    return out



def resample(audio: jax.Array, lengths: jax.Array, alpha: jax.Array, width: int
             ) -> tuple[jax.Array, jax.Array]:
    """Row ``b`` of ``audio (B, N)`` played at speed ``alpha[b]`` (``> 1`` faster):
    ``y_j = x(j·α)`` by linear interpolation between neighbouring samples, for
    ``j < ⌊(n − 1)/α⌋ + 1`` (``n`` the row's length, at most ``width``); zeros beyond.
    Returns float samples (int16 scaled to [-1, 1)) ``(B, width)`` and the new lengths."""
    x = audio.astype(jnp.float32)
    if jnp.issubdtype(audio.dtype, jnp.integer):
        x = x / 32768.0
    alpha = jnp.asarray(alpha, jnp.float32)[:, None]
    last = jnp.maximum(lengths[:, None] - 1, 0).astype(jnp.float32)
    new_lengths = jnp.minimum(jnp.floor(last / alpha).astype(jnp.int32) + 1, width)[:, 0]
    pos = jnp.minimum(jnp.arange(width, dtype=jnp.float32)[None] * alpha, last)
    i0 = jnp.floor(pos).astype(jnp.int32)
    frac = pos - i0
    i1 = jnp.minimum(i0 + 1, last.astype(jnp.int32))
    y = jnp.take_along_axis(x, i0, 1) * (1 - frac) + jnp.take_along_axis(x, i1, 1) * frac
    valid = jnp.arange(width)[None] < new_lengths[:, None]
    return jnp.where(valid, y, 0.0), new_lengths


def speed_perturb(audio: jax.Array, lengths: jax.Array, key: jax.Array, low: float,
                  high: float) -> tuple[jax.Array, jax.Array]:
    """:func:`resample` each row of ``audio (B, N)`` at a speed ``α ~ U[low, high]``, to
    width ``⌈N / low⌉`` (nothing is cut). No anti-aliasing filter: for ``α ≤ 1.2`` only the
    top ~17 % of the band folds back, well inside what log-mel features smear anyway."""
    alpha = jax.random.uniform(key, (audio.shape[0],), minval=low, maxval=high)
    return resample(audio, lengths, alpha, int(np.ceil(audio.shape[1] / low)))


@dataclasses.dataclass(frozen=True)
class Augment:
    """Training-time augmentation: speed perturbation in ``[speed_min, speed_max]`` (off at
    1, 1) on the waveform, then SpecAugment masks on the features (0 masks: off)."""
    speed_min: float = 1.0
    speed_max: float = 1.0
    freq_masks: int = 0
    freq_width: int = 0
    time_masks: int = 0
    time_width: int = 0


def speech_features(audio: jax.Array, lengths: jax.Array, spec: FeatureSpec,
                    augment: Augment, key: jax.Array | None) -> tuple[jax.Array, jax.Array]:
    """The front end every speech model shares: ``(features (B, F, mel_bins), frame_mask)``
    of padded ``audio`` with ``lengths``, augmented with ``augment`` when ``key`` is given
    (training) and not otherwise (evaluation, inference)."""
    if key is None:
        return log_mel(audio, lengths, spec)
    k_speed, k_mask = jax.random.split(key)
    if (augment.speed_min, augment.speed_max) != (1.0, 1.0):
        audio, lengths = speed_perturb(audio, lengths, k_speed, augment.speed_min,
                                       augment.speed_max)
    feats, mask = log_mel(audio, lengths, spec)
    masks = dict(freq_masks=augment.freq_masks, freq_width=augment.freq_width,
                 time_masks=augment.time_masks, time_width=augment.time_width)
    return spec_augment(feats, mask, k_mask, **masks), mask
