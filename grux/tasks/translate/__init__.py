"""Neural machine translation on Multi30k (Elliott et al. 2016), RNNsearch-style
(Bahdanau, Cho & Bengio 2014): bidirectional GRU encoder, GRU decoder with additive attention
and input feeding (:mod:`grux.tasks.translate.model`), trained with teacher forcing.

Data (:mod:`grux.tasks.translate.data`): the ``task.source`` → ``task.target`` sides of
Multi30k (``en``, ``de``, ``fr``), cut into subwords by one SentencePiece model of
``task.vocab_size`` pieces trained on the training split's two sides (the first
``task.tokenizer_sentences`` pairs; 0 = all). The model is saved in the workdir as
``spm.model`` with the checkpoints, so decoding needs nothing else. Training pairs longer
than ``task.max_length`` subwords (with ``eos``) on either side are dropped; batches hold
sentences of similar length (sorted within chunks of a seeded per-epoch shuffle) padded to a
multiple of ``task.bucket``. Evaluation streams: ``validation`` and ``test``
(``test_2016_flickr``), all pairs.

Metrics (per target token, ``eos`` included, padding excluded): ``loss`` = mean negative
log-likelihood in nats, ``perplexity`` = ``exp(loss)``, ``accuracy`` = arg-max accuracy under
teacher forcing; and ``bleu``, sacreBLEU of beam-search translations, from a host-side
evaluator (:class:`grux.tasks.translate.decoding.BleuEvaluator`) that the trainer runs after
the evaluation pass (``eval.decode_every`` / ``eval.decode_examples`` set its cost), so
``eval.metric="validation/bleu"`` selects checkpoints by BLEU. ``grux-translate --workdir W
--bleu`` (:mod:`grux.infer.translate`) scores all four test sets of a trained run.
"""
from __future__ import annotations

import math
import os

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from grux.data.paths import data_dirs
from grux.data.stream import BatchStream
from grux.tasks.base import Task, register, weighted
from grux.tasks.common import recurrent_model_config, validate_recurrent_model
from grux.tasks.translate.data import Tokenizer, epoch_batches, pad_pairs, train_tokenizer
from grux.tasks.translate.model import RNNSearch

LANGUAGES = ("en", "de", "fr")
TOKENIZER_FILE = "spm.model"
EVAL_SPLITS = {"validation": "validation", "test": "test_2016_flickr"}
TEST_SETS = ("test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr")


@register
class TranslationTask(Task):
    name = "translate"
    unit = "tok"

    @staticmethod
    def default_config() -> ml_collections.ConfigDict:
        return ml_collections.ConfigDict({
            "task": {"name": "translate", "dataset": "multi30k", "source": "en",
                     "target": "de",
                     "vocab_size": 8000,          # joint SentencePiece vocabulary
                     "tokenizer_sentences": 0,    # train it on the first n pairs; 0 = all
                     "max_length": 64,            # drop longer training pairs (subwords+eos)
                     "bucket": 8,                 # pad batch lengths to a multiple of this
                     "beam_size": 5,              # grux-translate defaults
                     "length_penalty": 0.6},      # GNMT alpha; 0 = raw log-probability
            "model": recurrent_model_config(
                formulation="cho", hidden=256, embed=256, decoder_hidden=256, attention=256,
                deep_output=256),
        })

    @staticmethod
    def validate(config):
        t, m = config.task, config.model
        if t.dataset != "multi30k":
            raise ValueError(f"config.task.dataset must be 'multi30k', got {t.dataset!r}")
        for side in ("source", "target"):
            if t[side] not in LANGUAGES:
                raise ValueError(f"config.task.{side} must be one of {LANGUAGES}, got "
                                 f"{t[side]!r}")
        if t.source == t.target:
            raise ValueError(f"config.task.source and config.task.target are both "
                             f"{t.source!r}")
        if t.vocab_size < 300:
            raise ValueError(f"config.task.vocab_size must be >= 300 (256 byte pieces + "
                             f"specials + characters), got {t.vocab_size}")
        for f in ("max_length", "bucket", "beam_size"):
            if t[f] < 1:
                raise ValueError(f"config.task.{f} must be >= 1, got {t[f]}")
        if t.tokenizer_sentences < 0 or t.length_penalty < 0:
            raise ValueError("config.task.tokenizer_sentences and config.task.length_penalty "
                             "must be >= 0")
        validate_recurrent_model(m)
        if m.cell != "gru":
            raise ValueError(f"config.model.cell must be 'gru' for translation (GRU encoder "
                             f"and decoder), got {m.cell!r}")
        for f in ("embed", "decoder_hidden", "attention", "deep_output"):
            if m[f] < 1:
                raise ValueError(f"config.model.{f} must be >= 1, got {m[f]}")

    def __init__(self, config):
        super().__init__(config)
        self._pairs: dict[str, list[dict]] = {}
        self._ids: dict[str, tuple[list, list]] = {}
        self._tokenizer: Tokenizer | None = None

    # ------------------------------------------------------------------ data
    def pairs(self, split: str) -> list[dict[str, str]]:
        """Raw aligned sentences of a Multi30k split (``train``, ``validation``, ``test``,
        ``test_2016_flickr``, ...)."""
        if split not in self._pairs:
            from grux.data import datasets  # TFDS is imported on first data access
            self._pairs[split] = datasets.parallel_text(
                self.config.task.dataset, split,
                **data_dirs(self.config))
        return self._pairs[split]

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            t = self.config.task
            train = self.pairs("train")
            if t.tokenizer_sentences:
                train = train[:t.tokenizer_sentences]
            text = [p[t.source] for p in train] + [p[t.target] for p in train]
            self._set_tokenizer(train_tokenizer(text, t.vocab_size))
        return self._tokenizer

    def _set_tokenizer(self, proto: bytes, origin: str = "") -> None:
        tok = Tokenizer(proto)
        if tok.vocab_size != self.config.task.vocab_size:
            raise ValueError(f"{origin or 'tokenizer'} has {tok.vocab_size} pieces but "
                             f"config.task.vocab_size is {self.config.task.vocab_size}")
        self._tokenizer = tok

    def save_artifacts(self, workdir):
        path = os.path.join(workdir, TOKENIZER_FILE)
        if os.path.isfile(path):  # a resumed run keeps the tokenizer it started with
            self.load_artifacts(workdir)
            return
        with open(path, "wb") as f:
            f.write(self.tokenizer.proto)

    def load_artifacts(self, workdir):
        path = os.path.join(workdir, TOKENIZER_FILE)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: the SentencePiece model of this run")
        with open(path, "rb") as f:
            self._set_tokenizer(f.read(), path)

    def ids(self, split: str) -> tuple[list[list[int]], list[list[int]]]:
        """Subword ids ``(source, target)`` of every pair of a split (no ``bos``/``eos``)."""
        if split not in self._ids:
            t, pairs = self.config.task, self.pairs(split)
            self._ids[split] = (self.tokenizer.encode([p[t.source] for p in pairs]),
                                self.tokenizer.encode([p[t.target] for p in pairs]))
        return self._ids[split]

    def train_stream(self, batch_size, process_index, process_count):
        src, tgt = self.ids("train")
        limit = self.config.task.max_length
        keep = [i for i in range(len(src)) if max(len(src[i]), len(tgt[i])) + 1 <= limit]
        src, tgt = [src[i] for i in keep], [tgt[i] for i in keep]
        lengths = np.asarray([max(len(s), len(t)) for s, t in zip(src, tgt)])
        seed, bucket = self.config.seed, self.config.task.bucket
        per_epoch = len(src) // batch_size
        cache: dict[int, list] = {}

        def global_batch(i):
            epoch, j = divmod(i, per_epoch)
            if epoch not in cache:
                cache.clear()
                cache[epoch] = epoch_batches(lengths, batch_size, seed, epoch)
            rows = cache[epoch][j]
            return pad_pairs([src[k] for k in rows], [tgt[k] for k in rows], batch_size,
                             bucket)

        return BatchStream(global_batch, batch_size, None, process_index=process_index,
                           process_count=process_count)

    def eval_streams(self, batch_size, process_index, process_count):
        streams = {}
        for name, split in EVAL_SPLITS.items():
            src, tgt = self.ids(split)
            order = sorted(range(len(src)), key=lambda i: max(len(src[i]), len(tgt[i])))
            n = -(-len(order) // batch_size)

            def global_batch(i, src=src, tgt=tgt, order=order):
                rows = order[i * batch_size:(i + 1) * batch_size]
                return pad_pairs([src[k] for k in rows], [tgt[k] for k in rows], batch_size,
                                 self.config.task.bucket)

            streams[name] = BatchStream(global_batch, batch_size, n,
                                        process_index=process_index,
                                        process_count=process_count)
        return streams

    def evaluators(self):
        from grux.tasks.translate.decoding import BleuEvaluator
        return [BleuEvaluator(self)]

    # ------------------------------------------------------------------ model
    def build_model(self, rngs):
        return RNNSearch(self.config.task.vocab_size, self.config.model, rngs)

    def loss(self, model, batch, *, rng, carry, train):
        logits, _ = model(batch["src"], batch["src_mask"], batch["tgt_in"],
                          rngs=rng if train else None)
        logits = logits.astype(jnp.float32)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, batch["tgt_out"])
        correct = jnp.argmax(logits, -1) == batch["tgt_out"]
        mask = batch["tgt_mask"]
        return {"loss": weighted(nll, mask), "accuracy": weighted(correct, mask)}, carry

    def summarize(self, metrics):
        out = dict(metrics)
        if "loss" in out:
            out["perplexity"] = math.exp(min(out["loss"], 700.0))
        return out

    def report(self, results):
        test = results.get("test")
        if not test:
            return []
        t = self.config.task
        bleu = (f"BLEU {test['bleu']:.2f} (beam {t.beam_size}, alpha {t.length_penalty}); "
                if "bleu" in test else "")
        return [f"test_2016_flickr {t.source}->{t.target}: {bleu}perplexity "
                f"{test['perplexity']:.2f} per subword (teacher forcing); every test set: "
                "grux-translate --workdir <workdir> --bleu"]
