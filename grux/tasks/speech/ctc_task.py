"""The sequence-recognition task family: a CTC acoustic model (``acoustic.CtcAcousticModel``)
trained on ``−log p(labels | audio)`` per utterance, evaluated by decoding.

A subclass names its sample ``rate``, its ``alphabet`` (label ``i + 1`` is
``alphabet[i]``; 0 is the CTC blank), the label that separates words (``word_separator``,
``None`` when every label is a word, as for digit strings) and provides its examples
(``{"audio": int16 (N,), "labels": [int, ...]}``) and its training stream.

Evaluation: the jit-compiled pass scores the CTC loss of the ``validation`` and ``test``
splits; :class:`CtcEvaluator` decodes them (greedy when ``task.beam_size`` is 1, prefix
beam search otherwise) and scores ``token_error_rate`` (digit or character),
``word_error_rate`` and ``sentence_error_rate`` with a tested edit distance, so
``eval.metric`` can select checkpoints on an error rate.
"""
from __future__ import annotations

import abc
from typing import ClassVar

import ml_collections
import numpy as np

from grux.tasks.base import Evaluator, Task, length_sorted_stream, weighted
from grux.tasks.common import validate_recurrent_model
from grux.tasks.speech import ctc
from grux.tasks.speech.acoustic import (CtcAcousticModel, pad_audio, pad_labels,
                                        validate_front_end)
from grux.tasks.speech.error_rates import error_rates

EVAL_SPLITS = ("validation", "test")


def pad_utterances(examples: list[dict], rows: int, bucket: int) -> dict[str, np.ndarray]:
    """Padded ``audio``/``lengths``/``weight`` and ``labels``/``label_lengths``."""
    out = pad_audio([e["audio"] for e in examples], rows, bucket)
    out.update(pad_labels([e["labels"] for e in examples], rows))
    return out


class CtcTask(Task):
    unit = "utt"
    rate: ClassVar[int]
    alphabet: ClassVar[tuple[str, ...]]
    word_separator: ClassVar[int | None] = None

    @staticmethod
    def validate_ctc(config: ml_collections.ConfigDict) -> None:
        t = config.task
        validate_front_end(t)
        for f in ("bucket_samples", "beam_size"):
            if t[f] < 1:
                raise ValueError(f"config.task.{f} must be >= 1, got {t[f]}")
        if not 0 <= t.conv_layers <= 4:
            raise ValueError(f"config.task.conv_layers must be in 0..4, got {t.conv_layers}")
        if t.conv_layers and t.conv_channels < 1:
            raise ValueError(f"config.task.conv_channels must be >= 1, got {t.conv_channels}")
        validate_recurrent_model(config.model)

    @abc.abstractmethod
    def examples(self, split: str) -> list[dict]:
        """The evaluation examples of ``split`` (``validation``/``test``), in a fixed order."""

    def build_model(self, rngs):
        return CtcAcousticModel(self.config, self.rate, len(self.alphabet), rngs)

    def pad(self, examples: list[dict], rows: int) -> dict[str, np.ndarray]:
        return pad_utterances(examples, rows, self.config.task.bucket_samples)

    def eval_streams(self, batch_size, process_index, process_count):
        return {split: length_sorted_stream(self.examples(split), lambda e: len(e["audio"]),
                                            batch_size, self.pad, process_index,
                                            process_count)
                for split in EVAL_SPLITS}

    def loss(self, model, batch, *, rng, carry, train):
        logits, mask = model(batch["audio"], batch["lengths"], rngs=rng if train else None)
        nll = ctc.ctc_loss(logits, mask, batch["labels"], batch["label_lengths"])
        w = batch["weight"]
        frames = mask.sum(1)
        return {"loss": weighted(nll, w),
                # utterances too short for their labels (CTC needs a frame per label and
                # one between repeats): nonzero means the subsampling is too aggressive
                "too_short": weighted(frames < batch["label_lengths"], w)}, carry

    def evaluators(self):
        return [CtcEvaluator(self)]

    # decoding ------------------------------------------------------------------------
    def decode_log_probs(self, log_probs: list[np.ndarray]) -> list[list[int]]:
        beam = self.config.task.beam_size
        if beam == 1:
            return [ctc.greedy_decode(lp, len(lp)) for lp in log_probs]
        return [ctc.prefix_beam_search(lp, len(lp), beam)[0][0] for lp in log_probs]

    def text(self, labels: list[int]) -> str:
        """A label sequence as text: characters joined, or digits separated by spaces."""
        sep = "" if self.word_separator is not None else " "
        return sep.join(self.alphabet[i - 1] for i in labels)

    def transcribe(self, recognizer, audio: list[np.ndarray]) -> list[str]:
        return [self.text(y) for y in self.decode_log_probs(recognizer.log_probs(audio))]


class CtcEvaluator(Evaluator):
    """Decodes the ``validation`` and ``test`` utterances and scores error rates."""

    metrics = ("token_error_rate", "word_error_rate", "sentence_error_rate")

    def __init__(self, task: CtcTask, batch_size: int = 32):
        self.task, self.batch_size = task, batch_size
        self._recognizer = None

    def splits(self):
        return EVAL_SPLITS

    def num_examples(self, split):
        return len(self.task.examples(split))

    def predict(self, model, split, indices):
        from grux.tasks.speech.recognizer import Recognizer
        if self._recognizer is None:
            self._recognizer = Recognizer(model, batch_size=self.batch_size,
                                          bucket=self.task.config.task.bucket_samples)
        else:
            self._recognizer.use(model)
        examples = self.task.examples(split)
        lp = self._recognizer.log_probs([examples[i]["audio"] for i in indices])
        return self.task.decode_log_probs(lp)

    def score(self, split, predictions):
        refs = [e["labels"] for e in self.task.examples(split)[:len(predictions)]]
        return error_rates(refs, predictions, separator=self.task.word_separator)


def ctc_report(task: CtcTask, results: dict, what: str) -> list[str]:
    test = results.get("test", {})
    if "token_error_rate" not in test:
        return []
    m = task.config.model
    return [f"test {what} error rate {100 * test['token_error_rate']:.2f} %, word "
            f"{100 * test['word_error_rate']:.2f} %, sentence "
            f"{100 * test['sentence_error_rate']:.2f} % ({m.cell} {m.num_layers}x{m.hidden}, "
            f"beam {task.config.task.beam_size})"]


def as_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)

