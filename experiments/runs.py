"""What the experiment scripts share: one training run of a config in its own workdir (an
interrupted sweep resumes where it stopped; finished runs are reused), a sweep of such runs
that survives a failed one, its wall time, and the parameter count of a config's model."""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import fcntl
import json
import os
import subprocess
import sys
import time

from grux.train.writers import read_metrics

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = ["--config.num_train_steps=4", "--config.eval.every_steps=2",
         "--config.checkpoint.every_steps=4", "--config.log.every_steps=2"]


def train(config: str, workdir: str, overrides: list[str] = (), quick: bool = False,
          fork: bool = False) -> dict:
    """``python -m grux.train --config=<config> --workdir=<workdir> <overrides>`` (a few steps
    with ``quick``); returns the run's ``summary.json`` plus ``wall_seconds`` (this call)
    and ``train_seconds`` (every invocation's training time, :func:`training_seconds`).
    With ``fork``, a run not started yet first forks the checkpoint of a workdir beside it
    that shares the most of its updates (:func:`fork_closest`)."""
    args = [f"--config={config}", *overrides, "--config.log.progress=False",
            "--config.log.tensorboard=False", *(QUICK if quick else [])]
    if fork and not os.path.exists(workdir):
        fork_closest(args, workdir)
    cmd = [sys.executable, "-m", "grux.train", f"--workdir={workdir}", *args]
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"run {workdir} failed ({out.returncode}):\n{out.stderr[-3000:]}")
    with open(os.path.join(workdir, "summary.json")) as f:
        summary = json.load(f)
    summary["wall_seconds"] = time.time() - t0
    summary["train_seconds"] = training_seconds(workdir)
    return summary


def fork_closest(args: list[str], workdir: str) -> tuple[str, int] | None:
    """Create ``workdir`` as a fork (``grux.train.fork``) of the checkpoint, among the workdirs
    beside it, from which a run of the command-line ``args`` would train the same updates
    (same config but for logging / saving / evaluation, and the same learning rates up to
    that step: e.g. a decay that starts later), taking the one with the most updates; return
    ``(source workdir, step)``, or None (and create nothing) if no checkpoint is shared."""
    from grux.train.fork import closest_fork, fork_workdir
    from grux.train.main import parse_command_line
    config = json.loads(parse_command_line(args)[0].to_json_best_effort())
    parent = os.path.dirname(os.path.abspath(workdir))
    siblings = sorted(os.path.join(parent, n) for n in os.listdir(parent)) if os.path.isdir(
        parent) else []
    found = closest_fork([w for w in siblings if w != os.path.abspath(workdir)], config)
    if found is not None:
        fork_workdir(found[0], workdir, found[1])
        print(f"  {os.path.basename(workdir)}: forked from {os.path.basename(found[0])} at "
              f"step {found[1]}", flush=True)
    return found


def forked_from(workdir: str) -> dict | None:
    """``{"source", "step"}`` of the fork a workdir started as, or None."""
    events = [r for r in read_metrics(workdir) if r.get("event") == "fork"]
    return {"source": os.path.basename(events[-1]["source"]), "step": events[-1]["step"]} if (
        events) else None


def training_seconds(workdir: str) -> float:
    """Wall time spent training, summed over every invocation of the run: the gaps between
    consecutive timed ``metrics.jsonl`` records, except across a ``resume`` record (the time
    the run was not running). Start-up before each invocation's first record is not counted."""
    total, last = 0.0, None
    for r in read_metrics(workdir):
        if r.get("event") == "resume":
            last = None
        elif "time" in r:
            if last is not None:
                total += r["time"] - last
            last = r["time"]
    return total


def parameter_count(workdir: str) -> int:
    """Trainable parameters of the model a finished run's ``config.json`` describes."""
    import jax
    from flax import nnx

    from grux.infer.loader import load_config
    from grux.tasks import get_task_class
    config = load_config(workdir)
    model = get_task_class(config.task.name)(config).build_model(nnx.Rngs(0))
    return int(sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param))))


def choices(parser, value: str, allowed, what: str, flag: str) -> list[str]:
    """The comma-separated ``value`` of ``flag`` as a list; an item not in ``allowed`` is a
    usage error naming it and the flag (exit 2)."""
    items = [x for x in value.split(",") if x]
    for x in items:
        if x not in allowed:
            parser.error(f"unknown {what} {x!r} in {flag}; choose from {tuple(allowed)}")
    return items


def values(parser, text: str, flag: str, kind=float, ok=lambda v: True,
           requirement: str = "", default=()) -> list:
    """The comma-separated ``text`` of ``--flag`` as a list of ``kind`` (``default`` if
    empty); an item ``kind`` cannot parse, an empty list, or an item not ``ok`` is a usage
    error naming the flag and ``requirement`` (exit 2). ``None`` in ``default`` stands for
    "the config's" and is not checked."""
    try:
        items = [kind(x) for x in text.split(",") if x] or list(default)
    except ValueError:
        what = {int: "whole numbers", float: "numbers"}.get(kind, requirement)
        parser.error(f"--{flag} is a comma-separated list of {what}")
    if not items:
        parser.error(f"--{flag} is empty")
    if not all(v is None or ok(v) for v in items):
        parser.error(f"--{flag} must be {requirement}, got {text!r}")
    return items


def each_result(jobs, train_one, workers: int, describe, failed: list):
    """Run ``train_one(*job)`` for every job, ``workers`` at a time, and yield
    ``(job, result)`` as they finish. A run that fails (``RuntimeError``, as :func:`train`
    raises) is printed and appended to ``failed`` as ``describe(*job)``, and the others go
    on; call :func:`exit_if_failed` once the results are saved."""
    with cf.ThreadPoolExecutor(workers) as pool:
        futures = {pool.submit(train_one, *j): j for j in jobs}
        for f in cf.as_completed(futures):
            try:
                result = f.result()
            except RuntimeError as e:
                failed.append(describe(*futures[f]))
                print(f"  FAILED {failed[-1]}: {e}", flush=True)
                continue
            yield futures[f], result


def exit_if_failed(failed: list) -> None:
    """Exit non-zero naming the failed runs, if any."""
    if failed:
        raise SystemExit(f"{len(failed)} run(s) failed (rerun to retry; finished runs are "
                         f"reused): {', '.join(failed)}")


def ended_by(status: str, patience: int | None = None) -> str:
    """A finished run's ``summary.json`` status in words for the results tables."""
    if status == "early_stopped":
        return "early stop" + (f" (patience {patience})" if patience is not None else "")
    return {"completed": "epoch cap"}.get(status, status)


def write_markdown(lines: list[str], path: str, quick: bool,
                   quick_runs: str = "a few steps per model") -> str:
    """Write the table ``lines`` to ``path`` (under a banner saying the runs were
    ``quick_runs`` in quick mode); return the text."""
    if quick:
        lines = [f"**QUICK MODE: {quick_runs}; not results.**", "", *lines]
    text = "\n".join(lines) + "\n"
    with open(path, "w") as f:
        f.write(text)
    return text


def load_results(json_path: str, empty):
    """The results an earlier invocation wrote to ``json_path``, or ``empty`` if none: a
    sweep adds to them, so the runs of earlier invocations stay in its table."""
    if not os.path.isfile(json_path):
        return empty
    with open(json_path) as f:
        return json.load(f)


@contextlib.contextmanager
def results_folder_locked(json_path: str):
    """Hold an exclusive lock on the folder of ``json_path`` (``flock`` on the folder itself,
    so no lock file is left behind). Sweeps started at the same time into one results file,
    in other processes or threads, take turns reading, merging and writing it."""
    fd = os.open(os.path.dirname(os.path.abspath(json_path)), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)   # closing the last descriptor releases the lock


def merge_results(new: dict, json_path: str, lines_of, quick: bool,
                  quick_runs: str = "a few steps per model", key=None, upgrade=None):
    """Add the runs ``new`` (key → record) to those ``json_path`` holds and write both files
    (:func:`save_results`, the table ``lines_of(results)``) under the folder's lock: a read
    then a write by one sweep can otherwise interleave with another sweep's and drop the runs
    it saved in between. The file holds a dict of the same keys, or, given ``key``, a list of
    records that ``key(record)`` tells apart (``upgrade`` first brings an earlier record to
    the current fields). A run in ``new`` replaces the file's record of the same key. Returns
    the merged results (a dict or a list, as the file holds) and the Markdown."""
    with results_folder_locked(json_path):
        if key is None:
            results = {**load_results(json_path, {}), **new}
        else:
            earlier = map(upgrade or (lambda r: r), load_results(json_path, []))
            results = list({**{key(r): r for r in earlier}, **new}.values())
        return results, save_results(results, json_path, lines_of(results), quick, quick_runs)


def save_results(results, json_path: str, lines: list[str], quick: bool,
                 quick_runs: str = "a few steps per model") -> str:
    """Write ``results`` to ``json_path`` and the table ``lines`` beside it (the same name
    ending ``.md``, :func:`write_markdown`); return the Markdown. The JSON is replaced in one
    step (written beside it, then renamed), so a sweep killed mid-write, or another one reading
    it, never sees half a file."""
    part = json_path + ".part"
    with open(part, "w") as f:
        json.dump(results, f, indent=1)
    os.replace(part, json_path)
    return write_markdown(lines, os.path.splitext(json_path)[0] + ".md", quick, quick_runs)


def add_sweep_arguments(parser, runs_folder: str, jobs: int | None = 1) -> None:
    """``--root`` (workdirs, default ``runs/<runs_folder>``), ``--out`` (results, default
    ``experiments/results``), ``--quick`` and, unless ``jobs`` is ``None``, ``--jobs``."""
    parser.add_argument("--root", default=os.path.join(ROOT, "runs", runs_folder))
    parser.add_argument("--out", default=os.path.join(ROOT, "experiments", "results"))
    if jobs is not None:
        parser.add_argument("--jobs", type=int, default=jobs, help="runs in parallel")
    parser.add_argument("--quick", action="store_true", help="a few steps per run (smoke test)")
