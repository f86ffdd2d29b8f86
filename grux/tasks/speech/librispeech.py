"""LibriSpeech character recognition with CTC (``task.name = "librispeech"``).

Labels: the 28 characters of the corpus's transcripts, space (the word separator), the
apostrophe and A-Z; 0 is the CTC blank. Training reads utterances on demand from the
prepared ArrayRecord files (``train_clean100`` is ~11.6 GB of samples), in length-sorted
chunks of shuffled epochs (``tasks.base.length_bucketed_stream``); utterances longer than
``task.max_seconds`` are left out of training (none of the evaluation sets is cut). The
evaluation splits (``dev_clean``, ``test_clean`` by default, ~0.6 GB each) are read into
memory and scored by character, word and sentence error rate.
"""
from __future__ import annotations

import ml_collections
import numpy as np

from grux.data.paths import data_dirs
from grux.tasks.base import length_bucketed_stream, register
from grux.tasks.common import recurrent_model_config
from grux.tasks.speech.acoustic import ctc_model_fields, front_end_fields
from grux.tasks.speech.ctc_task import CtcTask, ctc_report

RATE = 16000
ALPHABET = tuple(" 'ABCDEFGHIJKLMNOPQRSTUVWXYZ")
SPLITS = ("train_clean100", "train_clean360", "train_other500", "dev_clean", "dev_other",
          "test_clean", "test_other")
_LABEL = {c: i + 1 for i, c in enumerate(ALPHABET)}


def encode(text: str) -> list[int]:
    """Transcript → labels; a character outside the alphabet is a ``ValueError``."""
    try:
        return [_LABEL[c] for c in text.upper()]
    except KeyError as e:
        raise ValueError(f"transcript character {e.args[0]!r} is not in the LibriSpeech "
                         f"alphabet {''.join(ALPHABET)!r}: {text!r}") from None


class Utterances:
    """Random access to a prepared split as ``{"audio", "labels"}`` (only ``indices``)."""

    def __init__(self, source, indices: np.ndarray):
        self.source, self.indices = source, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> dict:
        e = self.source[int(self.indices[k])]
        text = e["text"].decode() if isinstance(e["text"], bytes) else e["text"]
        return {"audio": np.asarray(e["audio"], np.int16), "labels": encode(text)}


@register
class LibrispeechTask(CtcTask):
    name = "librispeech"
    rate = RATE
    alphabet = ALPHABET
    word_separator = _LABEL[" "]

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {"name": "librispeech", "dataset": "librispeech",
                     "train_split": "train_clean100", "validation_split": "dev_clean",
                     "test_split": "test_clean",
                     "max_seconds": 17.0,      # longer training utterances are left out
                     "beam_size": 1,
                     "bucket_samples": 16000,  # pad batches to whole seconds
                     **front_end_fields(mel_bins=80, time_masks=2, time_width=40,
                                        freq_width=27),
                     **ctc_model_fields(conv_layers=2, conv_channels=256)},
            "model": recurrent_model_config(hidden=512, num_layers=5, dropout=0.3,
                                            bidirectional=True),
        })

    @staticmethod
    def validate(config):
        t = config.task
        if t.dataset != "librispeech":
            raise ValueError(f"config.task.dataset must be 'librispeech', got {t.dataset!r}")
        for f in ("train_split", "validation_split", "test_split"):
            if t[f] not in SPLITS:
                raise ValueError(f"config.task.{f} must be one of {SPLITS}, got {t[f]!r}")
        if t.max_seconds <= 0:
            raise ValueError(f"config.task.max_seconds must be > 0, got {t.max_seconds}")
        CtcTask.validate_ctc(config)

    def __init__(self, config):
        super().__init__(config)
        self._eval: dict[str, list[dict]] = {}

    def _source(self, split: str):
        from grux.data import datasets
        return datasets.prepare("librispeech", **data_dirs(self.config)).as_data_source(split)

    def examples(self, split):
        if split not in self._eval:
            name = self.config.task[f"{split}_split"]
            source = self._source(name)
            self._eval[split] = list(Utterances(source, np.arange(len(source))))
        return self._eval[split]

    def train_stream(self, batch_size, process_index, process_count):
        t = self.config.task
        source = self._source(t.train_split)
        # one pass for the lengths (the ArrayRecord files hold no separate length column)
        lengths = np.array([len(source[i]["audio"]) for i in range(len(source))])
        keep = np.flatnonzero(lengths <= t.max_seconds * RATE)
        if not len(keep):
            raise ValueError(f"config.task.max_seconds={t.max_seconds} leaves no training "
                             f"utterance of {t.train_split}")
        return length_bucketed_stream(Utterances(source, keep), None, batch_size, self.pad,
                                      self.config.seed, process_index, process_count,
                                      chunk_batches=t.chunk_batches, lengths=lengths[keep])

    def report(self, results):
        return ctc_report(self, results, "character")
