"""Checkpoints with orbax-checkpoint: periodic async saves, last N plus the best, safe restore.

Layout in the workdir::

    checkpoints/<step>/{state,meta}   last ``keep`` periodic saves (orbax CheckpointManager)
    best/<step>/{state,meta}          the best by the eval metric (a second manager, keep 1)
    quarantine/<step>-<time>/         checkpoints that failed to restore, moved aside, kept

``state`` is the train state pytree (params, optimizer state, step, RNG key, carried
recurrent state); ``meta`` is JSON (data-stream position, best-metric tracking, ...).

``meta`` also holds a CRC-32 of every array of ``state``, computed from the arrays before
they are written and checked after they are read back: orbax-checkpoint 0.12 stores array
data without a checksum of its own (zstd without content checksums; zarr3 checksums only its
shard index), so a flipped byte would otherwise restore as silently changed parameters.

Restore walks the saved steps of ``checkpoints/`` and ``best/`` together, newest first (at
equal steps the periodic one first). A checkpoint whose files are missing, unreadable or
fail their checksums is reported with its full cause, moved to ``quarantine/`` (never
deleted) and the next one is tried. When a workdir had checkpoints and none of them can be
restored, restore raises :class:`CheckpointRestoreError`: training never starts over
silently where there was a run. A checkpoint that reads fine but whose parameter shapes
differ from the model built from the current config is an error naming the parameter: that
is a config mistake, and falling back to an older checkpoint would not fix it.

Saving errors (e.g. a full disk), raised by orbax in the background or at the next save,
become :class:`CheckpointSaveError` naming the step, the directory and the last good step.
"""
from __future__ import annotations

import errno
import os
import shutil
import time
import warnings
import zlib
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils


from grux.train.errors import (CheckpointMismatchError, CheckpointRestoreError,
                               CheckpointSaveError)

CHECKSUMS = "crc32"  # key of the per-array checksums in ``meta``
SAVE_MARGIN_BYTES = 1 << 20  # orbax's metadata files beside the arrays, with room to spare


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


def state_checksums(state: Any) -> dict[str, int]:
    """``{array name: CRC-32 of its bytes}`` for every leaf of ``state`` (gathered from all
    processes for arrays that are sharded across them: every process must call this)."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
        name = ".".join(_key_name(k) for k in path)
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            leaf = multihost_utils.process_allgather(leaf, tiled=True)
        out[name] = zlib.crc32(np.ascontiguousarray(jax.device_get(leaf)).tobytes())
    return out


def _describe(error: BaseException) -> str:
    """The cause of a save or restore failure in words, ``no space left on device`` first
    when an ``ENOSPC`` is anywhere in the exception chain."""
    seen, e = set(), error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if (isinstance(e, OSError) and e.errno == errno.ENOSPC) or (  # TensorStore's words:
                f"os_error_code='{errno.ENOSPC}'" in str(e)):
            return "no space left on device"
        e = e.__cause__ or e.__context__
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Checkpointer:
    """Periodic + best checkpoints of ``(state, meta)`` under ``workdir``.

    ``read_only=True`` (inference): nothing is created, saved or moved; a corrupt
    checkpoint is skipped with a warning."""

    def __init__(self, workdir: str, *, keep: int = 3, keep_best: bool = True,
                 async_save: bool = True, read_only: bool = False):
        self.workdir = os.path.abspath(workdir)
        self.read_only = read_only
        self._last_saved: int | None = None
        self._pending: dict[int, tuple[str, int]] = {}  # id(manager) → (path, step)
        self.restored_from: str | None = None

        def manager(sub: str, max_to_keep: int) -> ocp.CheckpointManager | None:
            path = os.path.join(self.workdir, sub)
            if read_only and not os.path.isdir(path):
                return None
            return ocp.CheckpointManager(
                path,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=max_to_keep, create=not read_only, read_only=read_only,
                    cleanup_tmp_directories=not read_only,  # left by a killed save
                    enable_async_checkpointing=async_save and not read_only,
                    # the two managers may save the same step: keep their barriers apart
                    multiprocessing_options=ocp.options.MultiprocessingOptions(
                        barrier_sync_key_prefix=f"grux_{sub}")),
                item_handlers={"state": ocp.StandardCheckpointHandler(),
                               "meta": ocp.JsonCheckpointHandler()})

        self.manager = manager("checkpoints", keep)
        self.best = manager("best", 1) if keep_best else None
        self._managers = [m for m in (self.manager, self.best) if m is not None]

    @staticmethod
    def _args(state, meta) -> ocp.args.Composite:
        meta = dict(meta, **{CHECKSUMS: state_checksums(state)})
        return ocp.args.Composite(state=ocp.args.StandardSave(state),
                                  meta=ocp.args.JsonSave(meta))

    def _save(self, manager, step: int, state: Any, meta: dict) -> bool:
        if step in manager.all_steps():
            return False
        where = os.path.join(str(manager.directory), str(step))
        self._wait(manager)  # orbax would wait too; this way an error names its own step
        self._check_space(manager, state, where)
        try:
            saved = manager.save(step, args=self._args(state, meta), force=True)
        except Exception as e:
            raise self._save_error(e, where) from e
        self._pending[id(manager)] = (where, step)
        return saved

    def _wait(self, manager) -> None:
        """Wait for ``manager``'s background save; its failure is a CheckpointSaveError."""
        try:
            manager.wait_until_finished()
        except Exception as e:
            where = self._pending.get(id(manager), (str(manager.directory), None))[0]
            raise self._save_error(e, where) from e
        self._finished(manager)

    def _check_space(self, manager, state: Any, where: str) -> None:
        """Refuse a save that cannot fit on the disk before orbax starts writing it (a save
        that fails half-way in orbax's background threads prints a traceback per pending
        write); a disk that fills up during the save is still reported, after it."""
        need = sum(int(x.nbytes) for x in jax.tree.leaves(state)) + SAVE_MARGIN_BYTES
        free = shutil.disk_usage(str(manager.directory)).free
        if free < need:
            raise self._save_error(OSError(errno.ENOSPC, "no space left"), where,
                                   f" ({free / 2**20:.2f} MiB free, the checkpoint needs "
                                   f"about {need / 2**20:.2f} MiB)")

    def _finished(self, manager) -> None:
        """The pending background save of ``manager`` has completed."""
        done = self._pending.pop(id(manager), None)
        if done is not None and manager is self.manager:
            self._last_saved = max(done[1], self._last_saved or done[1])

    def save(self, step: int, state: Any, meta: dict) -> bool:
        """Save (asynchronously) unless ``step`` is already saved; True if it saved."""
        return self._save(self.manager, step, state, meta)

    def save_best(self, step: int, state: Any, meta: dict) -> None:
        if self.best is not None:
            self._save(self.best, step, state, meta)

    def _save_error(self, error: BaseException, where: str,
                    detail: str = "") -> CheckpointSaveError:
        self.wait_quietly()
        last = self._last_saved
        good = (f"the last good checkpoint is step {last}" if last is not None
                else "no checkpoint of this run was completed")
        return CheckpointSaveError(f"{_describe(error)} while saving {where}{detail}; {good} "
                                   f"(in {self.workdir})")

    def wait(self) -> None:
        """Wait for the background saves; a failed one raises :class:`CheckpointSaveError`."""
        for m in self._managers:
            self._wait(m)

    def wait_quietly(self) -> None:
        """Wait for the background saves, ignoring their errors (one is being reported)."""
        for m in self._managers:
            try:
                m.wait_until_finished()
                self._finished(m)
            except Exception:
                pass

    def close(self, quiet: bool = False) -> None:
        """Wait for the saves and close the managers. ``quiet`` (an error is already being
        reported): errors are ignored and the managers are left to the process exit, since
        closing orbax's event loop under a failed save prints a traceback per pending
        write."""
        if quiet:
            self.wait_quietly()
            return
        self.wait()
        for m in self._managers:
            m.close()

    def latest_step(self) -> int | None:
        return self.manager.latest_step() if self.manager is not None else None

    def saved_steps(self) -> dict[str, list[int]]:
        """``{"checkpoints": [...], "best": [...]}``: the steps on disk."""
        return {os.path.basename(str(m.directory)): sorted(m.all_steps())
                for m in self._managers}

    def restore_latest(self, target: Any) -> tuple[Any, dict] | None:
        """Newest restorable ``(state, meta)`` of ``checkpoints/`` and ``best/`` (``None``
        when the workdir has never had a checkpoint).

        ``target``: the current train state (arrays or ``ShapeDtypeStruct`` with
        shardings); restored arrays take its shardings.

        Raises:
          CheckpointRestoreError: there are (or were: see ``quarantine/``) checkpoints,
            but none can be restored.
          CheckpointMismatchError: a checkpoint does not fit the model of ``target``.
        """
        return self._restore_newest(self._managers, target)

    def restore_best(self, target: Any) -> tuple[Any, dict] | None:
        """The best checkpoint (``None`` when there is none or it cannot be restored)."""
        if self.best is None or not self.best.all_steps():
            return None
        try:
            return self._restore_newest([self.best], target)
        except CheckpointRestoreError:
            return None

    def restore_step(self, step: int, target: Any) -> tuple[Any, dict]:
        """The checkpoint of ``step`` (from ``checkpoints/``, else ``best/``)."""
        have = self.saved_steps()
        if not any(step in steps for steps in have.values()):
            listed = "; ".join(f"{k}/: {v or 'none'}" for k, v in have.items())
            raise ValueError(f"no checkpoint of step {step} in {self.workdir} ({listed})")
        return self._restore_newest(self._managers, target, only_step=step)

    def _restore_newest(self, managers, target, only_step: int | None = None
                        ) -> tuple[Any, dict] | None:
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        wanted = tree_shapes(abstract)
        candidates = sorted(((step, i, m) for i, m in enumerate(managers)
                             for step in m.all_steps() if only_step in (None, step)),
                            key=lambda c: (-c[0], c[1]))
        failed = []
        for n, (step, _, manager) in enumerate(candidates):
            where = os.path.join(str(manager.directory), str(step))
            try:
                saved = saved_shapes(manager.item_metadata(step)["state"])
            except Exception as e:  # unreadable metadata: corrupt checkpoint
                self._reject(manager, step, e, candidates[n + 1:])
                failed.append(where)
                continue
            check_compatible(saved, wanted, where)
            try:
                out = manager.restore(step, args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
                state, meta = out["state"], dict(out["meta"])
                self._verify(state, meta.pop(CHECKSUMS, None), where)
                self._last_saved = step if manager is self.manager else self._last_saved
                self.restored_from = where
                return state, meta
            except Exception as e:
                self._reject(manager, step, e, candidates[n + 1:])
                failed.append(where)
        quarantine = os.path.join(self.workdir, "quarantine")
        earlier = sorted(os.listdir(quarantine)) if os.path.isdir(quarantine) else []
        if failed or (earlier and not self.read_only):
            what = ", ".join(failed) if failed else "none left"
            raise CheckpointRestoreError(
                f"no checkpoint in {self.workdir} can be restored (tried: {what}; set aside in "
                f"{quarantine}: {', '.join(earlier) or 'nothing'}); refusing to start over in "
                "a workdir that had checkpoints: use a new --workdir, or move the workdir's "
                "checkpoints/, best/ and quarantine/ away to start from scratch")
        return None

    @staticmethod
    def _verify(state: Any, expected: dict[str, int] | None, where: str) -> None:
        if expected is None:  # written before grux stored checksums: nothing to compare
            return
        actual = state_checksums(state)
        bad = sorted(k for k in set(expected) | set(actual)
                     if expected.get(k) != actual.get(k))
        if bad:
            raise ValueError(f"checksum mismatch in {len(bad)} array(s) of {where}: "
                             f"{', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''} "
                             "(the files changed after they were written)")

    def _reject(self, manager, step: int, error: Exception, remaining: list) -> None:
        """Report a checkpoint that cannot be restored; move it to ``quarantine/``."""
        src = os.path.join(str(manager.directory), str(step))
        nxt = (f"trying {os.path.join(str(remaining[0][2].directory), str(remaining[0][0]))} "
               "next" if remaining else "no other checkpoint is left to try")
        if self.read_only:
            warnings.warn(f"checkpoint {src} could not be restored ({_describe(error)}); "
                          f"skipping it; {nxt}", RuntimeWarning, stacklevel=3)
            return
        dst = os.path.join(self.workdir, "quarantine",
                           f"{os.path.basename(str(manager.directory))}-{step}-"
                           f"{time.strftime('%Y%m%d-%H%M%S')}")
        warnings.warn(f"checkpoint {src} could not be restored ({_describe(error)}); moved "
                      f"to {dst}; {nxt}", RuntimeWarning, stacklevel=3)
        if jax.process_index() == 0:
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.move(src, dst)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"grux_quarantine_{step}")
        manager.reload()
