"""Fork a training run: a new workdir that starts from one checkpoint of an existing one.

    python -m grux.train.fork runs/nott-decay20 runs/nott-decay30 --step 13880
    python -m grux.train --config configs/music_beyond.py:nottingham \\
        --workdir runs/nott-decay30 --config.optimizer.decay_start=20820

The second command resumes the fork like any interrupted run (the trainer restores the
newest checkpoint in its workdir), with whatever config it is given: a schedule search whose
points share their first epochs (the learning rate constant up to a decay start) trains those
epochs once. The fork holds exactly what the source held at that step:

* ``checkpoints/<step>``, copied (train state, data position, best-metric tracking); with the
  same config the continued run is bitwise the source's own continuation;
* ``best/<b>`` if the source's best checkpoint is from step ``b <= step`` (a later best is not
  the fork's; the best value up to ``step`` is still tracked, in the checkpoint's meta);
* ``metrics.jsonl`` and ``config_history.jsonl`` without the records of later steps, then a
  ``{"event": "fork", "source": ..., "step": ...}`` record in ``metrics.jsonl``; the next
  start appends its config to ``config_history.jsonl`` and reports the fields that changed;
* the other files of the workdir (``config.json``, the task's artifacts, ``tensorboard/``,
  whose events after ``step`` the next start purges); not ``summary.json``, nor
  ``quarantine/`` or the lock.

The source is only read (it may be training meanwhile: orbax renames a checkpoint into place
when it is complete, so only finished ones are listed). The destination must not exist or be
an empty directory: it is assembled beside itself and renamed into place, so a failed fork
leaves nothing behind and never touches an existing run.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import sys

import ml_collections
import numpy as np

from grux.train.errors import WorkdirError
from grux.train.trainer import CONFIG_HISTORY, LOCK_FILE
from grux.train.writers import drop_records_after

NOT_COPIED = {"checkpoints", "best", "quarantine", "summary.json", LOCK_FILE}
# config sections that decide what is logged, saved and evaluated when, never an update
NOT_TRAINING = ("log", "checkpoint", "eval")
# optimizer fields that only shape the learning-rate schedule, compared by its values instead
SCHEDULE_FIELDS = ("learning_rate", "warmup_steps", "schedule", "decay_start", "decay_every",
                   "decay_rate", "end_factor")


def saved_checkpoint_steps(directory: str) -> list[int]:
    """The finished checkpoint steps under ``directory`` (orbax's ``<step>`` folders; its
    temporary folders of unfinished saves carry a suffix and are skipped), ascending."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(n) for n in os.listdir(directory)
                  if n.isdigit() and os.path.isdir(os.path.join(directory, n)))


def fork_workdir(source: str, destination: str, step: int | None = None) -> int:
    """Create ``destination`` from checkpoint ``step`` of the workdir ``source`` (default: its
    newest periodic checkpoint); return the step. Raises :class:`WorkdirError` naming the
    problem (no such workdir or step, a destination in use) before anything is written."""
    source, destination = os.path.abspath(source), os.path.abspath(destination)
    periodic = saved_checkpoint_steps(os.path.join(source, "checkpoints"))
    best = saved_checkpoint_steps(os.path.join(source, "best"))
    if not periodic and not best:
        raise WorkdirError(f"fork source {source}: no checkpoints/ or best/ checkpoints there "
                           "(is it a grux workdir?)")
    if step is None:
        if not periodic:
            raise WorkdirError(f"fork source {source}: no periodic checkpoint; give --step, "
                               f"one of the best checkpoints {best}")
        step = periodic[-1]
    if step not in periodic and step not in best:
        raise WorkdirError(f"--step {step}: {source} has no checkpoint of that step; saved: "
                           f"{sorted(set(periodic) | set(best))}")
    if os.path.commonpath([source, destination]) in (source, destination):
        raise WorkdirError(f"fork destination {destination} and source {source} must not "
                           "lie inside each other")
    if os.path.exists(destination) and not (os.path.isdir(destination)
                                            and not os.listdir(destination)):
        raise WorkdirError(f"fork destination {destination} exists and is not an empty "
                           "directory; a fork never writes into an existing run")
    parent = os.path.dirname(destination)
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{os.path.basename(destination)}.fork-{os.getpid()}")
    try:
        shutil.copytree(source, staging, ignore=lambda d, names: (
            NOT_COPIED & set(names) if d == source else set()))
        checkpoint = "checkpoints" if step in periodic else "best"
        shutil.copytree(os.path.join(source, checkpoint, str(step)),
                        os.path.join(staging, checkpoint, str(step)))
        kept_best = [b for b in best if b <= step and not (checkpoint == "best" and b == step)]
        for b in kept_best:
            shutil.copytree(os.path.join(source, "best", str(b)),
                            os.path.join(staging, "best", str(b)))
        for name in ("metrics.jsonl", CONFIG_HISTORY):
            if os.path.isfile(os.path.join(staging, name)):
                drop_records_after(os.path.join(staging, name), step)
        with open(os.path.join(staging, "metrics.jsonl"), "a") as f:
            f.write(json.dumps({"step": step, "event": "fork", "source": source}) + "\n")
        if os.path.isdir(destination):
            os.rmdir(destination)  # empty (checked above); rename needs the name free
        os.rename(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return step


def _filled(config: dict, defaults: dict) -> dict:
    """``config`` with the fields it lacks (a record of an older grux, before the field
    existed) taken from ``defaults``: an option that did not exist was off."""
    out = dict(config)
    for k, v in defaults.items():
        if k not in out:
            out[k] = v
        elif isinstance(v, dict) and isinstance(out[k], dict):
            out[k] = _filled(out[k], v)
    return out


@functools.lru_cache(maxsize=None)
def _defaults_json(task_name: str) -> str:
    """The task's default config as JSON, built once per task (closest_fork compares every
    record of every workdir's history; a fresh copy is parsed for each)."""
    from grux.train.config import base_config
    return base_config(task_name).to_json_best_effort()


def _training_fields(config: dict) -> dict:
    config = _filled(config, json.loads(_defaults_json(config["task"]["name"])))
    out = {k: v for k, v in config.items() if k not in NOT_TRAINING and k != "num_train_steps"}
    out["optimizer"] = {k: v for k, v in config["optimizer"].items()
                        if k not in SCHEDULE_FIELDS}
    return out


def _learning_rates(config: dict, start: int, stop: int) -> np.ndarray:
    from grux.train.optim import make_schedule
    defaults = json.loads(_defaults_json(config["task"]["name"]))
    schedule = make_schedule(ml_collections.ConfigDict(_filled(config, defaults)["optimizer"]),
                             config["num_train_steps"])
    return np.asarray(schedule(np.arange(start, stop)))


def shared_steps(history: list[dict], config: dict) -> int:
    """How many first updates of a run whose ``config_history.jsonl`` records are ``history``
    are the updates a new run of ``config`` (a config dict) makes: a checkpoint of that run
    at a step up to this number is where the new run would be then, so forking it there
    trains the same. Each record's config rules from its step until a later record's step
    (a resume from an earlier checkpoint overrides what followed it); the configs must agree
    on every field but the ones that only decide logging, saving and evaluation
    (``NOT_TRAINING``), ``num_train_steps`` and the schedule fields, and the learning rates
    the two schedules give are compared step by step (so a decay that starts later, a
    changed warm-up or a cosine of another length all count from where they differ)."""
    horizon = config["num_train_steps"]
    segments: list[tuple[int, float, dict]] = []
    for record in history:
        s = record["step"]
        segments = [(a, min(b, s), c) for a, b, c in segments if a < s]
        segments.append((s, float("inf"), record["config"]))
    if not segments or segments[0][0] != 0:
        return 0
    for start, stop, c in segments:
        stop = int(min(stop, horizon))
        if start >= stop:
            break
        if _training_fields(c) != _training_fields(config):
            return start
        differ = np.flatnonzero(_learning_rates(c, start, stop)
                                != _learning_rates(config, start, stop))
        if differ.size:
            return start + int(differ[0])
    return horizon


def closest_fork(workdirs: list[str], config: dict) -> tuple[str, int] | None:
    """``(workdir, step)``: among ``workdirs``, the checkpoint with the most updates that a
    new run of ``config`` would share (:func:`shared_steps`), or None if none shares one."""
    best = None
    for w in workdirs:
        path = os.path.join(w, CONFIG_HISTORY)
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            history = [json.loads(line) for line in f if line.strip()]
        limit = shared_steps(history, config)
        steps = [s for s in (saved_checkpoint_steps(os.path.join(w, "checkpoints"))
                             + saved_checkpoint_steps(os.path.join(w, "best")))
                 if 0 < s <= limit]
        if steps and (best is None or max(steps) > best[1]):
            best = (w, max(steps))
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m grux.train.fork",
        description="Start a new workdir from one checkpoint of an existing run; then run "
                    "python -m grux.train with the new workdir (and any config) to continue it.")
    p.add_argument("source", help="the workdir to fork (only read)")
    p.add_argument("destination", help="the new workdir (must not exist, or be empty)")
    p.add_argument("--step", type=int, default=None,
                   help="the checkpoint step (default: the newest periodic checkpoint)")
    a = p.parse_args(argv)
    try:
        step = fork_workdir(a.source, a.destination, a.step)
    except WorkdirError as e:
        print(f"grux-fork: error: {e}", file=sys.stderr)
        return 2
    print(f"forked {os.path.abspath(a.source)} at step {step} into "
          f"{os.path.abspath(a.destination)}; continue it with python -m grux.train --config "
          f"... --workdir {a.destination}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
