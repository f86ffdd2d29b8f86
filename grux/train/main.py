"""Command line: ``python -m grux.train --config configs/<x>.py --workdir <dir>`` (or
``grux-train``). Any config field can be overridden: ``--config.model.hidden=512``.

Without ``--config`` it trains the embedded default (``grux/train/default_config.py``: the
adding problem at T=200 with a GRU), which needs no downloaded data. Without ``--workdir`` the
run goes to ``runs/<config name>``. Re-running the same command resumes from the workdir's
newest checkpoint. Exit codes: 0 done, 1 config/checkpoint/non-finite-loss error (a one-line
message names the cause), 143 stopped by SIGTERM after saving a checkpoint.
"""
from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_config.py")

_CONFIG = config_flags.DEFINE_config_file(
    "config", DEFAULT_CONFIG, "Experiment config file (a Python file with get_config()); "
    "'path.py:arg' passes arg to get_config.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, "
                               "summary); default runs/<config name>.")


def parse_config(argv: list[str], default: str = DEFAULT_CONFIG):
    """Parse ``['--config=path.py[:arg]', '--config.a.b=v', ...]`` exactly as the command line
    does and return the config (for scripts, notebooks and tests)."""
    fv = flags.FlagValues()
    holder = config_flags.DEFINE_config_file("config", default, flag_values=fv,
                                             lock_config=True, sys_argv=["grux-train", *argv])
    fv(["grux-train", *argv])
    return holder.value


def default_workdir(config_path: str) -> str:
    name = os.path.splitext(os.path.basename(config_path.split(":")[0]))[0]
    arg = config_path.split(":", 1)[1] if ":" in config_path else ""
    return os.path.join("runs", name + (f"-{arg}" if arg else ""))


def main(argv) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
        logging.set_verbosity(logging.WARNING)
    from grux.train.checkpoint import CheckpointMismatchError
    from grux.train.config import ConfigError
    from grux.train.trainer import NonFiniteLossError, train_and_evaluate
    workdir = _WORKDIR.value or default_workdir(flags.FLAGS["config"].config_filename)
    try:
        summary = train_and_evaluate(_CONFIG.value, workdir)
    except (ConfigError, CheckpointMismatchError, NonFiniteLossError) as e:
        print(f"grux-train: error: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    if summary["status"] == "preempted":
        sys.exit(143)


def run() -> None:
    """Console-script entry point (``grux-train``)."""
    app.run(main)


if __name__ == "__main__":
    run()
