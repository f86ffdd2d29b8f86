"""Experiment configs: the trainer's fields, the task's fields, and validation.

An experiment file in ``configs/`` does::

    from grux.train.config import base_config

    def get_config():
        config = base_config("adding")      # every field, with defaults, locked
        config.model.hidden = 128           # a misspelled field raises here
        return config

``base_config`` returns a *locked* ``ConfigDict``: assigning a field that does not exist raises
at once, and assigning a value of another type raises too (``ConfigDict`` type safety).
Command-line overrides (``--config.model.hidden=512``) go through ``ml_collections.config_flags``,
which rejects unknown fields the same way. ``validate`` re-checks a finished config against
the schema (for configs built without ``base_config``) and checks values, naming the field.
"""
from __future__ import annotations

import difflib

import ml_collections

from grux.tasks import get_task_class, task_names

OPTIMIZERS = ("adam", "adamw", "rmsprop", "adadelta", "sgd")
SCHEDULES = ("constant", "cosine", "linear", "exponential")


class ConfigError(ValueError):
    """A config field is unknown, of the wrong type, or holds an impossible value."""


def trainer_config() -> ml_collections.ConfigDict:
    """The trainer's own fields and their defaults (task fields come from the task)."""
    return ml_collections.ConfigDict({
        "seed": 0,
        "data_dir": "",               # raw dataset files; "" → $GRUX_DATA_DIR, then ../shared/data
        "tfds_dir": "",               # prepared TFDS datasets; "" → $GRUX_TFDS_DIR, then
                                      # ~/.cache/grux/tfds
        "batch_size": 64,             # global batch: split over processes, then devices
        "num_train_steps": 2000,
        "weight_noise": 0.0,          # std of Gaussian noise on every parameter in training
                                      # forward passes (Graves 2011; Chung et al. 2014: 0.075)
        "optimizer": {
            "name": "adam",           # adam | adamw | rmsprop | adadelta | sgd
            "learning_rate": 1e-3,    # peak learning rate
            "schedule": "constant",   # constant | cosine | linear | exponential
            "warmup_steps": 0,        # linear warm-up from 0 to the peak
            "decay_rate": 0.5,        # exponential: lr = peak · rate^⌊(step − decay_start)
            "decay_every": 1000,      #   / decay_every⌋ once step ≥ decay_start (staircase)
            "decay_start": 0,
            "end_factor": 0.0,        # cosine / linear: final lr = end_factor · peak
            "b1": 0.9, "b2": 0.999, "eps": 1e-8,  # adam(w)
            "rho": 0.95,              # rmsprop / adadelta decay of the squared-gradient average
            "momentum": 0.0,          # sgd / rmsprop
            "nesterov": False,        # sgd
            "weight_decay": 0.0,      # adamw: decoupled; others: added to the gradient (L2)
            "clip_norm": 1.0,         # global-norm gradient clipping; 0 disables
            "ema_decay": 0.0,         # > 0: evaluate / infer with an exponential moving
                                      # average of the parameters (grux.train.optim.params_ema)
        },
        "eval": {
            "every_steps": 500,       # evaluate all splits every n steps and at the end
            "batch_size": 0,          # 0 → batch_size
            "metric": "validation/loss",   # best-checkpoint and early-stopping criterion
            "mode": "min",            # min | max
            "patience": 0,            # early stop after n evaluations without improvement; 0 off
            "decode_every": 1,        # host-side evaluators (BLEU, error rates) run at every
                                      # k-th evaluation and the last; 0 = at the last only
            "decode_examples": 0,     # ...on the first n examples of each split (0 = all);
                                      # the last evaluation always decodes them all
        },
        "checkpoint": {
            "every_steps": 500,       # periodic saves (and at the end, and on SIGTERM)
            "keep": 3,                # most recent periodic checkpoints kept
            "keep_best": True,        # also keep the best by eval.metric
            "async_save": True,
        },
        "log": {
            "every_steps": 50,        # train metrics (means over the interval) to JSONL/TB
            "tensorboard": True,
            "progress": True,         # progress line with loss, throughput and ETA
        },
        "distributed": {              # several processes (hosts); docs/clusters.md
            "coordinator_address": "",  # "" one process; "auto": JAX detects the cluster
                                        # (SLURM, Open MPI, Cloud TPU, Kubernetes); "host:port"
                                        # of process 0, with num_processes and process_id
            "num_processes": 0,
            "process_id": -1,
            "local_device_ids": "",     # e.g. "0,1": the local GPUs this process drives; ""
                                        # = JAX's default (all; under SLURM/Open MPI "auto",
                                        # one GPU per process: the one of its local rank)
            "initialization_timeout": 300,  # seconds to wait for every process to connect
            "heartbeat_timeout": 100,   # seconds without a heartbeat after which a process
                                        # counts as dead and JAX stops all the others
            "shutdown_timeout": 300,    # seconds process 0 waits at exit for the others
        },
    })


def base_config(task: str) -> ml_collections.ConfigDict:
    """All fields of an experiment on ``task`` with their defaults, locked."""
    config = trainer_config()
    task_fields = get_task_class(task).default_config()
    overlap = set(task_fields) & set(config)
    if overlap or set(task_fields) != {"task", "model"}:
        raise ConfigError(f"task {task!r} default_config must have exactly the sections "
                         f"'task' and 'model', got {sorted(task_fields)}")
    config.task = task_fields.task
    config.model = task_fields.model
    config.lock()
    return config


def field_paths(d: ml_collections.ConfigDict, prefix: str = "") -> dict[str, type]:
    """``{"model.hidden": int, "model": ConfigDict, ...}``: every field and section."""
    out = {}
    for k, v in d.items():
        path = f"{prefix}{k}"
        if isinstance(v, ml_collections.ConfigDict):
            out[path] = ml_collections.ConfigDict
            out.update(field_paths(v, path + "."))
        else:
            out[path] = type(v)
    return out


def _compatible(value_type: type, schema_type: type) -> bool:
    if schema_type is type(None) or value_type is schema_type:
        return True
    if schema_type is float and value_type is int:
        return True
    if schema_type in (tuple, list) and value_type in (tuple, list):
        return True
    return False


def check_schema(config: ml_collections.ConfigDict) -> None:
    """Every field of ``config`` exists in the schema of its task, with a compatible type;
    every schema field is present. Errors name the field and suggest the closest one."""
    if "task" not in config or "name" not in config.task:
        raise ConfigError("config.task.name is missing: it selects the task")
    try:
        schema = field_paths(base_config(config.task.name))
    except ValueError as e:
        raise ConfigError(str(e)) from e
    given = field_paths(config)
    for path, typ in given.items():
        if path not in schema:
            raise ConfigError(unknown_field_message(path, schema, config.task.name))
        if not _compatible(typ, schema[path]):
            raise ConfigError(f"config.{path}: expected {schema[path].__name__}, "
                             f"got {typ.__name__}")
    missing = sorted(set(schema) - set(given))
    if missing:
        raise ConfigError(f"config.{missing[0]}: missing field (start from "
                         f"grux.train.config.base_config)")


def unknown_field_message(path: str, schema: dict, task: str) -> str:
    """``config.<path>: unknown field; did you mean ...`` with the closest field of
    ``schema`` (a :func:`field_paths` map), or, when ``path`` is a field of another task,
    which task it belongs to (a config of one task with ``task.name`` switched to another
    still holds the first task's fields)."""
    owners = [name for name in task_names() if name != task
              and path in field_paths(base_config(name))] if path.startswith(
                  ("task.", "model.")) else []
    if owners:
        return (f"config.{path} is a field of task {owners[0]!r}, not of task {task!r} "
                f"(config.task.name); a config of one task cannot be switched to another "
                f"with --config.task.name: start from a config file of task {task!r}")
    close = difflib.get_close_matches(path, list(schema), n=1)
    hint = f"; did you mean config.{close[0]}?" if close else ""
    return f"config.{path}: unknown field{hint}"


def validate(config: ml_collections.ConfigDict, device_count: int | None = None) -> None:
    """Check schema and values; raise ``ValueError`` naming the first bad field.

    ``device_count``: when given, the global batch sizes must divide over that many devices.
    """
    check_schema(config)

    def need(cond: bool, field: str, what: str) -> None:
        if not cond:
            raise ConfigError(f"config.{field} {what}, got {_get(config, field)!r}")

    need(config.batch_size >= 1, "batch_size", "must be >= 1")
    need(config.num_train_steps >= 0, "num_train_steps", "must be >= 0")
    need(config.weight_noise >= 0, "weight_noise", "must be >= 0")
    o = config.optimizer
    need(o.name in OPTIMIZERS, "optimizer.name", f"must be one of {OPTIMIZERS}")
    need(o.schedule in SCHEDULES, "optimizer.schedule", f"must be one of {SCHEDULES}")
    need(o.learning_rate > 0, "optimizer.learning_rate", "must be positive")
    for f in ("warmup_steps", "weight_decay", "clip_norm", "momentum", "decay_start"):
        need(o[f] >= 0, f"optimizer.{f}", "must be >= 0")
    need(o.decay_every >= 1, "optimizer.decay_every", "must be >= 1")
    need(0 < o.decay_rate <= 1, "optimizer.decay_rate", "must be in (0, 1]")
    need(0 <= o.end_factor <= 1, "optimizer.end_factor", "must be in [0, 1]")
    for f in ("b1", "b2", "rho", "ema_decay"):
        need(0 <= o[f] < 1, f"optimizer.{f}", "must be in [0, 1)")
    need(o.eps > 0, "optimizer.eps", "must be positive")
    e = config.eval
    need(e.every_steps >= 1, "eval.every_steps", "must be >= 1")
    need(e.batch_size >= 0, "eval.batch_size", "must be >= 0 (0: use batch_size)")
    need(e.mode in ("min", "max"), "eval.mode", "must be 'min' or 'max'")
    need(e.patience >= 0, "eval.patience", "must be >= 0")
    need(e.decode_every >= 0, "eval.decode_every", "must be >= 0")
    need(e.decode_examples >= 0, "eval.decode_examples", "must be >= 0 (0: all)")
    need("/" in e.metric, "eval.metric", "must be '<split>/<metric>', e.g. 'validation/loss'")
    c = config.checkpoint
    need(c.every_steps >= 1, "checkpoint.every_steps", "must be >= 1")
    need(c.keep >= 1, "checkpoint.keep", "must be >= 1")
    need(config.log.every_steps >= 1, "log.every_steps", "must be >= 1")
    d = config.distributed
    if d.coordinator_address == "auto":
        need(d.num_processes == 0, "distributed.num_processes",
             "must be left unset (0) with coordinator_address='auto': the cluster gives it")
        need(d.process_id == -1, "distributed.process_id",
             "must be left unset (-1) with coordinator_address='auto': the cluster gives it")
    elif d.coordinator_address:
        host, _, port = d.coordinator_address.rpartition(":")
        need(bool(host) and port.isdigit() and 0 < int(port) < 65536,
             "distributed.coordinator_address", "must be '', 'auto' or 'host:port'")
        need(d.num_processes >= 1, "distributed.num_processes",
             "must be >= 1 when distributed.coordinator_address is set")
        need(0 <= d.process_id < d.num_processes, "distributed.process_id",
             f"must be in [0, {d.num_processes})")
    ids = d.local_device_ids.replace(" ", "")
    need(not ids or all(i.isdigit() for i in ids.split(",")), "distributed.local_device_ids",
         "must be '' (JAX's default) or device numbers separated by commas, e.g. '0,1,2,3'")
    for f in ("initialization_timeout", "heartbeat_timeout", "shutdown_timeout"):
        need(d[f] >= 1, f"distributed.{f}", "must be >= 1 (seconds)")
    if device_count is not None:
        for f in ("batch_size", "eval.batch_size"):
            v = _get(config, f) or config.batch_size
            if v % device_count:
                raise ConfigError(f"config.{f}={v} is not divisible by the {device_count} "
                                 "devices of the data-parallel mesh")
    try:
        get_task_class(config.task.name).validate(config)
    except ConfigError:
        raise
    except ValueError as e:
        raise ConfigError(str(e)) from e


def _get(config, dotted: str):
    for part in dotted.split("."):
        config = config[part]
    return config
