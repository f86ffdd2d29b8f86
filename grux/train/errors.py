"""The errors a training run can end with, each one line that names its cause.

``grux-train`` prints them as ``grux-train: error: ...``: :data:`USAGE_ERRORS` (a mistake in
the command: exit status 2) and :data:`RUNTIME_ERRORS` (exit status 1).
"""
from __future__ import annotations

from grux.data.builders.common import DataError
from grux.train.config import ConfigError


class NonFiniteLossError(FloatingPointError):
    """The training loss or gradient became NaN/Inf."""


class CheckpointMismatchError(ValueError):
    """The checkpoint's parameters do not fit the model the config builds."""


class CheckpointRestoreError(RuntimeError):
    """A workdir has checkpoints but none of them can be restored."""


class CheckpointSaveError(RuntimeError):
    """Saving a checkpoint failed (e.g. no space left on the device)."""


class WorkdirError(ValueError):
    """The workdir cannot be used (it is a file, or lies inside one)."""


class WorkdirLockedError(RuntimeError):
    """Another process is training in the same workdir."""


class DistributedError(RuntimeError):
    """A computation of a multi-process run failed: most often another process died."""


USAGE_ERRORS = (ConfigError, WorkdirError)
RUNTIME_ERRORS = (DistributedError, NonFiniteLossError, CheckpointMismatchError,
                  CheckpointRestoreError, CheckpointSaveError, WorkdirLockedError, DataError)
