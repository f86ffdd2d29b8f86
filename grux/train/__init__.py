"""The training system: one config-driven, data-parallel trainer for every task.

``train_and_evaluate(config, workdir)`` is the library entry point; ``python -m grux.train``
(``grux-train``) the command line. The names below are imported on first use, so that the
command line can install its signal handlers and answer ``--help`` before JAX is imported.
"""
import importlib

_EXPORTS = {"ConfigError": "grux.train.config", "base_config": "grux.train.config",
            "validate": "grux.train.config", "NonFiniteLossError": "grux.train.errors",
            "train_and_evaluate": "grux.train.trainer"}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'grux.train' has no attribute {name!r}")
