"""Connected digits: a TIDIGITS-like task made from real recordings (the Free Spoken Digit
Dataset), recognised with CTC.

Utterance ``k`` of a split is generated from ``seeded_rng(seed, split, k)`` alone (``seed``
= ``config.seed`` for ``train``, ``task.data_seed`` for the fixed ``validation``/``test``
sets), so streams resume from one integer and every run scores the same test utterances:

* a speaker drawn from the split's speakers, ``n ~ U{min_digits … max_digits}`` digits drawn
  uniformly, each spoken by one of that speaker's recordings of the digit in the split;
* silence of ``U[50, 300]`` ms before and after, ``U[pause_min_ms, pause_max_ms]`` between
  digits; each recording scaled by ``U[−level_db, +level_db]`` dB;
* with probability ``noise_prob``, white Gaussian noise at an SNR of ``U[snr_min_db,
  snr_max_db]`` dB relative to the speech's mean power; otherwise a dither of standard
  deviation 2 (of 32,768), so silence is not digital zero.

Splits of the recordings (``task.test_speaker``) are those of the isolated-digit task:
``""`` speaker-dependent (recording index 0–4 test, 5–9 validation, 10–49 train), a
speaker's name speaker-independent (that speaker test, the next validation, four train).
Labels: digit ``d`` is label ``d + 1``; 0 is the CTC blank.
"""
from __future__ import annotations

import ml_collections
import numpy as np

from grux.data.stream import BatchStream, seeded_rng
from grux.tasks.base import SPLIT_IDS, register
from grux.tasks.common import recurrent_model_config
from grux.tasks.speech.acoustic import ctc_model_fields, front_end_fields
from grux.tasks.speech.ctc_task import CtcTask, as_int16, ctc_report
from grux.tasks.speech.digits import RATE, fsdd_splits, validate_test_speaker

SILENCE_MS = (50.0, 300.0)
DITHER = 2.0
ORDER_STREAM = len(SPLIT_IDS)  # seeds the order of a chunk's batches, beside the splits


def pools(recordings: list[dict]) -> dict[str, list[list[np.ndarray]]]:
    """``speaker → [recordings of digit 0, …, of digit 9]``."""
    out: dict[str, list[list[np.ndarray]]] = {}
    for e in recordings:
        out.setdefault(e["speaker"], [[] for _ in range(10)])[e["label"]].append(e["audio"])
    for speaker, digits in out.items():
        if any(not d for d in digits):
            raise ValueError(f"speaker {speaker} lacks recordings of some digit in this split")
    return out


def make_utterance(rng: np.random.Generator, by_speaker: dict, t: ml_collections.ConfigDict
                   ) -> dict:
    """One generated utterance (module docstring): ``audio`` int16, ``labels``, ``speaker``
    and ``segments``, the ``(start, end)`` samples of each digit's recording."""
    speakers = sorted(by_speaker)
    speaker = speakers[rng.integers(len(speakers))]
    n = int(rng.integers(t.min_digits, t.max_digits + 1))
    digits = rng.integers(0, 10, size=n)
    ms = lambda lo, hi: int(rng.uniform(lo, hi) * RATE / 1000)  # noqa: E731
    parts = [np.zeros(ms(*SILENCE_MS))]
    segments, at = [], len(parts[0])
    for i, d in enumerate(digits):
        if i:
            parts.append(np.zeros(ms(t.pause_min_ms, t.pause_max_ms)))
            at += len(parts[-1])
        choices = by_speaker[speaker][d]
        gain = 10.0 ** (rng.uniform(-t.level_db, t.level_db) / 20.0)
        parts.append(choices[rng.integers(len(choices))].astype(np.float64) * gain)
        segments.append((at, at + len(parts[-1])))
        at += len(parts[-1])
    parts.append(np.zeros(ms(*SILENCE_MS)))
    audio = np.concatenate(parts)
    if rng.uniform() < t.noise_prob:
        speech = np.concatenate(parts[1:-1:2]) if n else audio
        power = np.mean(speech ** 2)
        snr = rng.uniform(t.snr_min_db, t.snr_max_db)
        std = np.sqrt(power / 10.0 ** (snr / 10.0))
    else:
        std = DITHER
    audio = audio + rng.normal(0.0, std, size=audio.shape)
    return {"audio": as_int16(audio), "labels": [int(d) + 1 for d in digits],
            "speaker": speaker, "segments": segments}


@register
class ConnectedDigitsTask(CtcTask):
    name = "connected_digits"
    rate = RATE
    alphabet = tuple("0123456789")

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {"name": "connected_digits", "dataset": "fsdd",
                     "test_speaker": "",       # "" speaker-dependent; a speaker: held out
                     "min_digits": 1, "max_digits": 7,
                     "pause_min_ms": 0.0, "pause_max_ms": 300.0,
                     "level_db": 6.0,          # per-digit gain U[-level_db, level_db]
                     "noise_prob": 0.5, "snr_min_db": 10.0, "snr_max_db": 30.0,
                     "eval_examples": 1000,    # per evaluation split
                     "data_seed": 0,           # seeds the evaluation utterances
                     "beam_size": 1,           # 1: greedy decoding
                     "bucket_samples": 4000,
                     **front_end_fields(), **ctc_model_fields()},
            "model": recurrent_model_config(hidden=128, num_layers=2, dropout=0.2,
                                            bidirectional=True),
        })

    @staticmethod
    def validate(config):
        t = config.task
        validate_test_speaker(t)
        CtcTask.validate_ctc(config)
        if not 1 <= t.min_digits <= t.max_digits:
            raise ValueError(f"config.task.min_digits/max_digits must satisfy 1 <= min_digits "
                             f"<= max_digits, got {t.min_digits}, {t.max_digits}")
        if not 0 <= t.pause_min_ms <= t.pause_max_ms:
            raise ValueError(f"config.task.pause_min_ms/pause_max_ms must satisfy 0 <= "
                             f"pause_min_ms <= pause_max_ms, got {t.pause_min_ms}, "
                             f"{t.pause_max_ms}")
        if not 0 <= t.noise_prob <= 1:
            raise ValueError(f"config.task.noise_prob must be in [0, 1], got {t.noise_prob}")
        if t.snr_min_db > t.snr_max_db:
            raise ValueError(f"config.task.snr_min_db must be <= snr_max_db, got "
                             f"{t.snr_min_db} > {t.snr_max_db}")
        if t.level_db < 0 or t.eval_examples < 1:
            raise ValueError("config.task.level_db must be >= 0 and config.task.eval_examples "
                             f">= 1, got {t.level_db}, {t.eval_examples}")

    def __init__(self, config):
        super().__init__(config)
        self._recordings: dict[str, list[dict]] | None = None
        self._pools: dict[str, dict] = {}
        self._examples: dict[str, list[dict]] = {}

    def split_recordings(self, split: str) -> list[dict]:
        """The FSDD recordings utterances of ``split`` are made of."""
        if self._recordings is None:
            self._recordings = fsdd_splits(self.config)
        return self._recordings[split]

    def pool(self, split: str) -> dict:
        """``speaker → [recordings of digit 0, …, 9]`` of ``split``."""
        if split not in self._pools:
            self._pools[split] = pools(self.split_recordings(split))
        return self._pools[split]

    def utterance(self, split: str, index: int, seed: int) -> dict:
        return make_utterance(seeded_rng(seed, SPLIT_IDS[split], index), self.pool(split),
                              self.config.task)

    def examples(self, split):
        if split not in self._examples:
            t = self.config.task
            self._examples[split] = [self.utterance(split, k, t.data_seed)
                                     for k in range(t.eval_examples)]
        return self._examples[split]

    def train_stream(self, batch_size, process_index, process_count):
        """Chunk ``c`` = utterances ``c·K·B … (c+1)·K·B − 1`` (``K = task.chunk_batches``),
        sorted by length into ``K`` batches played in an order drawn from
        ``seeded_rng(seed, ORDER_STREAM, c)``: batch ``i`` is a function of ``(seed, i)``."""
        seed, per_chunk = self.config.seed, self.config.task.chunk_batches
        cache: dict[int, list] = {}

        def chunk(c: int) -> list:
            if c not in cache:
                cache.clear()
                n = per_chunk * batch_size
                utts = [self.utterance("train", c * n + k, seed) for k in range(n)]
                utts.sort(key=lambda u: len(u["audio"]))
                batches = [utts[j:j + batch_size] for j in range(0, n, batch_size)]
                order = seeded_rng(seed, ORDER_STREAM, c).permutation(per_chunk)
                cache[c] = [batches[k] for k in order]
            return cache[c]

        def global_batch(i: int):
            c, j = divmod(i, per_chunk)
            return self.pad(chunk(c)[j], batch_size)

        return BatchStream(global_batch, batch_size, None, process_index=process_index,
                           process_count=process_count)

    def report(self, results):
        t = self.config.task
        split = (f"speaker {t.test_speaker} held out" if t.test_speaker
                 else "speaker-dependent")
        return [line + f", {split}" for line in ctc_report(self, results, "digit")]
