"""Reproduce Chung et al. 2014 (arXiv:1412.3555), Table 2: polyphonic music test NLL.

    python experiments/chung2014_music.py                 # 4 datasets x 3 cells x lr sweep
    python experiments/chung2014_music.py --quick         # smoke test: a few steps each
    python experiments/chung2014_music.py --datasets jsb_chorales --cells gru,lstm

Every (dataset, cell, learning rate) is one ordinary training run of
``configs/chung2014_music.py:<dataset>,<cell>`` in its own workdir under ``--root`` (so an
interrupted sweep resumes where it stopped, and finished runs are reused). For each
(dataset, cell) the learning rate with the best validation NLL is chosen, as in the paper, and
its test NLL at the best validation epoch (early stopping) is reported. Outputs in ``--out``:
``chung2014_music.md`` (the table beside the paper's numbers), ``chung2014_music.json`` and
``chung2014_music_valid.png`` (validation NLL curves of the chosen runs).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os

from grux.train.writers import read_metrics

import runs

ROOT = runs.ROOT
CONFIG = os.path.join(ROOT, "configs", "chung2014_music.py")
DATASETS = ("jsb_chorales", "nottingham", "musedata", "piano_midi")
CELLS = ("tanh", "gru", "lstm")
NAMES = {"jsb_chorales": "JSB Chorales", "nottingham": "Nottingham", "musedata": "MuseData",
         "piano_midi": "Piano-midi.de"}
# Chung et al. 2014, Table 2, test NLL per time step: (tanh, GRU, LSTM)
PAPER = {"jsb_chorales": (9.10, 8.54, 8.67), "nottingham": (3.13, 3.23, 3.20),
         "musedata": (6.23, 5.99, 6.23), "piano_midi": (9.03, 8.82, 9.03)}


def run_dir(root: str, dataset: str, cell: str, lr: float) -> str:
    return os.path.join(root, f"{dataset}-{cell}-lr{lr:g}")


def train(root: str, dataset: str, cell: str, lr: float, quick: bool) -> dict:
    """One training run (resumes if its workdir has checkpoints); returns its summary."""
    workdir = run_dir(root, dataset, cell, lr)
    summary = runs.train(f"{CONFIG}:{dataset},{cell}", workdir,
                         [f"--config.optimizer.learning_rate={lr}"], quick)
    with open(os.path.join(workdir, "config.json")) as f:
        summary["steps_per_epoch"] = json.load(f)["eval"]["every_steps"]
    print(f"  {dataset:>12} {cell:>4} lr {lr:g}: best validation NLL "
          f"{summary['best']['value']:.3f} at step {summary['best']['step']}, test "
          f"{summary['best']['results']['test']['loss']:.3f} "
          f"({summary['train_seconds'] / 60:.1f} min in all)",
          flush=True)
    return summary


def validation_curve(workdir: str) -> tuple[list[int], list[float]]:
    evals = [r for r in read_metrics(workdir) if r.get("split") == "validation"]
    return [r["step"] for r in evals], [r["loss"] for r in evals]


def write_table(chosen: dict, path: str, quick: bool) -> str:
    head = ("| dataset | tanh-RNN grux | tanh-RNN paper | GRU grux | GRU paper | LSTM grux | "
            "LSTM paper |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for d in DATASETS:
        if not any((d, c) in chosen for c in CELLS):
            continue
        row = [NAMES[d]]
        for i, c in enumerate(CELLS):
            s = chosen.get((d, c))
            row.append(f"{s['best']['results']['test']['loss']:.2f}" if s else "–")
            row.append(f"{PAPER[d][i]:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| dataset | cell | lr chosen | best epoch | epochs run | ended by | "
                  "validation NLL | test NLL | train time |",
              "|---|---|---|---|---|---|---|---|---|"]
    for (d, c), s in sorted(chosen.items()):
        per_epoch = s["steps_per_epoch"]
        ended = runs.ended_by(s["status"])
        lines.append(f"| {NAMES[d]} | {c} | {s['lr']:g} | {s['best']['step'] // per_epoch} | "
                     f"{s['step'] // per_epoch} | {ended} | {s['best']['value']:.3f} | "
                     f"{s['best']['results']['test']['loss']:.3f} | "
                     f"{s['train_seconds'] / 60:.1f} min |")
    return runs.write_markdown(lines, path, quick)


def plot(chosen: dict, root: str, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    datasets = [d for d in DATASETS if any((d, c) in chosen for c in CELLS)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4),
                             squeeze=False)
    for ax, d in zip(axes[0], datasets):
        for c in CELLS:
            if (d, c) in chosen:
                steps, values = validation_curve(run_dir(root, d, c, chosen[(d, c)]["lr"]))
                ax.plot(steps, values, label=f"{c} (lr {chosen[(d, c)]['lr']:g})")
        ax.set_title(NAMES[d])
        ax.set_xlabel("training step")
        ax.set_ylabel("validation NLL / time step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--cells", default=",".join(CELLS))
    p.add_argument("--lrs", default="0.003,0.01", help="learning-rate candidates (RMSProp)")
    runs.add_sweep_arguments(p, "chung2014", jobs=2)
    a = p.parse_args(argv)
    datasets = runs.choices(p, a.datasets, DATASETS, "dataset", "--datasets")
    cells = runs.choices(p, a.cells, CELLS, "cell", "--cells")
    lrs = runs.values(p, a.lrs, "lrs", float, lambda v: v > 0, "positive")
    if a.quick:
        lrs = lrs[:1]
    jobs = [(d, c, lr) for d in datasets for c in cells for lr in lrs]
    print(f"Chung et al. 2014 Table 2: {len(jobs)} runs, {a.jobs} at a time → {a.root}")
    with cf.ThreadPoolExecutor(a.jobs) as pool:
        futures = {pool.submit(train, a.root, d, c, lr, a.quick): (d, c, lr) for d, c, lr in jobs}
        results = {futures[f]: f.result() for f in cf.as_completed(futures)}
    chosen = {}
    for (d, c, lr), s in results.items():
        s["lr"] = lr
        if (d, c) not in chosen or s["best"]["value"] < chosen[(d, c)]["best"]["value"]:
            chosen[(d, c)] = s
    os.makedirs(a.out, exist_ok=True)
    suffix = "_quick" if a.quick else ""
    table = write_table(chosen, os.path.join(a.out, f"chung2014_music{suffix}.md"), a.quick)
    with open(os.path.join(a.out, f"chung2014_music{suffix}.json"), "w") as f:
        json.dump({f"{d},{c}": {"lr": s["lr"], "best": s["best"], "status": s["status"],
                                "step": s["step"], "train_seconds": s["train_seconds"]}
                   for (d, c), s in chosen.items()}, f, indent=1)
    plot(chosen, a.root, os.path.join(a.out, f"chung2014_music_valid{suffix}.png"))
    print(table)


if __name__ == "__main__":
    main()
