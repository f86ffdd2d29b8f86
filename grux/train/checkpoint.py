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
    """Raise :class:`CheckpointMismatchError` naming the first differing array."""
    for name in sorted(set(saved) | set(target)):
        if name not in target:
            raise CheckpointMismatchError(
                f"checkpoint {where} has {name} {saved[name][0]} that the model built from "
                "this config does not have (was the config changed, e.g. num_layers or "
                "cell?)")
        if name not in saved:
            raise CheckpointMismatchError(
                f"checkpoint {where} lacks {name} {target[name][0]}, which the model built "
                "from this config has (was the config changed?)")
        if saved[name] != target[name]:
            raise CheckpointMismatchError(
                f"checkpoint {where}: {name} is {saved[name][0]} {saved[name][1]} in the "
                f"checkpoint but {target[name][0]} {target[name][1]} in the model built from "
                "this config (was the config changed, e.g. model.hidden?)")


class Checkpointer:
    """Periodic + best checkpoints of ``(state, meta)`` under ``workdir``."""

    def __init__(self, workdir: str, *, keep: int = 3, keep_best: bool = True,
                 async_save: bool = True):
        self.workdir = os.path.abspath(workdir)
        opts = dict(enable_async_checkpointing=async_save, create=True)
        self.manager = ocp.CheckpointManager(
            os.path.join(self.workdir, "checkpoints"),
            options=ocp.CheckpointManagerOptions(max_to_keep=keep, **opts))
        self.best = (ocp.CheckpointManager(
            os.path.join(self.workdir, "best"),
            options=ocp.CheckpointManagerOptions(max_to_keep=1, **opts))
            if keep_best else None)

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
