"""Chung et al. 2014 at the 20k-parameter budget (issue 16, part 1): one change at a time.

    python experiments/chung2014_knobs.py                          # Nottingham GRU, 11 runs
    python experiments/chung2014_knobs.py --datasets musedata --variants base,lr=0.03
    python experiments/chung2014_knobs.py --quick                  # smoke test

Each variant is the table's run (``configs/chung2014_music.py:<dataset>,<cell>``: RMSProp
with decay 0.9 and eps 1e-8, the learning rate the table chose, weight noise std 0.075,
gradient norm clipped to 1, early stopping with patience 10) with ONE setting changed (or two
that belong together: momentum with a tenth of the learning rate), so its
effect can be read off against ``base`` trained in the same invocation on the same machine:
the learning rates around the table's two, the RMSProp settings (decay of the squared-gradient
average, momentum, an eps large enough to matter: with the gradient norm at the clip, 1, spread
over about 20k parameters, a parameter's squared gradient is 5e-5 on average), the weight-noise
std, and a learning-rate decay (halved every 10 epochs from epoch 20). A setting whose loss
turns non-finite is a result, not a failure: its row says "diverged" and gives the best
validation NLL before that (with the test NLL of the same evaluation). Every run has its own
workdir under ``--root`` (``<dataset>-<cell>-<variant>``), so an interrupted search resumes and
finished runs are reused. Outputs in ``--out``: ``chung2014_knobs.md`` (one row per run:
best epoch, epochs run, how it ended, validation and test NLL, the change against ``base``)
and ``chung2014_knobs.json``; rows of earlier invocations are kept.
"""
from __future__ import annotations

import argparse
import functools
import os

from grux.train.writers import read_metrics

import runs  # experiments/runs.py (this script's folder is on sys.path)
from chung2014_music import CELLS, CONFIG, DATASETS, NAMES, PAPER

# name: (the change in words, overrides; "{epoch}" is replaced by the steps in an epoch)
VARIANTS = {
    "base": ("none (the table's settings)", []),
    "lr=0.001": ("learning rate 0.001", ["--config.optimizer.learning_rate=0.001"]),
    "lr=0.03": ("learning rate 0.03", ["--config.optimizer.learning_rate=0.03"]),
    "rho=0.95": ("RMSProp decay 0.95 (table: 0.9)", ["--config.optimizer.rho=0.95"]),
    "rho=0.99": ("RMSProp decay 0.99", ["--config.optimizer.rho=0.99"]),
    "momentum=0.9": ("RMSProp with momentum 0.9 (Graves 2013's form, without centring)",
                     ["--config.optimizer.momentum=0.9"]),
    "momentum=0.9-lr-tenth": ("momentum 0.9 and the learning rate / 10 (the same step size once "
                           "the momentum builds up)",
                           ["--config.optimizer.momentum=0.9", "--config.optimizer."
                            "learning_rate={lr_tenth}"]),
    "eps=1e-4": ("RMSProp eps 1e-4 (table: 1e-8)", ["--config.optimizer.eps=0.0001"]),
    "noise=0": ("no weight noise (table: std 0.075)", ["--config.weight_noise=0"]),
    "noise=0.03": ("weight noise std 0.03", ["--config.weight_noise=0.03"]),
    "decay": ("learning rate halved every 10 epochs from epoch 20",
              ["--config.optimizer.schedule=exponential", "--config.optimizer.decay_rate=0.5",
               "--config.optimizer.decay_every={epoch10}",
               "--config.optimizer.decay_start={epoch20}"]),
}
PAPER_COLUMN = {c: i for i, c in enumerate(CELLS)}


@functools.cache
def table_config(dataset: str, cell: str):
    """The table's config for (dataset, cell), loaded once per search."""
    from grux.train.main import load_config_file
    return load_config_file(f"{CONFIG}:{dataset},{cell}")


def overrides(dataset: str, cell: str, variant: str) -> list[str]:
    config = table_config(dataset, cell)
    spe = config.eval.every_steps
    return [o.format(epoch10=10 * spe, epoch20=20 * spe,
                     lr_tenth=f"{config.optimizer.learning_rate / 10:g}")
            for o in VARIANTS[variant][1]]


def diverged(workdir: str, spe: int) -> dict:
    """A run that stopped on a non-finite loss: its best validation NLL before that, the test
    NLL of the same evaluation, and the epoch it reached."""
    evals, last = {}, 0
    for r in read_metrics(workdir):
        last = max(last, r.get("step", 0))
        if r.get("split") in ("validation", "test"):
            evals.setdefault(r["step"], {})[r["split"]] = r["loss"]
    step = min((s for s in evals if "validation" in evals[s]),
               key=lambda s: evals[s]["validation"])
    return {"best_epoch": step // spe, "epochs": last // spe,
            "ended_by": f"diverged (non-finite loss in epoch {last // spe + 1})",
            "validation": evals[step]["validation"], "test": evals[step]["test"],
            "train_minutes": runs.training_seconds(workdir) / 60}


def run_dir(root: str, dataset: str, cell: str, variant: str) -> str:
    return os.path.join(root, f"{dataset}-{cell}-{variant}")


def train(root: str, quick: bool, dataset: str, cell: str, variant: str) -> dict:
    workdir = run_dir(root, dataset, cell, variant)
    config = table_config(dataset, cell)
    spe = config.eval.every_steps if not quick else 2
    record = {"dataset": dataset, "cell": cell, "variant": variant,
              "change": VARIANTS[variant][0]}
    try:
        s = runs.train(f"{CONFIG}:{dataset},{cell}", workdir,
                       overrides(dataset, cell, variant), quick)
    except RuntimeError as e:  # a diverged setting is a result; any other failure is not
        if "non-finite training loss" not in str(e):
            raise
        record.update(diverged(workdir, spe))
    else:
        record.update({"best_epoch": s["best"]["step"] // spe, "epochs": s["step"] // spe,
                       "ended_by": runs.ended_by(s["status"], config.eval.patience),
                       "validation": s["best"]["value"],
                       "test": s["best"]["results"]["test"]["loss"],
                       "train_minutes": s["train_seconds"] / 60})
    print(f"  {dataset} {cell} {variant}: validation {record['validation']:.3f}, test "
          f"{record['test']:.3f} ({record['train_minutes']:.1f} min, {record['ended_by']})",
          flush=True)
    return record


def table(records: list[dict]) -> list[str]:
    """The Markdown table of ``records``, a row per run, grouped by dataset and cell."""
    lines = ["| dataset | cell | variant | change | best epoch / run | ended by | validation NLL "
             "| test NLL | Δ validation vs base | Chung test | train time |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {(r["dataset"], r["cell"]): r["validation"] for r in records
            if r["variant"] == "base"}
    order = list(VARIANTS)
    for r in sorted(records, key=lambda r: (r["dataset"], r["cell"], order.index(r["variant"]))):
        b = base.get((r["dataset"], r["cell"]))
        delta = "–" if b is None or r["variant"] == "base" else f"{r['validation'] - b:+.3f}"
        paper = PAPER[r["dataset"]][PAPER_COLUMN[r["cell"]]]
        lines.append(f"| {NAMES[r['dataset']]} | {r['cell']} | {r['variant']} | {r['change']} | "
                     f"{r['best_epoch']} / {r['epochs']} | {r['ended_by']} | "
                     f"{r['validation']:.3f} | {r['test']:.3f} | {delta} | {paper:.2f} | "
                     f"{r['train_minutes']:.1f} min |")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="nottingham")
    p.add_argument("--cells", default="gru")
    p.add_argument("--variants", default=",".join(VARIANTS))
    runs.add_sweep_arguments(p, "chung2014_knobs", jobs=2)
    a = p.parse_args(argv)
    datasets = runs.choices(p, a.datasets, DATASETS, "dataset", "--datasets")
    cells = runs.choices(p, a.cells, CELLS, "cell", "--cells")
    variants = runs.choices(p, a.variants, VARIANTS, "variant", "--variants")
    jobs = [(d, c, v) for d in datasets for c in cells for v in variants]
    print(f"Chung et al. 2014, one change at a time: {len(jobs)} runs, {a.jobs} at a time → "
          f"{a.root}", flush=True)
    os.makedirs(a.out, exist_ok=True)
    suffix = "_quick" if a.quick else ""
    json_path = os.path.join(a.out, f"chung2014_knobs{suffix}.json")
    records: dict = {}   # this invocation's runs
    failed: list[str] = []

    def save() -> str:
        # the earlier runs are read at each save, under the results folder's lock: another
        # search into the same file may have saved runs since this one started
        return runs.merge_results(records, json_path, table, a.quick,
                                  key=lambda r: (r["dataset"], r["cell"], r["variant"]))[1]

    train_one = functools.partial(train, a.root, a.quick)
    for job, record in runs.each_result(jobs, train_one, a.jobs, lambda *j: "-".join(j),
                                        failed):
        records[job] = record
        save()  # after every run: a killed search keeps its rows
    print(save())
    runs.exit_if_failed(failed)


if __name__ == "__main__":
    main()
