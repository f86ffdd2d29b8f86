"""NLL per time step of a trained music model on every split, training split included.

    python scripts/music_split_nll.py --workdir runs/nottingham-gru [--checkpoint best]

Training only logs the training loss as a running mean in training mode (with weight noise
and dropout when configured) while the parameters move. This scores the chosen checkpoint
with the evaluation code path (no noise, no dropout, whole pieces) on train, validation and
test alike, so the training fit can be compared with a paper's test number: a model whose
*training* NLL is above a published *test* NLL cannot reach it by generalising better.
"""
from __future__ import annotations

import argparse
import sys

import jax
from flax import nnx

from grux.infer.loader import checkpoint_arg, fail, load_trained
from grux.tasks.base import length_sorted_stream
from grux.tasks.music import pad_batch

SPLITS = ("train", "validation", "test")


def batch_scorer(task, model):
    """``score(batch) -> {metric: (sum, weight)}`` (``loss``: NLL over all frames,
    ``nll_after_first_frame``: without each piece's first frame), jit-compiled once for all
    splits (the bucketed batch shapes recur across them)."""
    graphdef, params = nnx.split(model)

    @jax.jit
    def batch_sums(params, batch):
        metrics, _ = task.loss(nnx.merge(graphdef, params), batch, rng=None, carry=None,
                               train=False)
        return metrics

    return lambda batch: batch_sums(params, batch)


def split_nll(task, score, split: str, batch_size: int) -> dict[str, tuple[float, int]]:
    """``{metric: (NLL per time step, time steps)}`` on ``split``: each summed NLL over all
    pieces divided by the number of frames it covers (the evaluation's definition)."""
    sums: dict[str, list[float]] = {}
    for batch in length_sorted_stream(task.rolls(split), len, batch_size, pad_batch, 0, 1):
        for name, (t, c) in score(batch).items():
            acc = sums.setdefault(name, [0.0, 0.0])
            acc[0], acc[1] = acc[0] + float(t), acc[1] + float(c)
    return {name: (t / c, int(c)) for name, (t, c) in sums.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="music_split_nll", description=__doc__.split("\n")[0])
    p.add_argument("--workdir", required=True, help="a workdir of a music training run")
    p.add_argument("--checkpoint", default="best", type=checkpoint_arg,
                   help="'best' (default), 'latest' or a step number")
    p.add_argument("--batch_size", type=int, default=32)
    args = p.parse_args(argv)
    try:
        task, model, step = load_trained(args.workdir, args.checkpoint, task_name="music")
    except (FileNotFoundError, ValueError) as e:
        fail("music_split_nll", str(e))
    print(f"{args.workdir} step {step} ({task.config.task.dataset}, "
          f"{task.config.model.cell} {task.config.model.hidden}):")
    score = batch_scorer(task, model)
    for split in SPLITS:
        nll = split_nll(task, score, split, args.batch_size)
        (all_frames, frames), (later, later_frames) = nll["loss"], nll["nll_after_first_frame"]
        print(f"  {split:>10}: NLL {all_frames:.4f} nats per time step over {frames:,} frames; "
              f"{later:.4f} without each piece's first frame ({later_frames:,}, Bai et al. "
              "2018's protocol)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
