"""Translation data: a SentencePiece subword tokenizer trained on the training split, and
padded, length-bucketed batches of sentence pairs.

Ids: ``pad = 0``, ``unk = 1``, ``bos = 2``, ``eos = 3`` in one vocabulary shared by source and
target (one SentencePiece unigram model trained on both sides of the training split, with
byte fall-back so any character round-trips, and no normalisation so ``decode(encode(s))``
gives ``s`` back up to runs of spaces).

A pair ``(x_1..x_S, y_1..y_T)`` becomes ``src = [x_1..x_S, eos]``,
``tgt_in = [bos, y_1..y_T]`` (teacher forcing) and ``tgt_out = [y_1..y_T, eos]``; padding is
``pad`` with mask 0 and is never attended to nor scored.
"""
from __future__ import annotations

import io

import numpy as np

from grux.data.stream import seeded_rng

PAD, UNK, BOS, EOS = 0, 1, 2, 3


def train_tokenizer(sentences: list[str], vocab_size: int) -> bytes:
    """A SentencePiece unigram model (serialised) of ``vocab_size`` pieces trained on
    ``sentences``. Single-threaded, so the same sentences give the same model on every
    process."""
    if not sentences:
        raise ValueError("cannot train a tokenizer on no sentences")
    buf = io.BytesIO()
    try:
        import sentencepiece as spm  # imported on use: configs import this package
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=buf, vocab_size=vocab_size,
            model_type="unigram", character_coverage=1.0, byte_fallback=True,
            normalization_rule_name="identity", pad_id=PAD, unk_id=UNK, bos_id=BOS,
            eos_id=EOS, num_threads=1, input_sentence_size=0, minloglevel=2)
    except RuntimeError as e:
        raise ValueError(f"config.task.vocab_size={vocab_size}: SentencePiece could not "
                         f"train a vocabulary of this size ({e})") from e
    return buf.getvalue()


class Tokenizer:
    """Encode text to ids and back with a serialised SentencePiece model."""

    def __init__(self, model_proto: bytes):
        self.proto = model_proto
        import sentencepiece as spm
        self.sp = spm.SentencePieceProcessor(model_proto=model_proto)
        if (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) != (
                PAD, UNK, BOS, EOS):
            raise ValueError("tokenizer model does not use pad/unk/bos/eos = 0/1/2/3")

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.sp.encode(list(texts), out_type=int)

    def pieces(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def decode(self, ids: list[list[int]]) -> list[str]:
        return [self.sp.decode([i for i in row if i > EOS or i == UNK]) for row in ids]


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def pad_pairs(src: list[list[int]], tgt: list[list[int]] | None, rows: int,
              bucket: int) -> dict[str, np.ndarray]:
    """One batch of ``rows`` rows: ``src``, ``src_mask`` ``(rows, L)``; with targets also
    ``tgt_in``, ``tgt_out``, ``tgt_mask`` ``(rows, L)``. ``L`` = the longest sequence (with its
    ``eos``/``bos``) rounded up to a multiple of ``bucket``, the same for source and target so
    that few shapes are compiled. Missing rows (``len(src) < rows``) get the one-token
    source ``[eos]`` and mask 0 on the target (no weight)."""
    if len(src) > rows:
        raise ValueError(f"{len(src)} sentences do not fit a batch of {rows} rows")
    longest = max([len(s) + 1 for s in src] + [len(t) + 1 for t in (tgt or [])] + [1])
    length = round_up(longest, bucket)
    out = {"src": np.full((rows, length), PAD, np.int32),
           "src_mask": np.zeros((rows, length), np.float32)}
    for i in range(rows):
        s = src[i] + [EOS] if i < len(src) else [EOS]
        out["src"][i, :len(s)] = s
        out["src_mask"][i, :len(s)] = 1.0
    if tgt is not None:
        out["tgt_in"] = np.full((rows, length), PAD, np.int32)
        out["tgt_out"] = np.full((rows, length), PAD, np.int32)
        out["tgt_mask"] = np.zeros((rows, length), np.float32)
        for i, t in enumerate(tgt):
            out["tgt_in"][i, :len(t) + 1] = [BOS] + t
            out["tgt_out"][i, :len(t) + 1] = t + [EOS]
            out["tgt_mask"][i, :len(t) + 1] = 1.0
    return out


def epoch_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int,
                  chunk: int = 64) -> list[np.ndarray]:
    """The batches (index arrays) of one training epoch: a seeded permutation, cut into
    chunks of ``chunk`` batches, each chunk sorted by length (so a batch holds sentences of
    similar length and little padding) and cut into batches, whose order is shuffled again.
    The last, partial batch is dropped. A pure function of ``(lengths, seed, epoch)``."""
    rng = seeded_rng(seed, 7, epoch)
    order = rng.permutation(len(lengths))
    n = len(order) // batch_size
    if n == 0:
        raise ValueError(f"{len(lengths)} training pairs do not fill one batch of "
                         f"{batch_size}")
    order = order[:n * batch_size]
    span = chunk * batch_size
    batches = []
    for lo in range(0, len(order), span):
        part = order[lo:lo + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
