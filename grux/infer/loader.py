"""The one way to load a trained workdir (config, task, artifacts, parameters), and the
flags every inference command shares: ``--workdir``, ``--checkpoint best|latest|STEP``,
``--input FILE|-`` and ``--output FILE|-``.

Loading is read-only: nothing in the workdir is created, moved or written (a corrupt
checkpoint is skipped with a warning, the next one is used).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import IO, Iterator

import ml_collections


def load_config(workdir: str) -> ml_collections.ConfigDict:
    """The workdir's ``config.json`` over the current defaults of its task, so a run saved
    before a field was added (e.g. ``model.dtype``) loads with that field's default."""
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {workdir} a grux training workdir?")
    with open(path) as f:
        saved = json.load(f)
    from grux.train.config import base_config
    name = saved.get("task", {}).get("name")
    if name is None:
        raise ValueError(f"{path} has no task.name: is {workdir} a grux training workdir?")
    return ml_collections.ConfigDict(_merged(base_config(name).to_dict(), saved))


def _merged(defaults: dict, saved: dict) -> dict:
    out = dict(defaults)
    for k, v in saved.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k),
                                                                             dict) else v
    return out


def load_trained(workdir: str, which: str | int = "best", task_name: str | None = None):
    """``(task, model, step)`` with the parameters of checkpoint ``which``: ``"best"`` (the
    latest when there is no best one), ``"latest"``, or a step number (from ``checkpoints/``
    or ``best/``); the model is in deterministic (inference) mode. With ``task_name``, a run
    of another task is a ``ValueError`` naming both.

    Raises FileNotFoundError (no workdir or no checkpoint), ValueError (wrong task, unknown
    step), CheckpointRestoreError (no checkpoint can be read)."""
    import jax
    from flax import nnx

    from grux.tasks import get_task_class
    from grux.train.checkpoint import Checkpointer
    from grux.train.optim import evaluation_params
    from grux.train.trainer import initial_state
    if not (which in ("best", "latest") or isinstance(which, int)):
        raise ValueError(f"checkpoint must be 'best', 'latest' or a step number, got {which!r}")
    config = load_config(workdir)
    if task_name is not None and config.task.name != task_name:
        raise ValueError(f"{workdir} trained task {config.task.name!r}, not {task_name!r}")
    task = get_task_class(config.task.name)(config)
    task.load_artifacts(workdir)
    model, _, _, state, _, _ = initial_state(config, task)
    ckpt = Checkpointer(workdir, keep=config.checkpoint.keep,
                        keep_best=config.checkpoint.keep_best, read_only=True)
    try:
        if isinstance(which, int):
            restored = ckpt.restore_step(which, state)
        else:
            restored = ckpt.restore_best(state) if which == "best" else None
            restored = restored or ckpt.restore_latest(state)
    finally:
        ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints or {workdir}/best")
    state, _ = restored
    # the parameters training evaluated with (the moving average if optimizer.ema_decay > 0)
    nnx.update(model, jax.device_get(evaluation_params(state)))
    # inference, as the trainer's evaluation: dropout layers that hold their own random
    # stream (a recurrent stack's inter-layer dropout) would otherwise still drop units
    model = nnx.view(model, deterministic=True, raise_if_not_found=False)
    return task, model, int(state["step"])


def checkpoint_arg(value: str) -> str | int:
    """``--checkpoint`` values: ``best``, ``latest`` or a step number."""
    if value in ("best", "latest"):
        return value
    if value.isdigit():
        return int(value)
    raise argparse.ArgumentTypeError(f"must be best, latest or a step number, got {value!r}")


def add_workdir_flags(parser: argparse.ArgumentParser, task_name: str) -> None:
    parser.add_argument("--workdir", required=True,
                        help=f"training workdir of a '{task_name}' run")
    parser.add_argument("--checkpoint", type=checkpoint_arg, default="best",
                        help="best (default), latest, or a step number")


def add_io_flags(parser: argparse.ArgumentParser, input_help: str = "") -> None:
    if input_help:
        parser.add_argument("--input", default="-", help=f"{input_help} (- = stdin)")
    parser.add_argument("--output", default="-", help="where to write the result (- = stdout)")


def load_or_exit(prog: str, args: argparse.Namespace, task_name: str):
    """:func:`load_trained` for a command: a failure is one line ``prog: error: ...`` and
    exit status 1."""
    from absl import logging

    from grux.data.builders.common import DataError
    from grux.train.errors import CheckpointMismatchError, CheckpointRestoreError
    logging.set_verbosity(logging.ERROR)  # orbax warns that a read-only manager is read-only
    try:
        return load_trained(args.workdir, args.checkpoint, task_name=task_name)
    except (FileNotFoundError, ValueError, CheckpointRestoreError, CheckpointMismatchError,
            DataError) as e:
        fail(prog, str(e))


def fail(prog: str, message: str, code: int = 1):
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def read_lines(prog: str, path: str) -> list[str]:
    """The lines of ``path`` (``-``: stdin), without newlines; a missing file exits."""
    if path == "-":
        return [line.rstrip("\n") for line in sys.stdin]
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except OSError as e:
        fail(prog, f"--input {path}: {e.strerror}")


@contextlib.contextmanager
def output(prog: str, path: str) -> Iterator[IO[str]]:
    """A text stream for ``--output`` (``-``: stdout)."""
    if path == "-":
        yield sys.stdout
        return
    try:
        f = open(path, "w", encoding="utf-8")
    except OSError as e:
        fail(prog, f"--output {path}: {e.strerror}")
    with f:
        yield f
