"""Checkpoints with orbax-checkpoint: periodic async saves, last N plus the best, safe restore.

Layout in the workdir::

    checkpoints/<step>/{state,meta}   last ``keep`` periodic saves (orbax CheckpointManager)
    best/<step>/{state,meta}          the best by the eval metric (a second manager, keep 1)
    quarantine/<step>-<time>/         checkpoints that failed to restore, moved aside, kept

``state`` is the train state pytree (params, optimizer state, step, RNG key, carried
recurrent state); ``meta`` is JSON (data-stream position, best-metric tracking, ...).

Restore walks the saved steps from newest to oldest. A checkpoint whose files are missing or
unreadable is reported, moved to ``quarantine/`` (never deleted) and the previous one is
tried. A checkpoint that reads fine but whose parameter shapes differ from the model built
from the current config is an error naming the parameter: that is a config mistake, and
falling back to an older checkpoint would not fix it.
"""
from __future__ import annotations

import os
import shutil
import time
import warnings
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils


class CheckpointMismatchError(ValueError):
    """The checkpoint's parameters do not fit the model the config builds."""


def _key_name(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def tree_shapes(tree: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{"params.rnn.layers.0.w_hh": (shape, dtype)}`` for every array leaf (orbax naming)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        name = ".".join(_key_name(k) for k in path)
        out[name] = (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
    return out


def saved_shapes(metadata: Any) -> dict[str, tuple[tuple[int, ...], str]]:
    """The same map read from an orbax tree metadata."""
    out = {}
    for leaf in jax.tree.leaves(metadata):
        name = getattr(leaf, "name", None)
        if name is None or getattr(leaf, "shape", None) is None:
            continue
        out[name] = (tuple(leaf.shape), str(np.dtype(leaf.dtype)))
    return out


def check_compatible(saved: dict, target: dict, where: str) -> None:
    """Raise :class:`CheckpointMismatchError` listing every differing array, parameters first
    (optimizer and carried state only mirror them)."""
    problems = []
    for name in sorted(set(saved) | set(target), key=lambda n: (not n.startswith("params"), n)):
        if name not in target:
            problems.append(f"{name} {saved[name][0]} is in the checkpoint but not in the model")
        elif name not in saved:
            problems.append(f"{name} {target[name][0]} is in the model but not in the checkpoint")
        elif saved[name] != target[name]:
            problems.append(f"{name} is {saved[name][0]} {saved[name][1]} in the checkpoint but "
                            f"{target[name][0]} {target[name][1]} in the model")
    if problems:
        shown = "\n  ".join(problems[:8])
        more = f"\n  ... and {len(problems) - 8} more" if len(problems) > 8 else ""
        raise CheckpointMismatchError(
            f"checkpoint {where} does not fit the model built from this config (was the "
            f"config changed, e.g. model.hidden, model.num_layers or model.cell? use a new "
            f"--workdir for a new model):\n  {shown}{more}")


class Checkpointer:
    """Periodic + best checkpoints of ``(state, meta)`` under ``workdir``."""

    def __init__(self, workdir: str, *, keep: int = 3, keep_best: bool = True,
                 async_save: bool = True):
        self.workdir = os.path.abspath(workdir)
        opts = dict(enable_async_checkpointing=async_save, create=True)

        def manager(sub: str, max_to_keep: int) -> ocp.CheckpointManager:
            return ocp.CheckpointManager(
                os.path.join(self.workdir, sub),
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=max_to_keep, **opts,
                    # the two managers may save the same step: keep their barriers apart
                    multiprocessing_options=ocp.options.MultiprocessingOptions(
                        barrier_sync_key_prefix=f"grux_{sub}")),
                item_handlers={"state": ocp.StandardCheckpointHandler(),
                               "meta": ocp.JsonCheckpointHandler()})

        self.manager = manager("checkpoints", keep)
        self.best = manager("best", 1) if keep_best else None

    @staticmethod
    def _args(state, meta) -> ocp.args.Composite:
        return ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  meta=ocp.args.JsonSave(meta))

    def save(self, step: int, state: Any, meta: dict) -> bool:
        """Save (asynchronously) unless ``step`` is already saved; True if it saved."""
        if step in self.manager.all_steps():
            return False
        return self.manager.save(step, args=self._args(state, meta), force=True)

    def save_best(self, step: int, state: Any, meta: dict) -> None:
        if self.best is not None and step not in self.best.all_steps():
            self.best.save(step, args=self._args(state, meta), force=True)

    def wait(self) -> None:
        self.manager.wait_until_finished()
        if self.best is not None:
            self.best.wait_until_finished()

    def close(self) -> None:
        self.wait()
        self.manager.close()
        if self.best is not None:
            self.best.close()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore_latest(self, target: Any) -> tuple[Any, dict] | None:
        """Newest restorable ``(state, meta)`` (``None`` when nothing is saved).

        ``target``: the current train state (arrays or ``ShapeDtypeStruct`` with
        shardings); restored arrays take its shardings."""
        return self._restore_newest(self.manager, target)

    def restore_best(self, target: Any) -> tuple[Any, dict] | None:
        return None if self.best is None else self._restore_newest(self.best, target)

    def _restore_newest(self, manager, target) -> tuple[Any, dict] | None:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        wanted = tree_shapes(abstract)
        for step in sorted(manager.all_steps(), reverse=True):
            where = os.path.join(manager.directory, str(step))
            try:
                saved = saved_shapes(manager.item_metadata(step)["state"])
            except Exception as e:  # unreadable metadata: corrupt checkpoint
                self._quarantine(manager, step, e)
                continue
            check_compatible(saved, wanted, where)
            try:
                out = manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
                return out["state"], dict(out["meta"])
            except Exception as e:
                self._quarantine(manager, step, e)
        return None

    def _quarantine(self, manager, step: int, error: Exception) -> None:
        src = os.path.join(str(manager.directory), str(step))
        dst = os.path.join(self.workdir, "quarantine", f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
        warnings.warn(f"checkpoint {src} could not be restored ({type(error).__name__}: "
                      f"{str(error)[:300]}); moving it to {dst} and falling back to the "
                      "previous checkpoint", RuntimeWarning, stacklevel=3)
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.move(src, dst)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"grux_quarantine_{step}")
        manager.reload()
