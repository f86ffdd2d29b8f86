"""Decoding and scoring a trained translation model: batched jit greedy / beam search
(:class:`Translator`), sacreBLEU (:func:`corpus_bleu`, :func:`evaluate_bleu`), the BLEU
evaluator the trainer runs during training (:class:`BleuEvaluator`) and attention plots."""
from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from grux.decode import beam_search, greedy_search, strip, tile_beams
from grux.tasks.base import Evaluator
from grux.tasks.translate.data import BOS, EOS, PAD, Tokenizer, pad_pairs


def corpus_bleu(hypotheses: list[str], references: list[str]) -> tuple[float, str, str]:
    """sacreBLEU corpus BLEU of detokenised ``hypotheses`` against one reference each:
    ``(score, full result line, signature)`` (default ``13a`` tokenisation, mixed case)."""
    from sacrebleu.metrics import BLEU
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu = BLEU()
    result = bleu.corpus_score(hypotheses, [references])
    return result.score, str(result), str(bleu.get_signature())


class Translator:
    """Batched, jit-compiled translation with an :class:`RNNSearch` model and its tokenizer.

    ``method``: ``"greedy"`` or ``"beam"`` (``beam`` hypotheses, GNMT length normalisation
    ``alpha``). Sentences are sorted by length and decoded ``batch_size`` at a time; each
    batch's source is padded to a multiple of ``bucket`` and decoding runs for at most
    ``max_len`` steps (0: ``2·S + 10``, ``S`` the padded source length), so few shapes are
    compiled."""

    def __init__(self, model, tokenizer: Tokenizer, *, batch_size: int = 64, bucket: int = 8,
                 max_len: int = 0):
        self.graphdef, self.state = nnx.split(
            nnx.view(model, deterministic=True, raise_if_not_found=False))
        self.tokenizer, self.batch_size, self.bucket = tokenizer, batch_size, bucket
        self.max_len = max_len
        self._fns: dict = {}

    def use(self, model) -> None:
        """Decode with ``model``'s parameters from now on (same architecture: the compiled
        decoders are reused, e.g. at every evaluation during training)."""
        self.state = nnx.split(nnx.view(model, deterministic=True,
                                        raise_if_not_found=False))[1]

    def _decoder(self, method: str, beam: int, alpha: float, max_len: int):
        key = (method, beam, alpha, max_len)
        if key not in self._fns:
            graphdef = self.graphdef

            def run(state, src, mask):
                m = nnx.merge(graphdef, state)
                enc = m.encode(src, mask)
                b = src.shape[0]
                if method == "greedy":
                    step = lambda s, prev: m.decode_step(enc, s, prev)[:2]
                    return greedy_search(step, enc["state"], b, bos=BOS, eos=EOS, pad=PAD,
                                         max_len=max_len)[0]
                tiled = tile_beams(enc, beam)
                step = lambda s, prev: m.decode_step(tiled, s, prev)[:2]
                return beam_search(step, tiled["state"], b, beam, bos=BOS, eos=EOS, pad=PAD,
                                   max_len=max_len, alpha=alpha)[0]

            self._fns[key] = jax.jit(run)
        return self._fns[key]

    def translate_ids(self, src: list[list[int]], method: str = "beam", beam: int = 5,
                      alpha: float = 0.6) -> list[list[int]]:
        """Target ids (no ``eos``) for each source id list, in the input order."""
        if method not in ("greedy", "beam"):
            raise ValueError(f"method must be 'greedy' or 'beam', got {method!r}")
        if beam < 1:
            raise ValueError(f"beam size must be >= 1, got {beam}")
        order = sorted(range(len(src)), key=lambda i: len(src[i]))
        out: list[list[int]] = [[] for _ in src]
        for lo in range(0, len(order), self.batch_size):
            rows = order[lo:lo + self.batch_size]
            batch = pad_pairs([src[i] for i in rows], None, self.batch_size, self.bucket)
            max_len = self.max_len or 2 * batch["src"].shape[1] + 10
            fn = self._decoder(method, beam, float(alpha), max_len)
            tokens = fn(self.state, jnp.asarray(batch["src"]), jnp.asarray(batch["src_mask"]))
            for i, ids in zip(rows, strip(tokens, EOS, PAD)):
                out[i] = ids
        return out

    def translate(self, sentences: list[str], **kw) -> list[str]:
        """Detokenised translations of raw ``sentences``."""
        return self.tokenizer.decode(self.translate_ids(self.tokenizer.encode(sentences), **kw))

    def attention(self, src: list[int], tgt: list[int]) -> np.ndarray:
        """``(len(tgt)+1, len(src)+1)`` attention weights of the decoder producing
        ``tgt + [eos]`` from ``src + [eos]`` (teacher forcing reproduces decoding exactly)."""
        batch = pad_pairs([src], [tgt], 1, 1)
        m = nnx.merge(self.graphdef, self.state)
        _, alpha = m(jnp.asarray(batch["src"]), jnp.asarray(batch["src_mask"]),
                     jnp.asarray(batch["tgt_in"]))
        return np.asarray(alpha[0, :len(tgt) + 1, :len(src) + 1])


def plot_attention(weights: np.ndarray, src_pieces: list[str], tgt_pieces: list[str],
                   path: str, title: str = "") -> None:
    """Heat map of ``weights (target, source)`` with the subword pieces as tick labels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if weights.shape != (len(tgt_pieces), len(src_pieces)):
        raise ValueError(f"weights {weights.shape} do not match {len(tgt_pieces)} target and "
                         f"{len(src_pieces)} source pieces")
    fig, ax = plt.subplots(figsize=(0.4 * len(src_pieces) + 2, 0.4 * len(tgt_pieces) + 1.5))
    ax.imshow(weights, cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(src_pieces)), src_pieces, rotation=90)
    ax.set_yticks(range(len(tgt_pieces)), tgt_pieces)
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate_bleu(task, translator: Translator, splits=(), limit: int = 0, **kw) -> dict:
    """sacreBLEU of each Multi30k test split that exists (all of ``TEST_SETS`` when
    ``splits`` is empty; the first ``limit`` sentences when ``limit > 0``);
    ``{split: {"bleu", "result", "signature", "sentences"}}``."""
    from grux.tasks.translate import TEST_SETS
    results = {}
    src_lang, tgt_lang = task.config.task.source, task.config.task.target
    for split in splits or TEST_SETS:
        try:
            pairs = task.pairs(split)[:limit or None]
        except ValueError as e:
            print(f"grux-translate: skipping {split}: {e}", file=sys.stderr)
            continue
        hyps = translator.translate([p[src_lang] for p in pairs], **kw)
        score, line, sig = corpus_bleu(hyps, [p[tgt_lang] for p in pairs])
        results[split] = {"bleu": score, "result": line, "signature": sig,
                          "sentences": len(pairs)}
    return results


class BleuEvaluator(Evaluator):
    """sacreBLEU of the ``validation`` and ``test`` (test_2016_flickr) splits during
    training: beam search with ``task.beam_size`` / ``task.length_penalty`` (as
    ``grux-translate`` decodes), detokenised, against the raw references."""

    metrics = ("bleu",)

    def __init__(self, task, batch_size: int = 64):
        self.task, self.batch_size = task, batch_size
        self._translator: Translator | None = None

    def splits(self):
        from grux.tasks.translate import EVAL_SPLITS
        return tuple(EVAL_SPLITS)

    def _pairs(self, split):
        from grux.tasks.translate import EVAL_SPLITS
        return self.task.pairs(EVAL_SPLITS[split])

    def num_examples(self, split):
        return len(self._pairs(split))

    def predict(self, model, split, indices):
        from grux.tasks.translate import EVAL_SPLITS
        if self._translator is None:
            self._translator = Translator(model, self.task.tokenizer,
                                          batch_size=self.batch_size,
                                          bucket=self.task.config.task.bucket)
        else:
            self._translator.use(model)
        t = self.task.config.task
        src = self.task.ids(EVAL_SPLITS[split])[0]
        return self._translator.translate_ids([src[i] for i in indices], method="beam",
                                              beam=t.beam_size, alpha=t.length_penalty)

    def score(self, split, predictions):
        refs = [p[self.task.config.task.target] for p in self._pairs(split)]
        hyps = self.task.tokenizer.decode(predictions)
        return {"bleu": corpus_bleu(hyps, refs[:len(hyps)])[0]}
