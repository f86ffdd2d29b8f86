"""Polyphonic music beyond the 20k-parameter budget (issue 16, part 2): a regularised GRU
(``configs/music_beyond.py``) against the TCN of Bai, Kolter & Koltun 2018 on the same files.

    python experiments/music_beyond.py                       # JSB Chorales + Nottingham, GRU
    python experiments/music_beyond.py --datasets jsb_chorales --sizes 512x1,1024x1 \\
        --dropouts 0.3,0.5 --weight_decays 0,0.05 --input_dropouts 0 --weight_dropouts 0,0.8
    python experiments/music_beyond.py --quick               # smoke test: a few steps per run

The search is a grid over the model size (``<hidden>x<layers>``, ``--sizes``), the dropout on
the input frames (``--input_dropouts``), the dropout between layers and on the top layer's
outputs (``--dropouts``, masks shared over time), DropConnect on the recurrent weights
(``--weight_dropouts``, ``model.weight_dropout``), AdamW's decoupled weight decay
(``--weight_decays``) and the decay of the parameter average that evaluation uses
(``--ema_decays``, ``optimizer.ema_decay``, 0: none), with ``--batch`` pieces per update
(default: the config's, one piece on JSB Chorales) and the epoch at which the learning rate
starts to halve (``--decay_starts``, default: the config's; ``--learning_rates``, AdamW's
rate, default: the config's; ``--epochs`` caps every run;
optax's staircase decay halves the rate first ``decay_every`` epochs after it), each point
run once per seed in ``--seeds`` (``config.seed``: initialisation, dropout masks, the order of
the pieces; default 0). With
``--fork`` a new point starts from the checkpoint of an earlier point that trained the same
updates up to it (``grux.train.fork``): a later decay start continues the run of an earlier
one from its last checkpoint before their rates part, so a search over decay starts trains
the shared epochs once; the record names the source (its train time counts the source's
shared epochs).
Every point is one ordinary training run of ``configs/music_beyond.py:<dataset>,<cell>,
<batch>`` in its own workdir under ``--root`` (``<dataset>-<cell>-<size>-i<input dropout>-
d<dropout>-wd<decay>-b<batch>``, then ``-wdr<weight dropout>`` and ``-ema<decay>`` if they are
not 0, ``-decay<epoch>`` if given, ``-lr<rate>`` if the rate is not 1e-3, ``-ctx<frames>`` if
the GRU reads more than the previous frame (``--context_frames``, ``model.context_frames``),
``-out<units><activation>`` with a deep output layer (``--deep_outputs``,
``model.output_hidden`` and ``model.output_activation``) and ``-seed<seed>`` if the seed is not
0), so an interrupted search resumes and finished runs are reused. For each (dataset, cell) the
point with the best validation NLL (the mean over its seeds) is chosen; its test NLL at its best
validation epoch (the mean over its seeds, with their range) is reported with its parameter
count, in both protocols: every frame (Chung et al.'s, ``loss``) and without each piece's first
frame (Bai et al.'s, ``nll_after_first_frame``, the one to compare with their table). A failed
run is reported and the others go on. Outputs in ``--out``: ``music_beyond.md`` (the chosen
rows, then every run) and ``music_beyond.json`` (every run's numbers and settings; runs of
earlier invocations are kept, so the choice is over every point searched so far, earlier recipes
included).

Reference test NLL, Bai et al. 2018 (arXiv:1803.01271), as quoted in issue 16 (not re-checked
against the paper here): JSB Chorales TCN 8.10, GRU 8.43, LSTM 8.45; Nottingham TCN 3.07,
GRU 3.46, LSTM 3.29. Their protocol (``poly_music/music_test.py`` of locuslab/TCN, checked):
one piece per update, frames 2..T scored, summed NLL over a split / its scored frames.
"""
from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
from statistics import mean

import runs  # experiments/runs.py (this script's folder is on sys.path)
from chung2014_music import DATASETS, NAMES

ROOT = runs.ROOT
CONFIG = os.path.join(ROOT, "configs", "music_beyond.py")
CELLS = ("gru", "lstm", "tanh")
TCN_PAPER = {"jsb_chorales": {"TCN": 8.10, "GRU": 8.43, "LSTM": 8.45},
             "nottingham": {"TCN": 3.07, "GRU": 3.46, "LSTM": 3.29}}
QUICK = ["--config.model.hidden=16"]
# the AdamW rate of every run before --learning_rates: workdirs at this rate have no -lr suffix
LEGACY_LEARNING_RATE = 1e-3


@functools.cache
def dataset_config(dataset: str):
    """The config's defaults for ``dataset``, loaded once (every workdir name asks for them)."""
    from grux.train.main import load_config_file
    return load_config_file(f"{CONFIG}:{dataset}")


def batch_for(dataset: str, batch: int | None) -> int:
    """``batch``, or the config's own pieces per update for ``dataset``."""
    return batch or dataset_config(dataset).batch_size


def deep_output_for(dataset: str, deep_output: tuple | None) -> tuple[int, str | None]:
    """``deep_output`` (``(units, activation)``, ``(0, None)`` for none), or the config's own
    deep output layer for ``dataset``."""
    if deep_output is not None:
        return deep_output
    m = dataset_config(dataset).model
    return (m.output_hidden, m.output_activation) if m.output_hidden else (0, None)


def deep_output_name(units: int, activation: str | None) -> str:
    """``"512relu"`` for 512 ReLU units, ``"0"`` for no deep output layer."""
    return f"{units}{activation}" if units else "0"


def learning_rate_for(dataset: str, learning_rate: float | None) -> float:
    """``learning_rate``, or the config's own AdamW rate for ``dataset``."""
    if learning_rate is not None:
        return learning_rate
    return dataset_config(dataset).optimizer.learning_rate


def run_dir(root: str, dataset: str, cell: str, size: str, input_dropout: float,
            dropout: float, weight_decay: float, batch: int | None,
            weight_dropout: float, ema_decay: float = 0.0,
            decay_start: int | None = None, learning_rate: float | None = None,
            seed: int = 0, context_frames: int = 1,
            deep_output: tuple | None = (0, None)) -> str:
    # no suffix without weight dropout / averaging / a decay start of its own / at the rate
    # 1e-3, so the workdirs of earlier searches are reused (the epoch cap is not in the name:
    # a longer cap resumes a run). The rate is named whenever it is not 1e-3, the config's
    # default included, so a changed default never resumes a workdir trained at another rate
    learning_rate = learning_rate_for(dataset, learning_rate)
    units, activation = deep_output_for(dataset, deep_output)
    suffix = ((f"-wdr{weight_dropout:g}" if weight_dropout else "")
              + (f"-ema{ema_decay:g}" if ema_decay else "")
              + (f"-decay{decay_start}" if decay_start is not None else "")
              + (f"-lr{learning_rate:g}" if learning_rate != LEGACY_LEARNING_RATE else "")
              + (f"-ctx{context_frames}" if context_frames != 1 else "")
              + (f"-out{deep_output_name(units, activation)}" if units else "")
              + (f"-seed{seed}" if seed else ""))
    return os.path.join(root, f"{dataset}-{cell}-{size}-i{input_dropout:g}-d{dropout:g}"
                              f"-wd{weight_decay:g}-b{batch_for(dataset, batch)}{suffix}")


def train(root: str, dataset: str, cell: str, size: str, input_dropout: float, dropout: float,
          weight_decay: float, batch: int | None, weight_dropout: float, ema_decay: float,
          decay_start: int | None, learning_rate: float | None, seed: int,
          context_frames: int, deep_output: tuple | None, quick: bool,
          epochs: int | None = None, fork: bool = False) -> dict:
    """One point of the grid (resumes if its workdir has checkpoints); returns its record.
    ``decay_start`` and ``epochs`` (in epochs) replace the config's decay start and epoch
    cap when given, ``learning_rate`` its AdamW rate (always passed, so the workdir's name
    and the run agree), ``seed`` the run's ``config.seed`` (initialisation, dropout masks and
    the order of the pieces), ``context_frames`` the frames the GRU reads at each step
    (``model.context_frames``), ``deep_output`` the ``(units, activation)`` of the layer
    between the GRU and the logits (``(0, None)``: none; ``None``: the config's). With
    ``fork``, a point not started yet starts from the checkpoint of another point under
    ``root`` that shares the most of its updates (``runs.fork_closest``)."""
    hidden, layers = (int(v) for v in size.split("x"))
    batch = batch_for(dataset, batch)
    learning_rate = learning_rate_for(dataset, learning_rate)
    units, activation = deep_output_for(dataset, deep_output)
    workdir = run_dir(root, dataset, cell, size, input_dropout, dropout, weight_decay, batch,
                      weight_dropout, ema_decay, decay_start, learning_rate, seed,
                      context_frames, (units, activation))
    overrides = [f"--config.seed={seed}", f"--config.model.context_frames={context_frames}",
                 f"--config.model.output_hidden={units}",
                 *([f"--config.model.output_activation={activation}"] if units else []),
                 f"--config.model.hidden={hidden}", f"--config.model.num_layers={layers}",
                 f"--config.model.input_dropout={input_dropout}",
                 f"--config.model.dropout={dropout}", f"--config.model.output_dropout={dropout}",
                 f"--config.model.weight_dropout={weight_dropout}",
                 f"--config.optimizer.weight_decay={weight_decay}",
                 f"--config.optimizer.ema_decay={ema_decay}",
                 f"--config.optimizer.learning_rate={learning_rate}"]
    if decay_start is not None or epochs is not None:
        from grux.train.main import load_config_file
        spe = load_config_file(f"{CONFIG}:{dataset},{cell},{batch}").eval.every_steps
        if decay_start is not None:
            overrides.append(f"--config.optimizer.decay_start={decay_start * spe}")
        if epochs is not None:
            overrides.append(f"--config.num_train_steps={epochs * spe}")
    s = runs.train(f"{CONFIG}:{dataset},{cell},{batch}", workdir,
                   overrides + (QUICK if quick else []), quick, fork=fork)
    with open(os.path.join(workdir, "config.json")) as f:
        config = json.load(f)
    per_epoch, o = config["eval"]["every_steps"], config["optimizer"]
    best = s["best"]["results"]
    rec = {"dataset": dataset, "cell": cell, "size": size, "input_dropout": input_dropout,
           "dropout": dropout, "weight_dropout": weight_dropout,
           "weight_decay": weight_decay, "ema_decay": ema_decay, "batch": batch, "seed": seed,
           "context_frames": context_frames, "output_hidden": units,
           "output_activation": activation,
           "schedule": schedule_text(o, per_epoch),
           "parameters": runs.parameter_count(workdir), "best_step": s["best"]["step"],
           "step": s["step"], "steps_per_epoch": per_epoch, "status": s["status"],
           "validation": s["best"]["value"], "test": best["test"]["loss"],
           "test_after_first_frame": best["test"]["nll_after_first_frame"],
           "train_seconds": s["train_seconds"], "forked_from": runs.forked_from(workdir)}
    print(f"  {dataset:>12} {cell:>4} {size:>6} input dropout {input_dropout:g} dropout "
          f"{dropout:g} weight dropout {weight_dropout:g} weight decay {weight_decay:g} "
          f"average {ema_decay:g} batch {batch} deep output "
          f"{deep_output_name(units, activation)} seed {seed}: validation "
          f"{rec['validation']:.3f}, test {rec['test']:.3f} ({rec['test_after_first_frame']:.3f}"
          f" without first frames; {rec['parameters']:,} parameters, "
          f"{rec['train_seconds'] / 60:.1f} min)", flush=True)
    return rec


def schedule_text(o: dict, per_epoch: int) -> str:
    """The optimizer and learning-rate schedule of a run's config, in epochs."""
    return (f"{o['name']} {o['learning_rate']:g}, x{o['decay_rate']:g} every "
            f"{o['decay_every'] // per_epoch} epochs from epoch {o['decay_start'] // per_epoch}")


def settings_key(r: dict) -> str:
    """Everything that defines a point of the grid but its seed."""
    return (f"{r['dataset']},{r['cell']},{r['size']},i{r['input_dropout']:g},"
            f"d{r['dropout']:g},wdr{r['weight_dropout']:g},wd{r['weight_decay']:g},"
            f"b{r['batch']},ema{r['ema_decay']:g},{r['schedule']}"
            + (f",ctx{r['context_frames']}" if r["context_frames"] != 1 else "")
            + (f",out{deep_output_name(r['output_hidden'], r['output_activation'])}"
               if r["output_hidden"] else ""))


def record_key(r: dict) -> str:
    # seed 0 unnamed: the keys of the records from before the seed axis stay as they were
    return settings_key(r) + (f",seed{r['seed']}" if r["seed"] else "")


def settings(r: dict, seed: bool = True) -> str:
    average = (f", evaluated with the parameter average (decay {r['ema_decay']:g})"
               if r["ema_decay"] else "")
    fork = r.get("forked_from")
    forked = (f" (forked from {fork['source']} at epoch "
              f"{fork['step'] / r['steps_per_epoch']:g})" if fork else "")
    context = (f", the last {r['context_frames']} frames as input"
               if r["context_frames"] != 1 else "")
    deep = (f", a deep output of {r['output_hidden']} {r['output_activation']} units"
            if r["output_hidden"] else "")
    return (f"{r['size']}{context}{deep}, input dropout {r['input_dropout']:g}, "
            f"dropout {r['dropout']:g}, "
            f"weight dropout {r['weight_dropout']:g}, "
            f"weight decay {r['weight_decay']:g}, batch {r['batch']}, {r['schedule']}{average}"
            + (f", seed {r['seed']}" if seed and r["seed"] else "") + forked)


def spread(values: list[float]) -> str:
    """The mean of ``values``, with their range when there are several (seeds)."""
    text = f"{mean(values):.3f}"
    return text + (f" ({min(values):.3f}-{max(values):.3f})" if len(values) > 1 else "")


def table(records: list[dict]) -> list[str]:
    # a point is its settings; its seeds are averaged, and the point with the lowest mean
    # validation NLL is chosen for each (dataset, cell)
    points: dict = {}
    for r in records:
        points.setdefault(settings_key(r), []).append(r)
    chosen: dict = {}
    for seeds in points.values():
        k = (seeds[0]["dataset"], seeds[0]["cell"])
        if k not in chosen or (mean(r["validation"] for r in seeds)
                               < mean(r["validation"] for r in chosen[k])):
            chosen[k] = sorted(seeds, key=lambda r: r["seed"])
    lines = ["Test NLL per time step at the best validation epoch of the point chosen on "
              "validation NLL, over every frame (Chung et al.'s protocol) and without each "
              "piece's first frame (Bai et al.'s, the one to compare with their columns); "
              "reference: Bai et al. 2018 (TCN), as quoted in issue 16. A point run with "
              "several seeds is chosen on, and reported as, the mean over its seeds (their "
              "range in brackets).", "",
              "| dataset | cell | chosen settings | seeds | parameters | validation NLL | "
              "test NLL | test NLL, frames 2..T | TCN | GRU (TCN paper) | LSTM (TCN paper) |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (d, c), seeds in sorted(chosen.items(),
                                key=lambda kv: (DATASETS.index(kv[0][0]), kv[0][1])):
        ref = TCN_PAPER.get(d, {})
        refs = [f"{ref[m]:.2f}" if m in ref else "–" for m in ("TCN", "GRU", "LSTM")]
        numbers = [spread([r[f] for r in seeds])
                   for f in ("validation", "test", "test_after_first_frame")]
        lines.append(f"| {NAMES[d]} | {c} | {settings(seeds[0], seed=False)} | "
                     f"{', '.join(str(r['seed']) for r in seeds)} | "
                     f"{seeds[0]['parameters']:,} | " + " | ".join(numbers + refs) + " |")
    lines += ["", "| run | parameters | best epoch | epochs run | ended by | validation NLL | "
                  "test NLL | test NLL, frames 2..T | train time |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (DATASETS.index(r["dataset"]), r["cell"],
                                           r["validation"])):
        spe = r["steps_per_epoch"]
        lines.append(f"| {NAMES[r['dataset']]} {r['cell']} {settings(r)} | "
                     f"{r['parameters']:,} | {r['best_step'] // spe} | {r['step'] // spe} | "
                     f"{runs.ended_by(r['status'])} | {r['validation']:.3f} | "
                     f"{r['test']:.3f} | {r['test_after_first_frame']:.3f} | "
                     f"{r['train_seconds'] / 60:.1f} min |")
    return lines


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="jsb_chorales,nottingham")
    p.add_argument("--cells", default="gru", help=f"from {CELLS}")
    p.add_argument("--sizes", default="512x1,1024x1", help="comma-separated <hidden>x<layers>")
    p.add_argument("--input_dropouts", default="0", help="dropout on the input frames")
    p.add_argument("--dropouts", default="0.3,0.5",
                   help="dropout between layers and on the top layer's outputs")
    p.add_argument("--weight_dropouts", default="0,0.8",
                   help="DropConnect on the recurrent weights (model.weight_dropout)")
    p.add_argument("--weight_decays", default="0,0.05", help="AdamW's decoupled weight decay")
    p.add_argument("--ema_decays", default="0,0.999",
                   help="evaluate with a moving average of the parameters "
                        "(optimizer.ema_decay; 0: the trained parameters)")
    p.add_argument("--decay_starts", default="",
                   help="epochs at which the learning rate starts to halve (default: the "
                        "config's)")
    p.add_argument("--learning_rates", default="",
                   help="AdamW learning rates (default: the config's)")
    p.add_argument("--context_frames", default="1",
                   help="frames the GRU reads at each step (model.context_frames): the "
                        "previous one (1) or the last c")
    p.add_argument("--deep_outputs", default="",
                   help="layers between the GRU and the logits: 0 (none) or "
                        "<units><activation> with activation tanh or relu, e.g. 512relu "
                        "(model.output_hidden, model.output_activation; default: the "
                        "config's)")
    p.add_argument("--seeds", default="0",
                   help="config.seed of each point; a point's seeds are averaged in the table")
    p.add_argument("--epochs", type=int, default=None,
                   help="epoch cap of every run (default: the config's)")
    p.add_argument("--fork", action="store_true",
                   help="start each new point from the checkpoint of an earlier point under "
                        "--root that trains the same updates up to it (e.g. the same "
                        "settings with a later decay start), instead of from scratch")
    p.add_argument("--batch", type=int, default=None,
                   help="pieces per update (default: the config's for each dataset)")
    runs.add_sweep_arguments(p, "music_beyond", jobs=1)
    a = p.parse_args(argv)
    datasets = runs.choices(p, a.datasets, DATASETS, "dataset", "--datasets")
    cells = runs.choices(p, a.cells, CELLS, "cell", "--cells")
    sizes = [s for s in a.sizes.split(",") if s]
    for s in sizes:
        parts = s.split("x")
        if len(parts) != 2 or not all(v.isdigit() and int(v) > 0 for v in parts):
            p.error(f"--sizes item {s!r} is not <hidden>x<layers> with positive integers")
    def values(flag, *how, **keywords):
        return runs.values(p, getattr(a, flag), flag, *how, **keywords)

    grids = {flag: values(flag, float, lambda v: v >= 0, ">= 0")
             for flag in ("input_dropouts", "dropouts", "weight_dropouts", "weight_decays",
                          "ema_decays")}
    decay_starts = values("decay_starts", int, lambda v: v >= 0, ">= 0", default=[None])
    learning_rates = values("learning_rates", float, lambda v: v > 0, "positive",
                            default=[None])
    seeds = values("seeds", int, lambda v: v >= 0, "whole numbers >= 0")
    contexts = values("context_frames", int, lambda v: v >= 1, "whole numbers >= 1")
    deep_outputs = values("deep_outputs", parse_deep_output, requirement=
                          "0 (none) or <units><activation> with activation tanh or relu "
                          "(e.g. 512relu)", default=[None])
    if a.epochs is not None and a.epochs <= 0:
        p.error(f"--epochs must be a positive integer, got {a.epochs}")
    if a.batch is not None and a.batch <= 0:
        p.error(f"--batch must be a positive integer, got {a.batch}")
    if a.quick:
        sizes = sizes[:1]
        grids = {k: v[:1] for k, v in grids.items()}
    jobs = [(d, c, s, i, r, w, a.batch, wr, e, ds, lr, seed, ctx, out)
            for d, c, s, i, r, w, wr, e, ds, lr, ctx, out, seed in itertools.product(
                datasets, cells, sizes, grids["input_dropouts"], grids["dropouts"],
                grids["weight_decays"], grids["weight_dropouts"], grids["ema_decays"],
                decay_starts, learning_rates, contexts, deep_outputs, seeds)]
    print(f"music beyond the 20k budget: {len(jobs)} runs, {a.jobs} at a time → {a.root}",
          flush=True)
    os.makedirs(a.out, exist_ok=True)
    suffix = "_quick" if a.quick else ""
    json_path = os.path.join(a.out, f"music_beyond{suffix}.json")
    new = {}
    failed: list = []
    train_one = functools.partial(train, a.root, quick=a.quick, epochs=a.epochs, fork=a.fork)
    for _, record in runs.each_result(jobs, train_one, a.jobs,
                                      functools.partial(run_dir, a.root), failed):
        new[record_key(record)] = record
    # the records of earlier invocations are read now, under the results folder's lock, not
    # when this sweep started: another sweep into the same file may have saved runs since
    print(runs.merge_results(new, json_path, table, a.quick, key=record_key,
                             upgrade=with_defaults)[1])
    runs.exit_if_failed(failed)


def parse_deep_output(item: str) -> tuple[int, str | None]:
    """A ``--deep_outputs`` item: ``"0"`` → ``(0, None)``, ``"512relu"`` → ``(512, "relu")``;
    ``ValueError`` for anything else."""
    from grux.tasks.music import OUTPUT_ACTIVATIONS
    if item == "0":
        return 0, None
    units = item.rstrip("abcdefghijklmnopqrstuvwxyz")
    activation = item[len(units):]
    if not (units.isdigit() and int(units) > 0 and activation in OUTPUT_ACTIVATIONS):
        raise ValueError(item)
    return int(units), activation


def with_defaults(r: dict) -> dict:
    """A record of an earlier search: those before weight dropout / averaging ran without,
    those before the seed axis with seed 0, all before ``--context_frames`` read one frame
    and all before ``--deep_outputs`` had no deep output layer."""
    r = dict(r)
    r.setdefault("weight_dropout", 0.0)
    r.setdefault("ema_decay", 0.0)
    r.setdefault("seed", 0)
    r.setdefault("context_frames", 1)
    r.setdefault("output_hidden", 0)
    r.setdefault("output_activation", None)
    return r


if __name__ == "__main__":
    main()
