"""Command line: ``python -m grux.train --config configs/<x>.py --workdir <dir>`` (or
``grux-train``); see :data:`USAGE`.

Exit codes: 0 done (or stopped early); 1 a run-time error (checkpoint, data, non-finite loss,
workdir in use, a failed computation in a multi-process run; one line names the cause); 2 a
usage or config error (one line names the field, file or path); 143 / 130 stopped by SIGTERM
/ SIGINT (after saving a checkpoint when training had started).
"""
from __future__ import annotations

import importlib.util
import os
import sys
import traceback
import warnings

from grux.train import stop_signals

REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs")
DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default_config.py")

USAGE = f"""\
usage: grux-train [--config FILE[:ARG]] [--workdir DIR] [--config.FIELD=VALUE ...]

Train the experiment that a config file describes (python -m grux.train is the same command).

  --config FILE[:ARG]   a Python file whose get_config(ARG) returns the experiment's config;
                        the experiments are in {REPO_CONFIGS}
                        (e.g. --config configs/ptb_word.py:small); without it, the embedded
                        default: the adding problem at T = 200 with a GRU
  --workdir DIR         checkpoints, metrics.jsonl, tensorboard/ and summary.json go here
                        (default runs/<config name>); the same command again resumes there
  --config.FIELD=VALUE  override any config field, e.g. --config.model.hidden=512
                        --config.optimizer.learning_rate=3e-4 --config.model.cell=lstm;
                        an unknown field or a value of the wrong type is an error
  -h, --help            this text (--helpfull lists every flag of the libraries too)

Exit status: 0 done, 1 run-time error, 2 usage or config error, 143/130 stopped by
SIGTERM/SIGINT after saving a checkpoint.
"""


class UsageError(ValueError):
    """A command-line mistake: unknown flag, missing config file, bad override."""


def _split_config_arg(argv: list[str]) -> tuple[str | None, list[str]]:
    """``(config spec or None, the other arguments)``: ``--config=F`` / ``--config F``."""
    spec, rest, i = None, [], 0
    while i < len(argv):
        a = argv[i]
        if a in ("--config", "-config"):
            if i + 1 >= len(argv):
                raise UsageError("--config needs a value: a config file, e.g. "
                                 "--config configs/echo.py")
            spec, i = argv[i + 1], i + 2
            continue
        if a.startswith(("--config=", "-config=")):
            spec = a.split("=", 1)[1]
        else:
            rest.append(a)
        i += 1
    return spec, rest


def load_config_file(spec: str):
    """The ``ConfigDict`` that ``get_config(ARG)`` of ``FILE`` returns for ``FILE[:ARG]``;
    every failure is a :class:`UsageError` naming the file."""
    path, _, arg = spec.partition(":")
    if not os.path.isfile(path):
        known = sorted(f for f in os.listdir(REPO_CONFIGS) if f.endswith(".py")) \
            if os.path.isdir(REPO_CONFIGS) else []
        where = f" (the experiments are in {REPO_CONFIGS}: {', '.join(known)})" if known else ""
        what = "is a directory, not a config file" if os.path.isdir(path) else "no such file"
        raise UsageError(f"--config {path}: {what}{where}")
    name = "grux_config_" + os.path.splitext(os.path.basename(path))[0]
    try:
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise UsageError(f"--config {path} failed to load: {_where(e, path)}") from e
    if not callable(getattr(module, "get_config", None)):
        raise UsageError(f"--config {path}: the file defines no get_config()")
    try:
        config = module.get_config(arg) if arg else module.get_config()
    except Exception as e:
        raise UsageError(f"--config {spec}: {_where(e, path)}") from e
    import ml_collections
    if not isinstance(config, ml_collections.ConfigDict):
        raise UsageError(f"--config {spec}: get_config() returned a {type(config).__name__}, "
                         "not an ml_collections.ConfigDict")
    return config


def _where(error: Exception, path: str) -> str:
    """``Type: message (FILE line N)`` for an exception raised by a config file."""
    lines = [f.lineno for f in traceback.extract_tb(error.__traceback__)
             if os.path.abspath(f.filename) == os.path.abspath(path)]
    if isinstance(error, SyntaxError) and error.lineno:
        lines = [error.lineno]
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    at = f" ({os.path.basename(path)} line {lines[-1]})" if lines else ""
    return f"{type(error).__name__}: {message}{at}"


def _check_override_fields(config, argv: list[str]) -> None:
    """Every ``--config.FIELD`` names a field (or section) of ``config``."""
    from grux.train.config import field_paths, unknown_field_message
    paths = field_paths(config)
    for a in argv:
        if a.startswith(("--config.", "-config.")):
            field = a.split("config.", 1)[1].split("=", 1)[0]
            if field not in paths:
                task = config.task.name if "task" in config and "name" in config.task else ""
                raise UsageError("--" + unknown_field_message(field, paths, task))


def parse_command_line(argv: list[str], flag_values=None):
    """``(config, workdir or None, config spec)`` from the arguments after the program name,
    parsed as the command line does (for scripts, notebooks and tests). Mistakes raise
    :class:`UsageError` with a one-line message."""
    from absl import flags
    from ml_collections import config_flags
    spec, rest = _split_config_arg(argv)
    spec = spec or DEFAULT_CONFIG
    config = load_config_file(spec)
    _check_override_fields(config, rest)
    fv = flags.FlagValues() if flag_values is None else flag_values
    holder = config_flags.DEFINE_config_dict("config", config, flag_values=fv,
                                             lock_config=True, sys_argv=["grux-train", *rest])
    workdir = flags.DEFINE_string("workdir", None, "run directory", flag_values=fv)
    try:
        unparsed = fv(["grux-train", *rest])
    except flags.Error as e:
        raise UsageError(str(e).strip().splitlines()[0]) from e
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise UsageError(f"bad config override: {str(e).strip().splitlines()[0]}") from e
    if len(unparsed) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(unparsed[1:])} (see --help)")
    return holder.value, workdir.value, spec


def parse_config(argv: list[str]):
    """The config of ``['--config=path.py[:arg]', '--config.a.b=v', ...]``."""
    return parse_command_line(argv)[0]


def default_workdir(config_spec: str) -> str:
    name = os.path.splitext(os.path.basename(config_spec.split(":")[0]))[0]
    arg = config_spec.split(":", 1)[1] if ":" in config_spec else ""
    return os.path.join("runs", name + (f"-{arg}" if arg else ""))


def _fail(message: str, code: int) -> None:
    print(f"grux-train: error: {message}", file=sys.stderr, flush=True)
    _exit_now_if_distributed(code)
    sys.exit(code)


def _distributed() -> bool:
    jax = sys.modules.get("jax")
    return jax is not None and jax.distributed.is_initialized()


def _exit_now_if_distributed(code: int) -> None:
    """In a multi-process run, end this process at once (``os._exit``), skipping JAX's exit
    handler: that handler waits at a shutdown barrier for every other process, which may be
    dead or blocked waiting for this one, for up to ``distributed.shutdown_timeout`` seconds,
    and then aborts with a C++ fatal log of many lines. The other processes notice the exit
    at their next collective (docs/clusters.md, "When a process dies or hangs")."""
    if _distributed():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main(argv: list[str]) -> int:
    """Run the command line ``argv`` (without the program name); return the exit status."""
    from absl import flags, logging
    try:
        config, workdir, spec = parse_command_line(argv, flags.FLAGS)
    except UsageError as e:
        _fail(str(e), 2)
    if not flags.FLAGS["verbosity"].present:  # orbax logs every save at INFO
        logging.set_verbosity(logging.WARNING)
    warnings.formatwarning = lambda message, category, *_, **__: (
        f"grux-train: warning: {message}\n")
    # orbax logs each failure of a background save or a restore with its traceback from
    # several threads; grux reports every one of them as a one-line error or warning
    import logging as py_logging
    py_logging.getLogger("absl").addFilter(
        lambda r: not (r.levelno >= py_logging.ERROR and f"{os.sep}orbax{os.sep}" in r.pathname))
    if stop_signals.requested():
        print(f"grux-train: {stop_signals.requested()} during start-up, before training: "
              "nothing to save; exiting", file=sys.stderr, flush=True)
        return stop_signals.EXIT_CODES[stop_signals.requested()]
    from grux.train.errors import RUNTIME_ERRORS, USAGE_ERRORS
    from grux.train.trainer import train_and_evaluate
    try:
        summary = train_and_evaluate(config, workdir or default_workdir(spec))
    except USAGE_ERRORS as e:
        _fail(str(e), 2)
    except RUNTIME_ERRORS as e:
        _fail(str(e), 1)
    except Exception:  # a bug; in a multi-process run: its traceback, the same prompt exit
        if _distributed():
            traceback.print_exc()
            _exit_now_if_distributed(1)
        raise
    if summary["status"] == "preempted":
        return stop_signals.EXIT_CODES.get(summary.get("signal"), 143)
    return 0


def run() -> None:
    """Console-script entry point (``grux-train``)."""
    stop_signals.install()  # before the slow imports: a signal now is a request, not a kill
    argv = sys.argv[1:]
    if any(a in ("-h", "--help", "-help", "--helpshort", "-?") for a in argv):
        print(USAGE, end="")
        sys.exit(0)
    if "--helpfull" in argv:
        from absl import flags
        import grux.train.trainer  # noqa: F401  (defines the libraries' flags)
        print(USAGE + "\nEvery flag, including those of the libraries:\n"
              + flags.FLAGS.get_help())
        sys.exit(0)
    sys.exit(main(argv))


if __name__ == "__main__":
    run()
