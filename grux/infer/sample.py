"""Sample text from a trained language model: ``grux-sample --workdir runs/ptb-char``.

Loads the workdir's config, vocabulary (``vocab.json``) and best (or latest) checkpoint, reads
the prompt, and prints the continuation drawn with the given temperature / top-k.
"""
from __future__ import annotations

import argparse
import sys

import jax
import numpy as np

from grux.infer.loader import add_io_flags, add_workdir_flags, fail, load_or_exit, output

PROG = "grux-sample"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    add_workdir_flags(p, "lm")
    p.add_argument("--prompt", default="", help="text to continue (default: start of a line)")
    p.add_argument("--length", type=int, default=200, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    p.add_argument("--top_k", type=int, default=0, help="sample among the k likeliest; 0 = all")
    p.add_argument("--seed", type=int, default=0)
    add_io_flags(p)
    a = p.parse_args(argv)
    if a.length < 1 or a.temperature < 0 or a.top_k < 0:
        p.error("--length must be >= 1, --temperature and --top_k >= 0")

    from grux.tasks.lm import detokenize, prompt_tokens, sample_tokens
    task, model, step = load_or_exit(PROG, a, "lm")
    vocab = task.vocab  # read from the workdir's vocab.json
    index = {t: i for i, t in enumerate(vocab)}
    dataset = task.config.task.dataset
    prompt = prompt_tokens(dataset, a.prompt)
    unknown = [t for t in prompt if t not in index]
    if unknown:
        fail(PROG, f"prompt tokens not in the vocabulary: {unknown[:5]}")
    ids = sample_tokens(model, np.asarray([index[t] for t in prompt]), a.length,
                        jax.random.PRNGKey(a.seed), temperature=a.temperature, top_k=a.top_k)
    with output(PROG, a.output) as out:
        print(detokenize(dataset, prompt[1:] + [vocab[i] for i in ids]), file=out)
    return 0


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
