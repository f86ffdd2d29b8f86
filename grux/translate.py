"""Translate with a trained ``translate`` run: ``grux-translate --workdir runs/multi30k``.

Reads sentences (one per line) from ``--input`` or stdin and prints their translations;
``--bleu`` scores the Multi30k test sets with sacreBLEU instead (detokenised output against
the raw references, signature printed, results written to ``<workdir>/bleu.json``);
``--plot-attention out.png`` draws the attention weights of one sentence's translation.
Everything needed (config, ``spm.model``, checkpoint) is read from the workdir.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from grux.decode import beam_search, greedy_search, strip, tile_beams
from grux.tasks.translate_data import BOS, EOS, PAD, Tokenizer, pad_pairs


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
        model = nnx.view(model, deterministic=True, raise_if_not_found=False)
        self.graphdef, self.state = nnx.split(model)
        self.tokenizer, self.batch_size, self.bucket = tokenizer, batch_size, bucket
        self.max_len = max_len
        self._fns: dict = {}

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="grux-translate", description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="training workdir of a 'translate' run")
    p.add_argument("--input", default="-", help="file of sentences, one per line (- = stdin)")
    p.add_argument("--method", choices=("beam", "greedy"), default="beam")
    p.add_argument("--beam", type=int, default=0, help="beam size (0: config.task.beam_size)")
    p.add_argument("--alpha", type=float, default=-1.0,
                   help="length normalisation alpha (<0: config.task.length_penalty)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    p.add_argument("--bleu", action="store_true", help="score the Multi30k test sets")
    p.add_argument("--splits", default="", help="comma-separated test splits for --bleu")
    p.add_argument("--limit", type=int, default=0, help="--bleu: first n sentences only")
    p.add_argument("--plot-attention", dest="plot", default="",
                   help="write the attention heat map of one sentence's translation here")
    p.add_argument("--sentence", default="", help="the sentence for --plot-attention "
                   "(default: the first input line)")
    a = p.parse_args(argv)
    if a.beam < 0 or a.batch_size < 1 or a.limit < 0:
        p.error("--beam and --limit must be >= 0, --batch_size >= 1")

    from grux.train.errors import CheckpointRestoreError
    from grux.train.inference import load_trained
    try:
        task, model, step = load_trained(a.workdir, a.checkpoint, task_name="translate")
    except (FileNotFoundError, ValueError, CheckpointRestoreError) as e:
        print(f"grux-translate: error: {e}", file=sys.stderr)
        return 1
    cfg = task.config.task
    kw = {"method": a.method, "beam": a.beam or cfg.beam_size,
          "alpha": cfg.length_penalty if a.alpha < 0 else a.alpha}
    translator = Translator(model, task.tokenizer, batch_size=a.batch_size, bucket=cfg.bucket)

    if a.bleu:
        splits = [s for s in a.splits.split(",") if s]
        results = evaluate_bleu(task, translator, splits, limit=a.limit, **kw)
        decoding = f"{a.method}" + (f", beam {kw['beam']}, alpha {kw['alpha']}"
                                    if a.method == "beam" else "")
        for split, r in results.items():
            print(f"{split} ({r['sentences']} sentences, {cfg.source}->{cfg.target}, "
                  f"{decoding}, step {step}): {r['result']}\n  signature: {r['signature']}")
        with open(os.path.join(a.workdir, "bleu.json"), "w") as f:
            json.dump({"step": step, "decoding": decoding, "results": results}, f, indent=2)
        return 0

    if a.plot and a.sentence:
        lines = [a.sentence]
    else:
        stream = sys.stdin if a.input == "-" else open(a.input, encoding="utf-8")
        with stream:
            lines = [line.rstrip("\n") for line in stream]
    if not lines:
        print("grux-translate: error: no input sentences", file=sys.stderr)
        return 1
    if a.plot:
        tok = task.tokenizer
        src = tok.encode([lines[0]])[0]
        tgt = translator.translate_ids([src], **kw)[0]
        weights = translator.attention(src, tgt)
        hyp = tok.decode([tgt])[0]
        src_pieces = [tok.sp.id_to_piece(i) for i in src] + ["</s>"]
        tgt_pieces = [tok.sp.id_to_piece(i) for i in tgt] + ["</s>"]
        plot_attention(weights, src_pieces, tgt_pieces, a.plot, f"{lines[0]}\n→ {hyp}")
        print(hyp)
        print(f"attention heat map written to {a.plot}", file=sys.stderr)
        return 0
    for hyp in translator.translate(lines, **kw):
        print(hyp)
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
