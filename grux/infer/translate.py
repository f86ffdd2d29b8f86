"""Translate with a trained ``translate`` run: ``grux-translate --workdir runs/multi30k``.

Reads sentences (one per line) from ``--input`` (default stdin) and writes their
translations to ``--output`` (default stdout); ``--bleu`` scores the Multi30k test sets with
sacreBLEU instead (detokenised output against the raw references, signature printed; with
``--output FILE`` the results are also written there as JSON); ``--plot-attention out.png``
draws the attention weights of one sentence's translation. Everything needed (config,
``spm.model``, checkpoint) is read from the workdir, which is not changed.
"""
from __future__ import annotations

import argparse
import json
import sys

from grux.infer.loader import (add_io_flags, add_workdir_flags, fail, load_or_exit, output,
                               read_lines)

PROG = "grux-translate"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_workdir_flags(p, "translate")
    add_io_flags(p, "file of sentences, one per line")
    p.add_argument("--method", choices=("beam", "greedy"), default="beam")
    p.add_argument("--beam", type=int, default=0, help="beam size (0: config.task.beam_size)")
    p.add_argument("--alpha", type=float, default=-1.0,
                   help="length normalisation alpha (<0: config.task.length_penalty)")
    p.add_argument("--batch_size", type=int, default=64)
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

    from grux.tasks.translate.decoding import Translator, evaluate_bleu, plot_attention
    task, model, step = load_or_exit(PROG, a, "translate")
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
        if a.output != "-":
            with output(PROG, a.output) as out:
                json.dump({"step": step, "decoding": decoding, "results": results}, out,
                          indent=2)
        return 0

    lines = [a.sentence] if a.plot and a.sentence else read_lines(PROG, a.input)
    if not lines:
        fail(PROG, "no input sentences")
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
    with output(PROG, a.output) as out:
        for hyp in translator.translate(lines, **kw):
            print(hyp, file=out)
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
