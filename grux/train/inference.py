"""Load a trained model back from a workdir (its ``config.json`` and checkpoints)."""
from __future__ import annotations

import json
import os

import jax
import ml_collections
from flax import nnx

from grux.tasks import Task, get_task_class
from grux.train.checkpoint import Checkpointer
from grux.train.trainer import initial_state


def load_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: is {workdir} a grux training workdir?")
    with open(path) as f:
        return ml_collections.ConfigDict(json.load(f))


def load_trained(workdir: str, which: str = "best", task_name: str | None = None
                 ) -> tuple[Task, nnx.Module, int]:
    """``(task, model, step)`` with the parameters of the ``best`` checkpoint (falls back to
    the latest when there is no best one) or of the ``latest``. With ``task_name``, a run of
    another task is a ``ValueError`` naming both. Read-only: nothing in the workdir is
    created, moved or written (a corrupt checkpoint is skipped with a warning)."""
    if which not in ("best", "latest"):
        raise ValueError(f"which must be 'best' or 'latest', got {which!r}")
    config = load_config(workdir)
    if task_name is not None and config.task.name != task_name:
        raise ValueError(f"{workdir} trained task {config.task.name!r}, not {task_name!r}")
    task = get_task_class(config.task.name)(config)
    task.load_artifacts(workdir)
    model, _, _, state, _, _ = initial_state(config, task)
    ckpt = Checkpointer(workdir, keep=config.checkpoint.keep,
                        keep_best=config.checkpoint.keep_best, read_only=True)
    try:
        restored = ckpt.restore_best(state) if which == "best" else None
        restored = restored or ckpt.restore_latest(state)
    finally:
        ckpt.close()
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {workdir}/checkpoints or {workdir}/best")
    state, _ = restored
    nnx.update(model, jax.device_get(state["params"]))
    return task, model, int(state["step"])
