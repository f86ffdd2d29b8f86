"""Polyphonic music beyond the 20k-parameter budget (issue 16, part 2): a regularised GRU
(``configs/music_beyond.py``) against the TCN of Bai, Kolter & Koltun 2018 on the same files.

    python experiments/music_beyond.py                       # JSB Chorales + Nottingham, GRU
    python experiments/music_beyond.py --datasets jsb_chorales --sizes 256x2,512x1 \\
        --dropouts 0.2,0.4 --cells gru,lstm
    python experiments/music_beyond.py --quick               # smoke test: a few steps per run

The search is a grid over the model size (``<hidden>x<layers>``, ``--sizes``) and the dropout
rate (``--dropouts``: input, inter-layer and output dropout all at that rate, masks shared
over time). Every point is one ordinary training run of ``configs/music_beyond.py:<dataset>,
<cell>`` in its own workdir under ``--root`` (``<dataset>-<cell>-<size>-d<dropout>``), so an
interrupted search resumes and finished runs are reused. For each (dataset, cell) the point
with the best validation NLL is chosen; its test NLL at its best validation epoch is
reported with its parameter count, beside the TCN paper's numbers. A failed run is reported
and the others go on. Outputs in ``--out``: ``music_beyond.md`` (the chosen rows, then every
run) and ``music_beyond.json`` (every run's numbers; runs of earlier invocations are kept, so
the choice is over every point searched so far).

Reference test NLL, Bai et al. 2018 (arXiv:1803.01271), as quoted in issue 16 (not re-checked
against the paper here): JSB Chorales TCN 8.10, GRU 8.43, LSTM 8.45; Nottingham TCN 3.07,
GRU 3.46, LSTM 3.29.
"""
from __future__ import annotations

import argparse
import functools
import json
import os

import runs  # experiments/runs.py (this script's folder is on sys.path)
from chung2014_music import DATASETS, NAMES

ROOT = runs.ROOT
CONFIG = os.path.join(ROOT, "configs", "music_beyond.py")
CELLS = ("gru", "lstm", "tanh")
TCN_PAPER = {"jsb_chorales": {"TCN": 8.10, "GRU": 8.43, "LSTM": 8.45},
             "nottingham": {"TCN": 3.07, "GRU": 3.46, "LSTM": 3.29}}
QUICK = ["--config.model.hidden=16"]


def run_dir(root: str, dataset: str, cell: str, size: str, dropout: float) -> str:
    return os.path.join(root, f"{dataset}-{cell}-{size}-d{dropout:g}")


def train(root: str, dataset: str, cell: str, size: str, dropout: float,
          quick: bool) -> dict:
    """One point of the grid (resumes if its workdir has checkpoints); returns its record."""
    hidden, layers = (int(v) for v in size.split("x"))
    workdir = run_dir(root, dataset, cell, size, dropout)
    overrides = [f"--config.model.hidden={hidden}", f"--config.model.num_layers={layers}",
                 f"--config.model.input_dropout={dropout}", f"--config.model.dropout={dropout}",
                 f"--config.model.output_dropout={dropout}"]
    s = runs.train(f"{CONFIG}:{dataset},{cell}", workdir, overrides + (QUICK if quick else []),
                   quick)
    with open(os.path.join(workdir, "config.json")) as f:
        per_epoch = json.load(f)["eval"]["every_steps"]
    rec = {"dataset": dataset, "cell": cell, "size": size, "dropout": dropout,
           "parameters": runs.parameter_count(workdir), "best_step": s["best"]["step"],
           "step": s["step"], "steps_per_epoch": per_epoch, "status": s["status"],
           "validation": s["best"]["value"], "test": s["best"]["results"]["test"]["loss"],
           "train_seconds": s["train_seconds"]}
    print(f"  {dataset:>12} {cell:>4} {size:>6} dropout {dropout:g}: validation "
          f"{rec['validation']:.3f}, test {rec['test']:.3f} ({rec['parameters']:,} parameters, "
          f"{rec['train_seconds'] / 60:.1f} min)", flush=True)
    return rec


def record_key(r: dict) -> str:
    return f"{r['dataset']},{r['cell']},{r['size']},{r['dropout']:g}"


def table(records: list[dict], quick: bool) -> str:
    chosen: dict = {}
    for r in records:
        k = (r["dataset"], r["cell"])
        if k not in chosen or r["validation"] < chosen[k]["validation"]:
            chosen[k] = r
    lines = ["**QUICK MODE: a few steps per model; not results.**", ""] if quick else []
    lines += ["Test NLL per time step at the best validation epoch of the point chosen on "
              "validation NLL; reference: Bai et al. 2018 (TCN), as quoted in issue 16.", "",
              "| dataset | cell | chosen size | dropout | parameters | validation NLL | "
              "test NLL | TCN | GRU (TCN paper) | LSTM (TCN paper) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for (d, c), r in sorted(chosen.items(), key=lambda kv: (DATASETS.index(kv[0][0]), kv[0][1])):
        ref = TCN_PAPER.get(d, {})
        refs = [f"{ref[m]:.2f}" if m in ref else "–" for m in ("TCN", "GRU", "LSTM")]
        lines.append(f"| {NAMES[d]} | {c} | {r['size']} | {r['dropout']:g} | "
                     f"{r['parameters']:,} | {r['validation']:.3f} | {r['test']:.3f} | "
                     + " | ".join(refs) + " |")
    lines += ["", "| run | parameters | best epoch | epochs run | ended by | validation NLL | "
                  "test NLL | train time |", "|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (DATASETS.index(r["dataset"]), r["cell"], r["size"],
                                           r["dropout"])):
        spe = r["steps_per_epoch"]
        ended = runs.ended_by(r["status"])
        lines.append(f"| {NAMES[r['dataset']]} {r['cell']} {r['size']} dropout "
                     f"{r['dropout']:g} | {r['parameters']:,} | {r['best_step'] // spe} | "
                     f"{r['step'] // spe} | {ended} | {r['validation']:.3f} | "
                     f"{r['test']:.3f} | {r['train_seconds'] / 60:.1f} min |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="jsb_chorales,nottingham")
    p.add_argument("--cells", default="gru", help=f"from {CELLS}")
    p.add_argument("--sizes", default="256x2,512x1,512x2",
                   help="comma-separated <hidden>x<layers>")
    p.add_argument("--dropouts", default="0.2,0.4")
    runs.add_sweep_arguments(p, "music_beyond", jobs=1)
    a = p.parse_args(argv)
    datasets = runs.choices(p, a.datasets, DATASETS, "dataset", "--datasets")
    cells = runs.choices(p, a.cells, CELLS, "cell", "--cells")
    sizes = [s for s in a.sizes.split(",") if s]
    for s in sizes:
        parts = s.split("x")
        if len(parts) != 2 or not all(v.isdigit() and int(v) > 0 for v in parts):
            p.error(f"--sizes item {s!r} is not <hidden>x<layers> with positive integers")
    try:
        dropouts = [float(x) for x in a.dropouts.split(",") if x]
    except ValueError:
        p.error("--dropouts is a comma-separated list of numbers")
    if a.quick:
        sizes, dropouts = sizes[:1], dropouts[:1]
    jobs = [(d, c, s, r) for d in datasets for c in cells for s in sizes for r in dropouts]
    print(f"music beyond the 20k budget: {len(jobs)} runs, {a.jobs} at a time → {a.root}",
          flush=True)
    os.makedirs(a.out, exist_ok=True)
    suffix = "_quick" if a.quick else ""
    json_path = os.path.join(a.out, f"music_beyond{suffix}.json")
    done: dict = {}
    if os.path.isfile(json_path):              # runs of earlier invocations stay in the table
        with open(json_path) as f:
            done = {record_key(r): r for r in json.load(f)}
    failed: list = []
    train_one = functools.partial(train, a.root, quick=a.quick)
    for _, record in runs.each_result(jobs, train_one, a.jobs,
                                      functools.partial(run_dir, a.root), failed):
        done[record_key(record)] = record
    records = list(done.values())
    text = table(records, a.quick)
    with open(os.path.join(a.out, f"music_beyond{suffix}.md"), "w") as f:
        f.write(text)
    with open(json_path, "w") as f:
        json.dump(records, f, indent=1)
    print(text)
    runs.exit_if_failed(failed)

if __name__ == "__main__":
    main()
