"""Long-horizon forecasting table (issue 14): a SegRNN-style GRU (``configs/ltsf.py``) on
ETTh1, ETTh2, ETTm1, ETTm2 and Weather at horizons 96/192/336/720, look-back 96, beside the
published numbers and our naive, seasonal-naive and linear baselines.

    python experiments/ltsf.py                          # the 5 x 4 table, GRU, seed 0
    python experiments/ltsf.py --quick                  # smoke test: a few steps per run
    python experiments/ltsf.py --datasets etth1,weather --horizons 96,720 --cells gru,lstm \\
        --seeds 0,1,2
    python experiments/ltsf.py --datasets etth1 --init torch --out experiments/results/ltsf_torch_init

Every (dataset, horizon, cell, seed) is one ordinary training run of
``configs/ltsf.py:<dataset>,<horizon>`` (``--config.model.cell=<cell> --config.seed=<seed>``,
and ``--config.model.init=torch`` with ``--init torch``: PyTorch's default initialisation, as
SegRNN's code gets) in its own workdir ``<root>/<dataset>-<horizon>-<cell>-s<seed>[-torch]``,
so an interrupted sweep resumes where it stopped and finished runs are reused. Numbers are the test MSE / MAE at the
best validation MSE (early stopping), on the train-standardised scale, over every test
window; with several seeds, their mean ± standard deviation. The baselines are scored by the
same evaluation on the same windows. Outputs in ``--out``: ``ltsf.md`` (the table, with the
average MSE over the (dataset, horizon) cells run, for ours and for every reference column on
the same cells), ``ltsf.json`` (every run's numbers; runs of earlier invocations are kept)
and ``ltsf.png`` (test MSE against horizon per dataset). ``--quick`` writes ``ltsf_quick.*``
with width 32 and batch 32.

Reference MSE (and SegRNN's MAE): the SegRNN repository's README, "Comparison Results for
Lookback L = 96" (lss-1138/SegRNN, README at commit 01708ba7; SegRNN re-run after the
dropped-last-test-batch fix, the other models quoted there from the iTransformer paper).
"""
from __future__ import annotations

import argparse
import functools
import json
import math
import os

import runs  # experiments/runs.py (this script's folder is on sys.path)

ROOT = runs.ROOT
CONFIG = os.path.join(ROOT, "configs", "ltsf.py")
DATASETS = ("etth1", "etth2", "ettm1", "ettm2", "weather")
HORIZONS = (96, 192, 336, 720)
CELLS = ("gru", "lstm", "mingru", "tanh")
INITS = ("flax", "torch")      # config.model.init; flax is configs/ltsf.py's
NAMES = {"etth1": "ETTh1", "etth2": "ETTh2", "ettm1": "ETTm1", "ettm2": "ETTm2",
         "weather": "Weather"}
MODELS = ("SegRNN", "iTransformer", "PatchTST", "DLinear")
# test MSE for H = 96, 192, 336, 720 (SegRNN README, L = 96 table)
REFERENCE = {
    "etth1": {"SegRNN": (0.368, 0.408, 0.444, 0.446), "iTransformer": (0.386, 0.441, 0.487, 0.503),
              "PatchTST": (0.414, 0.460, 0.501, 0.500), "DLinear": (0.386, 0.437, 0.481, 0.519)},
    "etth2": {"SegRNN": (0.278, 0.359, 0.421, 0.432), "iTransformer": (0.297, 0.380, 0.428, 0.427),
              "PatchTST": (0.302, 0.388, 0.426, 0.431), "DLinear": (0.333, 0.477, 0.594, 0.831)},
    "ettm1": {"SegRNN": (0.330, 0.369, 0.399, 0.454), "iTransformer": (0.334, 0.377, 0.426, 0.491),
              "PatchTST": (0.329, 0.367, 0.399, 0.454), "DLinear": (0.345, 0.380, 0.413, 0.474)},
    "ettm2": {"SegRNN": (0.173, 0.237, 0.296, 0.389), "iTransformer": (0.180, 0.250, 0.311, 0.412),
              "PatchTST": (0.175, 0.241, 0.305, 0.402), "DLinear": (0.193, 0.284, 0.369, 0.554)},
    "weather": {"SegRNN": (0.165, 0.211, 0.270, 0.357),
                "iTransformer": (0.174, 0.221, 0.278, 0.358),
                "PatchTST": (0.177, 0.225, 0.278, 0.354), "DLinear": (0.196, 0.237, 0.283, 0.345)},
}
SEGRNN_MAE = {"etth1": (0.395, 0.419, 0.440, 0.457), "etth2": (0.335, 0.389, 0.436, 0.455),
              "ettm1": (0.369, 0.392, 0.412, 0.443), "ettm2": (0.255, 0.298, 0.336, 0.407),
              "weather": (0.227, 0.273, 0.318, 0.376)}
BASELINES = (("naive", "naive"), ("snaive", "seasonal naive"), ("linear", "linear"))
QUICK_MODEL = ["--config.model.hidden=32", "--config.batch_size=32"]


def reference(model: str, dataset: str, horizon: int) -> float | None:
    if horizon not in HORIZONS:
        return None
    return REFERENCE[dataset][model][HORIZONS.index(horizon)]


def key(dataset: str, horizon: int, cell: str, seed: int, init: str = "flax") -> str:
    return f"{dataset},{horizon},{cell},{seed}" + ("" if init == "flax" else f",{init}")


def run_dir(root: str, dataset: str, horizon: int, cell: str, seed: int,
            init: str = "flax") -> str:
    return os.path.join(root, f"{dataset}-{horizon}-{cell}-s{seed}"
                        + ("" if init == "flax" else f"-{init}"))


def train(root: str, dataset: str, horizon: int, cell: str, seed: int, init: str = "flax",
          quick: bool = False, patience: int | None = None) -> dict:
    """One training run (resumes if its workdir has checkpoints); returns its numbers.
    ``patience``: early-stopping patience in epochs instead of the config's (SegRNN's 10);
    ``init``: ``config.model.init``."""
    workdir = run_dir(root, dataset, horizon, cell, seed, init)
    overrides = [f"--config.model.cell={cell}", f"--config.seed={seed}"]
    if init != "flax":
        overrides.append(f"--config.model.init={init}")
    if patience is not None:
        overrides.append(f"--config.eval.patience={patience}")
    s = runs.train(f"{CONFIG}:{dataset},{horizon}", workdir,
                   overrides + (QUICK_MODEL if quick else []), quick)
    with open(os.path.join(workdir, "config.json")) as f:
        run_eval = json.load(f)["eval"]
    best = s["best"]["results"]
    print(f"  {dataset:>7} H={horizon:<3} {cell:>6} seed {seed}: test MSE "
          f"{best['test']['mse']:.3f} MAE {best['test']['mae']:.3f} at step "
          f"{s['best']['step']} ({s['train_seconds'] / 60:.1f} min)", flush=True)
    return {"dataset": dataset, "horizon": horizon, "cell": cell, "seed": seed, "init": init,
            "test": best["test"], "validation": best["validation"],
            "best_step": s["best"]["step"], "step": s["step"], "status": s["status"],
            "steps_per_epoch": run_eval["every_steps"], "patience": run_eval["patience"],
            "train_seconds": s["train_seconds"], "device_kind": s.get("device_kind", "cpu")}


def on_accelerator(record: dict) -> str:
    """`` (on NVIDIA H200)`` for a run trained on an accelerator, else ``""`` (the CPU times
    are the 2-core machine's, docs/forecasting.md)."""
    kind = record.get("device_kind", "cpu")
    return "" if kind == "cpu" else f" (on {kind})"


def mean_sd(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, sd


def fmt(xs: list[float]) -> str:
    if not xs:
        return "–"
    m, sd = mean_sd(xs)
    return f"{m:.3f}" + (f" ± {sd:.3f}" if len(xs) > 1 else "")


def column(r: dict) -> str:
    """A run's model column: its cell, and its initialisation unless it is the config's."""
    init = r.get("init", "flax")                      # absent in older results: flax
    return r["cell"] + ("" if init == "flax" else f" ({init} init)")


def grouped(results: dict) -> tuple[list[tuple[str, int]], list[str], dict]:
    """``(table cells (dataset, horizon) in order, model columns run, {(d, h, column):
    [runs]})``; the seeds of one column are averaged, different inits are not mixed."""
    by = {}
    for r in results.values():
        by.setdefault((r["dataset"], r["horizon"], column(r)), []).append(r)
    rows = sorted({(d, h) for d, h, _ in by}, key=lambda x: (DATASETS.index(x[0]), x[1]))
    rank = {column(r): (CELLS.index(r["cell"]), INITS.index(r.get("init", "flax")))
            for r in results.values()}
    cells = sorted(rank, key=rank.__getitem__)
    return rows, cells, by


def table(results: dict) -> list[str]:
    rows, cells, by = grouped(results)
    head = ["dataset", "H"]
    for c in cells:
        head += [f"{c} MSE", f"{c} MAE"]
    head += ["SegRNN MSE (MAE)", "iTransformer", "PatchTST", "DLinear"]
    head += [f"{label} MSE" for _, label in BASELINES]
    lines = ["Test MSE / MAE at look-back 96 on the train-standardised scale, every test "
              "window; ours at the best validation MSE. Reference columns: SegRNN README "
              "(L = 96 table); baselines: ours, same windows.", "",
              "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    values: dict[tuple[str, int], dict[str, float | None]] = {}  # (dataset, H): {column: x}

    for d, h in rows:
        vals = values[d, h] = {}     # None (or no key): the column has no value here
        row = [NAMES[d], str(h)]
        runs_any = []
        for c in cells:
            rs = by.get((d, h, c), [])
            runs_any = runs_any or rs
            mse, mae = [r["test"]["mse"] for r in rs], [r["test"]["mae"] for r in rs]
            row += [fmt(mse), fmt(mae)]
            if rs:
                vals[f"{c} MSE"] = mean_sd(mse)[0]
                vals[f"{c} MAE"] = mean_sd(mae)[0]
        seg = reference("SegRNN", d, h)
        row.append("–" if seg is None else
                   f"{seg:.3f} ({SEGRNN_MAE[d][HORIZONS.index(h)]:.3f})")
        vals["SegRNN MSE (MAE)"] = seg
        for model in MODELS[1:]:
            ref = reference(model, d, h)
            row.append("–" if ref is None else f"{ref:.3f}")
            vals[model] = ref
        for name, label in BASELINES:
            x = runs_any[0]["test"].get(f"{name}_mse") if runs_any else None
            row.append("–" if x is None else f"{x:.3f}")
            vals[f"{label} MSE"] = x
        lines.append("| " + " | ".join(row) + " |")

    def average(label: str, over: list[tuple[str, int]]) -> str:
        row = [label, f"{len(over)} cell" + "s" * (len(over) != 1)]
        for col in head[2:]:
            xs = [values[k][col] for k in over if values[k].get(col) is not None]
            row.append(f"{sum(xs) / len(xs):.3f}" if len(xs) == len(over) else "–")
        return "| " + " | ".join(row) + " |"

    if rows:
        lines.append(average("**average**", rows))
        # the recurrent cells side by side: the (dataset, horizon) cells where all of them ran
        shared = [k for k in rows if all(f"{c} MSE" in values[k] for c in cells)]
        if len(cells) > 1 and shared and len(shared) < len(rows):
            lines.append(average("**average where every recurrent cell ran**", shared))
        lines += ["", "Average: the mean over the (dataset, horizon) cells of this table "
                      "(a column is averaged only where it has every one of them)."]
    lines += ["", "| run | best epoch | epochs run | ended by | validation MSE | test MSE | "
                  "test MAE | train time |", "|---|---|---|---|---|---|---|---|"]
    for k in sorted(results, key=lambda k: (DATASETS.index(results[k]["dataset"]),
                                             results[k]["horizon"], results[k]["cell"],
                                             results[k]["seed"])):
        r = results[k]
        spe = r["steps_per_epoch"]
        ended = runs.ended_by(r["status"], r.get("patience", 10))
        lines.append(f"| {NAMES[r['dataset']]} H={r['horizon']} {column(r)} seed {r['seed']} |"
                     f" {r['best_step'] / spe:.0f} | {r['step'] / spe:.0f} | {ended} | "
                     f"{r['validation']['mse']:.3f} | {r['test']['mse']:.3f} | "
                     f"{r['test']['mae']:.3f} | {r['train_seconds'] / 60:.1f} min"
                     f"{on_accelerator(r)} |")
    return lines


def plot(results: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows, cells, by = grouped(results)
    datasets = [d for d in DATASETS if any(d == r[0] for r in rows)]
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.4),
                             squeeze=False)
    for ax, d in zip(axes[0], datasets):
        hs = sorted(h for dd, h in rows if dd == d)
        for c in cells:
            pts = [(h, mean_sd([r["test"]["mse"] for r in by[(d, h, c)]]))
                   for h in hs if (d, h, c) in by]
            ax.errorbar([p[0] for p in pts], [p[1][0] for p in pts],
                        yerr=[p[1][1] for p in pts], marker="o", label=f"ours ({c})")
        for model, style in zip(MODELS, ("--", ":", ":", ":")):
            ax.plot(HORIZONS, REFERENCE[d][model], style, marker=".", label=model)
        lin = [next(by[(d, h, c)] for c in cells if (d, h, c) in by)[0]["test"]["linear_mse"]
               for h in hs]
        ax.plot(hs, lin, "k-.", marker=".", label="linear (ours)")
        ax.set_title(NAMES[d])
        ax.set_xlabel("horizon H")
        ax.set_ylabel("test MSE")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(DATASETS))
    p.add_argument("--horizons", default=",".join(map(str, HORIZONS)))
    p.add_argument("--cells", default="gru", help=f"recurrent cells, from {CELLS}")
    p.add_argument("--seeds", default="0")
    runs.add_sweep_arguments(p, "ltsf", jobs=1)
    p.add_argument("--init", default="flax", choices=INITS,
                   help="config.model.init: flax (the config's) or torch (PyTorch's default "
                        "initialisation, as in SegRNN's code)")
    p.add_argument("--patience", type=int, default=None,
                   help="early-stopping patience in epochs (default: the config's, SegRNN's "
                        "10); the run table shows each run's")
    a = p.parse_args(argv)
    datasets = runs.choices(p, a.datasets, DATASETS, "dataset", "--datasets")
    cells = runs.choices(p, a.cells, CELLS, "cell", "--cells")
    horizons = runs.values(p, a.horizons, "horizons", int, lambda v: v > 0,
                           "whole numbers > 0")
    seeds = runs.values(p, a.seeds, "seeds", int, lambda v: v >= 0, "whole numbers >= 0")
    os.makedirs(a.out, exist_ok=True)
    suffix = "_quick" if a.quick else ""
    json_path = os.path.join(a.out, f"ltsf{suffix}.json")
    jobs = [(d, h, c, s, a.init) for d in datasets for h in horizons for c in cells
            for s in seeds]
    print(f"LTSF table: {len(jobs)} runs, {a.jobs} at a time → {a.root}", flush=True)
    finished: dict = {}   # this invocation's runs

    def save() -> tuple[dict, str]:
        """All runs in ``ltsf.json`` with this invocation's added, and their table. The file
        is read again (under a lock) before each write: another invocation (other datasets or
        cells at the same time) may have added its runs since this one started."""
        return runs.merge_results(finished, json_path, table, a.quick,
                                  "a few steps per model at width 32")

    failed: list = []
    train_one = functools.partial(train, a.root, quick=a.quick, patience=a.patience)
    for job, result in runs.each_result(jobs, train_one, a.jobs,
                                        functools.partial(run_dir, a.root), failed):
        finished[key(*job)] = result
        save()
    results, text = save()
    if results:
        plot(results, os.path.join(a.out, f"ltsf{suffix}.png"))
    print(text)
    runs.exit_if_failed(failed)


if __name__ == "__main__":
    main()
